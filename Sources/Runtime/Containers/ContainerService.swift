import BerthProto
import Filters
import FoundationEssentials
import Glibc
import Kernel
import SwiftProtobuf

/// The container contract: a container is a record of what to run, not a running thing.
///
/// Terms: a container names its OCI spec (an `Any` of type
/// `types.containerd.io/opencontainers/runtime-spec/1/Spec`), the runtime that will run its task
/// (a name clients know, resolved through `[runtime_aliases]` when a task is created), its root
/// filesystem (a snapshot key of a snapshotter), the image it came from, labels and opaque
/// extensions. Creating one starts nothing; the Tasks service runs it.
///
/// Worked example: `ctr run --rm IMAGE c1 true` prepares snapshot `c1`, then creates container
/// `c1` with the spec ctr generated, runtime `io.containerd.runc.v2`, snapshotter `overlayfs`
/// and snapshot key `c1`, then creates and starts its task.
///
/// Repeats and absences: creating a taken id is `.alreadyExists`; anything on a missing id is
/// `.notFound` naming it and the namespace; an update names the fields it changes (containerd's
/// field paths), and the snapshotter and runtime name never change.
public struct ContainerService: Sendable {
    let metadata: MetadataStore
    let events: EventBus

    public init(metadata: MetadataStore, events: EventBus) {
        self.metadata = metadata
        self.events = events
    }

    public func get(namespace: String, id: String) async throws -> Container {
        try await metadata.container(namespace: namespace, id: id)
    }

    /// Containers matching any of `filters` (fields id, image, runtime.name, snapshotter,
    /// snapshotkey, labels.KEY).
    public func list(namespace: String, filters: [String]) async throws -> [Container] {
        let filterSet = try FilterSet(filters)
        return try await metadata.containers(namespace: namespace).filter { container in
            filterSet.matches { Self.field(container, $0) }
        }
    }

    public func create(namespace: String, _ container: Container) async throws -> Container {
        try Self.validate(container)
        let created = try await metadata.insertContainer(namespace: namespace, container)
        events.publish(
            topic: "/containers/create", namespace: namespace,
            Containerd_Events_ContainerCreate.with {
                $0.id = created.id
                $0.image = created.image
                $0.runtime = .with {
                    $0.name = created.runtime.name
                    $0.options = created.runtime.options
                }
            })
        return created
    }

    /// Changes the fields `paths` names ("labels", "labels.KEY", "spec", "extensions",
    /// "extensions.KEY", "image", "snapshotkey"); no paths changes all of those.
    public func update(namespace: String, _ container: Container, paths: [String]) async throws -> Container {
        let updated = try await metadata.updateContainer(namespace: namespace, id: container.id) { (current) throws(BerthError) in
            var next = current
            for path in paths.isEmpty ? ["labels", "spec", "extensions", "image", "snapshotkey"] : paths {
                try Self.apply(path, from: container, to: &next)
            }
            if paths.isEmpty {
                guard container.snapshotter == current.snapshotter else {
                    throw .invalidArgument("container \"\(container.id)\": the snapshotter cannot be changed")
                }
                guard container.runtime.name == current.runtime.name else {
                    throw .invalidArgument("container \"\(container.id)\": the runtime name cannot be changed")
                }
            }
            try Self.validate(next)
            return next
        }
        events.publish(
            topic: "/containers/update", namespace: namespace,
            Containerd_Events_ContainerUpdate.with {
                $0.id = updated.id
                $0.image = updated.image
                $0.labels = updated.labels
                $0.snapshotKey = updated.snapshotKey
            })
        return updated
    }

    /// Deletes a container that has no task; `.failedPrecondition` while it has one (running or
    /// not: the task holds its rootfs and the supervisor's records).
    public func delete(namespace: String, id: String) async throws {
        if let task = try await metadata.process(namespace: namespace, containerID: id, execID: "") {
            throw BerthError.failedPrecondition(
                "container \"\(id)\" in namespace \"\(namespace)\" has a task (\(task.phase.name)); delete the task first")
        }
        try await metadata.deleteContainer(namespace: namespace, id: id)
        events.publish(topic: "/containers/delete", namespace: namespace, Containerd_Events_ContainerDelete.with { $0.id = id })
    }

    // MARK: - Rules

    /// What a container must carry (containerd's rules, with its messages' meaning).
    static func validate(_ container: Container) throws(BerthError) {
        try Validation.identifier(container.id, what: "container id")
        try Validation.labels(container.labels)
        guard !container.runtime.name.isEmpty else {
            throw .invalidArgument("container \"\(container.id)\": runtime name must be set")
        }
        guard container.hasSpec else { throw .invalidArgument("container \"\(container.id)\": spec must be set") }
        guard container.snapshotKey.isEmpty || !container.snapshotter.isEmpty else {
            throw .invalidArgument("container \"\(container.id)\": snapshotter must be set when snapshot key \"\(container.snapshotKey.prefix(128))\" is")
        }
        for key in container.extensions.keys where key.isEmpty {
            throw .invalidArgument("container \"\(container.id)\": an extension has an empty name")
        }
    }

    private static func apply(_ path: String, from new: Container, to current: inout Container) throws(BerthError) {
        switch path {
        case "labels": current.labels = new.labels
        case "spec": current.spec = new.spec
        case "extensions": current.extensions = new.extensions
        case "image": current.image = new.image
        case "snapshotkey": current.snapshotKey = new.snapshotKey
        case let path where path.hasPrefix("labels."):
            let key = String(path.dropFirst("labels.".count))
            current.labels[key] = new.labels[key]
        case let path where path.hasPrefix("extensions."):
            let key = String(path.dropFirst("extensions.".count))
            current.extensions[key] = new.extensions[key]
        default:
            throw .invalidArgument("container \"\(new.id)\": cannot update field \"\(path.prefix(128))\"")
        }
    }

    private static func field(_ container: Container, _ path: [String]) -> String? {
        switch path.first {
        case "id": container.id
        case "image": container.image
        case "runtime" where path.count == 2 && path[1] == "name": container.runtime.name
        case "snapshotter": container.snapshotter
        case "snapshotkey": container.snapshotKey
        case "labels" where path.count == 2: container.labels[path[1]]
        default: nil
        }
    }
}
