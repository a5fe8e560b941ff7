import BerthPluginSDK
import FoundationEssentials
import Glibc

/// Compares two mounted trees and writes what changed from `lower` to `upper` as layer
/// entries, in path order: added and changed entries as they are in `upper`, removed ones as
/// OCI whiteouts (`.wh.<name>`, image-spec layer.md), and the parent directories of every
/// entry (as containerd's walking differ writes them). An entry is unchanged when its type,
/// permissions, owner, size, modification time, link target and device number are equal.
struct TreeDiff {
    let lower: String
    let upper: String
    let writer: LayerWriter
    /// Directories already written, so that each parent is written once.
    private var written = Set<String>()

    init(lower: String, upper: String, writer: LayerWriter) {
        self.lower = lower
        self.upper = upper
        self.writer = writer
    }

    mutating func run() throws {
        try compare(directory: "")
    }

    /// Compares the children of `directory` (relative, "" for the root, else ending in "/").
    private mutating func compare(directory: String) throws {
        let upperNames = Set(try Self.names(upper + "/" + directory))
        let lowerNames = Set((try? Self.names(lower + "/" + directory)) ?? [])
        for name in upperNames.union(lowerNames).sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            let path = directory + name
            guard upperNames.contains(name) else {
                try whiteout(directory: directory, name: name)
                continue
            }
            let now = try Self.status(upper + "/" + path)
            let before = lowerNames.contains(name) ? try? Self.status(lower + "/" + path) : nil
            let isDirectory = now.st_mode & S_IFMT == S_IFDIR
            if before == nil || !Self.same(now, before!, upper + "/" + path, lower + "/" + path) {
                try emit(path, now)
            }
            if isDirectory {
                if let before, before.st_mode & S_IFMT == S_IFDIR {
                    try compare(directory: path + "/")
                } else {
                    try addAll(directory: path + "/")
                }
            }
        }
    }

    /// Writes everything below a directory that is new in `upper`.
    private mutating func addAll(directory: String) throws {
        for name in try Self.names(upper + "/" + directory).sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            let path = directory + name
            let now = try Self.status(upper + "/" + path)
            try emit(path, now)
            if now.st_mode & S_IFMT == S_IFDIR { try addAll(directory: path + "/") }
        }
    }

    private mutating func whiteout(directory: String, name: String) throws {
        try writeParents(of: directory + name)
        let parent = try Self.status(upper + "/" + directory)
        try writer.header(
            path: directory + ".wh." + name, typeflag: UInt8(ascii: "0"), mode: 0, uid: 0, gid: 0, size: 0,
            mtime: Int64(parent.st_mtim.tv_sec))
    }

    private mutating func emit(_ path: String, _ status: stat) throws {
        try writeParents(of: path)
        let full = upper + "/" + path
        let mode = UInt32(status.st_mode) & 0o7777
        let mtime = Int64(status.st_mtim.tv_sec)
        switch status.st_mode & S_IFMT {
        case S_IFDIR:
            guard !written.contains(path) else { return }
            written.insert(path)
            try writer.header(path: path + "/", typeflag: UInt8(ascii: "5"), mode: mode, uid: status.st_uid, gid: status.st_gid, size: 0, mtime: mtime)
        case S_IFREG:
            try writer.header(
                path: path, typeflag: UInt8(ascii: "0"), mode: mode, uid: status.st_uid, gid: status.st_gid,
                size: Int64(status.st_size), mtime: mtime)
            try copyContent(full, size: Int64(status.st_size))
        case S_IFLNK:
            try writer.header(
                path: path, typeflag: UInt8(ascii: "2"), mode: mode, uid: status.st_uid, gid: status.st_gid, size: 0,
                mtime: mtime, linkTarget: try Self.linkTarget(full))
        case S_IFCHR, S_IFBLK:
            try writer.header(
                path: path, typeflag: UInt8(ascii: status.st_mode & S_IFMT == S_IFCHR ? "3" : "4"), mode: mode,
                uid: status.st_uid, gid: status.st_gid, size: 0, mtime: mtime,
                deviceMajor: Self.major(status.st_rdev), deviceMinor: Self.minor(status.st_rdev))
        case S_IFIFO:
            try writer.header(path: path, typeflag: UInt8(ascii: "6"), mode: mode, uid: status.st_uid, gid: status.st_gid, size: 0, mtime: mtime)
        default:
            // Sockets cannot be stored in a layer; containerd skips them too.
            return
        }
    }

    /// Writes the directories above `path` that are not written yet, outermost first.
    private mutating func writeParents(of path: String) throws {
        var prefix = ""
        for component in path.split(separator: "/").dropLast() {
            prefix += prefix.isEmpty ? String(component) : "/" + component
            if !written.contains(prefix) { try emit(prefix, try Self.status(upper + "/" + prefix)) }
        }
    }

    private func copyContent(_ path: String, size: Int64) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw PluginError(.internal, "reading \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var remaining = size
        while remaining > 0 {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, Int(min(Int64($0.count), remaining))) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw PluginError(.internal, "reading \(path): file shrank while it was being written to the layer") }
            try buffer.withUnsafeBytes { try writer.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0[..<n])) }
            remaining -= Int64(n)
        }
        try writer.padEntry(size: size)
    }

    // MARK: - File facts

    static func names(_ directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory)
    }

    static func status(_ path: String) throws -> stat {
        var status = stat()
        guard lstat(path, &status) == 0 else { throw PluginError(.internal, "stat \(path): \(String(cString: strerror(errno)))") }
        return status
    }

    static func linkTarget(_ path: String) throws -> String {
        guard let target = symlinkTarget(AT_FDCWD, path) else {
            throw PluginError(.internal, "readlink \(path): \(String(cString: strerror(errno)))")
        }
        return target
    }

    /// The target of symlink `name` relative to directory `directory` (AT_FDCWD for a path),
    /// or nil when it is not a symlink.
    static func symlinkTarget(_ directory: Int32, _ name: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlinkat(directory, name, &buffer, buffer.count - 1)
        guard n >= 0 else { return nil }
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// glibc's encoding of device numbers (<sys/sysmacros.h>), which Swift does not import.
    static func major(_ device: dev_t) -> UInt32 { UInt32(((device >> 8) & 0xfff) | ((device >> 32) & ~0xfff)) }
    static func minor(_ device: dev_t) -> UInt32 { UInt32((device & 0xff) | ((device >> 12) & ~0xff)) }

    static func same(_ a: stat, _ b: stat, _ pathA: String, _ pathB: String) -> Bool {
        guard a.st_mode == b.st_mode, a.st_uid == b.st_uid, a.st_gid == b.st_gid else { return false }
        switch a.st_mode & S_IFMT {
        case S_IFDIR:
            return a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec
        case S_IFLNK:
            return (try? linkTarget(pathA)) == (try? linkTarget(pathB))
        case S_IFCHR, S_IFBLK:
            return a.st_rdev == b.st_rdev
        default:
            return a.st_size == b.st_size && a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec
        }
    }
}
