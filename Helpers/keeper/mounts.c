/* mounts.c - the container's filesystem, run by the init inside its new mount namespace:
 * make everything private, mount the rootfs, the spec's mounts, devices, pivot_root, then
 * masked and read-only paths. Order as the OCI runtime spec (config.md "Mounts") and runc
 * do it: mounts in the listed order, devices after the mounts, masks after pivot_root. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* SwiftPM does not pass -D_GNU_SOURCE */
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "keeper.h"

/** An OCI mount option that maps to a flag (mount(8) FILESYSTEM-INDEPENDENT MOUNT OPTIONS). */
struct opt { const char *name; unsigned long flag; int clear; int propagation; };

static const struct opt opts[] = {
    { "ro", MS_RDONLY, 0, 0 }, { "rw", MS_RDONLY, 1, 0 },
    { "nosuid", MS_NOSUID, 0, 0 }, { "suid", MS_NOSUID, 1, 0 },
    { "nodev", MS_NODEV, 0, 0 }, { "dev", MS_NODEV, 1, 0 },
    { "noexec", MS_NOEXEC, 0, 0 }, { "exec", MS_NOEXEC, 1, 0 },
    { "sync", MS_SYNCHRONOUS, 0, 0 }, { "async", MS_SYNCHRONOUS, 1, 0 },
    { "dirsync", MS_DIRSYNC, 0, 0 }, { "remount", MS_REMOUNT, 0, 0 },
    { "mand", MS_MANDLOCK, 0, 0 }, { "nomand", MS_MANDLOCK, 1, 0 },
    { "atime", MS_NOATIME, 1, 0 }, { "noatime", MS_NOATIME, 0, 0 },
    { "diratime", MS_NODIRATIME, 1, 0 }, { "nodiratime", MS_NODIRATIME, 0, 0 },
    { "relatime", MS_RELATIME, 0, 0 }, { "norelatime", MS_RELATIME, 1, 0 },
    { "strictatime", MS_STRICTATIME, 0, 0 }, { "nostrictatime", MS_STRICTATIME, 1, 0 },
    { "nosymfollow", MS_NOSYMFOLLOW, 0, 0 }, { "symfollow", MS_NOSYMFOLLOW, 1, 0 },
    { "bind", MS_BIND, 0, 0 }, { "rbind", MS_BIND | MS_REC, 0, 0 },
    { "private", MS_PRIVATE, 0, 1 }, { "rprivate", MS_PRIVATE | MS_REC, 0, 1 },
    { "shared", MS_SHARED, 0, 1 }, { "rshared", MS_SHARED | MS_REC, 0, 1 },
    { "slave", MS_SLAVE, 0, 1 }, { "rslave", MS_SLAVE | MS_REC, 0, 1 },
    { "unbindable", MS_UNBINDABLE, 0, 1 }, { "runbindable", MS_UNBINDABLE | MS_REC, 0, 1 },
};

/** A mount record's options split into flags, propagation and filesystem data. */
struct mopts { unsigned long flags, prop; char data[1024]; };

static int parse_opts(char *const *o, size_t n, struct mopts *m, const char *dest)
{
    memset(m, 0, sizeof *m);
    for (size_t i = 0; i < n; i++) {
        size_t j;
        for (j = 0; j < sizeof opts / sizeof opts[0]; j++)
            if (!strcmp(o[i], opts[j].name)) break;
        if (j < sizeof opts / sizeof opts[0]) {
            const struct opt *x = &opts[j];
            if (x->propagation) m->prop |= x->flag;
            else if (x->clear) m->flags &= ~x->flag;
            else m->flags |= x->flag;
            continue;
        }
        size_t used = strlen(m->data);
        if (used + strlen(o[i]) + 2 > sizeof m->data)
            return kerr_fmt("mount options: %s: data longer than %zu bytes", dest, sizeof m->data);
        if (used) strcat(m->data, ",");
        strcat(m->data, o[i]);
    }
    return 0;
}

/** A mount destination: its name for error lines and an O_PATH fd resolved in the root. */
struct dest {
    char shown[PATH_MAX];   /**< ROOTFS/DEST, for error lines */
    char at[32];            /**< /proc/self/fd/N, for mount(2) */
    int fd;
};

static int dest_open(struct dest *d, int rootfd, const char *root, const char *path, int create)
{
    if (path[0] != '/') return kerr_fmt("mount: %s: destination must be absolute", path);
    if (spf(d->shown, sizeof d->shown, "%s%s", root, path) < 0) return kerr_set("mount", path, ENAMETOOLONG);
    d->fd = open_in_root(rootfd, path, create, "create mount point", d->shown);
    if (d->fd < 0) return -1;
    fd_path(d->fd, d->at, sizeof d->at);
    return 0;
}

/** After a mount, the old fd still names the directory underneath; remounts and
 *  propagation changes must reach the new mount, so the path is resolved again. */
static int dest_reopen(struct dest *d, int rootfd, const char *path)
{
    xclose(&d->fd);
    d->fd = open_in_root(rootfd, path, ROOT_NO_CREATE, "reopen mount point", d->shown);
    if (d->fd < 0) return -1;
    fd_path(d->fd, d->at, sizeof d->at);
    return 0;
}

/** mount(2) with an error line "mount TYPE on TARGET: reason" (step and path in one). */
static int do_mount(const char *src, const char *target, const char *shown, const char *type,
                    unsigned long fl, const char *data)
{
    if (mount(src, target, type, fl, data && *data ? data : NULL) == 0) return 0;
    int err = errno;
    return kerr_fmt("mount %s on %s: %s", type ? type : (fl & MS_BIND ? "bind" : "-"), shown, errno_text(err));
}

/** A bind mount takes its flags only on a remount (mount(2): "Creating a bind mount"). */
static int bind_mount(const char *src, struct dest *d, int rootfd, const char *path, const struct mopts *m)
{
    if (do_mount(src, d->at, d->shown, NULL, MS_BIND | (m->flags & MS_REC), NULL) < 0) return -1;
    unsigned long extra = m->flags & ~(MS_BIND | MS_REC | MS_REMOUNT);
    if (!extra) return 0;
    if (dest_reopen(d, rootfd, path) < 0) return -1;
    if (mount(NULL, d->at, NULL, MS_BIND | MS_REMOUNT | extra, NULL) < 0)
        return kerr_set("remount bind", d->shown, errno);
    return 0;
}

static int set_propagation(struct dest *d, int rootfd, const char *path, unsigned long prop)
{
    if (!prop) return 0;
    if (dest_reopen(d, rootfd, path) < 0) return -1;
    if (mount(NULL, d->at, NULL, prop, NULL) < 0) return kerr_set("set mount propagation", d->shown, errno);
    return 0;
}

/** type cgroup: the container's own cgroup directories, read-only if asked. */
static int mount_cgroup(const struct ctr_plan *p, int rootfd, const char *path, struct dest *d,
                        const struct mopts *m)
{
    if (p->cgroup_version == 2) return do_mount("cgroup2", d->at, d->shown, "cgroup2", m->flags, NULL);
    char names[16][32], paths[16][512], sub[PATH_MAX];
    int n = cgroup_v1_paths(names, paths, 16);
    if (do_mount("tmpfs", d->at, d->shown, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755") < 0) return -1;
    for (int i = 0; i < n; i++) {
        struct dest s;
        if (spf(sub, sizeof sub, "%s/%s", path, names[i]) < 0) return kerr_set("mount cgroup", path, ENAMETOOLONG);
        if (dest_open(&s, rootfd, p->rootfs, sub, ROOT_CREATE_DIR) < 0) return -1;
        struct mopts b = *m;
        b.flags |= MS_NOSUID | MS_NODEV | MS_NOEXEC;
        int rc = bind_mount(paths[i], &s, rootfd, sub, &b);
        xclose(&s.fd);
        if (rc < 0) return -1;
    }
    /* The tmpfs itself becomes read-only last, as the bind mounts live under it. */
    if (!(m->flags & MS_RDONLY)) return 0;
    if (dest_reopen(d, rootfd, path) < 0) return -1;
    if (mount(NULL, d->at, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        return kerr_set("remount cgroup tmpfs read-only", d->shown, errno);
    return 0;
}

static int is_file(const char *src)
{
    struct stat st;
    return stat(src, &st) == 0 && !S_ISDIR(st.st_mode);
}

static int mount_one(const struct ctr_plan *p, const struct rec *r, int rootfd)
{
    const char *path = r->f[0], *type = r->f[1], *src = r->f[2];
    struct mopts m;
    struct dest d;
    if (parse_opts(r->f + 3, r->n - 3, &m, path) < 0) return -1;
    int bind = (m.flags & MS_BIND) || !strcmp(type, "bind");
    if (dest_open(&d, rootfd, p->rootfs, path, bind && is_file(src) ? ROOT_CREATE_FILE : ROOT_CREATE_DIR) < 0)
        return -1;
    int rc;
    if (bind) rc = bind_mount(src, &d, rootfd, path, &m);
    else if (!strcmp(type, "cgroup")) rc = mount_cgroup(p, rootfd, path, &d, &m);
    else rc = do_mount(src, d.at, d.shown, type, m.flags, m.data);
    if (rc == 0) rc = set_propagation(&d, rootfd, path, m.prop);
    xclose(&d.fd);
    return rc;
}

/** The rootfs mounts (overlay or bind) go on the rootfs directory itself. */
static int mount_rootfs_layers(const struct ctr_plan *p)
{
    for (size_t i = 0; i < p->rootfs_mounts.n; i++) {
        const struct rec *r = &p->rootfs_mounts.v[i];
        struct mopts m;
        if (parse_opts(r->f + 2, r->n - 2, &m, p->rootfs) < 0) return -1;
        int bind = !strcmp(r->f[0], "bind") || (m.flags & MS_BIND);
        int rc = bind ? do_mount(r->f[1], p->rootfs, p->rootfs, NULL, MS_BIND | MS_REC, NULL)
                      : do_mount(r->f[1], p->rootfs, p->rootfs, r->f[0], m.flags, m.data);
        if (rc < 0) return -1;
    }
    return 0;
}

/* pivot_root(2) has no glibc wrapper. */
static int pivot_root(const char *new_root, const char *put_old)
{
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}

/** pivot_root(".", ".") then detach the old root: pivot_root(2) NOTES describe this form,
 *  which needs no directory for the old root inside the container. */
static int enter_root(const char *root)
{
    if (chdir(root) < 0) return kerr_set("chdir to rootfs", root, errno);
    if (pivot_root(".", ".") < 0) return kerr_set("pivot_root", root, errno);
    if (umount2(".", MNT_DETACH) < 0) return kerr_set("detach old root", root, errno);
    if (chdir("/") < 0) return kerr_set("chdir", "/", errno);
    return 0;
}

/** /dev gets the default nodes unless the spec bind-mounts it from somewhere (then it is
 *  someone else's /dev): the rule runc applies. */
static int dev_is_bind(const struct ctr_plan *p)
{
    for (size_t i = 0; i < p->mounts.n; i++) {
        const struct rec *r = &p->mounts.v[i];
        if (strcmp(r->f[0], "/dev") && strcmp(r->f[0], "/dev/")) continue;
        if (!strcmp(r->f[1], "bind")) return 1;
        for (size_t j = 3; j < r->n; j++)
            if (!strcmp(r->f[j], "bind") || !strcmp(r->f[j], "rbind")) return 1;
    }
    return 0;
}

int setup_rootfs(const struct ctr_plan *p)
{
    /* Private first so nothing the container mounts propagates to the host, and the host's
     * later mounts do not appear inside (mount_namespaces(7) "Shared subtrees"). */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return kerr_set("make mounts private", "/", errno);
    if (mount_rootfs_layers(p) < 0) return -1;
    /* pivot_root(2) needs new_root to be a mount point. */
    if (do_mount(p->rootfs, p->rootfs, p->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0) return -1;
    /* Opened after the bind, so paths resolved from it are on the new mount. */
    int rootfd = xopen(p->rootfs, O_PATH | O_DIRECTORY, 0);
    if (rootfd < 0) return kerr_set("open rootfs", p->rootfs, errno);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < p->mounts.n; i++) rc = mount_one(p, &p->mounts.v[i], rootfd);
    if (rc == 0 && !dev_is_bind(p)) rc = create_devices(p, rootfd);
    close(rootfd);
    return rc < 0 ? -1 : enter_root(p->rootfs);
}

/** Masks: /dev/null over a file, an empty read-only tmpfs over a directory; a path that
 *  does not exist needs no mask (runc and crun both skip it). */
static int mask_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) return errno == ENOENT ? 0 : kerr_set("mask", path, errno);
    if (S_ISDIR(st.st_mode)) {
        if (mount("tmpfs", path, "tmpfs", MS_RDONLY, NULL) < 0) return kerr_set("mask", path, errno);
    } else if (mount("/dev/null", path, NULL, MS_BIND, NULL) < 0) {
        return kerr_set("mask", path, errno);
    }
    return 0;
}

/** The flags a mount already has, so a remount keeps them: in a user namespace a remount
 *  that would clear a locked flag fails with EPERM (mount(2) EPERM, mount_namespaces(7)). */
static unsigned long current_flags(const char *path)
{
    struct statvfs sv;
    if (statvfs(path, &sv) < 0) return 0;
    unsigned long f = 0;
    if (sv.f_flag & ST_NOSUID) f |= MS_NOSUID;
    if (sv.f_flag & ST_NODEV) f |= MS_NODEV;
    if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
    if (sv.f_flag & ST_NOATIME) f |= MS_NOATIME;
    if (sv.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
    if (sv.f_flag & ST_RELATIME) f |= MS_RELATIME;
    return f;
}

static int readonly_path(const char *path)
{
    if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0)
        return errno == ENOENT ? 0 : kerr_set("bind read-only path", path, errno);
    unsigned long fl = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC | current_flags(path);
    if (mount(NULL, path, NULL, fl, NULL) < 0) return kerr_set("remount read-only path", path, errno);
    return 0;
}

/** net.ipv4.ip_forward -> /proc/sys/net/ipv4/ip_forward (sysctl(8)); written before the
 *  read-only paths make /proc/sys read-only, as runc orders it. */
static int apply_sysctls(const struct ctr_plan *p)
{
    char path[PATH_MAX];
    for (size_t i = 0; i < p->sysctls.n; i++) {
        const char *key = p->sysctls.v[i].f[0];
        if (strchr(key, '/') || !*key) return kerr_fmt("sysctl: %s: not a sysctl name", key);
        if (spf(path, sizeof path, "/proc/sys/%s", key) < 0) return kerr_set("sysctl", key, ENAMETOOLONG);
        for (char *c = path + 10; *c; c++) if (*c == '.') *c = '/';
        if (write_file("sysctl", path, p->sysctls.v[i].f[1]) < 0) return -1;
    }
    return 0;
}

int finish_rootfs(const struct ctr_plan *p)
{
    if (apply_sysctls(p) < 0) return -1;
    for (size_t i = 0; i < p->readonly.n; i++)
        if (readonly_path(p->readonly.v[i]) < 0) return -1;
    for (size_t i = 0; i < p->masked.n; i++)
        if (mask_path(p->masked.v[i]) < 0) return -1;
    if (p->readonly_rootfs &&
        mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | current_flags("/"), NULL) < 0)
        return kerr_set("remount rootfs read-only", "/", errno);
    return 0;
}
