import Kernel

/// The storage services as kernel registrations: each init returns the service itself, which
/// the gRPC layer's registrations then look up by name (containerd's `io.containerd.service.v1`
/// plugins). Adding a service is one file and one line here.
///
/// The services of one daemon share one `CollectionTrigger`, made with the registrations, so
/// that a removal in any of them wakes the collector.
public enum StoragePlugins {
    /// The tables the storage services keep in the kernel's metadata store.
    public static let schemas: [MetadataSchema] = [.snapshots, .content, .leases, .images]

    /// The service names, as the gRPC registrations look them up.
    public static let snapshots = PluginName(type: .service, id: "snapshots-service")
    public static let content = PluginName(type: .service, id: "content-service")
    public static let leases = PluginName(type: .service, id: "leases-service")
    public static let images = PluginName(type: .service, id: "images-service")
    public static let diff = PluginName(type: .service, id: "diff-service")
    public static let staging = PluginName(type: .service, id: "layer-staging")

    public static func registrations() -> [Registration] {
        let collection = CollectionTrigger()
        return [
            Registration(
                name: snapshots, requires: [.metadata, .event, .snapshotter],
                origin: .builtin { context in
                    SnapshotService(metadata: context.metadata, plugins: context.plugins, events: context.events, collection: collection)
                }),
            Registration(
                name: content, requires: [.metadata, .event, .content],
                origin: .builtin { context in
                    ContentService(metadata: context.metadata, plugins: context.plugins, events: context.events, collection: collection)
                }),
            Registration(
                name: leases, requires: [.metadata],
                origin: .builtin { context in
                    LeaseService(metadata: context.metadata, collection: collection)
                }),
            Registration(
                name: images, requires: [.metadata, .event],
                origin: .builtin { context in
                    ImageService(metadata: context.metadata, events: context.events, collection: collection)
                }),
            Registration(
                name: diff, requires: [.metadata, .differ],
                origin: .builtin { context in
                    DiffService(
                        plugins: context.plugins, scratch: context.stateDirectory,
                        content: { try context.plugins.service(content, as: ContentService.self) },
                        staging: { try? context.plugins.service(staging, as: LayerStaging.self) })
                }),
            Registration(
                name: staging, requires: [.event, .differ],
                origin: .builtin { context in
                    let daemon = context.daemon
                    guard daemon.unpackAhead else { throw PluginStartOutcome.skipped("unpack.ahead is false in the configuration") }
                    let limits = LayerStaging.Limits(
                        layers: daemon.unpackAheadLayers, bytes: Int64(daemon.unpackAheadBytes),
                        ttl: .seconds(daemon.unpackAheadTTLSeconds))
                    return LayerStaging(plugins: context.plugins, events: context.events, limits: limits, logger: context.logger) {
                        try context.plugins.service(content, as: ContentService.self)
                    }
                }),
            Registration(
                name: PluginName(type: .garbageCollector, id: "scheduler"), requires: [.metadata, .service],
                origin: .builtin { context in
                    let collector = GarbageCollector(
                        metadata: context.metadata, plugins: context.plugins, trigger: collection,
                        snapshots: try context.plugins.service(snapshots, as: SnapshotService.self),
                        content: try context.plugins.service(content, as: ContentService.self),
                        logger: context.logger, ingestExpiry: Double(context.daemon.ingestExpirySeconds),
                        pauseThreshold: context.daemon.gcPauseThreshold)
                    await collector.recoverAndCollect()
                    return collector
                }),
        ]
    }
}

extension SnapshotService: PluginInstance {}
extension ContentService: PluginInstance {}
extension LeaseService: PluginInstance {}
extension ImageService: PluginInstance {}
extension DiffService: PluginInstance {}
