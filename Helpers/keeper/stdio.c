/* stdio.c - copying between a container process and the client's FIFOs without ever
 * blocking the keeper. One struct stream per direction; each holds at most one pending
 * chunk, so the keeper's memory does not grow with a slow reader. The buffering policy is
 * in keeper_protocol.h section 4: backpressure while a reader is slow, dropping (counted)
 * once the FIFO has been full for KEEPER_STALL_MS, as the reader is then considered gone. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* SwiftPM does not pass -D_GNU_SOURCE */
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "keeper.h"

/** One read per chunk; also the most a stream holds in memory. */
#define CHUNK 16384
/** Chunks moved per pump, so one busy stream cannot starve the others. */
#define CHUNKS_PER_PUMP 16

static char scratch[CHUNK];

int fifo_open(const char *path, int output)
{
    /* O_RDWR: opening a FIFO read-write never blocks and the FIFO always has a reader and a
     * writer, so writes never fail with EPIPE and reads never see a spurious EOF when the
     * client closes and reopens (fifo(7) notes O_RDWR is defined on Linux). */
    int fd = xopen(path, O_RDWR | O_NONBLOCK, 0);
    if (fd < 0) return kerr_set(output ? "open stdout/stderr fifo" : "open stdin fifo", path, errno);
    if (output) fcntl(fd, F_SETPIPE_SZ, KEEPER_FIFO_SIZE); /* best effort: pipe-max-size */
    return fd;
}

void stream_init(struct stream *s, int src, int dst, int is_input)
{
    memset(s, 0, sizeof *s);
    s->src = src;
    s->dst = dst;
    s->is_input = is_input;
    if (src >= 0) fcntl(src, F_SETFL, fcntl(src, F_GETFL) | O_NONBLOCK);
    if (dst >= 0) fcntl(dst, F_SETFL, fcntl(dst, F_GETFL) | O_NONBLOCK);
}

int stream_open(const struct stream *s)
{
    return s->src >= 0 || s->dst >= 0;
}

void stream_close(struct stream *s)
{
    if (s->dropped) fprintf(stderr, "keeper: stream dropped %llu bytes (reader gone)\n",
                            (unsigned long long)s->dropped);
    xclose(&s->src);
    xclose(&s->dst);
    free(s->pend);
    s->pend = NULL;
    s->plen = s->poff = 0;
}

/** Writes the pending chunk; 1 when it is all out, 0 when dst is full, -1 on dst error. */
static int flush(struct stream *s)
{
    while (s->poff < s->plen) {
        ssize_t w = write(s->dst, s->pend + s->poff, s->plen - s->poff);
        if (w > 0) { s->poff += (size_t)w; s->stall_since = 0; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) {
            int64_t now = now_ms();
            if (!s->stall_since) s->stall_since = now;
            if (s->is_input || now - s->stall_since < KEEPER_STALL_MS) return 0;
            s->dropped += s->plen - s->poff;
            break;
        }
        return -1;
    }
    s->plen = s->poff = 0;
    return 1;
}

/** Reads one chunk into pend: 1 data, 0 nothing now, -1 end of input. */
static int fill(struct stream *s)
{
    ssize_t r = xread(s->src, scratch, CHUNK);
    if (r > 0) {
        if (!s->pend && !(s->pend = malloc(CHUNK))) { s->dropped += (size_t)r; return 1; }
        memcpy(s->pend, scratch, (size_t)r);
        s->plen = (size_t)r;
        s->poff = 0;
        return 1;
    }
    /* EIO: the pty's slave side is closed (pty(7)); EAGAIN after the process exited:
     * what it wrote before exiting has been read. */
    if (r == 0 || errno == EIO || (errno == EAGAIN && s->closing) || errno != EAGAIN) return -1;
    return 0;
}

void stream_pump(struct stream *s)
{
    for (int i = 0; i < CHUNKS_PER_PUMP && s->dst >= 0; i++) {
        int f = flush(s);
        if (f < 0) { stream_close(s); return; }
        if (f == 0 || s->src < 0) break;
        int r = fill(s);
        if (r < 0) xclose(&s->src);
        if (r <= 0) break;
    }
    /* Input ends where it ended; output also ends when the writer side is gone. */
    if (s->src < 0 && s->plen == 0) stream_close(s);
}

short stream_src_events(const struct stream *s)
{
    return s->src >= 0 && s->plen == 0 ? POLLIN : 0;
}

short stream_dst_events(const struct stream *s)
{
    return s->dst >= 0 && s->plen > 0 ? POLLOUT : 0;
}

int send_with_fd(int sock, const char *buf, size_t n, int fd)
{
    struct iovec iov = { (void *)buf, n };
    union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } u;
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (fd >= 0) {
        memset(&u, 0, sizeof u);
        m.msg_control = u.b;
        m.msg_controllen = sizeof u.b;
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    ssize_t r;
    do r = sendmsg(sock, &m, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -1 : 0;
}

ssize_t recv_with_fd(int sock, char *buf, size_t n, int *fd)
{
    struct iovec iov = { buf, n };
    union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } u;
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b };
    ssize_t r;
    *fd = -1;
    do r = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    if (r < 0) return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) memcpy(fd, CMSG_DATA(c), sizeof *fd);
    return r;
}
