import BerthProto
import Filters
import FoundationEssentials
import Glibc
import Kernel

/// The image contract, kept by the kernel: names mapped to root descriptors, per namespace.
///
/// Terms: an image does not own content; it points at a root (an index or a manifest) that the
/// client stored, and the garbage collector keeps that root, and what its labels reference,
/// while the image exists. Whether the content is complete is the client's concern, as in
/// containerd.
///
/// Worked example: `ctr images import` writes blobs, then `create(name, target: manifest)`,
/// then unpacks layers through the snapshot and diff services.
///
/// Repeats and absences: creating a taken name is `.alreadyExists`; anything on a missing name
/// is `.notFound`; deleting schedules a collection (`sync` waits for one).
public struct ImageService: Sendable {
    let metadata: MetadataStore
    let events: EventBus
    let collection: CollectionTrigger?

    public init(metadata: MetadataStore, events: EventBus, collection: CollectionTrigger? = nil) {
        self.metadata = metadata
        self.events = events
        self.collection = collection
    }

    public func get(namespace: String, name: String) async throws -> ImageRecord {
        try await metadata.image(namespace: namespace, name: name)
    }

    public func list(namespace: String, filters: [String]) async throws -> [ImageRecord] {
        let filterSet = try FilterSet(filters)
        return try await metadata.images(namespace: namespace).filter { filterSet.matches($0.field) }
    }

    public func create(namespace: String, _ image: ImageRecord) async throws -> ImageRecord {
        let created = try await metadata.createImage(namespace: namespace, image)
        events.publish(
            topic: "/images/create", namespace: namespace,
            Containerd_Events_ImageCreate.with {
                $0.name = created.name
                $0.labels = created.labels
            })
        return created
    }

    public func update(namespace: String, _ image: ImageRecord, paths: [String]) async throws -> ImageRecord {
        let updated = try await metadata.updateImage(namespace: namespace, image, paths: paths)
        events.publish(
            topic: "/images/update", namespace: namespace,
            Containerd_Events_ImageUpdate.with {
                $0.name = updated.name
                $0.labels = updated.labels
            })
        // A new target or fewer reference labels can leave content unreachable.
        if paths.contains("target") || LabelUpdate.mayAffectCollection(paths: paths) {
            collection?.schedule()
        }
        return updated
    }

    public func delete(namespace: String, name: String, sync: Bool) async throws {
        try await metadata.deleteImage(namespace: namespace, name: name)
        events.publish(topic: "/images/delete", namespace: namespace, Containerd_Events_ImageDelete.with { $0.name = name })
        if sync { await collection?.collect() } else { collection?.schedule() }
    }
}
