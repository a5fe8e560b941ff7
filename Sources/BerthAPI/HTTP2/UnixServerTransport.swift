import GRPCCore
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// grpc-swift's server core over Berth's own HTTP/2 connections (`HTTP2ServerConnection`) on
/// an already listening unix socket. grpc-swift keeps routing, (de)serialisation, deadlines and
/// status mapping; this transport only moves frames.
public struct UnixServerTransport: ServerTransport {
    public typealias Bytes = WireBytes

    private let descriptor: Int32
    private let limits: HTTP2ServerConnection.Limits
    private let hub: ConnectionHub

    /// Serves on `descriptor`, a socket that is bound and listening; the transport closes it.
    /// `maxMessageSize` bounds a request message, as gRPC counts it.
    public init(listeningSocket descriptor: Int32, maxMessageSize: Int, logger: Logger) {
        self.descriptor = descriptor
        var limits = HTTP2ServerConnection.Limits()
        limits.maxMessageSize = maxMessageSize
        self.limits = limits
        hub = ConnectionHub(logger: logger, maxConnections: limits.maxConnections)
    }

    public func listen(
        streamHandler: @escaping @Sendable (RPCStream<Inbound, Outbound>, ServerContext) async -> Void
    ) async throws {
        let limits = self.limits, hub = self.hub
        hub.serve(with: streamHandler)
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            // Above the high mark the connection stops reading the client and stops queueing
            // response DATA: what a client does not read stays bounded (see `Limits`).
            .childChannelOption(.writeBufferWaterMark, value: .init(low: limits.outboundBufferLimit / 2, high: limits.outboundBufferLimit))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(HTTP2ServerConnection(limits: limits, hub: hub))
                }
            }
            .withBoundSocket(descriptor).get()
        hub.listening(on: server)
        await withTaskCancellationHandler {
            await hub.drained()
        } onCancel: {
            hub.cancelAll()
        }
        hub.closeAll()
        try? await server.close()
    }

    public func beginGracefulShutdown() {
        hub.shutDown()
    }
}

/// What the connections of one transport share: the handler that serves each RPC, the RPCs
/// running, and the open connections to tell when the daemon stops.
///
/// A connection starts each RPC's task itself, on its own event loop, as soon as the request
/// headers arrive: no queue and no server task in between, so a short RPC is read, served and
/// answered by one thread without waking another. `listen` returns once the transport has been
/// shut down and every RPC it started has finished; cancelling it cancels them.
final class ConnectionHub: Sendable {
    /// Sent through a connection's pipeline to make it stop taking streams.
    struct ShutdownEvent {}

    typealias Handler = @Sendable (RPCStream<UnixServerTransport.Inbound, UnixServerTransport.Outbound>, ServerContext) async -> Void

    struct AcceptedRPC: Sendable {
        let stream: RPCStream<UnixServerTransport.Inbound, UnixServerTransport.Outbound>
        let context: ServerContext
        /// The connection's event loop: the RPC's task runs there, so its requests, its
        /// responses and the socket are handled by one thread without hand-offs.
        let executor: LoopTaskExecutor
        /// The stream's requests, to see the first message's size before the handler starts.
        let requests: RequestQueue
        /// Called from the RPC's task once its handler has returned.
        let finished: @Sendable () -> Void
    }

    /// A first request message this large is decoded, and its RPC served, on the shared
    /// concurrent executor instead of the connection's event loop: decoding 16 MiB of small
    /// protobuf fields takes seconds, which would stall every connection on that loop.
    static let largeMessage = 256 << 10

    private struct State {
        var connections: [ObjectIdentifier: any Channel] = [:]
        var server: (any Channel)?
        var handler: Handler?
        var running: [UInt64: Task<Void, Never>] = [:]
        var nextRPC: UInt64 = 0
        var stopping = false
        /// Connection failures logged in the current `logWindow`, and the ones left out.
        var logged = 0, unlogged = 0
        var logWindow = NIODeadline.now().uptimeNanoseconds
        /// `listen`, waiting for the stop and the last RPC.
        var drainWaiter: CheckedContinuation<Void, Never>?
        var drainedAlready: Bool { stopping && running.isEmpty }

        /// The waiting `listen` to resume, once stopping and drained.
        mutating func takeDrainWaiterIfDrained() -> CheckedContinuation<Void, Never>? {
            guard drainedAlready else { return nil }
            defer { drainWaiter = nil }
            return drainWaiter
        }
    }

    /// Connections log why they ended when it was not the client's choice.
    let logger: Logger
    /// Connections open at once; more are closed as soon as they are accepted.
    let maxConnections: Int
    /// Notices about broken connections per minute; a hostile client must not flood the log.
    static let noticesPerMinute = 20
    private let state = Mutex(State())

    init(logger: Logger, maxConnections: Int) {
        self.logger = logger
        self.maxConnections = maxConnections
    }

    func serve(with handler: @escaping Handler) {
        state.withLock { $0.handler = handler }
    }

    /// Starts the RPC's task on its connection's loop and returns its id. Nil once the transport
    /// is stopping: the RPC was not taken.
    func accept(_ rpc: AcceptedRPC) -> UInt64? {
        state.withLock { state in
            guard !state.stopping, let handler = state.handler else { return nil }
            let id = state.nextRPC
            state.nextRPC += 1
            // The task cannot finish before it is recorded: it needs this lock to say so.
            let logger = self.logger
            state.running[id] = Task(executorPreference: rpc.executor) {
                // At debug level each RPC is logged with its duration, to see where a client's
                // sequence of calls spends its time.
                let started = logger.logLevel <= .debug ? ContinuousClock.now : nil
                if await rpc.requests.firstMessageSize() >= Self.largeMessage {
                    await withTaskExecutorPreference(globalConcurrentExecutor) { await handler(rpc.stream, rpc.context) }
                } else {
                    await handler(rpc.stream, rpc.context)
                }
                if let started {
                    let elapsed = (ContinuousClock.now - started).components
                    logger.debug(
                        "rpc",
                        metadata: [
                            "method": "\(rpc.context.descriptor.fullyQualifiedMethod)",
                            "us": "\(elapsed.seconds * 1_000_000 + elapsed.attoseconds / 1_000_000_000_000)",
                        ])
                }
                self.finished(id)
                rpc.finished()
            }
            return id
        }
    }

    /// Cancels the task of an RPC whose client went away, so that a handler waiting for
    /// something that may never come (an event stream, a lock) ends now rather than never.
    func cancel(_ id: UInt64) {
        state.withLock { $0.running[id] }?.cancel()
    }

    /// Logs a connection that had to be closed, at most `noticesPerMinute` times a minute.
    func noteBrokenConnection(_ message: Logger.Message, metadata: Logger.Metadata) {
        let now = NIODeadline.now().uptimeNanoseconds
        let (log, skipped): (Bool, Int) = state.withLock { state in
            if now - state.logWindow >= 60_000_000_000 {
                defer {
                    state.logWindow = now
                    state.logged = 1
                    state.unlogged = 0
                }
                return (true, state.unlogged)
            }
            guard state.logged < Self.noticesPerMinute else {
                state.unlogged += 1
                return (false, 0)
            }
            state.logged += 1
            return (true, 0)
        }
        guard log else { return }
        var metadata = metadata
        if skipped > 0 { metadata["not_logged_before"] = "\(skipped)" }
        logger.notice(message, metadata: metadata)
    }

    private func finished(_ id: UInt64) {
        let waiter = state.withLock { state in
            state.running[id] = nil
            return state.takeDrainWaiterIfDrained()
        }
        waiter?.resume()
    }

    /// Returns when the transport is stopping and no RPC runs.
    func drained() async {
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let now: Bool = state.withLock {
                if $0.drainedAlready { return true }
                $0.drainWaiter = waiter
                return false
            }
            if now { waiter.resume() }
        }
    }

    /// False once the transport is stopping or `maxConnections` are open: the connection must close.
    func register(_ channel: any Channel) -> Bool {
        state.withLock {
            guard !$0.stopping, $0.connections.count < maxConnections else { return false }
            $0.connections[ObjectIdentifier(channel)] = channel
            return true
        }
    }

    func unregister(_ channel: any Channel) {
        _ = state.withLock { $0.connections.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    func listening(on server: any Channel) {
        let stopped: Bool = state.withLock {
            $0.server = server
            return $0.stopping
        }
        if stopped { server.close(promise: nil) }
    }

    /// Stops accepting connections and RPCs; open connections finish the RPCs they have.
    func shutDown() {
        let (server, connections, waiter) = state.withLock { state in
            state.stopping = true
            return (state.server, Array(state.connections.values), state.takeDrainWaiterIfDrained())
        }
        server?.close(promise: nil)
        for connection in connections { connection.pipeline.fireUserInboundEventTriggered(ShutdownEvent()) }
        waiter?.resume()
    }

    /// Stops as `shutDown` does and cancels the RPCs that run.
    func cancelAll() {
        let tasks: [Task<Void, Never>] = state.withLock { Array($0.running.values) }
        for task in tasks { task.cancel() }
        shutDown()
    }

    func closeAll() {
        let connections: [any Channel] = state.withLock {
            $0.stopping = true
            return Array($0.connections.values)
        }
        for connection in connections { connection.close(promise: nil) }
    }
}

/// A Swift Concurrency task executor that runs jobs on one NIO event loop.
final class LoopTaskExecutor: TaskExecutor {
    let loop: any EventLoop

    init(loop: any EventLoop) {
        self.loop = loop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
