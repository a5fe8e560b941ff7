import Foundation
import Kernel
import Testing

@testable import Filters
@testable import Storage

/// Storage rules behind differences that containerd's conformance suites found (issue 11).
@Suite struct ContainerdParityTests {
    let store: MetadataStore

    init() throws {
        store = try MetadataStore(path: TestSupport.temporaryDirectory("parity") + "/meta.db", schemas: [.snapshots, .content, .leases, .images])
    }

    /// containerd's TestSnapshotter/Update: a commit makes a new snapshot, so created and
    /// updated are equal and later than the active snapshot's creation.
    @Test func commitSnapshot_ofAnOlderActive_createdEqualsUpdatedAtCommitTime() async throws {
        let prepared = try await store.insertSnapshot(
            namespace: "ns", snapshotter: "overlayfs", key: "a", parent: "",
            kind: .active, labels: [:]
        ).record
        try await Task.sleep(for: .milliseconds(20))
        let beforeCommit = Date()
        let committed = try await store.commitSnapshot(namespace: "ns", snapshotter: "overlayfs", key: "a", name: "c", labels: [:])
        #expect(committed.created == committed.updated)
        #expect(committed.created >= beforeCommit.addingTimeInterval(-0.001))
        #expect(committed.created > prepared.created)
        #expect(try await store.snapshot(namespace: "ns", snapshotter: "overlayfs", key: "c").record == committed)
    }

    /// containerd's scanner reads a run of operator characters as one token: "===" is an
    /// unsupported operator, and so is an operator character that starts the value.
    @Test func filter_runOfOperatorCharacters_isInvalidArgumentNamingTheOperator() throws {
        #expect(throws: BerthError(.invalidArgument, "filter \"labels.x===y\": unsupported operator \"===\" at offset 8")) {
            try Filter(parsing: "labels.x===y")
        }
        #expect(throws: BerthError(.invalidArgument, "filter \"labels.x!==y\": unsupported operator \"!==\" at offset 8")) {
            try FilterSet(["labels.x!==y"])
        }
        #expect(throws: BerthError(.invalidArgument, "filter \"labels.x== =y\": expected a value at offset 11")) {
            try Filter(parsing: "labels.x== =y")
        }
        #expect(try Filter(parsing: "labels.x==a=b").selectors == [.init(fieldPath: ["labels", "x"], op: .equal, value: "a=b")])
    }

    /// An ingest opened under a lease is released by the first collection after its last lease
    /// goes (once); one opened without a lease is never released, only expired with age.
    @Test func collectGarbage_afterTheLeaseOfAnIngestGoes_releasesItOnce() async throws {
        _ = try await store.createLease(namespace: "ns", id: "import", labels: [:])
        try await store.holdIngest(namespace: "ns", ref: "tar-blob", lease: "import")
        try await store.holdIngest(namespace: "ns", ref: "loose", lease: "")
        let held = try await store.collectGarbage()
        #expect(held.leasedIngests == ["ns/tar-blob"])
        #expect(held.releasedIngests == [])
        try await store.deleteLease(namespace: "ns", id: "import")
        #expect(try await store.collectGarbage().releasedIngests == ["ns/tar-blob"])
        #expect(try await store.collectGarbage().releasedIngests == [])
    }

    /// Reopening a ref without a lease makes the ingest nobody's: it is not released with the
    /// lease that held it before.
    @Test func holdIngest_reopenedWithoutLease_isNotReleasedWithTheOldLease() async throws {
        _ = try await store.createLease(namespace: "ns", id: "first", labels: [:])
        try await store.holdIngest(namespace: "ns", ref: "r", lease: "first")
        try await store.holdIngest(namespace: "ns", ref: "r", lease: "")
        try await store.deleteLease(namespace: "ns", id: "first")
        #expect(try await store.collectGarbage().releasedIngests == [])
        await #expect(throws: BerthError(.notFound, "lease \"ghost\": not found")) {
            try await store.holdIngest(namespace: "ns", ref: "r", lease: "ghost")
        }
    }
}
