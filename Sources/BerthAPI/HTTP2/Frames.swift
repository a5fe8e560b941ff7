import NIOCore

// The HTTP/2 wire format as RFC 9113 defines it: only what a gRPC server on a unix socket needs.
// Every frame starts with a 9-byte header (§4.1): 24-bit payload length, type, flags, and a
// 31-bit stream identifier whose top bit is reserved.

/// Frame types (RFC 9113 §6). Unknown types are ignored, as §4.1 requires.
enum FrameType: UInt8 {
    case data = 0x0
    case headers = 0x1
    case priority = 0x2
    case rstStream = 0x3
    case settings = 0x4
    case pushPromise = 0x5
    case ping = 0x6
    case goAway = 0x7
    case windowUpdate = 0x8
    case continuation = 0x9
}

/// Frame flag bits; their meaning depends on the frame type.
enum FrameFlag {
    static let endStream: UInt8 = 0x1
    static let ack: UInt8 = 0x1
    static let endHeaders: UInt8 = 0x4
    static let padded: UInt8 = 0x8
    static let priority: UInt8 = 0x20
}

/// Error codes carried by RST_STREAM and GOAWAY (RFC 9113 §7).
enum HTTP2ErrorCode: UInt32 {
    case noError = 0x0
    case protocolError = 0x1
    case internalError = 0x2
    case flowControlError = 0x3
    case streamClosed = 0x5
    case frameSizeError = 0x6
    case refusedStream = 0x7
    case cancel = 0x8
    case compressionError = 0x9
    case enhanceYourCalm = 0xb
}

/// SETTINGS parameters (RFC 9113 §6.5.2).
enum SettingID: UInt16 {
    case headerTableSize = 0x1
    case enablePush = 0x2
    case maxConcurrentStreams = 0x3
    case initialWindowSize = 0x4
    case maxFrameSize = 0x5
    case maxHeaderListSize = 0x6
}

/// A failure that ends the whole connection with GOAWAY (RFC 9113 §5.4.1).
struct ConnectionError: Error {
    let code: HTTP2ErrorCode
    let reason: String
}

/// A decoded frame header.
struct FrameHeader {
    static let size = 9
    /// The client connection preface (RFC 9113 §3.4) that precedes its first frame.
    static let clientPreface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    /// The largest flow-control window RFC 9113 §6.9.1 allows.
    static let maxWindow = Int(Int32.max)

    var length: Int
    var rawType: UInt8
    var flags: UInt8
    var streamID: UInt32

    var type: FrameType? { FrameType(rawValue: rawType) }

    func has(_ flag: UInt8) -> Bool { flags & flag != 0 }
}

extension ByteBuffer {
    /// Reads a frame header if at least nine bytes are readable; the reader index moves only then.
    mutating func readFrameHeader() -> FrameHeader? {
        guard let length = peekFrameLength(),
            let type = getInteger(at: readerIndex + 3, as: UInt8.self),
            let flags = getInteger(at: readerIndex + 4, as: UInt8.self),
            let stream = getInteger(at: readerIndex + 5, as: UInt32.self)
        else { return nil }
        moveReaderIndex(forwardBy: FrameHeader.size)
        return FrameHeader(length: length, rawType: type, flags: flags, streamID: stream & 0x7fff_ffff)
    }

    /// Peeks at the payload length of the frame header at the reader index.
    func peekFrameLength() -> Int? {
        guard readableBytes >= FrameHeader.size,
            let high = getInteger(at: readerIndex, as: UInt8.self),
            let low = getInteger(at: readerIndex + 1, as: UInt16.self)
        else { return nil }
        return Int(high) << 16 | Int(low)
    }

    mutating func writeFrameHeader(length: Int, type: FrameType, flags: UInt8 = 0, stream: UInt32) {
        writeInteger(UInt8(truncatingIfNeeded: length >> 16))
        writeInteger(UInt16(truncatingIfNeeded: length))
        writeInteger(type.rawValue)
        writeInteger(flags)
        writeInteger(stream & 0x7fff_ffff)
    }
}
