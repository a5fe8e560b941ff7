import BerthPluginSDK
import BerthProto
import FoundationEssentials
import Glibc

/// The walking differ: mounts the two trees read-only, walks them side by side and writes the
/// changes as a tar or tar+gzip layer (see TreeDiff). It keeps nothing between calls: each
/// layer file is handed to the kernel, which moves it into the content store.
final class DifferPlugin: BerthPlugin {
    private let host: PluginHost
    let methods: MethodTable
    /// Layers unpacked ahead of their Apply.
    let staging: StagingFolder
    /// Media types it writes, and whether each is gzip-compressed.
    static let mediaTypes: [String: Bool] = [
        "application/vnd.oci.image.layer.v1.tar+gzip": true,
        "application/vnd.oci.image.layer.v1.tar": false,
        "application/vnd.docker.image.rootfs.diff.tar.gzip": true,
        "application/vnd.docker.image.rootfs.diff.tar": false,
    ]

    init(host: PluginHost) {
        self.host = host
        let work = host.stateDirectory
        let staging = StagingFolder(root: host.rootDirectory)
        self.staging = staging
        var methods = MethodTable()
        // Both walk whole trees and write or read whole layers.
        methods.serve(BerthContracts.Differ.compare, blocking: true) { request, _ in
            try Self.compare(request, work: work)
        }
        methods.serve(BerthContracts.Differ.apply, blocking: true) { request, _ in
            try Self.apply(request, work: work)
        }
        // Stage unpacks a whole layer; Adopt and Discard may fix up or move whole trees.
        methods.serve(BerthContracts.Differ.stage, blocking: true) { request, _ in try staging.stage(request) }
        methods.serve(BerthContracts.Differ.adopt, blocking: true) { request, _ in try staging.adopt(request) }
        methods.serve(BerthContracts.Differ.discard, blocking: true) { request, _ in try staging.discard(request) }
        self.methods = methods
    }

    func start() async throws {
        try FileManager.default.createDirectory(
            atPath: host.stateDirectory, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        // Trees or layers left by a crash are never in use after a restart.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: host.stateDirectory)) ?? [] {
            let path = host.stateDirectory + "/" + name
            if name.hasPrefix("tree-") {
                umount2(path, Int32(MNT_DETACH))
                rmdir(path)
            }
            if name.hasPrefix("layer-") { unlink(path) }
        }
        try staging.open()
    }

    /// Whether layers of `mediaType` are gzip-compressed; `.unimplemented` for a type it cannot handle.
    static func isGzip(_ mediaType: String) throws -> Bool {
        guard let gzip = mediaTypes[mediaType] else {
            throw PluginError(.unimplemented, "media type \"\(mediaType)\" is not supported; use one of \(mediaTypes.keys.sorted().joined(separator: ", "))")
        }
        return gzip
    }

    static func compare(_ request: Berth_Diff_V1_CompareRequest, work: String) throws -> Berth_Diff_V1_CompareReply {
        let gzip = try isGzip(request.mediaType)
        let lower = try TreeMount(request.lower, under: work)
        defer { lower.release() }
        let upper = try TreeMount(request.upper, under: work)
        defer { upper.release() }
        let path = work + "/layer-\(UUID().uuidString)"
        do {
            let writer = try LayerWriter(path: path, gzip: gzip)
            var diff = TreeDiff(lower: lower.path, upper: upper.path, writer: writer)
            try diff.run()
            let digest = try writer.finish()
            return .with {
                $0.path = path
                $0.uncompressedDigest = digest
                $0.entries = Int64(writer.entries)
            }
        } catch {
            unlink(path)
            throw error
        }
    }
}
