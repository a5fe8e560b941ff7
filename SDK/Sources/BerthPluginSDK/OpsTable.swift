import CBerthPlugin
import FoundationEssentials
import Glibc
import Synchronization

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
    ops.initialize(
        to: berth_plugin_ops(
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
                let info = CallInfo(callContext)
                RunningCalls.begin(reply.token)
                let task = Task.immediate {
                    defer { RunningCalls.end(reply.token) }
                    do {
                        reply.ok(try await box.made.get().methods.dispatch(path, bytes, info))
                    } catch {
                        reply.fail(error)
                    }
                }
                RunningCalls.attach(task, to: reply.token)
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
            },
            cancel: { _, context in
                RunningCalls.cancel(UInt(bitPattern: context))
            }))
    return ops
}()

extension CallInfo {
    /// Reads the host's call context, using only the fields its size covers.
    init(_ context: UnsafePointer<berth_call_context>?) {
        guard let context else {
            self.init(namespace: "", lease: "")
            return
        }
        var copy = berth_call_context()
        berth_read_struct(&copy, MemoryLayout<berth_call_context>.size, context)
        self.init(
            namespace: copy.namespace_name.map { String(cString: $0) } ?? "",
            lease: copy.lease.map { String(cString: $0) } ?? "",
            deadlineNanoseconds: copy.deadline_ns)
    }
}

/// The tasks serving calls, by reply token, so that `ops->cancel` can cancel the right one.
/// A call's entry exists from before its task starts until the task ends; a cancel that
/// arrives before the task is attached is remembered and applied on attach.
enum RunningCalls {
    private enum Entry {
        case starting
        case cancelledEarly
        case running(Task<Void, Never>)
    }

    private static let entries = Mutex<[UInt: Entry]>([:])

    static func begin(_ token: UInt) {
        entries.withLock { $0[token] = .starting }
    }

    static func attach(_ task: Task<Void, Never>, to token: UInt) {
        let cancelNow = entries.withLock { entries -> Bool in
            switch entries[token] {
            case .starting?:
                entries[token] = .running(task)
                return false
            case .cancelledEarly?:
                entries[token] = nil
                return true
            default: return false  // already ended
            }
        }
        if cancelNow { task.cancel() }
    }

    static func end(_ token: UInt) {
        entries.withLock { entries in
            if case .running? = entries[token] { entries[token] = nil }
            if case .starting? = entries[token] { entries[token] = nil }
        }
    }

    static func cancel(_ token: UInt) {
        let task = entries.withLock { entries -> Task<Void, Never>? in
            switch entries[token] {
            case .running(let task)?:
                entries[token] = nil
                return task
            case .starting?:
                entries[token] = .cancelledEarly
                return nil
            default: return nil
            }
        }
        task?.cancel()
    }
}
