/* init.c - what runs in the container's processes before execve: the init (new namespaces,
 * rootfs) and exec'd processes (setns into the init's namespaces), then the common process
 * setup: stdio or pty, rlimits, cwd, user and capabilities, no_new_privs, seccomp, the
 * executable lookup, READY, wait for START, execve. Any failure goes back to the keeper as
 * one error line over the sync socket; a successful execve closes the socket (O_CLOEXEC),
 * which is how the keeper learns that START worked. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* SwiftPM does not pass -D_GNU_SOURCE */
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include "keeper.h"

void child_fail(int sync_fd)
{
    char msg[sizeof kerr + 1];
    msg[0] = SYNC_ERROR;
    size_t n = strlen(kerr);
    memcpy(msg + 1, kerr, n);
    send(sync_fd, msg, n + 1, MSG_NOSIGNAL);
    _exit(1);
}

/** Blocks until the keeper sends `want`; exits quietly if the keeper went away. */
static void wait_for(int sync_fd, char want)
{
    char c;
    ssize_t r = xread(sync_fd, &c, 1);
    if (r != 1 || c != want) _exit(1);
}

static const char *env_path(const struct proc_plan *p)
{
    for (size_t i = 0; i < p->env.n; i++)
        if (!strncmp(p->env.v[i], "PATH=", 5)) return p->env.v[i] + 5;
    return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
}

/** Resolves argv[0] like execvp(3) in the container's root, as the process's own user, so
 *  a missing binary fails create (as runc does) and not start. Messages follow runc's. */
static int lookup(const struct proc_plan *p, char *out, size_t n)
{
    const char *name = p->args.v[0];
    struct stat st;
    if (strchr(name, '/')) {
        if (stat(name, &st) < 0) return kerr_fmt("exec: \"%s\": stat %s: %s", name, name, errno_text(errno));
        if (S_ISDIR(st.st_mode) || access(name, X_OK) < 0)
            return kerr_fmt("exec: \"%s\": permission denied", name);
        snprintf(out, n, "%s", name);
        return 0;
    }
    const char *path = env_path(p);
    while (*path) {
        const char *colon = strchrnul(path, ':');
        int len = (int)(colon - path);
        snprintf(out, n, "%.*s/%s", len ? len : 1, len ? path : ".", name);
        if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0) return 0;
        path = *colon ? colon + 1 : colon;
    }
    return kerr_fmt("exec: \"%s\": executable file not found in $PATH", name);
}

static int to_stdio(int fd, int target)
{
    if (fd == target) return fcntl(fd, F_SETFD, 0) < 0 ? kerr_set("fcntl", "stdio", errno) : 0;
    if (dup2(fd, target) < 0) return kerr_set("dup2", "stdio", errno);
    return 0;
}

/** The init's pty is also the container's /dev/console (OCI config.md "process.terminal"). */
static void bind_console(const char *slave)
{
    int fd = xopen("/dev/console", O_WRONLY | O_CREAT | O_NOCTTY, 0600);
    if (fd < 0 && errno != EEXIST) return;
    xclose(&fd);
    mount(slave, "/dev/console", NULL, MS_BIND, NULL);
}

/** Opens a pty in the container's own devpts instance so `tty` names /dev/pts/N inside;
 *  the master goes to the keeper with READY. */
static int setup_terminal(const struct child_args *a, int *master)
{
    char name[64];
    int m = xopen("/dev/ptmx", O_RDWR | O_NOCTTY, 0);
    if (m < 0) return kerr_set("open pty master", "/dev/ptmx", errno);
    if (unlockpt(m) < 0 || ptsname_r(m, name, sizeof name) != 0) return kerr_set("unlockpt", "/dev/ptmx", errno);
    int s = xopen(name, O_RDWR | O_NOCTTY, 0);
    if (s < 0) return kerr_set("open pty slave", name, errno);
    struct winsize ws = { .ws_row = a->proc->height, .ws_col = a->proc->width };
    if ((ws.ws_row || ws.ws_col) && ioctl(m, TIOCSWINSZ, &ws) < 0) return kerr_set("TIOCSWINSZ", name, errno);
    /* A new session so the pty can become the controlling terminal (credentials(7)). */
    if (setsid() < 0) return kerr_set("setsid", name, errno);
    if (ioctl(s, TIOCSCTTY, 0) < 0) return kerr_set("TIOCSCTTY", name, errno);
    for (int i = 0; i < 3; i++) if (dup2(s, i) < 0) return kerr_set("dup2", name, errno);
    if (a->is_init) bind_console(name);
    close(s);
    *master = m;
    return 0;
}

static int setup_stdio(const struct child_args *a, int *master)
{
    *master = -1;
    if (a->proc->terminal) return setup_terminal(a, master);
    for (int i = 0; i < 3; i++) if (to_stdio(a->stdio[i], i) < 0) return -1;
    return 0;
}

static void send_ready(int sync_fd, int master)
{
    char c = SYNC_READY;
    if (send_with_fd(sync_fd, &c, 1, master) < 0) _exit(1);
}

/** Makes `path` and its missing parents (mode 0755), as runc does for an init's cwd that the
 *  image lacks (runc 1.1.5 creates it; containerd + runc ran `--cwd /nope` in pwd). */
static int make_dirs(const char *path)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return kerr_set("cwd", path, ENAMETOOLONG);
    memcpy(buf, path, n + 1);
    for (char *s = buf + 1; ; s++) {
        if (*s != '/' && *s != 0) continue;
        char c = *s;
        *s = 0;
        if (mkdir(buf, 0755) < 0 && errno != EEXIST) return kerr_set("mkdir cwd", buf, errno);
        *s = c;
        if (c == 0) return 0;
    }
}

/** The home folder of `uid` in the container's /etc/passwd, or "/" when there is none: runc
 *  adds HOME this way when the process env has none (containerd + runc printed HOME=/ for an
 *  image without /etc/passwd). Copies into `home`. */
static void home_of(uid_t uid, char *home, size_t size)
{
    snprintf(home, size, "/");
    FILE *f = fopen("/etc/passwd", "re");
    if (!f) return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *field[7] = { 0 };
        char *s = line;
        int k = 0;
        for (; k < 7 && s; k++) field[k] = strsep(&s, ":");
        if (k < 7 || !field[5] || strtoul(field[2], NULL, 10) != uid) continue;
        if (field[5][0]) snprintf(home, size, "%s", field[5]);
        break;
    }
    fclose(f);
}

/** The process env with HOME added when it has none. */
static char **env_with_home(const struct proc_plan *p)
{
    size_t n = p->env.v ? p->env.n : 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(p->env.v[i], "HOME=", 5) == 0) return p->env.v;
    char **env = calloc(n + 2, sizeof *env);
    char home[PATH_MAX], *entry = malloc(PATH_MAX + 6);
    static char *no_env[] = { NULL };  /* static: a compound literal would die on return */
    if (!env || !entry) return p->env.v ? p->env.v : no_env;
    home_of(p->uid, home, sizeof home);
    snprintf(entry, PATH_MAX + 6, "HOME=%s", home);
    for (size_t i = 0; i < n; i++) env[i] = p->env.v[i];
    env[n] = entry;
    return env;
}

/** Common to the init and exec'd processes, in the order runc uses: seccomp goes last when
 *  no_new_privs is set, else before the capabilities are dropped (loading a filter without
 *  no_new_privs needs CAP_SYS_ADMIN, seccomp(2)). */
static void process_setup(const struct child_args *a)
{
    const struct proc_plan *p = a->proc;
    int seccomp_late = p->nnp, master;
    char path[PATH_MAX];
    umask((mode_t)p->umask);
    if (setup_stdio(a, &master) < 0 || apply_rlimits(p) < 0) child_fail(a->sync_fd);
    const char *cwd = p->cwd ? p->cwd : "/";
    if (a->is_init && make_dirs(cwd) < 0) child_fail(a->sync_fd);
    if (chdir(cwd) < 0) { kerr_set("chdir to cwd", cwd, errno); child_fail(a->sync_fd); }
    if (!seccomp_late && apply_seccomp(a->ctr) < 0) child_fail(a->sync_fd);
    if (apply_user_and_caps(p) < 0) child_fail(a->sync_fd);
    if (p->nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        kerr_set("prctl", "PR_SET_NO_NEW_PRIVS", errno);
        child_fail(a->sync_fd);
    }
    if (lookup(p, path, sizeof path) < 0) child_fail(a->sync_fd);
    char **env = env_with_home(p);
    send_ready(a->sync_fd, master);
    if (master >= 0) close(master);
    wait_for(a->sync_fd, SYNC_START);
    if (seccomp_late && apply_seccomp(a->ctr) < 0) child_fail(a->sync_fd);
    execve(path, p->args.v, env);
    kerr_set("exec", path, errno);
    child_fail(a->sync_fd);
}

static int join_ns_path(const char *path, int type)
{
    int fd = xopen(path, O_RDONLY, 0);
    if (fd < 0) return kerr_set("open namespace", path, errno);
    int rc = setns(fd, type);
    int err = errno;
    xclose(&fd);
    return rc < 0 ? kerr_set("setns", path, err) : 0;
}

static int become_root_in_userns(void)
{
    if (setresgid(0, 0, 0) < 0) return kerr_set("setresgid", "user namespace gid 0", errno);
    if (setresuid(0, 0, 0) < 0) return kerr_set("setresuid", "user namespace uid 0", errno);
    return 0;
}

static int init_namespaces(const struct ctr_plan *c)
{
    static const int types[NS_COUNT] = { [NS_NET] = CLONE_NEWNET, [NS_IPC] = CLONE_NEWIPC,
                                         [NS_UTS] = CLONE_NEWUTS };
    if (c->ns_new[NS_USER] && become_root_in_userns() < 0) return -1;
    for (int k = 0; k < NS_COUNT; k++)  /* a pid namespace was joined by the keeper */
        if (c->ns_path[k] && k != NS_PID && join_ns_path(c->ns_path[k], types[k]) < 0) return -1;
    /* The cgroup namespace is made after we moved into the container's cgroup,
     * so that cgroup becomes the namespace's root (cgroup_namespaces(7)). */
    if (c->ns_new[NS_CGROUP] && unshare(CLONE_NEWCGROUP) < 0) return kerr_set("unshare", "cgroup namespace", errno);
    if (c->hostname && sethostname(c->hostname, strlen(c->hostname)) < 0)
        return kerr_set("sethostname", c->hostname, errno);
    return 0;
}

void child_init(const struct child_args *a)
{
    const struct ctr_plan *c = a->ctr;
    char adj[32];
    wait_for(a->sync_fd, SYNC_GO);
    if (cgroup_joins_itself(c) && cgroup_add_self() < 0) child_fail(a->sync_fd);
    if (init_namespaces(c) < 0) child_fail(a->sync_fd);
    if (c->oom_score_adj != INT64_MIN) {
        snprintf(adj, sizeof adj, "%lld", (long long)c->oom_score_adj);
        if (write_file("oom_score_adj", "/proc/self/oom_score_adj", adj) < 0) child_fail(a->sync_fd);
    }
    if (c->ns_new[NS_MOUNT]) {
        if (setup_rootfs(c) < 0 || finish_rootfs(c) < 0) child_fail(a->sync_fd);
    } else {
        kerr_fmt("rootfs: %s: native mode needs namespace mount", c->rootfs);
        child_fail(a->sync_fd);
    }
    process_setup(a);
    _exit(1);
}

/** Namespace files of /proc/PID/ns, by enum ns_kind (namespaces(7)). */
static const char *const ns_files[NS_COUNT] = {
    [NS_USER] = "user", [NS_MOUNT] = "mnt", [NS_PID] = "pid", [NS_UTS] = "uts",
    [NS_IPC] = "ipc", [NS_NET] = "net", [NS_CGROUP] = "cgroup",
};

void child_exec(const struct child_args *a, int init_pid)
{
    const struct ctr_plan *c = a->ctr;
    int fds[NS_COUNT];
    char path[64];
    /* Open every namespace first: after joining the mount namespace, /proc is the
     * container's and init_pid means something else there. The pid namespace was joined
     * by the keeper before fork (setns(2): CLONE_NEWPID affects children only). */
    if (cgroup_joins_itself(c) && cgroup_prepare_self() < 0) child_fail(a->sync_fd);
    for (int k = 0; k < NS_COUNT; k++) {
        fds[k] = -1;
        if (k == NS_PID || !(c->ns_new[k] || c->ns_path[k])) continue;
        snprintf(path, sizeof path, "/proc/%d/ns/%s", init_pid, ns_files[k]);
        if ((fds[k] = xopen(path, O_RDONLY, 0)) < 0) { kerr_set("open namespace", path, errno); child_fail(a->sync_fd); }
    }
    for (int k = 0; k < NS_COUNT; k++) {
        if (fds[k] < 0) continue;
        snprintf(path, sizeof path, "/proc/%d/ns/%s", init_pid, ns_files[k]);
        if (setns(fds[k], 0) < 0) { kerr_set("setns", path, errno); child_fail(a->sync_fd); }
        xclose(&fds[k]);
        if (k == NS_USER && become_root_in_userns() < 0) child_fail(a->sync_fd);
    }
    wait_for(a->sync_fd, SYNC_GO);
    if (cgroup_joins_itself(c) && cgroup_add_self() < 0) child_fail(a->sync_fd);
    process_setup(a);
    _exit(1);
}
