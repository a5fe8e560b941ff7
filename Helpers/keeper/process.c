/* process.c - the keeper's side of container processes: creating the init (clone with the
 * new namespaces) and exec'd processes (setns into the init's pid namespace, then fork),
 * starting them, stdio wiring, exits, kill. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* SwiftPM does not pass -D_GNU_SOURCE */
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "keeper.h"

/** How long START waits for the process to execve. */
#define START_TIMEOUT_MS 10000
/** How long creating a process (namespaces, mounts, caps) may take. */
#define SETUP_TIMEOUT_MS 30000

int keeper_report_fd = -1;

struct kproc *keeper_find(struct keeper *k, const char *id)
{
    for (int i = 0; i < 1 + KEEPER_MAX_EXECS; i++)
        if (k->procs[i].used && !strcmp(k->procs[i].id, id)) return &k->procs[i];
    return NULL;
}

static void proc_reset(struct kproc *p)
{
    p->pid = 0;
    p->sync_fd = p->pty = -1;
    p->out.src = p->out.dst = p->err.src = p->err.dst = p->in.src = p->in.dst = -1;
}

/** An output FIFO and a pipe whose write end the child gets. */
static int wire_output(struct stream *s, const char *path, int *child)
{
    int fifo = fifo_open(path, 1), pp[2];
    if (fifo < 0) return -1;
    if (pipe2(pp, O_CLOEXEC) < 0) { close(fifo); return kerr_set("pipe", path, errno); }
    stream_init(s, pp[0], fifo, 0);
    *child = pp[1];
    return 0;
}

static int wire_input(struct stream *s, const char *path, int *child)
{
    int fifo = fifo_open(path, 0), pp[2];
    if (fifo < 0) return -1;
    if (pipe2(pp, O_CLOEXEC) < 0) { close(fifo); return kerr_set("pipe", path, errno); }
    stream_init(s, fifo, pp[1], 1);
    *child = pp[0];
    return 0;
}

static void close_child_fds(int child[3])
{
    for (int i = 0; i < 3; i++) xclose(&child[i]);
}

int keeper_stdio_prepare(struct kproc *p, const struct proc_plan *pp, int child[3])
{
    const char *paths[3] = { pp->std_in, pp->std_out, pp->std_err };
    struct stream *ss[3] = { &p->in, &p->out, &p->err };
    int devnull = xopen("/dev/null", O_RDWR, 0);
    if (devnull < 0) return kerr_set("open", "/dev/null", errno);
    for (int i = 0; i < 3; i++) child[i] = -1;
    for (int i = 0; i < 3; i++) {
        int rc = 0;
        if (!paths[i] || !*paths[i] || (pp->terminal && i == 2)) {
            child[i] = fcntl(devnull, F_DUPFD_CLOEXEC, 3);
        } else if (pp->terminal) {
            /* The pty master arrives with READY; only the FIFO end is known now. */
            int fifo = fifo_open(paths[i], i > 0);
            if (fifo < 0) rc = -1;
            else if (i == 0) stream_init(ss[i], fifo, -1, 1);
            else stream_init(ss[i], -1, fifo, 0);
            child[i] = fcntl(devnull, F_DUPFD_CLOEXEC, 3);
        } else {
            rc = i == 0 ? wire_input(ss[i], paths[i], &child[i]) : wire_output(ss[i], paths[i], &child[i]);
        }
        if (rc < 0) { close(devnull); close_child_fds(child); return -1; }
    }
    close(devnull);
    return 0;
}

static void attach_pty(struct kproc *p, int master)
{
    p->pty = master;
    if (p->in.src >= 0) p->in.dst = fcntl(master, F_DUPFD_CLOEXEC, 3);
    if (p->out.dst >= 0) p->out.src = fcntl(master, F_DUPFD_CLOEXEC, 3);
    stream_init(&p->in, p->in.src, p->in.dst, 1);
    stream_init(&p->out, p->out.src, p->out.dst, 0);
}

static void close_streams(struct kproc *p)
{
    stream_close(&p->in);
    stream_close(&p->out);
    stream_close(&p->err);
    xclose(&p->pty);
}

/** Waits for READY (with the pty master, if any) or an error line from the child. Bounded:
 *  a mount that hangs (a dead NFS server, a stuck FUSE daemon) must not stall the keeper's
 *  loop, which also carries the other processes' stdio. */
static int await_ready(struct kproc *p, int sync_fd, int terminal)
{
    char buf[sizeof kerr + 1];
    int fd;
    struct pollfd pfd = { sync_fd, POLLIN, 0 };
    if (poll(&pfd, 1, SETUP_TIMEOUT_MS) == 0)
        return kerr_fmt("setup: %s: not ready within %d ms", p->id[0] ? p->id : "init", SETUP_TIMEOUT_MS);
    ssize_t r = recv_with_fd(sync_fd, buf, sizeof buf - 1, &fd);
    if (r <= 0) return kerr_fmt("setup: %s: the process exited before it was ready", p->id[0] ? p->id : "init");
    buf[r] = 0;
    if (buf[0] == SYNC_ERROR) {
        if (fd >= 0) close(fd);
        return kerr_fmt("%s", buf + 1);
    }
    if (terminal && fd < 0) return kerr_fmt("setup: %s: no pty master received", p->id[0] ? p->id : "init");
    if (terminal) attach_pty(p, fd);
    return 0;
}

static int send_byte(int fd, char c)
{
    return send(fd, &c, 1, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

static int write_map(pid_t pid, const char *file, const struct recv *maps)
{
    char path[64], buf[4096] = "";
    size_t used = 0;
    for (size_t i = 0; i < maps->n; i++) {
        int n = snprintf(buf + used, sizeof buf - used, "%s %s %s\n",
                         maps->v[i].f[0], maps->v[i].f[1], maps->v[i].f[2]);
        if (n < 0 || (size_t)n >= sizeof buf - used) return kerr_fmt("%s: more than 4096 bytes of maps", file);
        used += (size_t)n;
    }
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    return used ? write_file("write id map", path, buf) : 0;
}

/** Common tail of creating a process: maps, cgroup (or the child joins it itself after GO,
 *  see cgroup_joins_itself), GO, READY. Kills the child on error. */
static int finish_spawn(struct keeper *k, struct kproc *p, pid_t pid, int sync_fd, int terminal, int is_init)
{
    const struct ctr_plan *c = &k->plan;
    int rc = 0;
    if (is_init && c->ns_new[NS_USER])
        rc = write_map(pid, "uid_map", &c->uid_maps) < 0 || write_map(pid, "gid_map", &c->gid_maps) < 0 ? -1 : 0;
    if (rc == 0 && !cgroup_joins_itself(c)) rc = cgroup_add(pid);
    /* A child that failed before GO (exec: joining the namespaces) has sent its error line
     * and exited, so GO finds no reader: await_ready then reads that line. */
    if (rc == 0 && send_byte(sync_fd, SYNC_GO) < 0 && errno != EPIPE && errno != ECONNRESET)
        rc = kerr_set("sync", "go", errno);
    if (rc == 0) rc = await_ready(p, sync_fd, terminal);
    if (rc == 0 && is_init) rc = cgroup_devices(c);
    if (rc < 0) {
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
        close(sync_fd);
        close_streams(p);
        return -1;
    }
    p->pid = pid;
    p->sync_fd = sync_fd;
    p->status = PS_CREATED;
    return 0;
}

static int clone_flags(const struct ctr_plan *c)
{
    static const int flag[NS_COUNT] = {
        [NS_USER] = CLONE_NEWUSER, [NS_MOUNT] = CLONE_NEWNS, [NS_PID] = CLONE_NEWPID,
        [NS_UTS] = CLONE_NEWUTS, [NS_IPC] = CLONE_NEWIPC, [NS_NET] = CLONE_NEWNET,
    };
    int f = 0;
    for (int i = 0; i < NS_COUNT; i++) if (c->ns_new[i]) f |= flag[i];
    return f;
}

/** Signals the keeper blocks or ignores must not reach the container's processes. */
static void child_reset_signals(void)
{
    sigset_t all;
    sigemptyset(&all);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    sigprocmask(SIG_SETMASK, &all, NULL);
    xclose(&keeper_report_fd);
}

/** Removes the cgroups after a failure without losing that failure's error line. */
static void cgroup_remove_quietly(void)
{
    char keep[sizeof kerr];
    memcpy(keep, kerr, sizeof keep);
    cgroup_remove();
    memcpy(kerr, keep, sizeof kerr);
}

/** The keeper's next child is born in the pid namespace at path (setns(2): CLONE_NEWPID
 *  sets pid_for_children only, never the keeper's own pid namespace). */
static int join_pidns_for_children(const char *path)
{
    int fd = xopen(path, O_RDONLY, 0);
    if (fd < 0) return kerr_set("open namespace", path, errno);
    int rc = setns(fd, CLONE_NEWPID);
    int err = errno;
    close(fd);
    return rc < 0 ? kerr_set("setns", path, err) : 0;
}

/** Raw clone with fork semantics (no new stack): the keeper is single-threaded, and the
 *  child is pid 1 of the new pid namespace (clone(2), pid_namespaces(7)). The child's
 *  ends of the sync socket and of stdio are closed here in the keeper. */
static pid_t clone_init(struct keeper *k, int sv[2], int child[3])
{
    const char *join = k->plan.ns_path[NS_PID];
    if (join && join_pidns_for_children(join) < 0) {
        close(sv[0]); close(sv[1]); close_child_fds(child);
        return -1;
    }
    pid_t pid = (pid_t)syscall(SYS_clone, clone_flags(&k->plan) | SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid != 0 && join && setns(k->self_pidns, CLONE_NEWPID) < 0)
        fprintf(stderr, "keeper: setns back to own pid namespace: %s\n", errno_text(errno));
    if (pid == 0) {
        child_reset_signals();
        close_fds_except((int[]){ sv[1], child[0], child[1], child[2] }, 4);
        struct child_args a = { &k->plan, &k->plan.proc, sv[1], { child[0], child[1], child[2] }, 1 };
        child_init(&a);
    }
    int err = errno;
    close(sv[1]);
    close_child_fds(child);
    if (pid < 0) { close(sv[0]); return kerr_set("clone", "container init", err); }
    return pid;
}

int keeper_create_native(struct keeper *k)
{
    struct kproc *p = &k->procs[0];
    int sv[2], child[3];
    memset(p, 0, sizeof *p);
    proc_reset(p);
    p->used = 1;
    if (cgroup_create(&k->plan) < 0) return -1;
    if (keeper_stdio_prepare(p, &k->plan.proc, child) < 0) return cgroup_remove_quietly(), -1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        kerr_set("socketpair", "sync", errno);
        return close_child_fds(child), close_streams(p), cgroup_remove_quietly(), -1;
    }
    pid_t pid = clone_init(k, sv, child);
    if (pid < 0) close_streams(p);
    if (pid < 0 || finish_spawn(k, p, pid, sv[0], k->plan.proc.terminal, 1) < 0)
        return cgroup_remove_quietly(), -1;
    return 0;
}

/** Forks with the child in the init's pid namespace; the keeper's own children go back to
 *  its own namespace right after (setns(2): CLONE_NEWPID sets pid_for_children only). */
static pid_t fork_into_pidns(struct keeper *k, int init_pid)
{
    char path[64];
    int own = k->plan.ns_new[NS_PID] || k->plan.ns_path[NS_PID];
    snprintf(path, sizeof path, "/proc/%d/ns/pid", init_pid);
    if (own && join_pidns_for_children(path) < 0) return -1;
    pid_t pid = fork();
    int err = errno;
    if (pid != 0 && own && setns(k->self_pidns, CLONE_NEWPID) < 0)
        fprintf(stderr, "keeper: setns back to own pid namespace: %s\n", errno_text(errno));
    if (pid < 0) return kerr_set("fork", "exec process", err);
    return pid;
}

int keeper_create_exec(struct keeper *k, struct kproc *p)
{
    struct kproc *init = &k->procs[0];
    int sv[2], child[3];
    if (init->status == PS_STOPPED) return kerr_fmt("exec: %s: container is not running", p->id);
    if (keeper_stdio_prepare(p, &p->plan, child) < 0) return -1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return close_child_fds(child), close_streams(p), kerr_set("socketpair", "sync", errno);
    pid_t pid = fork_into_pidns(k, init->pid);
    if (pid == 0) {
        child_reset_signals();
        close_fds_except((int[]){ sv[1], child[0], child[1], child[2] }, 4);
        struct child_args a = { &k->plan, &p->plan, sv[1], { child[0], child[1], child[2] }, 0 };
        child_exec(&a, init->pid);
    }
    close(sv[1]);
    close_child_fds(child);
    if (pid < 0) { close(sv[0]); close_streams(p); return -1; }
    return finish_spawn(k, p, pid, sv[0], p->plan.terminal, 0);
}

/** START: the child execs on 's'; a successful execve closes its end of the sync socket
 *  (O_CLOEXEC), so EOF means started and an 'e' line means it failed. */
int keeper_start(struct keeper *k, struct kproc *p)
{
    if (k->plan.oci) return oci_start(k, p);
    if (p->status != PS_CREATED || p->sync_fd < 0) return kerr_fmt("start: %s: not in created state", p->id[0] ? p->id : "init");
    if (send_byte(p->sync_fd, SYNC_START) < 0) return kerr_set("start", p->id[0] ? p->id : "init", errno);
    struct pollfd pfd = { p->sync_fd, POLLIN, 0 };
    char buf[sizeof kerr + 1];
    int n;
    do n = poll(&pfd, 1, START_TIMEOUT_MS);
    while (n < 0 && errno == EINTR);
    ssize_t r = n > 0 ? recv(p->sync_fd, buf, sizeof buf - 1, 0) : -1;
    xclose(&p->sync_fd);
    if (n == 0) return kerr_fmt("start: %s: no execve within %d ms", p->id[0] ? p->id : "init", START_TIMEOUT_MS);
    if (r > 0 && buf[0] == SYNC_ERROR) { buf[r] = 0; return kerr_fmt("%s", buf + 1); }
    if (p->status == PS_CREATED) p->status = PS_RUNNING;
    return 0;
}

static void exit_file_name(const struct kproc *p, char *out, size_t n)
{
    if (p->id[0]) snprintf(out, n, "exec-%s", p->id);
    else snprintf(out, n, "init");
}

void keeper_exited(struct keeper *k, struct kproc *p, int wstatus)
{
    char dir[KPATH], name[KEEPER_MAX_ID + 8], body[128];
    p->exit_status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    p->exited_at = now_real();
    p->status = PS_STOPPED;
    xclose(&p->sync_fd);
    /* Durable first: a berthd that restarts after this point finds the exit (header §4). */
    snprintf(dir, sizeof dir, "%s/exits", k->dir);
    exit_file_name(p, name, sizeof name);
    snprintf(body, sizeof body, "pid %d\nstatus %d\nexited_at %lld.%09ld\n", (int)p->pid,
             p->exit_status, (long long)p->exited_at.tv_sec, p->exited_at.tv_nsec);
    if (write_atomic(dir, name, body) < 0) fprintf(stderr, "keeper: %s\n", kerr);
    /* Drain what the process wrote before it exited, then give the readers EOF. */
    p->out.closing = p->err.closing = 1;
    stream_pump(&p->out);
    stream_pump(&p->err);
    stream_close(&p->in);
    xclose(&p->pty);
    /* Without its own pid namespace nothing ends the init's children when it exits; like
     * containerd's shim, end them so the container's lifetime stays the init's. */
    if (p == &k->procs[0] && !k->plan.oci && !k->plan.ns_new[NS_PID] && cgroup_enabled())
        keeper_kill_all(k, SIGKILL);
    keeper_send_exit(k, p, -1);
}

void keeper_forget_exit(struct keeper *k, struct kproc *p)
{
    char path[KPATH], name[KEEPER_MAX_ID + 8];
    exit_file_name(p, name, sizeof name);
    snprintf(path, sizeof path, "%s/exits/%s", k->dir, name);
    unlink(path);
    p->acked = 1;
}

int keeper_kill_all(struct keeper *k, int sig)
{
    struct kproc *init = &k->procs[0];
    if (k->plan.oci) {
        char s[16];
        snprintf(s, sizeof s, "%d", sig);
        return oci_simple(k, "kill", "--all", s);
    }
    if (!cgroup_enabled()) {
        if (init->status != PS_STOPPED && kill(init->pid, sig) < 0) return kerr_set("kill", "init", errno);
        return 0;
    }
    static pid_t pids[4096];
    int n = cgroup_pids(pids, 4096);
    if (n < 0) return -1;
    for (int i = 0; i < n; i++) kill(pids[i], sig);
    /* A v1-frozen task does not die until thawed (freezer-subsystem.rst). */
    if (sig == SIGKILL && cgroup_frozen()) cgroup_freeze(0);
    return 0;
}
