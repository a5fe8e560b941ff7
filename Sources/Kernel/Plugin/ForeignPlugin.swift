import CBerthPlugin
import Foundation

/// A plugin instance living in a shared object, driven through its C ops table.
final class ForeignPlugin: PluginInstance, @unchecked Sendable {
    let name: PluginName
    private let ops: berth_plugin_ops
    private let instance: UnsafeMutableRawPointer
    /// Keeps the host table the plugin points into alive until destroy.
    private let host: HostBridge
    let exports: [String: String]

    /// Creates the instance (synchronous create) and starts it (asynchronous start).
    /// A skip or failure destroys the instance and throws `PluginStartOutcome`.
    static func start(_ entry: LoadedModule.Entry, context: PluginContext) async throws -> ForeignPlugin {
        let host = HostBridge(context: context)
        let instance = try create(entry, context: context, host: host)
        let ops = entry.ops.pointee
        switch await ReplyTable.await({ ops.start(instance, $0, $1) }) {
        case .ok:
            return ForeignPlugin(name: entry.name, ops: ops, instance: instance, host: host,
                                 exports: ["root": context.rootDirectory, "state": context.stateDirectory])
        case .skip(let reason):
            ops.destroy(instance)
            throw PluginStartOutcome.skipped(reason)
        case .failure(let error):
            ops.destroy(instance)
            throw error.wrapped("plugin \(entry.name) failed to start")
        }
    }

    private static func create(_ entry: LoadedModule.Entry, context: PluginContext,
                               host: HostBridge) throws(BerthError) -> UnsafeMutableRawPointer {
        let config = Array(context.configJSON.utf8)
        let created = context.rootDirectory.withCString { root in
            context.stateDirectory.withCString { state in
                config.withUnsafeBufferPointer { json in
                    var params = berth_init_params(
                        struct_size: UInt32(MemoryLayout<berth_init_params>.size),
                        root_dir: root, state_dir: state,
                        config_json: json.baseAddress, config_json_len: json.count,
                        host: UnsafePointer(host.table))
                    return entry.ops.pointee.create(entry.registrationData, &params)
                }
            }
        }
        guard let created else { throw .internal("plugin \(entry.name): create returned no instance") }
        return created
    }

    private init(name: PluginName, ops: berth_plugin_ops, instance: UnsafeMutableRawPointer,
                 host: HostBridge, exports: [String: String]) {
        self.name = name
        self.ops = ops
        self.instance = instance
        self.host = host
        self.exports = exports
    }

    func call(_ method: String, request: [UInt8], context: CallContext) async throws -> [UInt8] {
        let reply = await ReplyTable.await { replyContext, replyFunction in
            context.namespace.withCString { namespace in
                context.lease.withCString { lease in
                    var callContext = berth_call_context(
                        struct_size: UInt32(MemoryLayout<berth_call_context>.size),
                        namespace_name: namespace, lease: lease)
                    request.withUnsafeBufferPointer { bytes in
                        ops.call(instance, &callContext, method, bytes.baseAddress, bytes.count, replyContext, replyFunction)
                    }
                }
            }
        }
        switch reply {
        case .ok(let bytes): return bytes
        case .failure(let error): throw error
        case .skip: throw BerthError.internal("plugin \(name) answered skip to \(method)")
        }
    }

    func stop() async {
        _ = await ReplyTable.await { ops.stop(instance, $0, $1) }
        ops.destroy(instance)
    }
}

/// A start that did not end in "ok" but is not an error either.
enum PluginStartOutcome: Error {
    case skipped(String)
}
