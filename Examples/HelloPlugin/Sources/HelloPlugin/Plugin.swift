// Entry point of the example plugin: registrations only, no logic.
import BerthPluginSDK

private let module = PluginModule([
    // Greet is also offered to clients: berthd serves it on its socket beside containerd's API.
    PluginRegistration(
        type: "io.berth.example.v1", id: "hello", requires: ["io.containerd.event.v1"],
        apiMethods: [HelloPlugin.greet]
    ) {
        HelloPlugin(host: $0)
    },
    PluginRegistration(type: "io.containerd.snapshotter.v1", id: "hello-copy", platforms: ["linux"]) {
        CopySnapshotter(host: $0)
    },
])

/// The one symbol berthd looks up in this file.
@_cdecl("berth_plugin_entry")
public func berthPluginEntry() -> UnsafeRawPointer? { module.descriptor }
