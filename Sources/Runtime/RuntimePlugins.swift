import Kernel
import Storage

/// The services that describe and run containers, as kernel registrations: the containers
/// service and the restart monitor (the supervisor itself is the kernel's).
public enum RuntimePlugins {
    /// The tables the runtime services keep in the kernel's metadata store.
    public static let schemas: [MetadataSchema] = [.containers]

    public static let containers = PluginName(type: .service, id: "containers-service")

    public static func registrations() -> [Registration] {
        [
            Registration(
                name: containers, requires: [.metadata, .event],
                origin: .builtin { context in
                    ContainerService(metadata: context.metadata, events: context.events)
                }),
            Registration(
                name: RestartMonitor.name, requires: [.service, .event],
                origin: .builtin { context in
                    RestartMonitor(
                        tasks: try TaskService(context.plugins), snapshots: try context.plugins.service(StoragePlugins.snapshots, as: SnapshotService.self),
                        events: context.events, logger: context.logger)
                }),
        ]
    }
}

extension ContainerService: PluginInstance {}

/// A container holds its snapshot and what its labels reference, as in containerd's collector.
extension ContainerService: CollectionRoots {
    public var collectionRootQuery: String { MetadataSchema.containerRoots }
}
