import BerthPluginSDK
import CDiffer
import Glibc

/// Owners, modes and extended attributes of unpacked entries.
///
/// An entry created by this process already has our effective uid, the group the directory
/// gives (its own when set-group-ID, else our effective gid; chown(2), mkdir(2)) and the mode
/// it was created with less the umask (open(2)); when that is what the entry asks, fchown and
/// fchmod are skipped: for the common root-owned layer that is two system calls per file.
extension LayerApplier {
    /// The effective ids and umask of this process, read once: new entries get them.
    struct Credentials: Sendable {
        let uid: uid_t
        let gid: gid_t
        /// nil when /proc does not say (then fchmod is never skipped).
        let umask: mode_t?

        static func current() -> Credentials {
            // umask(2) can only be read by setting it, which would race with other threads;
            // proc(5) shows it as "Umask:" (Linux 4.7).
            let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
            let line = status.split(separator: "\n").first { $0.hasPrefix("Umask:") }
            let value = line.flatMap { mode_t($0.dropFirst("Umask:".count).trimmed, radix: 8) }
            return Credentials(uid: geteuid(), gid: getegid(), umask: value)
        }
    }

    static let credentials = Credentials.current()

    /// Sets the owner and mode of `fd` as `entry` says. `created` is the directory it was just
    /// created in (with its permission bits as the mode), nil for an entry that existed.
    func setOwnerAndMode(_ fd: Int32, _ entry: TarEntry, created parent: KeptDirectory?, directory: Bool) throws {
        let credentials = Self.credentials
        if parent == nil || entry.uid != credentials.uid || entry.gid != parent!.newGroup {
            // chown before chmod: chown(2) clears set-user-ID and set-group-ID bits.
            try check(fchown(fd, entry.uid, entry.gid), "chown", entry.path)
        }
        if let parent, let umask = credentials.umask, !parent.defaultACL {
            var given = mode_t(entry.mode & 0o777) & ~umask
            // mkdir(2): a directory made in a set-group-ID directory inherits the bit.
            if directory, parent.setGroupID { given |= S_ISGID }
            if given == mode_t(entry.mode) { return }
        }
        try check(fchmod(fd, mode_t(entry.mode)), "chmod", entry.path)
    }

    /// Sets the owner of `name` in `parent` (a symlink, device or fifo just created there).
    func setOwner(_ entry: TarEntry, _ name: String, in parent: KeptDirectory) throws {
        guard entry.uid != Self.credentials.uid || entry.gid != parent.newGroup else { return }
        try check(fchownat(parent.fd, name, entry.uid, entry.gid, AT_SYMLINK_NOFOLLOW), "chown", entry.path)
    }

    /// Sets the entry's extended attributes on `fd`.
    func setXattrs(_ entry: TarEntry, fd: Int32) throws {
        for (name, value) in entry.xattrs where Self.writable(name) {
            let result = value.withUnsafeBytes { fsetxattr(fd, name, $0.baseAddress, $0.count, 0) }
            try checkXattr(result, name, entry)
        }
    }

    /// Sets the entry's extended attributes on `name` in `parent` without following it (a
    /// symlink or a device: neither can be opened for this).
    func setXattrs(_ entry: TarEntry, _ name: String, in parent: Int32) throws {
        guard !entry.xattrs.isEmpty else { return }
        // lsetxattr takes a path: the parent's descriptor named through /proc, the last
        // component not followed.
        let path = "/proc/self/fd/\(parent)/\(name)"
        for (attribute, value) in entry.xattrs where Self.writable(attribute) {
            let result = value.withUnsafeBytes { lsetxattr(path, attribute, $0.baseAddress, $0.count, 0) }
            try checkXattr(result, attribute, entry)
        }
    }

    /// overlayfs keeps its own state in `trusted.overlay.*` (opaque, redirect, origin): a layer
    /// must not set it, or an unpack into an upper directory would change what the overlay
    /// shows; through a mounted overlay the kernel refuses them anyway.
    static func writable(_ name: String) -> Bool {
        !name.hasPrefix("trusted.overlay.")
    }

    /// A filesystem without xattrs (ENOTSUP), or security.* the daemon may not set (EPERM, as
    /// in a user namespace), loses the attribute, as containerd's unpack does; anything else is
    /// an error.
    private func checkXattr(_ result: Int32, _ name: String, _ entry: TarEntry) throws {
        guard result != 0 else { return }
        if errno == ENOTSUP || (errno == EPERM && name.hasPrefix("security.")) { return }
        throw PluginError(.internal, "set xattr \(name) of \(entry.path): \(String(cString: strerror(errno)))")
    }
}
