import FoundationEssentials
import Glibc
import Kernel

/// A lease as one namespace sees it: what the Leases service lists.
public struct LeaseRecord: Sendable, Equatable {
    public var id: String
    public var labels: [String: String]
    public var created: Date

    /// Field lookup for containerd filters: id, labels.KEY.
    public func field(_ path: [String]) -> String? {
        switch path.first {
        case "id": id
        case "labels" where path.count == 2: labels[path[1]]
        default: nil
        }
    }
}

/// One object a lease holds, named as containerd's Leases API names it.
public struct LeaseResource: Sendable, Hashable {
    /// "content", "ingests" or "snapshots/<snapshotter>".
    public var type: String
    /// A digest, an ingest ref or a snapshot key.
    public var id: String

    public init(type: String, id: String) {
        self.type = type
        self.id = id
    }

    public static func content(_ digest: String) -> LeaseResource { .init(type: "content", id: digest) }
    public static func snapshot(_ snapshotter: String, _ key: String) -> LeaseResource {
        .init(type: "snapshots/" + snapshotter, id: key)
    }

    /// Refuses malformed resources with `.invalidArgument` and unknown types with
    /// `.unimplemented`, as containerd's lease manager does.
    public func validate() throws(BerthError) {
        guard !id.isEmpty else { throw .invalidArgument("lease resource of type \"\(type)\" has an empty id") }
        switch type {
        case "content": try ContentDigest.validate(id)
        case "ingests": break
        case let type where type.hasPrefix("snapshots/"):
            guard type.count > "snapshots/".count, !type.dropFirst("snapshots/".count).contains("/") else {
                throw .invalidArgument("lease resource type \"\(type)\" must be snapshots/<snapshotter>")
            }
        default:
            throw .unimplemented("lease resource type \"\(type)\" is not supported (content, ingests, snapshots/<snapshotter>)")
        }
    }
}

/// The labels that steer garbage collection, with containerd's meanings
/// (docs/garbage-collection.md in containerd).
public enum CollectionLabel {
    /// Any value keeps the object and what it references.
    public static let root = "containerd.io/gc.root"
    /// On a lease: an RFC 3339 time after which the lease is deleted.
    public static let expire = "containerd.io/gc.expire"
    /// On a lease: its objects' own label references are not followed.
    public static let flat = "containerd.io/gc.flat"
    /// `...content` or `...content.<name>`: the value is a digest this object references.
    public static let contentReference = "containerd.io/gc.ref.content"
    /// `...snapshot.<snapshotter>`: the value is a snapshot key this object references.
    public static let snapshotReference = "containerd.io/gc.ref.snapshot."

    /// Whether changing `key` can change what the collector keeps.
    public static func affectsCollection(_ key: String) -> Bool { key.hasPrefix("containerd.io/gc.") }

    /// Parses an expiry value; nil when it is not an RFC 3339 time.
    public static func expiry(_ value: String) -> Date? {
        if let date = try? Date(value, strategy: .iso8601) { return date }
        return try? Date(value, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}

extension MetadataSchema {
    /// Leases per namespace and the objects each one holds (by name; the objects need not exist).
    public static let leases = MetadataSchema(
        statements: [
            """
            CREATE TABLE IF NOT EXISTS leases (
                namespace TEXT NOT NULL,
                id TEXT NOT NULL,
                labels TEXT NOT NULL,
                created INTEGER NOT NULL,
                PRIMARY KEY (namespace, id))
            """,
            """
            CREATE TABLE IF NOT EXISTS lease_resources (
                namespace TEXT NOT NULL,
                lease TEXT NOT NULL,
                type TEXT NOT NULL,
                resource TEXT NOT NULL,
                PRIMARY KEY (namespace, lease, type, resource))
            """,
            // Ingests opened under a lease: containerd collects such an ingest once no lease holds
            // it, where one opened without a lease only expires with age.
            """
            CREATE TABLE IF NOT EXISTS leased_ingests (
                namespace TEXT NOT NULL,
                ref TEXT NOT NULL,
                PRIMARY KEY (namespace, ref))
            """,
        ], namespacedTables: [("leases", "leases")])
}
