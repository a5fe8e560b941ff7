/*
 * keeper_protocol.h - the contract between Berth's Linux runtime plugin and berth-keeper.
 *
 * berth-keeper is a small single-threaded C process, one per container. It is the parent of
 * the container's init (PR_SET_CHILD_SUBREAPER, prctl(2)), holds the container's stdio and
 * its exit statuses, and is not berthd's child (double fork + setsid), so containers outlive
 * berthd. berthd talks to it through a control socket in the container's state directory.
 *
 * ==========================================================================================
 * 1. Command line
 * ==========================================================================================
 *
 *   berth-keeper create --state DIR
 *
 * DIR is a path (at most KEEPER_MAX_STATE_DIR bytes once resolved) to an existing directory
 * owned by root that holds `plan` (section 2). A path too long for a unix socket address is
 * fine: clients connect to DIR/control.sock through /proc/self/fd/N of an fd on DIR. The spawned process (posix_spawn from berthd) returns only when the container's init is
 * set up and waiting for START (like `runc create`):
 *   - exit 0, stdout: one line "PID\n" (the init's pid in the keeper's pid namespace);
 *   - exit 1, stderr: one line "STEP: PATH: REASON\n" (REASON: strerror(3) with a lower-case first letter, as runc spells it) (e.g. `mount proc on
 *     /run/b/rootfs/proc: permission denied`, `exec: "/bin/nope": stat /bin/nope: no such
 *     file or directory`, `exec: "nope": executable file not found in $PATH`, `plan: record
 *     7 (mount): 2 fields, need at least 3`); the same line is written to DIR/error. Nothing is left behind but files in DIR: no
 *     processes, no mounts (they lived only in the init's private mount namespace), no
 *     cgroup directories the keeper created.
 * On success the keeper process lives on and creates in DIR:
 *   control.sock   the control socket (section 3), mode 0600
 *   keeper.pid     the keeper's own pid, "PID\n"
 *   init.pid       the container init's pid, "PID\n"
 *   exits/NAME     one file per exited process, written before anyone is told (section 4)
 *   log            the keeper's diagnostics (its stderr), append-only
 *   runtime.log    mode oci: runc's JSON log (the last "msg" becomes the error line);
 *                  console*.sock and exec-ID.pid exist briefly while runc runs
 * The daemon deletes DIR after the keeper has exited (after DELETE, section 3).
 *
 * ==========================================================================================
 * 2. The plan file (DIR/plan) and exec plan files
 * ==========================================================================================
 *
 * berthd parses and validates the OCI runtime spec; the keeper reads a flat list of records:
 *
 *   file    = record*                    (at most KEEPER_MAX_PLAN bytes)
 *   record  = key ' ' value '\0'         (key: [a-z0-9_]{1,31}; value: any bytes but NUL)
 *   value   = field ( '\x1f' field )*    (compound records: fields split on ASCII US, 0x1f)
 *
 * The first record must be `version 1`. Keys may repeat where marked [list]; a repeated key
 * not marked [list] is an error, as is an unknown key: errors name the record number and key
 * ("plan: record 7 (mount): 2 fields, need at least 3"). Numbers are decimal. Paths are
 * absolute. Limits: 4096 list entries per key, 4096 bytes per path, 512 seccomp rules.
 *
 * Container records (the `plan` file only):
 *   version 1                     format version, must be first
 *   mode native|oci               native (default) or drive an external OCI runtime
 *   id NAME                       container id, [A-Za-z0-9_.-]{1,76}
 *   rootfs PATH                   the bundle's rootfs directory (usually BUNDLE/rootfs)
 *   rootfs_mount TYPE US SOURCE (US OPTION)*   [list] mounted on PATH in order, e.g. an
 *                                 overlay (`overlay US overlay US lowerdir=/a:/b US
 *                                 upperdir=/u US workdir=/w`) or a bind (`bind US /snap`)
 *   readonly_rootfs 1             remount the new / read-only at the end
 *   namespace KIND [US PATH]      [list] KIND: mount pid uts ipc network cgroup user. Without
 *                                 PATH a new one; with PATH (network, ipc, uts, pid) join
 *                                 it (a joined pid namespace's init is not the container's).
 *                                 A kind not listed is shared with the host.
 *   uid_map CONTAINER US HOST US SIZE  [list] user namespace maps (with `namespace user`)
 *   gid_map CONTAINER US HOST US SIZE  [list]
 *   hostname NAME                 needs `namespace uts`
 *   mount DEST US TYPE US SOURCE (US OPTION)*  [list] the spec's mounts, in order, relative
 *                                 to the new root. OPTIONs as in the OCI spec (ro, nosuid,
 *                                 nodev, noexec, bind, rbind, rprivate, ...; anything else is
 *                                 passed as data, e.g. mode=755, newinstance, ptmxmode=0666).
 *                                 TYPE cgroup mounts the container's own cgroups there.
 *   device PATH US c|b|p US MAJOR US MINOR US MODE US UID US GID  [list] extra device nodes
 *                                 (the defaults null zero full random urandom tty, and
 *                                 the fd, stdin, stdout, stderr, ptmx links, are made in
 *                                 /dev unless a mount binds /dev from elsewhere, as runc)
 *   device_rule allow|deny US a|c|b US MAJOR US MINOR US ACCESS   [list] device cgroup
 *                                 rules in order (v1 devices.allow/deny; MAJOR/MINOR empty
 *                                 or "*" = any; ACCESS of rwm); on cgroup v2 a
 *                                 BPF_PROG_TYPE_CGROUP_DEVICE program built from them.
 *   sysctl NAME US VALUE          [list] e.g. net.ipv4.ip_forward US 1 (/proc/sys/...)
 *   masked_path PATH              [list] /dev/null over files, read-only tmpfs over dirs
 *   readonly_path PATH            [list] bind-mounted on itself, remounted read-only
 *   cgroup_path REL               e.g. berth/default/ID; created under every hierarchy
 *                                 (mode oci: the runtime's cgroupsPath, only read: PIDS,
 *                                 OOM events)
 *   cgroup_version 1|2            which layout to use (default 1)
 *   cgroup_root PATH              cgroup v2 mount point (default /sys/fs/cgroup)
 *   memory_limit BYTES            memory.limit_in_bytes (v1) / memory.max (v2)
 *   memory_swap BYTES             memory.memsw.limit_in_bytes (v1) / memory.swap.max (v2)
 *   cpu_shares N                  cpu.shares (v1) / cpu.weight converted (v2)
 *   cpu_quota N                   cpu.cfs_quota_us / cpu.max
 *   cpu_period N                  cpu.cfs_period_us / cpu.max
 *   pids_limit N                  pids.max
 *   oom_score_adj N
 *   seccomp_default ACTION [US ERRNO]   enables seccomp; ACTION as in the OCI spec
 *                                 (SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL,
 *                                 SCMP_ACT_KILL_PROCESS, SCMP_ACT_KILL_THREAD, SCMP_ACT_TRAP,
 *                                 SCMP_ACT_TRACE, SCMP_ACT_LOG); ERRNO default EPERM(1)
 *   seccomp_arch ARCH             [list] e.g. SCMP_ARCH_X86_64
 *   seccomp_rule SYSCALL US ACTION US ERRNO (US ARG)*   [list] one syscall per record; ERRNO
 *                                 may be empty; ARG = "INDEX OP VALUE VALUE2" with OP one of
 *                                 SCMP_CMP_NE LT LE EQ GE GT MASKED_EQ. Unknown syscall names
 *                                 are skipped (as runc does).
 *   runtime PATH                  (mode oci) the OCI runtime binary, e.g. /usr/bin/runc
 *   runtime_root PATH             (mode oci) its --root directory
 *   oci_bundle PATH               (mode oci) a bundle whose config.json berthd wrote
 *
 * Process records (the `plan` file for the init, and exec plan files for EXEC):
 *   arg ARG                       [list] argv; at least one
 *   env NAME=VALUE                [list]
 *   cwd PATH                      default /
 *   uid N / gid N                 default 0
 *   additional_gid N              [list]
 *   umask N                       octal, default 022
 *   terminal 1                    allocate a pty inside the container (its devpts)
 *   console_width N / console_height N
 *   stdin PATH / stdout PATH / stderr PATH   FIFOs made by the client; absent = /dev/null
 *   no_new_privileges 1
 *   cap_bounding NAME / cap_effective NAME / cap_permitted NAME / cap_inheritable NAME /
 *   cap_ambient NAME              [list] e.g. CAP_CHOWN; a set with no records is empty
 *   rlimit NAME US SOFT US HARD   [list] e.g. RLIMIT_NOFILE; SOFT/HARD decimal
 *   oci_process PATH              (mode oci, exec only) process.json for `runc exec`
 * An exec plan file starts with `version 1` too and holds only process records.
 *
 * Worked example (NUL shown as \0, US as |):
 *   version 1\0id web\0rootfs /run/berth/web/rootfs\0namespace mount\0namespace pid\0
 *   namespace uts\0hostname web\0mount /proc|proc|proc|nosuid|noexec|nodev\0
 *   mount /dev|tmpfs|tmpfs|nosuid|strictatime|mode=755|size=65536k\0
 *   mount /dev/pts|devpts|devpts|nosuid|noexec|newinstance|ptmxmode=0666|mode=0620\0
 *   cgroup_path berth/default/web\0memory_limit 67108864\0
 *   seccomp_default SCMP_ACT_ALLOW\0seccomp_rule mkdir|SCMP_ACT_ERRNO|1\0
 *   arg /bin/sh\0arg -c\0arg echo hi\0env PATH=/bin\0stdout /run/ctr/fifo-1\0
 *   cap_bounding CAP_KILL\0cap_effective CAP_KILL\0cap_permitted CAP_KILL\0
 *
 * ==========================================================================================
 * 3. The control protocol (DIR/control.sock, AF_UNIX SOCK_SEQPACKET)
 * ==========================================================================================
 *
 * One message per packet: a struct keeper_msg_header (native byte order) followed by zero
 * or more NUL-terminated string fields. Requests are at most KEEPER_MAX_REQUEST bytes,
 * replies and events at most KEEPER_MAX_MESSAGE. Every request gets exactly one reply
 * (KEEPER_REPLY_OK or KEEPER_REPLY_ERROR) carrying the request's tag, in request order.
 * Events (tag 0) go only to connections that sent SUBSCRIBE and may come between replies.
 * Up to KEEPER_MAX_CLIENTS connections at once; a client whose socket is full when an event
 * is sent is disconnected (it reconnects and SUBSCRIBE re-sends what it has not acked).
 * EXEC_ID "" names the container's init.
 *
 *   request       fields                         OK reply fields
 *   START         exec_id                        pid    replies once execve succeeded;
 *                                                       waits at most 10 s (native mode)
 *   KILL          exec_id signal all(0|1)        -      all=1: every process in the cgroup
 *   EXEC          exec_id plan_path              pid    process set up, waiting for START
 *                                                       (mode oci: pid 0; runc exec runs at
 *                                                       START, whose reply has the pid)
 *   RESIZE        exec_id width height           -
 *   CLOSE_STDIN   exec_id                        -      the process then reads EOF
 *   PAUSE / RESUME                               -      freezer
 *   STATE                                        status pid exit_status exited_at oom_count,
 *                                                then per exec: exec_id status pid
 *                                                exit_status exited_at
 *   PIDS                                         pid*   every pid in the container's cgroup
 *   SUBSCRIBE                                    -      then EVENT_EXIT for every exit not
 *                                                       yet acked, and all later events
 *   ACK_EXIT      exec_id                        -      the exit is forgotten: never sent
 *                                                       again, exits/NAME is removed
 *   DELETE        exec_id force(0|1)             -      exec: forget a stopped exec, or end
 *                                                and forget one created and never started
 *                                                (native mode; no EVENT_EXIT); "": the
 *                                                container must be stopped or created
 *                                                (force=1: SIGKILL everything first); the
 *                                                keeper removes its cgroups, replies and
 *                                                exits. If a cgroup cannot be removed it
 *                                                replies "unavailable" and stays: retry.
 *   ERROR reply   code message                   code: invalid_argument not_found
 *                                                already_exists failed_precondition
 *                                                internal unavailable (containerd errdefs)
 *   EVENT_EXIT    exec_id pid exit_status exited_at(SEC.NSEC)
 *   EVENT_OOM     -
 * status is one of created running paused stopped. exit_status is 0-255 for a normal
 * exit and 128+N for death by signal N (as containerd reports it). Numbers are decimal
 * strings. exited_at is "" while a process runs.
 *
 * Worked example (little-endian x86_64; | separates parts):
 *   KILL init with SIGTERM, tag 7:  02 00 00 00 | 07 00 00 00 | 00 | "15" 00 | "0" 00
 *   reply:                          64 00 00 00 | 07 00 00 00            (REPLY_OK)
 *   after the exit, a failing one:  65 00 00 00 | 07 00 00 00 | "not_found" 00 |
 *                                   "process already finished" 00        (REPLY_ERROR)
 *   STATE reply with one exec:      64 00 00 00 | tag | "running" 00 "4242" 00 "0" 00 00
 *                                   "0" 00 | "e1" 00 "stopped" 00 "4250" 00 "5" 00
 *                                   "1764550000.123456789" 00
 *   EVENT_EXIT of that exec:        c8 00 00 00 | 00 00 00 00 | "e1" 00 "4250" 00 "5" 00
 *                                   "1764550000.123456789" 00
 * A typical berthd session: connect, SUBSCRIBE (receive pending EVENT_EXITs and ACK_EXIT
 * each once recorded), START "", later EVENT_EXIT "", ACK_EXIT "", DELETE "" 0; the keeper
 * replies and then closes every connection and exits.
 *
 * ==========================================================================================
 * 4. Exits and stdio
 * ==========================================================================================
 * When a process exits the keeper writes DIR/exits/NAME (NAME = "init" or "exec-ID") with
 * "pid N\nstatus N\nexited_at SEC.NSEC\n" via tmp file + fsync + rename + fsync(DIR/exits),
 * then drains and closes the process's stdout/stderr FIFOs, then sends EVENT_EXIT. The exit
 * is re-sent on every SUBSCRIBE until ACK_EXIT, so a restarted berthd learns exits that
 * happened while it was down; berthd's metadata store decides what it has already reported.
 *
 * Output FIFOs are opened O_RDWR|O_NONBLOCK (opening never blocks, a missing reader never
 * gives EPIPE) and their pipe size is raised to KEEPER_FIFO_SIZE. While the FIFO is full
 * the keeper stops reading from the container (the container blocks: no output is lost
 * while a reader is slow). If the FIFO stays full for KEEPER_STALL_MS, the reader is
 * considered gone and the keeper keeps reading the container and drops what does not fit
 * (counted in the log) until the FIFO takes data again. Stdin FIFOs are opened O_RDWR too
 * (no EOF when a client closes and reopens); the process sees EOF only after CLOSE_STDIN.
 */
#ifndef KEEPER_PROTOCOL_H
#define KEEPER_PROTOCOL_H

#include <stdint.h>

/** Version of the plan format and of this protocol. */
#define KEEPER_PROTOCOL_VERSION 1
/** Largest plan or exec plan file, bytes. */
#define KEEPER_MAX_PLAN (1 << 20)
/** Longest state directory (DIR) accepted, once resolved. */
#define KEEPER_MAX_STATE_DIR 512
/** Largest request packet, bytes. */
#define KEEPER_MAX_REQUEST 4096
/** Largest reply or event packet, bytes. */
#define KEEPER_MAX_MESSAGE 65536
/** Control connections served at once. */
#define KEEPER_MAX_CLIENTS 8
/** Exec processes held at once (running or exited and not yet deleted). */
#define KEEPER_MAX_EXECS 128
/** Longest exec id or container id. */
#define KEEPER_MAX_ID 76
/** Pipe size asked for output FIFOs (F_SETPIPE_SZ, fcntl(2)). */
#define KEEPER_FIFO_SIZE (1 << 20)
/** How long an output FIFO may stay full before its output is dropped, milliseconds. */
#define KEEPER_STALL_MS 5000

/** Message types: requests (1-99), replies (100-199), events (200-). */
enum keeper_msg_type {
    KEEPER_REQ_START = 1,
    KEEPER_REQ_KILL = 2,
    KEEPER_REQ_EXEC = 3,
    KEEPER_REQ_RESIZE = 4,
    KEEPER_REQ_CLOSE_STDIN = 5,
    KEEPER_REQ_PAUSE = 6,
    KEEPER_REQ_RESUME = 7,
    KEEPER_REQ_STATE = 8,
    KEEPER_REQ_PIDS = 9,
    KEEPER_REQ_SUBSCRIBE = 10,
    KEEPER_REQ_ACK_EXIT = 11,
    KEEPER_REQ_DELETE = 12,
    KEEPER_REPLY_OK = 100,
    KEEPER_REPLY_ERROR = 101,
    KEEPER_EVENT_EXIT = 200,
    KEEPER_EVENT_OOM = 201,
};

/** Every packet starts with this header; string fields follow. */
struct keeper_msg_header {
    uint32_t type; /**< enum keeper_msg_type */
    uint32_t tag;  /**< chosen by the client, echoed in the reply; 0 in events */
};

#endif
