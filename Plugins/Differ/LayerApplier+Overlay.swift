import BerthPluginSDK
import CDiffer
import Glibc

/// Unpacking into an overlay's upper directory without mounting the overlay, which spares the
/// mount, overlayfs' lookups in every lower layer for each new name, and turns the removal of
/// a lower folder into one whiteout instead of one per file inside it.
///
/// What overlayfs would have written there is written directly (kernel
/// Documentation/filesystems/overlayfs.rst, "whiteouts and opaque directories"): a whiteout is
/// a character device 0/0 at the name; an opaque directory carries the xattr
/// `trusted.overlay.opaque` = "y". A parent the layer does not contain is made with the
/// owner, mode and times of the directory the lower layers show there (what a copy-up gives).
/// Whatever needs the merged view (a symlink to follow, a hard link to a lower file, a lower
/// non-directory in the way, an opaque root) throws `NeedsMergedView`.
extension LayerApplier {
    /// Makes `.wh.<name>`'s whiteout: whatever this layer put at `name` goes, a 0/0 device
    /// hides what the lower layers have there.
    func writeWhiteout(_ entry: TarEntry, _ name: String, in parent: KeptDirectory) throws {
        // As on a whole tree, where removing these names does nothing.
        guard !name.isEmpty, name != ".", name != ".." else { return }
        try create("whiteout", entry.path, name, in: parent.fd) { mknodat(parent.fd, name, S_IFCHR, 0) }
        wroteOverlayMarks = true
        try setOwner(entry, name, in: parent)
    }

    /// Marks the upper directory at `components` opaque: the lower layers' entries in it are hidden.
    func markOpaque(_ parent: KeptDirectory, _ components: ArraySlice<String>) throws {
        // overlayfs ignores the mark on its root directory; only emptying it would do.
        guard !components.isEmpty else { throw NeedsMergedView(reason: "an opaque root directory") }
        let value: [UInt8] = [UInt8(ascii: "y")]
        let result = value.withUnsafeBytes { fsetxattr(parent.fd, OverlayLowers.opaqueXattr, $0.baseAddress, 1, 0) }
        guard result == 0 else {
            throw NeedsMergedView(reason: "setting \(OverlayLowers.opaqueXattr): \(String(cString: strerror(errno)))")
        }
        opaque.insert(components.joined(separator: "/"))
        wroteOverlayMarks = true
    }

    /// The upper directory at `components`, never through a symlink; a missing one is made
    /// (when `create`) with the attributes of what the lower layers show there.
    func upperDirectory(_ components: ArraySlice<String>, _ key: String, create: Bool) throws -> Int32 {
        let fd = berth_differ_open_beneath(rootFD, key, O_RDONLY | O_DIRECTORY)
        if fd >= 0 { return fd }
        let failure = errno
        guard failure == ENOENT, create, let name = components.last else {
            throw NeedsMergedView(reason: "directory \(key): \(String(cString: strerror(failure)))")
        }
        let parent = try directory(components.dropLast(), create: true)
        // A staging target learns the lower layers only when it is adopted.
        let shown = try lowers?.directory(components) { opaque.contains($0) }
        if lowers == nil { implicitParents.insert(key) }
        let mode = shown.map { $0.st_mode & 0o7777 } ?? 0o755
        guard mkdirat(parent.fd, name, mode & 0o777) == 0 else {
            throw NeedsMergedView(reason: "mkdir \(key): \(String(cString: strerror(errno)))")
        }
        let made = openat(parent.fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        try check(made < 0 ? -1 : 0, "open", key)
        guard let shown else { return made }
        do {
            try check(fchown(made, shown.st_uid, shown.st_gid), "chown", key)
            try check(fchmod(made, mode), "chmod", key)
            var times = [shown.st_atim, shown.st_mtim]
            try check(futimens(made, &times), "set times of", key)
        } catch {
            close(made)
            throw error
        }
        return made
    }
}

/// The lower directories of an overlay, looked up as overlayfs merges them: topmost first; a
/// whiteout (0/0 device) ends the search, a directory marked opaque is the last one looked at,
/// a non-directory under a directory hides nothing and is hidden.
final class OverlayLowers {
    static let opaqueXattr = "trusted.overlay.opaque"
    /// Set by overlayfs when a directory was renamed (redirect_dir): its lower part is
    /// elsewhere, which this lookup does not follow.
    static let redirectXattr = "trusted.overlay.redirect"
    private let roots: [Int32]

    init(_ paths: [String]) throws {
        var roots = [Int32]()
        for path in paths {
            let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else {
                let failure = errno
                roots.forEach { close($0) }
                throw PluginError(.invalidArgument, "overlay lower directory \(path): \(String(cString: strerror(failure)))")
            }
            roots.append(fd)
        }
        self.roots = roots
    }

    deinit { roots.forEach { close($0) } }

    /// The attributes of the directory the lowers show at `components`, nil when they show
    /// nothing there (or `hidden` says the upper directory at a prefix, as a path in the
    /// layer, is opaque). A non-directory shown there throws `NeedsMergedView`.
    func directory(_ components: ArraySlice<String>, hidden: (String) -> Bool) throws -> stat? {
        var level = roots
        var owned = [Int32]()
        defer { owned.forEach { close($0) } }
        var prefix = [String]()
        for (index, name) in components.enumerated() {
            if hidden(prefix.joined(separator: "/")) { return nil }
            let last = index == components.count - 1
            var next = [Int32]()
            var shown: stat?
            for fd in level {
                var status = stat()
                guard fstatat(fd, name, &status, AT_SYMLINK_NOFOLLOW) == 0 else {
                    if errno == ENOENT { continue }
                    throw LayerApplier.NeedsMergedView(reason: "lower \(name): \(String(cString: strerror(errno)))")
                }
                let kind = status.st_mode & S_IFMT
                if kind == S_IFCHR, status.st_rdev == 0 { break }
                if kind != S_IFDIR {
                    // The topmost thing there is not a directory: the merged view has a file or
                    // a symlink where the layer needs a parent.
                    if last, next.isEmpty {
                        throw LayerApplier.NeedsMergedView(reason: "a lower layer has a non-directory at \(components.joined(separator: "/"))")
                    }
                    break
                }
                let child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard child >= 0 else { throw LayerApplier.NeedsMergedView(reason: "open lower \(name): \(String(cString: strerror(errno)))") }
                owned.append(child)
                if Self.has(Self.redirectXattr, child) {
                    throw LayerApplier.NeedsMergedView(reason: "a redirected lower directory at \(components.joined(separator: "/"))")
                }
                if shown == nil { shown = status }
                next.append(child)
                if Self.isOpaque(child) { break }
            }
            if next.isEmpty { return nil }
            if last { return shown }
            level = next
            prefix.append(name)
        }
        return nil
    }

    static func isOpaque(_ fd: Int32) -> Bool {
        var value: UInt8 = 0
        return fgetxattr(fd, opaqueXattr, &value, 1) == 1 && value == UInt8(ascii: "y")
    }

    private static func has(_ name: String, _ fd: Int32) -> Bool {
        fgetxattr(fd, name, nil, 0) >= 0
    }
}
