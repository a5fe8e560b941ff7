import ArgumentParser
import BerthAPI
import FoundationEssentials
import Glibc
import Kernel
import Logging
import NIOCore
import NIOPosix
import Runtime
import ServiceLifecycle
import Storage

/// Entry point: makes NIO's event loops Swift Concurrency's executor before anything else runs,
/// so that an RPC's handler, the metadata actor and plugin replies run on the thread that read
/// the request instead of hopping to the cooperative pool and back (a thread switch each way).
@main
enum BerthdMain {
    static func main() async {
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        keepLargeBuffersInTheHeap()
        await Berthd.main()
    }

    /// Content moves in messages of up to 16 MiB. glibc serves allocations that large with
    /// mmap and returns them with munmap, so every message paid for fresh zeroed pages (page
    /// faults were a third of the daemon's CPU during `ctr content ingest`). Serving them from
    /// the heap and trimming it only above 32 MiB reuses the same pages.
    private static func keepLargeBuffersInTheHeap() {
        #if os(Linux)
            // <malloc.h>: M_TRIM_THRESHOLD is -1, M_MMAP_THRESHOLD is -3.
            _ = glibcMallopt(-3, 32 << 20)
            _ = glibcMallopt(-1, 32 << 20)
        #endif
    }
}

/// berthd: loads the plugins plugin.conf names and serves containerd's v1 API on a unix socket.
struct Berthd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "berthd",
        abstract: "The Berth container daemon.",
        version: "\(BerthVersion.version) (\(BerthVersion.revision))")

    @Option(name: .long, help: "The plugin.conf file to read.")
    var config: String = "/etc/berth/plugin.conf"

    @Option(name: .long, help: "Persistent data directory (overrides the file's root).")
    var root: String?

    @Option(name: .long, help: "Volatile state directory (overrides the file's state).")
    var state: String?

    @Option(name: .long, help: "gRPC unix socket path (overrides the file's grpc.address).")
    var address: String?

    @Option(name: .long, help: "trace, debug, info, notice, warning, error or critical (overrides the file's log_level).")
    var logLevel: String?

    /// Ends the process itself, here, instead of returning to Swift's async main: that one
    /// finishes on the main actor, whose queue libdispatch drains only until Foundation is
    /// loaded. berthd does not link Foundation, but a plugin may (the SDK's example does), and
    /// Foundation's start hands the main queue to a run loop that nothing runs here: the
    /// return would wait for ever after "berthd stopped".
    func run() async throws {
        do {
            try await serve()
            Glibc.exit(EXIT_SUCCESS)
        } catch let error as BerthError {
            writeToStandardError("berthd: \(error.message)\n")
        } catch let error as ServiceGroupError {
            writeToStandardError("berthd: \(error)\n")
        } catch {
            writeToStandardError("berthd: \(error)\n")
        }
        Glibc.exit(EXIT_FAILURE)
    }

    private func loadConfig() throws(BerthError) -> DaemonConfig {
        var config = try DaemonConfig(contentsOf: self.config)
        if let root { config.root = root }
        if let state { config.state = state }
        if let address { config.address = address }
        if let logLevel {
            guard Logger.Level(rawValue: logLevel) != nil else { throw .invalidArgument("--log-level \(logLevel) is not a log level") }
            config.logLevel = logLevel
        }
        config.root = Self.absolute(config.root)
        config.state = Self.absolute(config.state)
        config.address = Self.absolute(config.address)
        return config
    }

    private func serve() async throws {
        let config = try loadConfig()
        let level = Logger.Level(rawValue: config.logLevel) ?? .info
        LoggingSystem.bootstrap { LogfmtHandler(label: $0, level: level) }
        let logger = Logger(label: "berthd")
        for directory in [config.root, config.state] {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o711])
        }
        let lock = try DaemonLock(root: config.root)
        let metadataDirectory = config.root + "/io.containerd.metadata.v1.sqlite"
        try FileManager.default.createDirectory(
            atPath: metadataDirectory, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        let metadataPath = metadataDirectory + "/meta.db"
        let metadata = try MetadataStore(path: metadataPath, schemas: Kernel.schemas + StoragePlugins.schemas + RuntimePlugins.schemas)
        let events = EventBus()
        let builtins =
            Kernel.coreRegistrations(metadataPath: metadataPath) + StoragePlugins.registrations()
            + RuntimePlugins.registrations() + GRPCPlugins.registrations()
        let kernel = Kernel(config: config, events: events, metadata: metadata, builtins: builtins, logger: logger)
        let api = APIServer(kernel: kernel, address: config.address, logger: logger)
        logger.info(
            "berthd starting",
            metadata: [
                "version": "\(BerthVersion.version)", "root": "\(config.root)",
                "state": "\(config.state)", "config": "\(self.config)",
            ])
        // Services start in this order and stop in reverse: the API closes before the kernel
        // stops its plugins, and the event bus outlives them all. Shutdown is bounded (the API
        // drains for at most 5 s, plugins stop within 3 s); behind that, what has not ended
        // after `gracefulStop` is cancelled, and a part that ignores cancellation too ends the
        // process after `cancellationStop`.
        var configuration = ServiceGroupConfiguration(
            services: [.init(service: events), .init(service: kernel), .init(service: api)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        configuration.maximumGracefulShutdownDuration = Self.gracefulStop
        configuration.maximumCancellationDuration = Self.cancellationStop
        let group = ServiceGroup(configuration: configuration)
        try await group.run()
        logger.info("berthd stopped")
        withExtendedLifetime(lock) {}
    }

    /// A backstop behind the API's drain limit (5 s) and the kernel's stop budget (3 s): what
    /// still runs this long after SIGTERM is cancelled.
    static let gracefulStop = Duration.seconds(9)
    /// How long cancelled parts get before the process ends regardless: berthd is gone within
    /// 10 s of SIGTERM whatever a plugin does.
    static let cancellationStop = Duration.seconds(1)

    private static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }
}

#if os(Linux)
    /// glibc's `int mallopt(int param, int value)`; the Glibc module does not export <malloc.h>.
    @_silgen_name("mallopt")
    private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif
