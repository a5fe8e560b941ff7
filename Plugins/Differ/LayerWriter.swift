import BerthPluginSDK
import CZlib
import Crypto
import FoundationEssentials
import Glibc

/// Writes a layer: a POSIX tar stream (ustar headers, with pax records for names, link targets
/// or sizes that do not fit), optionally gzip-compressed, into a file; and hashes the
/// uncompressed stream, which is the layer's diff id.
final class LayerWriter {
    private let fd: Int32
    private var stream = z_stream()
    private let compress: Bool
    private var hasher = SHA256()
    private var pending = [UInt8]()
    private var output = [UInt8](repeating: 0, count: 1 << 18)
    private(set) var entries = 0

    init(path: String, gzip: Bool) throws {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw PluginError(.internal, "creating \(path): \(String(cString: strerror(errno)))") }
        compress = gzip
        if gzip {
            // windowBits 15 + 16 asks zlib for a gzip wrapper (zlib.h, deflateInit2).
            let result = deflateInit2_(
                &stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY,
                ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
            guard result == Z_OK else {
                close(fd)
                throw PluginError(.internal, "zlib deflateInit2 failed: \(result)")
            }
        }
    }

    deinit { close(fd) }

    /// One entry's header; `size` bytes of content must follow through `append(contentsOf:)`
    /// for regular files, then `padEntry(size:)`.
    func header(
        path: String, typeflag: UInt8, mode: UInt32, uid: UInt32, gid: UInt32, size: Int64,
        mtime: Int64, linkTarget: String = "", deviceMajor: UInt32 = 0, deviceMinor: UInt32 = 0
    ) throws {
        var pax = [(String, String)]()
        if path.utf8.count > 100 { pax.append(("path", path)) }
        if linkTarget.utf8.count > 100 { pax.append(("linkpath", linkTarget)) }
        if size > 0o77777777777 { pax.append(("size", String(size))) }
        if !pax.isEmpty {
            let records = pax.map(Self.paxRecord).joined()
            try write(
                Self.block(
                    name: "PaxHeaders/" + String(path.suffix(80)), typeflag: UInt8(ascii: "x"), mode: 0o644, uid: 0, gid: 0,
                    size: Int64(records.utf8.count), mtime: mtime, link: "", major: 0, minor: 0))
            try write(Array(records.utf8))
            try padEntry(size: Int64(records.utf8.count))
        }
        try write(
            Self.block(
                name: path, typeflag: typeflag, mode: mode, uid: uid, gid: gid, size: size, mtime: mtime,
                link: linkTarget, major: deviceMajor, minor: deviceMinor))
        entries += 1
    }

    func append(contentsOf bytes: UnsafeRawBufferPointer) throws {
        try write(Array(bytes))
    }

    /// Zero bytes up to the next 512-byte boundary after `size` bytes of content.
    func padEntry(size: Int64) throws {
        let rest = Int(size % 512)
        if rest > 0 { try write([UInt8](repeating: 0, count: 512 - rest)) }
    }

    /// Ends the archive (two zero blocks), flushes the compressor and returns the diff id.
    func finish() throws -> String {
        try write([UInt8](repeating: 0, count: 1024))
        try flush(final: true)
        if compress { deflateEnd(&stream) }
        guard fsync(fd) == 0 else { throw PluginError(.internal, "syncing layer: \(String(cString: strerror(errno)))") }
        return LayerDigest.string(hasher.finalize())
    }

    private func write(_ bytes: [UInt8]) throws {
        hasher.update(data: bytes)
        pending += bytes
        if pending.count >= 1 << 18 { try flush(final: false) }
    }

    private func flush(final: Bool) throws {
        guard compress else {
            try writeAll(pending[...])
            pending.removeAll(keepingCapacity: true)
            return
        }
        try pending.withUnsafeMutableBufferPointer { input in
            stream.next_in = input.baseAddress
            stream.avail_in = UInt32(input.count)
            repeat {
                let produced = try output.withUnsafeMutableBufferPointer { out -> Int in
                    stream.next_out = out.baseAddress
                    stream.avail_out = UInt32(out.count)
                    let result = deflate(&stream, final ? Z_FINISH : Z_NO_FLUSH)
                    guard result != Z_STREAM_ERROR else { throw PluginError(.internal, "zlib deflate failed") }
                    return out.count - Int(stream.avail_out)
                }
                try writeAll(output[..<produced])
            } while stream.avail_out == 0 || (final && stream.avail_in > 0)
        }
        pending.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ bytes: ArraySlice<UInt8>) throws {
        try bytes.withUnsafeBytes { buffer in
            var done = 0
            while done < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + done, buffer.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw PluginError(.internal, "writing layer: \(String(cString: strerror(errno)))")
                }
                done += n
            }
        }
    }

    /// A pax record: "<length> <key>=<value>\n", where the length counts itself.
    private static func paxRecord(_ entry: (String, String)) -> String {
        let body = " \(entry.0)=\(entry.1)\n"
        var length = body.utf8.count + 1
        while String(length).utf8.count + body.utf8.count != length { length = String(length).utf8.count + body.utf8.count }
        return "\(length)\(body)"
    }

    /// One 512-byte ustar header block (POSIX.1-2001 ustar format).
    private static func block(
        name: String, typeflag: UInt8, mode: UInt32, uid: UInt32, gid: UInt32, size: Int64, mtime: Int64,
        link: String, major: UInt32, minor: UInt32
    ) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: 512)
        func put(_ text: String, at offset: Int, width: Int) {
            for (index, byte) in text.utf8.prefix(width).enumerated() { block[offset + index] = byte }
        }
        func octal(_ value: Int64, at offset: Int, width: Int) {
            let digits = String(value, radix: 8)
            put(String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits, at: offset, width: width - 1)
        }
        put(name, at: 0, width: 100)
        octal(Int64(mode), at: 100, width: 8)
        octal(Int64(uid), at: 108, width: 8)
        octal(Int64(gid), at: 116, width: 8)
        octal(min(size, 0o77777777777), at: 124, width: 12)
        octal(max(0, mtime), at: 136, width: 12)
        block[156] = typeflag
        put(link, at: 157, width: 100)
        put("ustar\0", at: 257, width: 6)
        put("00", at: 263, width: 2)
        octal(Int64(major), at: 329, width: 8)
        octal(Int64(minor), at: 337, width: 8)
        // The checksum is computed with its own field read as spaces.
        for index in 148..<156 { block[index] = 0x20 }
        let sum = block.reduce(0) { $0 + Int64($1) }
        let digits = String(sum, radix: 8)
        put(String(repeating: "0", count: max(0, 6 - digits.count)) + digits, at: 148, width: 6)
        block[154] = 0
        block[155] = 0x20
        return block
    }
}
