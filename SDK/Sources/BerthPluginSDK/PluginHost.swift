import CBerthPlugin
import FoundationEssentials
import Glibc
import SwiftProtobuf
import Synchronization

/// The host as a plugin sees it: its directories and config, a log, the event bus and the
/// other plugins. Wraps `berth_host_api`; valid for the plugin's whole life.
// @unchecked: every stored property is immutable; `api` points at the host's table, which the
// contract keeps valid from create to destroy and callable from any thread.
public final class PluginHost: @unchecked Sendable {
    /// Log severities, as `berth_log_level`.
    public enum LogLevel: Int32, Sendable {
        case debug = 0
        case info, warning, error
    }

    /// This plugin's persistent directory, already created.
    public let rootDirectory: String
    /// This plugin's volatile directory, already created.
    public let stateDirectory: String
    /// The plugin's `config` table from plugin.conf, as JSON text.
    public let configJSON: String
    private let api: UnsafePointer<berth_host_api>

    init(params: UnsafePointer<berth_init_params>) {
        let p = params.pointee
        rootDirectory = p.root_dir.map { String(cString: $0) } ?? ""
        stateDirectory = p.state_dir.map { String(cString: $0) } ?? ""
        configJSON = p.config_json.map { String(decoding: UnsafeBufferPointer(start: $0, count: p.config_json_len), as: UTF8.self) } ?? "{}"
        api = p.host
    }

    /// Decodes the config table into `type`; a mismatch names the plugin's table.
    public func config<T: Decodable>(as type: T.Type) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(configJSON.utf8))
        } catch {
            throw PluginError(.invalidArgument, "plugin config is not valid: \(error)")
        }
    }

    /// Writes one log line, attributed to this plugin by the host.
    public func log(_ level: LogLevel, _ message: String) {
        var message = message
        message.withUTF8 { api.pointee.log(api.pointee.host_data, level.rawValue, $0.baseAddress, $0.count) }
    }

    /// Publishes `event` on the host's bus under `topic` ("/snapshot/prepare"); never blocks.
    public func publish(topic: String, namespace: String, _ event: any SwiftProtobuf.Message) {
        guard let bytes: [UInt8] = try? event.serializedBytes() else { return }
        let typeURL = type(of: event).protoMessageName
        bytes.withUnsafeBufferPointer { payload in
            api.pointee.publish(api.pointee.host_data, namespace, topic, typeURL, payload.baseAddress, payload.count)
        }
    }

    /// Calls `method` on another plugin ("type.id", or a type with a single plugin).
    public func call<Response: SwiftProtobuf.Message>(
        _ target: String, _ method: String, _ request: any SwiftProtobuf.Message,
        info: CallInfo = CallInfo(namespace: "", lease: ""), returning: Response.Type = Response.self
    ) async throws -> Response {
        let bytes: [UInt8] = try request.serializedBytes()
        let api = self.api
        let (code, reply) = await SDKReplies.await { context, replyFunction in
            info.namespace.withCString { namespace in
                info.lease.withCString { lease in
                    var callContext = berth_call_context(
                        struct_size: UInt32(MemoryLayout<berth_call_context>.size),
                        namespace_name: namespace, lease: lease,
                        deadline_ns: info.deadlineNanoseconds)
                    bytes.withUnsafeBufferPointer { buffer in
                        api.pointee.call(
                            api.pointee.host_data, target, &callContext, method,
                            buffer.baseAddress, buffer.count, context, replyFunction)
                    }
                }
            }
        }
        guard code == 0 else {
            throw PluginError(PluginError.Code(rawValue: code) ?? .unknown, String(decoding: reply, as: UTF8.self))
        }
        return try Response(serializedBytes: reply)
    }
}

/// Replies by token for code that calls through the C ABI from Swift: a plugin's own calls to
/// the host, and the test kit's calls into a plugin (see the host's reply table: the reply
/// context is a token, so a second or unknown reply is dropped).
public enum SDKReplies {
    private static let pending = Mutex<(next: UInt, waiting: [UInt: CheckedContinuation<(Int32, [UInt8]), Never>])>((1, [:]))

    /// Runs `start` with a fresh reply context and function, and waits for the one reply.
    public static func await(_ start: (UnsafeMutableRawPointer, berth_reply_fn) -> Void) async -> (Int32, [UInt8]) {
        await withCheckedContinuation { continuation in
            let token = pending.withLock { state in
                defer { state.next += 1 }
                state.waiting[state.next] = continuation
                return state.next
            }
            start(UnsafeMutableRawPointer(bitPattern: token)!, sdkReply)
        }
    }

    fileprivate static func resolve(_ context: UnsafeMutableRawPointer?, _ code: Int32, _ bytes: [UInt8]) {
        let token = UInt(bitPattern: context)
        pending.withLock { $0.waiting.removeValue(forKey: token) }?.resume(returning: (code, bytes))
    }
}

private let sdkReply: berth_reply_fn = { context, code, data, length in
    SDKReplies.resolve(context, code, data.map { Array(UnsafeBufferPointer(start: $0, count: length)) } ?? [])
}
