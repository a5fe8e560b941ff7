#!/usr/bin/env python3
"""Storage benchmark through containerd's ctr: berthd beside containerd 1.6 (when installed).

Per daemon, on a fresh temporary root. By default (as root, with mkfs.ext4) that root is a
filesystem of its own: an ext4 image made for this daemon alone (mkfs defaults, so with a
journal, as hosts run it) on a loop device with direct I/O (no second page cache between the
daemon's writes and the disk). Each daemon then starts from the same state. On this VM's root filesystem (ext4 without a journal) creating a directory costs
10x more for minutes after many deletions, so a daemon measured there after another one's
clean-up pays for it; `--fs host` measures there anyway (in $TMPDIR).

Before each daemon, free memory is written once and released (`--no-warm-memory` skips it). On
this VM a guest page costs a fault in the hypervisor the first time it is touched (about
310 MB/s), so a daemon writing a blob into page cache no one had used since boot measures the
hypervisor, not itself: ingest ran at ~280 MB/s cold and 470-640 MB/s warm in the same session.
A physical host has no such first touch.
  snapshot ops  - N x (prepare, commit, info) through ctr: median wall time per op and the
                  daemon's CPU time per op (run time of its threads, /proc/PID/task/*/schedstat)
  floor         - N x `ctr version`: the daemon's CPU for one ctr connection and one trivial RPC,
                  which every ctr-driven op above pays
  prepares/s    - P parallel workers each running `ctr snapshots prepare` (N x 4 in all):
                  prepares per second of wall time
  one connection - the same client for both daemons (Benchmarks/Client, `berth-bench`) over a
                  single gRPC connection: N x (prepare, commit, stat) with the daemon's CPU per
                  op, then N x 4 prepares from P concurrent callers per second
  ingest        - `ctr content ingest` of a SIZE-MiB random file, three different ones: median MB/s
  get           - `ctr content get` of the last to /dev/null, three times: median MB/s (ctr reads
                  32 KiB per RPC)
Targets (issue 3): daemon CPU per snapshot op <= 0.5 ms; ingest >= 300 MB/s; get >= 5x containerd.

Usage: Benchmarks/storage.py [--berthd PATH] [--ops N] [--size-mib M] [--parallel P] [--fs image|host] [--samples] [--no-warm-memory]
"""
import argparse, concurrent.futures, hashlib, json, mmap, os, shutil, signal, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = False   # --samples: print every ingest and get figure, not only the medians
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """CPU time of the daemon: utime+stime of the process (10 ms ticks), or the sum of its live
    threads' nanosecond run times from schedstat when that is finer."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = (int(fields[11]) + int(fields[12])) / TICK
    try:
        total = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except OSError:
        return ticks


def ctr(sock, *args, stdin=None, stdout=subprocess.DEVNULL):
    subprocess.run(["ctr", "--address", sock, *args], stdin=stdin, stdout=stdout, check=True)


def wait_ready(sock, proc):
    for _ in range(2000):
        if proc.poll() is not None:
            raise RuntimeError("daemon exited")
        if subprocess.run(["ctr", "--address", sock, "version"], capture_output=True).returncode == 0:
            return
        time.sleep(0.01)
    raise RuntimeError("daemon not ready")


def parallel_prepares(sock, count, workers):
    def prepare(i):
        ctr(sock, "--namespace", "parallel", "snapshots", "prepare", f"p{i}")
    t = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(prepare, range(count)))
    return count / (time.monotonic() - t)


def one_connection(bench, sock, pid, ops, workers):
    """Daemon CPU per op of N x (prepare, commit, stat) and prepares/s of P callers, over one
    connection from berth-bench."""
    if not bench:
        return float("nan"), float("nan")
    cpu0 = cpu_seconds(pid)
    out = subprocess.run([bench, sock, "sequential", str(ops)], capture_output=True, text=True, check=True).stdout
    cpu_per_op = (cpu_seconds(pid) - cpu0) * 1000 / json.loads(out)["operations"]
    out = json.loads(subprocess.run([bench, sock, "parallel", str(4 * ops), str(workers)],
                                    capture_output=True, text=True, check=True).stdout)
    return cpu_per_op, out["operations"] / out["seconds"]


class Scratch:
    """A folder for one daemon (or the disk ceiling): on a fresh ext4 image mounted for it, or
    in $TMPDIR. Removed, image and all, on exit."""

    def __init__(self, kind, size):
        self.host = tempfile.mkdtemp(prefix="storage-bench-")
        self.path, self.mounted = self.host, False
        if kind == "image":
            image, self.path = os.path.join(self.host, "fs.img"), os.path.join(self.host, "mnt")
            os.mkdir(self.path)
            with open(image, "wb") as f:
                f.truncate(size)
            subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True)
            self.device = subprocess.run(["losetup", "--find", "--show", "--direct-io=on", image],
                                         capture_output=True, text=True, check=True).stdout.strip()
            subprocess.run(["mount", self.device, self.path], check=True)
            self.mounted = True

    def __enter__(self):
        return self.path

    def __exit__(self, *_):
        if self.mounted:
            subprocess.run(["umount", self.path], check=False)
            subprocess.run(["losetup", "--detach", self.device], check=False)
        shutil.rmtree(self.host, ignore_errors=True)


def warm_memory():
    """Writes all free memory but 1 GiB once, then releases it: the pages the daemon gets next
    are backed by the hypervisor already."""
    free = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemFree:"):
                free = int(line.split()[1]) * 1024
    size = max(0, free - (1 << 30)) & ~((1 << 20) - 1)
    if size == 0:
        return
    area, chunk = mmap.mmap(-1, size), b"\1" * (1 << 20)
    with memoryview(area) as view:
        for offset in range(0, size, 1 << 20):
            view[offset:offset + (1 << 20)] = chunk
    area.close()


def run_daemon(label, start, ops, blobs, size, workers, bench, fs, warm):
    if warm:
        warm_memory()
    os.sync()   # nothing of the previous daemon's left for the disk to write meanwhile
    # Room for the blobs and one ingest in progress, and the snapshots.
    with Scratch(fs, (len(blobs) + 1) * size + (1 << 30)) as work:
        return measure(label, start, work, ops, blobs, size, workers, bench)


def measure(label, start, work, ops, blobs, size, workers, bench):
    sock = os.path.join(work, "d.sock")
    proc = start(work, sock)
    try:
        wait_ready(sock, proc)
        times, cpu0 = {"prepare": [], "commit": [], "info": []}, cpu_seconds(proc.pid)
        for i in range(ops):
            for name, args in (("prepare", ["snapshots", "prepare", f"k{i}"]),
                               ("commit", ["snapshots", "commit", f"c{i}", f"k{i}"]),
                               ("info", ["snapshots", "info", f"c{i}"])):
                t = time.monotonic()
                ctr(sock, *args)
                times[name].append((time.monotonic() - t) * 1000)
        cpu_per_op = (cpu_seconds(proc.pid) - cpu0) * 1000 / (3 * ops)
        cpu0 = cpu_seconds(proc.pid)
        for _ in range(ops):
            # ctr warns on stderr that the server's version is not its own.
            subprocess.run(["ctr", "--address", sock, "version"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        floor = (cpu_seconds(proc.pid) - cpu0) * 1000 / ops
        rate = parallel_prepares(sock, 4 * ops, workers)
        conn_cpu, conn_rate = one_connection(bench, sock, proc.pid, ops, workers)
        ingests, gets = [], []
        for i, (blob, digest) in enumerate(blobs):
            with open(blob, "rb") as f:
                t = time.monotonic()
                ctr(sock, "content", "ingest", "--expected-digest", digest, f"bench-{i}", stdin=f)
                ingests.append(size / (time.monotonic() - t) / 1e6)
        for _ in range(3):
            t = time.monotonic()
            ctr(sock, "content", "get", blobs[-1][1])
            gets.append(size / (time.monotonic() - t) / 1e6)
        ingest, get = statistics.median(ingests), statistics.median(gets)
        if SAMPLES:
            print(f"{label}: ingest MB/s "
                  + " ".join(f"{x:.0f}" for x in ingests) + "; get MB/s " + " ".join(f"{x:.0f}" for x in gets), file=sys.stderr)
        return {k: statistics.median(v) for k, v in times.items()}, cpu_per_op, floor, rate, conn_cpu, conn_rate, ingest, get
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def berthd(binary):
    def start(work, sock):
        return subprocess.Popen([binary, "--config", os.path.join(ROOT, "plugin.conf"), "--root", f"{work}/root",
                                 "--state", f"{work}/state", "--address", sock, "--log-level", "warning"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return start


def containerd(work, sock):
    config = os.path.join(work, "config.toml")
    with open(config, "w") as f:
        f.write(f'version = 2\nroot = "{work}/root"\nstate = "{work}/state"\n[grpc]\naddress = "{sock}"\n')
    return subprocess.Popen(["containerd", "--config", config, "--log-level", "warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def disk_ceiling(blobs, size, fs, warm):
    """Median MB/s of `dd ... conv=fdatasync` copying each blob onto the kind of filesystem the
    daemons ran on, one after the other as the ingests run: a durable ingest cannot beat the
    disk it syncs to. (This VM's disk takes a first burst much faster than what follows.)"""
    if warm:
        warm_memory()
    os.sync()
    with Scratch(fs, (len(blobs) + 1) * size + (256 << 20)) as work:
        rates = []
        for i, (blob, _) in enumerate(blobs):
            t = time.monotonic()
            subprocess.run(["dd", f"if={blob}", f"of={work}/copy-{i}", "bs=1M", "conv=fdatasync"], capture_output=True, check=True)
            rates.append(size / (time.monotonic() - t) / 1e6)
        return statistics.median(rates)


def main():
    parser = argparse.ArgumentParser()
    default = os.path.join(ROOT, ".build/release/berthd")
    parser.add_argument("--berthd", default=default if os.path.exists(default) else os.path.join(ROOT, ".build/debug/berthd"))
    parser.add_argument("--ops", type=int, default=100)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--parallel", type=int, default=8)
    image_possible = os.geteuid() == 0 and shutil.which("mkfs.ext4") is not None
    parser.add_argument("--fs", choices=["image", "host"], default="image" if image_possible else "host")
    parser.add_argument("--samples", action="store_true")
    parser.add_argument("--no-warm-memory", dest="warm_memory", action="store_false")
    args = parser.parse_args()
    global SAMPLES
    SAMPLES = args.samples
    bench = os.path.join(os.path.dirname(args.berthd), "berth-bench")
    bench = bench if os.path.exists(bench) else None
    size = args.size_mib << 20
    # Three blobs: random bytes, then the same with a different first byte each.
    blobs = []
    base = tempfile.mktemp(prefix="storage-bench-blob-")
    with open(base, "wb") as f:
        f.write(os.urandom(size))
    for i in range(3):
        path = base if i == 0 else f"{base}-{i}"
        if i > 0:
            shutil.copyfile(base, path)
            with open(path, "r+b") as f:
                f.write(bytes([i]))
        with open(path, "rb") as f:
            blobs.append((path, "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()))
    # Written back now, not while the first daemon syncs its own writes.
    os.sync()
    try:
        name = "berthd " + os.path.relpath(args.berthd, ROOT).split("/")[1]
        rows = [(name, run_daemon(name, berthd(args.berthd), args.ops, blobs, size, args.parallel, bench, args.fs, args.warm_memory))]
        if shutil.which("containerd"):
            rows.append(("containerd", run_daemon("containerd", containerd, args.ops, blobs, size, args.parallel, bench, args.fs, args.warm_memory)))
        disk = disk_ceiling(blobs, size, args.fs, args.warm_memory)
    finally:
        for path, _ in blobs:
            os.unlink(path)
    print(f"{args.ops} x prepare/commit/info via ctr; floor = {args.ops} x ctr version; "
          f"{4 * args.ops} prepares from {args.parallel} parallel ctr workers; 3 ingests of different {args.size_mib} MiB blobs and 3 gets via ctr (medians)")
    print("each daemon on " + ("a fresh ext4 image of its own (loop device, direct I/O)" if args.fs == "image"
                               else f"the host filesystem under {tempfile.gettempdir()}")
          + ("; free memory written once before each (--no-warm-memory to skip)" if args.warm_memory else "; memory not warmed"))
    print("through ctr (a new connection per command):")
    print(f"{'daemon':<24}{'prepare ms':>11}{'commit ms':>10}{'info ms':>9}{'CPU/op ms':>10}{'floor ms':>9}"
          f"{'prepares/s':>11}{'ingest MB/s':>12}{'get MB/s':>10}")
    for name, (t, cpu, floor, rate, _, _, ingest, get) in rows:
        print(f"{name:<24}{t['prepare']:>11.1f}{t['commit']:>10.1f}{t['info']:>9.1f}{cpu:>10.2f}{floor:>9.2f}"
              f"{rate:>11.0f}{ingest:>12.0f}{get:>10.0f}")
    print(f"{'disk: dd + fdatasync':<24}{'':>11}{'':>10}{'':>9}{'':>10}{'':>9}{'':>11}{disk:>12.0f}{'':>10}")
    print(f"{'target (issue 3)':<24}{'':>11}{'':>10}{'':>9}{'<= 0.5':>10}{'':>9}{'>= 200':>11}{'>= 300':>12}{'5x ctrd':>10}")
    print(f"over one connection (berth-bench; {args.ops} x prepare/commit/stat, {4 * args.ops} prepares from {args.parallel} callers):")
    print(f"{'daemon':<24}{'CPU/op ms':>10}{'prepares/s':>11}")
    for name, (_, _, _, _, conn_cpu, conn_rate, _, _) in rows:
        print(f"{name:<24}{conn_cpu:>10.2f}{conn_rate:>11.0f}")
    print(f"{'target (issue 3)':<24}{'<= 0.5':>10}{'>= 200':>11}")


if __name__ == "__main__":
    main()
