import Foundation
import Testing

@testable import Kernel

@Suite struct MetadataStoreTests {
    let path = TestSupport.temporaryDirectory("meta") + "/meta.db"

    @Test func namespaces_createGetUpdateList_roundTrip() async throws {
        let store = try MetadataStore(path: path)
        _ = try await store.createNamespace(NamespaceRecord(name: "alpha", labels: ["a": "1"]))
        _ = try await store.createNamespace(NamespaceRecord(name: "beta"))
        let updated = try await store.updateNamespace(
            NamespaceRecord(name: "alpha", labels: ["b": "2", "a": ""]),
            paths: ["labels.b", "labels.a"])
        #expect(updated.labels == ["b": "2"])
        #expect(try await store.namespaces().map(\.name) == ["alpha", "beta"])
        #expect(try await store.namespace("alpha").labels == ["b": "2"])
    }

    @Test func namespaces_refusals_haveCodesAndNames() async throws {
        let store = try MetadataStore(path: path)
        _ = try await store.createNamespace(NamespaceRecord(name: "alpha"))
        await #expect(throws: BerthError(.alreadyExists, "namespace \"alpha\": already exists")) {
            try await store.createNamespace(NamespaceRecord(name: "alpha"))
        }
        await #expect(throws: BerthError(.notFound, "namespace \"ghost\": not found")) { try await store.namespace("ghost") }
        await #expect(throws: BerthError(.notFound, "namespace \"ghost\": not found")) { try await store.deleteNamespace("ghost") }
        await #expect(throws: BerthError(.invalidArgument, "namespace name \"a..b\" must be letters and digits joined by single '.', '_' or '-'")) {
            try await store.createNamespace(NamespaceRecord(name: "a..b"))
        }
        await #expect(throws: BerthError(.invalidArgument, "label \"k\": key and value are larger than 4096 bytes")) {
            try await store.createNamespace(NamespaceRecord(name: "big", labels: ["k": String(repeating: "v", count: 4096)]))
        }
        await #expect(throws: BerthError(.invalidArgument, "cannot update field \"name\" of namespace \"alpha\"")) {
            try await store.updateNamespace(NamespaceRecord(name: "alpha"), paths: ["name"])
        }
        #expect(try await store.namespaces().map(\.name) == ["alpha"])
    }

    @Test func deleteNamespace_holdingObjects_isFailedPreconditionListingKinds() async throws {
        let schema = MetadataSchema(
            statements: ["CREATE TABLE IF NOT EXISTS widgets (namespace TEXT NOT NULL, key TEXT NOT NULL)"],
            namespacedTables: [("widgets", "widgets")])
        let store = try MetadataStore(path: path, schemas: [schema])
        _ = try await store.createNamespace(NamespaceRecord(name: "busy"))
        try await store.withDatabase { (db) throws(BerthError) in try db.query("INSERT INTO widgets VALUES ('busy', 'w1')") }
        await #expect(throws: BerthError(.failedPrecondition, "namespace \"busy\" must be empty, but it still has widgets")) {
            try await store.deleteNamespace("busy")
        }
        try await store.withDatabase { (db) throws(BerthError) in try db.query("DELETE FROM widgets") }
        try await store.deleteNamespace("busy")
        #expect(try await store.namespaces().isEmpty)
    }

    @Test func store_reopened_keepsCommittedDataAndUUID() async throws {
        // The store holds its file exclusively while open: the first one is closed before the
        // second opens, as across a daemon restart.
        let uuid: String = try await {
            let first = try MetadataStore(path: path)
            _ = try await first.createNamespace(NamespaceRecord(name: "kept", labels: ["x": "y"]))
            return try await first.serverUUID()
        }()
        let second = try MetadataStore(path: path)
        #expect(try await second.namespace("kept") == NamespaceRecord(name: "kept", labels: ["x": "y"]))
        #expect(try await second.serverUUID() == uuid)
    }
}
