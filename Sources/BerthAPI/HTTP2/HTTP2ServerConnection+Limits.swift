import NIOCore
import NIOHPACK

/// What keeps one buggy or hostile client from costing the daemon unbounded memory or time
/// (see `Limits`): reading pauses while the client does not read or while too many of its RPC
/// tasks run; floods of control frames and resets end the connection with ENHANCE_YOUR_CALM;
/// a connection that never completes its preface, or idles, is closed.
extension HTTP2ServerConnection {
    // MARK: Backpressure

    /// Reading stops before the next frame while the socket does not take what was written (a
    /// client that sends PINGs or provokes resets without reading the answers), and before a
    /// new stream while the connection's RPC tasks, those of closed streams included, are at
    /// the stream limit (streams opened and reset at once, CVE-2023-44487).
    func mustPauseBefore(frameAt buffer: ByteBuffer) -> Bool {
        if !context.channel.isWritable { return true }
        guard liveTasks >= limits.maxConcurrentStreams, streams.count < limits.maxConcurrentStreams,
            buffer.getInteger(at: buffer.readerIndex + 3, as: UInt8.self) == FrameType.headers.rawValue,
            let id = buffer.getInteger(at: buffer.readerIndex + 5, as: UInt32.self)
        else { return false }
        return id & 0x7fff_ffff > highestStreamID
    }

    /// The pipeline asks for more bytes only while frames are being read.
    func read(context: ChannelHandlerContext) {
        if readingPaused || closing { readPending = true } else { context.read() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            let waiting = blockedStreams
            blockedStreams.removeAll()
            for id in waiting { if let stream = streams[id] { drain(stream) } }
            resumeReading()
        }
        context.fireChannelWritabilityChanged()
    }

    /// An RPC task of this connection returned.
    func taskFinished() {
        liveTasks -= 1
        if readingPaused, liveTasks < limits.maxConcurrentStreams { resumeReading() }
    }

    func resumeReading() {
        guard readingPaused, !closing, let context else { return }
        readingPaused = false
        readFramesOrFail()
        scheduleFlush()
        if !readingPaused, !closing, readPending {
            readPending = false
            context.read()
        }
    }

    // MARK: Floods

    /// Frames that ask the server for work without being a request: counted in a row.
    static func isControl(_ header: FrameHeader) -> Bool {
        switch header.type {
        case .ping, .settings, .priority, nil: true
        case .continuation: header.length == 0 && !header.has(FrameFlag.endHeaders)
        case .data: header.length == 0 && !header.has(FrameFlag.endStream)
        default: false
        }
    }

    func countControlFrame() throws {
        controlFramesInARow += 1
        guard controlFramesInARow <= limits.maxControlFramesInARow else {
            throw ConnectionError(
                code: .enhanceYourCalm,
                reason: "more than \(limits.maxControlFramesInARow) PING, SETTINGS, PRIORITY, empty or unknown frames in a row")
        }
    }

    /// One stream reset by the client while its RPC ran, or by the server because of the
    /// client; each RPC that completes earns one back.
    func spendReset() throws {
        resetsLeft -= 1
        guard resetsLeft >= 0 else {
            throw ConnectionError(code: .enhanceYourCalm, reason: "more than \(limits.maxResetsAhead) streams reset beyond the RPCs completed")
        }
    }

    // MARK: Frames RFC 9113 treats as stream errors

    func onPriority(_ header: FrameHeader, _ payload: ByteBuffer) throws {
        guard header.streamID != 0 else { throw ConnectionError(code: .protocolError, reason: "PRIORITY on stream 0") }
        guard payload.readableBytes == 5 else {
            // RFC 9113 §6.3: a stream error of type FRAME_SIZE_ERROR.
            if let stream = streams[header.streamID] { return try reset(stream, .frameSizeError, because: "PRIORITY payload is not 5 bytes") }
            try spendReset()
            return writeReset(header.streamID, .frameSizeError)
        }
        if payload.getInteger(at: payload.readerIndex, as: UInt32.self)! & 0x7fff_ffff == header.streamID {
            try refuseSelfDependency(header.streamID)
        }
    }

    /// RFC 9113 §5.3.1: a stream cannot depend on itself; a stream error of type PROTOCOL_ERROR.
    func refuseSelfDependency(_ id: UInt32) throws {
        if let stream = streams[id] { return try reset(stream, .protocolError, because: "stream \(id) depends on itself") }
        try spendReset()
        writeReset(id, .protocolError)
    }

    /// Why a request's header fields make it malformed (RFC 9113 §8.2, §8.3), or nil.
    static func malformation(of headers: HPACKHeaders) -> String? {
        var regularSeen = false
        var method = 0, scheme = 0, path = 0, authority = 0
        for (name, value, _) in headers {
            if name.utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) { return "upper-case field name" }
            if name.hasPrefix(":") {
                if regularSeen { return "pseudo-header \(name) after a regular field" }
                switch name {
                case ":method": method += 1
                case ":scheme": scheme += 1
                case ":path":
                    path += 1
                    if value.isEmpty { return "empty :path" }
                case ":authority": authority += 1
                default: return "pseudo-header \(echo(name)) is not a request's"
                }
            } else {
                regularSeen = true
                switch name {
                case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
                    return "connection-specific field \(name)"
                case "te" where value != "trailers": return "te other than trailers"
                default: break
                }
            }
        }
        guard method == 1, scheme == 1, path == 1, authority <= 1 else { return "pseudo-headers missing or repeated" }
        return nil
    }

    // MARK: Timeouts

    /// A client that has not sent its preface and SETTINGS within `handshakeTimeout` is dropped;
    /// one with no stream open that stays silent for `idleTimeout` is sent GOAWAY and closed.
    func scheduleTimeouts() {
        let bound = self.bound!
        handshakeTimer = context.eventLoop.scheduleTask(in: limits.handshakeTimeout) {
            let connection = bound.value
            guard !connection.settingsReceived, !connection.closing, let context = connection.context else { return }
            connection.closing = true
            context.close(promise: nil)
        }
        scheduleIdleCheck(in: limits.idleTimeout)
    }

    private func scheduleIdleCheck(in delay: TimeAmount) {
        guard let bound, let context else { return }
        idleTimer = context.eventLoop.scheduleTask(in: delay) { bound.value.checkIdle() }
    }

    private func checkIdle() {
        guard let context, !closing, context.channel.isActive else { return }
        let quietUntil = lastRead + limits.idleTimeout
        let now = NIODeadline.now()
        guard streams.isEmpty, liveTasks == 0, quietUntil <= now else {
            return scheduleIdleCheck(in: max(quietUntil - now, .seconds(1)))
        }
        closing = true
        writeGoAway(.noError, reason: "idle", lastStream: highestStreamID)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(capacity: 0))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    func cancelTimers() {
        handshakeTimer?.cancel()
        idleTimer?.cancel()
        handshakeTimer = nil
        idleTimer = nil
    }
}

/// Untrusted text as it may appear in an error message or a log line: at most `limit` bytes,
/// the rest counted, not repeated (a 64 KiB key must not come back as a 64 KiB error).
func echo(_ text: String, limit: Int = 128) -> String {
    let utf8 = text.utf8
    guard utf8.count > limit else { return text }
    let kept = String(decoding: utf8.prefix(limit), as: UTF8.self)
    return "\(kept)…(\(utf8.count - limit) more bytes)"
}
