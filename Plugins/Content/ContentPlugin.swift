import BerthPluginSDK
import BerthProto
import FoundationEssentials
import Glibc
import SwiftProtobuf

/// The content store: blobs by digest and ingests by ref, on disk. The kernel keeps which
/// namespace sees which blob, with labels and times; this plugin keeps bytes.
final class ContentPlugin: BerthPlugin {
    private let host: PluginHost
    private let blobs: BlobStore
    private let ingests: IngestStore
    let methods: MethodTable

    init(host: PluginHost) {
        self.host = host
        let blobs = BlobStore(root: host.rootDirectory + "/blobs/sha256", removal: DeferredRemoval(trash: host.rootDirectory + "/trash"))
        let ingests = IngestStore(root: host.rootDirectory + "/ingest", blobs: blobs)
        self.blobs = blobs
        self.ingests = ingests
        var m = MethodTable()
        m.serve(BerthContracts.ContentStore.info) { r, _ in try blobs.info(r.digest) }
        m.serve(BerthContracts.ContentStore.readAt) { r, _ in
            try Berth_Content_V1_ReadAtReply.with { $0.data = try blobs.read(r.digest, offset: r.offset, size: r.size) }
        }
        m.serve(BerthContracts.ContentStore.openRead) { r, _ in try blobs.openForReading(r.digest) }
        m.serve(BerthContracts.ContentStore.delete) { r, _ in
            try blobs.delete(r.digest)
            return Google_Protobuf_Empty()
        }
        // Walk and Expire list whole folders.
        m.serve(BerthContracts.ContentStore.walk, blocking: true) { _, _ in try Berth_Content_V1_BlobList.with { $0.blobs = try blobs.walk() } }
        m.serve(BerthContracts.ContentStore.open) { r, _ in
            try ingests.open(ref: r.ref, total: r.total, expected: r.expected)
        }
        m.serve(BerthContracts.ContentStore.write) { r, _ in try ingests.write(r) }
        // Syncs the whole blob to disk.
        m.serve(BerthContracts.ContentStore.commit, blocking: true) { r, _ in
            try ingests.commit(ref: r.ref, size: r.size, expected: r.expected)
        }
        m.serve(BerthContracts.ContentStore.close) { r, _ in
            ingests.close(ref: r.ref)
            return Google_Protobuf_Empty()
        }
        m.serve(BerthContracts.ContentStore.abort) { r, _ in
            try ingests.abort(ref: r.ref)
            return Google_Protobuf_Empty()
        }
        m.serve(BerthContracts.ContentStore.status) { r, _ in try ingests.status(ref: r.ref) }
        m.serve(BerthContracts.ContentStore.ingests) { r, _ in
            Berth_Content_V1_IngestList.with { $0.ingests = ingests.list(prefix: r.ref) }
        }
        m.serve(BerthContracts.ContentStore.expire, blocking: true) { r, _ in
            Berth_Content_V1_IngestList.with { $0.ingests = ingests.expire(before: r.updatedBefore.date, keep: Set(r.keep)) }
        }
        methods = m
    }

    func start() async throws {
        for folder in [blobs.root, ingests.root] {
            try FileManager.default.createDirectory(
                atPath: folder, withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700])
        }
        try blobs.removal.open()
    }

    func stop() async {
        blobs.closeAll()
    }
}
