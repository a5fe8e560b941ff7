import FoundationEssentials
import Glibc
import Kernel

/// One snapshot as the kernel's metadata knows it; what `Stat` and `Walk` return.
public struct SnapshotRecord: Sendable, Equatable {
    /// containerd's three kinds; raw values are the wire enum's numbers.
    public enum Kind: Int, Sendable {
        case view = 1
        case active = 2
        case committed = 3

        /// The word containerd's filters and `ctr` use.
        public var name: String {
            switch self {
            case .view: "view"
            case .active: "active"
            case .committed: "committed"
            }
        }
    }

    /// The driver's layer id, unique per snapshotter across namespaces.
    public var id: Int64
    public var namespace: String
    public var snapshotter: String
    /// The key (active, view) or name (committed).
    public var key: String
    /// The parent's name, or "".
    public var parent: String
    public var kind: Kind
    public var labels: [String: String]
    public var created: Date
    public var updated: Date

    /// Field lookup for containerd filters: name, parent, kind, labels.KEY.
    public func field(_ path: [String]) -> String? {
        switch path.first {
        case "name": key
        case "parent": parent
        case "kind": kind.name
        case "labels" where path.count == 2: labels[path[1]]
        default: nil
        }
    }
}

extension MetadataSchema {
    /// The snapshots table: one keyspace per (namespace, snapshotter); `parent_id` links a
    /// snapshot to the committed snapshot below it.
    public static let snapshots = MetadataSchema(
        statements: [
            """
            CREATE TABLE IF NOT EXISTS snapshots (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                namespace TEXT NOT NULL,
                snapshotter TEXT NOT NULL,
                key TEXT NOT NULL,
                parent TEXT NOT NULL,
                parent_id INTEGER REFERENCES snapshots(id),
                kind INTEGER NOT NULL,
                labels TEXT NOT NULL,
                created INTEGER NOT NULL,
                updated INTEGER NOT NULL,
                UNIQUE (namespace, snapshotter, key))
            """,
            "CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent_id)",
        ], namespacedTables: [("snapshots", "snapshots")],
        // 1 when the active snapshot or view was made under a lease: then the lease, not its kind,
        // keeps it from the garbage collector.
        addedColumns: [("snapshots", "leased", "INTEGER NOT NULL DEFAULT 0")])
}
