import BerthPluginSDK
import Foundation
import Glibc

/// Unpacks layer entries onto a mounted tree, as image-spec layer.md describes: entries replace
/// what is at their path, `.wh.<name>` removes `<name>`, `.wh..wh..opq` empties its directory.
///
/// Safety: every entry is created relative to a descriptor of its parent directory, reached
/// from the root one component at a time with O_NOFOLLOW, symlinks on the way resolved inside
/// the tree (see `openDirectory`), so no entry can land outside it; an entry path with ".." is
/// refused with `.invalidArgument`. Hard-link targets are resolved the same way.
struct LayerApplier {
    let root: String
    /// Directories whose times are set at the end, after their children changed them.
    private var directoryTimes = [(path: [String], mtime: Int64)]()

    init(root: String) {
        self.root = root
    }

    mutating func apply(_ entry: TarEntry, from tar: TarReader) throws {
        let components = try Self.components(entry.path)
        guard let name = components.last else { return }  // the root itself
        let parent = try openDirectory(Array(components.dropLast()), create: true)
        defer { close(parent) }
        if name == ".wh..wh..opq" { return try empty(parent) }
        if name.hasPrefix(".wh.") { return try remove(String(name.dropFirst(4)), in: parent) }
        let isDirectory = entry.type == UInt8(ascii: "5")
        if !(isDirectory && Self.isDirectory(name, in: parent)) { try remove(name, in: parent) }
        switch entry.type {
        case UInt8(ascii: "0"): try writeFile(entry, name, parent, tar)
        case UInt8(ascii: "5"):
            if !Self.isDirectory(name, in: parent) { try check(mkdirat(parent, name, 0o700), "mkdir", entry.path) }
            try check(fchownat(parent, name, entry.uid, entry.gid, AT_SYMLINK_NOFOLLOW), "chown", entry.path)
            try check(fchmodat(parent, name, mode_t(entry.mode), 0), "chmod", entry.path)
            directoryTimes.append((components, entry.mtime))
            return
        case UInt8(ascii: "2"): try check(symlinkat(entry.link, parent, name), "symlink", entry.path)
        case UInt8(ascii: "1"): try link(entry, name, parent)
        case UInt8(ascii: "3"), UInt8(ascii: "4"), UInt8(ascii: "6"):
            let kind: mode_t = entry.type == UInt8(ascii: "3") ? S_IFCHR : entry.type == UInt8(ascii: "4") ? S_IFBLK : S_IFIFO
            try check(mknodat(parent, name, kind | mode_t(entry.mode), Self.device(entry.major, entry.minor)), "mknod", entry.path)
        default:
            throw PluginError(.invalidArgument, "entry \"\(entry.path)\" has tar type \(entry.type), which layers do not use")
        }
        if entry.type != UInt8(ascii: "1") {
            try check(fchownat(parent, name, entry.uid, entry.gid, AT_SYMLINK_NOFOLLOW), "chown", entry.path)
            if entry.type != UInt8(ascii: "2") { try check(fchmodat(parent, name, mode_t(entry.mode), 0), "chmod", entry.path) }
            try setTime(parent, name, entry.mtime, entry.path)
        }
    }

    /// Sets directory times last, deepest first.
    func finish() throws {
        for (components, mtime) in directoryTimes.reversed() {
            let parent = try openDirectory(Array(components.dropLast()), create: false)
            defer { close(parent) }
            try setTime(parent, components.last!, mtime, components.joined(separator: "/"))
        }
    }

    // MARK: -

    private func writeFile(_ entry: TarEntry, _ name: String, _ parent: Int32, _ tar: TarReader) throws {
        let fd = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        try check(fd < 0 ? -1 : 0, "create", entry.path)
        defer { close(fd) }
        try tar.content { bytes in
            var done = 0
            while done < bytes.count {
                let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
                if n < 0, errno == EINTR { continue }
                try check(n < 0 ? -1 : 0, "write", entry.path)
                done += n
            }
        }
    }

    private func link(_ entry: TarEntry, _ name: String, _ parent: Int32) throws {
        let target = try Self.components(entry.link)
        guard let targetName = target.last else { throw PluginError(.invalidArgument, "hard link \"\(entry.path)\" has no target") }
        let targetParent = try openDirectory(Array(target.dropLast()), create: false)
        defer { close(targetParent) }
        try check(linkat(targetParent, targetName, parent, name, 0), "link", entry.path)
    }

    /// The directory at `components` below the root. Symlinks on the way are followed as if
    /// the root were "/": an absolute target starts again at the root and ".." never climbs
    /// above it (what containerd's continuity `RootPath` does), so a layer can write through a
    /// symlinked directory of a lower layer but never outside the tree. Each step opens one
    /// component with O_NOFOLLOW relative to the directory before it. Missing directories are
    /// made (mode 0755) when `create`.
    private func openDirectory(_ components: [String], create: Bool) throws -> Int32 {
        let rootFD = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        try check(rootFD < 0 ? -1 : 0, "open", root)
        var stack = [rootFD]
        // The directory returned leaves the stack first; what is left is closed.
        defer { stack.forEach { close($0) } }
        var pending = components[...]
        var hops = 0
        let path = components.joined(separator: "/")
        while let component = pending.popFirst() {
            if component == ".." {
                if stack.count > 1 { close(stack.removeLast()) }
                continue
            }
            var next = openat(stack.last!, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0, errno == ENOENT, create {
                _ = mkdirat(stack.last!, component, 0o755)
                next = openat(stack.last!, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            if next >= 0 {
                stack.append(next)
                continue
            }
            let failure = errno
            guard failure == ELOOP || failure == ENOTDIR, let target = TreeDiff.symlinkTarget(stack.last!, component) else {
                throw PluginError(
                    failure == ENOTDIR ? .invalidArgument : .internal,
                    "layer entry under \"\(path)\": \(component) \(failure == ENOTDIR ? "is not a directory" : String(cString: strerror(failure)))")
            }
            hops += 1
            guard hops <= 40 else { throw PluginError(.invalidArgument, "layer entry under \"\(path)\": too many symlinks") }
            if target.hasPrefix("/") { while stack.count > 1 { close(stack.removeLast()) } }
            pending = (target.split(separator: "/").map(String.init).filter { $0 != "." }) + pending
        }
        return stack.removeLast()
    }

    /// Removes `name` in `parent` and everything below it, if it exists.
    private func remove(_ name: String, in parent: Int32) throws {
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/") else { return }
        var status = stat()
        guard fstatat(parent, name, &status, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        if status.st_mode & S_IFMT == S_IFDIR {
            let child = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            try check(child < 0 ? -1 : 0, "open", name)
            try empty(child)
            close(child)
            try check(unlinkat(parent, name, AT_REMOVEDIR), "rmdir", name)
        } else {
            try check(unlinkat(parent, name, 0), "unlink", name)
        }
    }

    /// Removes everything inside the directory `fd`.
    private func empty(_ fd: Int32) throws {
        let listing = dup(fd)
        guard let directory = fdopendir(listing) else {
            close(listing)
            throw PluginError(.internal, "listing a directory failed")
        }
        var names = [String]()
        while let item = readdir(directory) {
            let name = withUnsafeBytes(of: item.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(directory)
        for name in names { try remove(name, in: fd) }
    }

    private func setTime(_ parent: Int32, _ name: String, _ mtime: Int64, _ path: String) throws {
        var times = [timespec(tv_sec: Int(mtime), tv_nsec: 0), timespec(tv_sec: Int(mtime), tv_nsec: 0)]
        try check(utimensat(parent, name, &times, AT_SYMLINK_NOFOLLOW), "set times of", path)
    }

    private func check(_ result: Int32, _ what: String, _ path: String) throws {
        guard result == 0 else {
            throw PluginError(.internal, "\(what) \(path): \(String(cString: strerror(errno)))")
        }
    }

    private static func isDirectory(_ name: String, in parent: Int32) -> Bool {
        var status = stat()
        return fstatat(parent, name, &status, AT_SYMLINK_NOFOLLOW) == 0 && status.st_mode & S_IFMT == S_IFDIR
    }

    /// Path components of an entry, without "." and empty ones; ".." is refused.
    static func components(_ path: String) throws -> [String] {
        let parts = path.split(separator: "/").map(String.init).filter { $0 != "." }
        guard !parts.contains("..") else {
            throw PluginError(.invalidArgument, "layer entry \"\(path.prefix(200))\" leaves the tree (\"..\")")
        }
        return parts
    }

    /// glibc's makedev (<sys/sysmacros.h>).
    static func device(_ major: UInt32, _ minor: UInt32) -> dev_t {
        let major = dev_t(major), minor = dev_t(minor)
        return ((major & 0xfffff000) << 32) | ((major & 0xfff) << 8) | ((minor & 0xffffff00) << 12) | (minor & 0xff)
    }
}
