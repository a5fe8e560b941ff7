import FoundationEssentials
import Glibc
import Kernel

/// What one garbage collection removed from the metadata store; the caller then removes the
/// layers and blobs behind it.
public struct CollectionResult: Sendable, Equatable {
    /// Leases whose `containerd.io/gc.expire` time had passed, as "namespace/id".
    public var expiredLeases: [String] = []
    /// Snapshot records removed, with the driver that holds each layer.
    public var snapshots: [(snapshotter: String, id: Int64)] = []
    /// Content records removed, as "namespace/digest".
    public var contents: [String] = []
    /// Digests that no namespace records any more: their blobs can go.
    public var unrecordedDigests: [String] = []
    /// The earliest expiry among the leases that remain.
    public var nextExpiry: Date?
    /// Ingests unexpired leases hold, as "namespace/ref" (the content store's form).
    public var leasedIngests: [String] = []
    /// Ingests opened under a lease that no lease holds any more, as "namespace/ref": the
    /// caller removes them (their records are gone with this run).
    public var releasedIngests: [String] = []

    /// Whether the run deleted no lease, record or blob.
    public var removedNothing: Bool {
        expiredLeases.isEmpty && snapshots.isEmpty && contents.isEmpty && unrecordedDigests.isEmpty
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.expiredLeases == b.expiredLeases && a.contents == b.contents && a.unrecordedDigests == b.unrecordedDigests
            && a.snapshots.map { "\($0.snapshotter)/\($0.id)" } == b.snapshots.map { "\($0.snapshotter)/\($0.id)" }
            && a.nextExpiry == b.nextExpiry && a.leasedIngests == b.leasedIngests && a.releasedIngests == b.releasedIngests
    }
}

/// Mark and sweep over the metadata store, in one transaction so that no create, commit or
/// label change can interleave between deciding what is unreachable and deleting it.
///
/// Roots: objects labelled `containerd.io/gc.root`; everything an unexpired lease names; each
/// image's target and what the image's labels reference;
/// active snapshots and views made outside a lease (a client that prepared or viewed a
/// snapshot is using it until it removes it; containerd instead collects them, which loses a
/// fresh `ctr snapshots view`, containerd#11908). Edges: a snapshot's parent, and the
/// `containerd.io/gc.ref.content[.<name>]` and `containerd.io/gc.ref.snapshot.<snapshotter>`
/// labels of content and snapshots. A `containerd.io/gc.flat` lease keeps its objects but not
/// what their labels reference. Records of other parts hold objects too (`CollectionRoots`: a
/// container holds its snapshot and what its labels reference).
extension MetadataStore {
    public func collectGarbage(now: Date = Date(), rootQueries: [String] = []) throws(BerthError) -> CollectionResult {
        try withDatabase { (db) throws(BerthError) in
            var result = CollectionResult()
            let graph = try CollectionGraph(store: self, db: db, now: now, rootQueries: rootQueries)
            result.expiredLeases = graph.expiredLeases.map { "\($0.namespace)/\($0.id)" }
            result.nextExpiry = graph.nextExpiry
            result.leasedIngests = graph.leasedIngests.sorted()
            for row in try db.query("SELECT namespace, ref FROM leased_ingests") {
                guard let namespace = row[0].text, let ref = row[1].text, !graph.leasedIngests.contains("\(namespace)/\(ref)") else { continue }
                try db.query("DELETE FROM leased_ingests WHERE namespace=? AND ref=?", [.text(namespace), .text(ref)])
                result.releasedIngests.append("\(namespace)/\(ref)")
            }
            for (namespace, id) in graph.expiredLeases {
                try db.query("DELETE FROM lease_resources WHERE namespace=? AND lease=?", [.text(namespace), .text(id)])
                try db.query("DELETE FROM leases WHERE namespace=? AND id=?", [.text(namespace), .text(id)])
            }
            let marked = graph.mark()
            // Children have larger ids than their parents: delete newest first.
            for snapshot in graph.snapshots.values.sorted(by: { $0.id > $1.id }) where !marked.contains(.snapshot(snapshot.id)) {
                try db.query("DELETE FROM snapshots WHERE id=?", [.integer(snapshot.id)])
                result.snapshots.append((snapshot.snapshotter, snapshot.id))
            }
            var removedDigests = Set<String>()
            for content in graph.contents.keys.sorted() where !marked.contains(.content(content)) {
                let (namespace, digest) = CollectionGraph.split(content)
                try db.query("DELETE FROM content WHERE namespace=? AND digest=?", [.text(namespace), .text(digest)])
                result.contents.append(content)
                removedDigests.insert(digest)
            }
            for digest in removedDigests.sorted()
            where try db.query("SELECT 1 FROM content WHERE digest=? LIMIT 1", [.text(digest)]).isEmpty {
                result.unrecordedDigests.append(digest)
            }
            return result
        }
    }
}

/// Every collectable object and lease, loaded once per collection.
struct CollectionGraph {
    enum Node: Hashable {
        case snapshot(Int64)
        /// "namespace/digest".
        case content(String)
    }

    struct Snapshot {
        var id: Int64
        var namespace: String
        var snapshotter: String
        var parentID: Int64?
        var labels: [String: String]
        /// Active or view made outside a lease.
        var inUse: Bool
    }

    var snapshots = [Int64: Snapshot]()
    /// "namespace/snapshotter/key" → id.
    var snapshotIDs = [String: Int64]()
    /// "namespace/digest" → labels.
    var contents = [String: [String: String]]()
    /// Objects unexpired leases hold, with whether their label references count.
    var leased = [(node: Node, followLabels: Bool)]()
    /// Ingest refs unexpired leases hold, as "namespace/ref".
    var leasedIngests = Set<String>()
    /// Objects images and other records hold: image targets, a container's snapshot, and what
    /// their labels reference.
    var imageRoots = [(node: Node, followLabels: Bool)]()
    var expiredLeases = [(namespace: String, id: String)]()
    var nextExpiry: Date?

    init(store: MetadataStore, db: SQLiteDatabase, now: Date, rootQueries: [String] = []) throws(BerthError) {
        for row in try db.query("SELECT id, namespace, snapshotter, key, parent_id, kind, leased, labels FROM snapshots") {
            guard let id = row[0].integer, let namespace = row[1].text, let snapshotter = row[2].text, let key = row[3].text,
                let kind = row[5].integer, let labels = store.decodeLabels(row[7].text)
            else {
                throw .dataLoss("metadata database: unreadable snapshot row")
            }
            let inUse = kind != Int64(SnapshotRecord.Kind.committed.rawValue) && row[6].integer == 0
            snapshots[id] = Snapshot(
                id: id, namespace: namespace, snapshotter: snapshotter, parentID: row[4].integer,
                labels: labels, inUse: inUse)
            snapshotIDs["\(namespace)/\(snapshotter)/\(key)"] = id
        }
        for row in try db.query("SELECT namespace, digest, labels FROM content") {
            guard let namespace = row[0].text, let digest = row[1].text, let labels = store.decodeLabels(row[2].text) else {
                throw .dataLoss("metadata database: unreadable content row")
            }
            contents["\(namespace)/\(digest)"] = labels
        }
        if try !db.query("SELECT 1 FROM sqlite_master WHERE type='table' AND name='images'").isEmpty {
            for row in try db.query("SELECT namespace, digest, labels FROM images") {
                guard let namespace = row[0].text, let digest = row[1].text, let labels = store.decodeLabels(row[2].text) else {
                    throw .dataLoss("metadata database: unreadable image row")
                }
                imageRoots.append((.content("\(namespace)/\(digest)"), true))
                imageRoots += references(labels, namespace: namespace)
            }
        }
        for query in rootQueries {
            for row in try db.query(query) {
                guard let namespace = row[0].text, let snapshotter = row[1].text, let key = row[2].text,
                    let labels = store.decodeLabels(row[3].text)
                else {
                    throw .dataLoss("metadata database: unreadable row of collection roots")
                }
                if let id = snapshotIDs["\(namespace)/\(snapshotter)/\(key)"] { imageRoots.append((.snapshot(id), true)) }
                imageRoots += references(labels, namespace: namespace)
            }
        }
        var flat = Set<String>()
        for row in try db.query("SELECT namespace, id, labels FROM leases") {
            guard let namespace = row[0].text, let id = row[1].text, let labels = store.decodeLabels(row[2].text) else {
                throw .dataLoss("metadata database: unreadable lease row")
            }
            if let expiry = labels[CollectionLabel.expire].flatMap(CollectionLabel.expiry) {
                if expiry <= now {
                    expiredLeases.append((namespace, id))
                    continue
                }
                nextExpiry = min(nextExpiry ?? expiry, expiry)
            }
            if labels[CollectionLabel.flat] != nil { flat.insert("\(namespace)/\(id)") }
        }
        let expired = Set(expiredLeases.map { "\($0.namespace)/\($0.id)" })
        for row in try db.query("SELECT namespace, lease, type, resource FROM lease_resources") {
            guard let namespace = row[0].text, let lease = row[1].text, let type = row[2].text, let resource = row[3].text,
                !expired.contains("\(namespace)/\(lease)")
            else { continue }
            let follow = !flat.contains("\(namespace)/\(lease)")
            if type == "ingests" {
                leasedIngests.insert("\(namespace)/\(resource)")
            } else if type == "content" {
                leased.append((.content("\(namespace)/\(resource)"), follow))
            } else if type.hasPrefix("snapshots/"), let id = snapshotIDs["\(namespace)/\(type.dropFirst(10))/\(resource)"] {
                leased.append((.snapshot(id), follow))
            }
        }
    }

    /// Every node reachable from a root.
    func mark() -> Set<Node> {
        var work = [(node: Node, followLabels: Bool)]()
        for (id, snapshot) in snapshots where snapshot.inUse || snapshot.labels[CollectionLabel.root] != nil {
            work.append((.snapshot(id), true))
        }
        for (key, labels) in contents where labels[CollectionLabel.root] != nil { work.append((.content(key), true)) }
        work += leased + imageRoots
        // A node reached first without its labels may be reached again with them.
        var reached = [Node: Bool]()
        while let (node, follow) = work.popLast() {
            if let seen = reached[node], seen || !follow { continue }
            reached[node] = follow
            switch node {
            case .snapshot(let id):
                guard let snapshot = snapshots[id] else { continue }
                if let parent = snapshot.parentID { work.append((.snapshot(parent), true)) }
                if follow { work += references(snapshot.labels, namespace: snapshot.namespace) }
            case .content(let key):
                guard let labels = contents[key] else { continue }
                if follow { work += references(labels, namespace: Self.split(key).namespace) }
            }
        }
        return Set(reached.keys)
    }

    /// The objects that labels reference, in the same namespace.
    private func references(_ labels: [String: String], namespace: String) -> [(node: Node, followLabels: Bool)] {
        var nodes = [(node: Node, followLabels: Bool)]()
        for (key, value) in labels {
            if key == CollectionLabel.contentReference || key.hasPrefix(CollectionLabel.contentReference + ".") {
                nodes.append((.content("\(namespace)/\(value)"), true))
            } else if key.hasPrefix(CollectionLabel.snapshotReference),
                let id = snapshotIDs["\(namespace)/\(key.dropFirst(CollectionLabel.snapshotReference.count))/\(value)"]
            {
                nodes.append((.snapshot(id), true))
            }
        }
        return nodes
    }

    static func split(_ key: String) -> (namespace: String, digest: String) {
        let slash = key.firstIndex(of: "/")!
        return (String(key[..<slash]), String(key[key.index(after: slash)...]))
    }
}
