import Foundation
import Kernel
import Testing

@testable import Storage

/// Garbage collection over the metadata store: what is kept, what goes, and leases.
@Suite struct CollectionTests {
    let store: MetadataStore
    let ns = "gc"
    static let digests = (0..<8).map { "sha256:" + String(repeating: String($0), count: 64) }

    init() throws {
        store = try MetadataStore(path: TestSupport.temporaryDirectory("gc") + "/meta.db", schemas: [.snapshots, .content, .leases, .images])
    }

    private func content(_ index: Int, _ labels: [String: String] = [:], lease: String = "", namespace: String? = nil) async throws {
        _ = try await store.insertContent(namespace: namespace ?? ns, digest: Self.digests[index], size: 1, labels: labels, lease: lease)
    }

    /// Prepares `key` on `parent`; with `commitAs`, commits it under that name.
    private func snapshot(
        _ key: String, parent: String = "", kind: SnapshotRecord.Kind = .active, labels: [String: String] = [:],
        commitAs name: String? = nil, lease: String = ""
    ) async throws {
        _ = try await store.insertSnapshot(
            namespace: ns, snapshotter: "overlayfs", key: key, parent: parent, kind: kind,
            labels: name == nil ? labels : [:], lease: lease)
        if let name {
            _ = try await store.commitSnapshot(namespace: ns, snapshotter: "overlayfs", key: key, name: name, labels: labels, lease: lease)
        }
    }

    private func keys() async throws -> [String] {
        try await store.snapshots(namespace: ns, snapshotter: "overlayfs").map(\.key)
    }

    private func contents() async throws -> [String] {
        try await store.contents(namespace: ns).map { String($0.digest.prefix(8)) }
    }

    @Test func collect_withoutLeases_keepsRootsReferencesAndOpenSnapshots() async throws {
        try await content(0, [CollectionLabel.root: "x", "containerd.io/gc.ref.content.config": Self.digests[1]])
        try await content(1, ["containerd.io/gc.ref.content": Self.digests[2]])
        try await content(2)
        try await content(3)
        try await snapshot("a", commitAs: "base")
        try await snapshot("work", parent: "base")
        try await snapshot("b", commitAs: "lonely")
        try await snapshot("c", commitAs: "viewed")
        try await snapshot("v", parent: "viewed", kind: .view)
        try await snapshot(
            "d",
            labels: [
                CollectionLabel.root: "x", "containerd.io/gc.ref.snapshot.overlayfs": "pinned",
                "containerd.io/gc.ref.content.layer": Self.digests[4],
            ], commitAs: "rooted")
        try await snapshot("e", commitAs: "pinned")
        try await content(4)

        let result = try await store.collectGarbage()
        #expect(result.contents == ["\(ns)/\(Self.digests[3])"])
        #expect(result.unrecordedDigests == [Self.digests[3]])
        #expect(result.snapshots.count == 1)
        #expect(try await keys() == ["base", "pinned", "rooted", "v", "viewed", "work"])
        #expect(try await contents() == ["sha256:0", "sha256:1", "sha256:2", "sha256:4"])
        // A second run finds nothing more.
        #expect(try await store.collectGarbage() == CollectionResult())
    }

    @Test func collect_parentOfRemovedChild_goesInTheSameRun() async throws {
        try await snapshot("a", commitAs: "base")
        try await snapshot("b", parent: "base", commitAs: "middle")
        try await snapshot("top", parent: "middle")
        #expect(try await store.collectGarbage().snapshots.isEmpty)
        _ = try await store.deleteSnapshot(namespace: ns, snapshotter: "overlayfs", key: "top")
        let result = try await store.collectGarbage()
        #expect(result.snapshots.count == 2)
        #expect(result.snapshots[0].id > result.snapshots[1].id, "children are removed before their parents")
        #expect(try await keys() == [])
    }

    @Test func collect_leaseHoldsWhatWasMadeUnderIt_untilDeleted() async throws {
        _ = try await store.createLease(namespace: ns, id: "pull", labels: [:])
        try await content(0, ["containerd.io/gc.ref.content": Self.digests[1]], lease: "pull")
        try await content(1)
        try await snapshot("extract", lease: "pull")
        try await snapshot("x", commitAs: "layer", lease: "pull")
        #expect(try await store.collectGarbage() == CollectionResult())
        #expect(
            try await store.leaseResources(namespace: ns, lease: "pull") == [
                .content(Self.digests[0]), .snapshot("overlayfs", "extract"), .snapshot("overlayfs", "layer"),
            ])

        try await store.deleteLease(namespace: ns, id: "pull")
        let result = try await store.collectGarbage()
        #expect(result.unrecordedDigests == [Self.digests[0], Self.digests[1]])
        // An active snapshot made under a lease is the lease's to keep, not its own.
        #expect(try await keys() == [])
    }

    @Test func collect_expiredLease_isDeletedWithWhatOnlyItHeld() async throws {
        let past = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-5))
        let future = Date().addingTimeInterval(3600)
        _ = try await store.createLease(namespace: ns, id: "old", labels: [CollectionLabel.expire: past])
        _ = try await store.createLease(namespace: ns, id: "new", labels: [CollectionLabel.expire: ISO8601DateFormatter().string(from: future)])
        try await content(0, lease: "old")
        try await content(1, lease: "new")
        let result = try await store.collectGarbage()
        #expect(result.expiredLeases == ["\(ns)/old"])
        #expect(result.unrecordedDigests == [Self.digests[0]])
        #expect(abs((result.nextExpiry ?? .distantPast).timeIntervalSince(future)) < 1)
        #expect(try await store.leases(namespace: ns).map(\.id) == ["new"])
    }

    @Test func collect_flatLease_keepsItsObjectsButNotTheirLabelReferences() async throws {
        _ = try await store.createLease(namespace: ns, id: "flat", labels: [CollectionLabel.flat: "1"])
        try await content(0, ["containerd.io/gc.ref.content": Self.digests[1]], lease: "flat")
        try await content(1)
        #expect(try await store.collectGarbage().unrecordedDigests == [Self.digests[1]])
        #expect(try await contents() == ["sha256:0"])
    }

    @Test func collect_referenceFromAnotherNamespace_doesNotHold() async throws {
        try await content(0, [CollectionLabel.root: "x", "containerd.io/gc.ref.content": Self.digests[1]], namespace: "other")
        try await content(1)
        try await content(1, namespace: "other")
        let result = try await store.collectGarbage()
        #expect(result.contents == ["\(ns)/\(Self.digests[1])"])
        #expect(result.unrecordedDigests == [], "the blob is still recorded in namespace other")
    }

    @Test func collect_imageTarget_andWhatImageLabelsReference_areKeptUntilTheImageGoes() async throws {
        try await content(0, ["containerd.io/gc.ref.content.config": Self.digests[1]])
        try await content(1, ["containerd.io/gc.ref.snapshot.overlayfs": "chain"])
        try await content(2)
        try await snapshot("extract", commitAs: "chain")
        _ = try await store.createImage(
            namespace: ns,
            ImageRecord(
                name: "docker.io/library/x:latest", labels: ["containerd.io/gc.ref.content.extra": Self.digests[2]],
                target: .init(mediaType: "application/vnd.oci.image.manifest.v1+json", digest: Self.digests[0], size: 1)))
        #expect(try await store.collectGarbage() == CollectionResult())
        try await store.deleteImage(namespace: ns, name: "docker.io/library/x:latest")
        let result = try await store.collectGarbage()
        #expect(result.unrecordedDigests == [Self.digests[0], Self.digests[1], Self.digests[2]])
        #expect(result.snapshots.count == 1, "the unpacked snapshot the config referenced")
    }

    @Test func leases_refusals_haveCodesAndNames() async throws {
        _ = try await store.createLease(namespace: ns, id: "l", labels: [:])
        await #expect(throws: BerthError(.alreadyExists, "lease \"l\": already exists")) {
            try await store.createLease(namespace: ns, id: "l", labels: [:])
        }
        await #expect(throws: BerthError(.notFound, "lease \"ghost\": not found")) { try await store.deleteLease(namespace: ns, id: "ghost") }
        await #expect(throws: BerthError(.notFound, "lease \"ghost\": not found")) {
            try await store.addLeaseResource(namespace: ns, lease: "ghost", .content(Self.digests[0]))
        }
        await #expect(throws: BerthError(.unimplemented, "lease resource type \"images\" is not supported (content, ingests, snapshots/<snapshotter>)")) {
            try await store.addLeaseResource(namespace: ns, lease: "l", LeaseResource(type: "images", id: "x"))
        }
        await #expect(throws: BerthError.self) { try await store.addLeaseResource(namespace: ns, lease: "l", .content("sha256:nope")) }
        await #expect(throws: BerthError(.invalidArgument, "lease resource type \"snapshots/\" must be snapshots/<snapshotter>")) {
            try await store.addLeaseResource(namespace: ns, lease: "l", LeaseResource(type: "snapshots/", id: "k"))
        }
        // An object made under a missing lease is refused and not half-made.
        await #expect(throws: BerthError(.notFound, "lease \"ghost\": not found")) { try await content(2, lease: "ghost") }
        await #expect(throws: BerthError(.notFound, "lease \"ghost\": not found")) { try await snapshot("k", lease: "ghost") }
        #expect(try await contents() == [])
        #expect(try await keys() == [])
        // Resources may name objects that do not exist (yet); adding twice is no error.
        try await store.addLeaseResource(namespace: ns, lease: "l", .snapshot("native", "later"))
        try await store.addLeaseResource(namespace: ns, lease: "l", .snapshot("native", "later"))
        try await store.deleteLeaseResource(namespace: ns, lease: "l", .content(Self.digests[5]))
        #expect(try await store.leaseResources(namespace: ns, lease: "l") == [.snapshot("native", "later")])
        await #expect(throws: BerthError(.failedPrecondition, "namespace \"gc\" must be empty, but it still has leases")) {
            try await store.deleteNamespace(ns)
        }
    }
}
