import BerthPluginKit
import Foundation
import Testing

/// Both in-tree snapshot drivers through the driver contract's kit (the plugin alone, as a third
/// party runs it), and through the snapshots service's rules (driver and storage layer together).
@Suite struct ConformanceTests {
    static let plugin =
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path + "/.build/debug/libBerthSnapshotter.so"

    @Test(arguments: ["overlayfs", "native"], SnapshotDriverConformance.cases)
    func driverContract(driver: String, rule: SnapshotDriverConformance.Case) async throws {
        try await SnapshotDriverConformance.run(rule, plugin: Self.plugin, id: driver)
    }

    @Test(arguments: ["overlayfs", "native"], SnapshotterConformance.cases)
    func serviceRules(driver: String, rule: SnapshotterConformance.Case) async throws {
        try await SnapshotterHarness.with(plugin: Self.plugin, id: driver) { try await rule.run($0) }
    }
}

/// The in-tree content store through the store contract's kit.
@Suite struct ContentStoreKitTests {
    static let plugin =
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path + "/.build/debug/libBerthContent.so"

    @Test(arguments: ContentStoreConformance.cases)
    func storeContract(rule: ContentStoreConformance.Case) async throws {
        try await ContentStoreConformance.run(rule, plugin: Self.plugin, id: "content")
    }
}
