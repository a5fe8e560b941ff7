import BerthPluginSDK
import CDiffer
import FoundationEssentials
import Glibc

/// Unpacks layer entries onto a tree, as image-spec layer.md describes: entries replace what is
/// at their path, `.wh.<name>` removes `<name>`, `.wh..wh..opq` hides what the directory held.
///
/// Two targets (`Target`): a whole tree (a bind mount, or an overlay mounted for the purpose),
/// where a whiteout removes and an opaque directory is emptied; or the upper directory of an
/// overlay, unmounted, where they are written as overlayfs stores them (see
/// LayerApplier+Overlay.swift), which is what an overlay mount would have left there anyway.
///
/// Safety: every entry is created relative to a descriptor of its parent directory. On a whole
/// tree that descriptor is reached with symlinks resolved as if the tree were "/" (openat2(2)
/// with RESOLVE_IN_ROOT, see `treeDirectory`); in an upper directory no symlink is followed at
/// all (a layer that needs one, or a lower layer's view, goes through the mounted overlay
/// instead: `NeedsMergedView`). An entry path with ".." is refused with `.invalidArgument`.
///
/// Speed: tar entries come grouped by directory, so the descriptors of directories already
/// reached are kept (by their path in the layer) and the next entry in the same directory
/// costs no path resolution at all; a file is then one openat, its writes, futimens and close,
/// plus fchown and fchmod only when creation did not already give the wanted owner and mode.
/// Whatever removes something from the tree (a whiteout, an opaque directory, an entry
/// replacing another) drops the kept descriptors, since a kept path may then lead elsewhere.
final class LayerApplier {
    /// What `root` is, which decides how whiteouts, opaque directories and missing parents
    /// are written.
    enum Target {
        /// A whole tree: whiteouts remove, opaque directories are emptied.
        case tree
        /// An overlay's upper directory, empty when the unpacking starts, over `lowers`
        /// (directories, topmost first).
        case overlayUpper(lowers: [String])
        /// A staging folder, empty when the unpacking starts, written as an upper directory
        /// whose lower layers are not known yet: missing parents are made 0755 and listed in
        /// `implicitParents`, for the adoption to give them the lower layers' attributes.
        case staging
    }

    /// The layer cannot be written into the upper directory alone (a symlink to follow, a
    /// hard link to a lower file, a lower non-directory where a parent is needed...): the
    /// caller empties the upper directory and unpacks through the mounted overlay.
    struct NeedsMergedView: Error, CustomStringConvertible {
        let reason: String
        var description: String { "needs the merged view: \(reason)" }
    }

    /// A directory reached, with what creating an entry in it gives without chown or chmod.
    struct KeptDirectory {
        let fd: Int32
        /// The group a new entry gets: the directory's when it is set-group-ID, else ours.
        let newGroup: gid_t
        let setGroupID: Bool
        /// A default ACL decides the mode of new entries instead of the umask (acl(5)).
        let defaultACL: Bool
    }

    let root: String
    let rootFD: Int32
    let target: Target
    /// The lower layers, for an upper-directory target.
    let lowers: OverlayLowers?
    /// Directories whose times are set at the end, after their children changed them.
    private var directoryTimes = [(path: [String], mtime: Int64)]()
    /// Directories reached so far, by their path in the layer ("" is the root).
    private var directories = [String: KeptDirectory]()
    /// Descriptors dropped from `directories` while an entry may still use them; closed when
    /// the next entry starts.
    private var retired = [Int32]()
    /// Upper directories this layer made opaque (paths in the layer).
    var opaque = Set<String>()
    /// Parents made for a staging target that the layer does not contain (paths in the layer).
    var implicitParents = Set<String>()
    /// Whether a whiteout or an opaque mark was written (upper and staging targets).
    var wroteOverlayMarks = false
    /// More kept directories than this and they are all closed (the next ones are reopened).
    private static let keptLimit = 256

    init(root: String, target: Target = .tree) throws {
        self.root = root
        self.target = target
        rootFD = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0 else { throw PluginError(.internal, "open \(root): \(String(cString: strerror(errno)))") }
        do {
            if case .overlayUpper(let paths) = target { lowers = try OverlayLowers(paths) } else { lowers = nil }
        } catch {
            close(rootFD)
            throw error
        }
    }

    deinit {
        forgetDirectories()
        retired.forEach { close($0) }
        close(rootFD)
    }

    /// Whether whiteouts and opaque folders are written in overlayfs' form.
    var isUpper: Bool {
        if case .tree = target { return false }
        return true
    }

    func apply(_ entry: TarEntry, from tar: TarReader) throws {
        startEntry()
        let components = try Self.components(entry.path)
        guard let name = components.last else { return }  // the root itself
        let parent = try directory(components.dropLast(), create: true)
        if name == ".wh..wh..opq" {
            if isUpper { return try markOpaque(parent, components.dropLast()) }
            forgetDirectories()
            return try TreeRemoval.empty(parent.fd)
        }
        if name.hasPrefix(".wh.") {
            if isUpper { return try writeWhiteout(entry, String(name.dropFirst(4)), in: parent) }
            forgetDirectories()
            return try TreeRemoval.remove(String(name.dropFirst(4)), in: parent.fd)
        }
        switch entry.type {
        case UInt8(ascii: "0"): try writeFile(entry, name, parent, tar)
        case UInt8(ascii: "5"): try makeDirectory(entry, name, parent, components)
        case UInt8(ascii: "2"):
            try create("symlink", entry.path, name, in: parent.fd) { symlinkat(entry.link, parent.fd, name) }
            try setOwner(entry, name, in: parent)
            try setXattrs(entry, name, in: parent.fd)
            try setTime(parent.fd, name, entry.mtime, entry.path)
        case UInt8(ascii: "1"): try link(entry, name, parent)
        case UInt8(ascii: "3"), UInt8(ascii: "4"), UInt8(ascii: "6"):
            let kind: mode_t = entry.type == UInt8(ascii: "3") ? S_IFCHR : entry.type == UInt8(ascii: "4") ? S_IFBLK : S_IFIFO
            let device = Self.device(entry.major, entry.minor)
            try create("mknod", entry.path, name, in: parent.fd) { mknodat(parent.fd, name, kind | mode_t(entry.mode & 0o777), device) }
            try setOwner(entry, name, in: parent)
            try check(fchmodat(parent.fd, name, mode_t(entry.mode), 0), "chmod", entry.path)
            try setXattrs(entry, name, in: parent.fd)
            try setTime(parent.fd, name, entry.mtime, entry.path)
        default:
            throw PluginError(.invalidArgument, "entry \"\(entry.path)\" has tar type \(entry.type), which layers do not use")
        }
    }

    /// Sets directory times last, deepest first.
    func finish() throws {
        for (components, mtime) in directoryTimes.reversed() {
            startEntry()
            let parent = try directory(components.dropLast(), create: false)
            try setTime(parent.fd, components.last!, mtime, components.joined(separator: "/"))
        }
    }

    // MARK: - Entries

    private func writeFile(_ entry: TarEntry, _ name: String, _ parent: KeptDirectory, _ tar: TarReader) throws {
        let flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC
        // Created with its permission bits, so that the umask alone decides whether fchmod is needed.
        var fd = openat(parent.fd, name, flags, mode_t(entry.mode & 0o777))
        if fd < 0, errno == EEXIST {
            try replace(name, in: parent.fd)
            fd = openat(parent.fd, name, flags, mode_t(entry.mode & 0o777))
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
        try setOwnerAndMode(fd, entry, created: parent, directory: false)
        try setXattrs(entry, fd: fd)
        var times = Self.times(entry.mtime)
        try check(futimens(fd, &times), "set times of", entry.path)
    }

    private func makeDirectory(_ entry: TarEntry, _ name: String, _ parent: KeptDirectory, _ components: [String]) throws {
        var created = true
        if mkdirat(parent.fd, name, mode_t(entry.mode & 0o777)) != 0 {
            try check(errno == EEXIST ? 0 : -1, "mkdir", entry.path)
            // An existing directory is kept (its contents stay); anything else is replaced.
            if Self.isDirectory(name, in: parent.fd) {
                created = false
            } else {
                try replace(name, in: parent.fd)
                try check(mkdirat(parent.fd, name, mode_t(entry.mode & 0o777)), "mkdir", entry.path)
            }
        }
        let fd = openat(parent.fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        try check(fd < 0 ? -1 : 0, "open", entry.path)
        implicitParents.remove(components.joined(separator: "/"))
        do {
            try setOwnerAndMode(fd, entry, created: created ? parent : nil, directory: true)
            try setXattrs(entry, fd: fd)
            // Its children are likely the next entries.
            _ = try keep(fd, as: components.joined(separator: "/"))
        } catch {
            close(fd)
            throw error
        }
        directoryTimes.append((components, entry.mtime))
    }

    private func link(_ entry: TarEntry, _ name: String, _ parent: KeptDirectory) throws {
        let target = try Self.components(entry.link)
        guard let targetName = target.last else { throw PluginError(.invalidArgument, "hard link \"\(entry.path)\" has no target") }
        let targetParent = try directory(target.dropLast(), create: false)
        var result = linkat(targetParent.fd, targetName, parent.fd, name, 0)
        if result != 0, errno == EEXIST {
            try replace(name, in: parent.fd)
            result = linkat(targetParent.fd, targetName, parent.fd, name, 0)
        }
        if result != 0, errno == ENOENT, isUpper {
            // The target is in a lower layer: only the merged view has it.
            throw NeedsMergedView(reason: "hard link \(entry.path) to \(entry.link), which this layer does not hold")
        }
        try check(result, "link", entry.path)
    }

    /// Runs `make`, which creates `name` in `parent`; if something is there already, removes it
    /// and runs `make` again.
    func create(_ what: String, _ path: String, _ name: String, in parent: Int32, _ make: () -> Int32) throws {
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
        try TreeRemoval.remove(name, in: parent)
    }

    // MARK: - Directories

    /// The directory at `components` below the root, kept for the entries that follow.
    func directory(_ components: ArraySlice<String>, create: Bool) throws -> KeptDirectory {
        let key = components.joined(separator: "/")
        if let kept = directories[key] { return kept }
        let fd = isUpper ? try upperDirectory(components, key, create: create) : try treeDirectory(components, key, create: create)
        return try keep(fd, as: key)
    }

    /// On a whole tree: symlinks on the way are followed as if the root were "/": an absolute
    /// target starts again at the root and ".." never climbs above it (what containerd's
    /// continuity `RootPath` does), so a layer can write through a symlinked directory of a
    /// lower layer but never outside the tree. The kernel does the resolution (openat2
    /// RESOLVE_IN_ROOT); a missing last directory is made (mode 0755) when `create`, its parent
    /// reached the same way. Anything else (a dangling symlink to follow and create, a file on
    /// the way, a kernel without openat2) takes `walk`, one component at a time.
    private func treeDirectory(_ components: ArraySlice<String>, _ key: String, create: Bool) throws -> Int32 {
        var fd = berth_differ_open_in_root(rootFD, key, O_RDONLY | O_DIRECTORY)
        if fd < 0, errno == ENOENT, create, let name = components.last {
            let parent = try directory(components.dropLast(), create: true)
            if mkdirat(parent.fd, name, 0o755) == 0 {
                fd = openat(parent.fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
        }
        if fd < 0 { fd = try walk(Array(components), create: create) }
        return fd
    }

    /// The directory at `components`, reached from the root one component at a time with
    /// O_NOFOLLOW, symlinks followed by hand with the rules of `treeDirectory`.
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

    /// Keeps `fd` (which it now owns) as the directory at `key`, with what creating in it gives.
    private func keep(_ fd: Int32, as key: String) throws -> KeptDirectory {
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            let failure = errno
            close(fd)
            throw PluginError(.internal, "stat \(key.isEmpty ? "/" : key): \(String(cString: strerror(failure)))")
        }
        let setGroupID = status.st_mode & S_ISGID != 0
        let kept = KeptDirectory(
            fd: fd, newGroup: setGroupID ? status.st_gid : Self.credentials.gid, setGroupID: setGroupID,
            defaultACL: fgetxattr(fd, "system.posix_acl_default", nil, 0) > 0)
        if let old = directories.updateValue(kept, forKey: key) { retired.append(old.fd) }
        return kept
    }

    /// Drops every kept directory; the descriptors close when the next entry starts.
    func forgetDirectories() {
        retired += directories.values.map(\.fd)
        directories.removeAll(keepingCapacity: true)
    }

    /// Closes what the previous entry retired, and everything kept once there is too much.
    private func startEntry() {
        if directories.count > Self.keptLimit { forgetDirectories() }
        retired.forEach { close($0) }
        retired.removeAll(keepingCapacity: true)
    }

    // MARK: - Helpers

    func setTime(_ parent: Int32, _ name: String, _ mtime: Int64, _ path: String) throws {
        var times = Self.times(mtime)
        try check(utimensat(parent, name, &times, AT_SYMLINK_NOFOLLOW), "set times of", path)
    }

    /// Access and modification time both `mtime` (tar keeps one time).
    private static func times(_ mtime: Int64) -> [timespec] {
        [timespec(tv_sec: Int(mtime), tv_nsec: 0), timespec(tv_sec: Int(mtime), tv_nsec: 0)]
    }

    func check(_ result: Int32, _ what: String, _ path: String) throws {
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
