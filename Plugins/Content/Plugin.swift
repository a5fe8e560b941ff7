// Entry point of the content shared object: registrations only, no logic.
import BerthPluginSDK

private let module = PluginModule([
    PluginRegistration(type: "io.containerd.content.v1", id: "content") { ContentPlugin(host: $0) }
])

/// The one symbol the daemon looks up in this file.
@_cdecl("berth_plugin_entry")
public func berthPluginEntry() -> UnsafeRawPointer? { module.descriptor }
