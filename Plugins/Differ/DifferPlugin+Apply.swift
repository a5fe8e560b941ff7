import BerthPluginSDK
import BerthProto
import Glibc

/// Diff.Apply: where a layer is unpacked, chosen from the mounts it names.
///
/// - one `overlay` mount whose upper directory is empty, outside a user namespace: into the
///   upper directory itself, whiteouts written as overlayfs stores them (containerd 1.6 does
///   the same for overlay mounts; a user namespace cannot make 0/0 devices or trusted.*
///   xattrs). A layer that needs the merged view, or fails, leaves the upper directory empty
///   again; the first then goes through the mounted overlay.
/// - one writable bind mount: into its source directory, the tree being whole.
/// - anything else: mounted under the plugin's state folder, as given.
extension DifferPlugin {
    static func apply(_ request: Berth_Diff_V1_ApplyLayerRequest, work: String) throws -> Berth_Diff_V1_ApplyLayerReply {
        let gzip = try isGzip(request.mediaType)
        if let (upper, lowers) = try emptyUpperDirectory(request.mounts) {
            do {
                return try unpack(request.path, gzip: gzip, into: upper, target: .overlayUpper(lowers: lowers))
            } catch {
                try emptyDirectory(upper)
                guard error is LayerApplier.NeedsMergedView else { throw error }
            }
        }
        if let directory = writableBindSource(request.mounts) {
            return try unpack(request.path, gzip: gzip, into: directory, target: .tree)
        }
        let target = try TreeMount(request.mounts, under: work, writable: true)
        defer { target.release() }
        return try unpack(request.path, gzip: gzip, into: target.path, target: .tree)
    }

    /// Unpacks the layer file at `path` into `root`; answers the uncompressed digest and size.
    static func unpack(_ path: String, gzip: Bool, into root: String, target: LayerApplier.Target) throws -> Berth_Diff_V1_ApplyLayerReply {
        try unpackKeepingApplier(path, gzip: gzip, into: root, target: target).reply
    }

    /// `unpack`, also answering the applier for what it recorded (implicit parents, opaque folders).
    static func unpackKeepingApplier(
        _ path: String, gzip: Bool, into root: String, target: LayerApplier.Target, limit: Int64 = 0
    ) throws -> (reply: Berth_Diff_V1_ApplyLayerReply, applier: LayerApplier) {
        let reader = try LayerReader(path: path, gzip: gzip, limit: limit)
        let tar = TarReader(reader)
        let applier = try LayerApplier(root: root, target: target)
        var entries: Int64 = 0
        while let entry = try tar.next() {
            try applier.apply(entry, from: tar)
            entries += 1
        }
        try applier.finish()
        // Read to the end, so that the digest covers the whole stream (padding after the end blocks).
        var rest = [UInt8](repeating: 0, count: 1 << 16)
        while try rest.withUnsafeMutableBytes({ try reader.read(into: $0) }) > 0 {}
        let reply = Berth_Diff_V1_ApplyLayerReply.with {
            $0.uncompressedDigest = reader.digest
            $0.uncompressedSize = reader.total
            $0.entries = entries
        }
        return (reply, applier)
    }

    /// The upper directory and lower directories (topmost first) of a single writable overlay
    /// mount whose upper directory is empty, when the daemon runs outside a user namespace;
    /// nil otherwise.
    static func emptyUpperDirectory(_ mounts: [Containerd_Types_Mount]) throws -> (String, [String])? {
        guard mounts.count == 1, mounts[0].type == "overlay", !inUserNamespace else { return nil }
        var upper: String?
        var lowers = [String]()
        for option in mounts[0].options {
            if option.hasPrefix("upperdir=") {
                upper = String(option.dropFirst("upperdir=".count))
            } else if option.hasPrefix("lowerdir=") {
                lowers = option.dropFirst("lowerdir=".count).split(separator: ":").map(String.init)
            } else if option == "ro" || option == "userxattr" || option.hasPrefix("metacopy") || option.hasPrefix("redirect_dir") {
                // Read-only, or whiteouts and xattrs of another form than this unpack writes.
                return nil
            }
        }
        guard let upper, !lowers.isEmpty else { return nil }
        let fd = open(upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return try TreeRemoval.names(in: fd).isEmpty ? (upper, lowers) : nil
    }

    /// The source of a single writable bind mount, nil otherwise.
    static func writableBindSource(_ mounts: [Containerd_Types_Mount]) -> String? {
        guard mounts.count == 1, ["bind", "rbind"].contains(mounts[0].type), !mounts[0].options.contains("ro"),
            mounts[0].source.hasPrefix("/")
        else { return nil }
        return mounts[0].source
    }

    /// Removes everything in `path` (an upper directory this unpack found empty).
    static func emptyDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw PluginError(.internal, "open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try TreeRemoval.empty(fd)
    }

    /// Whether this process runs in a user namespace other than the initial one, whose
    /// uid_map maps all 2^32 ids onto themselves (user_namespaces(7)).
    static let inUserNamespace: Bool = {
        guard let map = try? String(contentsOfFile: "/proc/self/uid_map", encoding: .utf8) else { return true }
        return map.split(whereSeparator: \.isWhitespace) != ["0", "0", "4294967295"]
    }()
}
