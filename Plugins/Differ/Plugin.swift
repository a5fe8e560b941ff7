// Entry point of the differ shared object: registrations only, no logic.
import BerthPluginSDK

private let module = PluginModule([
    PluginRegistration(type: "io.containerd.differ.v1", id: "walking", platforms: ["linux"]) { DifferPlugin(host: $0) }
])

/// The one symbol the daemon looks up in this file.
@_cdecl("berth_plugin_entry")
public func berthPluginEntry() -> UnsafeRawPointer? { module.descriptor }
