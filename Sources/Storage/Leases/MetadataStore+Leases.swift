import FoundationEssentials
import Glibc
import Kernel

/// Lease records in the metadata store; each method is one transaction.
extension MetadataStore {
    /// Creates lease `id` in `namespace` (creating the namespace); `.alreadyExists` if taken.
    /// Labels with empty values are dropped, as containerd stores them.
    public func createLease(namespace: String, id: String, labels: [String: String]) throws(BerthError) -> LeaseRecord {
        let labels = labels.filter { !$0.value.isEmpty }
        try Validation.labels(labels)
        return try withDatabase { (db) throws(BerthError) in
            try ensureNamespace(namespace, db)
            if try findLease(namespace, id, db) != nil { throw .alreadyExists("lease \"\(id)\": already exists") }
            try db.query(
                "INSERT INTO leases (namespace, id, labels, created) VALUES (?, ?, ?, ?)",
                [.text(namespace), .text(id), .text(try encodeLabels(labels)), .integer(Self.now())])
            return try findLease(namespace, id, db)!
        }
    }

    /// Every lease of `namespace`, by id.
    public nonisolated func leases(namespace: String) async throws(BerthError) -> [LeaseRecord] {
        try read { (db) throws(BerthError) in
            try db.query("SELECT id, labels, created FROM leases WHERE namespace=? ORDER BY id", [.text(namespace)])
                .map { (row) throws(BerthError) in try leaseRecord(row) }
        }
    }

    /// Deletes lease `id` and its resource list; the objects themselves stay until collected.
    public func deleteLease(namespace: String, id: String) throws(BerthError) {
        try withDatabase { (db) throws(BerthError) in
            guard try findLease(namespace, id, db) != nil else { throw .notFound("lease \"\(id)\": not found") }
            try db.query("DELETE FROM lease_resources WHERE namespace=? AND lease=?", [.text(namespace), .text(id)])
            try db.query("DELETE FROM leases WHERE namespace=? AND id=?", [.text(namespace), .text(id)])
        }
    }

    /// Adds `resource` to lease `id`; adding it twice is not an error.
    public func addLeaseResource(namespace: String, lease id: String, _ resource: LeaseResource) throws(BerthError) {
        try resource.validate()
        try withDatabase { (db) throws(BerthError) in try attach(resource, lease: id, namespace: namespace, db) }
    }

    /// Removes `resource` from lease `id`; removing one it does not hold is not an error.
    public func deleteLeaseResource(namespace: String, lease id: String, _ resource: LeaseResource) throws(BerthError) {
        try resource.validate()
        try withDatabase { (db) throws(BerthError) in
            guard try findLease(namespace, id, db) != nil else { throw .notFound("lease \"\(id)\": not found") }
            try detach(resource, lease: id, namespace: namespace, db)
        }
    }

    /// Notes that a writer opens ingest `ref`: under `lease` (which must exist), the lease holds
    /// it and the collector removes it once no lease does; without one, it is nobody's and
    /// expires with age (containerd records the same choice on its ingest).
    public func holdIngest(namespace: String, ref: String, lease: String) throws(BerthError) {
        try withDatabase { (db) throws(BerthError) in
            guard !lease.isEmpty else {
                try db.query("DELETE FROM leased_ingests WHERE namespace=? AND ref=?", [.text(namespace), .text(ref)])
                return
            }
            try attach(LeaseResource(type: "ingests", id: ref), lease: lease, namespace: namespace, db)
            try db.query("INSERT OR IGNORE INTO leased_ingests (namespace, ref) VALUES (?, ?)", [.text(namespace), .text(ref)])
        }
    }

    /// What lease `id` holds, by type and id.
    public nonisolated func leaseResources(namespace: String, lease id: String) async throws(BerthError) -> [LeaseResource] {
        try read { (db) throws(BerthError) in
            guard try findLease(namespace, id, db) != nil else { throw .notFound("lease \"\(id)\": not found") }
            return try db.query(
                "SELECT type, resource FROM lease_resources WHERE namespace=? AND lease=? ORDER BY type, resource",
                [.text(namespace), .text(id)]
            ).compactMap { row in
                guard let type = row[0].text, let resource = row[1].text else { return nil }
                return LeaseResource(type: type, id: resource)
            }
        }
    }

    // MARK: - Inside a transaction

    /// Adds `resource` to lease `id` of `namespace`; `.notFound` when there is no such lease, so
    /// that an object made under a mistyped lease is refused rather than left unprotected.
    func attach(_ resource: LeaseResource, lease id: String, namespace: String, _ db: SQLiteDatabase) throws(BerthError) {
        guard try findLease(namespace, id, db) != nil else { throw .notFound("lease \"\(id)\": not found") }
        try db.query(
            "INSERT OR IGNORE INTO lease_resources (namespace, lease, type, resource) VALUES (?, ?, ?, ?)",
            [.text(namespace), .text(id), .text(resource.type), .text(resource.id)])
    }

    func detach(_ resource: LeaseResource, lease id: String, namespace: String, _ db: SQLiteDatabase) throws(BerthError) {
        try db.query(
            "DELETE FROM lease_resources WHERE namespace=? AND lease=? AND type=? AND resource=?",
            [.text(namespace), .text(id), .text(resource.type), .text(resource.id)])
    }

    private nonisolated func findLease(_ namespace: String, _ id: String, _ db: SQLiteDatabase) throws(BerthError) -> LeaseRecord? {
        let rows = try db.query("SELECT id, labels, created FROM leases WHERE namespace=? AND id=?", [.text(namespace), .text(id)])
        return try rows.first.map { (row) throws(BerthError) in try leaseRecord(row) }
    }

    private nonisolated func leaseRecord(_ row: [SQLiteValue]) throws(BerthError) -> LeaseRecord {
        guard let id = row[0].text, let labels = decodeLabels(row[1].text), let created = row[2].integer else {
            throw .dataLoss("metadata database: unreadable lease row")
        }
        return LeaseRecord(id: id, labels: labels, created: Self.date(created))
    }
}
