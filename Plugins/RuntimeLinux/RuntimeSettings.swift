import BerthPluginSDK
import CRuntimeLinux
import FoundationEssentials
import Glibc

/// The plugin's `config` table (plugin.conf), checked at start:
///
///     [plugins."io.containerd.runtime.v2.linux".config]
///     mode = "native"          # or "oci": the keeper drives an OCI runtime on a bundle
///     oci_binary = "runc"      # mode oci: a name looked up in PATH, or a path
///     keeper = "/usr/libexec/berth-keeper"   # default: berth-keeper beside this plugin's .so
///     max_containers = 1024    # containers this instance holds at once
struct RuntimeSettings: Sendable {
    enum Mode: String, Sendable {
        case native, oci
    }

    private struct Table: Decodable {
        var mode: String?
        var oci_binary: String?
        var keeper: String?
        var max_containers: Int?
    }

    let mode: Mode
    /// Absolute path of the OCI runtime (mode oci), "" in native mode.
    let ociBinary: String
    /// Absolute path of berth-keeper.
    let keeper: String
    let maximumContainers: Int

    /// Reads and checks the config; errors name the key and the path that failed.
    init(host: PluginHost) throws {
        let table = try host.config(as: Table.self)
        guard let mode = Mode(rawValue: table.mode ?? "native") else {
            throw PluginError(.invalidArgument, "plugin config: mode \((table.mode ?? "").debugDescription) is not \"native\" or \"oci\"")
        }
        self.mode = mode
        maximumContainers = table.max_containers ?? 1024
        guard (1...100_000).contains(maximumContainers) else {
            throw PluginError(.invalidArgument, "plugin config: max_containers \(maximumContainers) is outside 1...100000")
        }
        keeper = try table.keeper ?? Self.besideThisPlugin("berth-keeper")
        guard access(keeper, X_OK) == 0 else {
            throw PluginError(.failedPrecondition, "plugin config: keeper \(keeper) is not an executable file: \(String(cString: strerror(errno)))")
        }
        if mode == .oci {
            let name = table.oci_binary ?? "runc"
            guard let path = Self.lookUp(name) else {
                throw PluginError(.failedPrecondition, "plugin config: oci_binary: exec: \(name.debugDescription): executable file not found in $PATH")
            }
            ociBinary = path
        } else {
            ociBinary = ""
        }
    }

    /// `name` in the folder of the shared object this code was loaded from (dladdr(3)).
    private static func besideThisPlugin(_ name: String) throws -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        guard berth_rt_object_path(#dsohandle, &buffer, buffer.count) == 0 else {
            throw PluginError(.internal, "plugin config: cannot find this plugin's file with dladdr: \(String(cString: strerror(errno)))")
        }
        let object = String(cString: buffer)
        return URL(fileURLWithPath: object).deletingLastPathComponent().appendingPathComponent(name).path
    }

    /// A path as given, or the first executable `name` in PATH (as exec.LookPath).
    private static func lookUp(_ name: String) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        for folder in path.split(separator: ":") where !folder.isEmpty {
            let candidate = "\(folder)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }
}
