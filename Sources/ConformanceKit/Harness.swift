import Foundation
import Kernel
import Storage

/// A kernel running one snapshotter plugin from a shared object, on a private temporary root,
/// with helpers to mount what the snapshotter returns exactly as a client on this host would.
public final class SnapshotterHarness: Sendable {
    public let snapshots: SnapshotService
    public let snapshotter: String
    public let directory: String

    init(snapshots: SnapshotService, snapshotter: String, directory: String) {
        self.snapshots = snapshots
        self.snapshotter = snapshotter
        self.directory = directory
    }

    /// Loads `plugin` (a shared object) as snapshotter `id`, runs `body`, then stops everything.
    public static func with(plugin: String, id: String,
                            _ body: @Sendable (SnapshotterHarness) async throws -> Void) async throws {
        try await KernelHarness.run(plugin: plugin, name: PluginName(type: .snapshotter, id: id), schemas: [.snapshots, .leases],
                                    label: "snapkit") { directory, metadata, plugins, events in
            try await body(SnapshotterHarness(snapshots: SnapshotService(metadata: metadata, plugins: plugins, events: events),
                                              snapshotter: id, directory: directory))
        }
    }

    /// A fresh empty directory to mount on.
    public func mountpoint() throws -> String {
        let path = directory + "/mnt-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        return path
    }

    /// Mounts `mounts` on `target`, runs `body`, unmounts.
    public func withMounted<T>(_ mounts: [SnapshotService.Mount], _ body: (String) throws -> T) throws -> T {
        let target = try mountpoint()
        try MountTool.mount(mounts, at: target)
        defer { MountTool.unmount(target) }
        return try body(target)
    }
}

/// Mounts snapshot mounts with mount(8), as containerd's client does, including its answer to
/// the kernel's one-page limit on mount options: when the options are long, overlay paths are
/// made relative to their common folder and mount runs inside it.
public enum MountTool {
    /// Mount options longer than this are shortened (containerd uses the page size less 512).
    static let longOptions = 4096 - 512

    public static func mount(_ mounts: [SnapshotService.Mount], at target: String) throws {
        for m in mounts {
            var options = m.options
            var directory: String? = nil
            if m.type == "overlay", options.joined(separator: ",").utf8.count >= longOptions {
                (options, directory) = relativeOverlayOptions(options)
            }
            let type = m.type == "bind" ? [] : ["-t", m.type]
            let result = try run("/bin/mount", type + [m.source, target, "-o", options.joined(separator: ",")], in: directory)
            guard result.status == 0 else {
                throw BerthError.internal("mount \(m.type) on \(target) failed: \(result.output)")
            }
        }
    }

    public static func unmount(_ target: String) {
        _ = try? run("/bin/umount", [target], in: nil)
    }

    /// Rewrites lowerdir/upperdir/workdir paths relative to their longest common folder.
    static func relativeOverlayOptions(_ options: [String]) -> ([String], String) {
        let paths = options.flatMap { option -> [String] in
            guard let eq = option.firstIndex(of: "="), ["lowerdir", "upperdir", "workdir"].contains(String(option[..<eq])) else { return [] }
            return option[option.index(after: eq)...].split(separator: ":").map(String.init)
        }
        var common = (paths.first.map { ($0 as NSString).deletingLastPathComponent } ?? "/")
        while !paths.allSatisfy({ $0.hasPrefix(common + "/") }) { common = (common as NSString).deletingLastPathComponent }
        let rewritten = options.map { option -> String in
            guard let eq = option.firstIndex(of: "="), ["lowerdir", "upperdir", "workdir"].contains(String(option[..<eq])) else { return option }
            let key = option[..<eq]
            let values = option[option.index(after: eq)...].split(separator: ":").map { String($0.dropFirst(common.count + 1)) }
            return "\(key)=\(values.joined(separator: ":"))"
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
