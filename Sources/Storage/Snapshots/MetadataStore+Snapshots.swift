import FoundationEssentials
import Glibc
import Kernel

/// Snapshot records in the metadata store. Each method is one transaction, which is what makes
/// the keyspace a lock: of several concurrent Prepares of one key, exactly one inserts.
extension MetadataStore {
    private static let columns = "id, namespace, snapshotter, key, parent, kind, labels, created, updated"

    /// Inserts a new active snapshot or view on top of committed `parent` (or none), creating the
    /// namespace if needed, and returns it with the parent chain's ids, nearest first. A
    /// non-empty `lease` must exist and then holds the new snapshot.
    public func insertSnapshot(
        namespace: String, snapshotter: String, key: String, parent: String,
        kind: SnapshotRecord.Kind, labels: [String: String], lease: String = ""
    ) throws(BerthError)
        -> (record: SnapshotRecord, parents: [Int64])
    {
        try withDatabase { (db) throws(BerthError) in
            try ensureNamespace(namespace, db)
            if !lease.isEmpty { try attach(.snapshot(snapshotter, key), lease: lease, namespace: namespace, db) }
            if try findSnapshot(namespace, snapshotter, key, db) != nil {
                throw .alreadyExists("snapshot \"\(key)\": already exists")
            }
            var parentID: SQLiteValue = .null
            var chain = [Int64]()
            if !parent.isEmpty {
                guard let parentRecord = try findSnapshot(namespace, snapshotter, parent, db) else {
                    throw .notFound("parent snapshot \"\(parent)\" does not exist")
                }
                guard parentRecord.kind == .committed else {
                    throw .invalidArgument("parent \"\(parent)\" is not a committed snapshot; only committed snapshots can be parents")
                }
                parentID = .integer(parentRecord.id)
                chain = try self.chain(from: parentRecord.id, db)
            }
            let now = Self.now()
            try db.query(
                """
                INSERT INTO snapshots (namespace, snapshotter, key, parent, parent_id, kind, labels, created, updated, leased)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    .text(namespace), .text(snapshotter), .text(key), .text(parent), parentID,
                    .integer(Int64(kind.rawValue)), .text(try encodeLabels(labels)), .integer(now), .integer(now),
                    .integer(lease.isEmpty ? 0 : 1),
                ])
            guard let record = try findSnapshot(namespace, snapshotter, key, db) else {
                throw .internal("snapshot \"\(key)\" vanished right after insert")
            }
            return (record, chain)
        }
    }

    /// The snapshot `key`; `.notFound` naming it when absent.
    public nonisolated func snapshot(namespace: String, snapshotter: String, key: String) async throws(BerthError)
        -> (record: SnapshotRecord, parents: [Int64])
    {
        try read { (db) throws(BerthError) in
            guard let record = try findSnapshot(namespace, snapshotter, key, db) else {
                throw .notFound("snapshot \"\(key)\" does not exist")
            }
            let parents = record.parent.isEmpty ? [] : try chain(from: try parentID(of: record.id, db), db)
            return (record, parents)
        }
    }

    /// Turns active `key` into committed `name` with `labels`; the key disappears. Under a
    /// `lease`, the lease holds `name` instead of `key` afterwards, as in containerd.
    public func commitSnapshot(
        namespace: String, snapshotter: String, key: String, name: String,
        labels: [String: String], lease: String = ""
    ) throws(BerthError) -> SnapshotRecord {
        try withDatabase { (db) throws(BerthError) in
            if !lease.isEmpty {
                try attach(.snapshot(snapshotter, name), lease: lease, namespace: namespace, db)
                try detach(.snapshot(snapshotter, key), lease: lease, namespace: namespace, db)
            }
            guard let active = try findSnapshot(namespace, snapshotter, key, db) else {
                throw .notFound("snapshot \"\(key)\" does not exist")
            }
            guard active.kind == .active else {
                throw .failedPrecondition("snapshot \"\(key)\" is \(active.kind.name); only active snapshots can be committed")
            }
            if try findSnapshot(namespace, snapshotter, name, db) != nil {
                throw .alreadyExists("snapshot \"\(name)\": already exists")
            }
            // A commit makes a new snapshot: created and updated are both now, as in containerd
            // (its TestSnapshotter/Update checks created == updated right after a commit).
            let now = Self.now()
            try db.query(
                "UPDATE snapshots SET key=?, kind=?, labels=?, created=?, updated=? WHERE id=?",
                [
                    .text(name), .integer(Int64(SnapshotRecord.Kind.committed.rawValue)),
                    .text(try encodeLabels(labels)), .integer(now), .integer(now), .integer(active.id),
                ])
            return try findSnapshot(namespace, snapshotter, name, db)!
        }
    }

    /// Deletes `key`; `.failedPrecondition` while other snapshots are built on it.
    public func deleteSnapshot(namespace: String, snapshotter: String, key: String) throws(BerthError) -> SnapshotRecord {
        try withDatabase { (db) throws(BerthError) in
            guard let record = try findSnapshot(namespace, snapshotter, key, db) else {
                throw .notFound("snapshot \"\(key)\" does not exist")
            }
            let children = try db.query("SELECT COUNT(*) FROM snapshots WHERE parent_id=?", [.integer(record.id)]).first?[0].integer ?? 0
            guard children == 0 else {
                throw .failedPrecondition("cannot remove snapshot \"\(key)\": \(children) snapshot\(children == 1 ? "" : "s") still use it as parent")
            }
            try db.query("DELETE FROM snapshots WHERE id=?", [.integer(record.id)])
            return record
        }
    }

    /// Applies a label update (field paths as in `LabelUpdate`) to `key`.
    public func updateSnapshotLabels(
        namespace: String, snapshotter: String, key: String,
        labels: [String: String], paths: [String]
    ) throws(BerthError) -> SnapshotRecord {
        try withDatabase { (db) throws(BerthError) in
            guard var record = try findSnapshot(namespace, snapshotter, key, db) else {
                throw .notFound("snapshot \"\(key)\" does not exist")
            }
            let fixed = paths.filter { ["name", "parent", "kind", "created_at", "updated_at"].contains($0) }
            guard fixed.isEmpty else {
                throw .invalidArgument("cannot update field \"\(fixed[0])\" of snapshot \"\(key)\": only labels change")
            }
            record.labels = try LabelUpdate.apply(labels, to: record.labels, paths: paths, object: "snapshot \"\(key)\"")
            try Validation.labels(record.labels)
            try db.query(
                "UPDATE snapshots SET labels=?, updated=? WHERE id=?",
                [.text(try encodeLabels(record.labels)), .integer(Self.now()), .integer(record.id)])
            return try findSnapshot(namespace, snapshotter, key, db)!
        }
    }

    /// Every snapshot of `snapshotter` in `namespace`, by key.
    public nonisolated func snapshots(namespace: String, snapshotter: String) async throws(BerthError) -> [SnapshotRecord] {
        try read { (db) throws(BerthError) in
            var records = [SnapshotRecord]()
            for row in try db.query(
                "SELECT \(Self.columns) FROM snapshots WHERE namespace=? AND snapshotter=? ORDER BY key",
                [.text(namespace), .text(snapshotter)])
            {
                records.append(try snapshotRecord(row))
            }
            return records
        }
    }

    /// Every layer id of `snapshotter` in every namespace: what Cleanup must keep.
    public func snapshotIDs(snapshotter: String) throws(BerthError) -> [Int64] {
        try withDatabase { (db) throws(BerthError) in
            try db.query("SELECT id FROM snapshots WHERE snapshotter=?", [.text(snapshotter)]).compactMap { $0[0].integer }
        }
    }

    /// Deletes the records of active snapshots and views among `ids` (their layers were never
    /// made) and names the committed ones, which it keeps.
    public func dropUnfinishedSnapshots(snapshotter: String, ids: [Int64]) throws(BerthError)
        -> (dropped: [String], broken: [String])
    {
        try withDatabase { (db) throws(BerthError) in
            var dropped = [String](), broken = [String]()
            for id in ids {
                guard
                    let row = try db.query(
                        "SELECT \(Self.columns) FROM snapshots WHERE id=? AND snapshotter=?",
                        [.integer(id), .text(snapshotter)]
                    ).first
                else { continue }
                let record = try snapshotRecord(row)
                guard record.kind != .committed else {
                    broken.append("\(record.namespace)/\(record.key)")
                    continue
                }
                try db.query("DELETE FROM snapshots WHERE id=?", [.integer(id)])
                dropped.append("\(record.namespace)/\(record.key)")
            }
            return (dropped, broken)
        }
    }

    // MARK: - Helpers inside a transaction

    private nonisolated func findSnapshot(
        _ namespace: String, _ snapshotter: String, _ key: String,
        _ db: SQLiteDatabase
    ) throws(BerthError) -> SnapshotRecord? {
        let rows = try db.query(
            "SELECT \(Self.columns) FROM snapshots WHERE namespace=? AND snapshotter=? AND key=?",
            [.text(namespace), .text(snapshotter), .text(key)])
        return try rows.first.map { (row) throws(BerthError) in try snapshotRecord(row) }
    }

    private nonisolated func parentID(of id: Int64, _ db: SQLiteDatabase) throws(BerthError) -> Int64 {
        guard let parent = try db.query("SELECT parent_id FROM snapshots WHERE id=?", [.integer(id)]).first?[0].integer else {
            throw .dataLoss("metadata database: snapshot \(id) names a parent that is gone")
        }
        return parent
    }

    /// `id` and its ancestors, nearest first.
    private nonisolated func chain(from id: Int64, _ db: SQLiteDatabase) throws(BerthError) -> [Int64] {
        try db.query(
            """
            WITH RECURSIVE chain(id, parent_id, depth) AS (
                SELECT id, parent_id, 0 FROM snapshots WHERE id=?
                UNION ALL SELECT s.id, s.parent_id, c.depth + 1 FROM snapshots s JOIN chain c ON s.id = c.parent_id)
            SELECT id FROM chain ORDER BY depth
            """, [.integer(id)]
        ).compactMap { $0[0].integer }
    }

    private nonisolated func snapshotRecord(_ row: [SQLiteValue]) throws(BerthError) -> SnapshotRecord {
        guard let id = row[0].integer, let namespace = row[1].text, let snapshotter = row[2].text,
            let key = row[3].text, let parent = row[4].text, let kindValue = row[5].integer,
            let kind = SnapshotRecord.Kind(rawValue: Int(kindValue)), let labels = decodeLabels(row[6].text),
            let created = row[7].integer, let updated = row[8].integer
        else {
            throw .dataLoss("metadata database: unreadable snapshot row")
        }
        return SnapshotRecord(
            id: id, namespace: namespace, snapshotter: snapshotter, key: key, parent: parent,
            kind: kind, labels: labels, created: Self.date(created), updated: Self.date(updated))
    }
}
