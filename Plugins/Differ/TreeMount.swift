import BerthPluginSDK
import BerthProto
import FoundationEssentials
import Glibc

/// A tree mounted in a private folder for as long as a comparison or an unpacking needs it.
///
/// Mount lists come from a snapshotter's Mounts or View: one bind mount, or one overlay mount.
/// For comparing, both are mounted read-only whatever their options say, and an overlay's upper
/// directory becomes its top lower directory, so that no upper or work directory is mounted a
/// second time (the kernel refuses an upper directory in use by another overlay mount). For
/// unpacking (`writable`), the mount is made as given.
final class TreeMount {
    let path: String
    private var mounted = false

    /// Mounts `mounts` at a new folder under `parent`; an empty list is an empty folder.
    init(_ mounts: [Containerd_Types_Mount], under parent: String, writable: Bool = false) throws {
        path = parent + "/tree-\(UUID().uuidString.prefix(12))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        guard let mount = mounts.first else { return }
        guard mounts.count == 1 else {
            throw PluginError(.invalidArgument, "cannot compare a tree of \(mounts.count) mounts; one bind or overlay mount is supported")
        }
        do {
            if writable { try attachWritable(mount) } else { try attach(mount) }
        } catch {
            rmdir(path)
            throw error
        }
    }

    /// Unmounts (lazily, if something still holds it) and removes the folder.
    func release() {
        if mounted { umount2(path, Int32(MNT_DETACH)) }
        rmdir(path)
    }

    private func attach(_ mount: Containerd_Types_Mount) throws {
        switch mount.type {
        case "bind", "rbind":
            try bind(mount.source)
        case "overlay":
            let layers = try Self.layers(mount.options)
            // overlayfs needs two lower directories to mount without an upper one.
            if layers.count == 1 { return try bind(layers[0]) }
            let (options, descriptors) = try Self.compacted(["lowerdir=" + layers.joined(separator: ":")])
            defer { descriptors.forEach { close($0) } }
            let data = options.joined(separator: ",")
            try check(Glibc.mount("overlay", path, "overlay", UInt(MS_RDONLY), data), "mounting overlay (\(data.prefix(200)))")
            mounted = true
        default:
            throw PluginError(.invalidArgument, "cannot mount type \"\(mount.type)\"; bind and overlay are supported")
        }
    }

    private func attachWritable(_ mount: Containerd_Types_Mount) throws {
        var flags: UInt = 0
        var data = [String]()
        for option in mount.options {
            switch option {
            case "ro": flags |= UInt(MS_RDONLY)
            case "rw": break
            case "bind": flags |= UInt(MS_BIND)
            case "rbind": flags |= UInt(MS_BIND | MS_REC)
            default: data.append(option)
            }
        }
        if mount.type == "bind" || mount.type == "rbind" { flags |= UInt(MS_BIND | MS_REC) }
        guard flags & UInt(MS_RDONLY) == 0 else {
            throw PluginError(.invalidArgument, "cannot unpack onto a read-only mount of \(mount.source)")
        }
        let (compacted, descriptors) = try Self.compacted(data)
        defer { descriptors.forEach { close($0) } }
        let options = compacted.joined(separator: ",")
        try check(
            Glibc.mount(mount.source, path, mount.type, flags, options.isEmpty ? nil : options),
            "mounting \(mount.type) \(mount.source) (\(options.prefix(200)))")
        mounted = true
    }

    /// mount(2) takes at most one page of options, and an overlay of ~50 layers named by full
    /// paths is longer. containerd shortens such options by chdir-ing a child process into the
    /// layers' parent; a threaded daemon cannot chdir, so here each directory is opened and
    /// named as /proc/self/fd/N, which the kernel resolves while mounting. The caller closes the
    /// returned descriptors once mount(2) has returned.
    /// O_PATH (<fcntl.h>, Linux), which Swift's Glibc module does not export.
    private static let openPath: Int32 = 0o10000000

    static func compacted(_ options: [String]) throws -> (options: [String], descriptors: [Int32]) {
        guard options.joined(separator: ",").utf8.count > 3072 else { return (options, []) }
        var descriptors = [Int32]()
        func name(_ directory: String) throws -> String {
            let fd = open(directory, Self.openPath | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else {
                descriptors.forEach { close($0) }
                throw PluginError(.invalidArgument, "overlay layer \(directory): \(String(cString: strerror(errno)))")
            }
            descriptors.append(fd)
            return "/proc/self/fd/\(fd)"
        }
        var result = [String]()
        for option in options {
            guard let equals = option.firstIndex(of: "="),
                ["lowerdir", "upperdir", "workdir"].contains(String(option[..<equals]))
            else {
                result.append(option)
                continue
            }
            let paths = option[option.index(after: equals)...].split(separator: ":").map(String.init)
            result.append(String(option[...equals]) + (try paths.map(name)).joined(separator: ":"))
        }
        return (result, descriptors)
    }

    private func bind(_ source: String) throws {
        try check(Glibc.mount(source, path, nil, UInt(MS_BIND | MS_REC), nil), "bind-mounting \(source)")
        mounted = true
        try check(Glibc.mount(nil, path, nil, UInt(MS_BIND | MS_REC | MS_REMOUNT | MS_RDONLY), nil), "making \(source) read-only")
    }

    /// An overlay's layers, top first: its upper directory, then its lower directories.
    static func layers(_ options: [String]) throws -> [String] {
        var lower = [String]()
        var upper: String?
        for option in options {
            if option.hasPrefix("lowerdir=") {
                lower = option.dropFirst("lowerdir=".count).split(separator: ":").map(String.init)
            } else if option.hasPrefix("upperdir=") {
                upper = String(option.dropFirst("upperdir=".count))
            }
        }
        let layers = (upper.map { [$0] } ?? []) + lower
        guard !layers.isEmpty else { throw PluginError(.invalidArgument, "overlay mount without lowerdir or upperdir") }
        return layers
    }

    private func check(_ result: Int32, _ what: String) throws {
        guard result == 0 else {
            let code = errno
            throw PluginError(.invalidArgument, "\(what): \(String(cString: strerror(code)))")
        }
    }
}
