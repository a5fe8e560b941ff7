/* caps.c - user switch and capability sets through libcap, in the order capabilities(7)
 * requires: drop the bounding set while CAP_SETPCAP is still held, keep the permitted set
 * across setuid (PR_SET_KEEPCAPS, prctl(2)), set effective/permitted/inheritable, then the
 * ambient set, which needs each capability in permitted and inheritable first. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* SwiftPM does not pass -D_GNU_SOURCE */
#endif
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>
#include "keeper.h"

/** CAP_CHOWN -> its number; libcap's names are lower case. */
static int cap_number(const char *name, cap_value_t *out)
{
    char low[64];
    size_t i;
    for (i = 0; name[i] && i + 1 < sizeof low; i++) low[i] = (char)tolower((unsigned char)name[i]);
    low[i] = 0;
    if (cap_from_name(low, out) < 0) return kerr_fmt("capabilities: %s: unknown capability", name);
    return 0;
}

static int in_list(const struct strv *l, cap_value_t c)
{
    for (size_t i = 0; i < l->n; i++) {
        cap_value_t v;
        if (cap_number(l->v[i], &v) == 0 && v == c) return 1;
    }
    return 0;
}

static int check_names(const struct proc_plan *p)
{
    const struct strv *sets[] = { &p->cap_bounding, &p->cap_effective, &p->cap_permitted,
                                  &p->cap_inheritable, &p->cap_ambient };
    cap_value_t v;
    for (size_t s = 0; s < 5; s++)
        for (size_t i = 0; i < sets[s]->n; i++)
            if (cap_number(sets[s]->v[i], &v) < 0) return -1;
    return 0;
}

static int drop_bounding(const struct proc_plan *p)
{
    int max = (int)cap_max_bits();
    for (cap_value_t c = 0; c < max; c++) {
        if (in_list(&p->cap_bounding, c)) continue;
        if (cap_drop_bound(c) < 0 && errno != EINVAL)
            return kerr_set("drop bounding capability", cap_to_name(c), errno);
    }
    return 0;
}

static int switch_user(const struct proc_plan *p)
{
    gid_t gids[256];
    size_t n = 0;
    for (; n < p->gids.n && n < 256; n++) {
        int64_t v;
        if (parse_i64(p->gids.v[n], 0, UINT32_MAX - 1, &v) < 0)
            return kerr_fmt("user: additional gid %s: not a number", p->gids.v[n]);
        gids[n] = (gid_t)v;
    }
    char what[64];
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) return kerr_set("prctl", "PR_SET_KEEPCAPS", errno);
    /* setgroups(2) may be denied in a user namespace without a gid map for them; an empty
     * list is then not worth failing for. */
    if (setgroups(n, gids) < 0 && !(errno == EPERM && n == 0))
        return kerr_set("setgroups", "additional gids", errno);
    snprintf(what, sizeof what, "gid %u", (unsigned)p->gid);
    if (setresgid(p->gid, p->gid, p->gid) < 0) return kerr_set("setresgid", what, errno);
    snprintf(what, sizeof what, "uid %u", (unsigned)p->uid);
    if (setresuid(p->uid, p->uid, p->uid) < 0) return kerr_set("setresuid", what, errno);
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) return kerr_set("prctl", "PR_SET_KEEPCAPS", errno);
    return 0;
}

static int add_set(cap_t caps, cap_flag_t flag, const struct strv *l)
{
    for (size_t i = 0; i < l->n; i++) {
        cap_value_t v;
        if (cap_number(l->v[i], &v) < 0) return -1;
        if (cap_set_flag(caps, flag, 1, &v, CAP_SET) < 0) return kerr_set("cap_set_flag", l->v[i], errno);
    }
    return 0;
}

static int set_process_caps(const struct proc_plan *p)
{
    cap_t caps = cap_init();
    if (!caps) return kerr_set("cap_init", "capabilities", errno);
    int rc = add_set(caps, CAP_EFFECTIVE, &p->cap_effective);
    if (rc == 0) rc = add_set(caps, CAP_PERMITTED, &p->cap_permitted);
    if (rc == 0) rc = add_set(caps, CAP_INHERITABLE, &p->cap_inheritable);
    if (rc == 0 && cap_set_proc(caps) < 0) rc = kerr_set("cap_set_proc", "effective/permitted/inheritable", errno);
    cap_free(caps);
    return rc;
}

static int set_ambient(const struct proc_plan *p)
{
    if (cap_reset_ambient() < 0 && errno != EINVAL) return kerr_set("cap_reset_ambient", "ambient", errno);
    for (size_t i = 0; i < p->cap_ambient.n; i++) {
        cap_value_t v;
        if (cap_number(p->cap_ambient.v[i], &v) < 0) return -1;
        if (cap_set_ambient(v, CAP_SET) < 0) return kerr_set("cap_set_ambient", p->cap_ambient.v[i], errno);
    }
    return 0;
}

int apply_user_and_caps(const struct proc_plan *p)
{
    if (check_names(p) < 0 || drop_bounding(p) < 0 || switch_user(p) < 0) return -1;
    if (set_process_caps(p) < 0) return -1;
    return set_ambient(p);
}

/** RLIMIT_ names of setrlimit(2). */
static const struct { const char *name; int res; } rlimits[] = {
    { "RLIMIT_AS", RLIMIT_AS }, { "RLIMIT_CORE", RLIMIT_CORE }, { "RLIMIT_CPU", RLIMIT_CPU },
    { "RLIMIT_DATA", RLIMIT_DATA }, { "RLIMIT_FSIZE", RLIMIT_FSIZE },
    { "RLIMIT_LOCKS", RLIMIT_LOCKS }, { "RLIMIT_MEMLOCK", RLIMIT_MEMLOCK },
    { "RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE }, { "RLIMIT_NICE", RLIMIT_NICE },
    { "RLIMIT_NOFILE", RLIMIT_NOFILE }, { "RLIMIT_NPROC", RLIMIT_NPROC },
    { "RLIMIT_RSS", RLIMIT_RSS }, { "RLIMIT_RTPRIO", RLIMIT_RTPRIO },
    { "RLIMIT_RTTIME", RLIMIT_RTTIME }, { "RLIMIT_SIGPENDING", RLIMIT_SIGPENDING },
    { "RLIMIT_STACK", RLIMIT_STACK },
};

static int parse_limit(const char *s, rlim_t *out)
{
    if (!strcmp(s, "-1") || !strcmp(s, "18446744073709551615")) { *out = RLIM_INFINITY; return 0; }
    int64_t v;
    if (parse_i64(s, 0, INT64_MAX, &v) < 0) return -1;
    *out = (rlim_t)v;
    return 0;
}

int apply_rlimits(const struct proc_plan *p)
{
    for (size_t i = 0; i < p->rlimits.n; i++) {
        const struct rec *r = &p->rlimits.v[i];
        size_t j;
        for (j = 0; j < sizeof rlimits / sizeof rlimits[0]; j++)
            if (!strcmp(rlimits[j].name, r->f[0])) break;
        struct rlimit rl;
        if (j == sizeof rlimits / sizeof rlimits[0] || parse_limit(r->f[1], &rl.rlim_cur) ||
            parse_limit(r->f[2], &rl.rlim_max))
            return kerr_fmt("setrlimit: %s: unknown resource or bad value", r->f[0]);
        if (setrlimit(rlimits[j].res, &rl) < 0) return kerr_set("setrlimit", r->f[0], errno);
    }
    return 0;
}
