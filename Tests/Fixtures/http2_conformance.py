#!/usr/bin/python3
"""HTTP/2 server conformance cases in the style of h2spec (github.com/summerwind/h2spec).

Usage: http2_conformance.py SOCKET. One connection per case; each case is named by the section
of RFC 9113 (or RFC 7541 for "hpack/") and h2spec's number for the same check, and says what
the server must answer. Prints "ok NAME" per case, "FAIL NAME: why" per failure, and a summary
line "N passed, M failed"; exits 1 if any failed.

h2spec is neither on Debian nor on PyPI, so this reimplements its server cases that apply to a
gRPC server: every case of h2spec's "generic" and "http2" groups that does not need a server
push or an HTTP body of a given size, and the HPACK cases. As in h2spec, a "stream error" is
satisfied by RST_STREAM with the code or by a connection error with it, and a connection error
by GOAWAY with the code (h2spec also accepts a bare close; these cases do not).
"""
import struct, sys

from http2_attacks import (Conn, frame, settings, grpc_message, request_headers, VERSION, SUBSCRIBE,
                           DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE,
                           CONTINUATION, END_STREAM, END_HEADERS, ACK)

PROTOCOL_ERROR, FLOW_CONTROL_ERROR, STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, COMPRESSION_ERROR = 1, 3, 5, 6, 7, 9
PADDED, PRIORITY_FLAG = 0x8, 0x20


class Check(Exception):
    pass


def block(fields, conn=None):
    return (conn.encoder if conn else __import__("hpack").Encoder()).encode(fields)


def answer(conn, stream=None, timeout=5):
    """The first decisive answer: ("goaway", code), ("reset", code), ("headers", fields), ("ping", payload), ("eof",)."""
    result = []

    def decisive(item):
        type_, flags, sid, payload = item
        if type_ == GOAWAY:
            result.append(("goaway", struct.unpack(">I", payload[4:8])[0]))
        elif type_ == RST_STREAM and (stream is None or sid == stream):
            result.append(("reset", struct.unpack(">I", payload)[0]))
        elif type_ == HEADERS and sid == stream:
            result.append(("headers", dict(conn.decoder.decode(payload))))
        elif type_ == HEADERS:
            conn.decoder.decode(payload)
        elif type_ == PING and flags & ACK:
            result.append(("ping", payload))
        return bool(result)
    conn.frames(decisive, timeout)
    return result[0] if result else ("eof",)


def connection_error(conn, code):
    got = answer(conn)
    if got != ("goaway", code):
        raise Check(f"want GOAWAY code {code}, got {got}")


def stream_error(conn, stream, code):
    got = answer(conn, stream)
    if got not in (("reset", code), ("goaway", code)):
        raise Check(f"want RST_STREAM or GOAWAY code {code}, got {got}")


def alive(conn):
    """The connection still answers a PING after what was sent."""
    conn.send(frame(PING, 0, 0, b"h2spec!!"))
    got = answer(conn)
    if got != ("ping", b"h2spec!!"):
        raise Check(f"want a PING ack, got {got}")


def responds(conn, stream):
    got = answer(conn, stream)
    if got[0] != "headers":
        raise Check(f"want a response on stream {stream}, got {got}")


def ready(path, initial=None):
    """A connection past the SETTINGS exchange."""
    conn = Conn(path, initial=initial)
    conn.send(frame(SETTINGS, ACK, 0))
    return conn


def request(conn, path=VERSION, end_stream=True, body=grpc_message(b"")):
    stream, headers = conn.headers(path)
    data = frame(DATA, END_STREAM if end_stream else 0, stream, body) if body is not None else b""
    return stream, headers + data


CASES = []


def case(name):
    def register(fn):
        CASES.append((name, fn))
        return fn
    return register


@case("3.5/1 preface: the server sends SETTINGS first")
def _(path):
    conn = Conn(path)
    first = conn.frames(lambda f: True, 5)
    if not first or first[0][0] != SETTINGS or first[0][1] & ACK:
        raise Check(f"first frame {first[:1]}")


@case("3.5/2 preface: an invalid preface is a connection error PROTOCOL_ERROR")
def _(path):
    conn = Conn.__new__(Conn)
    import socket
    conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.sock.connect(path)
    conn.received, conn.decoder = b"", __import__("hpack").Decoder()
    conn.send(b"INVALID CONNECTION PREFACE\r\n\r\n")
    connection_error(conn, PROTOCOL_ERROR)


@case("4.1/1 a frame of unknown type is ignored")
def _(path):
    conn = ready(path)
    conn.send(frame(0x16, 0, 0, b"unknown"))
    alive(conn)


@case("4.1/2 undefined flags are ignored")
def _(path):
    conn = ready(path)
    conn.send(frame(PING, 0x16, 0, b"h2spec!!"))
    if answer(conn) != ("ping", b"h2spec!!"):
        raise Check("no PING ack")


@case("4.1/3 the reserved bit of the stream identifier is ignored")
def _(path):
    conn = ready(path)
    stream, headers = conn.headers(VERSION)
    conn.send(headers[:5] + struct.pack(">I", stream | 0x80000000) + headers[9:]
              + frame(DATA, END_STREAM, stream, grpc_message(b"")))
    responds(conn, stream)


@case("4.2/1 DATA of 16,384 octets is accepted")
def _(path):
    conn = ready(path)
    stream, data = request(conn, body=grpc_message(b"\x00" * (16384 - 5)))
    conn.send(data)
    responds(conn, stream)


@case("4.2/2 DATA above SETTINGS_MAX_FRAME_SIZE is FRAME_SIZE_ERROR")
def _(path):
    conn = ready(path)
    stream, headers = conn.headers(VERSION)
    conn.send(headers + frame(DATA, END_STREAM, stream, b"\x00" * ((1 << 20) + 1)))
    stream_error(conn, stream, FRAME_SIZE_ERROR)


@case("4.2/3 HEADERS above SETTINGS_MAX_FRAME_SIZE is a connection error FRAME_SIZE_ERROR")
def _(path):
    conn = ready(path)
    fields = request_headers(VERSION) + [(f"x-{i}", "v" * 1000) for i in range(2200)]
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block(fields)))
    connection_error(conn, FRAME_SIZE_ERROR)


@case("4.3/1 an invalid header block is COMPRESSION_ERROR")
def _(path):
    conn = ready(path)
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x7f\xff\xff\xff\xff\x0f"))
    connection_error(conn, COMPRESSION_ERROR)


@case("4.3/2 PRIORITY inside a header block is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    data = block(request_headers(VERSION))
    conn.send(frame(HEADERS, END_STREAM, 1, data) + frame(PRIORITY, 0, 1, b"\x00\x00\x00\x00\x10"))
    connection_error(conn, PROTOCOL_ERROR)


@case("4.3/3 HEADERS of another stream inside a header block is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    data = block(request_headers(VERSION))
    conn.send(frame(HEADERS, END_STREAM, 1, data) + frame(HEADERS, END_HEADERS | END_STREAM, 3, data))
    connection_error(conn, PROTOCOL_ERROR)


@case("5.1/1 idle: DATA is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    conn.send(frame(DATA, END_STREAM, 1, grpc_message(b"")))
    connection_error(conn, PROTOCOL_ERROR)


@case("5.1/2 idle: RST_STREAM is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    conn.send(frame(RST_STREAM, 0, 1, struct.pack(">I", 8)))
    connection_error(conn, PROTOCOL_ERROR)


@case("5.1/3 idle: WINDOW_UPDATE is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    conn.send(frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 100)))
    connection_error(conn, PROTOCOL_ERROR)


@case("5.1/4 idle: CONTINUATION is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    conn.send(frame(CONTINUATION, END_HEADERS, 1, block(request_headers(VERSION))))
    connection_error(conn, PROTOCOL_ERROR)


def half_closed(path):
    """A Subscribe stream the client ended: the server keeps it open, half-closed (remote)."""
    conn = ready(path)
    stream, headers = conn.headers(SUBSCRIBE)
    conn.send(headers + frame(DATA, END_STREAM, stream, grpc_message(b"\x0a\x09topic==/x")))
    return conn, stream


@case("5.1/5 half-closed (remote): DATA is STREAM_CLOSED")
def _(path):
    conn, stream = half_closed(path)
    conn.send(frame(DATA, 0, stream, grpc_message(b"")))
    stream_error(conn, stream, STREAM_CLOSED)


@case("5.1/6 half-closed (remote): HEADERS is STREAM_CLOSED")
def _(path):
    conn, stream = half_closed(path)
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, stream, conn.encoder.encode([("x-trailer", "1")])))
    stream_error(conn, stream, STREAM_CLOSED)


@case("5.1/7 half-closed (remote): CONTINUATION is STREAM_CLOSED or PROTOCOL_ERROR")
def _(path):
    conn, stream = half_closed(path)
    conn.send(frame(CONTINUATION, END_HEADERS, stream, conn.encoder.encode([("x-trailer", "1")])))
    got = answer(conn, stream)
    if got not in (("reset", STREAM_CLOSED), ("goaway", STREAM_CLOSED), ("goaway", PROTOCOL_ERROR)):
        raise Check(f"got {got}")


@case("5.1/8 closed: DATA after RST_STREAM is STREAM_CLOSED")
def _(path):
    conn = ready(path)
    stream, headers = conn.headers(SUBSCRIBE)
    conn.send(headers + frame(RST_STREAM, 0, stream, struct.pack(">I", 8)) + frame(DATA, END_STREAM, stream, grpc_message(b"")))
    stream_error(conn, stream, STREAM_CLOSED)


@case("5.1/9 closed: HEADERS after RST_STREAM is STREAM_CLOSED")
def _(path):
    conn = ready(path)
    stream, headers = conn.headers(SUBSCRIBE)
    conn.send(headers + frame(RST_STREAM, 0, stream, struct.pack(">I", 8)))
    _, again = conn.headers(SUBSCRIBE, stream=stream, end_stream=True)
    conn.send(again)
    stream_error(conn, stream, STREAM_CLOSED)


@case("5.1.1/1 an even stream identifier is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    _, headers = conn.headers(VERSION, stream=2, end_stream=True)
    conn.send(headers)
    connection_error(conn, PROTOCOL_ERROR)


@case("5.1.1/2 a stream identifier below one used is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    _, headers = conn.headers(VERSION, stream=5, end_stream=True)
    conn.send(headers)
    responds(conn, 5)
    _, headers = conn.headers(VERSION, stream=3, end_stream=True)
    conn.send(headers)
    connection_error(conn, PROTOCOL_ERROR)


@case("5.1.2/1 streams above SETTINGS_MAX_CONCURRENT_STREAMS are refused")
def _(path):
    conn = Conn(path)
    first = conn.frames(lambda f: f[0] == SETTINGS, 5)
    values = dict(struct.unpack(">HI", first[-1][3][i:i + 6]) for i in range(0, len(first[-1][3]), 6))
    limit = values.get(3)
    if not limit or limit > 256:
        raise Check(f"SETTINGS_MAX_CONCURRENT_STREAMS {limit}, want 1..256")
    batch = b""
    for _ in range(limit + 1):
        stream, headers = conn.headers(SUBSCRIBE)
        batch += headers
    conn.send(frame(SETTINGS, ACK, 0) + batch)
    stream_error(conn, stream, REFUSED_STREAM)


@case("5.3.1/1 HEADERS that depend on their own stream are PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    data = b"\x00\x00\x00\x01\x10" + conn.encoder.encode(request_headers(VERSION))
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM | PRIORITY_FLAG, 1, data))
    stream_error(conn, 1, PROTOCOL_ERROR)
    alive(conn)


@case("5.3.1/2 PRIORITY that depends on its own stream is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    stream, headers = conn.headers(SUBSCRIBE)
    conn.send(headers + frame(PRIORITY, 0, stream, struct.pack(">I", stream) + b"\x10"))
    stream_error(conn, stream, PROTOCOL_ERROR)


@case("5.4.1/1 a connection error sends GOAWAY and closes")
def _(path):
    conn = ready(path)
    conn.send(frame(PING, 0, 0, b"short"))
    connection_error(conn, FRAME_SIZE_ERROR)
    if conn.frames(lambda f: False, 3):
        raise Check("frames after GOAWAY")


@case("5.5/1 an unknown extension frame is ignored")
def _(path):
    conn = ready(path)
    conn.send(frame(0xFF, 0, 0, b"x" * 8))
    alive(conn)


@case("5.5/2 an unknown frame inside a header block is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    conn.send(frame(HEADERS, END_STREAM, 1, block(request_headers(VERSION))) + frame(0xFF, 0, 1, b"x" * 8))
    connection_error(conn, PROTOCOL_ERROR)


@case("6.1/1 DATA on stream 0 is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    conn.send(frame(DATA, END_STREAM, 0, b"x"))
    connection_error(conn, PROTOCOL_ERROR)


@case("6.1/2 DATA on a half-closed (remote) stream is STREAM_CLOSED")
def _(path):
    conn, stream = half_closed(path)
    conn.send(frame(DATA, END_STREAM, stream, b""))
    stream_error(conn, stream, STREAM_CLOSED)


@case("6.1/3 DATA with padding longer than its payload is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    stream, headers = conn.headers(VERSION)
    conn.send(headers + frame(DATA, END_STREAM | PADDED, stream, b"\x06" + b"x" * 5))
    connection_error(conn, PROTOCOL_ERROR)


@case("6.2/1 PRIORITY after HEADERS without END_HEADERS is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    conn.send(frame(HEADERS, END_STREAM, 1, block(request_headers(VERSION))) + frame(PRIORITY, 0, 3, b"\x00\x00\x00\x00\x10"))
    connection_error(conn, PROTOCOL_ERROR)


@case("6.2/2 DATA after HEADERS without END_HEADERS is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    conn.send(frame(HEADERS, 0, 1, block(request_headers(VERSION))) + frame(DATA, END_STREAM, 1, grpc_message(b"")))
    connection_error(conn, PROTOCOL_ERROR)


@case("6.2/3 HEADERS on stream 0 is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 0, block(request_headers(VERSION))))
    connection_error(conn, PROTOCOL_ERROR)


@case("6.2/4 HEADERS with padding longer than its payload is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    data = block(request_headers(VERSION))
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM | PADDED, 1, bytes([len(data) + 1]) + data))
    connection_error(conn, PROTOCOL_ERROR)


@case("6.3/1 PRIORITY on stream 0 is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    conn.send(frame(PRIORITY, 0, 0, b"\x00\x00\x00\x01\x10"))
    connection_error(conn, PROTOCOL_ERROR)


@case("6.3/2 PRIORITY of 4 octets is FRAME_SIZE_ERROR")
def _(path):
    conn = ready(path)
    stream, headers = conn.headers(SUBSCRIBE)
    conn.send(headers + frame(PRIORITY, 0, stream, b"\x00\x00\x00\x00"))
    stream_error(conn, stream, FRAME_SIZE_ERROR)


@case("6.4/1 RST_STREAM on stream 0 is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    conn.send(frame(RST_STREAM, 0, 0, struct.pack(">I", 8)))
    connection_error(conn, PROTOCOL_ERROR)


@case("6.4/2 RST_STREAM on an idle stream is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    conn.send(frame(RST_STREAM, 0, 3, struct.pack(">I", 8)))
    connection_error(conn, PROTOCOL_ERROR)


@case("6.4/3 RST_STREAM of 3 octets is FRAME_SIZE_ERROR")
def _(path):
    conn = ready(path)
    stream, headers = conn.headers(SUBSCRIBE)
    conn.send(headers + frame(RST_STREAM, 0, stream, b"\x00\x00\x08"))
    connection_error(conn, FRAME_SIZE_ERROR)


@case("6.5/1 SETTINGS ACK with a payload is FRAME_SIZE_ERROR")
def _(path):
    conn = ready(path)
    conn.send(frame(SETTINGS, ACK, 0, b"\x00\x03\x00\x00\x00\x64"))
    connection_error(conn, FRAME_SIZE_ERROR)


@case("6.5/2 SETTINGS on a stream is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    conn.send(frame(SETTINGS, 0, 1, b"\x00\x03\x00\x00\x00\x64"))
    connection_error(conn, PROTOCOL_ERROR)


@case("6.5/3 SETTINGS not a multiple of 6 octets is FRAME_SIZE_ERROR")
def _(path):
    conn = ready(path)
    conn.send(frame(SETTINGS, 0, 0, b"\x00\x03\x00\x00\x00"))
    connection_error(conn, FRAME_SIZE_ERROR)


@case("6.5.2/1 SETTINGS_ENABLE_PUSH 2 is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    conn.send(settings(enable_push=2))
    connection_error(conn, PROTOCOL_ERROR)


@case("6.5.2/2 SETTINGS_INITIAL_WINDOW_SIZE 2^31 is FLOW_CONTROL_ERROR")
def _(path):
    conn = ready(path)
    conn.send(settings(initial_window_size=1 << 31))
    connection_error(conn, FLOW_CONTROL_ERROR)


@case("6.5.2/3 SETTINGS_MAX_FRAME_SIZE below 16,384 is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    conn.send(settings(max_frame_size=16383))
    connection_error(conn, PROTOCOL_ERROR)


@case("6.5.2/4 SETTINGS_MAX_FRAME_SIZE above 2^24-1 is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    conn.send(settings(max_frame_size=1 << 24))
    connection_error(conn, PROTOCOL_ERROR)


@case("6.5.2/5 an unknown setting is ignored")
def _(path):
    conn = ready(path)
    conn.send(frame(SETTINGS, 0, 0, b"\x00\xff\x00\x00\x00\x01"))
    if not any(t == SETTINGS and f & ACK for t, f, _, _ in conn.frames(lambda f: f[0] == SETTINGS and f[1] & ACK, 5)):
        raise Check("no SETTINGS ack")
    alive(conn)


@case("6.5.3/2 SETTINGS is acknowledged")
def _(path):
    conn = Conn(path)
    if not any(t == SETTINGS and f & ACK for t, f, _, _ in conn.frames(lambda f: f[0] == SETTINGS and f[1] & ACK, 5)):
        raise Check("no SETTINGS ack")


@case("6.7/1 PING is answered with the same payload")
def _(path):
    conn = ready(path)
    alive(conn)


@case("6.7/2 a PING ACK is not answered")
def _(path):
    conn = ready(path)
    conn.send(frame(PING, ACK, 0, b"unsolic!") + frame(PING, 0, 0, b"h2spec!!"))
    if answer(conn) != ("ping", b"h2spec!!"):
        raise Check("the PING ACK was answered")


@case("6.7/3 PING on a stream is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    conn.send(frame(PING, 0, 1, b"h2spec!!"))
    connection_error(conn, PROTOCOL_ERROR)


@case("6.7/4 PING of 6 octets is FRAME_SIZE_ERROR")
def _(path):
    conn = ready(path)
    conn.send(frame(PING, 0, 0, b"h2spec"))
    connection_error(conn, FRAME_SIZE_ERROR)


@case("6.8/1 GOAWAY on a stream is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    conn.send(frame(GOAWAY, 0, 1, struct.pack(">II", 0, 0)))
    connection_error(conn, PROTOCOL_ERROR)


@case("6.9/1 WINDOW_UPDATE of 0 on the connection is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    conn.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0)))
    connection_error(conn, PROTOCOL_ERROR)


@case("6.9/2 WINDOW_UPDATE of 0 on a stream is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    stream, headers = conn.headers(SUBSCRIBE)
    conn.send(headers + frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", 0)))
    stream_error(conn, stream, PROTOCOL_ERROR)


@case("6.9/3 WINDOW_UPDATE of 3 octets is FRAME_SIZE_ERROR")
def _(path):
    conn = ready(path)
    conn.send(frame(WINDOW_UPDATE, 0, 0, b"\x00\x00\x01"))
    connection_error(conn, FRAME_SIZE_ERROR)


@case("6.9.1/2 a connection window above 2^31-1 is FLOW_CONTROL_ERROR")
def _(path):
    conn = ready(path)
    conn.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF)) * 2)
    connection_error(conn, FLOW_CONTROL_ERROR)


@case("6.9.1/3 a stream window above 2^31-1 is FLOW_CONTROL_ERROR")
def _(path):
    conn = ready(path)
    stream, headers = conn.headers(SUBSCRIBE)
    conn.send(headers + frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", 0x7FFFFFFF)) * 2)
    stream_error(conn, stream, FLOW_CONTROL_ERROR)


@case("6.9.2/3 SETTINGS_INITIAL_WINDOW_SIZE that overflows a stream window is FLOW_CONTROL_ERROR")
def _(path):
    conn = ready(path)
    stream, headers = conn.headers(SUBSCRIBE)
    conn.send(headers + frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", 0x7FFFFFFF - 65535)))
    conn.send(settings(initial_window_size=65536))
    connection_error(conn, FLOW_CONTROL_ERROR)


@case("6.10/1 a header block in several CONTINUATION frames is accepted")
def _(path):
    conn = ready(path)
    data = block(request_headers(VERSION))
    parts = [data[i:i + 4] for i in range(0, len(data), 4)]
    frames = frame(HEADERS, 0, 1, parts[0])
    for index, part in enumerate(parts[1:]):
        frames += frame(CONTINUATION, END_HEADERS if index == len(parts) - 2 else 0, 1, part)
    conn.send(frames + frame(DATA, END_STREAM, 1, grpc_message(b"")))
    responds(conn, 1)


@case("6.10/2 CONTINUATION followed by another frame is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    data = block(request_headers(VERSION))
    conn.send(frame(HEADERS, 0, 1, data[:4]) + frame(CONTINUATION, 0, 1, data[4:]) + frame(DATA, END_STREAM, 1, b""))
    connection_error(conn, PROTOCOL_ERROR)


@case("6.10/3 CONTINUATION on stream 0 is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    data = block(request_headers(VERSION))
    conn.send(frame(HEADERS, 0, 1, data[:4]) + frame(CONTINUATION, END_HEADERS, 0, data[4:]))
    connection_error(conn, PROTOCOL_ERROR)


@case("6.10/4 CONTINUATION after HEADERS with END_HEADERS is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    data = block(request_headers(VERSION))
    conn.send(frame(HEADERS, END_HEADERS, 1, data) + frame(CONTINUATION, END_HEADERS, 1, block([("x-a", "b")])))
    connection_error(conn, PROTOCOL_ERROR)


@case("6.10/5 CONTINUATION after CONTINUATION with END_HEADERS is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    data = block(request_headers(VERSION))
    conn.send(frame(HEADERS, 0, 1, data[:4]) + frame(CONTINUATION, END_HEADERS, 1, data[4:])
              + frame(CONTINUATION, END_HEADERS, 1, block([("x-a", "b")])))
    connection_error(conn, PROTOCOL_ERROR)


@case("6.10/6 CONTINUATION after DATA is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    stream, headers = conn.headers(SUBSCRIBE)
    conn.send(headers + frame(DATA, 0, stream, b"") + frame(CONTINUATION, END_HEADERS, stream, block([("x-a", "b")])))
    connection_error(conn, PROTOCOL_ERROR)


@case("8.1/1 a second HEADERS without END_STREAM is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    stream, headers = conn.headers(SUBSCRIBE)
    conn.send(headers + frame(HEADERS, END_HEADERS, stream, conn.encoder.encode([("x-trailer", "1")])))
    stream_error(conn, stream, PROTOCOL_ERROR)


def malformed(path, fields):
    conn = ready(path)
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, conn.encoder.encode(fields)))
    stream_error(conn, 1, PROTOCOL_ERROR)
    alive(conn)


BASE = request_headers(VERSION)


def without(name):
    return [f for f in BASE if f[0] != name]


@case("8.1.2/1 an upper-case field name is PROTOCOL_ERROR")
def _(path):
    malformed(path, BASE + [("X-UPPER", "1")])


@case("8.1.2.1/1 an unknown pseudo-header is PROTOCOL_ERROR")
def _(path):
    malformed(path, BASE[:4] + [(":unknown", "1")] + BASE[4:])


@case("8.1.2.1/2 a response pseudo-header in a request is PROTOCOL_ERROR")
def _(path):
    malformed(path, BASE[:4] + [(":status", "200")] + BASE[4:])


@case("8.1.2.1/3 a pseudo-header in trailers is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    stream, headers = conn.headers(SUBSCRIBE)
    conn.send(headers + frame(HEADERS, END_HEADERS | END_STREAM, stream, conn.encoder.encode([(":method", "POST")])))
    stream_error(conn, stream, PROTOCOL_ERROR)


@case("8.1.2.1/4 a pseudo-header after a regular field is PROTOCOL_ERROR")
def _(path):
    malformed(path, BASE[:3] + BASE[4:] + [BASE[3]])


@case("8.1.2.2/1 a connection-specific field is PROTOCOL_ERROR")
def _(path):
    malformed(path, BASE + [("connection", "keep-alive")])


@case("8.1.2.2/2 TE other than trailers is PROTOCOL_ERROR")
def _(path):
    malformed(path, without("te") + [("te", "trailers, deflate")])


@case("8.1.2.3/1 an empty :path is PROTOCOL_ERROR")
def _(path):
    malformed(path, [(":path", "") if f[0] == ":path" else f for f in BASE])


@case("8.1.2.3/2 no :method is PROTOCOL_ERROR")
def _(path):
    malformed(path, without(":method"))


@case("8.1.2.3/3 no :scheme is PROTOCOL_ERROR")
def _(path):
    malformed(path, without(":scheme"))


@case("8.1.2.3/4 no :path is PROTOCOL_ERROR")
def _(path):
    malformed(path, without(":path"))


@case("8.1.2.3/5 a repeated :method is PROTOCOL_ERROR")
def _(path):
    malformed(path, [BASE[0]] + BASE)


@case("8.1.2.3/6 a repeated :scheme is PROTOCOL_ERROR")
def _(path):
    malformed(path, [BASE[1]] + BASE)


@case("8.1.2.3/7 a repeated :path is PROTOCOL_ERROR")
def _(path):
    malformed(path, [BASE[2]] + BASE)


@case("8.2/1 PUSH_PROMISE from a client is PROTOCOL_ERROR")
def _(path):
    conn = ready(path)
    stream, headers = conn.headers(SUBSCRIBE)
    conn.send(headers + frame(0x5, END_HEADERS, stream, struct.pack(">I", 2) + block(BASE)))
    connection_error(conn, PROTOCOL_ERROR)


@case("hpack/2.3.3/1 an index beyond the tables is COMPRESSION_ERROR")
def _(path):
    conn = ready(path)
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xff\x7f"))   # index 254
    connection_error(conn, COMPRESSION_ERROR)


@case("hpack/4.2/1 a table size update above SETTINGS_HEADER_TABLE_SIZE is COMPRESSION_ERROR")
def _(path):
    conn = ready(path)
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x3f\xe1\xff\x03" + block(BASE)))   # 65536
    connection_error(conn, COMPRESSION_ERROR)


@case("hpack/6.1/1 index 0 is COMPRESSION_ERROR")
def _(path):
    conn = ready(path)
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x80"))
    connection_error(conn, COMPRESSION_ERROR)


if __name__ == "__main__":
    failed = 0
    for name, fn in CASES:
        try:
            fn(sys.argv[1])
            print(f"ok {name}", flush=True)
        except Exception as error:
            failed += 1
            print(f"FAIL {name}: {error!r}", flush=True)
    print(f"{len(CASES) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
