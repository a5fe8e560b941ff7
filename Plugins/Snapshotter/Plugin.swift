// Entry point of the snapshotter shared object: registrations only, no logic.
import BerthPluginSDK

private let module = PluginModule([
    PluginRegistration(type: "io.containerd.snapshotter.v1", id: "overlayfs", platforms: ["linux"]) {
        SnapshotterPlugin(host: $0, driver: .overlay)
    },
    PluginRegistration(type: "io.containerd.snapshotter.v1", id: "native") {
        SnapshotterPlugin(host: $0, driver: .native)
    },
])

/// The one symbol the daemon looks up in this file.
@_cdecl("berth_plugin_entry")
public func berthPluginEntry() -> UnsafeRawPointer? { module.descriptor }
