import BerthProto
import Dispatch
import SwiftProtobuf

/// What a Swift plugin author implements. The SDK turns it into the C contract of
/// `berth_plugin.h`; nothing Swift-typed ever crosses into the host.
///
/// Lifecycle: the registration's `make` creates the plugin (no blocking work), then the SDK
/// calls `start()` once; if that returns, `methods` serves calls concurrently until `stop()`.
/// Throw `PluginSkip` from `start()` to be recorded as skipped, any other error to fail.
public protocol BerthPlugin: AnyObject, Sendable {
    /// Opens stores and reloads state.
    func start() async throws
    /// The methods this plugin serves, by gRPC path.
    var methods: MethodTable { get }
    /// Ends work in flight and releases system resources.
    func stop() async
}

extension BerthPlugin {
    public func start() async throws {}
    public func stop() async {}
}

/// Per-call facts from the API edge.
///
/// Cancellation: when the caller gives up (client gone, deadline passed, daemon stopping) the
/// handler's task is cancelled; the host has answered the caller already. Check
/// `Task.isCancelled` or use cancellable waits in long handlers.
public struct CallInfo: Sendable {
    /// The containerd namespace of the request.
    public var namespace: String
    /// The lease the request runs under, or "".
    public var lease: String
    /// When the caller stops waiting, in CLOCK_MONOTONIC nanoseconds; 0 for no limit.
    public var deadlineNanoseconds: Int64

    public init(namespace: String, lease: String, deadlineNanoseconds: Int64 = 0) {
        self.namespace = namespace
        self.lease = lease
        self.deadlineNanoseconds = deadlineNanoseconds
    }
}

/// Typed handlers by gRPC method path, built once when the plugin is made.
public struct MethodTable: Sendable {
    public typealias RawHandler = @Sendable ([UInt8], CallInfo) async throws -> [UInt8]
    private var handlers = [String: RawHandler]()

    public init() {}

    /// Serves `path` ("/package.Service/Method") with a handler on decoded messages.
    ///
    /// A handler runs on the calling daemon thread, which also serves other clients. Mark it
    /// `blocking` when it can hold a thread for long (copying a tree, syncing a large file,
    /// waiting for a process): it then runs on a pool of threads kept for such work.
    public mutating func unary<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ path: String, _ request: Request.Type = Request.self, blocking: Bool = false,
        _ handler: @escaping @Sendable (Request, CallInfo) async throws -> Response
    ) {
        handlers[path] = { bytes, info in
            let decoded: Request
            do {
                decoded = try Request(serializedBytes: bytes)
            } catch {
                throw PluginError(.invalidArgument, "\(path): request is not a valid \(Request.protoMessageName)")
            }
            guard blocking else { return try await handler(decoded, info).serializedBytes() }
            return try await withTaskExecutorPreference(BlockingWork.executor) {
                try await handler(decoded, info).serializedBytes()
            }
        }
    }

    /// Serves one method of a plugin contract (`BerthContracts`), typed by its definition.
    public mutating func serve<Request, Response>(
        _ method: ContractMethod<Request, Response>, blocking: Bool = false,
        _ handler: @escaping @Sendable (Request, CallInfo) async throws -> Response
    ) {
        unary(method.path, Request.self, blocking: blocking, handler)
    }

    /// Answers `path` with `.unimplemented` and a message saying what is missing and why.
    public mutating func unimplemented(_ path: String, because reason: String) {
        handlers[path] = { _, _ in throw PluginError(.unimplemented, "\(path) is not implemented: \(reason)") }
    }

    /// Runs the handler for `path`; an unknown path is `.unimplemented`.
    public func dispatch(_ path: String, _ request: [UInt8], _ info: CallInfo) async throws -> [UInt8] {
        guard let handler = handlers[path] else {
            throw PluginError(.unimplemented, "method \(path) is not served by this plugin")
        }
        return try await handler(request, info)
    }

    /// Every path with a handler, sorted.
    public var paths: [String] { handlers.keys.sorted() }
}

/// Where `blocking` handlers run: a concurrent dispatch queue, whose pool adds threads while
/// its workers are blocked, so long file-system work never occupies the daemon's event loops.
enum BlockingWork {
    static let executor = QueueExecutor(DispatchQueue(label: "berth.plugin.blocking", qos: .utility, attributes: .concurrent))

    final class QueueExecutor: TaskExecutor {
        let queue: DispatchQueue

        init(_ queue: DispatchQueue) {
            self.queue = queue
        }

        func enqueue(_ job: consuming ExecutorJob) {
            let job = UnownedJob(job)
            queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
        }
    }
}
