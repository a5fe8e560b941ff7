/* plan.c - reads the flat plan format of keeper_protocol.h section 2. The file is read into
 * one buffer; records and fields are NUL-terminated in place, so every string in a plan
 * points into that buffer. Every error names the record number and its key. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* SwiftPM does not pass -D_GNU_SOURCE */
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "keeper.h"

#define MAX_LIST 4096
#define MAX_RULES 512
#define MAX_PATH_LEN 4096

/** How a key is stored. */
enum kind { K_STR, K_PATH, K_NUM, K_FLAG, K_LIST, K_RECS, K_NS };

/** One known key: where its value goes in a ctr_plan or a proc_plan. */
struct key {
    const char *name;
    enum kind kind;
    int in_proc;        /**< offset is into struct proc_plan */
    size_t off;
    int min_fields;     /**< K_RECS: fields required */
    int64_t lo, hi;     /**< K_NUM bounds */
};

#define C(n, k, f) { n, k, 0, offsetof(struct ctr_plan, f), 0, 0, 0 }
#define CR(n, f, m) { n, K_RECS, 0, offsetof(struct ctr_plan, f), m, 0, 0 }
#define CN(n, f, lo, hi) { n, K_NUM, 0, offsetof(struct ctr_plan, f), 0, lo, hi }
#define P(n, k, f) { n, k, 1, offsetof(struct proc_plan, f), 0, 0, 0 }
#define PR(n, f, m) { n, K_RECS, 1, offsetof(struct proc_plan, f), m, 0, 0 }

static const struct key keys[] = {
    C("id", K_STR, id), C("rootfs", K_PATH, rootfs), C("hostname", K_STR, hostname),
    C("readonly_rootfs", K_FLAG, readonly_rootfs), C("cgroup_path", K_STR, cgroup_path),
    C("cgroup_root", K_PATH, cgroup_root), C("runtime", K_PATH, runtime),
    C("runtime_root", K_PATH, runtime_root), C("oci_bundle", K_PATH, oci_bundle),
    CR("rootfs_mount", rootfs_mounts, 2), CR("mount", mounts, 3), CR("device", devices, 7),
    CR("uid_map", uid_maps, 3), CR("gid_map", gid_maps, 3),
    CR("seccomp_rule", seccomp_rules, 3), CR("sysctl", sysctls, 2), CR("device_rule", device_rules, 5), C("masked_path", K_LIST, masked),
    C("readonly_path", K_LIST, readonly), C("seccomp_arch", K_LIST, seccomp_archs),
    C("namespace", K_NS, ns_new),
    CN("memory_limit", memory_limit, -1, INT64_MAX), CN("memory_swap", memory_swap, -1, INT64_MAX),
    CN("cpu_shares", cpu_shares, 2, 262144), CN("cpu_quota", cpu_quota, -1, INT64_MAX),
    CN("cpu_period", cpu_period, 1000, 1000000), CN("pids_limit", pids_limit, -1, INT64_MAX),
    CN("oom_score_adj", oom_score_adj, -1000, 1000),
    P("arg", K_LIST, args), P("env", K_LIST, env), P("additional_gid", K_LIST, gids),
    P("cap_bounding", K_LIST, cap_bounding), P("cap_effective", K_LIST, cap_effective),
    P("cap_permitted", K_LIST, cap_permitted), P("cap_inheritable", K_LIST, cap_inheritable),
    P("cap_ambient", K_LIST, cap_ambient), PR("rlimit", rlimits, 3),
    P("cwd", K_PATH, cwd), P("stdin", K_PATH, std_in), P("stdout", K_PATH, std_out),
    P("stderr", K_PATH, std_err), P("oci_process", K_PATH, oci_process),
    P("terminal", K_FLAG, terminal), P("no_new_privileges", K_FLAG, nnp),
};

static const char *ns_names[NS_COUNT] = {
    [NS_USER] = "user", [NS_MOUNT] = "mount", [NS_PID] = "pid", [NS_UTS] = "uts",
    [NS_IPC] = "ipc", [NS_NET] = "network", [NS_CGROUP] = "cgroup",
};

/** Where a record is being read: for error lines. */
struct at { size_t n; const char *key; };

static int bad(const struct at *a, const char *what)
{
    return kerr_fmt("plan: record %zu (%s): %s", a->n, a->key, what);
}

static int list_add(struct strv *l, char *s, const struct at *a)
{
    if (l->n >= MAX_LIST) return bad(a, "too many entries");
    char **v = realloc(l->v, (l->n + 2) * sizeof *v);
    if (!v) return bad(a, "out of memory");
    v[l->n++] = s;
    v[l->n] = NULL;
    l->v = v;
    return 0;
}

static int recs_add(struct recv *r, char *s, int min, const struct at *a)
{
    if (r->n >= MAX_LIST) return bad(a, "too many entries");
    struct rec rec = { NULL, 0 };
    for (char *f = s; ; ) {
        char *us = strchr(f, '\x1f');
        if (us) *us = 0;
        if (rec.n >= 64) return free(rec.f), bad(a, "more than 64 fields");
        char **nf = realloc(rec.f, (rec.n + 2) * sizeof *nf);
        if (!nf) return free(rec.f), bad(a, "out of memory");
        rec.f = nf;
        rec.f[rec.n++] = f;
        rec.f[rec.n] = NULL;
        if (!us) break;
        f = us + 1;
    }
    if ((int)rec.n < min) {
        free(rec.f);
        return kerr_fmt("plan: record %zu (%s): %zu fields, need at least %d", a->n, a->key,
                        rec.n, min);
    }
    struct rec *v = realloc(r->v, (r->n + 1) * sizeof *v);
    if (!v) return free(rec.f), bad(a, "out of memory");
    v[r->n++] = rec;
    r->v = v;
    return 0;
}

static int set_ns(struct ctr_plan *p, char *val, const struct at *a)
{
    char *us = strchr(val, '\x1f');
    if (us) *us++ = 0;
    for (int i = 0; i < NS_COUNT; i++) {
        if (strcmp(val, ns_names[i])) continue;
        if (us && i != NS_NET && i != NS_IPC && i != NS_UTS && i != NS_PID)
            return bad(a, "joining an existing namespace works for network, ipc, uts, pid only");
        if (us && us[0] != '/') return bad(a, "namespace path must be absolute");
        p->ns_new[i] = us ? 0 : 1;
        p->ns_path[i] = us;
        return 0;
    }
    return bad(a, "unknown namespace kind");
}

/** Scalars may appear once; a second one is most likely a writer bug. */
static int set_scalar(const struct key *k, void *base, char *val, const struct at *a)
{
    void *dst = (char *)base + k->off;
    int64_t v;
    switch (k->kind) {
    case K_PATH:
        if (val[0] != '/') return bad(a, "path must be absolute");
        if (strlen(val) > MAX_PATH_LEN) return bad(a, "path too long");
        /* fall through */
    case K_STR:
        if (*(const char **)dst) return bad(a, "given twice");
        *(const char **)dst = val;
        return 0;
    case K_FLAG:
        if (strcmp(val, "1") && strcmp(val, "0")) return bad(a, "must be 0 or 1");
        *(int *)dst = val[0] == '1';
        return 0;
    case K_NUM:
        if (parse_i64(val, k->lo, k->hi, &v) < 0) return bad(a, "bad number or out of range");
        *(int64_t *)dst = v;
        return 0;
    default:
        return bad(a, "internal: bad key kind");
    }
}

/** Keys whose parsing is not a plain store. */
static int special(struct ctr_plan *c, struct proc_plan *pp, const char *key, char *val,
                   const struct at *a, int *handled)
{
    int64_t v;
    *handled = 1;
    if (!strcmp(key, "mode") && c) {
        if (strcmp(val, "native") && strcmp(val, "oci")) return bad(a, "native or oci");
        c->oci = !strcmp(val, "oci");
    } else if (!strcmp(key, "cgroup_version") && c) {
        if (strcmp(val, "1") && strcmp(val, "2")) return bad(a, "1 or 2");
        c->cgroup_version = val[0] - '0';
    } else if (!strcmp(key, "seccomp_default") && c) {
        struct recv one = { NULL, 0 };
        if (c->seccomp_default.n) return bad(a, "given twice");
        if (recs_add(&one, val, 1, a) < 0) return -1;
        c->seccomp_default = one.v[0];
        free(one.v);
    } else if ((!strcmp(key, "uid") || !strcmp(key, "gid")) && pp) {
        if (parse_i64(val, 0, UINT32_MAX - 1, &v) < 0) return bad(a, "bad id");
        if (key[0] == 'u') pp->uid = (uid_t)v; else pp->gid = (gid_t)v;
    } else if (!strcmp(key, "umask") && pp) {
        char *end;
        long m = strtol(val, &end, 8);
        if (*end || !*val || m < 0 || m > 0777) return bad(a, "octal 0-777");
        pp->umask = (int)m;
    } else if ((!strcmp(key, "console_width") || !strcmp(key, "console_height")) && pp) {
        if (parse_i64(val, 0, 65535, &v) < 0) return bad(a, "0-65535");
        if (key[8] == 'w') pp->width = (unsigned short)v; else pp->height = (unsigned short)v;
    } else {
        *handled = 0;
    }
    return 0;
}

/** Scalar keys already given in this plan; a second one is most likely a writer bug. */
struct seen { const char *v[64]; int n; };

static int is_list_key(const char *key)
{
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!strcmp(keys[i].name, key)) return keys[i].kind == K_LIST || keys[i].kind == K_RECS || keys[i].kind == K_NS;
    return 0;
}

static int check_once(struct seen *seen, const struct at *a)
{
    if (is_list_key(a->key)) return 0;
    for (int i = 0; i < seen->n; i++)
        if (!strcmp(seen->v[i], a->key)) return bad(a, "given twice");
    if (seen->n < 64) seen->v[seen->n++] = a->key;
    return 0;
}

static int apply_record(struct ctr_plan *c, struct proc_plan *pp, char *rec, const struct at *a0,
                        struct seen *seen)
{
    struct at a = *a0;
    char *sp = strchr(rec, ' ');
    if (!sp) return kerr_fmt("plan: record %zu: no space between key and value", a.n);
    *sp = 0;
    a.key = rec;
    char *val = sp + 1;
    int handled;
    if (check_once(seen, &a) < 0) return -1;
    if (special(c, pp, rec, val, &a, &handled) < 0) return -1;
    if (handled) return 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const struct key *k = &keys[i];
        if (strcmp(k->name, rec)) continue;
        if (!k->in_proc && !c) return bad(&a, "not allowed in an exec plan");
        void *base = k->in_proc ? (void *)pp : (void *)c;
        if (k->kind == K_LIST) return list_add((struct strv *)((char *)base + k->off), val, &a);
        if (k->kind == K_RECS)
            return recs_add((struct recv *)((char *)base + k->off), val, k->min_fields, &a);
        if (k->kind == K_NS) return set_ns(c, val, &a);
        return set_scalar(k, base, val, &a);
    }
    return bad(&a, "unknown key");
}

static int read_whole(const char *path, char **out, size_t *len)
{
    int fd = xopen(path, O_RDONLY, 0);
    if (fd < 0) return kerr_set("read plan", path, errno);
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size > KEEPER_MAX_PLAN || st.st_size < 1) {
        xclose(&fd);
        return kerr_fmt("read plan: %s: empty or larger than %d bytes", path, KEEPER_MAX_PLAN);
    }
    char *buf = malloc((size_t)st.st_size + 1);
    ssize_t r = buf ? xread(fd, buf, (size_t)st.st_size) : -1;
    xclose(&fd);
    if (r != st.st_size) return free(buf), kerr_set("read plan", path, r < 0 ? errno : EIO);
    buf[r] = 0;
    *out = buf;
    *len = (size_t)r;
    return 0;
}

static void proc_defaults(struct proc_plan *p)
{
    memset(p, 0, sizeof *p);
    p->umask = 022;
}

/** Walks the records of buf; c is NULL for an exec plan. */
static int parse(char *buf, size_t len, struct ctr_plan *c, struct proc_plan *pp)
{
    if (buf[len - 1] != 0) return kerr_fmt("plan: last record is not NUL-terminated");
    if (strcmp(buf, "version 1"))
        return kerr_fmt("plan: record 1 must be \"version 1\" (this keeper reads version %d)",
                        KEEPER_PROTOCOL_VERSION);
    struct at a = { 1, "version" };
    struct seen seen = { { "version" }, 1 };
    for (char *r = buf + strlen(buf) + 1, *next; r < buf + len; r = next) {
        next = r + strlen(r) + 1; /* before apply_record cuts the record into fields */
        a.n++;
        if (apply_record(c, pp, r, &a, &seen) < 0) return -1;
    }
    if (pp->args.n == 0 && !(c && c->oci) && !pp->oci_process)
        return kerr_fmt("plan: no arg record (the process needs argv[0])");
    return 0;
}

static int check_container(struct ctr_plan *p)
{
    if (!p->id) return kerr_fmt("plan: no id record");
    size_t idlen = strlen(p->id);
    if (idlen < 1 || idlen > KEEPER_MAX_ID || strspn(p->id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") != idlen)
        return kerr_fmt("plan: id %s: must be 1-%d of [A-Za-z0-9_.-]", p->id, KEEPER_MAX_ID);
    if (p->oci && (!p->runtime || !p->oci_bundle))
        return kerr_fmt("plan: mode oci needs runtime and oci_bundle records");
    if (!p->oci && !p->rootfs) return kerr_fmt("plan: no rootfs record");
    if (p->hostname && !p->ns_new[NS_UTS]) return kerr_fmt("plan: hostname needs namespace uts");
    if ((p->uid_maps.n || p->gid_maps.n) && !p->ns_new[NS_USER])
        return kerr_fmt("plan: uid_map/gid_map need namespace user");
    if (p->seccomp_rules.n > MAX_RULES) return kerr_fmt("plan: more than %d seccomp rules", MAX_RULES);
    return 0;
}

int plan_load_container(const char *path, struct ctr_plan *p)
{
    memset(p, 0, sizeof *p);
    proc_defaults(&p->proc);
    p->memory_limit = p->memory_swap = p->cpu_shares = p->cpu_quota = -2;
    p->cpu_period = p->pids_limit = -2;
    p->oom_score_adj = INT64_MIN;
    p->cgroup_version = 1;
    if (read_whole(path, &p->buf, &p->len) < 0) return -1;
    if (parse(p->buf, p->len, p, &p->proc) < 0) return -1;
    return check_container(p);
}

int plan_load_process(const char *path, struct proc_plan *p, char **buf)
{
    size_t len;
    proc_defaults(p);
    *buf = NULL;
    if (read_whole(path, buf, &len) < 0) return -1;
    return parse(*buf, len, NULL, p);
}

static void free_recs(struct recv *r)
{
    for (size_t i = 0; i < r->n; i++) free(r->v[i].f);
    free(r->v);
    r->v = NULL;
    r->n = 0;
}

void plan_free_process(struct proc_plan *p)
{
    struct strv *lists[] = { &p->args, &p->env, &p->gids, &p->cap_bounding, &p->cap_effective,
                             &p->cap_permitted, &p->cap_inheritable, &p->cap_ambient };
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) free(lists[i]->v);
    free_recs(&p->rlimits);
    memset(p, 0, sizeof *p);
}

void plan_free_container(struct ctr_plan *p)
{
    plan_free_process(&p->proc);
    struct recv *rs[] = { &p->rootfs_mounts, &p->mounts, &p->devices, &p->uid_maps,
                          &p->gid_maps, &p->seccomp_rules, &p->sysctls, &p->device_rules };
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) free_recs(rs[i]);
    free(p->masked.v);
    free(p->readonly.v);
    free(p->seccomp_archs.v);
    free(p->seccomp_default.f);
    free(p->buf);
}
