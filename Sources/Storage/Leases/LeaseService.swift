import Filters
import FoundationEssentials
import Glibc
import Kernel

/// The lease contract, kept by the kernel.
///
/// Terms: a lease belongs to one namespace and names objects (content, ingests, snapshots) that
/// the garbage collector must keep while the lease exists, whether or not they exist yet. A
/// request of another service that carries the lease (the `containerd-lease` header) adds what it
/// creates to it. A lease with a `containerd.io/gc.expire` label (RFC 3339) is deleted by the
/// collector once that time has passed.
///
/// Worked example: `create(id: "pull")` → content commits and snapshot prepares under "pull" →
/// label the results `containerd.io/gc.root` or reference them from an image → `delete("pull")`;
/// whatever nothing else holds is then collected.
///
/// Repeats and absences: creating an existing id is `.alreadyExists`; deleting, listing the
/// resources of, or adding to a missing lease is `.notFound`; adding a resource twice or
/// removing one the lease does not hold is not an error.
public struct LeaseService: Sendable {
    let metadata: MetadataStore
    let collection: CollectionTrigger?

    public init(metadata: MetadataStore, collection: CollectionTrigger? = nil) {
        self.metadata = metadata
        self.collection = collection
    }

    /// Bound on a lease id, which containerd otherwise leaves free-form.
    public static let maxIDLength = 256

    /// Creates lease `id` (a random one when empty) with `labels`.
    public func create(namespace: String, id: String, labels: [String: String]) async throws -> LeaseRecord {
        let id = id.isEmpty ? Self.randomID() : id
        try Self.validate(id: id)
        if let value = labels[CollectionLabel.expire], !value.isEmpty {
            guard let expiry = CollectionLabel.expiry(value) else {
                throw BerthError.invalidArgument("lease \"\(id)\": label \(CollectionLabel.expire)=\"\(value.prefix(64))\" is not an RFC 3339 time")
            }
            collection?.noteExpiry(expiry)
        }
        return try await metadata.createLease(namespace: namespace, id: id, labels: labels)
    }

    /// Deletes lease `id`; with `sync`, returns after a collection that no longer sees it.
    public func delete(namespace: String, id: String, sync: Bool) async throws {
        try await metadata.deleteLease(namespace: namespace, id: id)
        if sync { await collection?.collect() } else { collection?.schedule() }
    }

    /// Leases of `namespace` matching any of `filters` (fields id, labels.KEY).
    public func list(namespace: String, filters: [String]) async throws -> [LeaseRecord] {
        let filterSet = try FilterSet(filters)
        return try await metadata.leases(namespace: namespace).filter { filterSet.matches($0.field) }
    }

    public func addResource(namespace: String, id: String, _ resource: LeaseResource) async throws {
        try await metadata.addLeaseResource(namespace: namespace, lease: id, resource)
    }

    /// Removes `resource` from the lease; it may then be collected.
    public func deleteResource(namespace: String, id: String, _ resource: LeaseResource) async throws {
        try await metadata.deleteLeaseResource(namespace: namespace, lease: id, resource)
        collection?.schedule()
    }

    public func resources(namespace: String, id: String) async throws -> [LeaseResource] {
        try await metadata.leaseResources(namespace: namespace, lease: id)
    }

    /// Printable, at most 256 bytes: ids travel in a gRPC header.
    static func validate(id: String) throws(BerthError) {
        guard id.utf8.count <= maxIDLength else {
            throw .invalidArgument("lease id \"\(id.prefix(64))...\" is longer than \(maxIDLength) bytes")
        }
        guard id.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
            throw .invalidArgument("lease id \"\(id.debugDescription.dropFirst().dropLast())\" contains control characters")
        }
    }

    /// The form containerd's client uses: creation time and a random suffix.
    static func randomID() -> String {
        let suffix = (0..<4).map { _ in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".randomElement()! }
        return "\(Int(Date().timeIntervalSince1970 * 1e9) % 1_000_000_000)-\(String(suffix))"
    }
}
