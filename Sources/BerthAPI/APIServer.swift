import Foundation
import NIOCore
import GRPCCore
import GRPCNIOTransportHTTP2
import Kernel
import Logging
import ServiceLifecycle

/// The gRPC API on a unix socket: a thin forwarder over the kernel's services, wire-compatible
/// with containerd's v1 API. It binds only after the kernel has started every plugin and the
/// collector has repaired what an unclean stop left, so a client that can connect sees the
/// final plugin list and consistent storage.
public struct APIServer: Service {
    /// ctr (containerd 1.6) allows 16 MiB messages each way; so does Berth.
    public static let maxMessageSize = 16 << 20

    let kernel: Kernel
    let storage: StorageServices
    let address: String
    let logger: Logger

    public init(kernel: Kernel, storage: StorageServices, address: String, logger: Logger) {
        self.kernel = kernel
        self.storage = storage
        self.address = address
        self.logger = logger
    }

    /// The services every berthd serves; plugins add theirs in later stages.
    static func services(for kernel: Kernel, storage: StorageServices) -> [any RegistrableRPCService] {
        [
            VersionService(),
            IntrospectionService(kernel: kernel),
            NamespacesService(metadata: kernel.metadata, events: kernel.events),
            HealthService(),
            EventsService(events: kernel.events),
            ContentGRPCService(content: storage.content),
            SnapshotsService(snapshots: storage.snapshots),
            LeasesService(leases: storage.leases),
            DiffGRPCService(diff: storage.diff),
            ImagesService(images: storage.images),
        ]
    }

    public func run() async throws {
        try await kernel.waitUntilStarted()
        await storage.collector.waitUntilRecovered()
        let fd = try UnixListener.listen(at: address)
        let server = GRPCServer(
            transport: UnixServerTransport(listeningSocket: fd, maxMessageSize: Self.maxMessageSize, logger: logger),
            services: Self.services(for: kernel, storage: storage))
        defer { unlink(address) }
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await server.serve() }
                logger.info("serving gRPC", metadata: ["address": "unix:\(address)"])
            }
        } onGracefulShutdown: {
            server.beginGracefulShutdown()
            // RPC tasks are started by the transport, outside this task tree, so they cannot see
            // the service group's shutdown themselves: end the open event streams here.
            kernel.events.endSubscriptions()
        }
    }
}
