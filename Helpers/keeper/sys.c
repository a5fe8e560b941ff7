/* sys.c - error lines and syscall wrappers that retry EINTR (signal(7): "Interruption of
 * system calls and library functions by signal handlers"). Every fd is O_CLOEXEC so no
 * keeper fd leaks into a container process (a leaked pipe end kept a blocked init alive in
 * the field notes). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* SwiftPM does not pass -D_GNU_SOURCE */
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/close_range.h>
#include "keeper.h"

char kerr[512];

const char *errno_text(int err)
{
    /* Go's error strings (runc's, hence what containerd's clients show) are glibc's with a
     * lower-case first letter: "no such file or directory". The keeper is single-threaded. */
    static char text[128];
    snprintf(text, sizeof text, "%s", strerror(err));
    if (text[0] >= 'A' && text[0] <= 'Z') text[0] = (char)(text[0] - 'A' + 'a');
    return text;
}

int kerr_set(const char *step, const char *path, int err)
{
    /* Through vsnprintf: a long path is cut at sizeof kerr, which is what is wanted. */
    return kerr_fmt("%s: %s: %s", step, path ? path : "-", errno_text(err));
}

int kerr_fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(kerr, sizeof kerr, fmt, ap);
    va_end(ap);
    return -1;
}

int xopen(const char *path, int flags, mode_t mode)
{
    int fd;
    do fd = open(path, flags | O_CLOEXEC, mode);
    while (fd < 0 && errno == EINTR);
    return fd;
}

void xclose(int *fd)
{
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

ssize_t xread(int fd, void *buf, size_t n)
{
    ssize_t r;
    do r = read(fd, buf, n);
    while (r < 0 && errno == EINTR);
    return r;
}

int xwrite_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int write_file(const char *step, const char *path, const char *s)
{
    int fd = xopen(path, O_WRONLY | O_TRUNC, 0);
    if (fd < 0) return kerr_set(step, path, errno);
    /* Kernel knobs take the value in one write(2); a short write is an error there. */
    int rc = xwrite_all(fd, s, strlen(s));
    int err = errno;
    xclose(&fd);
    return rc < 0 ? kerr_set(step, path, err) : 0;
}

ssize_t read_file(const char *path, char *buf, size_t n)
{
    int fd = xopen(path, O_RDONLY, 0);
    if (fd < 0) return -1;
    size_t got = 0;
    while (got + 1 < n) {
        ssize_t r = xread(fd, buf + got, n - 1 - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    buf[got] = 0;
    xclose(&fd);
    return (ssize_t)got;
}

static int fsync_path(const char *path, int flags)
{
    int fd = xopen(path, flags, 0);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    xclose(&fd);
    return rc;
}

int write_atomic(const char *dir, const char *name, const char *s)
{
    char tmp[KPATH], dst[KPATH];
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    int fd = xopen(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return kerr_set("write exit status", tmp, errno);
    /* rename(2) is atomic; fsync before it so the new name never points at an empty
     * file after a crash, and fsync the directory so the rename itself is durable. */
    if (xwrite_all(fd, s, strlen(s)) < 0 || fsync(fd) < 0) {
        int err = errno;
        xclose(&fd);
        return kerr_set("write exit status", tmp, err);
    }
    xclose(&fd);
    if (rename(tmp, dst) < 0) return kerr_set("rename exit status", dst, errno);
    if (fsync_path(dir, O_RDONLY | O_DIRECTORY) < 0) return kerr_set("fsync", dir, errno);
    return 0;
}

int mkdir_p(const char *path, mode_t mode)
{
    char buf[KPATH];
    if (strlen(path) >= sizeof buf) return kerr_set("mkdir", path, ENAMETOOLONG);
    strcpy(buf, path);
    for (char *p = buf + 1; ; p++) {
        if (*p != '/' && *p != 0) continue;
        char c = *p;
        *p = 0;
        if (mkdir(buf, mode) < 0 && errno != EEXIST) return kerr_set("mkdir", buf, errno);
        *p = c;
        if (c == 0) break;
    }
    return 0;
}

struct timespec now_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts;
}

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!s || !*s) return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int spf(char *out, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(out, n, fmt, ap);
    va_end(ap);
    return r < 0 || (size_t)r >= n ? -1 : 0;
}

/** Sorts a handful of fds (insertion sort: n is at most 4). */
static void sort_fds(int *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) { int t = v[j]; v[j] = v[j - 1]; v[j - 1] = t; }
}

void close_fds_except(const int *keep, int n)
{
    int v[8], m = 0;
    for (int i = 0; i < n && m < 8; i++) if (keep[i] > 2) v[m++] = keep[i];
    sort_fds(v, m);
    unsigned lo = 3;
    for (int i = 0; i < m; i++) {
        if ((unsigned)v[i] > lo) close_range(lo, (unsigned)v[i] - 1, 0);
        lo = (unsigned)v[i] + 1;
    }
    close_range(lo, ~0U, 0);
}
