import BerthPluginSDK
import CZlib
import Crypto
import Dispatch
import FoundationEssentials
import Glibc

/// Reads a layer file as its uncompressed tar stream (inflating gzip when asked) and hashes
/// it, which gives the layer's diff id.
///
/// The stream is produced a buffer at a time (1 MiB: one read(2), or one run of inflate) by a
/// thread of its own (`LayerPump`), so that reading, inflating and hashing run beside the
/// unpacking that consumes them; buffers are handed out as views, so a small tar entry costs
/// no system call and no copy of its own.
final class LayerReader {
    private let pump: LayerPump
    /// The slot being consumed and the part of it not handed out yet.
    private var slot = -1
    private var start = 0
    private var end = 0
    private var ended = false

    /// `limit` > 0: reading fails once the uncompressed stream passes `limit` bytes.
    init(path: String, gzip: Bool, limit: Int64 = 0) throws {
        pump = try LayerPump(path: path, gzip: gzip, limit: limit)
        let pump = pump
        try startDetachedThread(name: "layer-reader") { pump.run() }
    }

    deinit {
        pump.stop()
    }

    /// The next at most `limit` bytes of the stream, valid until the next call; empty only at
    /// the end of the stream.
    func next(upTo limit: Int) throws -> UnsafeRawBufferPointer {
        while start == end {
            if ended { return UnsafeRawBufferPointer(start: nil, count: 0) }
            try advance()
        }
        let count = min(limit, end - start)
        defer { start += count }
        return UnsafeRawBufferPointer(start: pump.buffers[slot] + start, count: count)
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

    /// The diff id; valid once `next` has answered the end of the stream.
    var digest: String { pump.digest }
    /// Bytes of the uncompressed stream; valid once `next` has answered the end of the stream.
    var total: Int64 { pump.total }

    /// Gives the consumed slot back to the pump and takes the next filled one.
    private func advance() throws {
        if slot >= 0 { pump.free.signal() }
        slot = (slot + 1) % LayerPump.slots
        pump.filled.wait()
        if let failure = pump.failures[slot] {
            ended = true
            throw failure
        }
        start = 0
        end = pump.lengths[slot]
        ended = end == 0
    }
}

/// The producing side of a `LayerReader`: fills a ring of buffers, in order, on its own thread.
///
/// Hand-off: each slot belongs to one side at a time. The pump waits on `free` before filling
/// slot i (mod `slots`) and signals `filled` after writing its bytes, length or failure; the
/// reader waits on `filled` before reading slot i and signals `free` once it moves past it. A
/// semaphore orders memory like a lock, so neither side sees the other's half-written slot;
/// this is why the type is `@unchecked Sendable`. A length of 0 or a failure ends the stream.
final class LayerPump: @unchecked Sendable {
    static let slots = 4
    private static let bufferSize = 1 << 20
    private static let inputSize = 1 << 18
    let buffers: [UnsafeMutableRawPointer]
    /// Per slot: its length, or the failure that ended the stream (raw memory, not arrays,
    /// so that writing one slot never touches storage the other side is reading).
    let lengths: UnsafeMutablePointer<Int>
    let failures: UnsafeMutablePointer<(any Error)?>
    let free = DispatchSemaphore(value: slots)
    let filled = DispatchSemaphore(value: 0)
    /// Signalled when `run` returns.
    private let finished = DispatchSemaphore(value: 0)
    /// Set by `stop`; the pump checks it after each wait on `free`.
    private var stopping = false
    private let fd: Int32
    private let gzip: Bool
    private var stream = z_stream()
    private let input: UnsafeMutablePointer<UInt8>
    private var inputEnded = false
    private var streamEnded = false
    private var hasher = SHA256()
    private(set) var total: Int64 = 0
    private(set) var digest = ""
    /// 0, or the most uncompressed bytes the stream may have.
    private let limit: Int64

    init(path: String, gzip: Bool, limit: Int64) throws {
        self.limit = limit
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw PluginError(.internal, "opening layer \(path): \(String(cString: strerror(errno)))") }
        self.gzip = gzip
        input = .allocate(capacity: Self.inputSize)
        buffers = (0..<Self.slots).map { _ in .allocate(byteCount: Self.bufferSize, alignment: 64) }
        lengths = .allocate(capacity: Self.slots)
        lengths.initialize(repeating: 0, count: Self.slots)
        failures = .allocate(capacity: Self.slots)
        failures.initialize(repeating: nil, count: Self.slots)
        if gzip {
            // windowBits 15 + 32: accept a gzip or zlib header (zlib.h, inflateInit2).
            let result = inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
            // Everything is initialized here, so deinit frees it (inflateEnd of a stream that
            // failed to start is a harmless Z_STREAM_ERROR).
            guard result == Z_OK else { throw PluginError(.internal, "zlib inflateInit2 failed: \(result)") }
        }
        // The kernel may read ahead further: the file is read once, front to back.
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
    }

    deinit {
        if gzip { inflateEnd(&stream) }
        input.deallocate()
        buffers.forEach { $0.deallocate() }
        lengths.deallocate()
        failures.deinitialize(count: Self.slots)
        failures.deallocate()
        close(fd)
    }

    /// Fills slots until the stream ends, fails, or `stop` is called.
    func run() {
        defer { finished.signal() }
        var slot = 0
        while true {
            free.wait()
            if stopping { return }
            do {
                lengths[slot] = try fill(buffers[slot])
            } catch {
                failures[slot] = error
            }
            let last = lengths[slot] == 0 || failures[slot] != nil
            if lengths[slot] == 0, failures[slot] == nil { digest = LayerDigest.string(hasher.finalize()) }
            filled.signal()
            if last { return }
            slot = (slot + 1) % Self.slots
        }
    }

    /// Ends `run` wherever it is and waits for it (at once if it has returned: the semaphore
    /// keeps its signal); called once, by the reader going away.
    func stop() {
        stopping = true
        for _ in 0...Self.slots { free.signal() }
        finished.wait()
    }

    /// The stream's next bytes into `buffer`, hashed; 0 at its end.
    private func fill(_ buffer: UnsafeMutableRawPointer) throws -> Int {
        let whole = UnsafeMutableRawBufferPointer(start: buffer, count: Self.bufferSize)
        var end = 0
        if gzip {
            while end < Self.bufferSize, !streamEnded { end += try inflateStep(into: whole, at: end) }
        } else {
            end = try readFile(into: whole, at: 0)
        }
        hasher.update(bufferPointer: UnsafeRawBufferPointer(start: buffer, count: end))
        total += Int64(end)
        if limit > 0, total > limit {
            throw PluginError(.resourceExhausted, "the layer expands to more than \(limit) bytes")
        }
        return end
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
        "sha256:" + hexDigits(digest)
    }
}
