#define _GNU_SOURCE
#include "runtime_linux_shim.h"

#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <sys/vfs.h>

/* CGROUP2_SUPER_MAGIC from linux/magic.h, spelled here to avoid the kernel header. */
#define SHIM_CGROUP2_MAGIC 0x63677270

int berth_rt_object_path(const void *address, char *buffer, size_t size)
{
    Dl_info info;
    if (!dladdr(address, &info) || !info.dli_fname) {
        errno = ENOENT;
        return -1;
    }
    size_t length = strlen(info.dli_fname);
    if (length + 1 > size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buffer, info.dli_fname, length + 1);
    return 0;
}

int berth_rt_is_cgroup2(const char *path)
{
    struct statfs fs;
    if (statfs(path, &fs) != 0) return -1;
    return fs.f_type == SHIM_CGROUP2_MAGIC ? 1 : 0;
}
