#!/usr/bin/python3
"""What one hostile local client costs the daemon: RSS growth and other clients' latency.

Runs each attack of Tests/Fixtures/http2_attacks.py against a fresh berthd (release build by
default), and against a fresh containerd with --containerd, for SECONDS each, while `ctr version`
runs every 50 ms on another connection. Prints per attack and daemon: RSS growth during the
attack, RSS still held 3 s after it, the other client's median and slowest `ctr version`, and
the attack's outcome (goaway:11 = GOAWAY ENHANCE_YOUR_CALM, backpressure = the daemon stopped
reading, status:8 = RESOURCE_EXHAUSTED, refused:N = N streams refused).

Usage: Benchmarks/http2_attacks.py [--berthd PATH] [--containerd | --containerd-only] [--seconds 15] [--only NAME,...]
"""
import argparse, os, re, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from storage import ROOT, berthd, containerd, wait_ready  # noqa: E402

FIXTURE = os.path.join(ROOT, "Tests/Fixtures/http2_attacks.py")
sys.path.insert(0, os.path.dirname(FIXTURE))
from http2_attacks import rss_kib  # noqa: E402

ATTACKS = ["ping_flood", "settings_flood", "rst_provoking_data", "rejected_requests", "rapid_reset",
           "empty_continuation", "unfinished_messages", "slow_reader", "cancelled_subscriptions", "handshake_timeout",
           "connection_limit"]


def run_one(start, attack, seconds):
    with tempfile.TemporaryDirectory(prefix="h2-attacks-") as work:
        sock = os.path.join(work, "d.sock")
        proc = start(work, sock)
        try:
            wait_ready(sock, proc)
            time.sleep(1)
            base = rss_kib(proc.pid)
            limit = {"cancelled_subscriptions": max(seconds, 60), "handshake_timeout": 15}.get(attack, seconds)
            result = subprocess.run(["/usr/bin/python3", FIXTURE, sock, str(proc.pid), attack, str(limit)],
                                    capture_output=True, text=True)
            line = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr.strip()[-200:]
            time.sleep(3)
            alive = proc.poll() is None
            held = (rss_kib(proc.pid) - base) / 1024 if alive else float("nan")
            fields = dict(re.findall(r"(\w+)=(\S+)", line))
            fields["held_mib"] = f"{held:.1f}"
            fields["alive"] = "yes" if alive else "NO"
            if "rss_growth_mib" not in fields:
                fields["outcome"] = line
            return fields
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def main():
    parser = argparse.ArgumentParser()
    default = os.path.join(ROOT, ".build/release/berthd")
    parser.add_argument("--berthd", default=default if os.path.exists(default) else os.path.join(ROOT, ".build/debug/berthd"))
    parser.add_argument("--containerd", action="store_true")
    parser.add_argument("--containerd-only", action="store_true", help="skip berthd (to add containerd's column to a run)")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--only", default=",".join(ATTACKS))
    args = parser.parse_args()
    daemons = [] if args.containerd_only else [(f"berthd ({os.path.relpath(args.berthd, ROOT)})", berthd(args.berthd))]
    if args.containerd or args.containerd_only:
        daemons.append(("containerd", containerd))
    print(f"{args.seconds:.0f} s per attack; other client: `ctr version` every 50 ms on its own connection")
    print(f"{'attack':<24}{'daemon':<32}{'RSS +MiB':>9}{'held MiB':>9}{'ctr med ms':>11}{'ctr max ms':>11}{'calls':>6}  outcome")
    for attack in args.only.split(","):
        for label, start in daemons:
            f = run_one(start, attack, args.seconds)
            print(f"{attack:<24}{label:<32}{f.get('rss_growth_mib', '-'):>9}{f['held_mib']:>9}{f.get('victim_median_ms', '-'):>11}"
                  f"{f.get('victim_max_ms', '-'):>11}{f.get('victim_calls', '-'):>6}  {f.get('outcome', '')}"
                  f"{'' if f['alive'] == 'yes' else '  (daemon died)'}", flush=True)


if __name__ == "__main__":
    main()
