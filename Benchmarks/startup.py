#!/usr/bin/env python3
"""Daemon start-up benchmark: berthd beside containerd 1.6 (when installed), same machine, same run.

For each daemon, RUNS times: start it on a fresh temporary root, then measure
  ready   - from exec to the socket accepting a connection,
  version - from exec to the first `ctr version` that succeeds (ctr's own start included),
  rss     - resident memory (VmRSS) one second after ready, idle, and PSS beside it (each
            shared page counted once per process mapping it).
Prints medians side by side with the targets (ready <= 30 ms, idle RSS <= 12 MiB). With --map,
also where the last run's memory sits: RSS, PSS and private dirty KiB per mapped file.

Usage: Benchmarks/startup.py [--berthd PATH [--berthd PATH2]] [--runs N] [--map]
"""
import argparse, os, shutil, signal, socket, statistics, subprocess, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wait_socket(path, proc, deadline):
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {proc.returncode}")
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            s.close()
            return time.monotonic()
        except OSError:
            time.sleep(0.0005)
    raise RuntimeError("daemon never listened")


def wait_version(path, deadline):
    while time.monotonic() < deadline:
        if subprocess.run(["ctr", "--address", path, "version"], capture_output=True).returncode == 0:
            return time.monotonic()
    raise RuntimeError("ctr version never succeeded")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def memory_map(pid):
    """{file name or [anon]: [rss, pss, private dirty]} in KiB, from /proc/PID/smaps."""
    rows, current = {}, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
                name = os.path.basename(head[5]) if len(head) > 5 else "[anon]"
                current = rows.setdefault(name, [0, 0, 0])
            elif head[0] in ("Rss:", "Pss:", "Private_Dirty:"):
                current[("Rss:", "Pss:", "Private_Dirty:").index(head[0])] += int(head[1])
    return rows


def measure(start, runs):
    ready, version, rss, pss, layout = [], [], [], [], {}
    for _ in range(runs):
        work = tempfile.mkdtemp(prefix="bench-")
        try:
            for mode in ("ready", "version"):
                sock = os.path.join(work, f"{mode}.sock")
                t0 = time.monotonic()
                proc = start(work, sock, mode)
                try:
                    if mode == "ready":
                        ready.append((wait_socket(sock, proc, t0 + 20) - t0) * 1000)
                        time.sleep(1.0)
                        rss.append(rss_kib(proc.pid) / 1024)
                        pss.append(pss_kib(proc.pid) / 1024)
                        layout = memory_map(proc.pid)
                    else:
                        version.append((wait_version(sock, t0 + 20) - t0) * 1000)
                finally:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=20)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return statistics.median(ready), statistics.median(version), statistics.median(rss), statistics.median(pss), layout


def berthd_starter(binary):
    def start(work, sock, mode):
        return subprocess.Popen([binary, "--config", os.path.join(ROOT, "plugin.conf"),
                                 "--root", f"{work}/{mode}-root", "--state", f"{work}/{mode}-state",
                                 "--address", sock, "--log-level", "warning"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return start


def containerd_starter(work, sock, mode):
    config = os.path.join(work, f"{mode}.toml")
    with open(config, "w") as f:
        f.write(f'version = 2\nroot = "{work}/{mode}-root"\nstate = "{work}/{mode}-state"\n'
                f'[grpc]\naddress = "{sock}"\n')
    return subprocess.Popen(["containerd", "--config", config, "--log-level", "warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--berthd", action="append", help="a berthd binary (plugins beside it); repeat to compare builds")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--map", action="store_true", help="print RSS/PSS per mapped file of the last run")
    args = parser.parse_args()
    default = os.path.join(ROOT, ".build/release/berthd")
    binaries = args.berthd or [default if os.path.exists(default) else os.path.join(ROOT, ".build/debug/berthd")]
    rows = [("berthd (" + os.path.relpath(b, ROOT) + ")", measure(berthd_starter(b), args.runs)) for b in binaries]
    if shutil.which("containerd"):
        rows.append(("containerd " + subprocess.run(["containerd", "--version"], capture_output=True, text=True)
                     .stdout.split()[2], measure(containerd_starter, args.runs)))
    print(f"median of {args.runs} runs; ready = exec to socket accepting; version = exec to first ctr version")
    print(f"{'daemon':<34}{'ready ms':>10}{'version ms':>12}{'idle RSS MiB':>14}{'PSS MiB':>9}")
    for name, (ready, version, rss, pss, _) in rows:
        print(f"{name:<34}{ready:>10.1f}{version:>12.1f}{rss:>14.1f}{pss:>9.1f}")
    print(f"{'target':<34}{'<= 30':>10}{'':>12}{'<= 12':>14}")
    if args.map:
        for name, (*_, layout) in rows:
            print(f"\n{name}, last run: KiB per mapping (RSS / PSS / private dirty), largest first")
            for file, (r, p, d) in sorted(layout.items(), key=lambda item: -item[1][0]):
                if r >= 64:
                    print(f"  {file:<44}{r:>8}{p:>8}{d:>8}")


if __name__ == "__main__":
    main()
