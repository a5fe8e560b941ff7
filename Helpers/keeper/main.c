/* main.c - `berth-keeper create --state DIR`: load the plan, daemonize (double fork +
 * setsid, so the keeper is not berthd's child and survives it), create the container, and
 * report "PID" or "step: path: reason" to the spawning process, which exits 0 or 1. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* SwiftPM does not pass -D_GNU_SOURCE */
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/close_range.h>
#include "keeper.h"

static struct keeper K;

static void usage(void)
{
    fprintf(stderr, "usage: berth-keeper create --state DIR\n");
    exit(2);
}

/** Writes the error line where berthd looks for it: DIR/error. */
static void save_error(const char *dir, const char *line)
{
    char path[KPATH];
    if (spf(path, sizeof path, "%s/error", dir) < 0) return;
    int fd = xopen(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return;
    if (xwrite_all(fd, line, strlen(line)) == 0) xwrite_all(fd, "\n", 1);
    close(fd);
}

static int write_pid_file(const char *dir, const char *name, pid_t pid)
{
    char path[KPATH], s[32];
    snprintf(s, sizeof s, "%d\n", (int)pid);
    if (spf(path, sizeof path, "%s/%s", dir, name) < 0) return kerr_set("write pid file", dir, ENAMETOOLONG);
    int fd = xopen(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || xwrite_all(fd, s, strlen(s)) < 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        return kerr_set("write pid file", path, e);
    }
    close(fd);
    return 0;
}

static int listen_control(struct keeper *k)
{
    /* Bound through /proc/self/fd/N of the state directory: a sockaddr_un holds 108 bytes, and
     * DIR/control.sock in full would not fit when the daemon's state folder is deep. */
    char sock[KPATH];
    if (spf(sock, sizeof sock, "%s/control.sock", k->dir) < 0)
        return kerr_set("control socket", k->dir, ENAMETOOLONG);
    unlink(sock);
    int dirfd = open(k->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) return kerr_set("open state directory", k->dir, errno);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "/proc/self/fd/%d/control.sock", dirfd);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        int e = errno;
        close(dirfd);
        return kerr_set("socket", sock, e);
    }
    mode_t old = umask(0177); /* 0600: only root talks to the keeper */
    int rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    umask(old);
    close(dirfd);
    if (rc < 0 || listen(fd, KEEPER_MAX_CLIENTS) < 0) {
        int e = errno;
        close(fd);
        return kerr_set("listen", sock, e);
    }
    k->listen_fd = fd;
    return 0;
}

/** SIGCHLD through a signalfd, so reaping happens in the loop and never in a handler. */
static int setup_signals(struct keeper *k)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) return kerr_set("sigprocmask", "SIGCHLD", errno);
    k->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (k->signal_fd < 0) return kerr_set("signalfd", "SIGCHLD", errno);
    return 0;
}

static void redirect_stdio(const char *dir)
{
    char path[KPATH];
    int null = open("/dev/null", O_RDWR);
    int log = spf(path, sizeof path, "%s/log", dir) < 0 ? -1
            : open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    dup2(null, 0);
    dup2(null, 1);
    dup2(log >= 0 ? log : null, 2);
    if (null > 2) close(null);
    if (log > 2) close(log);
}

static int prepare(struct keeper *k)
{
    char path[KPATH];
    /* The keeper reaps the init even after runc (mode oci) has exited, and any process
     * whose parent dies inside the keeper's subtree (prctl(2) PR_SET_CHILD_SUBREAPER). */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) return kerr_set("prctl", "PR_SET_CHILD_SUBREAPER", errno);
    if (setup_signals(k) < 0 || listen_control(k) < 0) return -1;
    k->self_pidns = xopen("/proc/self/ns/pid", O_RDONLY, 0);
    if (k->self_pidns < 0) return kerr_set("open", "/proc/self/ns/pid", errno);
    snprintf(path, sizeof path, "%s/exits", k->dir);
    if (mkdir(path, 0700) < 0 && errno != EEXIST) return kerr_set("mkdir", path, errno);
    return 0;
}

/** After a failed create: whatever exists of the container goes (the error line is kept
 *  by the caller). runc removes what a failed `runc create` made; delete --force covers a
 *  container it left behind (a timeout, a failure after create). */
static void undo_create(struct keeper *k)
{
    if (k->plan.oci) {
        oci_simple(k, "delete", "--force", NULL);
    } else if (k->procs[0].pid > 0) {
        kill(k->procs[0].pid, SIGKILL);
        while (waitpid(k->procs[0].pid, NULL, 0) < 0 && errno == EINTR) {}
        cgroup_remove();
    }
}

/** The daemonized keeper: create the container, report, serve until DELETE. */
static void keeper_main(struct keeper *k)
{
    char line[sizeof kerr + 16];
    redirect_stdio(k->dir);
    /* Not pinning berthd's working directory's filesystem; the keeper's files get the
     * modes they ask for. */
    if (chdir("/") < 0) { /* "/" always exists */ }
    umask(022);
    k->oom_fd = -1;
    for (int i = 0; i < KEEPER_MAX_CLIENTS; i++) k->clients[i] = -1;
    int rc = prepare(k);
    if (rc == 0) rc = k->plan.oci ? oci_create(k) : keeper_create_native(k);
    if (rc == 0) rc = write_pid_file(k->dir, "keeper.pid", getpid());
    if (rc == 0) rc = write_pid_file(k->dir, "init.pid", k->procs[0].pid);
    if (rc < 0) {
        snprintf(line, sizeof line, "e%s\n", kerr);
        undo_create(k);
        xwrite_all(keeper_report_fd, line, strlen(line));
        _exit(1);
    }
    if (k->plan.oci && cgroup_use_existing(&k->plan) < 0) fprintf(stderr, "keeper: %s\n", kerr);
    k->oom_fd = cgroup_oom_fd();
    snprintf(line, sizeof line, "o%d\n", (int)k->procs[0].pid);
    xwrite_all(keeper_report_fd, line, strlen(line));
    xclose(&keeper_report_fd);
    /* Every way out is logged: a keeper that ends without DELETE leaves its container
     * unsupervised, and DIR/log is all that tells why. */
    if (keeper_loop(k) < 0) fprintf(stderr, "keeper: exiting: %s\n", kerr);
    else fprintf(stderr, "keeper: exiting after DELETE\n");
    char sock[KPATH];
    if (spf(sock, sizeof sock, "%s/control.sock", k->dir) == 0) unlink(sock);
    _exit(0);
}

/** Reads the keeper's one-line report. Not until EOF: a created init still holds a copy
 *  of the pipe until it closes it. */
static int read_report(int fd, char *buf, size_t n)
{
    size_t got = 0;
    while (got + 1 < n) {
        ssize_t r = xread(fd, buf + got, n - 1 - got);
        if (r <= 0) break;
        got += (size_t)r;
        if (memchr(buf, '\n', got)) break;
    }
    buf[got] = 0;
    char *nl = strchr(buf, '\n');
    if (nl) *nl = 0;
    return got > 0 ? 0 : -1;
}

/** Forks the keeper off: fork, setsid, fork. Returns the first child's pid. */
static pid_t spawn_keeper(int pp[2])
{
    pid_t pid = fork();
    if (pid != 0) return pid;
    close(pp[0]);
    keeper_report_fd = pp[1];
    /* Second fork after setsid: the keeper is no session leader, so it can never gain a
     * controlling terminal, and its parent is whatever reaps orphans, not berthd. */
    if (setsid() < 0 || (pid = fork()) < 0) _exit(1);
    if (pid > 0) _exit(0);
    keeper_main(&K);
    _exit(1);
}

/** Prints what the keeper reported: "PID" on stdout (0) or the error line (1). */
static int relay_report(int fd, const char *dir)
{
    char report[sizeof kerr + 16];
    if (read_report(fd, report, sizeof report) < 0 || (report[0] != 'o' && report[0] != 'e'))
        spf(report, sizeof report, "ekeeper: %s: exited without a report", dir);
    if (report[0] == 'o') {
        printf("%s\n", report + 1);
        return 0;
    }
    /* EOF means the keeper and the init are gone: nothing is left when we return. */
    char rest[64];
    while (xread(fd, rest, sizeof rest) > 0) {}
    fprintf(stderr, "%s\n", report + 1);
    save_error(dir, report + 1);
    return 1;
}

static int run_create(const char *state)
{
    static char dir[PATH_MAX], plan[PATH_MAX + 8];
    int pp[2];
    if (!realpath(state, dir)) { fprintf(stderr, "state directory: %s: %s\n", state, errno_text(errno)); return 1; }
    K.dir = dir;
    /* Paths under DIR are built in KPATH-byte buffers (DIR/exits/NAME, DIR/exec-ID.pid). */
    if (strlen(dir) > KEEPER_MAX_STATE_DIR) {
        kerr_fmt("state directory: %.64s...: longer than %d bytes", dir, KEEPER_MAX_STATE_DIR);
        fprintf(stderr, "%s\n", kerr);
        return 1;
    }
    snprintf(plan, sizeof plan, "%s/plan", dir);
    if (plan_load_container(plan, &K.plan) < 0) {
        fprintf(stderr, "%s\n", kerr);
        save_error(dir, kerr);
        return 1;
    }
    if (pipe2(pp, O_CLOEXEC) < 0) { fprintf(stderr, "pipe: report: %s\n", errno_text(errno)); return 1; }
    pid_t pid = spawn_keeper(pp);
    close(pp[1]);
    if (pid < 0) { fprintf(stderr, "fork: keeper: %s\n", errno_text(errno)); return 1; }
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    return relay_report(pp[0], dir);
}

/** fds berthd's posix_spawn let through (Swift does not mark every fd close-on-exec) must
 *  not live on in the keeper and its containers (close_range(2)). */
static void close_inherited_fds(void)
{
    if (close_range(3, ~0U, 0) == 0) return;
    for (int fd = 3; fd < 1024; fd++) close(fd);
}

int main(int argc, char **argv)
{
    if (argc != 4 || strcmp(argv[1], "create") || strcmp(argv[2], "--state")) usage();
    close_inherited_fds();
    return run_create(argv[3]);
}
