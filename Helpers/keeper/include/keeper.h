/*
 * keeper.h - internal types and functions of berth-keeper. The public contract (command
 * line, plan format, control protocol) is in keeper_protocol.h.
 *
 * Error convention: a function that fails fills the global error line with
 * kerr_set(step, path, errno) ("step: path: reason") and returns -1.
 */
#ifndef KEEPER_H
#define KEEPER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include "keeper_protocol.h"

/** Size of path buffers on the keeper's side. DIR must leave room for "/control.sock" in a
 *  sockaddr_un (108 bytes) and cgroup directories are at most 512 bytes, so 512 is plenty;
 *  smaller frames keep the long-lived keeper's stack, and so its PSS, small. The code that
 *  runs in container processes uses PATH_MAX. */
#define KPATH 640

/* ---- errors and syscall wrappers (sys.c) ---- */

/** The last error line, "step: path: reason". */
extern char kerr[512];
/** strerror(err) as Go (runc) spells it: first letter in lower case. */
const char *errno_text(int err);
/** Records "step: path: errno_text(err)" and returns -1. */
int kerr_set(const char *step, const char *path, int err);
/** Records a formatted error line and returns -1. */
int kerr_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/** open(2) with O_CLOEXEC, retrying EINTR. */
int xopen(const char *path, int flags, mode_t mode);
/** close(2) that ignores EINTR (Linux closes the fd anyway, close(2) NOTES). */
void xclose(int *fd);
/** read(2) retrying EINTR. */
ssize_t xread(int fd, void *buf, size_t n);
/** write(2) retrying EINTR and short writes (blocking fds). */
int xwrite_all(int fd, const void *buf, size_t n);
/** Writes a small string to a file (cgroup and proc knobs); errors name the path. */
int write_file(const char *step, const char *path, const char *s);
/** Reads up to n-1 bytes of a file into buf, NUL-terminated. */
ssize_t read_file(const char *path, char *buf, size_t n);
/** Writes path atomically: tmp file, fsync, rename, fsync of the directory. */
int write_atomic(const char *dir, const char *name, const char *s);
/** mkdir -p; mode for every new directory. */
int mkdir_p(const char *path, mode_t mode);
/** snprintf that says -1 when the result was cut short (paths built from plan values). */
int spf(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/** Closes every fd above 2 but those in keep: a container process must not hold the
 *  keeper's other pipes, FIFOs or sockets while it waits for START (close_range(2)). */
void close_fds_except(const int *keep, int n);
/** Current CLOCK_REALTIME. */
struct timespec now_real(void);
/** Milliseconds of CLOCK_MONOTONIC. */
int64_t now_ms(void);
/** Parses a decimal integer in [lo, hi]; -1 on anything else. */
int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out);

/* ---- plans (plan.c) ---- */

/** A list of strings (pointers into the plan buffer). */
struct strv { char **v; size_t n; };
/** A compound record: its fields. */
struct rec { char **f; size_t n; };
/** A list of compound records. */
struct recv { struct rec *v; size_t n; };

/** What one process needs: the init's or an exec's. */
struct proc_plan {
    struct strv args, env, gids;
    struct strv cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
    struct recv rlimits;
    const char *cwd, *std_in, *std_out, *std_err, *oci_process;
    uid_t uid;
    gid_t gid;
    int terminal, nnp, umask;
    unsigned short width, height;
};

/** Namespace kinds, in the order they are joined. */
enum ns_kind { NS_USER, NS_MOUNT, NS_PID, NS_UTS, NS_IPC, NS_NET, NS_CGROUP, NS_COUNT };

/** The container description. */
struct ctr_plan {
    char *buf;
    size_t len;
    int oci;
    const char *id, *rootfs, *hostname, *cgroup_path, *cgroup_root;
    const char *runtime, *runtime_root, *oci_bundle;
    int readonly_rootfs, cgroup_version;
    int ns_new[NS_COUNT];            /**< 1: new namespace of this kind */
    const char *ns_path[NS_COUNT];   /**< join this one instead */
    struct recv rootfs_mounts, mounts, devices, uid_maps, gid_maps, seccomp_rules;
    struct recv sysctls, device_rules;
    struct strv masked, readonly, seccomp_archs;
    struct rec seccomp_default;      /**< n == 0: no seccomp */
    int64_t memory_limit, memory_swap, cpu_shares, cpu_quota, cpu_period, pids_limit;
    int64_t oom_score_adj;           /**< INT64_MIN: not set */
    struct proc_plan proc;
};

/** Reads and validates DIR/plan. */
int plan_load_container(const char *path, struct ctr_plan *p);
/** Reads and validates an exec plan (process records only); *buf must be freed. */
int plan_load_process(const char *path, struct proc_plan *p, char **buf);
/** Frees what plan_load_* allocated (not the struct itself). */
void plan_free_process(struct proc_plan *p);
void plan_free_container(struct ctr_plan *p);

/* ---- container side: run in the child, before execve (init.c, mounts.c, devices.c,
 *      caps.c, seccomp.c) ---- */

/** Messages on the keeper<->child sync socket. */
enum sync_msg { SYNC_GO = 'g', SYNC_READY = 'r', SYNC_START = 's', SYNC_ERROR = 'e' };

/** What the child receives from the keeper. */
struct child_args {
    const struct ctr_plan *ctr;
    const struct proc_plan *proc;
    int sync_fd;        /**< child's end of the sync socket */
    int stdio[3];       /**< fds to dup onto 0 1 2 (ignored with a terminal) */
    int is_init;
};

/** Body of the container's init: never returns. */
void child_init(const struct child_args *a) __attribute__((noreturn));
/** Body of an exec'd process after setns: never returns. */
void child_exec(const struct child_args *a, int init_pid) __attribute__((noreturn));
/** Sends "e<kerr>" on the sync socket and exits 1 (used by children). */
void child_fail(int sync_fd) __attribute__((noreturn));

/** Mounts the rootfs and the spec's mounts and pivots into the new root. */
int setup_rootfs(const struct ctr_plan *p);
/** Masked and read-only paths and the read-only root, after pivot_root. */
int finish_rootfs(const struct ctr_plan *p);
/** How open_in_root treats a missing path. */
enum { ROOT_NO_CREATE, ROOT_CREATE_DIR, ROOT_CREATE_FILE };
/** Opens (O_PATH) an absolute container path below rootfd, symlinks resolved as if rootfd
 *  were "/", creating what is missing; errors read "step: shown: reason" (resolve.c). */
int open_in_root(int rootfd, const char *path, int create, const char *step, const char *shown);
/** "/proc/self/fd/N": a name for an O_PATH fd that mount(2) and friends accept. */
void fd_path(int fd, char *out, size_t n);
/** Creates the default and the plan's device nodes in the rootfs's /dev. */
int create_devices(const struct ctr_plan *p, int rootfd);
/** Applies the capability sets and switches user (caps.c). */
int apply_user_and_caps(const struct proc_plan *p);
/** Builds and loads the seccomp filter; no-op without seccomp_default. */
int apply_seccomp(const struct ctr_plan *p);
/** Applies rlimit records. */
int apply_rlimits(const struct proc_plan *p);

/* ---- cgroups (cgroups.c), keeper side ---- */

/** Creates the container's cgroups and writes the limits. */
int cgroup_create(const struct ctr_plan *p);
/** Mode oci: the runtime made the cgroups at cgroup_path; use them for PIDS, freezer state
 *  and OOM events without creating or removing anything. */
int cgroup_use_existing(const struct ctr_plan *p);
/** Moves pid into the container's cgroups. */
int cgroup_add(pid_t pid);
int cgroup_joins_itself(const struct ctr_plan *c);
int cgroup_prepare_self(void);
int cgroup_add_self(void);
/** Freezes (1) or thaws (0) the container. */
int cgroup_freeze(int frozen);
/** 1 if the container's cgroup is frozen. */
int cgroup_frozen(void);
/** Reads up to max pids from cgroup.procs; returns the count or -1. */
int cgroup_pids(pid_t *pids, int max);
/** Writes the plan's device_rule records (v1 devices.allow/deny). */
int cgroup_devices(const struct ctr_plan *p);
/** cgroup v2: builds the device program from rules and attaches it to dir (devices_bpf.c). */
int devices_bpf_attach(const char *dir, const struct recv *rules);
/** Removes the directories cgroup_create made (retries while busy). */
int cgroup_remove(void);
/** An fd that becomes readable on OOM (eventfd v1, inotify v2), or -1. */
int cgroup_oom_fd(void);
/** Consumes the OOM fd's readiness; returns 1 if an OOM kill happened. */
int cgroup_oom_check(int fd);
/** True if a cgroup was created. */
int cgroup_enabled(void);
/** v1: the host path of the container's cgroup in hierarchy `ctrl` (for cgroup mounts). */
int cgroup_v1_paths(char names[][32], char paths[][512], int max);

/* ---- stdio (stdio.c), keeper side ---- */

/** One direction of copying: src -> dst, with at most one pending chunk. */
struct stream {
    int src, dst;           /**< -1 when closed */
    int is_input;           /**< stdin: never drops */
    int closing;            /**< process exited: drain then close */
    char *pend;             /**< bytes read but not yet written */
    size_t plen, poff;
    int64_t stall_since;    /**< ms when dst became full, 0 if not stalled */
    uint64_t dropped;
};

/** Opens FIFO for the keeper's side of a stream (O_RDWR|O_NONBLOCK). */
int fifo_open(const char *path, int output);
/** Sets up a stream; takes ownership of both fds. */
void stream_init(struct stream *s, int src, int dst, int is_input);
/** Copies what can be copied now without blocking; closes on EOF. */
void stream_pump(struct stream *s);
/** Poll events wanted on src and dst right now. */
short stream_src_events(const struct stream *s);
short stream_dst_events(const struct stream *s);
/** Closes everything of the stream. */
void stream_close(struct stream *s);
/** True while the stream has open fds. */
int stream_open(const struct stream *s);
/** Receives an fd over a unix socket together with a message. */
ssize_t recv_with_fd(int sock, char *buf, size_t n, int *fd);
/** Sends a message and optionally an fd. */
int send_with_fd(int sock, const char *buf, size_t n, int fd);

/* ---- the keeper (keeper.c, control.c, oci.c) ---- */

enum proc_status { PS_CREATED, PS_RUNNING, PS_STOPPED };

/** A process the keeper is the parent of: the init or an exec. */
struct kproc {
    int used;
    char id[KEEPER_MAX_ID + 1];  /**< "" for the init */
    pid_t pid;
    enum proc_status status;
    int sync_fd;                 /**< until START: the child's sync socket */
    int pty;                     /**< pty master or -1 */
    struct stream out, err, in;
    int exit_status, acked;
    struct timespec exited_at;
    char *plan_buf;              /**< exec: its plan buffer */
    struct proc_plan plan;       /**< exec: its plan */
};

/** The keeper's whole state. */
struct keeper {
    const char *dir;
    struct ctr_plan plan;
    struct kproc procs[1 + KEEPER_MAX_EXECS];   /**< [0] is the init */
    int listen_fd, signal_fd, oom_fd, self_pidns;
    int clients[KEEPER_MAX_CLIENTS];
    int subscribed[KEEPER_MAX_CLIENTS];
    int oom_count;
    int deleting;
    int oci_paused;                /**< mode oci: runc pause succeeded */
};

/** Creates the container init (native mode), waiting for START. */
int keeper_create_native(struct keeper *k);
/** Creates an exec process (native mode), waiting for START. */
int keeper_create_exec(struct keeper *k, struct kproc *p);
/** Tells a created process to execve; waits for the result. */
int keeper_start(struct keeper *k, struct kproc *p);
/** Records an exit: file, streams, events. */
void keeper_exited(struct keeper *k, struct kproc *p, int wstatus);
/** ACK_EXIT: never report p's exit again and remove its exits/ file. */
void keeper_forget_exit(struct keeper *k, struct kproc *p);
/** The write end of the create report pipe; children close it. */
extern int keeper_report_fd;
/** Sends EVENT_EXIT for p to every subscriber (or to one client if fd >= 0). */
void keeper_send_exit(struct keeper *k, struct kproc *p, int fd);
/** Sets up the streams of p from its plan, the child's fds are returned in child[3]. */
int keeper_stdio_prepare(struct kproc *p, const struct proc_plan *pp, int child[3]);
/** The control loop; returns when the container is deleted. */
int keeper_loop(struct keeper *k);
/** Kills every process in the container (cgroup), or the init only without cgroup. */
int keeper_kill_all(struct keeper *k, int sig);
/** Finds a process by exec id. */
struct kproc *keeper_find(struct keeper *k, const char *id);

/* OCI mode (oci.c) */
int oci_create(struct keeper *k);
int oci_start(struct keeper *k, struct kproc *p);
int oci_exec(struct keeper *k, struct kproc *p);
int oci_simple(struct keeper *k, const char *verb, const char *arg1, const char *arg2);

#endif
