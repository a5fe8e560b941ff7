import FoundationEssentials
import GRPCCore
import GRPCNIOTransportHTTP2
import Glibc
import Kernel
import Logging
import NIOCore
import ServiceLifecycle

/// The gRPC API on a unix socket, wire-compatible with containerd's v1 API. It binds only
/// after the kernel has started every plugin (the collector's start-up repair among them), so
/// a client that can connect sees the final plugin list and consistent storage. It serves
/// exactly the `io.containerd.grpc.v1` plugins that started, plus the methods shared-object
/// plugins offer (`PluginAPIService`).
public struct APIServer: Service {
    /// ctr (containerd 1.6) allows 16 MiB messages each way; so does Berth.
    public static let maxMessageSize = 16 << 20
    /// How long a graceful stop lets running RPCs finish before it cancels them (their plugin
    /// calls then answer CANCELLED at once), so that a plugin that never answers cannot hold
    /// the daemon's shutdown.
    public static let drainLimit = Duration.seconds(5)

    let kernel: Kernel
    let address: String
    let logger: Logger

    public init(kernel: Kernel, address: String, logger: Logger) {
        self.kernel = kernel
        self.address = address
        self.logger = logger
    }

    /// The router of every started gRPC service and plugin-offered method.
    func router<Transport: ServerTransport>(for transport: Transport.Type) -> RPCRouter<Transport> {
        var router = RPCRouter<Transport>()
        let started = kernel.plugins.startedInOrder
        for case let plugin as GRPCServicePlugin in started.map(\.1) {
            plugin.service.registerMethods(with: &router)
        }
        let builtins = router
        let (routes, refused) = PluginAPIService.routes(from: started) { builtins.hasHandler(forMethod: $0) }
        for reason in refused { logger.error("plugin method not served: \(reason)") }
        PluginAPIService(routes: routes).registerMethods(with: &router)
        return router
    }

    public func run() async throws {
        try await kernel.waitUntilStarted()
        let fd = try UnixListener.listen(at: address)
        let transport = UnixServerTransport(listeningSocket: fd, maxMessageSize: Self.maxMessageSize, logger: logger)
        let server = GRPCServer(transport: transport, router: router(for: UnixServerTransport.self))
        defer { unlink(address) }
        logger.info("serving gRPC", metadata: ["address": "unix:\(address)"])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            group.addTask {
                try await gracefulShutdown()
                server.beginGracefulShutdown()
                // RPC tasks are started by the transport, outside this task tree, so they cannot
                // see the service group's shutdown themselves: end the open event streams here.
                kernel.events.endSubscriptions()
                try await Task.sleep(for: Self.drainLimit)
                throw DrainLimitReached()
            }
            do {
                try await group.next()
            } catch is DrainLimitReached {
                logger.warning("RPCs still running \(Self.drainLimit) after the stop began; cancelling them")
            }
            group.cancelAll()
            while let _ = try? await group.next() {}
        }
    }

    private struct DrainLimitReached: Error {}
}
