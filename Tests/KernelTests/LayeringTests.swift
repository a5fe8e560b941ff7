import Foundation
import Testing

/// The kernel stays a microkernel: it imports only the plugin machinery's own needs, never a
/// service layer (storage, filters, the gRPC API, NIO). The package graph already refuses such
/// an import at build time; this test names the rule and the file that breaks it.
@Suite struct LayeringTests {
    static let allowedImports: Set<String> = [
        "BerthProto", "CBerthPlugin", "CSQLite", "Dispatch", "FoundationEssentials", "Glibc", "Logging", "ServiceLifecycle",
        "SwiftProtobuf", "Synchronization",
    ]

    @Test func kernelSources_importNoServiceLayer() throws {
        let root = TestSupport.repositoryRoot + "/Sources/Kernel"
        let files = try FileManager.default.subpathsOfDirectory(atPath: root).filter { $0.hasSuffix(".swift") }
        #expect(files.count > 10)
        var offending = [String]()
        for file in files {
            let text = try String(contentsOfFile: root + "/" + file, encoding: .utf8)
            for line in text.split(separator: "\n") where line.hasPrefix("import ") || line.hasPrefix("@testable import ") {
                let module = String(line.split(separator: " ").last!)
                if !Self.allowedImports.contains(module) { offending.append("\(file): \(line)") }
            }
        }
        #expect(offending == [])
    }
}
