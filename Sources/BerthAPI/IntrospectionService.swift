import BerthProto
import Filters
import FoundationEssentials
import GRPCCore
import Glibc
import Kernel
import SwiftProtobuf

/// containerd.services.introspection.v1.Introspection: the plugin records and the daemon's
/// identity. `ctr plugins ls` prints "skip" for an init_err whose message contains
/// "skip plugin", "error" for any other.
struct IntrospectionService: Containerd_Services_Introspection_V1_Introspection.SimpleServiceProtocol {
    let plugins: PluginDirectory
    let metadata: MetadataStore

    func plugins(request: Containerd_Services_Introspection_V1_PluginsRequest, context: ServerContext) async throws
        -> Containerd_Services_Introspection_V1_PluginsResponse
    {
        let filters = try FilterSet(request.filters)
        let records = plugins.records
        return .with {
            $0.plugins = records.filter { record in filters.matches { Self.field(record, $0) } }.map(Self.message)
        }
    }

    func server(request: Google_Protobuf_Empty, context: ServerContext) async throws
        -> Containerd_Services_Introspection_V1_ServerResponse
    {
        let uuid = try await metadata.serverUUID()
        return .with {
            $0.uuid = uuid
            $0.pid = UInt64(getpid())
            $0.pidns = Self.pidNamespace()
        }
    }

    func pluginInfo(request: Containerd_Services_Introspection_V1_PluginInfoRequest, context: ServerContext) async throws
        -> Containerd_Services_Introspection_V1_PluginInfoResponse
    {
        let records = plugins.records
        guard let record = records.first(where: { $0.name.type.rawValue == request.type && $0.name.id == request.id }) else {
            throw BerthError.notFound("plugin \(request.type).\(request.id) is not registered")
        }
        return .with { $0.plugin = Self.message(record) }
    }

    /// Filter fields: type, id, capabilities (any), exports.KEY.
    private static func field(_ record: PluginRecord, _ path: [String]) -> String? {
        switch path.first {
        case "type": record.name.type.rawValue
        case "id": record.name.id
        case "capabilities": record.capabilities.first
        case "exports" where path.count == 2: record.exports[path[1]]
        default: nil
        }
    }

    private static func message(_ record: PluginRecord) -> Containerd_Services_Introspection_V1_Plugin {
        .with { plugin in
            plugin.type = record.name.type.rawValue
            plugin.id = record.name.id
            plugin.requires = record.requires.map(\.rawValue)
            plugin.platforms = record.platforms.map { platform in
                .with {
                    $0.os = platform.os
                    $0.architecture = platform.architecture
                    $0.variant = platform.variant
                }
            }
            plugin.exports = record.exports
            plugin.capabilities = record.capabilities
            switch record.status {
            case .ok: break
            case .skip(let reason):
                plugin.initErr = .with {
                    $0.code = Int32(BerthError.Code.unimplemented.rawValue)
                    $0.message = reason.contains("skip plugin") ? reason : "skip plugin: \(reason)"
                }
            case .error(let error):
                plugin.initErr = .with {
                    $0.code = error.code.rawValue
                    $0.message = error.message
                }
            }
        }
    }

    /// The inode of this process's PID namespace, as containerd reports it.
    private static func pidNamespace() -> UInt64 {
        var info = stat()
        guard stat("/proc/self/ns/pid", &info) == 0 else { return 0 }
        return UInt64(info.st_ino)
    }
}
