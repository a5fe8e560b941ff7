import BerthPluginSDK
import BerthProto
import CBerthPlugin
import Foundation
import SwiftProtobuf
import Synchronization

/// An error a plugin answered, with its gRPC code and message.
public struct PluginCallError: Error, Equatable, CustomStringConvertible {
    public var code: Int32
    public var message: String
    public var description: String { "code \(code): \(message)" }
}

/// Answers a plugin's calls to other plugins in a test (`berth_host_api.call`): given the
/// target ("type.id"), the method path and the request bytes, returns a gRPC code and the
/// reply bytes (the message on a non-zero code). It runs on the plugin's calling thread.
public typealias HostCallHandler = @Sendable (_ target: String, _ method: String, _ request: [UInt8]) -> (code: Int32, reply: [UInt8])

/// One registration of a plugin shared object, created and started the way berthd does it,
/// on private directories, and called through its C ops table: a test drives a plugin through
/// its contract alone, with no daemon. Host services are minimal: log lines are kept
/// (`logLines`), published events are kept (`events`), calls to other plugins go to the
/// test's `HostCallHandler` if it gave one (a runtime's kit acts as the supervisor) and
/// answer UNIMPLEMENTED otherwise.
// @unchecked: the pointers are the plugin's and this host's, valid until `stop`; the recorded
// lines and events are behind a Mutex.
public final class PluginUnderTest: @unchecked Sendable {
    public let rootDirectory: String
    public let stateDirectory: String
    private let ops: berth_plugin_ops
    private let instance: UnsafeMutableRawPointer
    private let host: UnsafeMutablePointer<berth_host_api>
    private let records = Mutex<(lines: [String], events: [String])>(([], []))
    private let hostCalls: HostCallHandler?

    /// Topics of the events the plugin published, in order.
    public var events: [String] { records.withLock { $0.events } }
    /// The log lines the plugin wrote, in order.
    public var logLines: [String] { records.withLock { $0.lines } }

    /// Loads `path`, finds registration `type`.`id`, creates it under `directory` (root and
    /// state folders are made there) with `configJSON`, and starts it.
    public static func start(
        path: String, type: String, id: String, directory: String,
        configJSON: String = "{}", hostCalls: HostCallHandler? = nil
    ) async throws -> PluginUnderTest {
        // RTLD_DEEPBIND, as berthd does: the plugin binds to its own copies of the SDK and SwiftProtobuf,
        // not to the ones linked into the test.
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND) else {
            throw PluginCallError(code: 9, message: "cannot load \(path): \(String(cString: dlerror()))")
        }
        guard let symbol = dlsym(handle, BERTH_PLUGIN_ENTRY_SYMBOL),
            let module = unsafeBitCast(symbol, to: berth_plugin_entry_fn.self)()
        else {
            throw PluginCallError(code: 9, message: "\(path) has no \(BERTH_PLUGIN_ENTRY_SYMBOL)")
        }
        let m = module.pointee
        guard m.signature == BERTH_MODULE_SIGNATURE, m.abi_major == BERTH_ABI_MAJOR else {
            throw PluginCallError(code: 9, message: "\(path) is not a Berth plugin of ABI \(BERTH_ABI_MAJOR).x")
        }
        for index in 0..<m.registrations_count {
            var registration = berth_registration()
            berth_read_struct(
                &registration, MemoryLayout<berth_registration>.size,
                UnsafeRawPointer(m.registrations!) + index * Int(m.registration_size))
            guard registration.type.map({ String(cString: $0) }) == type, registration.id.map({ String(cString: $0) }) == id,
                registration.ops != nil
            else { continue }
            var ops = berth_plugin_ops()
            berth_read_struct(&ops, MemoryLayout<berth_plugin_ops>.size, registration.ops)
            let plugin = try PluginUnderTest(
                ops: ops, data: registration.registration_data, directory: directory, configJSON: configJSON, hostCalls: hostCalls)
            try await plugin.startInstance()
            return plugin
        }
        throw PluginCallError(code: 5, message: "\(path) has no plugin \(type).\(id)")
    }

    private init(
        ops: berth_plugin_ops, data: UnsafeMutableRawPointer?, directory: String, configJSON: String, hostCalls: HostCallHandler?
    ) throws {
        let rootDirectory = directory + "/root"
        let stateDirectory = directory + "/state"
        for folder in [rootDirectory, stateDirectory] {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        // Host calls made during create find no host_data yet and are dropped.
        let host = UnsafeMutablePointer<berth_host_api>.allocate(capacity: 1)
        host.initialize(
            to: berth_host_api(
                struct_size: UInt32(MemoryLayout<berth_host_api>.size),
                abi_major: UInt16(BERTH_ABI_MAJOR), abi_minor: UInt16(BERTH_ABI_MINOR),
                host_data: nil, log: kitLog, publish: kitPublish, call: kitCall))
        let config = Array(configJSON.utf8)
        let created: UnsafeMutableRawPointer? = rootDirectory.withCString { root in
            stateDirectory.withCString { state in
                config.withUnsafeBufferPointer { json in
                    var params = berth_init_params(
                        struct_size: UInt32(MemoryLayout<berth_init_params>.size),
                        root_dir: root, state_dir: state, config_json: json.baseAddress,
                        config_json_len: json.count, host: UnsafePointer(host))
                    return ops.create(data, &params)
                }
            }
        }
        guard let created else { throw PluginCallError(code: 13, message: "create returned no instance") }
        self.rootDirectory = rootDirectory
        self.stateDirectory = stateDirectory
        self.ops = ops
        self.host = host
        self.hostCalls = hostCalls
        instance = created
        host.pointee.host_data = Unmanaged.passUnretained(self).toOpaque()
    }

    private func startInstance() async throws {
        let (code, bytes) = await SDKReplies.await { ops.start(instance, $0, $1) }
        guard code == 0 else {
            ops.destroy(instance)
            throw PluginCallError(code: code, message: String(decoding: bytes, as: UTF8.self))
        }
    }

    /// Calls one contract method as the kernel would, in `namespace`.
    public func call<Request, Response>(
        _ method: ContractMethod<Request, Response>, _ request: Request,
        namespace: String = ""
    ) async throws -> Response {
        let bytes: [UInt8] = try request.serializedBytes()
        let (code, reply) = await SDKReplies.await { context, function in
            namespace.withCString { ns in
                "".withCString { lease in
                    var callContext = berth_call_context(
                        struct_size: UInt32(MemoryLayout<berth_call_context>.size),
                        namespace_name: ns, lease: lease, deadline_ns: 0)
                    bytes.withUnsafeBufferPointer {
                        ops.call(instance, &callContext, method.path, $0.baseAddress, $0.count, context, function)
                    }
                }
            }
        }
        guard code == 0 else { throw PluginCallError(code: code, message: String(decoding: reply, as: UTF8.self)) }
        return try Response(serializedBytes: reply)
    }

    /// Starts registration `type`.`id` of `path` in a fresh temporary folder, runs `body` with
    /// it, then stops it and removes the folder, also when `body` throws.
    public static func with(
        path: String, type: String, id: String,
        _ body: (PluginUnderTest, _ directory: String) async throws -> Void
    ) async throws {
        let directory = NSTemporaryDirectory() + "pluginkit-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let instance = try await start(path: path, type: type, id: id, directory: directory)
        do {
            try await body(instance, directory)
        } catch {
            await instance.stop()
            throw error
        }
        await instance.stop()
    }

    /// Stops and destroys the instance; no call may follow.
    public func stop() async {
        _ = await SDKReplies.await { ops.stop(instance, $0, $1) }
        ops.destroy(instance)
        host.deallocate()
    }

    fileprivate func record(line: String? = nil, event: String? = nil) {
        records.withLock { records in
            if let line { records.lines.append(line) }
            if let event { records.events.append(event) }
        }
    }

    fileprivate func answer(target: String, method: String, request: [UInt8]) -> (code: Int32, reply: [UInt8]) {
        guard let hostCalls else { return (12, Array("the test host has no plugin \(target)".utf8)) }
        return hostCalls(target, method, request)
    }

    fileprivate static func from(_ data: UnsafeMutableRawPointer?) -> PluginUnderTest? {
        data.map { Unmanaged<PluginUnderTest>.fromOpaque($0).takeUnretainedValue() }
    }
}

private let kitLog: @convention(c) (UnsafeMutableRawPointer?, Int32, UnsafePointer<CChar>?, Int) -> Void = { data, _, message, length in
    let line = message.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: length), as: UTF8.self) } ?? ""
    PluginUnderTest.from(data)?.record(line: line)
}

private let kitPublish:
    @convention(c) (
        UnsafeMutableRawPointer?, UnsafePointer<CChar>?, UnsafePointer<CChar>?,
        UnsafePointer<CChar>?, UnsafePointer<UInt8>?, Int
    ) -> Void = { data, _, topic, _, _, _ in
        PluginUnderTest.from(data)?.record(event: topic.map { String(cString: $0) } ?? "")
    }

private let kitCall:
    @convention(c) (
        UnsafeMutableRawPointer?, UnsafePointer<CChar>?, UnsafePointer<berth_call_context>?,
        UnsafePointer<CChar>?, UnsafePointer<UInt8>?, Int,
        UnsafeMutableRawPointer?, berth_reply_fn?
    ) -> Void = { data, target, _, method, bytes, length, context, reply in
        let request = bytes.map { Array(UnsafeBufferPointer(start: $0, count: length)) } ?? []
        let targetName = target.map { String(cString: $0) } ?? ""
        let answer: (code: Int32, reply: [UInt8]) =
            PluginUnderTest.from(data)?.answer(target: targetName, method: method.map { String(cString: $0) } ?? "", request: request)
            ?? (12, Array("the test host has no plugin \(targetName)".utf8))
        answer.reply.withUnsafeBufferPointer { reply?(context, answer.code, $0.baseAddress, $0.count) }
    }
