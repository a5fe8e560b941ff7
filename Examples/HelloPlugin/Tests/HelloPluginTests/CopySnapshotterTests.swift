import BerthPluginKit
import Foundation
import Testing

/// The copy snapshotter through every case of the driver contract, loaded from this package's
/// own shared object exactly as berthd loads it.
@Suite struct CopySnapshotterTests {
    static let plugin =
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path + "/.build/debug/libHelloPlugin.so"

    @Test(arguments: SnapshotDriverConformance.cases)
    func driverContract(rule: SnapshotDriverConformance.Case) async throws {
        try await SnapshotDriverConformance.run(rule, plugin: Self.plugin, id: "hello-copy")
    }
}
