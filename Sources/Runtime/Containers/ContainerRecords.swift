import BerthProto
import FoundationEssentials
import Glibc
import Kernel
import SwiftProtobuf

/// Container records in the metadata store: the client's whole `Container` message, kept as
/// protobuf bytes (its spec, runtime options and extensions are `Any`s Berth passes through),
/// keyed by namespace and id, with the times the store sets.
extension MetadataSchema {
    public static let containers = MetadataSchema(
        statements: [
            """
            CREATE TABLE IF NOT EXISTS containers (
                namespace TEXT NOT NULL,
                id TEXT NOT NULL,
                message BLOB NOT NULL,
                created INTEGER NOT NULL,
                updated INTEGER NOT NULL,
                snapshotter TEXT NOT NULL,
                snapshot_key TEXT NOT NULL,
                labels TEXT NOT NULL,
                PRIMARY KEY (namespace, id))
            """
        ],
        namespacedTables: [("containers", "containers")])

    /// What containers hold for the garbage collector: their snapshot, and what their labels
    /// reference (the columns beside the message exist for this query).
    static let containerRoots = "SELECT namespace, snapshotter, snapshot_key, labels FROM containers"
}

public typealias Container = Containerd_Services_Containers_V1_Container

extension MetadataStore {
    /// Inserts `container` (validated by the caller), creating the namespace if needed;
    /// `.alreadyExists` when the id is taken. Returns it with its times.
    public func insertContainer(namespace: String, _ container: Container) throws(BerthError) -> Container {
        try withDatabase { (db) throws(BerthError) in
            try ensureNamespace(namespace, db)
            guard try findContainer(namespace, container.id, db) == nil else {
                throw .alreadyExists("container \"\(container.id)\": already exists")
            }
            let now = Self.now()
            var stored = container
            stored.clearCreatedAt()
            stored.clearUpdatedAt()
            try db.query(
                """
                INSERT INTO containers (namespace, id, message, created, updated, snapshotter, snapshot_key, labels)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    .text(namespace), .text(container.id), .blob(try Self.encode(stored)), .integer(now), .integer(now),
                    .text(stored.snapshotter), .text(stored.snapshotKey), .text(try encodeLabels(stored.labels)),
                ])
            return try Self.stamped(stored, created: now, updated: now)
        }
    }

    /// The container `id`; `.notFound` naming it and the namespace.
    public nonisolated func container(namespace: String, id: String) async throws(BerthError) -> Container {
        try read { (db) throws(BerthError) in
            guard let found = try findContainer(namespace, id, db) else {
                throw .notFound("container \"\(id)\" in namespace \"\(namespace)\": not found")
            }
            return found
        }
    }

    /// Every container of `namespace`, by id.
    public nonisolated func containers(namespace: String) async throws(BerthError) -> [Container] {
        try read { (db) throws(BerthError) in
            try db.query("SELECT message, created, updated FROM containers WHERE namespace=? ORDER BY id", [.text(namespace)])
                .map { row throws(BerthError) in try Self.decode(row) }
        }
    }

    /// Replaces container `id` with what `change` makes of it, in one transaction.
    public func updateContainer(
        namespace: String, id: String,
        _ change: (Container) throws(BerthError) -> Container
    ) throws(BerthError) -> Container {
        try withDatabase { (db) throws(BerthError) in
            guard let current = try findContainer(namespace, id, db) else {
                throw .notFound("container \"\(id)\" in namespace \"\(namespace)\": not found")
            }
            var changed = try change(current)
            let now = Self.now()
            changed.clearCreatedAt()
            changed.clearUpdatedAt()
            try db.query(
                "UPDATE containers SET message=?, updated=?, snapshot_key=?, labels=? WHERE namespace=? AND id=?",
                [
                    .blob(try Self.encode(changed)), .integer(now), .text(changed.snapshotKey),
                    .text(try encodeLabels(changed.labels)), .text(namespace), .text(id),
                ])
            return try Self.stamped(
                changed, created: Int64(current.createdAt.seconds) * 1_000_000_000 + Int64(current.createdAt.nanos),
                updated: now)
        }
    }

    /// Deletes container `id`; `.notFound` when there is none.
    public func deleteContainer(namespace: String, id: String) throws(BerthError) {
        try withDatabase { (db) throws(BerthError) in
            guard try findContainer(namespace, id, db) != nil else {
                throw .notFound("container \"\(id)\" in namespace \"\(namespace)\": not found")
            }
            try db.query("DELETE FROM containers WHERE namespace=? AND id=?", [.text(namespace), .text(id)])
        }
    }

    private nonisolated func findContainer(_ namespace: String, _ id: String, _ db: SQLiteDatabase) throws(BerthError) -> Container? {
        try db.query("SELECT message, created, updated FROM containers WHERE namespace=? AND id=?", [.text(namespace), .text(id)])
            .first.map { row throws(BerthError) in try Self.decode(row) }
    }

    private static func encode(_ container: Container) throws(BerthError) -> [UInt8] {
        do { return try container.serializedBytes() } catch { throw .internal("container \"\(container.id)\" cannot be encoded: \(error)") }
    }

    private static func decode(_ row: [SQLiteValue]) throws(BerthError) -> Container {
        guard case .blob(let bytes) = row[0], let created = row[1].integer, let updated = row[2].integer,
            let container = try? Container(serializedBytes: bytes)
        else {
            throw .dataLoss("metadata database: unreadable container row")
        }
        return try stamped(container, created: created, updated: updated)
    }

    private static func stamped(_ container: Container, created: Int64, updated: Int64) throws(BerthError) -> Container {
        var stamped = container
        stamped.createdAt = Google_Protobuf_Timestamp(date: date(created))
        stamped.updatedAt = Google_Protobuf_Timestamp(date: date(updated))
        return stamped
    }
}
