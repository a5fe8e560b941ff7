import NIOCore

/// Answers HTTP/2 PING frames itself, below the HTTP/2 handler, and hides them from it.
///
/// Why: Go gRPC clients (containerd's `ctr`) send a bandwidth-estimation PING after receiving
/// DATA whenever none is outstanding, and a client uploading (Content.Write) receives one small
/// DATA frame per 1 MiB it sends, so its PINGs never stop. swift-nio-http2 allows 200 control
/// frames per 30 s and then closes the connection with ENHANCE_YOUR_CALM; grpc-swift offers no
/// setting for that limit. PING has no HTTP/2 state: acknowledging it here (RFC 9113 §6.7, same
/// 8 payload bytes, ACK flag) is what the HTTP/2 handler would have done. Go gRPC servers
/// (containerd) ping a Swift client the same way, so clients of Go daemons need it too.
public final class PingResponder: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    /// Which end of the connection this handler sits on: only a server reads the client's
    /// connection preface before the first frame.
    public enum Side: Sendable {
        case server
        case client
    }

    /// The client connection preface (RFC 9113 §3.4) precedes the first frame.
    private static let prefaceLength = 24
    private static let headerLength = 9
    private static let pingType: UInt8 = 0x6
    private static let ackFlag: UInt8 = 0x1

    private var buffer: ByteBuffer?
    private var prefaceSeen: Bool

    public init(side: Side = .server) {
        prefaceSeen = side == .client
    }

    /// Passes bytes on as slices of what arrived (no copy), holding back only PING frames and an
    /// incomplete frame at the end.
    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if buffer == nil { buffer = incoming } else { buffer!.writeBuffer(&incoming) }
        if !prefaceSeen {
            guard buffer!.readableBytes >= Self.prefaceLength else { return }
            prefaceSeen = true
            context.fireChannelRead(wrapInboundOut(buffer!.readSlice(length: Self.prefaceLength)!))
        }
        var run = 0  // bytes of complete non-PING frames at the reader index, not yet passed on
        while let length = frameLength(after: run) {
            let frame = buffer!.getSlice(at: buffer!.readerIndex + run, length: length)!
            guard let ack = Self.ack(for: frame, allocator: context.channel.allocator) else {
                run += length
                continue
            }
            if run > 0 { context.fireChannelRead(wrapInboundOut(buffer!.readSlice(length: run)!)) }
            buffer!.moveReaderIndex(forwardBy: length)
            run = 0
            context.writeAndFlush(wrapOutboundOut(ack), promise: nil)
        }
        if run > 0 { context.fireChannelRead(wrapInboundOut(buffer!.readSlice(length: run)!)) }
        buffer = buffer!.readableBytes == 0 ? nil : buffer!.slice()
    }

    /// The size of the complete frame starting `offset` bytes past the reader index, if there is one.
    private func frameLength(after offset: Int) -> Int? {
        guard let readable = buffer, readable.readableBytes >= offset + Self.headerLength,
            let b0 = readable.getInteger(at: readable.readerIndex + offset, as: UInt8.self),
            let b12 = readable.getInteger(at: readable.readerIndex + offset + 1, as: UInt16.self)
        else { return nil }
        let length = Self.headerLength + (Int(b0) << 16 | Int(b12))
        return readable.readableBytes >= offset + length ? length : nil
    }

    /// A PING ACK for `frame` when it is a PING without the ACK flag.
    private static func ack(for frame: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer? {
        let start = frame.readerIndex
        guard frame.getInteger(at: start + 3, as: UInt8.self) == pingType,
            let flags = frame.getInteger(at: start + 4, as: UInt8.self), flags & ackFlag == 0,
            frame.readableBytes == headerLength + 8, let payload = frame.getSlice(at: start + headerLength, length: 8)
        else {
            return nil
        }
        var reply = allocator.buffer(capacity: headerLength + 8)
        reply.writeBytes([0, 0, 8, pingType, ackFlag, 0, 0, 0, 0])
        var body = payload
        reply.writeBuffer(&body)
        return reply
    }
}
