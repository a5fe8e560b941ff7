/* control.c - the keeper's event loop and the control protocol of keeper_protocol.h
 * section 3: one poll(2) loop over the listening socket, clients, a signalfd for SIGCHLD,
 * the OOM fd and every stdio stream. Single-threaded, so no locks anywhere. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* SwiftPM does not pass -D_GNU_SOURCE */
#endif
#include <errno.h>
#include <stdarg.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include "keeper.h"

#define MAX_FIELDS 8
#define MAX_POLL (4 + KEEPER_MAX_CLIENTS + 6 * (1 + KEEPER_MAX_EXECS))

/** A reply or event being built. */
struct msg { char buf[KEEPER_MAX_MESSAGE]; size_t len; int full; };

static struct msg out;

static void msg_begin(struct msg *m, uint32_t type, uint32_t tag)
{
    struct keeper_msg_header h = { type, tag };
    memcpy(m->buf, &h, sizeof h);
    m->len = sizeof h;
    m->full = 0;
}

static void msg_add(struct msg *m, const char *s)
{
    size_t n = strlen(s) + 1;
    if (m->len + n > sizeof m->buf) { m->full = 1; return; }
    memcpy(m->buf + m->len, s, n);
    m->len += n;
}

static void msg_addf(struct msg *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void msg_addf(struct msg *m, const char *fmt, ...)
{
    char s[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s, sizeof s, fmt, ap);
    va_end(ap);
    msg_add(m, s);
}

static void drop_client(struct keeper *k, int i)
{
    xclose(&k->clients[i]);
    k->subscribed[i] = 0;
}

/** Sends without blocking; a client that cannot take a message is dropped (header §3). */
static int send_msg(struct keeper *k, int i, const struct msg *m)
{
    if (send(k->clients[i], m->buf, m->len, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)m->len) return 0;
    drop_client(k, i);
    return -1;
}

static void exit_event(struct msg *m, const struct kproc *p)
{
    msg_begin(m, KEEPER_EVENT_EXIT, 0);
    msg_add(m, p->id);
    msg_addf(m, "%d", (int)p->pid);
    msg_addf(m, "%d", p->exit_status);
    msg_addf(m, "%lld.%09ld", (long long)p->exited_at.tv_sec, p->exited_at.tv_nsec);
}

void keeper_send_exit(struct keeper *k, struct kproc *p, int only)
{
    static struct msg ev;
    exit_event(&ev, p);
    for (int i = 0; i < KEEPER_MAX_CLIENTS; i++)
        if (k->clients[i] >= 0 && k->subscribed[i] && (only < 0 || only == i)) send_msg(k, i, &ev);
}

static void broadcast_oom(struct keeper *k)
{
    static struct msg ev;
    msg_begin(&ev, KEEPER_EVENT_OOM, 0);
    for (int i = 0; i < KEEPER_MAX_CLIENTS; i++)
        if (k->clients[i] >= 0 && k->subscribed[i]) send_msg(k, i, &ev);
}

/* ---- requests ---- */

/** One parsed request. */
struct req { uint32_t type, tag; int n; char *f[MAX_FIELDS]; };

static int reply_err(struct msg *m, const struct req *r, const char *code, const char *text)
{
    msg_begin(m, KEEPER_REPLY_ERROR, r->tag);
    msg_add(m, code);
    msg_add(m, text);
    return -1;
}

static const char *status_name(const struct keeper *k, const struct kproc *p)
{
    if (p->status == PS_CREATED) return "created";
    if (p->status == PS_STOPPED) return "stopped";
    if (p == &k->procs[0] && !k->plan.oci && cgroup_frozen()) return "paused";
    if (p == &k->procs[0] && k->plan.oci && k->oci_paused) return "paused";
    return "running";
}

static void add_proc_state(struct msg *m, const struct keeper *k, const struct kproc *p)
{
    msg_add(m, status_name(k, p));
    msg_addf(m, "%d", (int)p->pid);
    msg_addf(m, "%d", p->status == PS_STOPPED ? p->exit_status : 0);
    if (p->status == PS_STOPPED) msg_addf(m, "%lld.%09ld", (long long)p->exited_at.tv_sec, p->exited_at.tv_nsec);
    else msg_add(m, "");
}

static int do_state(struct keeper *k, const struct req *r, struct msg *m)
{
    msg_begin(m, KEEPER_REPLY_OK, r->tag);
    add_proc_state(m, k, &k->procs[0]);
    msg_addf(m, "%d", k->oom_count);
    for (int i = 1; i < 1 + KEEPER_MAX_EXECS; i++) {
        if (!k->procs[i].used) continue;
        msg_add(m, k->procs[i].id);
        add_proc_state(m, k, &k->procs[i]);
    }
    return 0;
}

static int do_pids(struct keeper *k, const struct req *r, struct msg *m)
{
    static pid_t pids[4096];
    int n = cgroup_enabled() ? cgroup_pids(pids, 4096) : 0;
    if (n < 0) return reply_err(m, r, "internal", kerr);
    if (n == 0 && k->procs[0].status != PS_STOPPED) pids[n++] = k->procs[0].pid;
    msg_begin(m, KEEPER_REPLY_OK, r->tag);
    for (int i = 0; i < n; i++) msg_addf(m, "%d", (int)pids[i]);
    return 0;
}

static int valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n < 1 || n > KEEPER_MAX_ID) return 0;
    for (const char *c = id; *c; c++)
        if (!(('a' <= *c && *c <= 'z') || ('A' <= *c && *c <= 'Z') || ('0' <= *c && *c <= '9') ||
              *c == '_' || *c == '-' || *c == '.'))
            return 0;
    return 1;
}

static struct kproc *free_slot(struct keeper *k)
{
    for (int i = 1; i < 1 + KEEPER_MAX_EXECS; i++) if (!k->procs[i].used) return &k->procs[i];
    return NULL;
}

static int do_exec(struct keeper *k, const struct req *r, struct msg *m)
{
    if (!valid_id(r->f[0])) return reply_err(m, r, "invalid_argument", "exec id must be 1-76 of [A-Za-z0-9_.-]");
    if (keeper_find(k, r->f[0])) return reply_err(m, r, "already_exists", "exec id already in use");
    struct kproc *p = free_slot(k);
    if (!p) return reply_err(m, r, "failed_precondition", "too many exec processes; delete finished ones");
    memset(p, 0, sizeof *p);
    p->sync_fd = p->pty = -1;
    p->out.src = p->out.dst = p->err.src = p->err.dst = p->in.src = p->in.dst = -1;
    snprintf(p->id, sizeof p->id, "%s", r->f[0]);
    if (plan_load_process(r->f[1], &p->plan, &p->plan_buf) < 0) {
        plan_free_process(&p->plan);
        free(p->plan_buf);
        return reply_err(m, r, "invalid_argument", kerr);
    }
    int rc = k->plan.oci ? oci_exec(k, p) : keeper_create_exec(k, p);
    if (rc < 0) {
        plan_free_process(&p->plan);
        free(p->plan_buf);
        memset(p, 0, sizeof *p);
        return reply_err(m, r, "failed_precondition", kerr);
    }
    p->used = 1;
    msg_begin(m, KEEPER_REPLY_OK, r->tag);
    msg_addf(m, "%d", (int)p->pid);
    return 0;
}

static int do_kill(struct keeper *k, const struct req *r, struct msg *m, struct kproc *p)
{
    int64_t sig;
    if (parse_i64(r->f[1], 1, 64, &sig) < 0) return reply_err(m, r, "invalid_argument", "signal must be 1-64");
    int all = !strcmp(r->f[2], "1");
    if (p->status == PS_STOPPED && !all) return reply_err(m, r, "not_found", "process already finished");
    int rc;
    if (all && p == &k->procs[0]) rc = keeper_kill_all(k, (int)sig);
    else if (k->plan.oci && p == &k->procs[0]) {
        char s[16];
        snprintf(s, sizeof s, "%d", (int)sig);
        rc = oci_simple(k, "kill", s, NULL);
    } else rc = kill(p->pid, (int)sig) < 0 ? kerr_set("kill", p->id[0] ? p->id : "init", errno) : 0;
    if (rc < 0) return reply_err(m, r, "internal", kerr);
    msg_begin(m, KEEPER_REPLY_OK, r->tag);
    return 0;
}

static int do_resize(const struct req *r, struct msg *m, struct kproc *p)
{
    int64_t w, h;
    if (parse_i64(r->f[1], 0, 65535, &w) < 0 || parse_i64(r->f[2], 0, 65535, &h) < 0)
        return reply_err(m, r, "invalid_argument", "width and height must be 0-65535");
    /* No terminal (never had one, or closed after the exit): nothing to resize, as with
     * containerd's shim, which answers such a resize without error (ctr sends one when a
     * short-lived `run -t` has already ended). */
    if (p->pty < 0) {
        msg_begin(m, KEEPER_REPLY_OK, r->tag);
        return 0;
    }
    struct winsize ws = { .ws_row = (unsigned short)h, .ws_col = (unsigned short)w };
    if (ioctl(p->pty, TIOCSWINSZ, &ws) < 0) return reply_err(m, r, "internal", errno_text(errno));
    msg_begin(m, KEEPER_REPLY_OK, r->tag);
    return 0;
}

static int do_pause(struct keeper *k, const struct req *r, struct msg *m, int frozen)
{
    if (k->procs[0].status != PS_RUNNING) return reply_err(m, r, "failed_precondition", "container is not running");
    int rc;
    if (k->plan.oci) {
        rc = oci_simple(k, frozen ? "pause" : "resume", NULL, NULL);
        if (rc == 0) k->oci_paused = frozen;
    } else rc = cgroup_freeze(frozen);
    if (rc < 0) return reply_err(m, r, "failed_precondition", kerr);
    msg_begin(m, KEEPER_REPLY_OK, r->tag);
    return 0;
}

/** Reaps until the init has been recorded, for at most 5 s (it was SIGKILLed). */
static void reap_init(struct keeper *k)
{
    struct kproc *init = &k->procs[0];
    for (int64_t end = now_ms() + 5000; init->status != PS_STOPPED && now_ms() < end; ) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid < 0 && errno == ECHILD) break;
        if (pid <= 0) { poll(NULL, 0, 2); continue; }
        for (int i = 0; i < 1 + KEEPER_MAX_EXECS; i++)
            if (k->procs[i].used && k->procs[i].pid == pid && k->procs[i].status != PS_STOPPED)
                keeper_exited(k, &k->procs[i], st);
    }
}

/** Kills what is left, reaps the init, removes the cgroups; the loop then ends. In mode
 *  oci `runc delete --force` kills (thawing a paused container) and removes its cgroups. */
static int delete_container(struct keeper *k, const struct req *r, struct msg *m)
{
    struct kproc *init = &k->procs[0];
    int rc;
    if (init->status == PS_RUNNING && strcmp(r->f[1], "1"))
        return reply_err(m, r, "failed_precondition", "container is running; kill it or force");
    if (k->plan.oci) {
        rc = oci_simple(k, "delete", "--force", NULL);
        if (rc < 0 && strstr(kerr, "does not exist")) rc = 0; /* already deleted: done */
        if (init->status != PS_STOPPED) kill(init->pid, SIGKILL);
        reap_init(k);
    } else {
        if (init->status != PS_STOPPED) { keeper_kill_all(k, SIGKILL); kill(init->pid, SIGKILL); }
        reap_init(k);
        rc = cgroup_remove();
    }
    /* A cgroup that will not go (a task stuck in D state) keeps the keeper alive, so that
     * berthd can retry DELETE instead of losing the only process that knows the paths. */
    if (rc < 0) return reply_err(m, r, "unavailable", kerr);
    k->deleting = 1;
    msg_begin(m, KEEPER_REPLY_OK, r->tag);
    return 0;
}

/** An exec that was set up and never started (its client went before START, as when berthd
 *  was killed during `ctr tasks exec`) is ended here: it runs nothing of the client's yet,
 *  so nothing is lost, and left alone it would wait for START for ever. */
static void end_unstarted_exec(struct kproc *p)
{
    kill(p->pid, SIGKILL);
    while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR) {}
    /* No exit file and no EVENT_EXIT: the process never ran, and DELETE forgets it now. */
    p->status = PS_STOPPED;
    xclose(&p->sync_fd);
    stream_close(&p->in);
    stream_close(&p->out);
    stream_close(&p->err);
    xclose(&p->pty);
}

static int do_delete(struct keeper *k, const struct req *r, struct msg *m, struct kproc *p)
{
    if (p == &k->procs[0]) return delete_container(k, r, m);
    if (p->status == PS_CREATED && !k->plan.oci) end_unstarted_exec(p);
    if (p->status != PS_STOPPED) {
        if (strcmp(r->f[1], "1")) return reply_err(m, r, "failed_precondition", "exec process is running");
        kill(p->pid, SIGKILL);
        return reply_err(m, r, "failed_precondition", "exec process killed; delete again after its exit");
    }
    keeper_forget_exit(k, p);
    plan_free_process(&p->plan);
    free(p->plan_buf);
    memset(p, 0, sizeof *p);
    msg_begin(m, KEEPER_REPLY_OK, r->tag);
    return 0;
}

/** Fields each request needs. */
static int fields_needed(uint32_t type)
{
    switch (type) {
    case KEEPER_REQ_START: case KEEPER_REQ_CLOSE_STDIN: case KEEPER_REQ_ACK_EXIT: return 1;
    case KEEPER_REQ_EXEC: case KEEPER_REQ_DELETE: return 2;
    case KEEPER_REQ_KILL: case KEEPER_REQ_RESIZE: return 3;
    case KEEPER_REQ_PAUSE: case KEEPER_REQ_RESUME: case KEEPER_REQ_STATE:
    case KEEPER_REQ_PIDS: case KEEPER_REQ_SUBSCRIBE: return 0;
    default: return -1;
    }
}

static int handle_for_proc(struct keeper *k, const struct req *r, struct msg *m, struct kproc *p)
{
    switch (r->type) {
    case KEEPER_REQ_START:
        if (keeper_start(k, p) < 0) return reply_err(m, r, "failed_precondition", kerr);
        msg_begin(m, KEEPER_REPLY_OK, r->tag);
        msg_addf(m, "%d", (int)p->pid);
        return 0;
    case KEEPER_REQ_KILL: return do_kill(k, r, m, p);
    case KEEPER_REQ_RESIZE: return do_resize(r, m, p);
    case KEEPER_REQ_CLOSE_STDIN:
        p->in.closing = 1;
        stream_pump(&p->in);
        msg_begin(m, KEEPER_REPLY_OK, r->tag);
        return 0;
    case KEEPER_REQ_ACK_EXIT:
        if (p->status != PS_STOPPED) return reply_err(m, r, "failed_precondition", "process has not exited");
        keeper_forget_exit(k, p);
        msg_begin(m, KEEPER_REPLY_OK, r->tag);
        return 0;
    default: return do_delete(k, r, m, p);
    }
}

static int handle(struct keeper *k, int ci, const struct req *r, struct msg *m)
{
    int need = fields_needed(r->type);
    if (need < 0) return reply_err(m, r, "invalid_argument", "unknown request type");
    if (r->n < need) return reply_err(m, r, "invalid_argument", "too few fields for this request");
    switch (r->type) {
    case KEEPER_REQ_EXEC: return do_exec(k, r, m);
    case KEEPER_REQ_PAUSE: return do_pause(k, r, m, 1);
    case KEEPER_REQ_RESUME: return do_pause(k, r, m, 0);
    case KEEPER_REQ_STATE: return do_state(k, r, m);
    case KEEPER_REQ_PIDS: return do_pids(k, r, m);
    case KEEPER_REQ_SUBSCRIBE:
        k->subscribed[ci] = 1;
        msg_begin(m, KEEPER_REPLY_OK, r->tag);
        return 0;
    default: break;
    }
    struct kproc *p = keeper_find(k, r->f[0]);
    if (!p) return reply_err(m, r, "not_found", "no such process");
    return handle_for_proc(k, r, m, p);
}

static int parse_req(char *buf, ssize_t n, struct req *r)
{
    struct keeper_msg_header h;
    if (n < (ssize_t)sizeof h) return -1;
    memcpy(&h, buf, sizeof h);
    r->type = h.type;
    r->tag = h.tag;
    r->n = 0;
    if (n > (ssize_t)sizeof h && buf[n - 1] != 0) return -1;
    for (char *p = buf + sizeof h; p < buf + n && r->n < MAX_FIELDS; p += strlen(p) + 1) r->f[r->n++] = p;
    return 0;
}

static void serve_client(struct keeper *k, int i)
{
    static char buf[KEEPER_MAX_REQUEST + 1];
    ssize_t n = recv(k->clients[i], buf, KEEPER_MAX_REQUEST, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0 || n > KEEPER_MAX_REQUEST) { drop_client(k, i); return; }
    struct req r;
    if (parse_req(buf, n, &r) < 0) { drop_client(k, i); return; }
    handle(k, i, &r, &out);
    if (send_msg(k, i, &out) < 0) return;
    if (r.type == KEEPER_REQ_SUBSCRIBE)
        for (int j = 0; j < 1 + KEEPER_MAX_EXECS; j++)
            if (k->procs[j].used && k->procs[j].status == PS_STOPPED && !k->procs[j].acked)
                keeper_send_exit(k, &k->procs[j], i);
}

static void accept_client(struct keeper *k)
{
    int fd = accept4(k->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    for (int i = 0; i < KEEPER_MAX_CLIENTS; i++)
        if (k->clients[i] < 0) { k->clients[i] = fd; k->subscribed[i] = 0; return; }
    close(fd);
}

/* ---- the loop ---- */

static void reap(struct keeper *k)
{
    struct signalfd_siginfo si;
    while (xread(k->signal_fd, &si, sizeof si) == sizeof si) {}
    int st;
    pid_t pid;
    /* Reap everything: orphans reparented to the keeper (PR_SET_CHILD_SUBREAPER) too. */
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        for (int i = 0; i < 1 + KEEPER_MAX_EXECS; i++)
            if (k->procs[i].used && k->procs[i].pid == pid && k->procs[i].status != PS_STOPPED)
                keeper_exited(k, &k->procs[i], st);
    }
}

static void pump_all(struct keeper *k, int *stalled)
{
    *stalled = 0;
    for (int i = 0; i < 1 + KEEPER_MAX_EXECS; i++) {
        struct kproc *p = &k->procs[i];
        if (!p->used) continue;
        struct stream *ss[3] = { &p->in, &p->out, &p->err };
        for (int j = 0; j < 3; j++) {
            if (ss[j]->src < 0 && ss[j]->dst < 0) continue;
            if (ss[j]->src >= 0 || ss[j]->plen) stream_pump(ss[j]);
            *stalled |= ss[j]->stall_since != 0;
        }
    }
}

static void add_fd(struct pollfd *pfd, int *n, int fd, short ev)
{
    if (fd < 0 || !ev || *n >= MAX_POLL) return;
    pfd[*n].fd = fd;
    pfd[*n].events = ev;
    pfd[*n].revents = 0;
    (*n)++;
}

static int build_poll(struct keeper *k, struct pollfd *pfd)
{
    int n = 0;
    add_fd(pfd, &n, k->signal_fd, POLLIN);
    add_fd(pfd, &n, k->listen_fd, POLLIN);
    add_fd(pfd, &n, k->oom_fd, POLLIN);
    for (int i = 0; i < KEEPER_MAX_CLIENTS; i++) add_fd(pfd, &n, k->clients[i], POLLIN);
    for (int i = 0; i < 1 + KEEPER_MAX_EXECS; i++) {
        struct kproc *p = &k->procs[i];
        if (!p->used) continue;
        struct stream *ss[3] = { &p->in, &p->out, &p->err };
        for (int j = 0; j < 3; j++) {
            add_fd(pfd, &n, ss[j]->src, stream_src_events(ss[j]));
            add_fd(pfd, &n, ss[j]->dst, stream_dst_events(ss[j]));
        }
    }
    return n;
}

int keeper_loop(struct keeper *k)
{
    static struct pollfd pfd[MAX_POLL];
    int stalled = 0;
    while (!k->deleting) {
        int n = build_poll(k, pfd);
        int r = poll(pfd, (nfds_t)n, stalled ? 250 : -1);
        if (r < 0 && errno != EINTR) return kerr_set("poll", "control loop", errno);
        pump_all(k, &stalled);
        for (int i = 0; i < n && r > 0; i++) {
            if (!pfd[i].revents) continue;
            if (pfd[i].fd == k->signal_fd) reap(k);
            else if (pfd[i].fd == k->oom_fd && cgroup_oom_check(k->oom_fd)) { k->oom_count++; broadcast_oom(k); }
        }
        if (r > 0 && (pfd[1].revents & POLLIN)) accept_client(k);
        for (int i = 0; i < KEEPER_MAX_CLIENTS && !k->deleting; i++)
            if (k->clients[i] >= 0) serve_client(k, i);
        pump_all(k, &stalled);
    }
    return 0;
}
