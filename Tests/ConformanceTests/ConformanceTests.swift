import Foundation
import ConformanceKit
import Testing

/// Both in-tree drivers through every case of the snapshotter conformance kit.
@Suite struct ConformanceTests {
    static let plugin = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path + "/.build/debug/libBerthSnapshotter.so"

    @Test(arguments: ["overlayfs", "native"], SnapshotterConformance.cases)
    func conformance(driver: String, rule: SnapshotterConformance.Case) async throws {
        try await SnapshotterHarness.with(plugin: Self.plugin, id: driver) { try await rule.run($0) }
    }
}
