import BerthPluginSDK
import BerthProto
import CDiffer
import FoundationEssentials
import Glibc

/// Layers unpacked ahead of their Apply (the Stage, Adopt and Discard methods of the differ
/// contract), each in a folder of its own under `<plugin root>/staging`, on the persistent
/// filesystem that also holds the snapshots, so that adopting one is a rename.
///
/// A staged tree is written as an overlay upper directory whose lower layers are not known yet
/// (LayerApplier's `.staging`); adopting it gives the parents it made without the layer's
/// word the attributes of the lower folders at that path, gives its root the target's owner
/// and mode, and renames it over the empty target. Anything it cannot do leaves the target
/// untouched and answers why, and the kernel applies the layer the ordinary way. Whatever a
/// stop leaves here is taken away when the plugin starts (`open`).
final class StagingFolder: Sendable {
    let root: String
    let path: String
    private let removal: DeferredRemoval

    init(root: String) {
        self.root = root
        path = root + "/staging"
        removal = DeferredRemoval(trash: root + "/trash")
    }

    /// Makes the folder and takes away every staging an earlier instance left.
    func open() throws {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try removal.open()
        if mkdir(path, 0o700) != 0, errno != EEXIST {
            throw PluginError(.internal, "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        for name in try Self.names(path) { _ = try removal.remove(path + "/" + name) }
    }

    func stage(_ request: Berth_Diff_V1_StageLayerRequest) throws -> Berth_Diff_V1_StageLayerReply {
        let gzip = try DifferPlugin.isGzip(request.mediaType)
        let tree = try folder(request.name)
        guard mkdir(tree, 0o755) == 0 else {
            throw PluginError(errno == EEXIST ? .alreadyExists : .internal, "staging \(request.name): \(String(cString: strerror(errno)))")
        }
        do {
            let (reply, applier) = try DifferPlugin.unpackKeepingApplier(
                request.path, gzip: gzip, into: tree, target: .staging, limit: request.maxUncompressedBytes)
            return .with {
                $0.uncompressedDigest = reply.uncompressedDigest
                $0.uncompressedSize = reply.uncompressedSize
                $0.entries = reply.entries
                $0.adoptable = true
                $0.implicitParents = applier.implicitParents.sorted()
                $0.opaque = applier.opaque.sorted()
                $0.overlayMarks = applier.wroteOverlayMarks
            }
        } catch let error as LayerApplier.NeedsMergedView {
            _ = try? removal.remove(tree)
            return .with { $0.reason = error.reason }
        } catch {
            _ = try? removal.remove(tree)
            throw error
        }
    }

    /// Moves the staged tree into the target; the staging is gone afterwards either way.
    func adopt(_ request: Berth_Diff_V1_AdoptLayerRequest) throws -> Berth_Diff_V1_AdoptLayerReply {
        let tree = try folder(request.name)
        guard access(tree, F_OK) == 0 else { return .with { $0.reason = "no staging \(request.name)" } }
        let reason: String?
        do {
            reason = try move(tree, request)
        } catch let error as LayerApplier.NeedsMergedView {
            reason = error.reason
        }
        if let reason {
            _ = try? removal.remove(tree)
            return .with { $0.reason = reason }
        }
        return .with { $0.adopted = true }
    }

    func discard(_ request: Berth_Diff_V1_DiscardLayerRequest) throws -> Berth_Diff_V1_DiscardLayerReply {
        let removed = try removal.remove(try folder(request.name))
        return .with { $0.removed = removed }
    }

    // MARK: -

    /// Fixes the tree up for `request`'s mounts and renames it over their directory; answers
    /// why not, or nil once moved.
    private func move(_ tree: String, _ request: Berth_Diff_V1_AdoptLayerRequest) throws -> String? {
        let target: String
        var lowers: OverlayLowers?
        if let (upper, paths) = try DifferPlugin.emptyUpperDirectory(request.mounts) {
            target = upper
            lowers = try OverlayLowers(paths)
        } else if let source = DifferPlugin.writableBindSource(request.mounts), !request.overlayMarks, try Self.isEmpty(source) {
            // A bind mount's tree is whole: it can take a layer without whiteouts as it is.
            target = source
        } else {
            return "the mounts are not one overlay with an empty upper directory, nor an empty bind mount of a layer without whiteouts"
        }
        let root = Glibc.open(tree, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard root >= 0 else { return "open \(tree): \(String(cString: strerror(errno)))" }
        defer { close(root) }
        if let lowers {
            let opaque = Set(request.opaque)
            // Shallow first: a parent's lookup below an opaque folder must see that folder.
            let parents = request.implicitParents.map { $0.split(separator: "/").map(String.init) }.sorted { $0.count < $1.count }
            for components in parents {
                if let reason = try inherit(components, from: lowers, opaque: opaque, in: root) { return reason }
            }
        }
        var status = stat()
        guard stat(target, &status) == 0 else { return "stat \(target): \(String(cString: strerror(errno)))" }
        guard fchown(root, status.st_uid, status.st_gid) == 0, fchmod(root, status.st_mode & 0o7777) == 0 else {
            return "setting the staged root's owner and mode: \(String(cString: strerror(errno)))"
        }
        // rename(2) replaces an empty directory; another filesystem is EXDEV.
        guard rename(tree, target) == 0 else { return "rename to \(target): \(String(cString: strerror(errno)))" }
        return nil
    }

    /// Gives the staged parent at `components` the owner, mode and access time of the folder
    /// the lower layers show there (its modification time is the one its children's creation
    /// left, as in an unpack into the upper directory).
    private func inherit(_ components: [String], from lowers: OverlayLowers, opaque: Set<String>, in root: Int32) throws -> String? {
        guard let shown = try lowers.directory(components[...], hidden: { opaque.contains($0) }) else { return nil }
        let path = components.joined(separator: "/")
        let fd = berth_differ_open_beneath(root, path, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { return "staged parent \(path): \(String(cString: strerror(errno)))" }
        defer { close(fd) }
        var times = [shown.st_atim, timespec(tv_sec: 0, tv_nsec: Self.omitTime)]
        guard fchown(fd, shown.st_uid, shown.st_gid) == 0, fchmod(fd, shown.st_mode & 0o7777) == 0, futimens(fd, &times) == 0 else {
            return "staged parent \(path): \(String(cString: strerror(errno)))"
        }
        return nil
    }

    /// UTIME_OMIT (utimensat(2)): leave that time as it is; a macro Swift does not import.
    private static let omitTime = (1 << 30) - 2

    /// The staging folder of `name`, which the kernel chooses: letters, digits and '-' only.
    private func folder(_ name: String) throws -> String {
        guard (1...128).contains(name.utf8.count),
            name.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || (0x30...0x39).contains($0) || (0x61...0x7a).contains($0) || (0x41...0x5a).contains($0) })
        else {
            throw PluginError(.invalidArgument, "staging name \"\(name.prefix(130))\" must be 1 to 128 letters, digits or '-'")
        }
        return path + "/" + name
    }

    private static func isEmpty(_ directory: String) throws -> Bool {
        let fd = Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return try TreeRemoval.names(in: fd).isEmpty
    }

    private static func names(_ directory: String) throws -> [String] {
        let fd = Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw PluginError(.internal, "open \(directory): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        return try TreeRemoval.names(in: fd)
    }
}
