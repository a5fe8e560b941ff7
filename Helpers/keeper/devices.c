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
static int bind_host_node(const char *host, const char *path)
{
    int fd = xopen(path, O_WRONLY | O_CREAT, 0644);
    if (fd < 0 && errno != EEXIST) return kerr_set("create device file", path, errno);
    xclose(&fd);
    if (mount(host, path, NULL, MS_BIND, NULL) < 0) return kerr_set("bind device", path, errno);
    return 0;
}

static int make_node(const char *path, mode_t type, unsigned maj, unsigned min, mode_t perm,
                     uid_t uid, gid_t gid, const char *host, int userns)
{
    if (userns && host) return bind_host_node(host, path);
    unlink(path);
    if (mknod(path, type | perm, makedev(maj, min)) < 0) {
        if (errno == EPERM && host) return bind_host_node(host, path);
        return kerr_set("mknod", path, errno);
    }
    /* mknod's mode is filtered by the umask; the spec's mode is meant exactly. */
    if (chmod(path, perm) < 0) return kerr_set("chmod device", path, errno);
    if (chown(path, uid, gid) < 0) return kerr_set("chown device", path, errno);
    return 0;
}

static int plan_device(const struct rec *r, const char *root, int userns)
{
    int64_t maj, min, mode, uid, gid;
    char path[PATH_MAX];
    const char *t = r->f[1];
    mode_t type = !strcmp(t, "c") || !strcmp(t, "u") ? S_IFCHR : !strcmp(t, "b") ? S_IFBLK
                : !strcmp(t, "p") ? S_IFIFO : 0;
    if (!type || parse_i64(r->f[2], 0, 4095, &maj) || parse_i64(r->f[3], 0, 1048575, &min) ||
        parse_i64(r->f[4], 0, 07777, &mode) || parse_i64(r->f[5], 0, UINT32_MAX, &uid) ||
        parse_i64(r->f[6], 0, UINT32_MAX, &gid))
        return kerr_fmt("device: %s: bad type, number, mode or owner", r->f[0]);
    if (r->f[0][0] != '/' || strstr(r->f[0], ".."))
        return kerr_fmt("device: %s: path must be absolute without \"..\"", r->f[0]);
    snprintf(path, sizeof path, "%s%s", root, r->f[0]);
    char *slash = strrchr(path, '/');
    *slash = 0;
    if (mkdir_p(path, 0755) < 0) return -1;
    *slash = '/';
    return make_node(path, type, (unsigned)maj, (unsigned)min, (mode_t)mode & 07777,
                     (uid_t)uid, (gid_t)gid, type == S_IFIFO ? NULL : r->f[0], userns);
}

int create_devices(const struct ctr_plan *p, const char *root)
{
    char path[PATH_MAX], host[64];
    int userns = p->ns_new[NS_USER];
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        snprintf(path, sizeof path, "%s/dev/%s", root, defaults[i].name);
        snprintf(host, sizeof host, "/dev/%s", defaults[i].name);
        if (make_node(path, S_IFCHR, defaults[i].maj, defaults[i].min, 0666, 0, 0, host, userns) < 0)
            return -1;
    }
    for (size_t i = 0; i < p->devices.n; i++)
        if (plan_device(&p->devices.v[i], root, userns) < 0) return -1;
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        snprintf(path, sizeof path, "%s/dev/%s", root, links[i][1]);
        unlink(path);
        if (symlink(links[i][0], path) < 0) return kerr_set("symlink", path, errno);
    }
    /* /dev/core only where the host has /proc/kcore, as runc does. */
    snprintf(path, sizeof path, "%s/dev/core", root);
    if (access("/proc/kcore", F_OK) == 0 && symlink("/proc/kcore", path) < 0 && errno != EEXIST)
        return kerr_set("symlink", path, errno);
    return 0;
}
