import GRPCCore
import Kernel
import Runtime
import Storage

/// A started gRPC service: what the API server serves. Every `io.containerd.grpc.v1` plugin's
/// instance is one, so the server serves exactly the services that started, and
/// `ctr plugins ls` is true by construction.
public struct GRPCServicePlugin: PluginInstance {
    public let service: any RegistrableRPCService

    public init(_ service: any RegistrableRPCService) {
        self.service = service
    }
}

/// The gRPC services of containerd's v1 API as registrations. Each init builds the real
/// service over the kernel or the storage service it forwards to; a storage service that is
/// not running makes its gRPC service fail to start, so it is listed as `error` and not served.
/// Adding a service is one file and one line here.
public enum GRPCPlugins {
    public static func registrations() -> [Registration] {
        [
            grpc("version") { _ in VersionService() },
            grpc("introspection") { context in IntrospectionService(plugins: context.plugins, metadata: context.metadata) },
            grpc("namespaces", requires: [.metadata, .event]) { context in
                NamespacesService(metadata: context.metadata, events: context.events)
            },
            grpc("healthcheck") { _ in HealthService() },
            grpc("events", requires: [.event]) { context in EventsService(events: context.events) },
            grpc("snapshots", requires: [.service]) { context in
                SnapshotsService(snapshots: try context.plugins.service(StoragePlugins.snapshots, as: SnapshotService.self))
            },
            grpc("content", requires: [.service]) { context in
                ContentGRPCService(content: try context.plugins.service(StoragePlugins.content, as: ContentService.self))
            },
            grpc("leases", requires: [.service]) { context in
                LeasesService(leases: try context.plugins.service(StoragePlugins.leases, as: LeaseService.self))
            },
            grpc("diff", requires: [.service]) { context in
                DiffGRPCService(diff: try context.plugins.service(StoragePlugins.diff, as: DiffService.self))
            },
            grpc("images", requires: [.service]) { context in
                ImagesService(images: try context.plugins.service(StoragePlugins.images, as: ImageService.self))
            },
            grpc("containers", requires: [.service]) { context in
                ContainersService(containers: try context.plugins.service(RuntimePlugins.containers, as: ContainerService.self))
            },
            grpc("tasks", requires: [.service]) { context in
                TasksService(tasks: try TaskService(context.plugins))
            },
        ]
    }

    private static func grpc(
        _ id: String, requires: [PluginType] = [],
        _ make: @escaping @Sendable (PluginContext) throws -> any RegistrableRPCService
    ) -> Registration {
        Registration(
            name: PluginName(type: .grpcService, id: id), requires: requires,
            origin: .builtin { context in GRPCServicePlugin(try make(context)) })
    }
}
