#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* SwiftPM does not pass -D_GNU_SOURCE */
#endif
#include "differ_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

static int open_resolving(int root, const char *path, int flags, uint64_t resolve)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .resolve = resolve,
    };
    int fd = -1;
    /* EAGAIN: the kernel saw a rename or mount race while resolving and asks to retry. */
    for (int attempt = 0; attempt < 8; attempt++) {
        fd = (int)syscall(SYS_openat2, root, path[0] ? path : ".", &how, sizeof how);
        if (fd >= 0 || (errno != EINTR && errno != EAGAIN)) break;
    }
    return fd;
}

int berth_differ_open_in_root(int root, const char *path, int flags)
{
    return open_resolving(root, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
}

int berth_differ_open_beneath(int root, const char *path, int flags)
{
    return open_resolving(root, path, flags, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
}
