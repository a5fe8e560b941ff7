import CBerthPlugin
import FoundationEssentials
import Glibc
import Logging
import SwiftProtobuf

/// The host side of `berth_host_api` for one plugin instance: logging, publishing and
/// calling other plugins, reached from C through `host_data`.
// @unchecked: every stored property is immutable after init (the table is filled once, before
// the plugin sees it), and the host functions it holds may be called from any thread.
final class HostBridge: @unchecked Sendable {
    let context: PluginContext
    /// The C table handed to the plugin; freed when the bridge goes.
    let table: UnsafeMutablePointer<berth_host_api>

    init(context: PluginContext) {
        self.context = context
        table = .allocate(capacity: 1)
        table.initialize(
            to: berth_host_api(
                struct_size: UInt32(MemoryLayout<berth_host_api>.size),
                abi_major: UInt16(BERTH_ABI_MAJOR), abi_minor: UInt16(BERTH_ABI_MINOR),
                host_data: nil, log: hostLog, publish: hostPublish, call: hostCall))
        table.pointee.host_data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit { table.deallocate() }

    static func from(_ data: UnsafeMutableRawPointer?) -> HostBridge {
        Unmanaged<HostBridge>.fromOpaque(data!).takeUnretainedValue()
    }
}

private func text(_ pointer: UnsafePointer<CChar>?) -> String {
    pointer.map { String(cString: $0) } ?? ""
}

private let hostLog: @convention(c) (UnsafeMutableRawPointer?, Int32, UnsafePointer<CChar>?, Int) -> Void = {
    data, level, message, length in
    let bridge = HostBridge.from(data)
    let line = message.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: length), as: UTF8.self) } ?? ""
    let levels: [Logger.Level] = [.debug, .info, .warning, .error]
    let logLevel = levels[Int(max(0, min(level, 3)))]
    bridge.context.logger.log(level: logLevel, "\(line)", metadata: ["plugin": "\(bridge.context.name)"])
}

private let hostPublish:
    @convention(c) (
        UnsafeMutableRawPointer?, UnsafePointer<CChar>?, UnsafePointer<CChar>?,
        UnsafePointer<CChar>?, UnsafePointer<UInt8>?, Int
    ) -> Void = {
        data, namespace, topic, typeURL, payload, length in
        let bridge = HostBridge.from(data)
        var event = Google_Protobuf_Any()
        event.typeURL = text(typeURL)
        event.value = payload.map { Data(bytes: $0, count: length) } ?? Data()
        bridge.context.events.publish(EventEnvelope(namespace: text(namespace), topic: text(topic), event: event))
    }

private let hostCall:
    @convention(c) (
        UnsafeMutableRawPointer?, UnsafePointer<CChar>?, UnsafePointer<berth_call_context>?,
        UnsafePointer<CChar>?, UnsafePointer<UInt8>?, Int,
        UnsafeMutableRawPointer?, berth_reply_fn?
    ) -> Void = {
        data, target, callContext, method, request, length, replyContext, reply in
        let bridge = HostBridge.from(data)
        let context = CallContext(callContext)
        // The reply context is the plugin's opaque token; carried as an integer so it is Sendable.
        let token = UInt(bitPattern: replyContext)
        bridge.context.hostCalls.submit(
            HostCall(
                target: text(target), method: text(method),
                request: request.map { Array(UnsafeBufferPointer(start: $0, count: length)) } ?? [],
                context: context,
                reply: { outcome in
                    let (code, bytes): (Int32, [UInt8]) =
                        switch outcome {
                        case .ok(let bytes): (Int32(BERTH_CODE_OK.rawValue), bytes)
                        case .skip(let reason): (Int32(BERTH_CODE_INTERNAL.rawValue), Array(reason.utf8))
                        case .failure(let error): (error.code.rawValue, Array(error.message.utf8))
                        }
                    bytes.withUnsafeBufferPointer { reply?(UnsafeMutableRawPointer(bitPattern: token), code, $0.baseAddress, $0.count) }
                }))
    }

extension CallContext {
    /// Reads a plugin's call context, using only the fields its size covers: a 1.0 plugin's
    /// calls get the kernel's default deadline, a 1.1 plugin's the deadline it passed on.
    init(_ context: UnsafePointer<berth_call_context>?) {
        guard let context else {
            self.init()
            return
        }
        var copy = berth_call_context()
        berth_read_struct(&copy, MemoryLayout<berth_call_context>.size, context)
        self.init(
            namespace: text(copy.namespace_name), lease: text(copy.lease),
            deadline: copy.deadline_ns > 0 ? .at(nanoseconds: copy.deadline_ns) : .kernelDefault)
    }
}
