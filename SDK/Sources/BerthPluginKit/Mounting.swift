import BerthProto
import Foundation

/// Mounts what a snapshotter returns with mount(8), as containerd's client does, including
/// its answer to the kernel's one-page limit on mount options: when the options are long,
/// overlay paths are made relative to their common folder and mount runs inside it.
public enum MountTool {
    /// Mount options longer than this are shortened (containerd uses the page size less 512).
    static let longOptions = 4096 - 512

    public static func mount(_ mounts: [Containerd_Types_Mount], at target: String) throws {
        for m in mounts {
            var options = m.options
            var directory: String? = nil
            if m.type == "overlay", options.joined(separator: ",").utf8.count >= longOptions {
                (options, directory) = relativeOverlayOptions(options)
            }
            let type = m.type == "bind" ? [] : ["-t", m.type]
            let result = try run("/bin/mount", type + [m.source, target, "-o", options.joined(separator: ",")], in: directory)
            guard result.status == 0 else {
                throw ConformanceFailure(description: "mount \(m.type) on \(target) failed: \(result.output)")
            }
        }
    }

    public static func unmount(_ target: String) {
        _ = try? run("/bin/umount", [target], in: nil)
    }

    /// Mounts `mounts` on a fresh folder under `directory`, runs `body` there, unmounts.
    public static func withMounted<T>(
        _ mounts: [Containerd_Types_Mount], under directory: String,
        _ body: (String) throws -> T
    ) throws -> T {
        let target = directory + "/mnt-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: target) }
        try mount(mounts, at: target)
        defer { unmount(target) }
        return try body(target)
    }

    /// Rewrites lowerdir/upperdir/workdir paths relative to their longest common folder.
    static func relativeOverlayOptions(_ options: [String]) -> ([String], String) {
        let keys: Set<Substring> = ["lowerdir", "upperdir", "workdir"]
        let paths = options.flatMap { option -> [String] in
            guard let eq = option.firstIndex(of: "="), keys.contains(option[..<eq]) else { return [] }
            return option[option.index(after: eq)...].split(separator: ":").map(String.init)
        }
        var common = (paths.first.map { ($0 as NSString).deletingLastPathComponent } ?? "/")
        while !paths.allSatisfy({ $0.hasPrefix(common + "/") }) { common = (common as NSString).deletingLastPathComponent }
        let rewritten = options.map { option -> String in
            guard let eq = option.firstIndex(of: "="), keys.contains(option[..<eq]) else { return option }
            let values = option[option.index(after: eq)...].split(separator: ":").map { String($0.dropFirst(common.count + 1)) }
            return "\(option[..<eq])=\(values.joined(separator: ":"))"
        }
        return (rewritten, common)
    }

    static func run(_ tool: String, _ arguments: [String], in directory: String?) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }
}

/// A failed conformance expectation, with what was expected and what was found.
public struct ConformanceFailure: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw ConformanceFailure(description: message()) }
}

func expectEqual<T: Equatable>(_ found: T, _ expected: T, _ what: String) throws {
    try expect(found == expected, "\(what): expected \(expected), found \(found)")
}

/// Runs `body` and checks that the plugin answered it with gRPC code `code`.
func expectCode(_ code: Int32, _ what: String, _ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as PluginCallError {
        try expectEqual(error.code, code, "\(what): error code (message: \(error.message))")
        return
    }
    throw ConformanceFailure(description: "\(what): expected code \(code), but it succeeded")
}
