import BerthPluginKit
import Foundation
import Kernel
import Storage
import Testing

/// A kernel running one snapshotter plugin from a shared object, on a private temporary root,
/// with helpers to mount what the snapshotter returns exactly as a client on this host would.
final class SnapshotterHarness: Sendable {
    let snapshots: SnapshotService
    let snapshotter: String
    let directory: String
    /// The driver plugin itself, to act on layers behind the service's back.
    let driver: any PluginInstance

    init(snapshots: SnapshotService, snapshotter: String, directory: String, driver: any PluginInstance) {
        self.snapshots = snapshots
        self.snapshotter = snapshotter
        self.directory = directory
        self.driver = driver
    }

    /// Loads `plugin` (a shared object) as snapshotter `id`, runs `body`, then stops everything.
    static func with(
        plugin: String, id: String,
        _ body: @Sendable (SnapshotterHarness) async throws -> Void
    ) async throws {
        try await KernelHarness.run(
            plugin: plugin, name: PluginName(type: .snapshotter, id: id), schemas: [.snapshots, .leases],
            label: "snapkit"
        ) { directory, metadata, plugins, events in
            let driver = try #require(plugins.instance(of: .snapshotter, id: id))
            try await body(
                SnapshotterHarness(
                    snapshots: SnapshotService(metadata: metadata, plugins: plugins, events: events),
                    snapshotter: id, directory: directory, driver: driver))
        }
    }

    /// A fresh empty directory to mount on.
    func mountpoint() throws -> String {
        let path = directory + "/mnt-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        return path
    }

    /// Mounts `mounts` on `target`, runs `body`, unmounts.
    func withMounted<T>(_ mounts: [SnapshotService.Mount], _ body: (String) throws -> T) throws -> T {
        try MountTool.withMounted(mounts, under: directory, body)
    }
}
