import BerthProto
import Filters
import FoundationEssentials
import Glibc
import Kernel
import SwiftProtobuf
import Synchronization

/// The content contract, kept by the kernel over a content store plugin.
///
/// Terms: a blob is addressed by its sha256 digest and stored once; each namespace sees the
/// blobs recorded for it, with its own labels. Writes go through an *ingest* named by a
/// client-chosen ref: resumable (reopening reports what is written and its digest so far),
/// exclusive (a second writer gets `.unavailable`), and ended by a commit that checks the
/// expected size and digest (a mismatch is `.failedPrecondition` and the ingest stays usable;
/// content the namespace already has is `.alreadyExists`). A writer that expects a digest the
/// store holds for another namespace stands for those bytes (containerd's default "shared"
/// policy): it reports them as written, and a commit records them here without a transfer.
/// An ingest opened under a lease goes once no lease holds it; one opened without a lease
/// expires when nobody has written to it for a day.
///
/// Worked example: `openWriter(ref: "r")` → `write(offset: 0, data)` → `commit(expected: d)` →
/// `info(d)` answers the size; `read(d, offset: 0, size: 32768)` the first bytes.
public struct ContentService: Sendable {
    let metadata: MetadataStore
    let plugins: PluginDirectory
    let events: EventBus
    /// Told when a deletion or a gc label change may leave objects unreachable.
    let collection: CollectionTrigger?
    /// Held while deciding that a blob has no record and deleting it, and while committing a
    /// blob and recording it: so that a blob being recorded is never deleted under it.
    let gate = AsyncGate()

    public init(metadata: MetadataStore, plugins: PluginDirectory, events: EventBus, collection: CollectionTrigger? = nil) {
        self.metadata = metadata
        self.plugins = plugins
        self.events = events
        self.collection = collection
    }

    public func info(namespace: String, digest: String) async throws -> ContentRecord {
        try ContentDigest.validate(digest)
        return try await metadata.content(namespace: namespace, digest: digest)
    }

    public func update(namespace: String, digest: String, labels: [String: String], paths: [String]) async throws -> ContentRecord {
        try ContentDigest.validate(digest)
        let record = try await metadata.updateContentLabels(namespace: namespace, digest: digest, labels: labels, paths: paths)
        if LabelUpdate.mayAffectCollection(paths: paths) { collection?.schedule() }
        return record
    }

    public func list(namespace: String, filters: [String]) async throws -> [ContentRecord] {
        let filterSet = try FilterSet(filters)
        return try await metadata.contents(namespace: namespace).filter { filterSet.matches($0.field) }
    }

    /// Forgets `digest` in `namespace`; the bytes go once no namespace records them.
    public func delete(namespace: String, digest: String) async throws {
        try ContentDigest.validate(digest)
        try await gate.withLock {
            let stillUsed = try await metadata.deleteContent(namespace: namespace, digest: digest)
            // If the store fails here, the next start removes the unrecorded blob.
            if !stillUsed { try? await deleteBlob(digest) }
        }
        events.publish(topic: "/content/delete", namespace: namespace, Containerd_Events_ContentDelete.with { $0.digest = digest })
        collection?.schedule()
    }

    /// Deletes the bytes of `digest`; only with `gate` held and no record left.
    func deleteBlob(_ digest: String) async throws {
        _ = try await call(BerthContracts.ContentStore.delete, Berth_Content_V1_BlobRequest.with { $0.digest = digest })
    }

    /// Removes ingests no writer holds, last written before `cutoff`, other than `keep`
    /// ("namespace/ref"); returns the removed ones as "namespace/ref".
    func expireIngests(before cutoff: Date, keep: [String]) async throws -> [String] {
        try await call(
            BerthContracts.ContentStore.expire,
            Berth_Content_V1_ExpireIngestsRequest.with {
                $0.updatedBefore = Google_Protobuf_Timestamp(date: cutoff)
                $0.keep = keep
            }
        ).ingests.map(\.ref)
    }

    /// Deletes blobs that no namespace records (a crash between a store commit and its record
    /// leaves one); returns their digests.
    func removeUnrecordedBlobs() async throws -> [String] {
        try await gate.withLock {
            let stored = try await call(BerthContracts.ContentStore.walk, Google_Protobuf_Empty()).blobs.map(\.digest)
            let recorded = try await metadata.recordedDigests()
            let orphans = stored.filter { !recorded.contains($0) }
            for digest in orphans { try await deleteBlob(digest) }
            return orphans
        }
    }

    /// Up to `size` bytes of `digest` from `offset` (fewer at the end).
    public func read(namespace: String, digest: String, offset: Int64, size: Int64) async throws -> Data {
        try await open(namespace: namespace, digest: digest).read(offset: offset, size: size)
    }

    /// Checks once that `namespace` sees `digest`, for reading it in many pieces.
    public func open(namespace: String, digest: String) async throws -> ContentBlob {
        let record = try await info(namespace: namespace, digest: digest)
        return ContentBlob(record: record, store: try store())
    }

    /// Opens (or resumes) the ingest `ref`, holding it until the writer is closed. A non-empty
    /// `lease` (which must exist when the writer commits) holds the committed content.
    public func openWriter(namespace: String, ref: String, total: Int64, expected: String, lease: String = "") async throws -> ContentWriter {
        guard !ref.isEmpty else { throw BerthError.invalidArgument("ingest ref must not be empty") }
        if !expected.isEmpty { try ContentDigest.validate(expected) }
        if !expected.isEmpty, (try? await metadata.content(namespace: namespace, digest: expected)) != nil {
            throw BerthError.alreadyExists("content \(expected): already exists")
        }
        let store = try store()
        // As in containerd, a lease holds the ingest too, so a long transfer is not expired, and
        // the collector removes the ingest once no lease holds it.
        try await metadata.holdIngest(namespace: namespace, ref: ref, lease: lease)
        // containerd's shared policy: bytes stored for any namespace count as written, when the
        // declared size (if any) agrees; a write or truncation first makes a real ingest.
        if !expected.isEmpty,
            let blob = try? await store.call(
                BerthContracts.ContentStore.info,
                Berth_Content_V1_BlobRequest.with {
                    $0.digest = expected
                }), total <= 0 || total == blob.size
        {
            return ContentWriter(
                service: self, store: store, namespace: namespace, ref: ref, lease: lease,
                shared: .init(blob: blob, total: total, expected: expected))
        }
        let state = try await store.call(
            BerthContracts.ContentStore.open,
            Berth_Content_V1_OpenIngestRequest.with {
                $0.ref = Self.storeRef(namespace, ref)
                $0.total = total
                $0.expected = expected
            })
        return ContentWriter(
            service: self, store: store, namespace: namespace, ref: ref, lease: lease,
            state: Self.unprefixed(state, namespace))
    }

    public func status(namespace: String, ref: String) async throws -> Berth_Content_V1_IngestState {
        let state = try await call(BerthContracts.ContentStore.status, Berth_Content_V1_IngestRef.with { $0.ref = Self.storeRef(namespace, ref) })
        return Self.unprefixed(state, namespace)
    }

    /// Ingests of `namespace` matching any of `filters` (field `ref`).
    public func listStatuses(namespace: String, filters: [String]) async throws -> [Berth_Content_V1_IngestState] {
        let filterSet = try FilterSet(filters)
        let list = try await call(BerthContracts.ContentStore.ingests, Berth_Content_V1_IngestRef.with { $0.ref = Self.storeRef(namespace, "") })
        return list.ingests.map { Self.unprefixed($0, namespace) }.filter { state in
            filterSet.matches { $0 == ["ref"] ? state.ref : nil }
        }
    }

    public func abort(namespace: String, ref: String) async throws {
        _ = try await call(BerthContracts.ContentStore.abort, Berth_Content_V1_IngestRef.with { $0.ref = Self.storeRef(namespace, ref) })
    }

    /// Removes the ingests named ("namespace/ref") that a collection found no lease holds any
    /// more; returns those that existed.
    func abortReleasedIngests(_ refs: [String]) async -> [String] {
        var removed = [String]()
        for ref in refs {
            do {
                _ = try await call(BerthContracts.ContentStore.abort, Berth_Content_V1_IngestRef.with { $0.ref = ref })
                removed.append(ref)
            } catch {}
        }
        return removed
    }

    // MARK: -

    /// Ingest refs are per namespace; the store sees them prefixed.
    static func storeRef(_ namespace: String, _ ref: String) -> String { "\(namespace)/\(ref)" }

    static func unprefixed(_ state: Berth_Content_V1_IngestState, _ namespace: String) -> Berth_Content_V1_IngestState {
        var state = state
        state.ref = String(state.ref.dropFirst(namespace.count + 1))
        return state
    }

    func store() throws(BerthError) -> any PluginInstance {
        guard let store = plugins.instance(of: .content) else {
            throw .unavailable("no content store plugin is running")
        }
        return store
    }

    /// Calls one method of the store contract on the running content plugin.
    func call<Request, Response>(_ method: ContractMethod<Request, Response>, _ request: Request) async throws -> Response {
        try await store().call(method, request)
    }
}

/// A blob a namespace sees, opened for reads.
public struct ContentBlob: Sendable {
    public let record: ContentRecord
    let store: any PluginInstance

    /// A read-only descriptor of the blob in this process, for the caller to close, or nil
    /// when the store does not offer one (`OpenRead` is optional in the store contract).
    public func descriptor() async throws -> Int32? {
        do {
            return try await store.call(
                BerthContracts.ContentStore.openRead,
                Berth_Content_V1_BlobRequest.with {
                    $0.digest = record.digest
                }
            ).descriptor
        } catch let error as BerthError where error.code == .unimplemented {
            return nil
        }
    }

    /// Up to `size` bytes from `offset` (fewer at the end of the blob).
    public func read(offset: Int64, size: Int64) async throws -> Data {
        try await store.call(
            BerthContracts.ContentStore.readAt,
            Berth_Content_V1_ReadAtRequest.with {
                $0.digest = record.digest
                $0.offset = offset
                $0.size = size
            }
        ).data
    }
}

/// One held ingest. Close it when the client's stream ends, committed or not.
public final class ContentWriter: Sendable {
    let service: ContentService
    let store: any PluginInstance
    public let namespace: String
    public let ref: String
    /// The lease that holds what this writer commits, or "".
    public let lease: String
    /// The state when opened: bytes already written and their digest.
    public let opened: Berth_Content_V1_IngestState

    /// Stored bytes a writer stands for (containerd's shared content), with the size and digest
    /// its client declared.
    struct SharedBlob: Sendable {
        var blob: Berth_Content_V1_BlobInfo
        var total: Int64
        var expected: String
    }

    /// Set while the writer stands for stored bytes and holds no ingest: until its first write.
    private let shared: Mutex<SharedBlob?>

    init(
        service: ContentService, store: any PluginInstance, namespace: String, ref: String, lease: String,
        state: Berth_Content_V1_IngestState
    ) {
        self.service = service
        self.store = store
        self.namespace = namespace
        self.ref = ref
        self.lease = lease
        self.opened = state
        shared = Mutex(nil)
    }

    /// A writer standing for `shared`: it reports the blob as written, started and updated now.
    init(service: ContentService, store: any PluginInstance, namespace: String, ref: String, lease: String, shared: SharedBlob) {
        self.service = service
        self.store = store
        self.namespace = namespace
        self.ref = ref
        self.lease = lease
        let now = Google_Protobuf_Timestamp(date: Date())
        opened = .with {
            $0.ref = ref
            $0.offset = shared.blob.size
            $0.total = shared.blob.size
            $0.expected = shared.blob.digest
            $0.digest = shared.blob.digest
            $0.startedAt = now
            $0.updatedAt = now
        }
        self.shared = Mutex(shared)
    }

    public func status() async throws -> Berth_Content_V1_IngestState {
        if shared.withLock({ $0 }) != nil { return opened }
        return try await service.status(namespace: namespace, ref: ref)
    }

    /// Writes `data` at `offset` (the current size, or 0 to start over).
    public func write(offset: Int64, data: Data, total: Int64, expected: String) async throws -> Berth_Content_V1_IngestState {
        if let shared = shared.withLock({ $0 }) {
            guard offset == 0 || offset == shared.blob.size else {
                throw BerthError(
                    .outOfRange, "write to ref \"\(ref)\" at offset \(offset), but \(shared.blob.size) bytes are written; write at \(shared.blob.size) or 0")
            }
            // Writing nothing at the end changes nothing (containerd's writer does not unshare).
            if data.isEmpty, offset != 0 { return opened }
            try await unshare(shared, copying: offset != 0)
        }
        let state = try await store.call(
            BerthContracts.ContentStore.write,
            Berth_Content_V1_IngestWriteRequest.with {
                $0.ref = ContentService.storeRef(namespace, ref)
                $0.offset = offset
                $0.data = data
                $0.total = total
                $0.expected = expected
            })
        return ContentService.unprefixed(state, namespace)
    }

    /// Verifies and stores the blob, then records it in the namespace with `labels`.
    public func commit(size: Int64, expected: String, labels: [String: String]) async throws -> ContentRecord {
        try Validation.labels(labels)
        let shared = shared.withLock { $0 }
        if let shared {
            guard size <= 0 || size == shared.blob.size else {
                throw BerthError.failedPrecondition("commit of ref \"\(ref)\": expected size \(size), content is \(shared.blob.size) bytes")
            }
            guard expected.isEmpty || expected == shared.blob.digest else {
                throw BerthError.failedPrecondition("commit of ref \"\(ref)\": expected digest \(expected), content is \(shared.blob.digest)")
            }
        }
        let (blob, record) = try await service.gate.withLock {
            // Shared bytes must still be stored: deletions in the other namespaces take the gate.
            let blob = if let shared { try await self.storedBlob(shared.blob.digest) } else { try await self.storeCommit(size: size, expected: expected) }
            let record = try await self.service.metadata.insertContent(
                namespace: self.namespace, digest: blob.digest, size: blob.size,
                labels: labels, lease: self.lease)
            return (blob, record)
        }
        service.events.publish(
            topic: "/content/create", namespace: namespace,
            Containerd_Events_ContentCreate.with {
                $0.digest = blob.digest
                $0.size = blob.size
            })
        return record
    }

    /// Verifies and moves the ingest into the store (a blob stored already, for this or another
    /// namespace, counts as stored: the namespace's record decides `.alreadyExists`).
    private func storeCommit(size: Int64, expected: String) async throws -> Berth_Content_V1_BlobInfo {
        try await store.call(
            BerthContracts.ContentStore.commit,
            Berth_Content_V1_IngestCommitRequest.with {
                $0.ref = ContentService.storeRef(namespace, ref)
                $0.size = size
                $0.expected = expected
            })
    }

    /// The stored blob `digest`; `.notFound` when it is gone.
    private func storedBlob(_ digest: String) async throws -> Berth_Content_V1_BlobInfo {
        try await store.call(BerthContracts.ContentStore.info, Berth_Content_V1_BlobRequest.with { $0.digest = digest })
    }

    /// Opens the ingest of a writer that stood for stored bytes, and fills it with them unless
    /// the client starts over at offset 0 (containerd's `createAndCopy`).
    private func unshare(_ shared: SharedBlob, copying: Bool) async throws {
        let storeRef = ContentService.storeRef(namespace, ref)
        _ = try await store.call(
            BerthContracts.ContentStore.open,
            Berth_Content_V1_OpenIngestRequest.with {
                $0.ref = storeRef
                $0.total = shared.total
                $0.expected = shared.expected
            })
        self.shared.withLock { $0 = nil }
        var offset: Int64 = 0
        while copying, offset < shared.blob.size {
            let data = try await store.call(
                BerthContracts.ContentStore.readAt,
                Berth_Content_V1_ReadAtRequest.with {
                    $0.digest = shared.blob.digest
                    $0.offset = offset
                    $0.size = min(1 << 20, shared.blob.size - offset)
                }
            ).data
            guard !data.isEmpty else { throw BerthError(.dataLoss, "content \(shared.blob.digest) ended at \(offset) of \(shared.blob.size) bytes") }
            // The first piece, at offset 0, also drops whatever an earlier session left.
            _ = try await store.call(
                BerthContracts.ContentStore.write,
                Berth_Content_V1_IngestWriteRequest.with {
                    $0.ref = storeRef
                    $0.offset = offset
                    $0.data = data
                })
            offset += Int64(data.count)
        }
    }

    /// Releases the ingest; its bytes stay for a later writer to resume.
    public func close() async {
        // A writer that stood for stored bytes opened no ingest: the ref may be another's.
        if shared.withLock({ $0 }) != nil { return }
        _ = try? await store.call(
            BerthContracts.ContentStore.close,
            Berth_Content_V1_IngestRef.with {
                $0.ref = ContentService.storeRef(namespace, ref)
            })
    }
}
