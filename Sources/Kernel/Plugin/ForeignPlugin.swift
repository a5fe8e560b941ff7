import CBerthPlugin
import FoundationEssentials
import Glibc

/// A plugin instance living in a shared object, driven through its C ops table.
///
/// Immutable after start; the instance pointer is the plugin's, which the contract requires to
/// take calls from any thread, hence `@unchecked Sendable`.
final class ForeignPlugin: PluginInstance, @unchecked Sendable {
    let name: PluginName
    private let ops: berth_plugin_ops
    private let instance: UnsafeMutableRawPointer
    /// Keeps the host table the plugin points into alive until destroy.
    private let host: HostBridge
    let exports: [String: String]
    /// gRPC paths the plugin offers to clients (ABI 1.1 registrations).
    let apiMethods: [String]
    /// How long a call may take when its context says `.kernelDefault`.
    private let defaultTimeout: Int64
    /// "plugin P method ", made once: a call's label is joined only when the call is cut short.
    private let labelPrefix: String
    /// Tells the plugin (ABI 1.1 and later) that the caller gave up on a call; made once.
    private let abandonHandler: (@Sendable (UInt) -> Void)?

    /// Creates the instance (synchronous create) and starts it (asynchronous start).
    /// A skip or failure destroys the instance and throws `PluginStartOutcome`.
    static func start(_ entry: LoadedModule.Entry, context: PluginContext) async throws -> ForeignPlugin {
        let host = HostBridge(context: context)
        let instance = try create(entry, context: context, host: host)
        let ops = entry.ops
        switch await ReplyTable.await({ ops.start(instance, $0, $1) }) {
        case .ok:
            var exports = ["root": context.rootDirectory, "state": context.stateDirectory]
            if !entry.apiMethods.isEmpty { exports["api_methods"] = entry.apiMethods.joined(separator: ",") }
            return ForeignPlugin(
                name: entry.name, ops: ops, instance: instance, host: host, exports: exports,
                apiMethods: entry.apiMethods,
                defaultTimeout: Int64(context.daemon.pluginCallTimeoutSeconds) * 1_000_000_000)
        case .skip(let reason):
            ops.destroy(instance)
            throw PluginStartOutcome.skipped(reason)
        case .failure(let error):
            ops.destroy(instance)
            throw error.wrapped("plugin \(entry.name) failed to start")
        }
    }

    private static func create(
        _ entry: LoadedModule.Entry, context: PluginContext,
        host: HostBridge
    ) throws(BerthError) -> UnsafeMutableRawPointer {
        let config = Array(context.configJSON.utf8)
        let created = context.rootDirectory.withCString { root in
            context.stateDirectory.withCString { state in
                config.withUnsafeBufferPointer { json in
                    var params = berth_init_params(
                        struct_size: UInt32(MemoryLayout<berth_init_params>.size),
                        root_dir: root, state_dir: state,
                        config_json: json.baseAddress, config_json_len: json.count,
                        host: UnsafePointer(host.table))
                    return entry.ops.create(entry.registrationData, &params)
                }
            }
        }
        guard let created else { throw .internal("plugin \(entry.name): create returned no instance") }
        return created
    }

    private init(
        name: PluginName, ops: berth_plugin_ops, instance: UnsafeMutableRawPointer,
        host: HostBridge, exports: [String: String], apiMethods: [String], defaultTimeout: Int64
    ) {
        self.name = name
        self.ops = ops
        self.instance = instance
        self.host = host
        self.exports = exports
        self.apiMethods = apiMethods
        self.defaultTimeout = defaultTimeout
        labelPrefix = "plugin \(name) method "
        if let cancel = ops.cancel {
            let instance = UInt(bitPattern: instance)
            abandonHandler = { token in cancel(UnsafeMutableRawPointer(bitPattern: instance), UnsafeMutableRawPointer(bitPattern: token)) }
        } else {
            abandonHandler = nil
        }
    }

    func call(_ method: String, request: [UInt8], context: CallContext) async throws -> [UInt8] {
        let deadline: Int64 =
            switch context.deadline {
            case .kernelDefault: MonotonicClock.now + defaultTimeout
            case .at(let nanoseconds): nanoseconds
            case .none: 0
            }
        let reply = await ReplyTable.await(
            label: CallLabel(labelPrefix, method: method), deadline: deadline,
            onAbandon: abandonHandler
        ) { replyContext, replyFunction in
            context.namespace.withCString { namespace in
                context.lease.withCString { lease in
                    var callContext = berth_call_context(
                        struct_size: UInt32(MemoryLayout<berth_call_context>.size),
                        namespace_name: namespace, lease: lease, deadline_ns: deadline)
                    request.withUnsafeBufferPointer { bytes in
                        ops.call(instance, &callContext, method, bytes.baseAddress, bytes.count, replyContext, replyFunction)
                    }
                }
            }
        }
        switch reply {
        case .ok(let bytes): return bytes
        case .failure(let error):
            if error.code == .cancelled, Task.isCancelled {
                host.context.logger.info("plugin call cut short: its caller was cancelled", metadata: ["method": "\(method)"])
            }
            throw error
        case .skip: throw BerthError.internal("plugin \(name) answered skip to \(method)")
        }
    }

    /// Stops the plugin and frees it. A plugin that does not answer stop before the task is
    /// cancelled (the kernel bounds shutdown) is not destroyed: its work may still be running.
    func stop() async {
        let reply = await ReplyTable.await(label: CallLabel("plugin \(name) stop"), onAbandon: nil) { ops.stop(instance, $0, $1) }
        if case .failure(let error) = reply, error.code == .cancelled { return }
        ops.destroy(instance)
    }
}

/// A start that did not end in "ok" but is not an error either; a built-in's init throws it
/// to be recorded as skipped (turned off in the configuration, say).
public enum PluginStartOutcome: Error {
    case skipped(String)
}
