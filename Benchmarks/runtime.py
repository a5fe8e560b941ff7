#!/usr/bin/env python3
"""Runtime benchmark through containerd's ctr: berthd beside containerd 1.6 + runc, same ctr, same run.

Per daemon, each on a fresh ext4 filesystem of its own (its state folder on a tmpfs, as both
daemons' defaults have it) and after warming free memory (see Benchmarks/storage.py for why),
with the same busybox image (umoci, busybox-static) imported:
  run --rm      - `ctr run --rm IMAGE ID true`, N times after two warm-ups: median (min, max) ms
  phases        - where each of those runs spent its time, from the daemon's own event timestamps
                  (`ctr events`): ctr start -> first event, each event -> the next, last event ->
                  ctr exit; medians over the N runs. Only the events mark phases, so e.g.
                  "containers/create -> tasks/create" holds ctr's stdio set-up and Tasks.Create.
  200 starts    - `ctr run -d IMAGE cK sleep 1000000` for K = 1..200, one after the other: seconds
                  in all, while another thread runs `ctr version` in a loop: its median and max ms
  memory        - after 50 and after 200 running: PSS of every helper process the daemon started
                  for its containers (berth-keeper; containerd-shim-runc-v2) plus the growth of the
                  daemon's own PSS since before the first start, divided by the number running.
                  The containers' own processes (sleep) are not counted: they are the workload.
  restart       - kill -9 of the daemon with the 200 running, start it again: ms until `ctr version`
                  answers and `ctr tasks ls` lists all 200 RUNNING (the same pids as before)
Targets (issue 10): run --rm <= 40 ms; <= 0.3 MiB per container; 200 starts <= 6 s; restart <= 150 ms.

Usage: Benchmarks/runtime.py [--berthd PATH] [--runs N] [--containers C] [--only berthd|containerd]
Run as root (real namespaces, cgroups, mounts). Everything the run made is removed at the end.
"""
import argparse, calendar, os, shutil, signal, statistics, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import storage  # noqa: E402  (Scratch, warm_memory, wait_ready, berthd, containerd)

ROOT = storage.ROOT
IMAGE = "docker.io/library/bench:latest"
APPLETS = "sh true sleep echo"


def build_image(directory):
    script = f"""
        cd {directory}
        umoci init --layout oci
        umoci new --image oci:latest
        umoci unpack --rootless --image oci:latest bundle
        mkdir -p bundle/rootfs/bin
        cp /bin/busybox bundle/rootfs/bin/busybox
        for applet in {APPLETS}; do ln -s busybox bundle/rootfs/bin/$applet; done
        umoci repack --image oci:latest bundle
        cd oci && tar -cf ../image.tar .
    """
    subprocess.run(["/bin/sh", "-ec", script], check=True, capture_output=True)
    return os.path.join(directory, "image.tar")


def ctr(sock, *args, check=True):
    return subprocess.run(["ctr", "--address", sock, "--namespace", "bench", *args],
                          capture_output=True, text=True, check=check)


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def helpers(names, work):
    """Pids of live processes whose comm is one of `names` and whose command line names `work`
    (keepers carry their state folder, shims the daemon's socket): this daemon's helpers only,
    not those of other daemons on the host."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() not in names:
                        continue
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if work.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


def memory_per_container(daemon_pid, baseline_kib, names, work, count):
    total = sum(pss_kib(pid) for pid in helpers(names, work)) + (pss_kib(daemon_pid) - baseline_kib)
    return total / count / 1024


def running_tasks(sock):
    out = ctr(sock, "tasks", "ls", check=False).stdout.splitlines()[1:]
    return {row.split()[0]: row.split()[1] for row in out if row.split() and row.split()[-1] == "RUNNING"}


def event_time(line):
    """Seconds since 1970 of a `ctr events` line ("2026-12-01 06:52:03.399635673 +0000 UTC ...")."""
    day, clock = line.split()[:2]
    whole, _, fraction = clock.partition(".")
    base = calendar.timegm(time.strptime(f"{day} {whole}", "%Y-%m-%d %H:%M:%S"))
    return base + float("0." + (fraction or "0"))


def phases(lines, spans):
    """Per phase name, the gaps (ms) of every run: `spans` are (start, end) wall times of runs."""
    events = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[4] == "bench":
            events.append((event_time(line), fields[5]))
    gaps, order = {}, []
    for start, end in spans:
        inside = sorted(e for e in events if start <= e[0] <= end)
        marks = [(start, "ctr start")] + inside + [(end, "ctr exit")]
        for (t0, a), (t1, b) in zip(marks, marks[1:]):
            name = f"{a} -> {b}"
            if name not in gaps:
                gaps[name] = []
                order.append(name)
            gaps[name].append((t1 - t0) * 1000)
    return [(name, gaps[name]) for name in order]


def measure(label, start, names, image, runs, count):
    result = {}
    with storage.Scratch("image", 8 << 30) as work:
        storage.warm_memory()
        os.sync()
        # The state folder on tmpfs, as both daemons' defaults have it (/run/berth,
        # /run/containerd): helpers' sockets, pid and exit files live there.
        os.makedirs(f"{work}/state")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0711", "tmpfs", f"{work}/state"], check=True)
        sock = os.path.join(work, "d.sock")
        proc = start(work, sock)
        try:
            storage.wait_ready(sock, proc)
            ctr(sock, "images", "import", "--base-name", "docker.io/library/bench", image)
            samples, spans = [], []
            events = subprocess.Popen(["ctr", "--address", sock, "events"], stdout=subprocess.PIPE, text=True)
            lines = []
            reader = threading.Thread(target=lambda: lines.extend(events.stdout))
            reader.start()
            time.sleep(0.2)
            for i in range(runs + 2):
                wall, t = time.time(), time.monotonic()
                ctr(sock, "run", "--rm", IMAGE, f"once{i}", "true")
                samples.append((time.monotonic() - t) * 1000)
                spans.append((wall, wall + samples[-1] / 1000))
            time.sleep(0.2)
            events.terminate()
            reader.join()
            result["run"] = samples[2:]
            result["phases"] = phases(lines, spans[2:])

            baseline = pss_kib(proc.pid)
            latencies, done = [], threading.Event()

            def probe():
                while not done.is_set():
                    t = time.monotonic()
                    subprocess.run(["ctr", "--address", sock, "version"], capture_output=True)
                    latencies.append((time.monotonic() - t) * 1000)
                    time.sleep(0.05)
            prober = threading.Thread(target=probe)
            prober.start()
            t = time.monotonic()
            for k in range(1, count + 1):
                ctr(sock, "run", "-d", IMAGE, f"c{k}", "sleep", "1000000")
                if k == 50:
                    result["mem50"] = memory_per_container(proc.pid, baseline, names, work, 50)
            result["starts"] = time.monotonic() - t
            done.set()
            prober.join()
            result["version"] = latencies
            time.sleep(1)
            result["mem_all"] = memory_per_container(proc.pid, baseline, names, work, count)
            before = running_tasks(sock)

            proc.send_signal(signal.SIGKILL)
            proc.wait()
            t = time.monotonic()
            proc = start(work, sock)
            storage.wait_ready(sock, proc)
            ready = time.monotonic()
            while running_tasks(sock) != before and time.monotonic() - t < 60:
                time.sleep(0.005)
            result["restart_api"] = (ready - t) * 1000
            result["restart_all"] = (time.monotonic() - t) * 1000
            result["restart_same"] = running_tasks(sock) == before

            for k in range(1, count + 1):
                ctr(sock, "tasks", "kill", "-s", "SIGKILL", f"c{k}", check=False)
            for k in range(1, count + 1):
                for _ in range(100):
                    if ctr(sock, "tasks", "delete", f"c{k}", check=False).returncode == 0:
                        break
                    time.sleep(0.05)
                ctr(sock, "containers", "rm", f"c{k}", check=False)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            for pid in helpers(names, work):
                os.kill(pid, signal.SIGKILL)
            mounts = [line.split()[1] for line in open("/proc/mounts") if line.split()[1].startswith(work + "/")]
            for mount in sorted(mounts, key=len, reverse=True):
                subprocess.run(["umount", "-l", mount], check=False)
            subprocess.run(["umount", "-l", f"{work}/state"], check=False)
    return result


def show(label, r):
    run = r["run"]
    version = r["version"] or [float("nan")]
    print(f"{label:<11} run --rm {statistics.median(run):6.1f} ms ({min(run):.1f}-{max(run):.1f}) | "
          f"starts {r['starts']:6.2f} s | version during starts median "
          f"{statistics.median(version):5.1f} ms max {max(version):6.1f} | MiB/container @50 {r['mem50']:.2f} "
          f"@all {r['mem_all']:.2f} | restart: API {r['restart_api']:.0f} ms, all running {r['restart_all']:.0f} ms "
          f"(same pids: {r['restart_same']})")
    print(f"{'':<11} run --rm samples: {' '.join(f'{s:.1f}' for s in run)}")
    for name, gaps in r["phases"]:
        print(f"{'':<11}   {name:<42} median {statistics.median(gaps):6.1f} ms  (n={len(gaps)})")


def main():
    parser = argparse.ArgumentParser()
    default = os.path.join(ROOT, ".build/release/berthd")
    parser.add_argument("--berthd", default=default if os.path.exists(default) else os.path.join(ROOT, ".build/debug/berthd"))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--containers", type=int, default=200)
    parser.add_argument("--only", choices=["berthd", "containerd"])
    args = parser.parse_args()
    if args.containers < 50:
        parser.error("--containers must be at least 50 (memory is measured at 50)")
    scratch = tempfile.mkdtemp(prefix="runtime-bench-")
    try:
        image = build_image(scratch)
        print(f"berthd: {args.berthd}; {args.runs} runs; {args.containers} containers")
        if args.only != "containerd":
            show("berthd", measure("berthd", storage.berthd(args.berthd), {"berth-keeper"}, image, args.runs, args.containers))
        if args.only != "berthd" and shutil.which("containerd"):
            show("containerd", measure("containerd", storage.containerd, {"containerd-shim"}, image, args.runs, args.containers))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
