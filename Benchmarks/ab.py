#!/usr/bin/env python3
"""A/B of berthd builds (and containerd): all daemons up at once, taking turns per batch.

A change that costs 10% of the daemon's CPU cannot be seen by running builds one after the
other on this VM: other work moves a daemon's figures by 30% between runs. Here every daemon
runs on its own fresh ext4 image, and the batches alternate between them (the order rotates
each round), so whatever the machine does meanwhile hits all of them alike. Each daemon's CPU
comes from a cpuacct cgroup of its own (which also counts threads that have exited).

Batches:
  version  - B x `ctr version`: one connection and one trivial RPC
  snapshot - B x (prepare, commit, info) through ctr, new keys each time
Printed per round: daemon CPU per command (ms) for each daemon and its ratio to the first;
then the median of the ratios over rounds, and the median wall time per ctr command.

Usage: Benchmarks/ab.py NAME=BERTHD [NAME=BERTHD ...] [--containerd] [--rounds R] [--batch B]
Each berthd runs with the plugin.conf of the tree it was built from (found above its binary),
else this tree's; its plugins are found beside it.
"""
import argparse, os, shutil, signal, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import storage  # noqa: E402  (Scratch, warm_memory, wait_ready, containerd)

CGROUP = "/sys/fs/cgroup/cpuacct"


def config_for(binary):
    folder = os.path.dirname(os.path.abspath(binary))
    while folder != "/":
        if os.path.exists(os.path.join(folder, "plugin.conf")):
            return os.path.join(folder, "plugin.conf")
        folder = os.path.dirname(folder)
    return os.path.join(storage.ROOT, "plugin.conf")


class Daemon:
    def __init__(self, name, binary):
        self.name, self.binary, self.counter = name, binary, 0
        self.cgroup = f"{CGROUP}/berth-ab-{os.getpid()}-{name}"

    def start(self, work):
        self.sock = os.path.join(work, "d.sock")
        if self.binary is None:
            self.proc = storage.containerd(work, self.sock)
        else:
            self.proc = subprocess.Popen(
                [self.binary, "--config", config_for(self.binary), "--root", f"{work}/root", "--state", f"{work}/state",
                 "--address", self.sock, "--log-level", "warning"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.makedirs(self.cgroup, exist_ok=True)
        with open(f"{self.cgroup}/cgroup.procs", "w") as f:
            f.write(str(self.proc.pid))
        storage.wait_ready(self.sock, self.proc)

    def cpu(self):
        with open(f"{self.cgroup}/cpuacct.usage") as f:
            return int(f.read()) / 1e9

    def ctr(self, *args):
        subprocess.run(["ctr", "--address", self.sock, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)

    def batch(self, kind, size):
        """Runs one batch; answers (daemon CPU ms per command, median wall ms per command)."""
        walls, cpu0 = [], self.cpu()
        for _ in range(size):
            i = self.counter
            self.counter += 1
            commands = ([["version"]] if kind == "version" else
                        [["snapshots", "prepare", f"k{i}"], ["snapshots", "commit", f"c{i}", f"k{i}"], ["snapshots", "info", f"c{i}"]])
            for command in commands:
                t = time.monotonic()
                self.ctr(*command)
                walls.append((time.monotonic() - t) * 1000)
        return (self.cpu() - cpu0) * 1000 / len(walls), statistics.median(walls)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        try:
            os.rmdir(self.cgroup)
        except OSError:
            pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("builds", nargs="+", help="NAME=PATH of a berthd")
    parser.add_argument("--containerd", action="store_true", help="also containerd (from PATH)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batch", type=int, default=20)
    args = parser.parse_args()
    daemons = [Daemon(*spec.split("=", 1)) for spec in args.builds]
    if args.containerd and shutil.which("containerd"):
        daemons.append(Daemon("containerd", None))
    storage.warm_memory()
    os.sync()
    scratches = [storage.Scratch("image", 2 << 30) for _ in daemons]
    try:
        for daemon, scratch in zip(daemons, scratches):
            daemon.start(scratch.__enter__())
        for daemon in daemons:  # first connections, lazy set-up: not measured
            daemon.batch("version", 3)
        ratios = {kind: {d.name: [] for d in daemons} for kind in ("version", "snapshot")}
        walls = {kind: {d.name: [] for d in daemons} for kind in ("version", "snapshot")}
        header = "round  batch     " + "  ".join(f"{d.name:>16}" for d in daemons)
        print(header)
        for round in range(args.rounds):
            load = os.getloadavg()[0]
            for kind in ("version", "snapshot"):
                order = daemons[round % len(daemons):] + daemons[:round % len(daemons)]
                cpu = {}
                for daemon in order:
                    cpu[daemon.name], wall = daemon.batch(kind, args.batch)
                    walls[kind][daemon.name].append(wall)
                first = cpu[daemons[0].name]
                cells = []
                for daemon in daemons:
                    ratio = cpu[daemon.name] / first
                    ratios[kind][daemon.name].append(ratio)
                    cells.append(f"{cpu[daemon.name]:7.3f} ({ratio:4.2f})")
                print(f"{round + 1:5}  {kind:8}  " + "  ".join(f"{c:>16}" for c in cells) + f"   load {load:.1f}", flush=True)
        print(f"\nmedians over {args.rounds} rounds of {args.batch}: CPU ratio to {daemons[0].name}; wall ms per ctr command")
        for kind in ("version", "snapshot"):
            print(f"  {kind:8}  " + "  ".join(
                f"{d.name}: {statistics.median(ratios[kind][d.name]):.3f}, {statistics.median(walls[kind][d.name]):.1f} ms"
                for d in daemons))
    finally:
        for daemon in daemons:
            if hasattr(daemon, "proc"):
                daemon.stop()
        for scratch in scratches:
            scratch.__exit__()


if __name__ == "__main__":
    main()
