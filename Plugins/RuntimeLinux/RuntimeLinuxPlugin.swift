import BerthPluginSDK
import Foundation

/// The Linux runtime at its first stage: it checks the kernel features it will need and keeps
/// its bundle directory; task operations are not built yet and say so.
final class RuntimeLinuxPlugin: BerthPlugin {
    private let host: PluginHost
    let methods: MethodTable

    init(host: PluginHost) {
        self.host = host
        var methods = MethodTable()
        for name in ["Create", "Start", "Delete", "Kill", "Wait", "Get", "List", "Exec", "Pids", "State"] {
            methods.unimplemented(
                "/containerd.services.tasks.v1.Tasks/\(name)",
                because: "the Linux runtime does not run containers yet in Berth")
        }
        self.methods = methods
    }

    func start() async throws {
        guard FileManager.default.fileExists(atPath: "/proc/self/ns/pid") else {
            throw PluginSkip("skip plugin: this kernel has no PID namespaces (/proc/self/ns/pid is missing)")
        }
        try FileManager.default.createDirectory(
            atPath: host.stateDirectory + "/bundles",
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
    }
}
