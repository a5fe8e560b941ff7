import Logging

/// The storage services of one daemon and the garbage collector they share.
public struct StorageServices: Sendable {
    public let snapshots: SnapshotService
    public let content: ContentService
    public let leases: LeaseService
    public let diff: DiffService
    public let images: ImageService
    /// Run it as a `Service` after the kernel; it waits for the plugins to start.
    public let collector: GarbageCollector

    public init(kernel: Kernel, logger: Logger) {
        let trigger = CollectionTrigger()
        snapshots = SnapshotService(metadata: kernel.metadata, plugins: kernel.plugins, events: kernel.events, collection: trigger)
        content = ContentService(metadata: kernel.metadata, plugins: kernel.plugins, events: kernel.events, collection: trigger)
        leases = LeaseService(metadata: kernel.metadata, collection: trigger)
        images = ImageService(metadata: kernel.metadata, events: kernel.events, collection: trigger)
        diff = DiffService(content: content, plugins: kernel.plugins, scratch: kernel.config.state + "/io.containerd.grpc.v1.diff")
        collector = GarbageCollector(kernel: kernel, trigger: trigger, snapshots: snapshots, content: content, logger: logger,
                                     ingestExpiry: Double(kernel.config.ingestExpirySeconds),
                                     pauseThreshold: kernel.config.gcPauseThreshold)
    }
}
