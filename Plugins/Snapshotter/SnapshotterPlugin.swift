import BerthPluginSDK
import Foundation

/// The snapshotter plugin at its first stage: it checks that its driver can run on this host
/// and keeps its directories; the Snapshots operations are not built yet and say so.
final class SnapshotterPlugin: BerthPlugin {
    /// How layers are stored on disk.
    enum Driver: Sendable {
        /// overlayfs lower/upper layers (Linux only).
        case overlay
        /// Full copies per snapshot; works on any filesystem.
        case native
    }

    private let host: PluginHost
    private let driver: Driver
    let methods: MethodTable

    init(host: PluginHost, driver: Driver) {
        self.host = host
        self.driver = driver
        var methods = MethodTable()
        for name in ["Prepare", "View", "Mounts", "Commit", "Remove", "Stat", "Update", "List", "Usage", "Cleanup"] {
            methods.unimplemented("/containerd.services.snapshots.v1.Snapshots/\(name)",
                                  because: "snapshot operations are not built yet in Berth")
        }
        self.methods = methods
    }

    func start() async throws {
        if driver == .overlay, !Self.kernelHasOverlay() {
            throw PluginSkip("skip plugin: the running kernel does not list overlay in /proc/filesystems")
        }
        try FileManager.default.createDirectory(atPath: host.rootDirectory + "/snapshots",
                                                withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
    }

    /// overlayfs is usable when the kernel lists it (possibly after loading the module).
    private static func kernelHasOverlay() -> Bool {
        guard let text = try? String(contentsOfFile: "/proc/filesystems", encoding: .utf8) else { return false }
        return text.split(separator: "\n").contains { $0.hasSuffix("\toverlay") }
    }
}
