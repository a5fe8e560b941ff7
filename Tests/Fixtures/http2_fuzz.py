#!/usr/bin/python3
"""A fuzzer over HTTP/2 frames and gRPC request bodies, for a fixed time and a fixed seed.

Usage: http2_fuzz.py SOCKET SECONDS SEED

Opens connection after connection to SOCKET; each sends a random mix of well-formed requests to
real methods with random protobuf-shaped bodies, frames of every type with random flags, stream
identifiers, lengths and payloads, header blocks split at random, and byte-flipped copies of
valid frames; reads whatever comes back, then closes. Prints "seed=S connections=N frames=F"
first, so a failure can be replayed with the same seed. At the end one normal Version call must
succeed on a fresh connection (exit 1 otherwise); the caller also checks the daemon still runs.
"""
import random, socket, struct, sys, time

import hpack

from http2_attacks import Conn, frame, settings, grpc_message, request_headers, VERSION, DATA, HEADERS, END_STREAM, END_HEADERS

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
METHODS = [
    "/containerd.services.version.v1.Version/Version",
    "/containerd.services.introspection.v1.Introspection/Plugins",
    "/containerd.services.introspection.v1.Introspection/Server",
    "/containerd.services.namespaces.v1.Namespaces/Create",
    "/containerd.services.namespaces.v1.Namespaces/List",
    "/containerd.services.namespaces.v1.Namespaces/Get",
    "/containerd.services.namespaces.v1.Namespaces/Update",
    "/containerd.services.namespaces.v1.Namespaces/Delete",
    "/containerd.services.snapshots.v1.Snapshots/Prepare",
    "/containerd.services.snapshots.v1.Snapshots/Stat",
    "/containerd.services.snapshots.v1.Snapshots/List",
    "/containerd.services.snapshots.v1.Snapshots/Remove",
    "/containerd.services.content.v1.Content/Info",
    "/containerd.services.content.v1.Content/Read",
    "/containerd.services.content.v1.Content/Write",
    "/containerd.services.content.v1.Content/List",
    "/containerd.services.content.v1.Content/Status",
    "/containerd.services.events.v1.Events/Publish",
    "/containerd.services.events.v1.Events/Forward",
    "/containerd.services.events.v1.Events/Subscribe",
    "/containerd.services.leases.v1.Leases/Create",
    "/containerd.services.leases.v1.Leases/List",
    "/containerd.services.images.v1.Images/List",
    "/containerd.services.images.v1.Images/Create",
    "/containerd.services.diff.v1.Diff/Diff",
    "/grpc.health.v1.Health/Check",
    "/nothing.v1.Nothing/Call",
]


def varint(n):
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def protobuf(rng, depth=0):
    """Random bytes shaped like a protobuf message: fields of every wire type, some nested."""
    out = b""
    for _ in range(rng.randrange(0, 8)):
        field, wire = rng.randrange(1, 20), rng.choice([0, 0, 1, 2, 2, 2, 5, 3, 7])
        out += varint(field << 3 | wire)
        if wire == 0:
            out += varint(rng.choice([0, 1, 2 ** 31, 2 ** 63, rng.randrange(1 << 20)]))
        elif wire == 1:
            out += rng.randbytes(8)
        elif wire == 5:
            out += rng.randbytes(4)
        elif wire == 2:
            body = protobuf(rng, depth + 1) if depth < 3 and rng.random() < 0.3 else rng.choice([
                rng.randbytes(rng.randrange(0, 64)), b"sha256:" + rng.randbytes(32).hex().encode(),
                b"default", b"/" + rng.randbytes(8).hex().encode(), b"topic==/x", b"x" * rng.randrange(0, 5000)])
            length = len(body) if rng.random() < 0.9 else rng.randrange(1 << 16)
            out += varint(length) + body
    if rng.random() < 0.05:
        out += rng.randbytes(rng.randrange(1, 16))
    return out


def request_fields(rng):
    fields = request_headers(rng.choice(METHODS), namespace=rng.choice(["default", "fuzz", "", "x" * 300, "a/b"]))
    if rng.random() < 0.2:
        fields.append((rng.choice(["grpc-timeout", "containerd-lease", "grpc-encoding", "x-bin", "te"]),
                       rng.choice(["1S", "0m", "gzip", "identity", "AAAA", "!!", "trailers", "99999999H"])))
    if rng.random() < 0.1:
        rng.shuffle(fields)
    if rng.random() < 0.05:
        fields.pop(rng.randrange(len(fields)))
    return fields


def random_frame(rng, stream):
    type_ = rng.choice(list(range(10)) + [0x0A, 0x10, 0xFF])
    length = rng.choice([0, 1, 3, 4, 5, 6, 8, 9, rng.randrange(64), rng.randrange(20000)])
    sid = rng.choice([0, stream, stream + 2, rng.randrange(1 << 31), 2, 0x7FFFFFFF])
    return frame(type_, rng.randrange(256), sid, rng.randbytes(length))


def connection(path, rng, counters):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(0.5)
    sock.connect(path)
    encoder = hpack.Encoder()
    out = PREFACE if rng.random() > 0.02 else rng.randbytes(24)
    out += settings(**{k: v for k, v in [("initial_window_size", rng.choice([0, 7, 65535, 1 << 20, 2 ** 31 - 1])),
                                         ("max_frame_size", rng.choice([16384, 1 << 20, 16383, 1 << 24])),
                                         ("header_table_size", rng.choice([0, 4096, 1 << 20]))] if rng.random() < 0.5})
    stream = 1
    for _ in range(rng.randrange(1, 40)):
        roll = rng.random()
        if roll < 0.45:   # a request, maybe split, padded or cut
            block = encoder.encode(request_fields(rng))
            body = grpc_message(protobuf(rng))
            if rng.random() < 0.1:
                body = body[:1] + struct.pack(">I", rng.choice([1 << 24, 17 << 20, 100])) + body[5:]
            if rng.random() < 0.3 and len(block) > 2:
                cut = rng.randrange(1, len(block))
                out += frame(HEADERS, 0, stream, block[:cut]) + frame(9, END_HEADERS, stream, block[cut:])
            else:
                out += frame(HEADERS, END_HEADERS, stream, block)
            end = END_STREAM if rng.random() < 0.9 else 0
            if rng.random() < 0.3 and len(body) > 1:
                cut = rng.randrange(1, len(body))
                out += frame(DATA, 0, stream, body[:cut]) + frame(DATA, end, stream, body[cut:])
            else:
                out += frame(DATA, end, stream, body)
            if rng.random() < 0.1:
                out += frame(3, 0, stream, struct.pack(">I", rng.randrange(14)))
            stream += 2
        elif roll < 0.85:
            out += random_frame(rng, stream)
        else:   # a valid frame with a byte flipped
            valid = frame(8, 0, 0, struct.pack(">I", rng.randrange(1, 1 << 20)))
            index = rng.randrange(len(valid))
            out += valid[:index] + bytes([valid[index] ^ (1 << rng.randrange(8))]) + valid[index + 1:]
        counters["frames"] += 1
    try:
        sock.sendall(out)
        deadline = time.time() + 0.3
        while time.time() < deadline and sock.recv(1 << 16):
            pass
    except OSError:
        pass
    sock.close()
    counters["connections"] += 1


def main():
    path, seconds, seed = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    print(f"seed={seed}", flush=True)
    rng = random.Random(seed)
    counters = {"connections": 0, "frames": 0}
    deadline = time.time() + seconds
    while time.time() < deadline:
        connection(path, rng, counters)
    print(f"seed={seed} connections={counters['connections']} frames={counters['frames']}", flush=True)
    conn = Conn(path)
    stream, block = conn.headers(VERSION)
    conn.send(block + frame(DATA, END_STREAM, stream, grpc_message(b"")))
    status = conn.status(stream)
    if status[0] != "status:0":
        print(f"FAIL a normal Version call after fuzzing: {status}")
        sys.exit(1)
    print("ok normal call after fuzzing")


if __name__ == "__main__":
    main()
