import FoundationEssentials
import GRPCCore
import Glibc
import NIOCore
import NIOHPACK

/// One client connection of the gRPC server: HTTP/2 framing, HPACK, flow control and the gRPC
/// message framing, in a single channel handler confined to the connection's event loop.
///
/// Why not swift-nio-http2's multiplexer: it gives every stream its own channel and pipeline,
/// and grpc-swift's transport bridges each one to Swift Concurrency through async channels. On
/// this daemon's workload (ctr opens a connection per command and reads blobs 32 KiB per RPC)
/// that machinery was most of the CPU per RPC. Here a stream is a small record; its requests go
/// to the RPC's task through `RequestQueue` and its responses come back through `ResponseWriter`.
///
/// What it serves: RFC 9113 without server push, priorities (ignored, as §5.3.2 allows) or
/// upgrade; gRPC over HTTP/2 without message compression (the server never advertises any, so
/// a client never compresses). Every violation of RFC 9113 that concerns the connection ends
/// it with GOAWAY; one that concerns a stream resets only that stream.
final class HTTP2ServerConnection: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Sizes the connection advertises and enforces: what one buggy or hostile local client
    /// can make the daemon hold or do. README.md "Limits" states them for operators.
    struct Limits: Sendable {
        /// Each stream's receive window: how far a client may stream requests ahead of the handler.
        var streamWindow = 8 << 20
        /// The connection's receive window, shared by all streams.
        var connectionWindow = 64 << 20
        /// The largest frame payload a client may send (SETTINGS_MAX_FRAME_SIZE).
        var maxFrameSize = 1 << 20
        /// SETTINGS_MAX_CONCURRENT_STREAMS; a stream beyond it is refused (REFUSED_STREAM). RPC
        /// tasks still running after their stream closed count too: while they are this many, the
        /// connection reads no new stream (as Go's server does since CVE-2023-44487).
        var maxConcurrentStreams = 128
        /// The largest request message, as gRPC counts it (without its 5-byte prefix).
        var maxMessageSize = 16 << 20
        var maxHeaderListSize = 64 << 10
        /// How many response bytes a writer may have queued behind flow control before it waits.
        var writerQueueLimit = 4 << 20
        /// Response bytes all writers of one connection may have queued before each waits.
        var connectionQueueLimit = 32 << 20
        /// Bytes of unfinished request messages one connection may hold; the stream whose
        /// message passes it ends with RESOURCE_EXHAUSTED.
        var maxBufferedRequestBytes = 64 << 20
        /// Bytes written and not yet taken by the socket above which the connection stops
        /// reading from the client and stops queueing response DATA (the channel's high water mark).
        var outboundBufferLimit = 1 << 20
        /// PING, SETTINGS, PRIORITY, empty DATA or CONTINUATION and unknown frames in a row with
        /// no request or response between them; one more ends the connection (ENHANCE_YOUR_CALM).
        var maxControlFramesInARow = 1000
        /// CONTINUATION frames one header block may have (a 64 KiB block needs 4 at 16 KiB).
        var maxContinuationFrames = 32
        /// Streams the client may reset while their RPC runs, or make the server reset, beyond
        /// the RPCs that completed; one more ends the connection (ENHANCE_YOUR_CALM).
        var maxResetsAhead = 200
        /// Time from accepting a connection to its client's preface and SETTINGS.
        var handshakeTimeout = TimeAmount.seconds(10)
        /// Time a connection with no open stream may stay silent before it is closed (GOAWAY NO_ERROR).
        var idleTimeout = TimeAmount.minutes(5)
        /// Connections open at once, for the whole transport.
        var maxConnections = 1000
    }

    /// One open stream: what the connection knows of an RPC in flight.
    final class Stream {
        let id: UInt32
        /// The hub's id of the RPC's task, to cancel it when the client goes away.
        var task: UInt64?
        /// The connection's count of bytes in unfinished request messages, which this stream's
        /// `partialMessage` is part of until the stream goes.
        let buffered: BufferedRequestBytes
        let requests: RequestQueue
        let gate: SendGate
        let cancellation = ServerContext.RPCCancellationHandle()
        var sendWindow: Int
        var receiveWindow: Int
        /// Request bytes of a message not complete yet.
        var partialMessage: ByteBuffer?
        /// Window returned early for `partialMessage`, so that a message larger than the window
        /// can arrive at all; its queue size is reduced by as much.
        var advanced = 0
        var remoteClosed = false
        var headersSent = false
        /// Response messages and their prefixes waiting for flow-control window, oldest first.
        var pendingData: [ByteBuffer] = []
        /// The bytes in `pendingData`.
        var pendingBytes = 0
        var pendingStatus: (Status, Metadata)?
        /// The request broke gRPC's rules: after the status, tell the client to stop sending.
        var resetAfterResponse = false

        init(
            id: UInt32, requests: RequestQueue, gate: SendGate, sendWindow: Int, receiveWindow: Int,
            buffered: BufferedRequestBytes
        ) {
            self.id = id
            self.buffered = buffered
            self.requests = requests
            self.gate = gate
            self.sendWindow = sendWindow
            self.receiveWindow = receiveWindow
        }

        deinit {
            buffered.bytes -= partialMessage?.readableBytes ?? 0
        }
    }

    /// Bytes of unfinished request messages across a connection's streams (event loop only).
    final class BufferedRequestBytes {
        var bytes = 0
    }

    let limits: Limits
    let hub: ConnectionHub
    var context: ChannelHandlerContext!
    var bound: NIOLoopBound<HTTP2ServerConnection>!
    private var executor: LoopTaskExecutor!
    var streams: [UInt32: Stream] = [:]
    /// Streams whose response is complete while the client was still sending (half-closed local,
    /// RFC 9113 §5.1): their remaining DATA is dropped quietly until the client ends them. No
    /// RST_STREAM here: grpc-swift clients treat one that follows the trailers closely as a
    /// broken stream ("Stream unexpectedly closed") and lose the status.
    var finishedWhileReceiving: Set<UInt32> = []
    /// The last streams the server reset, oldest overwritten first.
    var recentlyReset = [UInt32](repeating: 0, count: 16)
    var nextRecentlyReset = 0
    var encoder: HPACKEncoder
    private var decoder: HPACKDecoder
    private var inbound: ByteBuffer?
    private var prefaceSeen = false
    private var settingsSent = false
    var highestStreamID: UInt32 = 0
    /// A header block still waiting for its CONTINUATION frames.
    private var headerBlock: (stream: UInt32, endStream: Bool, block: ByteBuffer)?
    var peerInitialWindow = 65_535
    var peerMaxFrameSize = 16_384
    /// The connection-level window for what the server sends.
    var sendWindow = 65_535
    private var receiveWindow = 65_535
    private var receivedSinceUpdate = 0
    /// Streams that stopped on the connection window, in the order they stopped.
    var blockedStreams: [UInt32] = []
    var goingAway = false
    var needsFlush = false
    var flushScheduled = false
    /// An RPC task was started while reading the current batch of frames.
    private var startedRPCs = false
    /// RPC tasks started and not finished, including those whose stream has closed.
    var liveTasks = 0
    /// Frames are not being read (the client does not read what it is sent, or too many RPC
    /// tasks run); bytes wait in `inbound` and the channel is not asked to read more.
    var readingPaused = false
    /// A read the pipeline asked for while reading was paused.
    var readPending = false
    /// Control frames in a row, counted against `maxControlFramesInARow`.
    var controlFramesInARow = 0
    /// Resets left before the connection is judged abusive (see `maxResetsAhead`).
    var resetsLeft: Int
    /// CONTINUATION frames of the header block in progress.
    private var continuationFrames = 0
    let bufferedRequests = BufferedRequestBytes()
    /// The response bytes queued by all of this connection's writers.
    let sendBudget: ConnectionSendBudget
    var settingsReceived = false
    var handshakeTimer: Scheduled<Void>?
    var idleTimer: Scheduled<Void>?
    /// A stream whose HEADERS said it depends on itself: refused once its block is decoded.
    private var selfDependentStream: UInt32?
    /// When the client last sent anything, for the idle timeout.
    var lastRead = NIODeadline.now()
    var closing = false
    private var remotePeer = "unix:"
    private var localPeer = "unix:"

    init(limits: Limits, hub: ConnectionHub) {
        self.limits = limits
        self.hub = hub
        resetsLeft = limits.maxResetsAhead
        sendBudget = ConnectionSendBudget(limit: limits.connectionQueueLimit)
        encoder = HPACKEncoder(allocator: ByteBufferAllocator())
        decoder = HPACKDecoder(
            allocator: ByteBufferAllocator(), maxDynamicTableSize: HPACKDecoder.maxDynamicTableSize,
            maxHeaderListSize: limits.maxHeaderListSize)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        executor = LoopTaskExecutor(loop: context.eventLoop)
        if context.channel.isActive { start() }
    }

    /// The handler and its context refer to each other, and so do the handler and `bound`:
    /// break both cycles, or every closed connection would stay in memory.
    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimers()
        self.context = nil
        bound = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        start()
        context.fireChannelActive()
    }

    /// Sends the server's connection preface: SETTINGS, then the connection window (RFC 9113 §3.4, §6.9.2).
    private func start() {
        guard !settingsSent else { return }
        settingsSent = true
        guard hub.register(context.channel) else {
            context.close(promise: nil)
            return
        }
        if let address = context.channel.localAddress?.pathname { localPeer = "unix:\(address)" }
        if let address = context.channel.remoteAddress?.pathname { remotePeer = "unix:\(address)" }
        var frame = context.channel.allocator.buffer(capacity: 64)
        let settings: [(SettingID, Int)] = [
            (.maxConcurrentStreams, limits.maxConcurrentStreams), (.initialWindowSize, limits.streamWindow),
            (.maxFrameSize, limits.maxFrameSize), (.maxHeaderListSize, limits.maxHeaderListSize), (.enablePush, 0),
        ]
        frame.writeFrameHeader(length: settings.count * 6, type: .settings, stream: 0)
        for (id, value) in settings {
            frame.writeInteger(id.rawValue)
            frame.writeInteger(UInt32(value))
        }
        frame.writeFrameHeader(length: 4, type: .windowUpdate, stream: 0)
        frame.writeInteger(UInt32(limits.connectionWindow - receiveWindow))
        receiveWindow = limits.connectionWindow
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
        scheduleTimeouts()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if inbound == nil { inbound = incoming } else { inbound!.writeBuffer(&incoming) }
        lastRead = .now()
        guard !readingPaused, !closing else { return }
        readFramesOrFail()
    }

    func readFramesOrFail() {
        do {
            try readFrames()
        } catch let error as ConnectionError {
            fail(error)
        } catch {
            fail(ConnectionError(code: .internalError, reason: "\(error)"))
        }
    }

    /// What reading wrote (SETTINGS and PING acknowledgements, window updates) leaves now, or,
    /// when the batch started RPCs, in a flush queued behind their tasks' first turn: an RPC that
    /// answers without waiting then shares one write with those frames, and the client wakes
    /// once. (grpc-go clients, ctr among them, send a PING with each request to size their window.)
    func channelReadComplete(context: ChannelHandlerContext) {
        if startedRPCs {
            startedRPCs = false
            scheduleFlush()
        } else {
            flushIfNeeded()
        }
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closing = true
        cancelTimers()
        let lost = RPCError(code: .unavailable, message: "the client closed the connection")
        for stream in streams.values { abandon(stream, error: lost) }
        streams.removeAll()
        hub.unregister(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A client that exits with bytes of ours unread resets the socket (ctr does after
        // `snapshots info`): ordinary, so not worth an operator's attention.
        if let error = error as? IOError, error.errnoCode == ECONNRESET || error.errnoCode == EPIPE {
            hub.logger.debug("gRPC client reset its connection", metadata: ["peer": "\(remotePeer)", "error": "\(error)"])
        } else {
            hub.noteBrokenConnection("gRPC connection failed", metadata: ["peer": "\(remotePeer)", "error": "\(error)"])
        }
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ConnectionHub.ShutdownEvent { beginGoingAway() } else { context.fireUserInboundEventTriggered(event) }
    }

    private func readFrames() throws {
        guard var buffer = inbound else { return }
        inbound = nil
        defer { inbound = buffer.readableBytes > 0 ? buffer : nil }
        if !prefaceSeen {
            guard buffer.readableBytes >= FrameHeader.clientPreface.count else { return }
            guard buffer.readBytes(length: FrameHeader.clientPreface.count) == FrameHeader.clientPreface else {
                throw ConnectionError(code: .protocolError, reason: "the client did not start with the HTTP/2 connection preface")
            }
            prefaceSeen = true
        }
        while let length = buffer.peekFrameLength() {
            guard length <= limits.maxFrameSize else {
                throw ConnectionError(code: .frameSizeError, reason: "frame of \(length) bytes exceeds SETTINGS_MAX_FRAME_SIZE \(limits.maxFrameSize)")
            }
            guard buffer.readableBytes >= FrameHeader.size + length else { break }
            if mustPauseBefore(frameAt: buffer) {
                readingPaused = true
                return
            }
            let header = buffer.readFrameHeader()!
            try handle(header, payload: buffer.readSlice(length: length)!)
            if closing || context == nil || !context.channel.isActive { return }
        }
    }

    private func handle(_ header: FrameHeader, payload: ByteBuffer) throws {
        if let pending = headerBlock, header.type != .continuation || header.streamID != pending.stream {
            throw ConnectionError(code: .protocolError, reason: "expected CONTINUATION of stream \(pending.stream)")
        }
        if !settingsReceived {
            // The preface's first frame must be SETTINGS (RFC 9113 §3.4).
            guard header.type == .settings, !header.has(FrameFlag.ack) else {
                throw ConnectionError(code: .protocolError, reason: "the client's first frame is not SETTINGS")
            }
            settingsReceived = true
            handshakeTimer?.cancel()
            handshakeTimer = nil
        } else if Self.isControl(header) {
            try countControlFrame()
        }
        switch header.type {
        case .data: try onData(header, payload)
        case .headers: try onHeaders(header, payload)
        case .continuation: try onContinuation(header, payload)
        case .rstStream: try onReset(header, payload)
        case .settings: try onSettings(header, payload)
        case .ping: try onPing(header, payload)
        case .goAway:
            guard header.streamID == 0 else { throw ConnectionError(code: .protocolError, reason: "GOAWAY on stream \(header.streamID)") }
            guard header.length >= 8 else { throw ConnectionError(code: .frameSizeError, reason: "GOAWAY shorter than 8 bytes") }
            onGoAway()
        case .windowUpdate: try onWindowUpdate(header, payload)
        case .priority: try onPriority(header, payload)
        case .pushPromise:
            throw ConnectionError(code: .protocolError, reason: "a client must not send PUSH_PROMISE")
        case nil:
            break  // unknown frame types are ignored (RFC 9113 §4.1)
        }
    }

    // MARK: Streams opening and closing

    private func onHeaders(_ header: FrameHeader, _ payload: ByteBuffer) throws {
        guard header.streamID != 0, header.streamID & 1 == 1 else {
            throw ConnectionError(code: .protocolError, reason: "HEADERS on stream \(header.streamID), which a client cannot open")
        }
        var block = try Self.unpadded(payload, header)
        if header.has(FrameFlag.priority) {
            guard block.readableBytes >= 5 else { throw ConnectionError(code: .frameSizeError, reason: "HEADERS too short for its priority") }
            let dependency = block.readInteger(as: UInt32.self)! & 0x7fff_ffff
            block.moveReaderIndex(forwardBy: 1)
            if dependency == header.streamID { selfDependentStream = header.streamID }
        }
        let endStream = header.has(FrameFlag.endStream)
        continuationFrames = 0
        if header.has(FrameFlag.endHeaders) {
            try onHeaderBlock(header.streamID, endStream: endStream, block: block)
        } else {
            headerBlock = (header.streamID, endStream, block)
        }
    }

    private func onContinuation(_ header: FrameHeader, _ payload: ByteBuffer) throws {
        guard var pending = headerBlock else {
            throw ConnectionError(code: .protocolError, reason: "CONTINUATION without a header block in progress")
        }
        continuationFrames += 1
        guard continuationFrames <= limits.maxContinuationFrames else {
            throw ConnectionError(
                code: .enhanceYourCalm, reason: "header block of stream \(pending.stream) in more than \(limits.maxContinuationFrames) CONTINUATION frames")
        }
        var more = payload
        pending.block.writeBuffer(&more)
        guard pending.block.readableBytes <= limits.maxHeaderListSize else {
            throw ConnectionError(code: .enhanceYourCalm, reason: "header block exceeds \(limits.maxHeaderListSize) bytes")
        }
        headerBlock = pending
        if header.has(FrameFlag.endHeaders) {
            headerBlock = nil
            try onHeaderBlock(pending.stream, endStream: pending.endStream, block: pending.block)
        }
    }

    private func onHeaderBlock(_ id: UInt32, endStream: Bool, block: ByteBuffer) throws {
        var block = block
        let headers: HPACKHeaders
        do {
            headers = try decoder.decodeHeaders(from: &block)
        } catch {
            throw ConnectionError(code: .compressionError, reason: "cannot decode the header block of stream \(id): \(error)")
        }
        if let stream = streams[id] {
            // A client's trailers: gRPC clients send none, but HTTP/2 allows them with END_STREAM.
            guard endStream else { throw ConnectionError(code: .protocolError, reason: "second HEADERS on stream \(id) without END_STREAM") }
            guard !stream.remoteClosed else { return try reset(stream, .streamClosed, because: "the client sent HEADERS after ending the stream") }
            guard !headers.contains(where: { $0.name.hasPrefix(":") }) else {
                return try reset(stream, .protocolError, because: "the client's trailers carry a pseudo-header")
            }
            onRemoteEnd(stream)
            return
        }
        if finishedWhileReceiving.contains(id) {
            guard endStream else { throw ConnectionError(code: .protocolError, reason: "HEADERS on stream \(id) without END_STREAM") }
            finishedWhileReceiving.remove(id)
            return
        }
        guard id > highestStreamID else {
            // RFC 9113 §5.1: HEADERS on the stream just closed is STREAM_CLOSED; §5.1.1: a lower
            // identifier than one used, PROTOCOL_ERROR. Both end the connection here.
            throw ConnectionError(code: id == highestStreamID ? .streamClosed : .protocolError, reason: "HEADERS on closed stream \(id)")
        }
        highestStreamID = id
        if selfDependentStream == id {
            selfDependentStream = nil
            return try refuseSelfDependency(id)
        }
        if goingAway || streams.count >= limits.maxConcurrentStreams {
            writeReset(id, .refusedStream)
            return
        }
        if let problem = Self.malformation(of: headers) {
            // RFC 9113 §8.1.1: a malformed request is a stream error of type PROTOCOL_ERROR.
            try spendReset()
            writeReset(id, .protocolError)
            hub.logger.debug("malformed request headers", metadata: ["peer": "\(remotePeer)", "stream": "\(id)", "problem": "\(problem)"])
            return
        }
        controlFramesInARow = 0
        open(id, headers: headers, endStream: endStream)
    }

    /// Checks the request's gRPC headers and hands the new RPC to the server.
    private func open(_ id: UInt32, headers: HPACKHeaders, endStream: Bool) {
        guard headers.first(name: ":method") == "POST" else { return rejectHTTP(id, status: "405") }
        guard let contentType = headers.first(name: "content-type"), contentType.hasPrefix("application/grpc") else {
            return rejectHTTP(id, status: "415")
        }
        guard let path = headers.first(name: ":path"), let descriptor = Self.method(at: path) else {
            return rejectRPC(
                id, Status(code: .unimplemented, message: "malformed method path \(echo(headers.first(name: ":path") ?? "(none)"))"),
                clientDone: endStream)
        }
        if let encoding = headers.first(name: "grpc-encoding"), encoding != "identity" {
            return rejectRPC(
                id, Status(code: .unimplemented, message: "message compression \(echo(encoding)) is not supported; send identity"),
                clientDone: endStream)
        }
        let bound = self.bound!
        let requests = RequestQueue(creditBatch: limits.streamWindow / 4) { amount in
            bound.eventLoop.execute { bound.value.creditStream(id, amount) }
        }
        let stream = Stream(
            id: id, requests: requests, gate: SendGate(limit: limits.writerQueueLimit, budget: sendBudget),
            sendWindow: peerInitialWindow, receiveWindow: limits.streamWindow, buffered: bufferedRequests)
        requests.push(.metadata(Self.metadata(of: headers)))
        if endStream {
            stream.remoteClosed = true
            requests.finish()
        }
        streams[id] = stream
        let rpc = RPCStream(
            descriptor: descriptor, inbound: RPCAsyncSequence(wrapping: requests),
            outbound: RPCWriter.Closable(wrapping: ResponseWriter(stream: id, connection: bound, gate: stream.gate)))
        let rpcContext = ServerContext(
            descriptor: descriptor, remotePeer: remotePeer, localPeer: localPeer,
            cancellation: stream.cancellation)
        let accepted = ConnectionHub.AcceptedRPC(stream: rpc, context: rpcContext, executor: executor, requests: requests) {
            if bound.eventLoop.inEventLoop { bound.value.taskFinished() } else { bound.eventLoop.execute { bound.value.taskFinished() } }
        }
        if let task = hub.accept(accepted) {
            stream.task = task
            liveTasks += 1
            startedRPCs = true
        } else {
            abandon(stream, error: RPCError(code: .unavailable, message: "the server is shutting down"))
            streams[id] = nil
            writeReset(id, .refusedStream)
        }
    }

    /// "/package.Service/Method" as a method descriptor.
    static func method(at path: String) -> MethodDescriptor? {
        guard path.first == "/", let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return nil }
        let service = path[path.index(after: path.startIndex)..<slash]
        let method = path[path.index(after: slash)...]
        guard !service.isEmpty, !method.isEmpty else { return nil }
        return MethodDescriptor(fullyQualifiedService: String(service), method: String(method))
    }

    /// The request headers a handler sees: everything but HTTP/2's pseudo-headers; `-bin` values
    /// are base64 on the wire (gRPC allows the padding to be left out).
    static func metadata(of headers: HPACKHeaders) -> Metadata {
        var metadata = Metadata()
        for (name, value, _) in headers where !name.hasPrefix(":") {
            if name.hasSuffix("-bin") {
                let padded = value + String(repeating: "=", count: (4 - value.utf8.count % 4) % 4)
                if let bytes = Data(base64Encoded: padded) { metadata.addBinary(Array(bytes), forKey: name) }
            } else {
                metadata.addString(value, forKey: name)
            }
        }
        return metadata
    }

    /// The client ended its side: no more requests.
    private func onRemoteEnd(_ stream: Stream) {
        stream.remoteClosed = true
        if let partial = stream.partialMessage, partial.readableBytes > 0 {
            return failStream(stream, Status(code: .internalError, message: "the request ended inside a message (\(partial.readableBytes) bytes of it)"))
        }
        stream.requests.finish()
    }

    private func onReset(_ header: FrameHeader, _ payload: ByteBuffer) throws {
        guard payload.readableBytes == 4 else { throw ConnectionError(code: .frameSizeError, reason: "RST_STREAM payload is not 4 bytes") }
        guard header.streamID != 0 else { throw ConnectionError(code: .protocolError, reason: "RST_STREAM on stream 0") }
        guard header.streamID <= highestStreamID else {
            throw ConnectionError(code: .protocolError, reason: "RST_STREAM on idle stream \(header.streamID)")  // RFC 9113 §6.4
        }
        finishedWhileReceiving.remove(header.streamID)
        guard let stream = streams.removeValue(forKey: header.streamID) else { return }
        abandon(stream, error: RPCError(code: .cancelled, message: "the client cancelled the RPC"))
        try spendReset()
    }

    /// Ends a stream the client no longer reads: its handler is told through the cancellation
    /// handle and its task is cancelled, its request sequence fails and its writer stops.
    func abandon(_ stream: Stream, error: RPCError) {
        stream.requests.finish(throwing: error)
        stream.gate.close()
        stream.cancellation.cancel()
        if let task = stream.task { hub.cancel(task) }
    }

    /// Ends a stream the client broke the rules on: its handler fails with `reason`, the client
    /// gets RST_STREAM with `code`.
    func reset(_ stream: Stream, _ code: HTTP2ErrorCode, because reason: String) throws {
        streams[stream.id] = nil
        abandon(stream, error: RPCError(code: .internalError, message: reason))
        writeReset(stream.id, code)
        try spendReset()
    }

    // MARK: Data and flow control

    private func onData(_ header: FrameHeader, _ payload: ByteBuffer) throws {
        guard header.streamID != 0 else { throw ConnectionError(code: .protocolError, reason: "DATA on stream 0") }
        // Every DATA frame counts against the connection window, even on a closed stream (§6.9).
        receiveWindow -= header.length
        guard receiveWindow >= 0 else { throw ConnectionError(code: .flowControlError, reason: "the client overran the connection window") }
        receivedSinceUpdate += header.length
        if receivedSinceUpdate >= limits.connectionWindow / 2 {
            writeWindowUpdate(0, receivedSinceUpdate)
            receiveWindow += receivedSinceUpdate
            receivedSinceUpdate = 0
        }
        guard let stream = streams[header.streamID] else {
            guard header.streamID <= highestStreamID else {
                throw ConnectionError(code: .protocolError, reason: "DATA on stream \(header.streamID), which is not open")
            }
            guard finishedWhileReceiving.contains(header.streamID) else {
                // DATA the client sent before it saw our RST_STREAM is dropped quietly (§5.4.2).
                guard !recentlyReset.contains(header.streamID) else { return }
                try spendReset()
                return writeReset(header.streamID, .streamClosed)
            }
            if header.has(FrameFlag.endStream) { finishedWhileReceiving.remove(header.streamID) }
            return
        }
        guard !stream.remoteClosed else {
            return try reset(stream, .streamClosed, because: "the client sent DATA after ending the stream")
        }
        stream.receiveWindow -= header.length
        guard stream.receiveWindow >= 0 else {
            return try reset(stream, .flowControlError, because: "the client overran the stream's window")
        }
        if header.length > 0 { controlFramesInARow = 0 }
        let data = try Self.unpadded(payload, header)
        if header.length > data.readableBytes { creditStream(stream.id, header.length - data.readableBytes) }
        deframe(data, into: stream)
        if header.has(FrameFlag.endStream), streams[stream.id] != nil { onRemoteEnd(stream) }
    }

    /// Cuts gRPC messages (1-byte compressed flag, 4-byte big-endian length, bytes) out of the
    /// stream's DATA and queues them for the handler.
    private func deframe(_ data: ByteBuffer, into stream: Stream) {
        var data = data
        let before = stream.partialMessage?.readableBytes ?? 0
        if stream.partialMessage == nil { stream.partialMessage = data } else { stream.partialMessage!.writeBuffer(&data) }
        cutMessages(from: stream)
        bufferedRequests.bytes += (stream.partialMessage?.readableBytes ?? 0) - before
        if bufferedRequests.bytes > limits.maxBufferedRequestBytes, let partial = stream.partialMessage?.readableBytes, partial > 0 {
            failStream(
                stream,
                Status(
                    code: .resourceExhausted,
                    message:
                        "unfinished request messages on this connection hold more than \(limits.maxBufferedRequestBytes) bytes (\(partial) of them on this stream); send fewer large messages at once"
                ))
        }
    }

    private func cutMessages(from stream: Stream) {
        while let buffer = stream.partialMessage, buffer.readableBytes >= ResponseWriter.prefixLength {
            let compressed = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self)!
            let length = Int(buffer.getInteger(at: buffer.readerIndex + 1, as: UInt32.self)!)
            guard compressed == 0 else {
                return failStream(stream, Status(code: .internalError, message: "a compressed request message arrived, but no compression was agreed"))
            }
            guard length <= limits.maxMessageSize else {
                return failStream(
                    stream,
                    Status(
                        code: .resourceExhausted,
                        message: "request message of \(length) bytes exceeds the limit of \(limits.maxMessageSize) bytes"))
            }
            guard buffer.readableBytes >= ResponseWriter.prefixLength + length else {
                let missing = ResponseWriter.prefixLength + length - buffer.readableBytes
                // Room for the whole message once, instead of doubling as its frames arrive.
                if length > 64 << 10, buffer.writableBytes < missing {
                    stream.partialMessage!.reserveCapacity(minimumWritableBytes: missing)
                }
                advanceWindow(for: stream, missing: missing)
                break
            }
            stream.partialMessage!.moveReaderIndex(forwardBy: ResponseWriter.prefixLength)
            let message = stream.partialMessage!.readSlice(length: length)!
            stream.requests.push(.message(WireBytes(message)), size: ResponseWriter.prefixLength + length - stream.advanced)
            stream.advanced = 0
        }
        if stream.partialMessage?.readableBytes == 0 { stream.partialMessage = nil }
    }

    /// The window is returned when the handler takes a message; a message that does not fit in
    /// what is left of the window would never complete, so the missing part is returned now.
    private func advanceWindow(for stream: Stream, missing: Int) {
        let shortfall = missing - stream.receiveWindow
        guard shortfall > 0 else { return }
        stream.advanced += shortfall
        creditStream(stream.id, shortfall)
    }

    /// Returns `amount` request bytes, consumed by the handler, to the stream's window.
    func creditStream(_ id: UInt32, _ amount: Int) {
        guard let stream = streams[id], !stream.remoteClosed else { return }
        stream.receiveWindow += amount
        writeWindowUpdate(id, amount)
        scheduleFlush()
    }

    private func onWindowUpdate(_ header: FrameHeader, _ payload: ByteBuffer) throws {
        guard payload.readableBytes == 4 else { throw ConnectionError(code: .frameSizeError, reason: "WINDOW_UPDATE payload is not 4 bytes") }
        let increment = Int(payload.getInteger(at: payload.readerIndex, as: UInt32.self)! & 0x7fff_ffff)
        if header.streamID == 0 {
            guard increment > 0 else { throw ConnectionError(code: .protocolError, reason: "WINDOW_UPDATE of 0 on the connection") }
            sendWindow += increment
            guard sendWindow <= FrameHeader.maxWindow else { throw ConnectionError(code: .flowControlError, reason: "connection window above 2^31-1") }
            let waiting = blockedStreams
            blockedStreams.removeAll()
            for id in waiting { if let stream = streams[id] { drain(stream) } }
            return
        }
        guard header.streamID <= highestStreamID else {
            throw ConnectionError(code: .protocolError, reason: "WINDOW_UPDATE on idle stream \(header.streamID)")  // RFC 9113 §5.1
        }
        guard let stream = streams[header.streamID] else { return }
        guard increment > 0, stream.sendWindow + increment <= FrameHeader.maxWindow else {
            return try reset(stream, increment == 0 ? .protocolError : .flowControlError, because: "the client sent a bad WINDOW_UPDATE")
        }
        stream.sendWindow += increment
        drain(stream)
    }

    // MARK: Connection-wide frames

    private func onSettings(_ header: FrameHeader, _ payload: ByteBuffer) throws {
        guard header.streamID == 0 else { throw ConnectionError(code: .protocolError, reason: "SETTINGS on stream \(header.streamID)") }
        if header.has(FrameFlag.ack) {
            guard payload.readableBytes == 0 else { throw ConnectionError(code: .frameSizeError, reason: "SETTINGS ACK with a payload") }
            return
        }
        guard payload.readableBytes % 6 == 0 else { throw ConnectionError(code: .frameSizeError, reason: "SETTINGS payload is not a multiple of 6 bytes") }
        var entries = payload
        while let id = entries.readInteger(as: UInt16.self), let value = entries.readInteger(as: UInt32.self) {
            try apply(SettingID(rawValue: id), Int(value))
        }
        var ack = context.channel.allocator.buffer(capacity: FrameHeader.size)
        ack.writeFrameHeader(length: 0, type: .settings, flags: FrameFlag.ack, stream: 0)
        context.write(wrapOutboundOut(ack), promise: nil)
        needsFlush = true
        for stream in streams.values where !stream.pendingData.isEmpty { drain(stream) }
    }

    private func apply(_ setting: SettingID?, _ value: Int) throws {
        switch setting {
        case .initialWindowSize:
            guard value <= FrameHeader.maxWindow else { throw ConnectionError(code: .flowControlError, reason: "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1") }
            for stream in streams.values {
                stream.sendWindow += value - peerInitialWindow
                // RFC 9113 §6.9.2: a change that takes a window above 2^31-1 is a connection error.
                guard stream.sendWindow <= FrameHeader.maxWindow else {
                    throw ConnectionError(code: .flowControlError, reason: "SETTINGS_INITIAL_WINDOW_SIZE takes stream \(stream.id)'s window above 2^31-1")
                }
            }
            peerInitialWindow = value
        case .maxFrameSize:
            guard (16_384...16_777_215).contains(value) else {
                throw ConnectionError(code: .protocolError, reason: "SETTINGS_MAX_FRAME_SIZE \(value) out of range")
            }
            peerMaxFrameSize = value
        case .headerTableSize:
            try? encoder.setDynamicTableSize(min(value, HPACKEncoder.defaultDynamicTableSize))
        case .enablePush:
            guard value <= 1 else { throw ConnectionError(code: .protocolError, reason: "SETTINGS_ENABLE_PUSH \(value)") }
        case .maxConcurrentStreams, .maxHeaderListSize, nil:
            break  // the server opens no streams; header lists it sends are small
        }
    }

    private func onPing(_ header: FrameHeader, _ payload: ByteBuffer) throws {
        guard header.streamID == 0 else { throw ConnectionError(code: .protocolError, reason: "PING on stream \(header.streamID)") }
        guard payload.readableBytes == 8 else { throw ConnectionError(code: .frameSizeError, reason: "PING payload is not 8 bytes") }
        guard !header.has(FrameFlag.ack) else { return }
        var reply = context.channel.allocator.buffer(capacity: FrameHeader.size + 8)
        reply.writeFrameHeader(length: 8, type: .ping, flags: FrameFlag.ack, stream: 0)
        var body = payload
        reply.writeBuffer(&body)
        context.write(wrapOutboundOut(reply), promise: nil)
        needsFlush = true
    }

    private func onGoAway() {
        goingAway = true
        closeIfIdle()
    }

    /// Stops taking new streams and closes once the open ones are done (the daemon is stopping).
    private func beginGoingAway() {
        guard !goingAway else { return }
        goingAway = true
        writeGoAway(.noError, reason: "", lastStream: highestStreamID)
        flushIfNeeded()
        closeIfIdle()
    }

    /// Ends the connection with GOAWAY. It closes once the GOAWAY reached the socket, or after a
    /// second if the client does not read; nothing more is read from it meanwhile.
    func fail(_ error: ConnectionError) {
        guard !closing, let context else { return }
        closing = true
        hub.noteBrokenConnection(
            "closing a gRPC connection that broke HTTP/2",
            metadata: [
                "peer": "\(remotePeer)", "code": "\(error.code)", "reason": "\(echo(error.reason))",
            ])
        let lost = RPCError(code: .unavailable, message: "the connection broke HTTP/2: \(echo(error.reason))")
        for stream in streams.values { abandon(stream, error: lost) }
        streams.removeAll()
        inbound = nil
        writeGoAway(error.code, reason: error.reason, lastStream: highestStreamID)
        needsFlush = false
        let channel = context.channel
        let flushed = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(capacity: 0)), promise: flushed)
        let deadline = context.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
        flushed.futureResult.whenComplete { _ in
            deadline.cancel()
            channel.close(promise: nil)
        }
    }

    func closeIfIdle() {
        guard goingAway, streams.isEmpty, let context, context.channel.isActive else { return }
        flushIfNeeded()
        context.close(promise: nil)
    }

    /// The payload without its padding (RFC 9113 §6.1, §6.2).
    private static func unpadded(_ payload: ByteBuffer, _ header: FrameHeader) throws -> ByteBuffer {
        guard header.has(FrameFlag.padded) else { return payload }
        var payload = payload
        guard let padding = payload.readInteger(as: UInt8.self), Int(padding) <= payload.readableBytes else {
            throw ConnectionError(code: .protocolError, reason: "padding longer than the frame on stream \(header.streamID)")
        }
        return payload.readSlice(length: payload.readableBytes - Int(padding))!
    }
}
