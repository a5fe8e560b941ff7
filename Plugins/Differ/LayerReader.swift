import BerthPluginSDK
import CZlib
import Crypto
import Glibc

/// Reads a layer file as its uncompressed tar stream (inflating gzip when asked) and hashes
/// it, which gives the layer's diff id.
///
/// The stream is produced a buffer at a time (1 MiB: one read(2), or one run of inflate) and
/// handed out as views into that buffer, so a small tar entry costs no system call and no
/// copy of its own; each buffer is hashed once, as it is filled.
final class LayerReader {
    private let fd: Int32
    private let gzip: Bool
    private var stream = z_stream()
    private let input: UnsafeMutablePointer<UInt8>
    private static let inputSize = 1 << 18
    private let output: UnsafeMutableRawPointer
    private static let outputSize = 1 << 20
    /// The part of `output` not handed out yet.
    private var start = 0
    private var end = 0
    private var inputEnded = false
    private var streamEnded = false
    private var hasher = SHA256()
    /// Bytes of the uncompressed stream produced so far.
    private(set) var total: Int64 = 0

    init(path: String, gzip: Bool) throws {
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw PluginError(.internal, "opening layer \(path): \(String(cString: strerror(errno)))") }
        self.gzip = gzip
        input = .allocate(capacity: Self.inputSize)
        output = .allocate(byteCount: Self.outputSize, alignment: 64)
        if gzip {
            // windowBits 15 + 32: accept a gzip or zlib header (zlib.h, inflateInit2).
            let result = inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
            guard result == Z_OK else {
                close(fd)
                input.deallocate()
                output.deallocate()
                throw PluginError(.internal, "zlib inflateInit2 failed: \(result)")
            }
        }
        // The kernel may read ahead further: the file is read once, front to back.
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
    }

    deinit {
        if gzip { inflateEnd(&stream) }
        input.deallocate()
        output.deallocate()
        close(fd)
    }

    /// The next at most `limit` bytes of the stream, valid until the next call; empty only at
    /// the end of the stream.
    func next(upTo limit: Int) throws -> UnsafeRawBufferPointer {
        if start == end {
            try refill()
            if end == 0 { return UnsafeRawBufferPointer(start: nil, count: 0) }
        }
        let count = min(limit, end - start)
        defer { start += count }
        return UnsafeRawBufferPointer(start: output + start, count: count)
    }

    /// Fills `buffer` completely, or returns fewer bytes only at the end of the stream.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var got = 0
        while got < buffer.count {
            let piece = try next(upTo: buffer.count - got)
            if piece.isEmpty { break }
            (buffer.baseAddress! + got).copyMemory(from: piece.baseAddress!, byteCount: piece.count)
            got += piece.count
        }
        return got
    }

    var digest: String { LayerDigest.string(hasher.finalize()) }

    /// Replaces the (used up) buffer with the stream's next bytes, hashed; `end` 0 at its end.
    private func refill() throws {
        start = 0
        end = 0
        let buffer = UnsafeMutableRawBufferPointer(start: output, count: Self.outputSize)
        if gzip {
            while end < Self.outputSize, !streamEnded { end += try inflateStep(into: buffer, at: end) }
        } else {
            end = try readFile(into: buffer, at: 0)
        }
        hasher.update(bufferPointer: UnsafeRawBufferPointer(start: output, count: end))
        total += Int64(end)
    }

    private func readFile(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0, errno == EINTR { continue }
            guard n >= 0 else { throw PluginError(.internal, "reading layer: \(String(cString: strerror(errno)))") }
            return n
        }
    }

    private func inflateStep(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws -> Int {
        if stream.avail_in == 0, !inputEnded {
            let n = try readFile(into: UnsafeMutableRawBufferPointer(start: input, count: Self.inputSize), at: 0)
            if n == 0 { inputEnded = true }
            stream.next_in = input
            stream.avail_in = UInt32(n)
        }
        stream.next_out = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self) + offset
        stream.avail_out = UInt32(buffer.count - offset)
        let result = CZlib.inflate(&stream, Z_NO_FLUSH)
        let produced = buffer.count - offset - Int(stream.avail_out)
        switch result {
        case Z_STREAM_END: streamEnded = true
        case Z_OK: break
        case Z_BUF_ERROR where inputEnded:
            throw PluginError(.invalidArgument, "layer is truncated: the gzip stream ends early")
        case Z_BUF_ERROR: break
        default:
            throw PluginError(.invalidArgument, "layer is not valid gzip (zlib error \(result))")
        }
        return produced
    }
}

/// "sha256:" and the lowercase hex of a SHA-256, the form of every digest in a layer's life.
enum LayerDigest {
    static func string(_ digest: SHA256Digest) -> String {
        "sha256:" + digest.map { String(format: "%02x", $0) }.joined()
    }
}
