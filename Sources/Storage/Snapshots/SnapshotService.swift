import BerthProto
import Filters
import FoundationEssentials
import Glibc
import Kernel
import SwiftProtobuf
import Synchronization

/// The snapshot contract, kept by the kernel so that drivers stay simple.
///
/// Terms: a snapshot is **active** (writable; made by `prepare`), a **view** (read-only active;
/// made by `view`) or **committed** (made from an active one by `commit`, which retires the
/// active key). Keys of every kind share one keyspace per namespace and snapshotter, and only
/// committed snapshots can be parents. The kernel keeps keys, kinds, parents, labels and times in
/// its metadata store; the driver plugin keeps layers on disk under numeric ids and is told the
/// whole parent chain on every call (see `berth/snapshots/v1/driver.proto`).
///
/// Worked example: `prepare("a")` → write files through its mounts → `commit("base", "a")` →
/// `prepare("b", parent: "base")` sees base's files; `remove("base")` fails while "b" exists.
///
/// Repeats and absences: a second prepare/view/commit onto a used key is `.alreadyExists`; any
/// operation on a missing key is `.notFound`; a driver failure during prepare leaves no record.
public struct SnapshotService: Sendable {
    /// The snapshotter used when a request names none, as in containerd.
    public static let defaultSnapshotter = "overlayfs"

    let metadata: MetadataStore
    let plugins: PluginDirectory
    let events: EventBus
    /// Told when a removal or a gc label change may leave objects unreachable.
    let collection: CollectionTrigger?
    /// Snapshots whose driver call has not succeeded yet: their record holds the key, but no
    /// client sees them until the layer exists.
    let pending = PendingKeys()

    public init(metadata: MetadataStore, plugins: PluginDirectory, events: EventBus, collection: CollectionTrigger? = nil) {
        self.metadata = metadata
        self.plugins = plugins
        self.events = events
        self.collection = collection
    }

    public typealias Mount = Containerd_Types_Mount

    /// Creates active snapshot `key` on committed `parent` and returns its mounts; a non-empty
    /// `lease` (which must exist) holds it.
    public func prepare(
        namespace: String, snapshotter: String, key: String, parent: String,
        labels: [String: String], lease: String = ""
    ) async throws -> [Mount] {
        try await create(
            namespace: namespace, snapshotter: snapshotter, key: key, parent: parent,
            labels: labels, kind: .active, lease: lease)
    }

    /// Creates read-only view `key` of committed `parent` and returns its mounts.
    public func view(
        namespace: String, snapshotter: String, key: String, parent: String,
        labels: [String: String], lease: String = ""
    ) async throws -> [Mount] {
        try await create(
            namespace: namespace, snapshotter: snapshotter, key: key, parent: parent,
            labels: labels, kind: .view, lease: lease)
    }

    /// The mounts of an active snapshot or view, as prepare or view returned them; a committed
    /// snapshot has none (`.failedPrecondition`, as in containerd: view it to read it).
    public func mounts(namespace: String, snapshotter: String, key: String) async throws -> [Mount] {
        let (name, driver) = try resolve(snapshotter)
        try pending.requireAbsent(namespace, name, key)
        let (record, parents) = try await metadata.snapshot(namespace: namespace, snapshotter: name, key: key)
        guard record.kind != .committed else {
            throw BerthError.failedPrecondition("snapshot \"\(key)\" is committed; only active snapshots and views have mounts")
        }
        return try await mounts(driver, record: record, parents: parents)
    }

    /// Commits active `key` as `name`; the active key disappears.
    public func commit(
        namespace: String, snapshotter: String, name: String, key: String,
        labels: [String: String], lease: String = ""
    ) async throws {
        let (snapshotterName, driver) = try resolve(snapshotter)
        try Self.validate(key: name, labels: labels)
        try pending.requireAbsent(namespace, snapshotterName, key)
        let record = try await metadata.commitSnapshot(
            namespace: namespace, snapshotter: snapshotterName,
            key: key, name: name, labels: labels, lease: lease)
        _ = try await driver.call(BerthContracts.SnapshotDriver.commit, Berth_Snapshots_V1_LayerRequest.with { $0.id = UInt64(record.id) })
        events.publish(
            topic: "/snapshot/commit", namespace: namespace,
            Containerd_Events_SnapshotCommit.with {
                $0.key = key
                $0.name = name
                $0.snapshotter = snapshotterName
            })
    }

    /// Removes `key` of either kind; a committed snapshot with children is refused.
    public func remove(namespace: String, snapshotter: String, key: String) async throws {
        let (name, driver) = try resolve(snapshotter)
        try pending.requireAbsent(namespace, name, key)
        let record = try await metadata.deleteSnapshot(namespace: namespace, snapshotter: name, key: key)
        // The record is gone first: if the driver fails now, Cleanup removes the orphan layer.
        _ = try await driver.call(BerthContracts.SnapshotDriver.remove, Berth_Snapshots_V1_LayerRequest.with { $0.id = UInt64(record.id) })
        events.publish(
            topic: "/snapshot/remove", namespace: namespace,
            Containerd_Events_SnapshotRemove.with {
                $0.key = key
                $0.snapshotter = name
            })
        collection?.schedule()
    }

    /// The record of `key`.
    public func stat(namespace: String, snapshotter: String, key: String) async throws -> SnapshotRecord {
        let (name, _) = try resolve(snapshotter)
        try pending.requireAbsent(namespace, name, key)
        return try await metadata.snapshot(namespace: namespace, snapshotter: name, key: key).record
    }

    /// Changes labels of `key` (field paths "labels" or "labels.KEY"; none replaces all).
    public func update(
        namespace: String, snapshotter: String, key: String, labels: [String: String],
        paths: [String]
    ) async throws -> SnapshotRecord {
        let (name, _) = try resolve(snapshotter)
        try pending.requireAbsent(namespace, name, key)
        let record = try await metadata.updateSnapshotLabels(
            namespace: namespace, snapshotter: name, key: key,
            labels: labels, paths: paths)
        if LabelUpdate.mayAffectCollection(paths: paths) { collection?.schedule() }
        return record
    }

    /// Every snapshot in `namespace` matching any of `filters`.
    public func list(namespace: String, snapshotter: String, filters: [String]) async throws -> [SnapshotRecord] {
        let (name, _) = try resolve(snapshotter)
        let filterSet = try FilterSet(filters)
        return try await metadata.snapshots(namespace: namespace, snapshotter: name).filter {
            filterSet.matches($0.field) && !pending.contains(namespace, name, $0.key)
        }
    }

    /// Disk use of `key`'s own layer: bytes and inodes.
    public func usage(namespace: String, snapshotter: String, key: String) async throws -> (size: Int64, inodes: Int64) {
        let (name, driver) = try resolve(snapshotter)
        try pending.requireAbsent(namespace, name, key)
        let record = try await metadata.snapshot(namespace: namespace, snapshotter: name, key: key).record
        let usage = try await driver.call(BerthContracts.SnapshotDriver.usage, Berth_Snapshots_V1_LayerRequest.with { $0.id = UInt64(record.id) })
        return (usage.size, usage.inodes)
    }

    /// What `cleanup` repaired.
    public struct CleanupReport: Sendable, Equatable {
        /// Layers on disk that no record named (a crash or a failed removal left them).
        public var removedLayers: [UInt64]
        /// Active snapshots and views whose layer was never made (a crash during prepare).
        public var droppedKeys: [String]
        /// Committed snapshots whose layer is gone: data lost, kept for an operator to see.
        public var brokenKeys: [String]

        public var isEmpty: Bool { removedLayers.isEmpty && droppedKeys.isEmpty && brokenKeys.isEmpty }
    }

    /// Brings records and layers back in step: removes layers no record names and records of
    /// unfinished snapshots whose layer does not exist.
    public func cleanup(snapshotter: String) async throws -> CleanupReport {
        let (name, driver) = try resolve(snapshotter)
        let keep = try await metadata.snapshotIDs(snapshotter: name).map { UInt64($0) }
        let reply = try await driver.call(BerthContracts.SnapshotDriver.cleanup, Berth_Snapshots_V1_CleanupLayersRequest.with { $0.keep = keep })
        let (dropped, broken) = try await metadata.dropUnfinishedSnapshots(snapshotter: name, ids: reply.missing.map { Int64($0) })
        return CleanupReport(removedLayers: reply.removed, droppedKeys: dropped, brokenKeys: broken)
    }

    /// Removes the layer of a record the collector deleted.
    func removeLayer(snapshotter: String, id: Int64) async throws {
        let (_, driver) = try resolve(snapshotter)
        _ = try await driver.call(BerthContracts.SnapshotDriver.remove, Berth_Snapshots_V1_LayerRequest.with { $0.id = UInt64(id) })
    }

    // MARK: -

    private func create(
        namespace: String, snapshotter: String, key: String, parent: String,
        labels: [String: String], kind: SnapshotRecord.Kind, lease: String
    ) async throws -> [Mount] {
        let (name, driver) = try resolve(snapshotter)
        try Self.validate(key: key, labels: labels)
        // Hidden from other clients from before its record exists until its layer does.
        pending.add(namespace, name, key)
        defer { pending.remove(namespace, name, key) }
        let (record, parents) = try await metadata.insertSnapshot(
            namespace: namespace, snapshotter: name, key: key,
            parent: parent, kind: kind, labels: labels, lease: lease)
        do {
            _ = try await driver.call(
                BerthContracts.SnapshotDriver.create,
                Berth_Snapshots_V1_CreateLayerRequest.with {
                    $0.id = UInt64(record.id)
                    $0.parents = parents.map { UInt64($0) }
                    $0.readonly = kind == .view
                })
            let mounts = try await mounts(driver, record: record, parents: parents)
            events.publish(
                topic: "/snapshot/prepare", namespace: namespace,
                Containerd_Events_SnapshotPrepare.with {
                    $0.key = key
                    $0.parent = parent
                    $0.snapshotter = name
                })
            return mounts
        } catch {
            // Nothing half-made stays: drop the record and whatever the driver made. This runs
            // also when the caller went away (the call was cancelled), so it runs in a task of
            // its own, which that cancellation does not reach; a layer the driver finishes
            // after this removal has no record, and the next start's cleanup removes it.
            let id = UInt64(record.id)
            await Task {
                _ = try? await metadata.deleteSnapshot(namespace: namespace, snapshotter: name, key: key)
                _ = try? await driver.call(BerthContracts.SnapshotDriver.remove, Berth_Snapshots_V1_LayerRequest.with { $0.id = id })
            }.value
            throw error
        }
    }

    private func mounts(_ driver: any PluginInstance, record: SnapshotRecord, parents: [Int64]) async throws -> [Mount] {
        try await driver.call(
            BerthContracts.SnapshotDriver.mounts,
            Berth_Snapshots_V1_LayerMountsRequest.with {
                $0.id = UInt64(record.id)
                $0.parents = parents.map { UInt64($0) }
                $0.readonly = record.kind != .active
            }
        ).mounts
    }

    /// The snapshotter's name ("" means the default) and its running driver plugin.
    private func resolve(_ snapshotter: String) throws(BerthError) -> (String, any PluginInstance) {
        let name = snapshotter.isEmpty ? Self.defaultSnapshotter : snapshotter
        guard let driver = plugins.instance(of: .snapshotter, id: name) else {
            throw .invalidArgument("snapshotter \"\(name)\" is not loaded")
        }
        return (name, driver)
    }

    private static func validate(key: String, labels: [String: String]) throws(BerthError) {
        guard !key.isEmpty else { throw .invalidArgument("snapshot key must not be empty") }
        guard key.utf8.count <= 4096 else { throw .invalidArgument("snapshot key \"\(key.prefix(64))...\" is longer than 4096 bytes") }
        try Validation.labels(labels)
    }
}

/// Keys of snapshots being created, counted (two concurrent prepares of one key may both be
/// here until the loser's insert fails).
final class PendingKeys: Sendable {
    private let counts = Mutex<[String: Int]>([:])

    private static func key(_ namespace: String, _ snapshotter: String, _ key: String) -> String {
        "\(namespace)\u{0}\(snapshotter)\u{0}\(key)"
    }

    func add(_ namespace: String, _ snapshotter: String, _ key: String) {
        counts.withLock { $0[Self.key(namespace, snapshotter, key), default: 0] += 1 }
    }

    func remove(_ namespace: String, _ snapshotter: String, _ key: String) {
        counts.withLock { counts in
            let key = Self.key(namespace, snapshotter, key)
            counts[key] = counts[key].flatMap { $0 > 1 ? $0 - 1 : nil }
        }
    }

    func contains(_ namespace: String, _ snapshotter: String, _ key: String) -> Bool {
        counts.withLock { !$0.isEmpty && $0[Self.key(namespace, snapshotter, key)] != nil }
    }

    /// `.notFound`, as for a key that does not exist, while `key` is being created.
    func requireAbsent(_ namespace: String, _ snapshotter: String, _ key: String) throws(BerthError) {
        if contains(namespace, snapshotter, key) { throw .notFound("snapshot \"\(key)\" does not exist") }
    }
}
