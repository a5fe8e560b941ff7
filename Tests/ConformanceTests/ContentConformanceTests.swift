import Foundation
import Testing

/// The in-tree content store through every case of the content conformance kit.
@Suite struct ContentConformanceTests {
    static let plugin =
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path + "/.build/debug/libBerthContent.so"

    @Test(arguments: ContentConformance.cases)
    func conformance(rule: ContentConformance.Case) async throws {
        try await ContentHarness.with(plugin: Self.plugin) { try await rule.run($0) }
    }
}
