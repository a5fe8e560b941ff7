import BerthPluginSDK
import CDiffer
import FoundationEssentials
import Glibc

/// Unpacks layer entries onto a mounted tree, as image-spec layer.md describes: entries replace
/// what is at their path, `.wh.<name>` removes `<name>`, `.wh..wh..opq` empties its directory.
///
/// Safety: every entry is created relative to a descriptor of its parent directory, and that
/// descriptor is reached with symlinks resolved as if the tree were "/" (openat2(2) with
/// RESOLVE_IN_ROOT, see `directory(_:create:)`), so no entry can land outside it; an entry path
/// with ".." is refused with `.invalidArgument`. Hard-link targets are resolved the same way.
///
/// Speed: tar entries come grouped by directory, so the descriptors of directories already
/// reached are kept (by their path in the layer) and the next entry in the same directory
/// costs no path resolution at all; a file is then one openat, its writes, fchown, fchmod,
/// futimens and close. Whatever removes something from the tree (a whiteout, an opaque
/// directory, an entry replacing another) drops the kept descriptors, since a kept path may
/// then lead elsewhere.
final class LayerApplier {
    let root: String
    private let rootFD: Int32
    /// Directories whose times are set at the end, after their children changed them.
    private var directoryTimes = [(path: [String], mtime: Int64)]()
    /// Descriptors of directories reached so far, by their path in the layer ("" is the root).
    private var directories = [String: Int32]()
    /// Descriptors dropped from `directories` while an entry may still use them; closed when
    /// the next entry starts.
    private var retired = [Int32]()
    /// More kept directories than this and they are all closed (the next ones are reopened).
    private static let keptLimit = 256

    init(root: String) throws {
        self.root = root
        rootFD = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0 else { throw PluginError(.internal, "open \(root): \(String(cString: strerror(errno)))") }
    }

    deinit {
        forgetDirectories()
        retired.forEach { close($0) }
        close(rootFD)
    }

    func apply(_ entry: TarEntry, from tar: TarReader) throws {
        startEntry()
        let components = try Self.components(entry.path)
        guard let name = components.last else { return }  // the root itself
        let parent = try directory(components.dropLast(), create: true)
        if name == ".wh..wh..opq" {
            forgetDirectories()
            return try empty(parent)
        }
        if name.hasPrefix(".wh.") {
            forgetDirectories()
            return try remove(String(name.dropFirst(4)), in: parent)
        }
        switch entry.type {
        case UInt8(ascii: "0"): try writeFile(entry, name, parent, tar)
        case UInt8(ascii: "5"): try makeDirectory(entry, name, parent, components)
        case UInt8(ascii: "2"):
            try create("symlink", entry.path, name, in: parent) { symlinkat(entry.link, parent, name) }
            try check(fchownat(parent, name, entry.uid, entry.gid, AT_SYMLINK_NOFOLLOW), "chown", entry.path)
            try setTime(parent, name, entry.mtime, entry.path)
        case UInt8(ascii: "1"): try link(entry, name, parent)
        case UInt8(ascii: "3"), UInt8(ascii: "4"), UInt8(ascii: "6"):
            let kind: mode_t = entry.type == UInt8(ascii: "3") ? S_IFCHR : entry.type == UInt8(ascii: "4") ? S_IFBLK : S_IFIFO
            let device = Self.device(entry.major, entry.minor)
            try create("mknod", entry.path, name, in: parent) { mknodat(parent, name, kind | mode_t(entry.mode), device) }
            try check(fchownat(parent, name, entry.uid, entry.gid, AT_SYMLINK_NOFOLLOW), "chown", entry.path)
            try check(fchmodat(parent, name, mode_t(entry.mode), 0), "chmod", entry.path)
            try setTime(parent, name, entry.mtime, entry.path)
        default:
            throw PluginError(.invalidArgument, "entry \"\(entry.path)\" has tar type \(entry.type), which layers do not use")
        }
    }

    /// Sets directory times last, deepest first.
    func finish() throws {
        for (components, mtime) in directoryTimes.reversed() {
            startEntry()
            let parent = try directory(components.dropLast(), create: false)
            try setTime(parent, components.last!, mtime, components.joined(separator: "/"))
        }
    }

    // MARK: - Entries

    private func writeFile(_ entry: TarEntry, _ name: String, _ parent: Int32, _ tar: TarReader) throws {
        let flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC
        var fd = openat(parent, name, flags, 0o600)
        if fd < 0, errno == EEXIST {
            try replace(name, in: parent)
            fd = openat(parent, name, flags, 0o600)
        }
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
        // chown before chmod: chown(2) clears set-user-ID and set-group-ID bits.
        try check(fchown(fd, entry.uid, entry.gid), "chown", entry.path)
        try check(fchmod(fd, mode_t(entry.mode)), "chmod", entry.path)
        var times = Self.times(entry.mtime)
        try check(futimens(fd, &times), "set times of", entry.path)
    }

    private func makeDirectory(_ entry: TarEntry, _ name: String, _ parent: Int32, _ components: [String]) throws {
        if mkdirat(parent, name, 0o700) != 0 {
            try check(errno == EEXIST ? 0 : -1, "mkdir", entry.path)
            // An existing directory is kept (its contents stay); anything else is replaced.
            if !Self.isDirectory(name, in: parent) {
                try replace(name, in: parent)
                try check(mkdirat(parent, name, 0o700), "mkdir", entry.path)
            }
        }
        let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        try check(fd < 0 ? -1 : 0, "open", entry.path)
        do {
            try check(fchown(fd, entry.uid, entry.gid), "chown", entry.path)
            try check(fchmod(fd, mode_t(entry.mode)), "chmod", entry.path)
        } catch {
            close(fd)
            throw error
        }
        // Its children are likely the next entries.
        keep(fd, as: components.joined(separator: "/"))
        directoryTimes.append((components, entry.mtime))
    }

    private func link(_ entry: TarEntry, _ name: String, _ parent: Int32) throws {
        let target = try Self.components(entry.link)
        guard let targetName = target.last else { throw PluginError(.invalidArgument, "hard link \"\(entry.path)\" has no target") }
        let targetParent = try directory(target.dropLast(), create: false)
        try create("link", entry.path, name, in: parent) { linkat(targetParent, targetName, parent, name, 0) }
    }

    /// Runs `make`, which creates `name` in `parent`; if something is there already, removes it
    /// and runs `make` again.
    private func create(_ what: String, _ path: String, _ name: String, in parent: Int32, _ make: () -> Int32) throws {
        var result = make()
        if result != 0, errno == EEXIST {
            try replace(name, in: parent)
            result = make()
        }
        try check(result, what, path)
    }

    /// Removes what is at `name` before another entry takes its place.
    private func replace(_ name: String, in parent: Int32) throws {
        forgetDirectories()
        try remove(name, in: parent)
    }

    // MARK: - Directories

    /// The directory at `components` below the root, kept for the entries that follow.
    ///
    /// Symlinks on the way are followed as if the root were "/": an absolute target starts
    /// again at the root and ".." never climbs above it (what containerd's continuity
    /// `RootPath` does), so a layer can write through a symlinked directory of a lower layer
    /// but never outside the tree. The kernel does the resolution (openat2 RESOLVE_IN_ROOT);
    /// a missing last directory is made (mode 0755) when `create`, its parent reached the same
    /// way. Anything else (a dangling symlink to follow and create, a file on the way, a
    /// kernel without openat2) takes `walk`, one component at a time.
    private func directory(_ components: ArraySlice<String>, create: Bool) throws -> Int32 {
        let key = components.joined(separator: "/")
        if let fd = directories[key] { return fd }
        var fd = berth_differ_open_in_root(rootFD, key, O_RDONLY | O_DIRECTORY)
        if fd < 0, errno == ENOENT, create, let name = components.last {
            let parent = try directory(components.dropLast(), create: true)
            if mkdirat(parent, name, 0o755) == 0 {
                fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
        }
        if fd < 0 { fd = try walk(Array(components), create: create) }
        keep(fd, as: key)
        return fd
    }

    /// The directory at `components`, reached from the root one component at a time with
    /// O_NOFOLLOW, symlinks followed by hand with the rules of `directory(_:create:)`.
    private func walk(_ components: [String], create: Bool) throws -> Int32 {
        var stack = [dup(rootFD)]
        try check(stack[0] < 0 ? -1 : 0, "dup", root)
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

    private func keep(_ fd: Int32, as key: String) {
        if let old = directories.updateValue(fd, forKey: key) { retired.append(old) }
    }

    /// Drops every kept directory; the descriptors close when the next entry starts.
    private func forgetDirectories() {
        retired += directories.values
        directories.removeAll(keepingCapacity: true)
    }

    /// Closes what the previous entry retired, and everything kept once there is too much.
    private func startEntry() {
        if directories.count > Self.keptLimit { forgetDirectories() }
        retired.forEach { close($0) }
        retired.removeAll(keepingCapacity: true)
    }

    // MARK: - Removing

    /// Removes `name` in `parent` and everything below it, if it exists.
    private func remove(_ name: String, in parent: Int32) throws {
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/") else { return }
        var status = stat()
        guard fstatat(parent, name, &status, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        if status.st_mode & S_IFMT == S_IFDIR {
            let child = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            try check(child < 0 ? -1 : 0, "open", name)
            defer { close(child) }
            try empty(child)
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

    // MARK: - Helpers

    private func setTime(_ parent: Int32, _ name: String, _ mtime: Int64, _ path: String) throws {
        var times = Self.times(mtime)
        try check(utimensat(parent, name, &times, AT_SYMLINK_NOFOLLOW), "set times of", path)
    }

    /// Access and modification time both `mtime` (tar keeps one time).
    private static func times(_ mtime: Int64) -> [timespec] {
        [timespec(tv_sec: Int(mtime), tv_nsec: 0), timespec(tv_sec: Int(mtime), tv_nsec: 0)]
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
