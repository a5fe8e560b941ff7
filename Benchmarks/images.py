#!/usr/bin/env python3
"""Images benchmark through containerd's ctr: berthd beside containerd 1.6, same ctr, same run.

The image (built once into a cache folder from a seed, so every run imports the same bytes): a
docker archive of 7 layers, ~211 MB, ~20,000 files, the shape of real images:
  layer 1    busybox-static as /bin/busybox, /etc, /tmp
  layers 2-6 each: one 12 MiB file, 1,000 files of 16 KiB in 20 folders, 1,000 text files of
             8 KiB, 2,000 files of 0-2 KiB in 10 folders, a few symlinks and a hard link,
             owners 0 and 1000, modes 0644/0755/0600
  layer 7    whiteouts: deletes single files, whole folders of earlier layers, and makes one
             folder opaque
The same layers gzip-compressed make a second archive (the gzip variant).

Per daemon and round, each measurement on a fresh ext4 filesystem of its own (loop device,
direct I/O; see Benchmarks/storage.py for why), free memory warmed once at the start, page cache dropped
right before the timed command:
  import+unpack       `ctr images import ARCHIVE` (ingest, image create, unpack): wall seconds,
                      and the daemon's CPU seconds meanwhile
  unpack only         `ctr images import --no-unpack`, then `ctr images mount IMAGE DIR`, which
                      unpacks the layers and mounts the result (one Prepare + mount more); with berthd's
                      unpacking ahead ([unpack] ahead, on by default) the layers were unpacked
                      during the import already, so this measures adopting them
  gzip import+unpack  the first figure with the gzip archive
  content rm 1 GiB    `ctr content rm` of a 1 GiB blob ingested (and synced) before: ms to answer
                      (page cache dropped, then one `ctr version` so that ctr starts warm)
  snapshots rm        `ctr snapshots rm` of a committed snapshot holding layers 2-6 unpacked
                      (~20,000 files, 190 MB; synced, caches dropped): ms to answer
Rounds alternate which daemon goes first; the table shows medians, the samples follow.
Targets (issue 12): import+unpack <= 0.5x containerd's, gzip <= 0.6x.

Usage: Benchmarks/images.py [--berthd PATH [--berthd PATH2]] [--rounds N] [--only berthd|containerd]
       [--cache DIR] [--seed S] [--skip-deletes]
Run as root (loop devices, mounts, drop_caches).
"""
import argparse, gzip, hashlib, io, json, os, random, shutil, statistics, subprocess, sys, tarfile, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import storage  # noqa: E402  (Scratch, warm_memory, wait_ready, TICK, berthd, containerd)

ROOT = storage.ROOT
NAME = "docker.io/bench/unpack"
MTIME = 1_700_000_000
WORDS = ("layer snapshot content digest overlay whiteout mount daemon image index manifest "
         "config tar gzip directory file link owner mode time kernel").split()


# MARK: - the image

def add_file(tar, name, data, mode=0o644, uid=0, gid=0):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.uid, info.gid, info.mtime = len(data), mode, uid, gid, MTIME
    tar.addfile(info, io.BytesIO(data))


def add_entry(tar, name, kind, mode=0o755, link="", uid=0, gid=0):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.uid, info.gid, info.mtime = kind, mode, link, uid, gid, MTIME
    tar.addfile(info)


def text(rng, size):
    out = bytearray()
    while len(out) < size:
        out += (" ".join(rng.choice(WORDS) for _ in range(12)) + "\n").encode()
    return bytes(out[:size])


def base_layer(tar):
    for folder in ("bin", "etc", "tmp"):
        add_entry(tar, folder, tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755)
    with open(shutil.which("busybox"), "rb") as f:
        add_file(tar, "bin/busybox", f.read(), 0o755)
    add_entry(tar, "bin/sh", tarfile.SYMTYPE, 0o777, "busybox")
    add_file(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n")


def data_layer(tar, rng, n):
    top = f"opt/l{n}"
    for folder in ("opt", top, f"{top}/data", f"{top}/text", f"{top}/small", f"{top}/bin"):
        if folder != "opt" or n == 2:
            add_entry(tar, folder, tarfile.DIRTYPE)
    add_file(tar, f"{top}/bin/big", rng.randbytes(12 << 20), 0o755)
    for d in range(20):
        folder = f"{top}/data/d{d:02}"
        add_entry(tar, folder, tarfile.DIRTYPE, uid=1000 if d % 2 else 0, gid=1000 if d % 2 else 0)
        for i in range(50):
            add_file(tar, f"{folder}/f{i:03}.bin", rng.randbytes(16 << 10), 0o600 if i % 7 == 0 else 0o644,
                     uid=1000 if d % 2 else 0, gid=1000 if d % 2 else 0)
    for i in range(1000):
        add_file(tar, f"{top}/text/t{i:04}.txt", text(rng, 8 << 10))
    for d in range(10):
        folder = f"{top}/small/s{d}"
        add_entry(tar, folder, tarfile.DIRTYPE)
        for i in range(200):
            size = rng.randrange(0, 2049)
            body = text(rng, size) if i % 2 else rng.randbytes(size)
            add_file(tar, f"{folder}/x{i:03}", body, 0o755 if i % 10 == 0 else 0o644)
    for i in range(4):
        add_entry(tar, f"{top}/link{i}", tarfile.SYMTYPE, 0o777, f"text/t{i:04}.txt")
    add_entry(tar, f"{top}/bin/big-again", tarfile.LNKTYPE, 0o755, f"{top}/bin/big")


def whiteout_layer(tar):
    add_entry(tar, "opt", tarfile.DIRTYPE)
    add_entry(tar, "opt/l2", tarfile.DIRTYPE)
    add_entry(tar, "opt/l2/data", tarfile.DIRTYPE)
    for d in range(5):
        add_file(tar, f"opt/l2/data/.wh.d{d:02}", b"")          # whole folders
    add_entry(tar, "opt/l3", tarfile.DIRTYPE)
    add_entry(tar, "opt/l3/text", tarfile.DIRTYPE)
    for i in range(0, 1000, 10):
        add_file(tar, f"opt/l3/text/.wh.t{i:04}.txt", b"")     # single files
    add_entry(tar, "opt/l4", tarfile.DIRTYPE)
    add_entry(tar, "opt/l4/small", tarfile.DIRTYPE)
    add_entry(tar, "opt/l4/small/s3", tarfile.DIRTYPE)
    add_file(tar, "opt/l4/small/s3/.wh..wh..opq", b"")         # opaque: the lower s3 is hidden
    add_file(tar, "opt/l4/small/s3/kept", b"only this\n")
    add_file(tar, "opt/.wh.l6", b"")                             # a whole layer's folder


def layer_bytes(seed, n):
    rng = random.Random(f"{seed}-{n}")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        if n == 1:
            base_layer(tar)
        elif n == 7:
            whiteout_layer(tar)
        else:
            data_layer(tar, rng, n)
    return buffer.getvalue()


def docker_archive(path, tag, layers, diff_ids):
    """Writes a `docker save` archive: manifest.json, the config, one folder per layer."""
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": f"layer {i + 1}"} for i in range(len(layers))],
    }, sort_keys=True).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    names = [f"{hashlib.sha256(body).hexdigest()}/layer.tar" for body in layers]
    manifest = json.dumps([{"Config": config_name, "RepoTags": [f"{NAME}:{tag}"], "Layers": names}]).encode()
    with tarfile.open(path + ".part", "w", format=tarfile.PAX_FORMAT) as tar:
        add_file(tar, config_name, config)
        for name, body in zip(names, layers):
            add_file(tar, name, body)
        add_file(tar, "manifest.json", manifest)
    os.rename(path + ".part", path)


def build_images(cache, seed):
    """The plain and gzip archives for `seed` in `cache`, built when absent."""
    folder = os.path.join(cache, f"v1-seed{seed}")
    plain, gz = os.path.join(folder, "plain.tar"), os.path.join(folder, "gzip.tar")
    if os.path.exists(plain) and os.path.exists(gz):
        return plain, gz
    os.makedirs(folder, exist_ok=True)
    print(f"building the images in {folder} (once)...", file=sys.stderr)
    layers = [layer_bytes(seed, n) for n in range(1, 8)]
    diff_ids = ["sha256:" + hashlib.sha256(body).hexdigest() for body in layers]
    docker_archive(plain, "plain", layers, diff_ids)
    zipped = [gzip.compress(body, compresslevel=6, mtime=0) for body in layers]
    docker_archive(gz, "gzip", zipped, diff_ids)
    return plain, gz


# MARK: - measuring

def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def ctr(sock, *args, check=True):
    return subprocess.run(["ctr", "--address", sock, *args], capture_output=True, text=True, check=check).stdout


def process_cpu(pid):
    """utime + stime of the whole process from /proc/PID/stat, which keeps the time of threads
    that have ended (a per-thread sum from schedstat would miss a thread started for one
    layer); 10 ms ticks are fine for figures of seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / storage.TICK


def timed(proc, sock, *args):
    """(wall seconds, daemon CPU seconds) of one ctr command, caches dropped first."""
    drop_caches()
    cpu, t = process_cpu(proc.pid), time.monotonic()
    ctr(sock, *args)
    return time.monotonic() - t, process_cpu(proc.pid) - cpu


def with_daemon(start, size, body):
    os.sync()
    with storage.Scratch("image", size) as work:
        sock = os.path.join(work, "d.sock")
        proc = start(work, sock)
        try:
            storage.wait_ready(sock, proc)
            return body(proc, sock, work)
        finally:
            subprocess.run(["umount", "-R", os.path.join(work, "mnt")], capture_output=True)
            proc.terminate()
            proc.wait(timeout=60)


def import_unpack(archive):
    def body(proc, sock, work):
        return timed(proc, sock, "images", "import", archive)
    return body


def unpack_only(archive, tag):
    def body(proc, sock, work):
        ctr(sock, "images", "import", "--no-unpack", archive)
        target = os.path.join(work, "mnt")
        os.mkdir(target)
        figure = timed(proc, sock, "images", "mount", f"{NAME}:{tag}", target)
        ctr(sock, "images", "unmount", target)
        return figure
    return body


def deletes(blob, digest, plain):
    """ms to answer `ctr content rm` of the 1 GiB blob and `ctr snapshots rm` of a big layer."""
    def body(proc, sock, work):
        with open(blob, "rb") as f:
            subprocess.run(["ctr", "--address", sock, "content", "ingest", "--expected-digest", digest, "big"],
                           stdin=f, check=True, capture_output=True)
        drop_caches()
        # ctr's own start from a cold page cache takes longer than the delete: warm it (and
        # the daemon's code) with one call, so that the figure is the delete's.
        ctr(sock, "version")
        t = time.monotonic()
        ctr(sock, "content", "rm", digest)
        content_ms = (time.monotonic() - t) * 1000
        ctr(sock, "snapshots", "prepare", "big-active")
        line = ctr(sock, "snapshots", "mounts", "/unused", "big-active").split()
        source = line[line.index("-t") + 2]
        fill_layer(plain, source)
        ctr(sock, "snapshots", "commit", "big", "big-active")
        drop_caches()
        ctr(sock, "version")
        t = time.monotonic()
        ctr(sock, "snapshots", "rm", "big")
        return content_ms, (time.monotonic() - t) * 1000
    return body


def fill_layer(archive, target):
    """Extracts layers 2-6 of the plain archive into `target` (GNU tar)."""
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))[0]
        for name in manifest["Layers"][1:6]:
            subprocess.run(["tar", "-x", "-C", target], input=outer.extractfile(name).read(), check=True)


def main():
    parser = argparse.ArgumentParser()
    default = os.path.join(ROOT, ".build/release/berthd")
    parser.add_argument("--berthd", action="append", help="a berthd binary (its plugins beside it); repeat to compare builds")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", choices=["berthd", "containerd"])
    parser.add_argument("--cache", default=os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "berth-bench", "images"))
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--skip-deletes", action="store_true")
    args = parser.parse_args()
    plain, gz = build_images(args.cache, args.seed)
    # Once: dropping caches returns pages to the guest, which the hypervisor keeps backed.
    storage.warm_memory()
    args.berthd = args.berthd or [default if os.path.exists(default) else os.path.join(ROOT, ".build/debug/berthd")]
    daemons = []
    if args.only != "containerd":
        for binary in args.berthd:
            # Named by the build folder: berthd <scratch>/release/berthd is "berthd <scratch>".
            label = os.path.basename(os.path.dirname(os.path.dirname(os.path.abspath(binary))))
            daemons.append((f"berthd {label}" if len(args.berthd) > 1 else "berthd", storage.berthd(binary)))
    if args.only != "berthd" and shutil.which("containerd"):
        daemons.append(("containerd", storage.containerd))
    blob = None
    if not args.skip_deletes:
        blob = tempfile.mktemp(prefix="images-bench-blob-")
        with open(blob, "wb") as f:
            f.write(os.urandom(1 << 30))
        with open(blob, "rb") as f:
            digest = "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()
    measurements = [("import+unpack", import_unpack(plain)), ("unpack only", unpack_only(plain, "plain")),
                    ("gzip import+unpack", import_unpack(gz))]
    if blob:
        measurements.append(("deletes", deletes(blob, digest, plain)))
    samples = {(d, m): [] for d, _ in daemons for m, _ in measurements}
    try:
        for round in range(args.rounds):
            order = daemons if round % 2 == 0 else daemons[::-1]
            for measure, body in measurements:
                for name, start in order:
                    figure = with_daemon(start, 4 << 30, body)
                    samples[(name, measure)].append(figure)
                    print(f"round {round + 1} {name:<22} {measure:<19} {figure}", file=sys.stderr, flush=True)
    finally:
        if blob:
            os.unlink(blob)
    report(args, daemons, measurements, samples, plain, gz)


def report(args, daemons, measurements, samples, plain, gz):
    sizes = f"{os.path.getsize(plain) / 1e6:.0f} MB plain, {os.path.getsize(gz) / 1e6:.0f} MB gzip"
    print(f"image: 7 layers, ~20,000 files ({sizes}); {args.rounds} rounds alternating; medians; "
          "each measurement on a fresh ext4 loop filesystem, caches dropped before the timed command")
    print("berthd: " + ", ".join(args.berthd))
    ratios = len(daemons) > 1 and daemons[-1][0] == "containerd"
    print(f"{'figure':<22}" + "".join(f"{name + ' s':>24}{'CPU s':>8}" for name, _ in daemons)
          + ("".join(f"{'/ctrd':>8}" for _ in daemons[:-1]) if ratios else ""))
    for measure, _ in measurements:
        if measure == "deletes":
            continue
        row, walls = f"{measure:<22}", []
        for name, _ in daemons:
            values = samples[(name, measure)]
            wall, cpu = statistics.median(v[0] for v in values), statistics.median(v[1] for v in values)
            walls.append(wall)
            row += f"{wall:>24.2f}{cpu:>8.2f}"
        if ratios:
            row += "".join(f"{w / walls[-1]:>8.2f}" for w in walls[:-1])
        print(row)
    if any(m == "deletes" for m, _ in measurements):
        print(f"{'delete, ms to answer':<22}" + "".join(f"{name:>32}" for name, _ in daemons))
        for index, label in ((0, "content rm 1 GiB"), (1, "snapshots rm 190 MB")):
            print(f"{label:<22}" + "".join(f"{statistics.median(v[index] for v in samples[(n, 'deletes')]):>32.0f}" for n, _ in daemons))
    print(f"{'target (issue 12)':<22}import+unpack <= 0.5x containerd, gzip <= 0.6x")
    print("samples (wall s / daemon CPU s; deletes: content ms / snapshots ms):")
    for (name, measure), values in samples.items():
        fmt = "{:.0f}/{:.0f}" if measure == "deletes" else "{:.2f}/{:.2f}"
        print(f"  {name:<22} {measure:<19} " + "  ".join(fmt.format(*v) for v in values))


if __name__ == "__main__":
    main()
