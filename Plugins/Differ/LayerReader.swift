import BerthPluginSDK
import CZlib
import Crypto
import Glibc

/// Reads a layer file as its uncompressed tar stream (inflating gzip when asked) and hashes
/// what it returns, which gives the layer's diff id.
final class LayerReader {
    private let fd: Int32
    private let gzip: Bool
    private var stream = z_stream()
    private let input: UnsafeMutablePointer<UInt8>
    private static let inputSize = 1 << 18
    private var inputEnded = false
    private var streamEnded = false
    private var hasher = SHA256()
    private(set) var total: Int64 = 0

    init(path: String, gzip: Bool) throws {
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw PluginError(.internal, "opening layer \(path): \(String(cString: strerror(errno)))") }
        self.gzip = gzip
        input = .allocate(capacity: Self.inputSize)
        if gzip {
            // windowBits 15 + 32: accept a gzip or zlib header (zlib.h, inflateInit2).
            let result = inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
            guard result == Z_OK else {
                close(fd)
                input.deallocate()
                throw PluginError(.internal, "zlib inflateInit2 failed: \(result)")
            }
        }
    }

    deinit {
        if gzip { inflateEnd(&stream) }
        input.deallocate()
        close(fd)
    }

    /// Fills `buffer` completely, or returns fewer bytes only at the end of the stream.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var got = 0
        while got < buffer.count {
            let n = gzip ? try inflateSome(into: buffer, at: got) : try readFile(into: buffer, at: got)
            if n == 0 { break }
            got += n
        }
        hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[..<got]))
        total += Int64(got)
        return got
    }

    var digest: String { LayerDigest.string(hasher.finalize()) }

    private func readFile(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0, errno == EINTR { continue }
            guard n >= 0 else { throw PluginError(.internal, "reading layer: \(String(cString: strerror(errno)))") }
            return n
        }
    }

    /// Inflates at least one byte into `buffer` at `offset`, or returns 0 at the stream's end.
    private func inflateSome(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws -> Int {
        while !streamEnded {
            let produced = try inflateStep(into: buffer, at: offset)
            if produced > 0 { return produced }
        }
        return 0
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
