import Foundation
import Kernel
import Logging
import Storage

/// Runs a kernel with one plugin from a shared object on a private temporary root: the common
/// ground of the conformance harnesses.
enum KernelHarness {
    /// Starts `plugin` as `name` (required), runs `body` with the kernel's parts, stops it all,
    /// and removes the temporary root.
    static func run(
        plugin: String, name: PluginName, schemas: [MetadataSchema], label: String,
        _ body:
            @Sendable (
                _ directory: String, _ metadata: MetadataStore, _ plugins: PluginDirectory,
                _ events: EventBus
            ) async throws -> Void
    ) async throws {
        let directory = NSTemporaryDirectory() + "\(label)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var config = DaemonConfig()
        config.root = directory + "/root"
        config.state = directory + "/state"
        config.plugins = [.init(name: name, path: plugin, required: true)]
        let events = EventBus()
        let metadata = try MetadataStore(path: directory + "/meta.db", schemas: schemas)
        let kernel = Kernel(config: config, events: events, metadata: metadata, logger: Logger(label: label))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await events.run() }
            group.addTask { try await kernel.run() }
            defer { group.cancelAll() }
            try await kernel.waitUntilStarted()
            try await body(directory, metadata, kernel.plugins, events)
        }
    }
}
