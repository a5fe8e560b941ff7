/*
 * runtime_linux_shim.h - the few libc calls the Linux runtime plugin needs that Swift's Glibc
 * module does not import (it is built without _GNU_SOURCE, see docs: FIELD-NOTES.md).
 * Every function returns 0 on success and -1 with errno set on failure.
 */
#ifndef RUNTIME_LINUX_SHIM_H
#define RUNTIME_LINUX_SHIM_H

#include <stddef.h>

/** Copies the path of the shared object that holds `address` (dladdr(3)) into `buffer`. */
int berth_rt_object_path(const void *address, char *buffer, size_t size);

/** Answers 1 when `path` is the root of a cgroup2 filesystem, 0 when not (statfs(2)). */
int berth_rt_is_cgroup2(const char *path);

#endif
