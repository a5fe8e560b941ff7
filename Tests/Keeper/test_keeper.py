#!/usr/bin/env python3
"""End-to-end tests of berth-keeper: drives the real binary as root.

usage: python3 Tests/Keeper/test_keeper.py /path/to/berth-keeper [test-name-substring...]

Each test makes a busybox rootfs, writes a plan in the keeper's format (keeper_protocol.h
section 2), runs `berth-keeper create --state DIR`, talks to DIR/control.sock, and checks
exact results. The last line is "N passed, N failed"; the exit status is non-zero on failure.
"""
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

KEEPER = None
US = "\x1f"
BUSYBOX = "/bin/busybox"
APPLETS = ["sh", "echo", "sleep", "cat", "hostname", "id", "ls", "true", "false", "touch",
           "mkdir", "chown", "tty", "head", "tr", "stat", "grep", "dd", "stty", "wc", "readlink"]
CG_PARENT = "berth-keeper-test"

# Message types (keeper_protocol.h enum keeper_msg_type).
START, KILL, EXEC, RESIZE, CLOSE_STDIN, PAUSE, RESUME, STATE, PIDS, SUBSCRIBE, ACK_EXIT, DELETE = range(1, 13)
OK, ERROR, EV_EXIT, EV_OOM = 100, 101, 200, 201

DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
                "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
                "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def eq(got, want, what):
    if got != want:
        raise Fail("%s: got %r, want %r" % (what, got, want))


# ---- plan writer -------------------------------------------------------------------------

class Plan:
    """Records in order; write() produces the NUL-separated file."""

    def __init__(self):
        self.recs = [("version", "1")]

    def add(self, key, *fields):
        self.recs.append((key, US.join(str(f) for f in fields)))
        return self

    def drop(self, key):
        self.recs = [r for r in self.recs if r[0] != key]
        return self

    def write(self, path):
        with open(path, "wb") as f:
            for k, v in self.recs:
                f.write(k.encode() + b" " + v.encode() + b"\0")


def process_records(plan, args, env=("PATH=/bin",), caps=DEFAULT_CAPS, stdout=None,
                    stderr=None, stdin=None, terminal=False, uid=None, gid=None):
    for a in args:
        plan.add("arg", a)
    for e in env:
        plan.add("env", e)
    plan.add("cwd", "/")
    if uid is not None:
        plan.add("uid", uid)
    if gid is not None:
        plan.add("gid", gid)
    for c in caps:
        for s in ("cap_bounding", "cap_effective", "cap_permitted"):
            plan.add(s, c)
    if terminal:
        plan.add("terminal", "1").add("console_width", 80).add("console_height", 25)
    for key, path in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr)):
        if path:
            plan.add(key, path)
    return plan


def container_plan(b, args, **kw):
    p = Plan()
    p.add("id", b.id).add("rootfs", b.rootfs)
    for ns in ("mount", "pid", "uts", "ipc", "network", "cgroup"):
        p.add("namespace", ns)
    p.add("hostname", "berth-" + b.id[:20])
    p.add("mount", "/proc", "proc", "proc", "nosuid", "noexec", "nodev")
    p.add("mount", "/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k")
    p.add("mount", "/dev/pts", "devpts", "devpts", "nosuid", "noexec", "newinstance",
          "ptmxmode=0666", "mode=0620", "gid=5")
    p.add("mount", "/dev/shm", "tmpfs", "shm", "nosuid", "noexec", "nodev", "mode=1777", "size=65536k")
    p.add("mount", "/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev")
    p.add("mount", "/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro")
    p.add("mount", "/sys/fs/cgroup", "cgroup", "cgroup", "nosuid", "noexec", "nodev", "relatime", "ro")
    p.add("mount", "/tmp", "tmpfs", "tmpfs", "nosuid", "nodev", "mode=1777")
    for m in ("/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"):
        p.add("masked_path", m)
    for r in ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"):
        p.add("readonly_path", r)
    p.add("cgroup_path", "%s/%s" % (CG_PARENT, b.id))
    return process_records(p, args, **kw)


# ---- bundles, FIFOs, the control client ---------------------------------------------------

class Bundle:
    """A temp dir with rootfs/ and state/ for one container."""

    counter = 0
    made = []  # every bundle, so a failed test can clean up all of its containers

    def __init__(self, root):
        Bundle.counter += 1
        Bundle.made.append(self)
        self.id = "t%d-%d" % (os.getpid(), Bundle.counter)
        self.dir = os.path.join(root, self.id)
        self.rootfs = os.path.join(self.dir, "rootfs")
        self.state = os.path.join(self.dir, "state")
        os.makedirs(os.path.join(self.rootfs, "bin"))
        os.makedirs(self.state)
        for d in ("proc", "sys", "dev", "tmp", "etc"):
            os.makedirs(os.path.join(self.rootfs, d), exist_ok=True)
        shutil.copy(BUSYBOX, os.path.join(self.rootfs, "bin/busybox"))
        for a in APPLETS:
            os.symlink("busybox", os.path.join(self.rootfs, "bin", a))
        self.fds = []
        self.keeper_pid = None

    def fifo(self, name):
        path = os.path.join(self.dir, name)
        os.mkfifo(path)
        return path

    def create(self, plan, expect_ok=True):
        plan.write(os.path.join(self.state, "plan"))
        r = subprocess.run([KEEPER, "create", "--state", self.state], capture_output=True,
                           text=True, timeout=30)
        if expect_ok:
            check(r.returncode == 0, "create failed: rc=%d stderr=%r" % (r.returncode, r.stderr))
            self.init_pid = int(r.stdout.strip())
            with open(os.path.join(self.state, "keeper.pid")) as f:
                self.keeper_pid = int(f.read())
        return r

    def cgroup_dirs(self):
        found = []
        for h in os.listdir("/sys/fs/cgroup"):
            p = os.path.join("/sys/fs/cgroup", h, CG_PARENT, self.id)
            if os.path.isdir(p):
                found.append(p)
        return found

    def mounts_under(self):
        with open("/proc/self/mountinfo") as f:
            return [l for l in f if self.dir in l]


def collect_line(fd, timeout=10):
    """One line from fd (the process keeps running)."""
    data, end = b"", time.time() + timeout
    while not data.endswith(b"\n") and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                data += os.read(fd, 1)
            except BlockingIOError:
                pass
    return data


def open_reader(path):
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK)


def collect(fd, timeout=10):
    """Everything from fd until EOF (the keeper closing its FIFO end)."""
    data, end = b"", time.time() + timeout
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if not r:
            continue
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        if not chunk:
            return data
        data += chunk
    raise Fail("no EOF on output FIFO within %ss (got %r)" % (timeout, data))


class Client:
    def __init__(self, state):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # Through an fd on the folder, as berthd connects: DIR/control.sock may be longer than
        # a unix socket address holds.
        folder = os.open(state, os.O_RDONLY | os.O_DIRECTORY)
        try:
            self.s.connect("/proc/self/fd/%d/control.sock" % folder)
        finally:
            os.close(folder)
        self.tag = 0
        self.events = []

    def close(self):
        self.s.close()

    def _recv(self, timeout):
        r, _, _ = select.select([self.s], [], [], timeout)
        if not r:
            return None
        m = self.s.recv(65536)
        if not m:
            raise Fail("keeper closed the connection")
        typ, tag = struct.unpack("II", m[:8])
        fields = [f.decode() for f in m[8:].split(b"\0")[:-1]] if len(m) > 8 else []
        return typ, tag, fields

    def call(self, typ, *fields, timeout=15):
        self.tag += 1
        body = b"".join(str(f).encode() + b"\0" for f in fields)
        self.s.send(struct.pack("II", typ, self.tag) + body)
        end = time.time() + timeout
        while time.time() < end:
            m = self._recv(end - time.time())
            if m is None:
                break
            if m[0] >= 200:
                self.events.append(m)
                continue
            eq(m[1], self.tag, "reply tag")
            return m[0], m[2]
        raise Fail("no reply to request %d" % typ)

    def ok(self, typ, *fields):
        t, f = self.call(typ, *fields)
        if t != OK:
            raise Fail("request %d %r failed: %r" % (typ, fields, f))
        return f

    def event(self, typ, timeout=10, exec_id=None):
        end = time.time() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e[0] == typ and (exec_id is None or e[2][0] == exec_id):
                    return self.events.pop(i)[2]
            left = end - time.time()
            if left <= 0:
                return None
            m = self._recv(left)
            if m is not None:
                self.events.append(m)


def pid_alive(pid):
    """True while pid runs; a zombie (exited, not yet reaped by its parent) counts as gone:
    the keeper's parent after the double fork is the host's pid 1, which may reap late."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # ESRCH: it went between open and read
        return False


def wait_gone(pid, timeout=5):
    end = time.time() + timeout
    while time.time() < end:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


def run_simple(b, args, **kw):
    """create + subscribe + start; returns (client, stdout fd, stderr fd)."""
    out, err = b.fifo("out"), b.fifo("err")
    plan = container_plan(b, args, stdout=out, stderr=err, **kw.pop("proc", {}))
    for key in kw.get("drop", []):
        plan.drop(key)
    for k, v in kw.get("extra", []):
        plan.add(k, *v)
    b.create(plan)
    ofd, efd = open_reader(out), open_reader(err)
    c = Client(b.state)
    c.ok(SUBSCRIBE)
    c.ok(START, "")
    return c, ofd, efd


def finish(b, c):
    """DELETE the container and check that nothing is left."""
    c.ok(DELETE, "", "1")
    check(wait_gone(b.keeper_pid), "keeper %d still alive after DELETE" % b.keeper_pid)
    check(not pid_alive(b.init_pid), "init still alive after DELETE")
    eq(b.cgroup_dirs(), [], "cgroup dirs after DELETE")
    eq(b.mounts_under(), [], "mounts under the bundle after DELETE")


# ---- tests --------------------------------------------------------------------------------

def test_exit_status(b):
    c, o, e = run_simple(b, ["sh", "-c", "exit 3"])
    ev = c.event(EV_EXIT)
    check(ev is not None, "no exit event")
    eq(ev[0], "", "exit event id")
    eq(ev[2], "3", "exit status")
    st = c.ok(STATE)
    eq((st[0], st[2]), ("stopped", "3"), "state after exit")
    with open(os.path.join(b.state, "exits/init")) as f:
        check("status 3\n" in f.read(), "exits/init holds status 3")
    finish(b, c)


def test_stdout_stderr_separate(b):
    c, o, e = run_simple(b, ["sh", "-c", "echo to-out; echo to-err >&2; echo more-out"])
    eq(collect(o), b"to-out\nmore-out\n", "stdout")
    eq(collect(e), b"to-err\n", "stderr")
    eq(c.event(EV_EXIT)[2], "0", "exit status")
    finish(b, c)


def test_stdin_close_gives_eof(b):
    out, inp = b.fifo("out"), b.fifo("in")
    b.create(container_plan(b, ["cat"], stdout=out, stdin=inp))
    ofd = open_reader(out)
    wfd = os.open(inp, os.O_WRONLY | os.O_NONBLOCK)
    c = Client(b.state)
    c.ok(SUBSCRIBE)
    c.ok(START, "")
    os.write(wfd, b"hello through stdin\n")
    os.close(wfd)
    time.sleep(0.3)
    check(c.event(EV_EXIT, timeout=0.5) is None, "cat exited before CLOSE_STDIN")
    c.ok(CLOSE_STDIN, "")
    eq(collect(ofd), b"hello through stdin\n", "stdout of cat")
    eq(c.event(EV_EXIT)[2], "0", "cat exit status")
    finish(b, c)


def test_hostname_set(b):
    c, o, e = run_simple(b, ["hostname"])
    eq(collect(o), ("berth-" + b.id[:20] + "\n").encode(), "hostname")
    finish(b, c)


def test_pid_namespace_init_is_1(b):
    c, o, e = run_simple(b, ["sh", "-c", "echo $$"])
    eq(collect(o), b"1\n", "pid in container")
    finish(b, c)


def test_readonly_rootfs_refuses_writes(b):
    c, o, e = run_simple(b, ["sh", "-c", "touch /x; echo rc=$?; touch /tmp/y; echo tmp=$?"],
                         extra=[("readonly_rootfs", ["1"])])
    eq(collect(o), b"rc=1\ntmp=0\n", "touch results")
    check(b"Read-only file system" in collect(e), "stderr names the read-only fs")
    finish(b, c)


def test_kill_sigterm_runs_trap(b):
    c, o, e = run_simple(b, ["sh", "-c", "trap 'exit 7' TERM; echo ready; while true; do sleep 0.1; done"])
    time.sleep(0.5)
    c.ok(KILL, "", signal.SIGTERM, 0)
    ev = c.event(EV_EXIT)
    check(ev is not None, "no exit after SIGTERM")
    eq(ev[2], "7", "exit status from trap")
    finish(b, c)


def test_kill_all_sigkill(b):
    c, o, e = run_simple(b, ["sh", "-c", "sleep 100 & sleep 100 & wait"])
    time.sleep(0.3)
    pids = c.ok(PIDS)
    eq(len(pids), 3, "pids in the cgroup (sh + 2 sleeps)")
    c.ok(KILL, "", signal.SIGKILL, 1)
    ev = c.event(EV_EXIT)
    eq(ev[2], "137", "exit status after SIGKILL")
    for p in pids:
        check(wait_gone(int(p)), "pid %s survived kill all" % p)
    t, f = c.call(KILL, "", signal.SIGKILL, 0)
    eq((t, f[0]), (ERROR, "not_found"), "kill after exit")
    finish(b, c)


def test_exec_own_status_and_stdio(b):
    c, o, e = run_simple(b, ["sleep", "100"])
    xout, xerr = b.fifo("xout"), b.fifo("xerr")
    xp = process_records(Plan(), ["sh", "-c", "hostname; echo $PPID; echo oops >&2; exit 5"],
                         stdout=xout, stderr=xerr)
    xplan = os.path.join(b.dir, "exec1.plan")
    xp.write(xplan)
    pid = c.ok(EXEC, "e1", xplan)
    xo, xe = open_reader(xout), open_reader(xerr)
    eq(c.ok(STATE)[5:7], ["e1", "created"], "exec state before start")
    for ns in ("mnt", "pid", "uts", "ipc", "net", "cgroup"):
        eq(os.readlink("/proc/%s/ns/%s" % (pid[0], ns)), os.readlink("/proc/%d/ns/%s" % (b.init_pid, ns)),
           "exec's %s namespace" % ns)
    with open("/sys/fs/cgroup/memory/%s/%s/cgroup.procs" % (CG_PARENT, b.id)) as f:
        check(pid[0] in f.read().split(), "exec process in the container's cgroup")
    c.ok(START, "e1")
    ev = c.event(EV_EXIT, exec_id="e1")
    check(ev is not None, "no exit event for e1")
    eq((ev[1], ev[2]), (pid[0], "5"), "exec pid and status")
    # PPID 0: the exec'd process's parent (the keeper) is outside the pid namespace.
    eq(collect(xo), ("berth-%s\n0\n" % b.id[:20]).encode(), "exec stdout")
    eq(collect(xe), b"oops\n", "exec stderr")
    eq(c.ok(STATE)[0], "running", "init still running after exec exit")
    t, f = c.call(EXEC, "e1", xplan)
    eq((t, f[0]), (ERROR, "already_exists"), "duplicate exec id")
    c.ok(DELETE, "e1", "0")
    eq(len(c.ok(STATE)), 5, "exec gone from STATE after DELETE e1")
    finish(b, c)


def test_exec_created_never_started_delete_endsAndForgetsIt(b):
    """An exec whose client went before START (berthd killed during `ctr tasks exec`): DELETE
    without force ends it and forgets it; the container runs on."""
    c, o, e = run_simple(b, ["sleep", "100"])
    xplan = os.path.join(b.dir, "exec.plan")
    process_records(Plan(), ["sh", "-c", "exit 3"]).write(xplan)
    pid = int(c.ok(EXEC, "e1", xplan)[0])
    eq(c.ok(STATE)[5:7], ["e1", "created"], "exec state before DELETE")
    c.ok(DELETE, "e1", "0")
    check(wait_gone(pid), "created exec %d still alive after DELETE" % pid)
    eq(len(c.ok(STATE)), 5, "exec gone from STATE after DELETE e1")
    eq(c.ok(STATE)[0], "running", "init still running after the exec's DELETE")
    check(pid_alive(b.init_pid), "init alive after the exec's DELETE")
    check(not os.path.exists(os.path.join(b.state, "exits", "exec-e1")), "no exit file for the exec")
    pid2 = c.ok(EXEC, "e1", xplan)[0]
    c.ok(START, "e1")
    ev = c.event(EV_EXIT, exec_id="e1")
    eq((ev[1], ev[2]) if ev else None, (pid2, "3"), "the id is free again: a new exec e1 runs")
    finish(b, c)


def test_exec_missing_binary_fails(b):
    c, o, e = run_simple(b, ["sleep", "100"])
    xplan = os.path.join(b.dir, "exec.plan")
    process_records(Plan(), ["nope-binary"]).write(xplan)
    t, f = c.call(EXEC, "bad", xplan)
    eq(t, ERROR, "exec of a missing binary")
    eq(f[1], 'exec: "nope-binary": executable file not found in $PATH', "error line")
    finish(b, c)


def freezer_state(b):
    with open("/sys/fs/cgroup/freezer/%s/%s/freezer.state" % (CG_PARENT, b.id)) as f:
        return f.read().strip()


def proc_state(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_pause_resume_freezes(b):
    c, o, e = run_simple(b, ["sh", "-c", "while true; do echo x > /dev/null; done"])
    time.sleep(0.2)
    c.ok(PAUSE)
    eq(freezer_state(b), "FROZEN", "freezer.state after PAUSE")
    eq(c.ok(STATE)[0], "paused", "status after PAUSE")
    with open("/proc/%d/stat" % b.init_pid) as f:
        u1 = int(f.read().rsplit(")", 1)[1].split()[11])
    time.sleep(0.3)
    with open("/proc/%d/stat" % b.init_pid) as f:
        u2 = int(f.read().rsplit(")", 1)[1].split()[11])
    eq(u2, u1, "utime of the frozen shell")
    c.ok(RESUME)
    eq(freezer_state(b), "THAWED", "freezer.state after RESUME")
    eq(c.ok(STATE)[0], "running", "status after RESUME")
    finish(b, c)


def test_cgroup_limits_written(b):
    c, o, e = run_simple(b, ["sleep", "100"], extra=[("memory_limit", ["67108864"]),
                                                    ("pids_limit", ["64"]), ("cpu_shares", ["512"])])
    base = "/sys/fs/cgroup/%%s/%s/%s/%%s" % (CG_PARENT, b.id)
    with open(base % ("memory", "memory.limit_in_bytes")) as f:
        eq(f.read().strip(), "67108864", "memory.limit_in_bytes")
    with open(base % ("pids", "pids.max")) as f:
        eq(f.read().strip(), "64", "pids.max")
    with open(base % ("cpu", "cpu.shares")) as f:
        eq(f.read().strip(), "512", "cpu.shares")
    with open(base % ("memory", "cgroup.procs")) as f:
        eq(f.read().split(), [str(b.init_pid)], "init in the memory cgroup")
    finish(b, c)


def no_leftovers(b):
    eq(b.mounts_under(), [], "mounts under the bundle")
    eq(b.cgroup_dirs(), [], "cgroup dirs")
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    mine = b.state.encode() in f.read()
                check(not mine or not pid_alive(int(p)), "process %s still runs for this state dir" % p)
            except OSError:
                pass


def test_missing_binary_fails_create_cleanly(b):
    r = b.create(container_plan(b, ["/bin/nope"]), expect_ok=False)
    eq(r.returncode, 1, "create exit status")
    eq(r.stderr, 'exec: "/bin/nope": stat /bin/nope: no such file or directory\n', "stderr")
    with open(os.path.join(b.state, "error")) as f:
        check("/bin/nope" in f.read(), "DIR/error names the binary")
    no_leftovers(b)
    r = b.create(container_plan(b, ["nope"]), expect_ok=False)
    eq(r.stderr, 'exec: "nope": executable file not found in $PATH\n', "stderr for a name")
    no_leftovers(b)


def test_failing_mount_names_step_and_path(b):
    plan = container_plan(b, ["true"])
    plan.add("mount", "/mnt/x", "nosuchfs", "none")
    r = b.create(plan, expect_ok=False)
    eq(r.returncode, 1, "create exit status")
    eq(r.stderr, "mount nosuchfs on %s/mnt/x: no such device\n" % b.rootfs, "stderr")
    no_leftovers(b)


def test_bad_plan_names_record(b):
    plan = container_plan(b, ["true"])
    plan.add("frobnicate", "1")
    r = b.create(plan, expect_ok=False)
    check(r.returncode == 1 and "(frobnicate): unknown key" in r.stderr, "error: %r" % r.stderr)
    check(r.stderr.startswith("plan: record "), "error names the record: %r" % r.stderr)
    no_leftovers(b)


def proc_status_field(pid, name):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split()[1]


def test_survives_client_disconnect(b):
    c, o, e = run_simple(b, ["sleep", "100"])
    check(int(proc_status_field(b.keeper_pid, "PPid")) != os.getpid(), "keeper is not the spawner's child")
    eq(os.getsid(b.keeper_pid) != os.getsid(0), True, "keeper runs in its own session")
    eq(int(proc_status_field(b.init_pid, "PPid")), b.keeper_pid, "keeper is the init's parent")
    c.close()
    time.sleep(0.3)
    check(pid_alive(b.init_pid), "init died with the client")
    c = Client(b.state)
    st = c.ok(STATE)
    eq((st[0], st[1]), ("running", str(b.init_pid)), "state after reconnect")
    finish(b, c)


def test_exit_while_disconnected_delivered_once(b):
    c, o, e = run_simple(b, ["sh", "-c", "sleep 0.3; exit 4"])
    c.close()
    time.sleep(1.2)
    with open(os.path.join(b.state, "exits/init")) as f:
        check("status 4\n" in f.read(), "exit file written while no client")
    c = Client(b.state)
    c.ok(SUBSCRIBE)
    ev = c.event(EV_EXIT, timeout=2)
    check(ev is not None, "exit not delivered on reconnect")
    eq(ev[2], "4", "status delivered on reconnect")
    c.ok(ACK_EXIT, "")
    c.close()
    check(not os.path.exists(os.path.join(b.state, "exits/init")), "exit file removed after ACK")
    c = Client(b.state)
    c.ok(SUBSCRIBE)
    check(c.event(EV_EXIT, timeout=0.5) is None, "acked exit delivered again")
    finish(b, c)


def test_delete_running_needs_force(b):
    c, o, e = run_simple(b, ["sh", "-c", "sleep 100 & sleep 100"])
    t, f = c.call(DELETE, "", "0")
    eq((t, f[0]), (ERROR, "failed_precondition"), "delete of a running container")
    finish(b, c)


def test_seccomp_denies_mkdir(b):
    c, o, e = run_simple(b, ["sh", "-c", "mkdir /tmp/x; echo mkdir=$?; touch /tmp/f; echo touch=$?"],
                         extra=[("seccomp_default", ["SCMP_ACT_ALLOW"]),
                                ("seccomp_arch", ["SCMP_ARCH_X86_64"]),
                                ("seccomp_rule", ["mkdir", "SCMP_ACT_ERRNO", "1"]),
                                ("seccomp_rule", ["mkdirat", "SCMP_ACT_ERRNO", "1"])])
    eq(collect(o), b"mkdir=1\ntouch=0\n", "results under seccomp")
    check(b"Operation not permitted" in collect(e), "mkdir error is EPERM")
    finish(b, c)


def test_seccomp_arg_comparison(b):
    # Deny kill(2) only for signal 10 (SIGUSR1): index 1 EQ 10.
    c, o, e = run_simple(b, ["sh", "-c", "kill -USR1 $$ 2>/dev/null; echo usr1=$?; kill -0 $$; echo zero=$?"],
                         extra=[("seccomp_default", ["SCMP_ACT_ALLOW"]),
                                ("seccomp_rule", ["kill", "SCMP_ACT_ERRNO", "1", "1 SCMP_CMP_EQ 10 0"])])
    eq(collect(o), b"usr1=1\nzero=0\n", "kill results under an argument rule")
    finish(b, c)


def test_capabilities_drop_chown(b):
    cmd = ["sh", "-c", "touch /tmp/f; chown 1 /tmp/f; echo chown=$?"]
    caps = [x for x in DEFAULT_CAPS if x != "CAP_CHOWN"]
    c, o, e = run_simple(b, cmd, proc={"caps": caps})
    eq(collect(o), b"chown=1\n", "chown without CAP_CHOWN")
    finish(b, c)


def test_capabilities_keep_chown(b):
    c, o, e = run_simple(b, ["sh", "-c", "touch /tmp/f; chown 1 /tmp/f; echo chown=$?"])
    eq(collect(o), b"chown=0\n", "chown with CAP_CHOWN")
    finish(b, c)


def test_user_uid_1000(b):
    c, o, e = run_simple(b, ["sh", "-c", "id -u; id -g"], proc={"uid": 1000, "gid": 1001})
    eq(collect(o), b"1000\n1001\n", "id -u / id -g")
    finish(b, c)


def test_pty_tty_and_output(b):
    out = b.fifo("out")
    b.create(container_plan(b, ["sh", "-c", "tty; stat -c %t /dev/console"], stdout=out, terminal=True))
    ofd = open_reader(out)
    c = Client(b.state)
    c.ok(SUBSCRIBE)
    c.ok(RESIZE, "", 100, 40)
    c.ok(START, "")
    data = collect(ofd)
    eq(data.replace(b"\r\n", b"\n"), b"/dev/pts/0\n88\n", "tty output via stdout FIFO")
    finish(b, c)


def test_user_namespace_maps(b):
    uid_base = 200000
    os.chown(b.rootfs, uid_base, uid_base)
    c, o, e = run_simple(b, ["sh", "-c", "id -u; cat /proc/self/uid_map; sleep 100"],
                         extra=[("namespace", ["user"]), ("uid_map", ["0", uid_base, "65536"]),
                                ("gid_map", ["0", uid_base, "65536"])])
    out = b"".join(collect_line(o) for _ in range(2)).split()
    eq(out, [b"0", b"0", str(uid_base).encode(), b"65536"], "uid inside and the map")
    with open("/proc/%d/status" % b.init_pid) as f:
        check("Uid:\t%d\t" % uid_base in f.read(), "init runs as host uid %d" % uid_base)
    xout = b.fifo("xout")
    xplan = os.path.join(b.dir, "exec.plan")
    process_records(Plan(), ["sh", "-c", "id -u; grep -q sleep /proc/1/cmdline && echo sees-init"],
                    stdout=xout, uid=7).write(xplan)
    c.ok(EXEC, "u1", xplan)
    xo = open_reader(xout)
    c.ok(SUBSCRIBE)
    c.ok(START, "u1")
    eq(c.event(EV_EXIT, exec_id="u1")[2], "0", "exec exit in the user namespace")
    eq(collect(xo), b"7\nsees-init\n", "exec uid inside and the shared pid namespace")
    finish(b, c)


def test_oom_event(b):
    c, o, e = run_simple(b, ["sh", "-c", "x=$(dd if=/dev/zero bs=1M count=64 2>/dev/null | tr '\\0' a); echo survived"],
                         extra=[("memory_limit", ["16777216"]), ("memory_swap", ["16777216"])])
    ev = c.event(EV_OOM, timeout=15)
    check(ev is not None, "no OOM event")
    check(int(c.ok(STATE)[4]) >= 1, "oom_count in STATE")
    finish(b, c)


def smaps_pss_kib(pid):
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise Fail("no Pss line")


def test_pss_20_keepers(root):
    bundles, clients = [], []
    try:
        for _ in range(20):
            b = Bundle(root)
            b.create(container_plan(b, ["sleep", "1000"]))
            c = Client(b.state)
            c.ok(START, "")
            bundles.append(b)
            clients.append(c)
        time.sleep(0.5)
        pss = [smaps_pss_kib(b.keeper_pid) for b in bundles]
        print("    PSS per keeper with 20 running: avg %.0f KiB, min %d, max %d" %
              (sum(pss) / len(pss), min(pss), max(pss)))
        check(sum(pss) / len(pss) < 300, "average keeper PSS under 300 KiB")
    finally:
        for b, c in zip(bundles, clients):
            c.ok(DELETE, "", "1")
            wait_gone(b.keeper_pid)


def test_masked_and_readonly_paths(b):
    c, o, e = run_simple(b, ["sh", "-c", "wc -c < /proc/keys; ls /sys/firmware | wc -l; "
                             "echo 1 > /proc/sys/kernel/ns_last_pid; echo rc=$?"])
    eq(collect(o), b"0\n0\nrc=1\n", "masked file empty, masked dir empty, read-only write fails")
    check(b"Read-only file system" in collect(e), "read-only path refuses the write")
    finish(b, c)


def test_rlimit_nnp_cwd_env(b):
    c, o, e = run_simple(b, ["sh", "-c", "ulimit -n; grep NoNewPrivs /proc/self/status; pwd; echo $GREETING"],
                         extra=[("rlimit", ["RLIMIT_NOFILE", "123", "456"]), ("no_new_privileges", ["1"])],
                         drop=["cwd"], proc={"env": ["PATH=/bin", "GREETING=hello there"]})
    del c.events[:]
    eq(collect(o), b"123\nNoNewPrivs:\t1\n/\nhello there\n", "rlimit, no_new_privs, cwd, env")
    finish(b, c)


def test_cwd_missing_made_for_init_named_for_exec(b):
    # As runc: the init's cwd is created in the rootfs; an exec's missing cwd is an error.
    c, o, e = run_simple(b, ["sleep", "100"], drop=["cwd"], extra=[("cwd", ["/no/such/dir"])])
    eq(os.readlink("/proc/%d/cwd" % b.init_pid).endswith("/no/such/dir"), True, "init cwd made")
    xplan = os.path.join(b.dir, "exec.plan")
    process_records(Plan(), ["true"]).drop("cwd").add("cwd", "/no/other").write(xplan)
    t, f = c.call(EXEC, "bad", xplan)
    eq(t, ERROR, "exec with a missing cwd")
    eq(f[1], "chdir to cwd: /no/other: no such file or directory", "error line")
    finish(b, c)


def test_ambient_caps_for_uid_1000(b):
    caps = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    out, err = b.fifo("out"), b.fifo("err")
    plan = container_plan(b, ["sh", "-c", "grep -E 'Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status"],
                          stdout=out, stderr=err, caps=caps, uid=1000, gid=1000)
    for cap in caps:
        plan.add("cap_inheritable", cap).add("cap_ambient", cap)
    b.create(plan)
    o = open_reader(out)
    c = Client(b.state)
    c.ok(START, "")
    # CAP_KILL is bit 5, CAP_NET_BIND_SERVICE bit 10: 0x420. Ambient caps survive execve as
    # uid 1000 into permitted and effective (capabilities(7) "Transformation ... execve").
    want = "".join("%s:\t0000000000000420\n" % k for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"))
    eq(collect(o).decode(), want, "capability sets")
    finish(b, c)


def test_overlay_rootfs_mount(b):
    lower, upper, work = (os.path.join(b.dir, d) for d in ("lower", "upper", "work"))
    os.rename(b.rootfs, lower)
    for d in (b.rootfs, upper, work):
        os.makedirs(d)
    c, o, e = run_simple(b, ["sh", "-c", "echo layered > /written; cat /written"],
                         extra=[("rootfs_mount", ["overlay", "overlay", "lowerdir=" + lower,
                                                  "upperdir=" + upper, "workdir=" + work])])
    eq(collect(o), b"layered\n", "write through the overlay")
    c.event(EV_EXIT)
    with open(os.path.join(upper, "written")) as f:
        eq(f.read(), "layered\n", "the write landed in upperdir")
    check(not os.path.exists(os.path.join(lower, "written")), "lowerdir untouched")
    eq(os.listdir(b.rootfs), [], "nothing mounted on the host's rootfs dir")
    finish(b, c)


def test_cgroup_mount_shows_own_cgroup(b):
    c, o, e = run_simple(b, ["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
                             "cat /proc/self/cgroup | grep memory"],
                         extra=[("memory_limit", ["33554432"])])
    eq(collect(o), b"33554432\n4:memory:/\n", "own memory cgroup, cgroup namespace root")
    finish(b, c)


def test_cgroup_v2_freezer(b):
    v2 = "/sys/fs/cgroup/unified"
    c, o, e = run_simple(b, ["sh", "-c", "grep -c cgroup2 /proc/self/mountinfo; cat /proc/self/cgroup; sleep 100"],
                         extra=[("cgroup_version", ["2"]), ("cgroup_root", [v2])])
    eq(collect_line(o), b"1\n", "cgroup2 mounted inside")
    d = os.path.join(v2, CG_PARENT, b.id)
    lines = []
    while not lines or (lines[-1] and not lines[-1].startswith(b"0::")):
        lines.append(collect_line(o, timeout=3))
    eq(lines[-1], b"0::/\n", "v2 cgroup namespace root inside")
    with open(os.path.join(d, "cgroup.procs")) as f:
        eq(f.read().split()[0], str(b.init_pid), "init in the v2 cgroup")
    c.ok(PAUSE)
    with open(os.path.join(d, "cgroup.events")) as f:
        check("frozen 1" in f.read(), "cgroup.events frozen 1 after PAUSE")
    eq(proc_state(b.init_pid), "S", "frozen sleep state")
    eq(c.ok(STATE)[0], "paused", "status after PAUSE")
    c.ok(RESUME)
    with open(os.path.join(d, "cgroup.events")) as f:
        check("frozen 0" in f.read(), "cgroup.events frozen 0 after RESUME")
    c.ok(DELETE, "", "1")
    check(wait_gone(b.keeper_pid), "keeper gone")
    check(not os.path.exists(d), "v2 cgroup dir removed")


def test_no_pid_namespace_children_killed_with_init(b):
    c, o, e = run_simple(b, ["sh", "-c", "sleep 100 & echo $!"], drop=["namespace"],
                         extra=[("namespace", ["mount"]), ("namespace", ["uts"])])
    child = int(collect(o))
    eq(c.event(EV_EXIT)[2], "0", "init exit")
    check(wait_gone(child), "background child killed after the init exited")
    finish(b, c)


def test_exec_with_terminal_and_resize(b):
    c, o, e = run_simple(b, ["sleep", "100"])
    xout = b.fifo("xout")
    xplan = os.path.join(b.dir, "exec.plan")
    process_records(Plan(), ["sh", "-c", "sleep 0.3; tty; stty size"], stdout=xout, terminal=True).write(xplan)
    c.ok(EXEC, "t1", xplan)
    xo = open_reader(xout)
    c.ok(START, "t1")
    c.ok(RESIZE, "t1", 132, 43)
    eq(collect(xo).replace(b"\r\n", b"\n"), b"/dev/pts/0\n43 132\n", "exec tty and size after resize")
    eq(c.event(EV_EXIT, exec_id="t1")[2], "0", "exec exit")
    # Nothing to resize on a process without a terminal: answered OK, as containerd's shim does.
    c.ok(RESIZE, "", 80, 25)
    finish(b, c)


def test_slow_reader_loses_nothing(b):
    c, o, e = run_simple(b, ["sh", "-c", "dd if=/dev/zero bs=65536 count=64 2>/dev/null; echo done >&2"])
    time.sleep(1.5)  # the FIFO (1 MiB) fills; the container must wait, not lose output
    eq(len(collect(o)), 64 * 65536, "bytes through a slow reader")
    eq(collect(e), b"done\n", "stderr")
    finish(b, c)


def test_absent_reader_does_not_block_container(b):
    c, o, e = run_simple(b, ["sh", "-c", "dd if=/dev/zero bs=65536 count=64 2>/dev/null; echo done >&2"])
    t0 = time.time()
    ev = c.event(EV_EXIT, timeout=15)  # nobody reads stdout
    check(ev is not None, "container blocked with nobody reading its stdout")
    check(time.time() - t0 > 4, "output was dropped before the stall time (%.1fs)" % (time.time() - t0))
    eq(collect(e), b"done\n", "stderr still delivered")
    with open(os.path.join(b.state, "log")) as f:
        check("dropped" in f.read(), "the drop is logged")
    finish(b, c)


def test_control_rejects_bad_requests(b):
    c, o, e = run_simple(b, ["sleep", "100"])
    t, f = c.call(99)
    eq((t, f[0]), (ERROR, "invalid_argument"), "unknown type")
    t, f = c.call(KILL, "")
    eq((t, f[0]), (ERROR, "invalid_argument"), "too few fields")
    t, f = c.call(START, "nope")
    eq((t, f[0]), (ERROR, "not_found"), "unknown exec id")
    t, f = c.call(START, "")
    eq((t, f[0]), (ERROR, "failed_precondition"), "second START")
    c.s.send(b"x" * 5000)  # larger than KEEPER_MAX_REQUEST: the keeper hangs up
    check(c.s.recv(100) == b"", "oversized request closes the connection")
    c = Client(b.state)
    eq(c.ok(STATE)[0], "running", "keeper fine after a bad client")
    more = [Client(b.state) for _ in range(7)]  # 8 connections now: the limit
    for m in more:
        m.ok(STATE)
    extra = Client(b.state)
    try:
        extra.call(STATE, timeout=2)
        raise Fail("a 9th connection was served")
    except (Fail, OSError) as ex:
        check("9th" not in str(ex), str(ex))
    more[0].close()
    time.sleep(0.1)
    eq(Client(b.state).ok(STATE)[0], "running", "a freed slot serves a new client")
    finish(b, c)


def raw_plan_error(b, data):
    with open(os.path.join(b.state, "plan"), "wb") as f:
        f.write(data)
    r = subprocess.run([KEEPER, "create", "--state", b.state], capture_output=True, text=True, timeout=10)
    eq(r.returncode, 1, "create exit status for %r" % data[:40])
    return r.stderr.strip()


def test_state_dir_longer_than_a_socket_address_works(b):
    # 150 bytes and more: DIR/control.sock does not fit the 108 bytes of a sockaddr_un.
    longdir = os.path.join(b.dir, "d" * 150)
    os.makedirs(longdir)
    b.state = longdir
    c, o, e = run_simple(b, ["sh", "-c", "exit 6"])
    eq(c.event(EV_EXIT)[2], "6", "exit status through the long state directory")
    finish(b, c)


def test_state_dir_too_long_refused(b):
    longdir = os.path.join(b.dir, *(["d" * 200] * 3))
    os.makedirs(longdir)
    container_plan(b, ["true"]).write(os.path.join(longdir, "plan"))
    r = subprocess.run([KEEPER, "create", "--state", longdir], capture_output=True, text=True, timeout=10)
    eq(r.returncode, 1, "create exit status")
    check(r.stderr.startswith("state directory: %s...: longer than 512 bytes" % longdir[:64]), "stderr: %r" % r.stderr)


def test_malformed_plans_rejected_with_record(b):
    eq(raw_plan_error(b, b"id x\0"), 'plan: record 1 must be "version 1" (this keeper reads version 1)', "no version")
    eq(raw_plan_error(b, b"version 2\0"), 'plan: record 1 must be "version 1" (this keeper reads version 1)', "version 2")
    eq(raw_plan_error(b, b"version 1\0id x"), "plan: last record is not NUL-terminated", "unterminated")
    eq(raw_plan_error(b, b"version 1\0id x\0id y\0"), "plan: record 3 (id): given twice", "repeated scalar")
    eq(raw_plan_error(b, b"version 1\0id x\0terminal 1\0terminal 0\0"), "plan: record 4 (terminal): given twice",
       "repeated flag")
    eq(raw_plan_error(b, b"version 1\0id x\0version 1\0"), "plan: record 3 (version): given twice", "second version")
    eq(raw_plan_error(b, b"version 1\0id x\0memory_limit lots\0"),
       "plan: record 3 (memory_limit): bad number or out of range", "bad number")
    eq(raw_plan_error(b, b"version 1\0id x\0mount /proc\x1fproc\0"),
       "plan: record 3 (mount): 2 fields, need at least 3", "short compound record")
    eq(raw_plan_error(b, b"version 1\0id x\0rootfs relative\0"),
       "plan: record 3 (rootfs): path must be absolute", "relative path")
    eq(raw_plan_error(b, b"version 1\0id a/b\0rootfs /r\0arg x\0"),
       "plan: id a/b: must be 1-76 of [A-Za-z0-9_.-]", "bad id")
    eq(raw_plan_error(b, b"version 1\0id x\0rootfs /r\0"), "plan: no arg record (the process needs argv[0])", "no argv")
    eq(raw_plan_error(b, b"version 1\0" + b"env A=B\0" * 5000),
       "plan: record 4098 (env): too many entries", "list bound")
    no_leftovers(b)


def test_symlink_in_image_cannot_redirect_mounts(b):
    host_dir = os.path.join(b.dir, "host-side")
    os.makedirs(host_dir)
    os.symlink(host_dir, os.path.join(b.rootfs, "escape"))          # absolute, to a host path
    os.symlink("../../../../../../..", os.path.join(b.rootfs, "up"))  # climbs out
    c, o, e = run_simple(b, ["sh", "-c", "grep -c ' /in ' /proc/self/mountinfo; ls -d %s/sub" % host_dir],
                         extra=[("mount", ["/escape/sub", "tmpfs", "tmpfs"]), ("mount", ["/up/in", "tmpfs", "tmpfs"])])
    eq(collect(o), ("1\n%s/sub\n" % host_dir).encode(), "mounts landed inside the rootfs")
    eq(os.listdir(host_dir), [], "nothing created in the host directory")
    finish(b, c)


def test_device_rules_v1(b):
    c, o, e = run_simple(b, ["sh", "-c", "head -c1 /dev/zero > /dev/null; echo zero=$?; echo x > /dev/null; echo null=$?"],
                         extra=[("device_rule", ["deny", "a", "", "", "rwm"]),
                                ("device_rule", ["allow", "c", "1", "3", "rwm"])])
    eq(collect(o), b"zero=1\nnull=0\n", "device access under the rules")
    with open("/sys/fs/cgroup/devices/%s/%s/devices.list" % (CG_PARENT, b.id)) as f:
        eq(f.read(), "c 1:3 rwm\n", "devices.list")
    finish(b, c)


def test_sysctl_written_before_proc_sys_readonly(b):
    c, o, e = run_simple(b, ["cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/shmmni"],
                         extra=[("sysctl", ["net.ipv4.ip_forward", "1"]), ("sysctl", ["kernel.shmmni", "1234"])])
    eq(collect(o), b"1\n1234\n", "sysctls in the new net and ipc namespaces")
    finish(b, c)


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def test_exec_cycles_leak_nothing(b):
    c, o, e = run_simple(b, ["sleep", "100"])
    xplan = os.path.join(b.dir, "exec.plan")

    def cycle(i):
        xout = os.path.join(b.dir, "xo%d" % i)
        os.mkfifo(xout)
        process_records(Plan(), ["echo", "n%d" % i], stdout=xout).write(xplan)
        c.ok(EXEC, "c%d" % i, xplan)
        fd = open_reader(xout)
        c.ok(START, "c%d" % i)
        eq(collect(fd), ("n%d\n" % i).encode(), "exec output")
        os.close(fd)
        check(c.event(EV_EXIT, exec_id="c%d" % i) is not None, "exit of c%d" % i)
        c.ok(ACK_EXIT, "c%d" % i)
        c.ok(DELETE, "c%d" % i, "0")
        os.unlink(xout)

    c.ok(SUBSCRIBE)
    cycle(0)
    base = fd_count(b.keeper_pid)
    for i in range(1, 150):  # more than KEEPER_MAX_EXECS: slots must be reused
        cycle(i)
    eq(fd_count(b.keeper_pid), base, "keeper fds after 150 exec cycles")
    eq(len(c.ok(STATE)), 5, "no exec left in STATE")
    eq(os.listdir(os.path.join(b.state, "exits")), [], "no exit files left after ACK")
    finish(b, c)


def test_latency_true_container(b):
    """create + start + exit + delete of `true`, 15 times; prints the median."""
    times = []
    for i in range(15):
        x = b if i == 0 else Bundle(os.path.dirname(b.dir))
        t0 = time.time()
        x.create(container_plan(x, ["true"]))
        c = Client(x.state)
        c.ok(SUBSCRIBE)
        c.ok(START, "")
        eq(c.event(EV_EXIT)[2], "0", "exit of true")
        c.ok(DELETE, "", "0")
        times.append(time.time() - t0)
        check(wait_gone(x.keeper_pid), "keeper gone")
    times.sort()
    print("    create+start+exit+delete of `true`: median %.1f ms, min %.1f, max %.1f" %
          (times[7] * 1000, times[0] * 1000, times[-1] * 1000))


def test_network_host_or_new(b):
    host_net = os.readlink("/proc/self/ns/net").encode()
    c, o, e = run_simple(b, ["readlink", "/proc/self/ns/net"], drop=["namespace"],
                         extra=[("namespace", [n]) for n in ("mount", "pid", "uts", "ipc")])
    eq(collect(o).strip(), host_net, "no network record: the host's network namespace")
    finish(b, c)
    b2 = Bundle(os.path.dirname(b.dir))
    c, o, e = run_simple(b2, ["sh", "-c", "readlink /proc/self/ns/net; cat /proc/net/dev | wc -l"])
    lines = collect(o).split(b"\n")
    check(lines[0] != host_net, "namespace network: a new one")
    eq(lines[1], b"3", "a new network namespace has only lo (2 header lines + lo)")
    finish(b2, c)


def test_waiting_exec_holds_no_other_pipes(b):
    """An exec set up but not started must not keep the init's stdin pipe (or FIFOs) open."""
    out, inp = b.fifo("out"), b.fifo("in")
    b.create(container_plan(b, ["cat"], stdout=out, stdin=inp))
    ofd = open_reader(out)
    c = Client(b.state)
    c.ok(SUBSCRIBE)
    c.ok(START, "")
    xplan = os.path.join(b.dir, "exec.plan")
    process_records(Plan(), ["true"]).write(xplan)
    c.ok(EXEC, "w1", xplan)
    c.ok(CLOSE_STDIN, "")
    ev = c.event(EV_EXIT, timeout=3, exec_id="")
    check(ev is not None, "cat got no EOF while an exec waits for START")
    eq(collect(ofd, timeout=3), b"", "stdout EOF for the init while an exec waits")
    finish(b, c)


def test_stdin_to_stdout_2mib_roundtrip(b):
    out, inp = b.fifo("out"), b.fifo("in")
    b.create(container_plan(b, ["cat"], stdout=out, stdin=inp))
    ofd = open_reader(out)
    c = Client(b.state)
    c.ok(SUBSCRIBE)
    c.ok(START, "")
    data = bytes(range(256)) * 8192  # 2 MiB, more than every pipe and FIFO on the way

    def feed():
        with open(inp, "wb") as f:
            f.write(data)
        c2 = Client(b.state)
        c2.ok(CLOSE_STDIN, "")
        c2.close()

    t = threading.Thread(target=feed)
    t.start()
    got = collect(ofd, timeout=30)
    t.join()
    eq(len(got), len(data), "bytes through stdin -> cat -> stdout")
    check(got == data, "bytes identical")
    eq(c.event(EV_EXIT)[2], "0", "cat exit")
    finish(b, c)


def test_device_rules_v2_bpf(b):
    rules = [("device_rule", ["deny", "a", "", "", "rwm"]), ("device_rule", ["allow", "c", "1", "3", "rwm"]),
             ("device_rule", ["allow", "c", "1", "5", "w"]), ("device_rule", ["allow", "c", "*", "*", "m"])]
    c, o, e = run_simple(b, ["sh", "-c", "head -c1 /dev/zero > /dev/null; echo zero-r=$?; echo > /dev/zero; echo zero-w=$?; "
                             "echo x > /dev/null; echo null=$?; head -c1 /dev/urandom > /dev/null; echo urandom=$?"],
                         extra=[("cgroup_version", ["2"]), ("cgroup_root", ["/sys/fs/cgroup/unified"])] + rules)
    eq(collect(o), b"zero-r=1\nzero-w=0\nnull=0\nurandom=1\n", "device access under the v2 program")
    finish(b, c)


def test_join_pid_namespace_by_path(b):
    ca, oa, ea = run_simple(b, ["sleep", "100"])
    a_ns = os.readlink("/proc/%d/ns/pid" % b.init_pid).encode()
    b2 = Bundle(os.path.dirname(b.dir))
    joined = [("namespace", [n]) for n in ("mount", "uts", "ipc", "network", "cgroup")]
    joined.append(("namespace", ["pid", "/proc/%d/ns/pid" % b.init_pid]))
    cb, ob, eb = run_simple(b2, ["sh", "-c", "readlink /proc/self/ns/pid; cat /proc/1/cmdline; echo; "
                                 "[ $$ -ne 1 ] && echo not-init"], drop=["namespace"], extra=joined)
    eq(collect(ob), a_ns + b"\nsleep\x00100\x00\nnot-init\n", "joined the first container's pid namespace")
    check(pid_alive(b.init_pid), "the namespace's init keeps running")
    finish(b2, cb)
    b3 = Bundle(os.path.dirname(b.dir))
    cc, oc, ec = run_simple(b3, ["sleep", "100"], drop=["namespace"], extra=joined)
    xout = b3.fifo("xout")
    xplan = os.path.join(b3.dir, "exec.plan")
    process_records(Plan(), ["readlink", "/proc/self/ns/pid"], stdout=xout).write(xplan)
    cc.ok(EXEC, "j1", xplan)
    xo = open_reader(xout)
    cc.ok(START, "j1")
    eq(collect(xo), a_ns + b"\n", "an exec into a container that joined a pid namespace")
    finish(b3, cc)
    finish(b, ca)


# ---- mode oci: the keeper drives runc ------------------------------------------------------

RUNC = shutil.which("runc") or "/usr/bin/runc"


def oci_process(args, terminal=False):
    return {"terminal": terminal, "user": {"uid": 0, "gid": 0}, "args": args,
            "env": ["PATH=/bin"], "cwd": "/", "noNewPrivileges": True,
            "capabilities": {k: DEFAULT_CAPS for k in ("bounding", "effective", "permitted")}}


def oci_plan(b, args, stdout=None, stderr=None, terminal=False):
    """config.json from `runc spec`, adjusted; the plan points the keeper at it."""
    subprocess.run([RUNC, "spec", "--bundle", b.dir], check=True)
    cfg_path = os.path.join(b.dir, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["process"] = oci_process(args, terminal)
    cfg["root"] = {"path": b.rootfs, "readonly": False}
    cfg["hostname"] = "oci-" + b.id[:20]
    cfg["linux"]["cgroupsPath"] = "/%s/%s" % (CG_PARENT, b.id)
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    b.runc_root = os.path.join(b.dir, "runc-root")
    p = Plan().add("mode", "oci").add("id", b.id).add("runtime", RUNC)
    p.add("runtime_root", b.runc_root).add("oci_bundle", b.dir)
    p.add("cgroup_path", "%s/%s" % (CG_PARENT, b.id))
    if terminal:
        p.add("terminal", "1")
    for key, path in (("stdout", stdout), ("stderr", stderr)):
        if path:
            p.add(key, path)
    return p


def oci_run(b, args, terminal=False):
    out, err = b.fifo("out"), b.fifo("err")
    b.create(oci_plan(b, args, stdout=out, stderr=None if terminal else err, terminal=terminal))
    ofd, efd = open_reader(out), open_reader(err)
    c = Client(b.state)
    c.ok(SUBSCRIBE)
    eq(c.ok(STATE)[0], "created", "status after create")
    c.ok(START, "")
    return c, ofd, efd


def oci_finish(b, c):
    finish(b, c)
    r = subprocess.run([RUNC, "--root", b.runc_root, "list", "-q"], capture_output=True, text=True)
    eq(r.stdout.strip(), "", "runc containers left after DELETE")


def test_oci_exit_status_and_stdio(b):
    c, o, e = oci_run(b, ["sh", "-c", "echo oci-out; echo oci-err >&2; hostname; exit 3"])
    eq(collect(o), ("oci-out\noci-" + b.id[:20] + "\n").encode(), "stdout")
    eq(collect(e), b"oci-err\n", "stderr")
    ev = c.event(EV_EXIT)
    check(ev is not None, "no exit event")
    eq((ev[1], ev[2]), (str(b.init_pid), "3"), "exit pid and status (the keeper reaped runc's init)")
    oci_finish(b, c)


def test_oci_kill_all(b):
    c, o, e = oci_run(b, ["sh", "-c", "sleep 100 & sleep 100"])
    time.sleep(0.3)
    pids = c.ok(PIDS)
    eq(len(pids), 2, "PIDS from runc's cgroup (sh exec'd the last sleep: 2 sleeps)")
    check(str(b.init_pid) in pids, "init among PIDS")
    c.ok(KILL, "", signal.SIGKILL, 1)
    ev = c.event(EV_EXIT)
    eq(ev[2], "137", "status after kill all")
    oci_finish(b, c)


def test_oci_exec_own_status(b):
    c, o, e = oci_run(b, ["sleep", "100"])
    xout = b.fifo("xout")
    proc = os.path.join(b.dir, "process.json")
    with open(proc, "w") as f:
        json.dump(oci_process(["sh", "-c", "echo from-exec; exit 6"]), f)
    xplan = os.path.join(b.dir, "exec.plan")
    Plan().add("oci_process", proc).add("stdout", xout).write(xplan)
    c.ok(EXEC, "x1", xplan)
    xo = open_reader(xout)
    pid = c.ok(START, "x1")[0]
    ev = c.event(EV_EXIT, exec_id="x1")
    check(ev is not None, "no exit event for the exec")
    eq((ev[1], ev[2]), (pid, "6"), "exec pid and status")
    eq(collect(xo), b"from-exec\n", "exec stdout")
    eq(c.ok(STATE)[0], "running", "init still running")
    oci_finish(b, c)


def test_oci_pause_resume(b):
    c, o, e = oci_run(b, ["sleep", "100"])
    c.ok(PAUSE)
    eq(c.ok(STATE)[0], "paused", "status after PAUSE")
    eq(freezer_state(b), "FROZEN", "freezer.state after PAUSE")
    c.ok(RESUME)
    eq(freezer_state(b), "THAWED", "freezer.state after RESUME")
    oci_finish(b, c)


def test_oci_missing_binary_fails_create(b):
    r = b.create(oci_plan(b, ["nope"]), expect_ok=False)
    eq(r.returncode, 1, "create exit status")
    check('exec: \"nope\": executable file not found in $PATH' in r.stderr or
          'exec: "nope": executable file not found in $PATH' in r.stderr, "stderr: %r" % r.stderr)
    check(r.stderr.startswith(RUNC + " " + b.id + ": "), "error names the runtime and the id: %r" % r.stderr)
    no_leftovers(b)


def test_oci_pty(b):
    c, o, e = oci_run(b, ["tty"], terminal=True)
    eq(collect(o).replace(b"\r\n", b"\n"), b"/dev/pts/0\n", "tty through runc's console socket")
    oci_finish(b, c)


def test_oci_exit_while_disconnected(b):
    c, o, e = oci_run(b, ["sh", "-c", "sleep 0.3; exit 4"])
    c.close()
    time.sleep(1.2)
    c = Client(b.state)
    c.ok(SUBSCRIBE)
    ev = c.event(EV_EXIT, timeout=2)
    check(ev is not None, "exit not delivered on reconnect")
    eq(ev[2], "4", "status delivered on reconnect")
    oci_finish(b, c)


def test_oci_exec_with_terminal(b):
    c, o, e = oci_run(b, ["sleep", "100"])
    xout = b.fifo("xout")
    proc = os.path.join(b.dir, "process.json")
    with open(proc, "w") as f:
        json.dump(oci_process(["tty"], terminal=True), f)
    xplan = os.path.join(b.dir, "exec.plan")
    Plan().add("oci_process", proc).add("terminal", "1").add("stdout", xout).write(xplan)
    c.ok(EXEC, "t1", xplan)
    xo = open_reader(xout)
    c.ok(START, "t1")
    eq(collect(xo).replace(b"\r\n", b"\n"), b"/dev/pts/0\n", "exec tty through runc's console socket")
    eq(c.event(EV_EXIT, exec_id="t1")[2], "0", "exec exit")
    oci_finish(b, c)


def cleanup_after_failure(b):
    """A failed test may leave its container: DELETE it, or kill and remove by hand."""
    if not b.keeper_pid or not pid_alive(b.keeper_pid):
        return
    try:
        Client(b.state).call(DELETE, "", "1", timeout=5)
    except Exception:
        pass
    if wait_gone(b.keeper_pid, 2):
        return
    for pid in (b.keeper_pid, getattr(b, "init_pid", 0)):
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    time.sleep(0.2)
    for d in b.cgroup_dirs():
        try:
            os.rmdir(d)
        except OSError:
            pass


TESTS = [v for k, v in sorted(globals().items()) if k.startswith("test_") and k != "test_pss_20_keepers"]


def main():
    global KEEPER
    if len(sys.argv) < 2 or os.geteuid() != 0:
        print("usage (as root): test_keeper.py /path/to/berth-keeper [name-filter...]")
        return 2
    KEEPER = os.path.abspath(sys.argv[1])
    for need in (KEEPER, BUSYBOX):
        if not os.access(need, os.X_OK):
            print("%s: not found or not executable (busybox: apt-get install busybox-static)" % need)
            return 2
    filters = sys.argv[2:]
    root = tempfile.mkdtemp(prefix="keeper-test-")
    os.chmod(root, 0o755)  # a user-namespaced root must be able to reach its rootfs
    passed = failed = 0
    tests = [t for t in TESTS if not filters or any(f in t.__name__ for f in filters)]
    for t in tests:
        first = len(Bundle.made)
        b = Bundle(root)
        t0 = time.time()
        try:
            t(b)
            passed += 1
            print("PASS %s (%.2fs)" % (t.__name__, time.time() - t0))
        except Exception as ex:  # a failed check or an unexpected error both fail the test
            failed += 1
            print("FAIL %s: %s: %s" % (t.__name__, type(ex).__name__, ex))
            for x in Bundle.made[first:]:
                cleanup_after_failure(x)
    if not filters or any(f in "test_pss_20_keepers" for f in filters):
        try:
            test_pss_20_keepers(root)
            passed += 1
            print("PASS test_pss_20_keepers")
        except Exception as ex:
            failed += 1
            print("FAIL test_pss_20_keepers: %s: %s" % (type(ex).__name__, ex))
    shutil.rmtree(root, ignore_errors=True)
    for h in os.listdir("/sys/fs/cgroup"):  # the shared parent the tests used
        try:
            os.rmdir(os.path.join("/sys/fs/cgroup", h, CG_PARENT))
        except OSError:
            pass
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
