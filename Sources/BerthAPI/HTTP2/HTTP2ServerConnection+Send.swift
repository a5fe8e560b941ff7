import FoundationEssentials
import GRPCCore
import Glibc
import NIOCore
import NIOHPACK

/// The response side: headers, framed messages under both flow-control windows, trailers.
/// Header blocks are HPACK-encoded when they are written, never earlier, because the encoder's
/// table must see blocks in the order the client decodes them.
extension HTTP2ServerConnection {
    /// Takes one part an RPC's writer submitted; parts of a stream that has ended are dropped.
    func send(_ part: RPCResponsePart<WireBytes>, on id: UInt32) {
        guard let stream = streams[id] else { return }
        switch part {
        case .metadata(let metadata):
            writeResponseHeaders(stream, metadata)
        case .message(let bytes):
            // The prefix goes in its own small buffer: copying the message behind it would hold
            // every queued response twice.
            var prefix = context.channel.allocator.buffer(capacity: ResponseWriter.prefixLength)
            prefix.writeInteger(UInt8(0))
            prefix.writeInteger(UInt32(bytes.count))
            stream.pendingData.append(prefix)
            if bytes.count > 0 { stream.pendingData.append(bytes.buffer) }
            stream.pendingBytes += ResponseWriter.prefixLength + bytes.count
            drain(stream)
        case .status(let status, let trailers):
            stream.pendingStatus = (status, trailers)
            drain(stream)
        }
    }

    /// The RPC's writer is done. Without a status sent, the stream cannot end well: reset it.
    func finish(_ id: UInt32, error: (any Error)?) {
        guard let stream = streams[id], stream.pendingStatus == nil else { return }
        streams[id] = nil
        abandon(stream, error: RPCError(code: .internalError, message: "the handler ended without a status"))
        writeReset(id, .internalError)
        scheduleFlush()
        closeIfIdle()
    }

    /// Writes as much queued response data as both windows allow, then the trailers once
    /// nothing is queued. A socket the client does not read (the channel is not writable) stops
    /// it too: the data stays queued, where the writers' gates count it.
    func drain(_ stream: Stream) {
        var sent = 0
        while stream.pendingBytes > 0 {
            let allowed = min(sendWindow, stream.sendWindow, peerMaxFrameSize)
            guard allowed > 0, context.channel.isWritable else {
                if sendWindow <= 0 || !context.channel.isWritable, !blockedStreams.contains(stream.id) { blockedStreams.append(stream.id) }
                break
            }
            if !stream.headersSent { writeResponseHeaders(stream, Metadata()) }
            let length = min(allowed, stream.pendingBytes)
            var header = context.channel.allocator.buffer(capacity: FrameHeader.size)
            header.writeFrameHeader(length: length, type: .data, stream: stream.id)
            context.write(wrapOutboundOut(header), promise: nil)
            var left = length
            while left > 0 {
                let take = min(left, stream.pendingData[0].readableBytes)
                let chunk = stream.pendingData[0].readSlice(length: take)!
                if stream.pendingData[0].readableBytes == 0 { stream.pendingData.removeFirst() }
                context.write(wrapOutboundOut(chunk), promise: nil)
                left -= take
            }
            stream.pendingBytes -= length
            sendWindow -= length
            stream.sendWindow -= length
            sent += length
        }
        if sent > 0 {
            stream.gate.drained(sent)
            controlFramesInARow = 0
        }
        if stream.pendingBytes == 0, let (status, trailers) = stream.pendingStatus {
            writeTrailers(stream, status, trailers)
        }
        scheduleFlush()
    }

    private func writeResponseHeaders(_ stream: Stream, _ metadata: Metadata) {
        guard !stream.headersSent else { return }
        stream.headersSent = true
        var headers = HPACKHeaders([(":status", "200"), ("content-type", "application/grpc")])
        Self.add(metadata, to: &headers)
        writeHeaderBlock(headers, stream: stream.id, endStream: false)
        scheduleFlush()
    }

    /// Ends the stream with its status; what a client still sending gets is `afterResponse`'s call.
    private func writeTrailers(_ stream: Stream, _ status: Status, _ trailers: Metadata) {
        writeHeaderBlock(Self.trailers(status, trailers, only: !stream.headersSent), stream: stream.id, endStream: true)
        streams[stream.id] = nil
        stream.gate.close()
        if !stream.resetAfterResponse, resetsLeft < limits.maxResetsAhead { resetsLeft += 1 }
        if !stream.remoteClosed { stream.requests.finish() }
        afterResponse(stream.id, clientDone: stream.remoteClosed, reset: stream.resetAfterResponse)
        closeIfIdle()
    }

    /// Answers a request that is not gRPC with a bare HTTP status.
    func rejectHTTP(_ id: UInt32, status: String) {
        writeHeaderBlock(HPACKHeaders([(":status", status)]), stream: id, endStream: true)
        writeReset(id, .noError)
        scheduleFlush()
    }

    /// A complete response went out on stream `id`. A client still sending is either told to stop
    /// (`reset`: its request broke the rules) or has its remaining DATA dropped quietly until it
    /// ends the stream (see `finishedWhileReceiving` for why not RST_STREAM(NO_ERROR) always).
    func afterResponse(_ id: UInt32, clientDone: Bool, reset: Bool) {
        guard !clientDone else { return }
        if reset || finishedWhileReceiving.count >= limits.maxConcurrentStreams {
            writeReset(id, .noError)
        } else {
            finishedWhileReceiving.insert(id)
        }
    }

    /// Answers a gRPC request that cannot be served with a trailers-only response.
    func rejectRPC(_ id: UInt32, _ status: Status, clientDone: Bool) {
        writeHeaderBlock(Self.trailers(status, Metadata(), only: true), stream: id, endStream: true)
        afterResponse(id, clientDone: clientDone, reset: false)
        scheduleFlush()
    }

    /// Ends a stream whose requests break gRPC's framing: the client gets the status, the
    /// handler a failed request sequence.
    func failStream(_ stream: Stream, _ status: Status) {
        abandon(stream, error: RPCError(code: RPCError.Code(status.code) ?? .internalError, message: status.message))
        stream.pendingData.removeAll()
        stream.pendingBytes = 0
        bufferedRequests.bytes -= stream.partialMessage?.readableBytes ?? 0
        stream.partialMessage = nil
        stream.resetAfterResponse = true
        stream.pendingStatus = (status, Metadata())
        drain(stream)
    }

    /// One header block as HEADERS plus as many CONTINUATION frames as the client's frame size needs.
    private func writeHeaderBlock(_ headers: HPACKHeaders, stream id: UInt32, endStream: Bool) {
        var block = context.channel.allocator.buffer(capacity: 256)
        do {
            try encoder.encode(headers: headers, to: &block)
        } catch {
            // Only a misuse of the encoder can fail here; the client would lose the table state.
            fail(ConnectionError(code: .internalError, reason: "cannot encode headers: \(error)"))
            return
        }
        var first = true
        repeat {
            let length = min(block.readableBytes, peerMaxFrameSize)
            var slice = block.readSlice(length: length)!
            var flags: UInt8 = block.readableBytes == 0 ? FrameFlag.endHeaders : 0
            if first, endStream { flags |= FrameFlag.endStream }
            var frame = context.channel.allocator.buffer(capacity: FrameHeader.size + length)
            frame.writeFrameHeader(length: length, type: first ? .headers : .continuation, flags: flags, stream: id)
            frame.writeBuffer(&slice)
            context.write(wrapOutboundOut(frame), promise: nil)
            first = false
        } while block.readableBytes > 0
        needsFlush = true
    }

    func writeReset(_ id: UInt32, _ code: HTTP2ErrorCode) {
        recentlyReset[nextRecentlyReset] = id
        nextRecentlyReset = (nextRecentlyReset + 1) % recentlyReset.count
        var frame = context.channel.allocator.buffer(capacity: FrameHeader.size + 4)
        frame.writeFrameHeader(length: 4, type: .rstStream, stream: id)
        frame.writeInteger(code.rawValue)
        context.write(wrapOutboundOut(frame), promise: nil)
        needsFlush = true
    }

    func writeWindowUpdate(_ id: UInt32, _ increment: Int) {
        var frame = context.channel.allocator.buffer(capacity: FrameHeader.size + 4)
        frame.writeFrameHeader(length: 4, type: .windowUpdate, stream: id)
        frame.writeInteger(UInt32(increment))
        context.write(wrapOutboundOut(frame), promise: nil)
        needsFlush = true
    }

    func writeGoAway(_ code: HTTP2ErrorCode, reason: String, lastStream: UInt32) {
        let debug = Array(reason.utf8.prefix(1024))
        var frame = context.channel.allocator.buffer(capacity: FrameHeader.size + 8 + debug.count)
        frame.writeFrameHeader(length: 8 + debug.count, type: .goAway, stream: 0)
        frame.writeInteger(lastStream)
        frame.writeInteger(code.rawValue)
        frame.writeBytes(debug)
        context.write(wrapOutboundOut(frame), promise: nil)
        needsFlush = true
    }

    /// Flushes once, after the tasks the event loop already holds: a unary RPC's headers,
    /// message and trailers usually leave in one write.
    func scheduleFlush() {
        needsFlush = true
        guard !flushScheduled, let bound, let context else { return }
        flushScheduled = true
        context.eventLoop.execute {
            let connection = bound.value
            connection.flushScheduled = false
            connection.flushIfNeeded()
        }
    }

    func flushIfNeeded() {
        guard needsFlush, let context else { return }
        needsFlush = false
        context.flush()
    }

    /// The status block that ends a stream; `only` (a trailers-only response, no headers sent
    /// before) adds the response headers, so one HEADERS frame carries everything.
    private static func trailers(_ status: Status, _ trailers: Metadata, only: Bool) -> HPACKHeaders {
        var headers = only ? HPACKHeaders([(":status", "200"), ("content-type", "application/grpc")]) : HPACKHeaders()
        headers.add(name: "grpc-status", value: String(status.code.rawValue))
        if !status.message.isEmpty { headers.add(name: "grpc-message", value: percentEncoded(echo(status.message, limit: 1024))) }
        add(trailers, to: &headers)
        return headers
    }

    /// Metadata as header fields: binary values base64-encoded under their `-bin` keys.
    private static func add(_ metadata: Metadata, to headers: inout HPACKHeaders) {
        for (key, value) in metadata {
            switch value {
            case .string(let text): headers.add(name: key, value: text)
            case .binary(let bytes): headers.add(name: key, value: Data(bytes).base64EncodedString())
            }
        }
    }

    /// grpc-message is percent-encoded: bytes outside printable ASCII, and "%" itself.
    static func percentEncoded(_ message: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(message.utf8.count)
        for byte in message.utf8 {
            if byte >= 0x20, byte <= 0x7e, byte != UInt8(ascii: "%") {
                out.append(byte)
            } else {
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0xf)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
