import BerthPluginSDK
import BerthProto
import FoundationEssentials
import Glibc
import SwiftProtobuf

/// A snapshot driver: layers on disk under numeric ids, nothing else. The kernel keeps keys,
/// kinds, parents, labels and times, and sends the whole parent chain with every request, so
/// this plugin has no database and nothing to reload at start.
final class SnapshotterPlugin: BerthPlugin {
    /// How layers are stored on disk.
    enum Driver: Sendable {
        /// overlayfs: each layer holds only its own changes; mounts stack the chain (Linux only).
        case overlay
        /// Full copies: each new layer starts as a copy of its parent; works on any filesystem.
        case native
    }

    private let host: PluginHost
    private let driver: Driver
    private let layers: LayerDirectory
    let methods: MethodTable

    init(host: PluginHost, driver: Driver) {
        self.host = host
        self.driver = driver
        let layers = LayerDirectory(
            root: host.rootDirectory + "/snapshots", driver: driver, removal: DeferredRemoval(trash: host.rootDirectory + "/trash"))
        self.layers = layers
        var methods = MethodTable()
        // A native layer on a parent is a copy of the parent's tree: long for a large one.
        methods.serve(BerthContracts.SnapshotDriver.create, blocking: driver == .native) { request, _ in
            try layers.create(id: request.id, parents: request.parents, readonly: request.readonly)
            return Google_Protobuf_Empty()
        }
        methods.serve(BerthContracts.SnapshotDriver.mounts) { request, _ in
            try Containerd_Services_Snapshots_V1_MountsResponse.with {
                $0.mounts = try layers.mounts(id: request.id, parents: request.parents, readonly: request.readonly)
            }
        }
        methods.serve(BerthContracts.SnapshotDriver.commit) { request, _ in
            try layers.requireExisting(request.id)
            return Google_Protobuf_Empty()
        }
        methods.serve(BerthContracts.SnapshotDriver.remove, blocking: true) { request, _ in
            try layers.remove(id: request.id)
            return Google_Protobuf_Empty()
        }
        methods.serve(BerthContracts.SnapshotDriver.usage, blocking: true) { request, _ in
            let (size, inodes) = try layers.usage(id: request.id)
            return Containerd_Services_Snapshots_V1_UsageResponse.with {
                $0.size = size
                $0.inodes = inodes
            }
        }
        methods.serve(BerthContracts.SnapshotDriver.cleanup, blocking: true) { request, _ in
            let (removed, missing) = layers.cleanup(keeping: Set(request.keep))
            return Berth_Snapshots_V1_CleanupLayersResponse.with {
                $0.removed = removed
                $0.missing = missing
            }
        }
        self.methods = methods
    }

    func start() async throws {
        if driver == .overlay, !Self.kernelHasOverlay() {
            throw PluginSkip("skip plugin: the running kernel does not list overlay in /proc/filesystems")
        }
        try FileManager.default.createDirectory(
            atPath: layers.root, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        try layers.removal.open()
        // Half-made or half-removed layers from a crash carry a prefix; they are never in use.
        layers.removeLeftovers()
    }

    /// overlayfs is usable when the kernel lists it (possibly after loading the module).
    private static func kernelHasOverlay() -> Bool {
        guard let text = try? String(contentsOfFile: "/proc/filesystems", encoding: .utf8) else { return false }
        return text.split(separator: "\n").contains { $0.hasSuffix("\toverlay") }
    }
}
