/*
 * differ_shim.h - the system calls the differ plugin needs that Swift cannot reach:
 * openat2(2) has no glibc wrapper (glibc 2.36) and syscall(2) is variadic, which Swift does
 * not import.
 */
#ifndef DIFFER_SHIM_H
#define DIFFER_SHIM_H

/* getxattr(2) and setxattr(2), which Swift's Glibc module does not export. */
#include <sys/xattr.h>

/**
 * Opens `path` below the directory `root` as if `root` were "/" (openat2(2) with
 * RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS): "..", absolute symlinks and relative ones that
 * climb all stay below `root`, and /proc magic links are refused. `flags` are open(2) flags;
 * O_CLOEXEC is always added. Retries EINTR and EAGAIN (a concurrent rename) a few times.
 * Returns the new descriptor, which the caller owns, or -1 with errno set (ENOSYS on a
 * kernel before 5.6).
 */
int berth_differ_open_in_root(int root, const char *path, int flags);

/**
 * Opens `path` below `root` without following any symlink on the way or at the end, and
 * without ".." above `root` (openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS): a symlink
 * anywhere in the path is ELOOP. Same ownership, retries and errors as
 * berth_differ_open_in_root.
 */
int berth_differ_open_beneath(int root, const char *path, int flags);

#endif
