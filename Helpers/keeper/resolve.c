/* resolve.c - paths inside the container's rootfs, resolved before pivot_root as if the
 * rootfs were "/": openat2(2) with RESOLVE_IN_ROOT makes "..", absolute symlinks and
 * relative ones that climb out all stay below the rootfs, so a hostile image cannot point
 * a mount or a device node at a host path with a symlink. Missing directories (and, for a
 * bind mount of a file, the final file) are created one component at a time, each relative
 * to an fd that was itself resolved in the root. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* SwiftPM does not pass -D_GNU_SOURCE */
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "keeper.h"

/* openat2(2) has no glibc wrapper in glibc 2.36. */
static int openat2_in_root(int rootfd, const char *rel, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    int fd;
    do fd = (int)syscall(SYS_openat2, rootfd, rel[0] ? rel : ".", &how, sizeof how);
    while (fd < 0 && (errno == EINTR || errno == EAGAIN));
    return fd;
}

/** Opens the parent of the last component of prefix (resolved in the root); *name is set
 *  to that last component. */
static int open_parent(int rootfd, char *prefix, const char **name)
{
    char *slash = strrchr(prefix, '/');
    *name = slash ? slash + 1 : prefix;
    if (!slash) return fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
    *slash = 0;
    int fd = openat2_in_root(rootfd, prefix, O_PATH | O_DIRECTORY);
    *slash = '/';
    return fd;
}

/** A dangling symlink on the way: the path continues at its target, still inside the
 *  root; rel becomes target + the rest. 1 if rewritten, 0 if not a symlink. */
static int follow_dangling(int parent, const char *name, char *rel, const char *rest)
{
    char link[PATH_MAX], out[PATH_MAX];
    ssize_t n = readlinkat(parent, name, link, sizeof link - 1);
    if (n < 0) return 0;
    link[n] = 0;
    size_t dirlen = (size_t)(name - rel);
    int r = link[0] == '/' ? spf(out, sizeof out, "%s%s%s", link + 1, rest[0] ? "/" : "", rest)
                           : spf(out, sizeof out, "%.*s%s%s%s", (int)dirlen, rel, link, rest[0] ? "/" : "", rest);
    if (r < 0) { errno = ENAMETOOLONG; return -1; }
    strcpy(rel, out);
    return 1;
}

static int make_missing(int parent, const char *name, int as_file)
{
    int rc;
    if (as_file) {
        int fd = openat(parent, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
        rc = fd < 0 ? -1 : close(fd);
    } else {
        rc = mkdirat(parent, name, 0755);
    }
    return rc < 0 && errno == EEXIST ? 0 : rc;
}

/** Creates what is missing of rel, one component at a time; 0 or -1 with errno. */
static int make_path(int rootfd, char *rel, int as_file)
{
    int links = 0;
restart:
    for (char *p = rel; ; p++) {
        if (*p != '/' && *p != 0) continue;
        char c = *p;
        *p = 0;
        int probe = openat2_in_root(rootfd, rel, O_PATH);
        if (probe >= 0) close(probe);
        else if (errno != ENOENT) return -1;
        else {
            const char *name;
            int parent = open_parent(rootfd, rel, &name);
            if (parent < 0) return -1;
            int f = follow_dangling(parent, name, rel, c ? p + 1 : "");
            int rc = f ? 0 : make_missing(parent, name, c == 0 && as_file);
            int err = errno;
            close(parent);
            errno = err;
            if (f < 0 || rc < 0) return -1;
            /* symlink(7): the kernel's limit of 40 links per lookup. */
            if (f > 0 && ++links > 40) { errno = ELOOP; return -1; }
            if (f > 0) goto restart;
        }
        *p = c;
        if (c == 0) return 0;
    }
}

int open_in_root(int rootfd, const char *path, int create, const char *step, const char *shown)
{
    char rel[PATH_MAX];
    while (*path == '/') path++;
    if (strlen(path) >= sizeof rel) return kerr_set(step, shown, ENAMETOOLONG);
    strcpy(rel, path);
    int fd = openat2_in_root(rootfd, rel, O_PATH);
    if (fd >= 0) return fd;
    if (errno != ENOENT || create == ROOT_NO_CREATE) return kerr_set(step, shown, errno);
    if (make_path(rootfd, rel, create == ROOT_CREATE_FILE) < 0) return kerr_set(step, shown, errno);
    fd = openat2_in_root(rootfd, rel, O_PATH);
    return fd >= 0 ? fd : kerr_set(step, shown, errno);
}

void fd_path(int fd, char *out, size_t n)
{
    snprintf(out, n, "/proc/self/fd/%d", fd);
}
