#!/usr/bin/env python3
"""Does a long plugin call hold other clients up? berthd, native snapshotter.

Imports a one-layer image (the Swift runtime's Linux libraries, ~140 MB, packed with umoci),
then, ROUNDS times, prepares a native snapshot on it (a copy of the whole tree, done inside
the snapshotter plugin) while another thread runs `ctr version` back to back. Prints how long
each copy took and the slowest and median `ctr version` during it. A copy that occupied an
event-loop thread would show as a `ctr version` as slow as the copy itself.

Usage: Benchmarks/responsiveness.py [--berthd PATH] [--rounds N]   (as root: needs mkfs.ext4, losetup)
"""
import argparse, os, statistics, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from storage import ROOT, Scratch, berthd, wait_ready  # noqa: E402

LIBRARIES = "/opt/swift/usr/lib/swift/linux"


def build_image(directory):
    script = f"""
        cd {directory}
        umoci init --layout oci
        umoci new --image oci:latest
        umoci unpack --rootless --image oci:latest bundle
        mkdir -p bundle/rootfs/lib
        cp -a {LIBRARIES} bundle/rootfs/lib/
        umoci repack --image oci:latest bundle
        cd oci && tar -cf ../image.tar .
        """
    subprocess.run(["/bin/sh", "-ec", script], capture_output=True, check=True)
    return os.path.join(directory, "image.tar")


def main():
    parser = argparse.ArgumentParser()
    default = os.path.join(ROOT, ".build/release/berthd")
    parser.add_argument("--berthd", default=default if os.path.exists(default) else os.path.join(ROOT, ".build/debug/berthd"))
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="responsiveness-") as scratch, Scratch("image", 3 << 30) as work:
        tarball = build_image(scratch)
        sock = os.path.join(work, "d.sock")
        proc = berthd(args.berthd)(work, sock)
        try:
            wait_ready(sock, proc)

            def ctr(*arguments):
                return subprocess.run(["ctr", "--address", sock, *arguments], capture_output=True, text=True, check=True).stdout

            ctr("images", "import", "--snapshotter", "native", tarball)
            parent = ctr("snapshots", "--snapshotter", "native", "ls").splitlines()[1].split()[0]
            print(f"berthd {os.path.relpath(args.berthd, ROOT)}; native prepare of a copy of {LIBRARIES}, "
                  "with `ctr version` back to back meanwhile")
            print(f"{'round':>5}{'copy ms':>9}{'versions':>10}{'slowest ms':>12}{'median ms':>11}")
            for round in range(args.rounds):
                times, done = [], threading.Event()

                def probe():
                    while not done.is_set():
                        t = time.monotonic()
                        subprocess.run(["ctr", "--address", sock, "version"], capture_output=True)
                        times.append((time.monotonic() - t) * 1000)

                prober = threading.Thread(target=probe)
                prober.start()
                time.sleep(0.2)
                t = time.monotonic()
                ctr("snapshots", "--snapshotter", "native", "prepare", f"copy-{round}", parent)
                copy = (time.monotonic() - t) * 1000
                done.set()
                prober.join()
                print(f"{round + 1:>5}{copy:>9.0f}{len(times):>10}{max(times):>12.0f}{statistics.median(times):>11.0f}")
        finally:
            proc.terminate()
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
