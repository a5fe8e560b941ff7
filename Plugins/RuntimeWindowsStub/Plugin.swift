// Entry point of the Windows runtime stub: registrations only, no logic.
import BerthPluginSDK

private let module = PluginModule([
    PluginRegistration(type: "io.containerd.runtime.v2", id: "windows") { RuntimeWindowsStub(host: $0) }
])

/// The one symbol the daemon looks up in this file.
@_cdecl("berth_plugin_entry")
public func berthPluginEntry() -> UnsafeRawPointer? { module.descriptor }
