import CBerthPlugin
import Foundation

/// One live instance behind the C `instance` pointer: the host wrapper and the plugin, or the
/// error that prevented making it (reported by start, as the contract wants create to succeed).
final class InstanceBox: Sendable {
    let host: PluginHost
    let made: Result<any BerthPlugin, PluginError>

    init(registration: PluginRegistration, params: UnsafePointer<berth_init_params>) {
        host = PluginHost(params: params)
        do {
            made = .success(try registration.make(host))
        } catch let error as PluginError {
            made = .failure(error)
        } catch {
            made = .failure(PluginError(.internal, "cannot make plugin \(registration.type).\(registration.id): \(error)"))
        }
    }

    static func from(_ pointer: UnsafeMutableRawPointer?) -> InstanceBox {
        Unmanaged<InstanceBox>.fromOpaque(pointer!).takeUnretainedValue()
    }
}

/// A reply function and its context, carried into a task. The context is an opaque token the
/// host gave us, so it travels as an integer.
struct Reply: Sendable {
    let token: UInt
    let function: berth_reply_fn

    init(_ context: UnsafeMutableRawPointer?, _ function: berth_reply_fn?) {
        token = UInt(bitPattern: context)
        self.function = function!
    }

    func send(_ code: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { function(UnsafeMutableRawPointer(bitPattern: token), code, $0.baseAddress, $0.count) }
    }

    func ok(_ bytes: [UInt8] = []) { send(0, bytes) }

    /// Replies with the error's gRPC code, a skip, or `.unknown` for foreign errors.
    func fail(_ error: any Error) {
        switch error {
        case let error as PluginError: send(error.code.rawValue, Array(error.message.utf8))
        case let skip as PluginSkip: send(Int32(BERTH_CODE_SKIP.rawValue), Array(skip.reason.utf8))
        case is CancellationError: send(PluginError.Code.cancelled.rawValue, Array("cancelled".utf8))
        default: send(PluginError.Code.unknown.rawValue, Array(String(describing: error).utf8))
        }
    }
}

/// Written once at first use, then only read. The ops table shared by every registration of every Swift module. These functions are the
/// C-to-Swift bridge: they copy what the host lent, then continue in a task, because a C
/// caller has no async context to hand over. The task starts at once on the caller's thread
/// (`Task.immediate`) and leaves it only at its first suspension: an operation that never
/// suspends (most file-system work) replies before the C call returns, with no hop to another
/// thread and back.
nonisolated(unsafe) let sharedOps: UnsafeMutablePointer<berth_plugin_ops> = {
    let ops = UnsafeMutablePointer<berth_plugin_ops>.allocate(capacity: 1)
    ops.initialize(to: berth_plugin_ops(
        struct_size: UInt32(MemoryLayout<berth_plugin_ops>.size),
        create: { data, params in
            let registration = Unmanaged<RegistrationBox>.fromOpaque(data!).takeUnretainedValue().registration
            return Unmanaged.passRetained(InstanceBox(registration: registration, params: params!)).toOpaque()
        },
        start: { instance, context, function in
            let box = InstanceBox.from(instance)
            let reply = Reply(context, function)
            Task.immediate {
                do {
                    try await box.made.get().start()
                    reply.ok()
                } catch {
                    reply.fail(error)
                }
            }
        },
        call: { instance, callContext, method, request, length, context, function in
            let box = InstanceBox.from(instance)
            let reply = Reply(context, function)
            let path = method.map { String(cString: $0) } ?? ""
            let bytes = request.map { Array(UnsafeBufferPointer(start: $0, count: length)) } ?? []
            let info = CallInfo(namespace: callContext?.pointee.namespace_name.map { String(cString: $0) } ?? "",
                                lease: callContext?.pointee.lease.map { String(cString: $0) } ?? "")
            Task.immediate {
                do {
                    reply.ok(try await box.made.get().methods.dispatch(path, bytes, info))
                } catch {
                    reply.fail(error)
                }
            }
        },
        stop: { instance, context, function in
            let box = InstanceBox.from(instance)
            let reply = Reply(context, function)
            Task.immediate {
                if case .success(let plugin) = box.made { await plugin.stop() }
                reply.ok()
            }
        },
        destroy: { instance in
            Unmanaged<InstanceBox>.fromOpaque(instance!).release()
        }))
    return ops
}()
