import BerthPluginSDK
import Glibc

/// One archive entry, with pax and GNU long-name records already applied.
struct TarEntry {
    var path: String
    /// The ustar type flag: "0" file, "1" hard link, "2" symlink, "3" char, "4" block, "5" dir, "6" fifo.
    var type: UInt8
    var mode: UInt32
    var uid: UInt32
    var gid: UInt32
    var size: Int64
    var mtime: Int64
    var link: String
    var major: UInt32
    var minor: UInt32
    /// Extended attributes from pax `SCHILY.xattr.<name>` records (the form GNU tar, Docker and
    /// containerd write), values as raw bytes.
    var xattrs: [(name: String, value: [UInt8])] = []
}

/// Reads ustar/pax/GNU tar headers from a layer stream (POSIX.1-2001 pax format; GNU 'L' and
/// 'K' long names, which Docker-built layers use). A bad checksum or a truncated stream is
/// `.invalidArgument`.
final class TarReader {
    private let reader: LayerReader
    private var block = [UInt8](repeating: 0, count: 512)
    /// Content bytes of the current entry not read yet, and its padding.
    private var remaining: Int64 = 0
    private var padding = 0
    private var index = 0

    init(_ reader: LayerReader) {
        self.reader = reader
    }

    /// The next entry, skipping whatever of the previous one was not read; nil at the end.
    func next() throws -> TarEntry? {
        try skipRest()
        var overrides = [String: String]()
        var xattrs = [(name: String, value: [UInt8])]()
        while true {
            guard try readBlock() else { return nil }
            if block.allSatisfy({ $0 == 0 }) { return nil }
            index += 1
            try verifyChecksum()
            var entry = parseHeader()
            for (key, value) in overrides {
                switch key {
                case "path": entry.path = value
                case "linkpath": entry.link = value
                case "size": entry.size = Int64(value) ?? entry.size
                case "uid": entry.uid = UInt32(value) ?? entry.uid
                case "gid": entry.gid = UInt32(value) ?? entry.gid
                case "mtime": entry.mtime = Int64(Double(value) ?? Double(entry.mtime))
                default: break
                }
            }
            entry.xattrs = xattrs
            remaining = entry.size
            padding = Int((512 - entry.size % 512) % 512)
            switch entry.type {
            case UInt8(ascii: "x"):
                for (key, value) in Self.paxRecords(try readAll(entry.size)) {
                    if key.hasPrefix(Self.xattrPrefix) {
                        xattrs.append((String(key.dropFirst(Self.xattrPrefix.count)), Array(value)))
                    } else {
                        overrides[key] = String(decoding: value, as: UTF8.self)
                    }
                }
                guard xattrs.count <= Self.xattrLimit else {
                    throw PluginError(.invalidArgument, "entry \(index) has more than \(Self.xattrLimit) extended attributes")
                }
            case UInt8(ascii: "g"):
                _ = try readAll(entry.size)
            case UInt8(ascii: "L"):
                overrides["path"] = Self.cString(try readAll(entry.size))
            case UInt8(ascii: "K"):
                overrides["linkpath"] = Self.cString(try readAll(entry.size))
            default:
                if entry.type == 0 || entry.type == UInt8(ascii: "7") { entry.type = UInt8(ascii: "0") }
                if entry.type != UInt8(ascii: "0") {
                    remaining = 0
                    padding = 0
                }
                return entry
            }
        }
    }

    /// Streams the current entry's content to `body` in pieces, which are views into the
    /// reader's buffer, valid only during the call.
    func content(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        while remaining > 0 {
            let piece = try reader.next(upTo: Int(min(remaining, Int64(Int32.max))))
            guard !piece.isEmpty else { throw PluginError(.invalidArgument, "layer is truncated inside entry \(index)") }
            try body(piece)
            remaining -= Int64(piece.count)
        }
    }

    private func skipRest() throws {
        try content { _ in }
        while padding > 0 {
            let piece = try reader.next(upTo: padding)
            guard !piece.isEmpty else { throw PluginError(.invalidArgument, "layer is truncated after entry \(index)") }
            padding -= piece.count
        }
    }

    private func readAll(_ size: Int64) throws -> [UInt8] {
        guard size <= 1 << 20 else { throw PluginError(.invalidArgument, "tar metadata record of \(size) bytes in entry \(index) is too large") }
        var bytes = [UInt8]()
        try content { bytes += $0 }
        try skipRest()
        return bytes
    }

    private func readBlock() throws -> Bool {
        let got = try block.withUnsafeMutableBytes { try reader.read(into: $0) }
        if got == 0 { return false }
        guard got == 512 else { throw PluginError(.invalidArgument, "layer is truncated: a header block has \(got) bytes") }
        return true
    }

    private func verifyChecksum() throws {
        var sum = 0
        for (offset, byte) in block.enumerated() { sum += (148..<156).contains(offset) ? 0x20 : Int(byte) }
        guard Self.number(block[148..<156]) == Int64(sum) else {
            throw PluginError(.invalidArgument, "layer is not a tar archive: bad header checksum at entry \(index)")
        }
    }

    private func parseHeader() -> TarEntry {
        var path = Self.cString(Array(block[0..<100]))
        let prefix = Self.cString(Array(block[345..<500]))
        if block[257..<262].elementsEqual("ustar".utf8), !prefix.isEmpty { path = prefix + "/" + path }
        return TarEntry(
            path: path, type: block[156], mode: UInt32(Self.number(block[100..<108]) & 0o7777),
            uid: UInt32(truncatingIfNeeded: Self.number(block[108..<116])), gid: UInt32(truncatingIfNeeded: Self.number(block[116..<124])),
            size: Self.number(block[124..<136]), mtime: Self.number(block[136..<148]),
            link: Self.cString(Array(block[157..<257])),
            major: UInt32(truncatingIfNeeded: Self.number(block[329..<337])), minor: UInt32(truncatingIfNeeded: Self.number(block[337..<345])))
    }

    /// An octal field, or a base-256 one when its first byte has the high bit (GNU).
    private static func number(_ field: ArraySlice<UInt8>) -> Int64 {
        if let first = field.first, first & 0x80 != 0 {
            return field.dropFirst().reduce(Int64(first & 0x7F)) { ($0 << 8) | Int64($1) }
        }
        var value: Int64 = 0
        for byte in field where byte >= 0x30 && byte <= 0x37 { value = value * 8 + Int64(byte - 0x30) }
        return value
    }

    private static func cString(_ bytes: [UInt8]) -> String {
        String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// The pax key prefix of an extended attribute (its name follows).
    static let xattrPrefix = "SCHILY.xattr."
    /// Extended attributes per entry at most; Linux keeps a few per file in practice, and the
    /// records of one entry are already bounded by `readAll`'s 1 MiB.
    static let xattrLimit = 1024

    /// "<length> <key>=<value>\n" records; values stay bytes (an xattr value may be binary).
    private static func paxRecords(_ bytes: [UInt8]) -> [(String, ArraySlice<UInt8>)] {
        var records = [(String, ArraySlice<UInt8>)]()
        var rest = bytes[...]
        while let space = rest.firstIndex(of: 0x20), let length = Int(String(decoding: rest[rest.startIndex..<space], as: UTF8.self)),
            length > 0, rest.count >= length
        {
            let record = rest[(space + 1)..<(rest.startIndex + length - 1)]
            if let equals = record.firstIndex(of: UInt8(ascii: "=")) {
                records.append((String(decoding: record[..<equals], as: UTF8.self), record[(equals + 1)...]))
            }
            rest = rest[(rest.startIndex + length)...]
        }
        return records
    }
}
