import Foundation
import Logging

@testable import Kernel

/// Paths and helpers shared by the kernel tests.
enum TestSupport {
    /// The repository root, found from this file's location.
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    /// A fresh empty directory under /tmp.
    static func temporaryDirectory(_ label: String = "berth-test") -> String {
        let path = NSTemporaryDirectory() + "\(label)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Compiles `source` (relative to the repository) with gcc into a shared object.
    static func buildCPlugin(_ source: String, flags: [String] = [], into directory: String, name: String) throws -> String {
        let output = "\(directory)/\(name).so"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/gcc")
        process.arguments =
            [
                "-shared", "-fPIC", "-Wall", "-Werror",
                "-I", "\(repositoryRoot)/SDK/Sources/CBerthPlugin/include",
                "-o", output, "\(repositoryRoot)/\(source)",
            ] + flags
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw BerthError.internal("gcc failed for \(source) \(flags)") }
        return output
    }

    static let fixture = "Tests/Fixtures/fixture_plugin.c"

    static let logger = Logger(label: "test")
}

/// A registration whose code is a no-op, for graph tests.
func builtin(_ type: String, _ id: String, requires: [String] = [], required: Bool = false) -> Registration {
    struct Nothing: PluginInstance {}
    return Registration(
        name: PluginName(type: PluginType(type), id: id), requires: requires.map { PluginType($0) },
        required: required, origin: .builtin { _ in Nothing() })
}
