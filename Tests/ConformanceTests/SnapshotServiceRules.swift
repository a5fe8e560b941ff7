import BerthPluginKit
import Foundation
import Kernel
import Storage

/// The rules of the snapshots service (the storage layer above the kernel, not a driver's):
/// one keyspace, parents, records, filters, updates, namespaces and start-up cleanup, run over
/// each in-tree driver. What a driver itself must do is `BerthPluginKit`'s
/// `SnapshotDriverConformance`, which runs against the plugin alone.
enum SnapshotterConformance {
    /// One rule and its check.
    struct Case: Sendable, CustomStringConvertible {
        let name: String
        let run: @Sendable (SnapshotterHarness) async throws -> Void
        var description: String { name }
    }

    static let ns = "conformance"

    static let cases: [Case] = keyspaceCases + recordCases
}

// MARK: - Checks

func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw ConformanceFailure(description: message()) }
}

func expectEqual<T: Equatable>(_ found: T, _ expected: T, _ what: String) throws {
    try expect(found == expected, "\(what): expected \(expected), found \(found)")
}

/// Runs `body` and checks it fails with `code`.
func expectError(_ code: BerthError.Code, _ what: String, _ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as BerthError {
        try expectEqual(error.code, code, "\(what): error code (message: \(error.message))")
        return
    }
    throw ConformanceFailure(description: "\(what): expected \(code), but it succeeded")
}

extension SnapshotterHarness {
    func prepare(_ key: String, _ parent: String = "", namespace: String = SnapshotterConformance.ns) async throws -> [SnapshotService.Mount] {
        try await snapshots.prepare(namespace: namespace, snapshotter: snapshotter, key: key, parent: parent, labels: [:])
    }

    func commit(_ name: String, _ key: String, namespace: String = SnapshotterConformance.ns) async throws {
        try await snapshots.commit(namespace: namespace, snapshotter: snapshotter, name: name, key: key, labels: [:])
    }

    /// Prepares `key` on `parent`, lets `write` change its files, and commits it as `name`.
    func layer(_ name: String, on parent: String = "", _ write: (String) throws -> Void) async throws {
        let mounts = try await prepare("active-\(name)", parent)
        try withMounted(mounts, write)
        try await commit(name, "active-\(name)")
    }
}
