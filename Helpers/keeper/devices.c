/* devices.c - /dev inside the container when the spec mounts a tmpfs there: the six
 * devices the OCI runtime spec requires (config-linux.md "Default Devices"), the plan's
 * extra devices, /dev/ptmx pointing into the container's devpts instance (devpts.rst,
 * "newinstance") and the /dev/fd, stdin, stdout, stderr links runc and crun both make. */
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
#include <sys/sysmacros.h>
#include <unistd.h>
#include "keeper.h"

struct dev { const char *name; unsigned maj, min; };

static const struct dev defaults[] = {
    { "null", 1, 3 }, { "zero", 1, 5 }, { "full", 1, 7 },
    { "random", 1, 8 }, { "urandom", 1, 9 }, { "tty", 5, 0 },
};

static const char *const links[][2] = {
    { "/proc/self/fd", "fd" }, { "/proc/self/fd/0", "stdin" },
    { "/proc/self/fd/1", "stdout" }, { "/proc/self/fd/2", "stderr" },
    { "pts/ptmx", "ptmx" },
};

/** In a user namespace mknod(2) is refused (EPERM), so the host's node is bind-mounted
 *  onto an empty file instead, as runc does. */
static int bind_host_node(int dirfd, const char *name, const char *host, const char *shown)
{
    char at[32];
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) return kerr_set("create device file", shown, errno);
    close(fd);
    fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return kerr_set("open device file", shown, errno);
    fd_path(fd, at, sizeof at);
    int rc = mount(host, at, NULL, MS_BIND, NULL);
    int err = errno;
    close(fd);
    return rc < 0 ? kerr_set("bind device", shown, err) : 0;
}

/** One node: dirfd is its directory, already resolved inside the rootfs. */
struct node { const char *name, *host, *shown; mode_t type, perm; unsigned maj, min; uid_t uid; gid_t gid; };

static int make_node(int dirfd, const struct node *n, int userns)
{
    if (userns && n->host) return bind_host_node(dirfd, n->name, n->host, n->shown);
    unlinkat(dirfd, n->name, 0);
    if (mknodat(dirfd, n->name, n->type | n->perm, makedev(n->maj, n->min)) < 0) {
        if (errno == EPERM && n->host) return bind_host_node(dirfd, n->name, n->host, n->shown);
        return kerr_set("mknod", n->shown, errno);
    }
    /* mknod's mode is filtered by the umask; the spec's mode is meant exactly. */
    if (fchmodat(dirfd, n->name, n->perm, 0) < 0) return kerr_set("chmod device", n->shown, errno);
    if (fchownat(dirfd, n->name, n->uid, n->gid, AT_SYMLINK_NOFOLLOW) < 0) return kerr_set("chown device", n->shown, errno);
    return 0;
}

static int plan_device(const struct ctr_plan *p, const struct rec *r, int rootfd, int userns)
{
    int64_t maj, min, mode, uid, gid;
    char shown[PATH_MAX], dir[PATH_MAX];
    const char *t = r->f[1];
    mode_t type = !strcmp(t, "c") || !strcmp(t, "u") ? S_IFCHR : !strcmp(t, "b") ? S_IFBLK
                : !strcmp(t, "p") ? S_IFIFO : 0;
    if (!type || parse_i64(r->f[2], 0, 4095, &maj) || parse_i64(r->f[3], 0, 1048575, &min) ||
        parse_i64(r->f[4], 0, 07777, &mode) || parse_i64(r->f[5], 0, UINT32_MAX, &uid) ||
        parse_i64(r->f[6], 0, UINT32_MAX, &gid))
        return kerr_fmt("device: %s: bad type, number, mode or owner", r->f[0]);
    const char *slash = strrchr(r->f[0], '/');
    if (r->f[0][0] != '/' || !slash[1] || spf(dir, sizeof dir, "%.*s", (int)(slash - r->f[0]), r->f[0]) < 0)
        return kerr_fmt("device: %s: must be an absolute file path", r->f[0]);
    spf(shown, sizeof shown, "%s%s", p->rootfs, r->f[0]);
    int dirfd = open_in_root(rootfd, dir[0] ? dir : "/", ROOT_CREATE_DIR, "create device directory", shown);
    if (dirfd < 0) return -1;
    struct node n = { slash + 1, type == S_IFIFO ? NULL : r->f[0], shown, type, (mode_t)mode & 07777,
                      (unsigned)maj, (unsigned)min, (uid_t)uid, (gid_t)gid };
    int rc = make_node(dirfd, &n, userns);
    close(dirfd);
    return rc;
}

static int default_nodes(const struct ctr_plan *p, int devfd, int userns)
{
    char shown[PATH_MAX], host[64];
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        spf(shown, sizeof shown, "%s/dev/%s", p->rootfs, defaults[i].name);
        snprintf(host, sizeof host, "/dev/%s", defaults[i].name);
        struct node n = { defaults[i].name, host, shown, S_IFCHR, 0666, defaults[i].maj, defaults[i].min, 0, 0 };
        if (make_node(devfd, &n, userns) < 0) return -1;
    }
    return 0;
}

static int dev_links(const struct ctr_plan *p, int devfd)
{
    char shown[PATH_MAX];
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        spf(shown, sizeof shown, "%s/dev/%s", p->rootfs, links[i][1]);
        unlinkat(devfd, links[i][1], 0);
        if (symlinkat(links[i][0], devfd, links[i][1]) < 0) return kerr_set("symlink", shown, errno);
    }
    /* /dev/core only where the host has /proc/kcore, as runc does. */
    if (access("/proc/kcore", F_OK) == 0 && symlinkat("/proc/kcore", devfd, "core") < 0 && errno != EEXIST)
        return kerr_set("symlink", "/dev/core", errno);
    return 0;
}

int create_devices(const struct ctr_plan *p, int rootfd)
{
    char shown[PATH_MAX];
    int userns = p->ns_new[NS_USER];
    spf(shown, sizeof shown, "%s/dev", p->rootfs);
    int devfd = open_in_root(rootfd, "/dev", ROOT_CREATE_DIR, "create", shown);
    if (devfd < 0) return -1;
    int rc = default_nodes(p, devfd, userns);
    if (rc == 0) rc = dev_links(p, devfd);
    close(devfd);
    for (size_t i = 0; rc == 0 && i < p->devices.n; i++) rc = plan_device(p, &p->devices.v[i], rootfd, userns);
    return rc;
}
