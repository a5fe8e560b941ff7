/* oci.c - mode oci: the keeper drives an external OCI runtime (runc) through the bundle
 * berthd wrote, and stays the parent of the container's processes: `runc create` and
 * `runc exec --detach` exit once the process runs, and the orphan is reparented to the
 * keeper (PR_SET_CHILD_SUBREAPER), which reaps it and records its real exit status.
 * Commands and flags: runc(8), runc-create(8), runc-exec(8), runc-kill(8). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* SwiftPM does not pass -D_GNU_SOURCE */
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include "keeper.h"

#define MAX_ARGS 24
/** How long one runtime command may take before the keeper gives up on it. */
#define RUNTIME_TIMEOUT_MS 60000

/** argv for the runtime: global options first, then the command's. */
struct argv { const char *v[MAX_ARGS]; int n; };

static void arg(struct argv *a, const char *s)
{
    if (s && a->n < MAX_ARGS - 1) { a->v[a->n++] = s; a->v[a->n] = NULL; }
}

static void runtime_argv(struct keeper *k, struct argv *a, const char *verb)
{
    static char log[PATH_MAX];
    snprintf(log, sizeof log, "%s/runtime.log", k->dir);
    a->n = 0;
    arg(a, k->plan.runtime);
    if (k->plan.runtime_root) { arg(a, "--root"); arg(a, k->plan.runtime_root); }
    /* JSON log lines carry the runtime's error message for the reply. */
    arg(a, "--log"); arg(a, log); arg(a, "--log-format"); arg(a, "json");
    arg(a, verb);
}

/** The last "msg" of the runtime's JSON log: runc's own error line. */
static void last_log_msg(struct keeper *k, char *out, size_t n)
{
    char path[KPATH], buf[8192];
    snprintf(path, sizeof path, "%s/runtime.log", k->dir);
    out[0] = 0;
    if (read_file(path, buf, sizeof buf) <= 0) return;
    char *m = NULL;
    for (char *p = buf; (p = strstr(p, "\"msg\":\"")); p += 7) m = p + 7;
    if (!m) return;
    size_t i = 0;
    for (; *m && *m != '"' && i + 1 < n; m++) {
        if (*m == '\\' && m[1]) m++;
        out[i++] = *m;
    }
    out[i] = 0;
}

static void child_exec_runtime(const struct argv *a, const int stdio[3])
{
    sigset_t none;
    sigemptyset(&none);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int i = 0; i < 3; i++)
        if (stdio && stdio[i] >= 0 && dup2(stdio[i], i) < 0) _exit(126);
    execv(a->v[0], (char *const *)a->v);
    _exit(127);
}

/** Waits for pid with a deadline; SIGKILLs it when the deadline passes. */
static int wait_runtime(pid_t pid, int *status)
{
    for (int64_t end = now_ms() + RUNTIME_TIMEOUT_MS; ; ) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid) return 0;
        if (r < 0 && errno != EINTR) return -1;
        if (now_ms() > end) { kill(pid, SIGKILL); waitpid(pid, status, 0); return -1; }
        poll(NULL, 0, 2);
    }
}

/** Runs the runtime and waits; an error names the command and carries runc's message. */
static int run(struct keeper *k, const struct argv *a, const int stdio[3], int console_listen, int *master)
{
    pid_t pid = fork();
    if (pid < 0) return kerr_set("fork", a->v[0], errno);
    if (pid == 0) child_exec_runtime(a, stdio);
    if (console_listen >= 0) {
        /* runc connects to the console socket and sends the pty master (runc(8)
         * --console-socket) before it exits. */
        struct pollfd pfd = { console_listen, POLLIN, 0 };
        for (int64_t end = now_ms() + RUNTIME_TIMEOUT_MS; *master < 0 && now_ms() < end; ) {
            if (poll(&pfd, 1, 50) <= 0) { if (waitpid(pid, NULL, WNOHANG) == pid) { pid = -1; break; } continue; }
            int c = accept4(console_listen, NULL, NULL, SOCK_CLOEXEC);
            char b[256];
            if (c >= 0) { recv_with_fd(c, b, sizeof b, master); close(c); }
        }
    }
    int st = 0;
    if (pid > 0 && wait_runtime(pid, &st) < 0) return kerr_fmt("%s %s: did not finish", a->v[0], a->v[a->n - 1]);
    if (pid < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char msg[400];
        last_log_msg(k, msg, sizeof msg);
        return kerr_fmt("%s %s: %s", a->v[0], k->plan.id, msg[0] ? msg : "failed");
    }
    return 0;
}

static int console_socket(struct keeper *k, const char *name, char *path, size_t n)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    if (spf(path, n, "%s/%s", k->dir, name) < 0 || strlen(path) >= sizeof a.sun_path)
        return kerr_set("console socket", k->dir, ENAMETOOLONG);
    strcpy(a.sun_path, path);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 1) < 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        return kerr_set("console socket", path, e);
    }
    return fd;
}

static int read_pid(const char *path, pid_t *pid)
{
    char buf[32];
    int64_t v;
    if (read_file(path, buf, sizeof buf) <= 0) return kerr_set("read pid file", path, errno ? errno : EIO);
    buf[strcspn(buf, "\n")] = 0;
    if (parse_i64(buf, 1, INT32_MAX, &v) < 0) return kerr_fmt("read pid file: %s: not a pid", path);
    *pid = (pid_t)v;
    return 0;
}

static void attach_master(struct kproc *p, int master)
{
    p->pty = master;
    if (p->in.src >= 0) p->in.dst = fcntl(master, F_DUPFD_CLOEXEC, 3);
    if (p->out.dst >= 0) p->out.src = fcntl(master, F_DUPFD_CLOEXEC, 3);
    stream_init(&p->in, p->in.src, p->in.dst, 1);
    stream_init(&p->out, p->out.src, p->out.dst, 0);
}

/** create or exec --detach: stdio wired, console socket if a terminal, pid file read. */
static int spawn(struct keeper *k, struct kproc *p, struct argv *a, const char *pidfile, int terminal)
{
    int child[3], listen_fd = -1, master = -1;
    char sock[KPATH];
    if (keeper_stdio_prepare(p, &p->plan, child) < 0) return -1;
    if (terminal) {
        listen_fd = console_socket(k, p->id[0] ? "console-exec.sock" : "console.sock", sock, sizeof sock);
        if (listen_fd < 0) { for (int i = 0; i < 3; i++) xclose(&child[i]); return -1; }
        arg(a, "--console-socket");
        arg(a, sock);
    }
    arg(a, k->plan.id);
    int rc = run(k, a, terminal ? NULL : child, listen_fd, &master);
    for (int i = 0; i < 3; i++) xclose(&child[i]);
    if (listen_fd >= 0) { close(listen_fd); unlink(sock); }
    if (rc == 0 && terminal && master < 0) rc = kerr_fmt("%s: %s: no pty master from the runtime", a->v[0], sock);
    if (rc == 0) rc = read_pid(pidfile, &p->pid);
    if (rc < 0) {
        if (master >= 0) close(master);
        return -1;
    }
    if (master >= 0) attach_master(p, master);
    return 0;
}

int oci_create(struct keeper *k)
{
    struct kproc *p = &k->procs[0];
    struct argv a;
    char pidfile[KPATH];
    memset(p, 0, sizeof *p);
    p->used = 1;
    p->sync_fd = p->pty = -1;
    p->plan = k->plan.proc;
    snprintf(pidfile, sizeof pidfile, "%s/init.pid", k->dir);
    runtime_argv(k, &a, "create");
    arg(&a, "--bundle"); arg(&a, k->plan.oci_bundle);
    arg(&a, "--pid-file"); arg(&a, pidfile);
    int rc = spawn(k, p, &a, pidfile, k->plan.proc.terminal);
    memset(&p->plan, 0, sizeof p->plan); /* the init's plan belongs to k->plan */
    if (rc == 0) p->status = PS_CREATED;
    return rc;
}

/** EXEC in mode oci only records the process: runc has no create step for exec. */
int oci_exec(struct keeper *k, struct kproc *p)
{
    if (k->procs[0].status != PS_RUNNING) return kerr_fmt("exec: %s: container is not running", p->id);
    if (!p->plan.oci_process) return kerr_fmt("exec: %s: mode oci needs an oci_process record", p->id);
    p->sync_fd = p->pty = -1;
    p->out.src = p->out.dst = p->err.src = p->err.dst = p->in.src = p->in.dst = -1;
    p->status = PS_CREATED;
    return 0;
}

int oci_start(struct keeper *k, struct kproc *p)
{
    struct argv a;
    if (p->status != PS_CREATED) return kerr_fmt("start: %s: not in created state", p->id[0] ? p->id : "init");
    if (p == &k->procs[0]) {
        runtime_argv(k, &a, "start");
        arg(&a, k->plan.id);
        if (run(k, &a, NULL, -1, NULL) < 0) return -1;
        p->status = PS_RUNNING;
        return 0;
    }
    char pidfile[KPATH];
    if (spf(pidfile, sizeof pidfile, "%s/exec-%s.pid", k->dir, p->id) < 0) return kerr_set("exec", p->id, ENAMETOOLONG);
    runtime_argv(k, &a, "exec");
    arg(&a, "--detach");
    arg(&a, "--pid-file"); arg(&a, pidfile);
    arg(&a, "--process"); arg(&a, p->plan.oci_process);
    if (spawn(k, p, &a, pidfile, p->plan.terminal) < 0) return -1;
    p->status = PS_RUNNING;
    return 0;
}

int oci_simple(struct keeper *k, const char *verb, const char *arg1, const char *arg2)
{
    struct argv a;
    runtime_argv(k, &a, verb);
    /* runc kill ID SIGNAL and runc delete --force ID: options before the id. */
    int opt1 = arg1 && arg1[0] == '-';
    if (opt1) arg(&a, arg1);
    arg(&a, k->plan.id);
    if (arg1 && !opt1) arg(&a, arg1);
    if (arg2) arg(&a, arg2);
    return run(k, &a, NULL, -1, NULL);
}
