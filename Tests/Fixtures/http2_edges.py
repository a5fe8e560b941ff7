#!/usr/bin/python3
"""Drives berthd's HTTP/2 server with frames ctr never sends, one case per connection.

Usage: http2_edges.py SOCKET. Prints "ok NAME" per case that behaved as RFC 9113 and gRPC
over HTTP/2 say, and exits 1 at the first case that did not. Uses python3-h2 (Debian's
hyper-h2) as the client; malformed frames are written by hand.
"""
import socket, struct, sys

import h2.config, h2.connection, h2.events, h2.settings
import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
VERSION = "/containerd.services.version.v1.Version/Version"
SUBSCRIBE = "/containerd.services.events.v1.Events/Subscribe"
GOAWAY, RST_STREAM = 0x7, 0x3


def frame(type_, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([type_, flags]) + struct.pack(">I", stream) + payload


def grpc_message(body):
    return b"\x00" + struct.pack(">I", len(body)) + body


def request_headers(path, method="POST", content_type="application/grpc"):
    return [(":method", method), (":scheme", "http"), (":path", path), (":authority", "berth"),
            ("content-type", content_type), ("te", "trailers")]


class Client:
    """An h2 client connection on the daemon's socket."""

    def __init__(self, path, settings=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def events(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError("server closed the connection")
        events = self.conn.receive_data(data)
        self.flush()
        return events

    def send(self, path, payload=None, extra=(), end_stream=True, **header_args):
        """Opens a stream with one request (an empty message unless `payload` is given); returns its id."""
        stream = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream, request_headers(path, **header_args) + list(extra))
        self.conn.send_data(stream, grpc_message(b"") if payload is None else payload, end_stream=end_stream)
        self.flush()
        return stream

    def call(self, path, **send_args):
        """One RPC; returns (headers, data, trailers) when the stream ends."""
        return self.wait(self.send(path, **send_args))

    def wait(self, stream):
        headers, data, trailers = {}, b"", {}
        while True:
            for event in self.events():
                if getattr(event, "stream_id", None) != stream:
                    continue
                if isinstance(event, h2.events.ResponseReceived):
                    headers = dict(event.headers)
                elif isinstance(event, h2.events.TrailersReceived):
                    trailers = dict(event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    data += event.data
                    self.conn.acknowledge_received_data(event.flow_controlled_length, stream)
                    self.flush()
                elif isinstance(event, h2.events.StreamReset):
                    return headers, data, {"reset": event.error_code}
                if isinstance(event, h2.events.StreamEnded) or getattr(event, "stream_ended", None):
                    return headers, data, trailers or headers


def raw(path, payload, want_goaway):
    """Sends bytes without an h2 client; returns the GOAWAY error code the server answered with."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(path)
    sock.sendall(payload)
    received = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    sock.close()
    offset = 0
    while offset + 9 <= len(received):
        length = int.from_bytes(received[offset:offset + 3], "big")
        if received[offset + 3] == GOAWAY:
            return struct.unpack(">I", received[offset + 13:offset + 17])[0]
        offset += 9 + length
    raise AssertionError(f"no GOAWAY in {received!r}")


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def case_bad_preface(path):
    code = raw(path, b"GET / HTTP/1.1\r\nHost: berth\r\n\r\n", True)
    expect(code == 0x1, f"GOAWAY code {code}, want PROTOCOL_ERROR")


def case_data_on_idle_stream(path):
    code = raw(path, PREFACE + frame(0x4, 0, 0) + frame(0x0, 0x1, 7, grpc_message(b"")), True)
    expect(code == 0x1, f"GOAWAY code {code}, want PROTOCOL_ERROR")


def case_oversized_frame(path):
    code = raw(path, PREFACE + frame(0x4, 0, 0) + struct.pack(">I", 2 << 20)[1:] + bytes([0x0, 0]) + struct.pack(">I", 1), True)
    expect(code == 0x6, f"GOAWAY code {code}, want FRAME_SIZE_ERROR")


def case_unary(path):
    headers, data, trailers = Client(path).call(VERSION)
    expect(headers.get(":status") == "200" and trailers.get("grpc-status") == "0", f"{headers} {trailers}")
    expect(len(data) > 5 and int.from_bytes(data[1:5], "big") == len(data) - 5, f"bad gRPC framing {data!r}")


def case_ping(path):
    client = Client(path)
    client.conn.ping(b"berth-42")
    client.flush()
    for _ in range(10):
        for event in client.events():
            if isinstance(event, h2.events.PingAckReceived):
                expect(event.ping_data == b"berth-42", f"ping ack {event.ping_data!r}")
                return
    raise AssertionError("no PING ack")


def case_tiny_client_window(path):
    # The response must be cut to the client's 7-byte window; h2 fails on any overrun.
    client = Client(path, {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 7})
    headers, data, trailers = client.call(VERSION)
    expect(trailers.get("grpc-status") == "0" and len(data) > 7, f"{trailers} {len(data)} bytes")


def case_padded_and_split_request(path):
    client = Client(path)
    stream = client.conn.get_next_available_stream_id()
    client.conn.send_headers(stream, request_headers(VERSION))
    message = grpc_message(b"")
    for index, byte in enumerate(message):   # one byte per padded DATA frame
        client.conn.send_data(stream, bytes([byte]), pad_length=3, end_stream=index == len(message) - 1)
    client.flush()
    _, data, trailers = client.wait(stream)
    expect(trailers.get("grpc-status") == "0" and len(data) > 5, f"{trailers}")


def case_continuation(path):
    block = hpack.Encoder().encode(request_headers(VERSION) + [("containerd-namespace", "default")])
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(path)
    half = len(block) // 2
    sock.sendall(PREFACE + frame(0x4, 0, 0) + frame(0x1, 0, 1, block[:half]) + frame(0x9, 0x4, 1, block[half:])
                 + frame(0x0, 0x1, 1, grpc_message(b"")))
    received = b""
    while "grpc-status" not in hpack_decoded(received):
        chunk = sock.recv(65536)
        expect(chunk, "connection closed before the trailers")
        received += chunk
    sock.close()
    expect("('grpc-status', '0')" in hpack_decoded(received), hpack_decoded(received))


def hpack_decoded(received):
    """Header fields of every HEADERS frame in `received`, decoded in order."""
    decoder, offset, text = hpack.Decoder(), 0, ""
    while offset + 9 <= len(received):
        length = int.from_bytes(received[offset:offset + 3], "big")
        if offset + 9 + length > len(received):
            break
        if received[offset + 3] == 0x1:
            text += str(decoder.decode(received[offset + 9:offset + 9 + length]))
        offset += 9 + length
    return text


def case_unknown_method(path):
    _, _, trailers = Client(path).call("/containerd.services.nothing.v1.Nothing/Call")
    expect(trailers.get("grpc-status") == "12", f"{trailers}")


def case_malformed_path(path):
    _, _, trailers = Client(path).call("no-slashes")
    expect(trailers.get("grpc-status") == "12", f"{trailers}")


def case_not_post(path):
    headers, _, _ = Client(path).call(VERSION, method="GET")
    expect(headers.get(":status") == "405", f"{headers}")


def case_not_grpc(path):
    headers, _, _ = Client(path).call(VERSION, content_type="text/plain")
    expect(headers.get(":status") == "415", f"{headers}")


def case_compressed_request(path):
    _, _, trailers = Client(path).call(VERSION, extra=[("grpc-encoding", "gzip")])
    expect(trailers.get("grpc-status") == "12", f"{trailers}")


def case_oversized_message(path):
    # A 17 MiB message announced by its prefix; the stream stays open for the rest.
    _, _, trailers = Client(path).call(VERSION, payload=b"\x00" + struct.pack(">I", 17 << 20), end_stream=False)
    expect(trailers.get("grpc-status") == "8", f"{trailers}")
    expect("17825792" in trailers.get("grpc-message", ""), f"{trailers}")


def case_cancel_stream_then_reuse(path):
    client = Client(path)
    stream = client.send(SUBSCRIBE, extra=[("containerd-namespace", "default")])
    client.conn.reset_stream(stream, error_code=0x8)
    client.flush()
    _, _, trailers = client.call(VERSION)   # the connection still serves
    expect(trailers.get("grpc-status") == "0", f"{trailers}")


CASES = [case_bad_preface, case_data_on_idle_stream, case_oversized_frame, case_unary, case_ping,
         case_tiny_client_window, case_padded_and_split_request, case_continuation, case_unknown_method,
         case_malformed_path, case_not_post, case_not_grpc, case_compressed_request, case_oversized_message,
         case_cancel_stream_then_reuse]

if __name__ == "__main__":
    for case in CASES:
        try:
            case(sys.argv[1])
        except Exception as error:
            print(f"FAIL {case.__name__[5:]}: {error!r}")
            sys.exit(1)
        print(f"ok {case.__name__[5:]}", flush=True)
