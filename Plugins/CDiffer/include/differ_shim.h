/*
 * differ_shim.h - the one system call the differ plugin needs that Swift cannot reach:
 * openat2(2) has no glibc wrapper (glibc 2.36) and syscall(2) is variadic, which Swift does
 * not import.
 */
#ifndef DIFFER_SHIM_H
#define DIFFER_SHIM_H

/**
 * Opens `path` below the directory `root` as if `root` were "/" (openat2(2) with
 * RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS): "..", absolute symlinks and relative ones that
 * climb all stay below `root`, and /proc magic links are refused. `flags` are open(2) flags;
 * O_CLOEXEC is always added. Retries EINTR and EAGAIN (a concurrent rename) a few times.
 * Returns the new descriptor, which the caller owns, or -1 with errno set (ENOSYS on a
 * kernel before 5.6).
 */
int berth_differ_open_in_root(int root, const char *path, int flags);

#endif
