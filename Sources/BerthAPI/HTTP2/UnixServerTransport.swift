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
        hub = ConnectionHub(logger: logger)
        var limits = HTTP2ServerConnection.Limits()
        limits.maxMessageSize = maxMessageSize
        self.limits = limits
    }

    public func listen(
        streamHandler: @escaping @Sendable (RPCStream<Inbound, Outbound>, ServerContext) async -> Void
    ) async throws {
        let limits = self.limits, hub = self.hub
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(HTTP2ServerConnection(limits: limits, hub: hub))
                }
            }
            .withBoundSocket(descriptor).get()
        hub.listening(on: server)
        await withDiscardingTaskGroup { group in
            for await rpc in hub.rpcs {
                group.addTask(executorPreference: rpc.executor) { await streamHandler(rpc.stream, rpc.context) }
            }
        }
        hub.closeAll()
        try? await server.close()
    }

    public func beginGracefulShutdown() {
        hub.shutDown()
    }
}

/// What the connections of one transport share: the queue of accepted RPCs that the server's
/// task group takes, and the list of open connections to tell when the daemon stops.
final class ConnectionHub: Sendable {
    /// Sent through a connection's pipeline to make it stop taking streams.
    struct ShutdownEvent {}

    struct AcceptedRPC: Sendable {
        let stream: RPCStream<UnixServerTransport.Inbound, UnixServerTransport.Outbound>
        let context: ServerContext
        /// The connection's event loop: the RPC's task runs there, so its requests, its
        /// responses and the socket are handled by one thread without hand-offs.
        let executor: LoopTaskExecutor
    }

    private struct State {
        var connections: [ObjectIdentifier: any Channel] = [:]
        var server: (any Channel)?
        var stopping = false
    }

    let rpcs: AsyncStream<AcceptedRPC>
    /// Connections log why they ended when it was not the client's choice.
    let logger: Logger
    private let sink: AsyncStream<AcceptedRPC>.Continuation
    private let state = Mutex(State())

    init(logger: Logger) {
        self.logger = logger
        (rpcs, sink) = AsyncStream.makeStream(of: AcceptedRPC.self)
    }

    /// False once the transport is stopping: the RPC was not taken.
    func accept(_ rpc: AcceptedRPC) -> Bool {
        if case .enqueued = sink.yield(rpc) { return true }
        return false
    }

    /// False once the transport is stopping: the connection must close.
    func register(_ channel: any Channel) -> Bool {
        state.withLock {
            guard !$0.stopping else { return false }
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
        let (server, connections): ((any Channel)?, [any Channel]) = state.withLock {
            $0.stopping = true
            return ($0.server, Array($0.connections.values))
        }
        server?.close(promise: nil)
        for connection in connections { connection.pipeline.fireUserInboundEventTriggered(ShutdownEvent()) }
        sink.finish()
    }

    func closeAll() {
        let connections: [any Channel] = state.withLock {
            $0.stopping = true
            return Array($0.connections.values)
        }
        sink.finish()
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
