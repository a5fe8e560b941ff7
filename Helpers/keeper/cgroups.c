/* cgroups.c - the container's cgroups, v1 (one directory per hierarchy) or v2 (one
 * directory in the unified tree). Files and semantics: Documentation/admin-guide/cgroup-v1
 * (memory.rst, freezer-subsystem.rst, pids.rst, cpu CFS "sched-bwc.rst") and cgroup-v2.rst.
 * One container per keeper, so the state here is a file-scope singleton. Only directories
 * this keeper made are removed. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* SwiftPM does not pass -D_GNU_SOURCE */
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "keeper.h"

#define MAX_HIER 16

/** One directory of the container's cgroup. */
struct hier {
    char name[32];       /**< mount point's last component, e.g. "memory" or "cpu,cpuacct" */
    char ctrls[128];     /**< controllers bound to that hierarchy */
    char dir[512];       /**< the container's directory in it */
    int created;
};

static struct hier hiers[MAX_HIER];
static int nhier, version, oom_ctl_fd = -1;
static long long last_oom_kills;

/** v1 controllers the container joins; cpuset is left out because a new cpuset cgroup is
 *  empty (cpuset.cpus, cpuset.mems) and would refuse tasks. */
static const char *const v1_wanted[] = { "memory", "cpu", "cpuacct", "pids", "freezer", "blkio", "devices" };

static int has_ctrl(const char *list, const char *c)
{
    size_t n = strlen(c);
    for (const char *p = list; (p = strstr(p, c)); p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == 0)) return 1;
    return 0;
}

/** Fields 5 (mount point) and after " - ", fstype and super options (proc(5) mountinfo). */
static void add_v1_mount(char *line, const char *rel)
{
    char *sep = strstr(line, " - ");
    char mnt[256], fstype[32], src[64], opts[256];
    if (!sep || sscanf(line, "%*s %*s %*s %*s %255s", mnt) != 1) return;
    if (sscanf(sep + 3, "%31s %63s %255s", fstype, src, opts) != 3 || strcmp(fstype, "cgroup")) return;
    int want = 0;
    for (size_t i = 0; i < sizeof v1_wanted / sizeof v1_wanted[0]; i++) want |= has_ctrl(opts, v1_wanted[i]);
    if (!want || nhier >= MAX_HIER) return;
    struct hier *h = &hiers[nhier++];
    const char *base = strrchr(mnt, '/');
    spf(h->name, sizeof h->name, "%s", base ? base + 1 : mnt);
    spf(h->ctrls, sizeof h->ctrls, "%s", opts);
    snprintf(h->dir, sizeof h->dir, "%s/%s", mnt, rel);
}

static int find_v1(const char *rel)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f) return kerr_set("read mounts", "/proc/self/mountinfo", errno);
    char line[1024];
    while (fgets(line, sizeof line, f)) add_v1_mount(line, rel);
    fclose(f);
    if (!nhier) return kerr_fmt("cgroup: /proc/self/mountinfo: no cgroup v1 hierarchy mounted");
    return 0;
}

static struct hier *with_ctrl(const char *c)
{
    if (version == 2) return &hiers[0];
    for (int i = 0; i < nhier; i++) if (has_ctrl(hiers[i].ctrls, c)) return &hiers[i];
    return NULL;
}

static int knob(const char *ctrl, const char *file, const char *value)
{
    struct hier *h = with_ctrl(ctrl);
    char path[KPATH];
    if (!h) return kerr_fmt("cgroup: %s: controller not mounted", ctrl);
    snprintf(path, sizeof path, "%s/%s", h->dir, file);
    return write_file("write cgroup limit", path, value);
}

static int knob_num(const char *ctrl, const char *file, int64_t v)
{
    char s[32];
    if (v == -1) snprintf(s, sizeof s, version == 2 ? "max" : "-1");
    else snprintf(s, sizeof s, "%lld", (long long)v);
    return knob(ctrl, file, s);
}

static int limits_v1(const struct ctr_plan *p)
{
    if (p->memory_limit != -2 && knob_num("memory", "memory.limit_in_bytes", p->memory_limit) < 0) return -1;
    if (p->memory_swap != -2 && knob_num("memory", "memory.memsw.limit_in_bytes", p->memory_swap) < 0) return -1;
    if (p->cpu_shares != -2 && knob_num("cpu", "cpu.shares", p->cpu_shares) < 0) return -1;
    /* The period first: a quota is checked against the current period. */
    if (p->cpu_period != -2 && knob_num("cpu", "cpu.cfs_period_us", p->cpu_period) < 0) return -1;
    if (p->cpu_quota != -2 && knob_num("cpu", "cpu.cfs_quota_us", p->cpu_quota) < 0) return -1;
    if (p->pids_limit != -2) {
        if (p->pids_limit == -1) return knob("pids", "pids.max", "max");
        return knob_num("pids", "pids.max", p->pids_limit);
    }
    return 0;
}

/** cpu.shares (2..262144) to cpu.weight (1..10000): the linear map runc and crun use. */
static int64_t shares_to_weight(int64_t s)
{
    return 1 + ((s - 2) * 9999) / 262142;
}

/** v2 needs each controller enabled in every ancestor's cgroup.subtree_control. */
static void enable_v2(const char *root, const char *rel, const char *ctrl)
{
    char path[KPATH], plus[32];
    snprintf(path, sizeof path, "%s/", root);
    snprintf(plus, sizeof plus, "+%s", ctrl);
    for (const char *p = rel; ; ) {
        char sc[KPATH];
        if (spf(sc, sizeof sc, "%s/cgroup.subtree_control", path) < 0) return;
        int fd = xopen(sc, O_WRONLY, 0);
        if (fd >= 0) { if (write(fd, plus, strlen(plus)) < 0) { /* the limit write reports it */ } xclose(&fd); }
        const char *slash = strchr(p, '/');
        if (!slash) break;
        strncat(path, p, (size_t)(slash - p + 1));
        p = slash + 1;
    }
}

static int limits_v2(const struct ctr_plan *p, const char *root, const char *rel)
{
    char s[64];
    if (p->memory_limit != -2 || p->memory_swap != -2) enable_v2(root, rel, "memory");
    if (p->cpu_shares != -2 || p->cpu_quota != -2 || p->cpu_period != -2) enable_v2(root, rel, "cpu");
    if (p->pids_limit != -2) enable_v2(root, rel, "pids");
    if (p->memory_limit != -2 && knob_num("memory", "memory.max", p->memory_limit) < 0) return -1;
    if (p->memory_swap != -2 && knob_num("memory", "memory.swap.max", p->memory_swap) < 0) return -1;
    if (p->cpu_shares != -2 && knob_num("cpu", "cpu.weight", shares_to_weight(p->cpu_shares)) < 0) return -1;
    if (p->cpu_quota != -2 || p->cpu_period != -2) {
        int64_t per = p->cpu_period > 0 ? p->cpu_period : 100000;
        if (p->cpu_quota > 0) snprintf(s, sizeof s, "%lld %lld", (long long)p->cpu_quota, (long long)per);
        else snprintf(s, sizeof s, "max %lld", (long long)per);
        if (knob("cpu", "cpu.max", s) < 0) return -1;
    }
    if (p->pids_limit != -2 && knob_num("pids", "pids.max", p->pids_limit) < 0) return -1;
    return 0;
}

static int make_dirs(void)
{
    for (int i = 0; i < nhier; i++) {
        struct stat st;
        if (stat(hiers[i].dir, &st) == 0) return kerr_set("create cgroup", hiers[i].dir, EEXIST);
        if (mkdir_p(hiers[i].dir, 0755) < 0) return -1;
        hiers[i].created = 1;
    }
    return 0;
}

/** Fills hiers[] with the container's directories (nothing is created). */
static int locate(const struct ctr_plan *p, const char **rel, const char **root)
{
    *rel = p->cgroup_path;
    while (**rel == '/') (*rel)++;
    if (!**rel || strstr(*rel, ".."))
        return kerr_fmt("cgroup: %s: must be a relative path without \"..\"", p->cgroup_path);
    version = p->cgroup_version;
    *root = p->cgroup_root ? p->cgroup_root : "/sys/fs/cgroup";
    if (version == 1) return find_v1(*rel);
    nhier = 1;
    snprintf(hiers[0].name, sizeof hiers[0].name, "unified");
    if (spf(hiers[0].dir, sizeof hiers[0].dir, "%s/%s", *root, *rel) < 0)
        return kerr_set("cgroup", *rel, ENAMETOOLONG);
    return 0;
}

int cgroup_create(const struct ctr_plan *p)
{
    const char *rel = NULL, *root = NULL;
    if (!p->cgroup_path) return 0;
    if (locate(p, &rel, &root) < 0) return -1;
    int rc = make_dirs();
    if (rc == 0) rc = version == 2 ? limits_v2(p, root, rel) : limits_v1(p);
    if (rc < 0) {
        char keep[sizeof kerr];
        memcpy(keep, kerr, sizeof keep);
        cgroup_remove();
        memcpy(kerr, keep, sizeof kerr);
    }
    return rc;
}

int cgroup_use_existing(const struct ctr_plan *p)
{
    const char *rel = NULL, *root = NULL;
    return p->cgroup_path ? locate(p, &rel, &root) : 0;
}

int cgroup_enabled(void) { return nhier > 0; }

/** device_rule allow|deny TYPE MAJOR MINOR ACCESS -> "TYPE MAJOR:MINOR ACCESS" in
 *  devices.allow or devices.deny, in plan order (cgroup-v1/devices.rst); on v2 a device
 *  program (devices_bpf.c). Applied after the init made its /dev nodes, as runc sets
 *  resources after the rootfs is ready. */
int cgroup_devices(const struct ctr_plan *p)
{
    char line[128];
    if (!p->device_rules.n || !nhier) return 0;
    if (version == 2) return devices_bpf_attach(hiers[0].dir, &p->device_rules);
    for (size_t i = 0; i < p->device_rules.n; i++) {
        char *const *f = p->device_rules.v[i].f;
        int allow = !strcmp(f[0], "allow");
        if ((!allow && strcmp(f[0], "deny")) || strspn(f[1], "acb") != 1 || f[1][1] ||
            strspn(f[4], "rwm") != strlen(f[4]) || !f[4][0])
            return kerr_fmt("device_rule: %s %s %s %s %s: bad rule", f[0], f[1], f[2], f[3], f[4]);
        snprintf(line, sizeof line, "%s %s:%s %s", f[1], f[2][0] ? f[2] : "*", f[3][0] ? f[3] : "*", f[4]);
        if (knob("devices", allow ? "devices.allow" : "devices.deny", line) < 0) return -1;
    }
    return 0;
}

/* Moving a process into a v1 cgroup through cgroup.procs takes the kernel's global lock on
 * thread-group changes, whose first writer waits for an RCU grace period: 6-20 ms here, once
 * per container. A single-threaded process moving itself through `tasks` ("0") skips that
 * lock (0.3 ms measured). Children of the keeper are single-threaded, so on v1 they join
 * themselves right after GO, unless they live in a user namespace, where host cgroup files
 * may not be writable to them. */
int cgroup_joins_itself(const struct ctr_plan *c)
{
    return version == 1 && nhier > 0 && !c->ns_new[NS_USER] && !c->ns_path[NS_USER];
}

static int self_fds[MAX_HIER];
static int nself = -1;

/** Opens the `tasks` files for cgroup_add_self while their host paths still resolve: an
 *  exec process enters the container's mount namespace before GO. */
int cgroup_prepare_self(void)
{
    char path[KPATH];
    for (nself = 0; nself < nhier; nself++) {
        snprintf(path, sizeof path, "%s/tasks", hiers[nself].dir);
        if ((self_fds[nself] = xopen(path, O_WRONLY | O_CLOEXEC, 0)) < 0) return kerr_set("join cgroup", path, errno);
    }
    return 0;
}

int cgroup_add_self(void)
{
    if (nself < 0 && cgroup_prepare_self() < 0) return -1;
    for (int i = 0; i < nself; i++) {
        if (xwrite_all(self_fds[i], "0", 1) < 0) return kerr_set("join cgroup", hiers[i].dir, errno);
        xclose(&self_fds[i]);
    }
    return 0;
}

int cgroup_add(pid_t pid)
{
    char path[KPATH], s[32];
    snprintf(s, sizeof s, "%d", (int)pid);
    for (int i = 0; i < nhier; i++) {
        snprintf(path, sizeof path, "%s/cgroup.procs", hiers[i].dir);
        if (write_file("join cgroup", path, s) < 0) return -1;
    }
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { 0, ms * 1000000L };
    nanosleep(&ts, NULL);
}

int cgroup_frozen(void)
{
    char path[KPATH], buf[256];
    struct hier *h = with_ctrl("freezer");
    if (!h) return 0;
    if (version == 2) {
        snprintf(path, sizeof path, "%s/cgroup.events", h->dir);
        return read_file(path, buf, sizeof buf) > 0 && strstr(buf, "frozen 1") != NULL;
    }
    snprintf(path, sizeof path, "%s/freezer.state", h->dir);
    return read_file(path, buf, sizeof buf) > 0 && !strncmp(buf, "FROZEN", 6);
}

/** Freezing is asynchronous in both versions: the state file says when it is done. */
int cgroup_freeze(int frozen)
{
    struct hier *h = with_ctrl("freezer");
    char path[KPATH];
    if (!h) return kerr_fmt("freeze: container has no freezer cgroup");
    if (version == 2) snprintf(path, sizeof path, "%s/cgroup.freeze", h->dir);
    else snprintf(path, sizeof path, "%s/freezer.state", h->dir);
    const char *v = version == 2 ? (frozen ? "1" : "0") : (frozen ? "FROZEN" : "THAWED");
    for (int i = 0; i < 2000; i++) {
        if (write_file(frozen ? "freeze" : "thaw", path, v) < 0) return -1;
        if (cgroup_frozen() == frozen) return 0;
        sleep_ms(1);
    }
    return kerr_fmt("%s: %s: did not reach the state in 2 s", frozen ? "freeze" : "thaw", path);
}

int cgroup_pids(pid_t *pids, int max)
{
    char path[KPATH];
    if (!nhier) return 0;
    struct hier *h = with_ctrl("freezer") ? with_ctrl("freezer") : &hiers[0];
    snprintf(path, sizeof path, "%s/cgroup.procs", h->dir);
    FILE *f = fopen(path, "re");
    if (!f) return kerr_set("read cgroup", path, errno);
    int n = 0, v;
    while (n < max && fscanf(f, "%d", &v) == 1) pids[n++] = v;
    fclose(f);
    return n;
}

int cgroup_remove(void)
{
    int rc = 0;
    xclose(&oom_ctl_fd);
    for (int i = 0; i < nhier; i++) {
        if (!hiers[i].created) continue;
        /* rmdir fails with EBUSY until the last task is gone, which lags the kill a bit. */
        int tries = 0, gone = 1;
        while (rmdir(hiers[i].dir) < 0 && errno != ENOENT) {
            if (errno != EBUSY || ++tries > 500) { rc = kerr_set("remove cgroup", hiers[i].dir, errno); gone = 0; break; }
            sleep_ms(4);
        }
        if (gone) hiers[i].created = 0;  /* else a later DELETE tries again */
    }
    return rc;
}

static int oom_fd_v1(void)
{
    struct hier *h = with_ctrl("memory");
    char path[KPATH], ctl[KPATH], line[64];
    if (!h) return -1;
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    snprintf(path, sizeof path, "%s/memory.oom_control", h->dir);
    oom_ctl_fd = xopen(path, O_RDONLY, 0);
    snprintf(ctl, sizeof ctl, "%s/cgroup.event_control", h->dir);
    snprintf(line, sizeof line, "%d %d", efd, oom_ctl_fd);
    if (efd < 0 || oom_ctl_fd < 0 || write_file("oom notification", ctl, line) < 0) {
        if (efd >= 0) close(efd);
        xclose(&oom_ctl_fd);
        return -1;
    }
    return efd;
}

static long long oom_kills_v2(void)
{
    char path[KPATH], buf[512];
    snprintf(path, sizeof path, "%s/memory.events", hiers[0].dir);
    if (read_file(path, buf, sizeof buf) <= 0) return 0;
    char *p = strstr(buf, "oom_kill ");
    return p ? atoll(p + 9) : 0;
}

int cgroup_oom_fd(void)
{
    if (!nhier) return -1;
    if (version == 1) return oom_fd_v1();
    char path[KPATH];
    snprintf(path, sizeof path, "%s/memory.events", hiers[0].dir);
    if (access(path, F_OK) < 0) return -1;
    int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (fd >= 0 && inotify_add_watch(fd, path, IN_MODIFY) < 0) { close(fd); return -1; }
    last_oom_kills = oom_kills_v2();
    return fd;
}

int cgroup_oom_check(int fd)
{
    char buf[4096];
    if (version == 1) {
        uint64_t n;
        return xread(fd, &n, sizeof n) == sizeof n;
    }
    while (xread(fd, buf, sizeof buf) > 0) {}
    long long k = oom_kills_v2();
    int hit = k > last_oom_kills;
    last_oom_kills = k;
    return hit;
}

int cgroup_v1_paths(char names[][32], char paths[][512], int max)
{
    int n = 0;
    for (int i = 0; i < nhier && n < max; i++, n++) {
        memcpy(names[n], hiers[i].name, 32);
        memcpy(paths[n], hiers[i].dir, 512);
    }
    return n;
}
