import FoundationEssentials
import Glibc
import Logging
import ServiceLifecycle

/// The microkernel: it turns plugin.conf into registrations, checks and orders them, starts
/// each plugin in its own directories, records how each start ended, serves calls between
/// plugins, and stops them in reverse order at shutdown.
///
/// Lifecycle: `run()` (as a `Service`) loads and starts every plugin, then opens the gate that
/// `waitUntilStarted()` waits on, runs the long-lived plugins (those that are `Service`s) and
/// serves host calls until graceful shutdown, and finally stops the plugins
/// last-started-first. A required plugin that does not end "ok" makes `run()` and
/// `waitUntilStarted()` throw, which stops the daemon; any other failure is only recorded.
///
/// Shutdown is bounded: plugin calls carry deadlines (`CallContext.Deadline`) and end when
/// their task is cancelled; a plugin's `stop` gets `stopTimeout`, after which the kernel logs
/// it and goes on to the next.
public actor Kernel: Service {
    /// How long stopping every plugin may take in all at shutdown; one plugin gets at most
    /// `stopTimeout` of it.
    public static let stopBudget = Duration.seconds(3)
    public static let stopTimeout = Duration.seconds(2)

    public nonisolated let config: DaemonConfig
    public nonisolated let events: EventBus
    public nonisolated let metadata: MetadataStore
    public nonisolated let plugins = PluginDirectory()
    private let hostCalls = HostCallQueue()
    private let builtins: [Registration]
    private let logger: Logger
    private var startOutcome: Result<Void, BerthError>?
    private var startWaiters = [CheckedContinuation<Void, any Error>]()

    public init(
        config: DaemonConfig, events: EventBus, metadata: MetadataStore,
        builtins: [Registration] = [], logger: Logger
    ) {
        self.config = config
        self.events = events
        self.metadata = metadata
        self.builtins = builtins
        self.logger = logger
    }

    /// The tables the kernel's own parts keep in the metadata store (the supervisor's).
    public static let schemas: [MetadataSchema] = [.processes]

    /// The kernel's own parts as registrations, so introspection lists them with containerd's
    /// names: the event exchange, the metadata store and the task supervisor.
    public static func coreRegistrations(metadataPath: String) -> [Registration] {
        struct Part: PluginInstance {
            var exports: [String: String] = [:]
        }
        return [
            Registration(name: PluginName(type: .event, id: "exchange"), origin: .builtin { _ in Part() }),
            Registration(
                name: PluginName(type: .metadata, id: "sqlite"),
                origin: .builtin { _ in
                    Part(exports: ["path": metadataPath])
                }),
            TaskSupervisor.registration(),
        ]
    }

    /// Every registration in start order, then the refused ones.
    public var pluginRecords: [PluginRecord] { plugins.records }

    /// Returns once every plugin has been started; throws if a required plugin failed.
    public func waitUntilStarted() async throws {
        if let startOutcome { return try startOutcome.get() }
        try await withCheckedThrowingContinuation { startWaiters.append($0) }
    }

    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await self.serveHostCalls() }
            group.addTask { await self.expireOverdueCalls() }
            let outcome: Result<Void, BerthError>
            do throws(BerthError) {
                try await self.startAll()
                outcome = .success(())
            } catch { outcome = .failure(error) }
            self.finishStart(outcome)
            if case .success = outcome {
                await self.runLongLivedPlugins()
            }
            await self.stopAll()
            self.hostCalls.finish()
            group.cancelAll()
            try outcome.get()
        }
    }

    private func finishStart(_ outcome: Result<Void, BerthError>) {
        startOutcome = outcome
        for waiter in startWaiters { waiter.resume(with: outcome.mapError { $0 as any Error }) }
        startWaiters.removeAll()
    }

    private func startAll() async throws(BerthError) {
        let registrations = loadRegistrations()
        let plan = DependencyGraph.plan(registrations)
        for (registration, error) in plan.rejected {
            try record(registration, status: .error(error), exports: [:])
        }
        for registration in plan.order {
            let (status, exports) = await start(registration)
            try record(registration, status: status, exports: exports)
        }
        checkRuntimeAliases()
    }

    /// Warns about `[runtime_aliases]` entries that name no running runtime plugin: a client
    /// asking for that runtime would be refused.
    private func checkRuntimeAliases() {
        for (alias, target) in config.runtimeAliases.sorted(by: { $0.key < $1.key }) {
            let running = plugins.records.contains { $0.name.description == target && $0.status == .ok }
            guard !running else { continue }
            logger.warning("runtime alias names no running runtime plugin", metadata: ["alias": "\(alias)", "plugin": "\(target)"])
        }
    }

    /// Built-ins first, then one registration per enabled plugin.conf table.
    private func loadRegistrations() -> [Registration] {
        var modules = [String: Result<LoadedModule, BerthError>]()
        var result = builtins
        for entry in config.plugins where entry.enabled {
            let path = resolve(entry.path)
            let module = modules[path] ?? Result { () throws(BerthError) in try SharedObjectLoader.load(path: path) }
            modules[path] = module
            result.append(registration(for: entry, module: module, path: path))
        }
        return result
    }

    private func registration(
        for entry: DaemonConfig.PluginEntry, module: Result<LoadedModule, BerthError>,
        path: String
    ) -> Registration {
        var registration = Registration(
            name: entry.name, required: entry.required, configJSON: entry.configJSON,
            origin: .failed(.internal("unreachable")))
        switch module {
        case .failure(let error):
            registration.origin = .failed(error)
        case .success(let module):
            guard let index = module.entries.firstIndex(where: { $0.name == entry.name }) else {
                let offered = module.entries.map(\.name.description).joined(separator: ", ")
                registration.origin = .failed(.notFound("plugin file \(path) has no plugin \(entry.name); it offers: \(offered)"))
                return registration
            }
            let found = module.entries[index]
            registration.requires = found.requires
            registration.platforms = found.platforms
            registration.capabilities = found.capabilities
            registration.origin = .sharedObject(module, index: index)
            logger.debug(
                "loaded plugin file",
                metadata: [
                    "file": "\(path)", "build": "\(module.buildInfo)",
                    "abi": "\(module.abiMajor).\(module.abiMinor)",
                ])
        }
        return registration
    }

    private func resolve(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        let base =
            config.pluginDirectory.isEmpty
            ? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
            : config.pluginDirectory
        return URL(fileURLWithPath: base).appendingPathComponent(path).standardizedFileURL.path
    }

    /// Starts one plugin and reports its status; never throws.
    private func start(_ registration: Registration) async -> (PluginStatus, [String: String]) {
        if let reason = platformMismatch(registration) { return (.skip(reason: reason), [:]) }
        if let missing = registration.requires.first(where: { type in
            plugins.instance(of: type) == nil
        }) {
            return (.error(.failedPrecondition("plugin \(registration.name) requires type \(missing), but no plugin of that type is running")), [:])
        }
        do {
            let context = try makeContext(registration)
            let instance: any PluginInstance
            switch registration.origin {
            case .builtin(let initialize): instance = try await initialize(context)
            case .sharedObject(let module, let index): instance = try await ForeignPlugin.start(module.entries[index], context: context)
            case .failed(let error): throw error
            }
            plugins.add(registration.name, instance)
            return (.ok, instance.exports)
        } catch PluginStartOutcome.skipped(let reason) {
            return (.skip(reason: reason), [:])
        } catch {
            return (.error(BerthError.from(error)), [:])
        }
    }

    private func platformMismatch(_ registration: Registration) -> String? {
        guard !registration.platforms.isEmpty, !registration.platforms.contains(where: { $0.admits(.host) }) else { return nil }
        let supported = registration.platforms.map(\.description).joined(separator: ", ")
        return "skip plugin: \(registration.name) supports \(supported); this host is \(Platform.host)"
    }

    private func makeContext(_ registration: Registration) throws(BerthError) -> PluginContext {
        let root = "\(config.root)/\(registration.name)"
        let state = "\(config.state)/\(registration.name)"
        for directory in [root, state] {
            do {
                try FileManager.default.createDirectory(
                    atPath: directory, withIntermediateDirectories: true,
                    attributes: [.posixPermissions: 0o700])
            } catch {
                throw .internal("cannot create directory \(directory) for plugin \(registration.name): \(error)")
            }
        }
        var logger = logger
        logger[metadataKey: "plugin"] = "\(registration.name)"
        return PluginContext(
            name: registration.name, rootDirectory: root, stateDirectory: state,
            configJSON: registration.configJSON, events: events, logger: logger,
            plugins: plugins, hostCalls: hostCalls, metadata: metadata, daemon: config)
    }

    /// Logs the outcome and records it; a required plugin that is not ok stops the start.
    private func record(_ registration: Registration, status: PluginStatus, exports: [String: String]) throws(BerthError) {
        plugins.record(
            PluginRecord(
                name: registration.name, requires: registration.requires,
                platforms: registration.platforms, capabilities: registration.capabilities,
                exports: exports, status: status))
        let metadata: Logger.Metadata = ["plugin": "\(registration.name)"]
        switch status {
        case .ok: logger.info("plugin started", metadata: metadata)
        case .skip(let reason): logger.info("plugin skipped: \(reason)", metadata: metadata)
        case .error(let error): logger.error("plugin failed: \(error.message)", metadata: metadata.merging(["code": "\(error.code)"]) { a, _ in a })
        }
        guard registration.required, status != .ok else { return }
        let why: String =
            switch status {
            case .skip(let reason): reason
            case .error(let error): error.message
            case .ok: ""
            }
        throw .failedPrecondition("required plugin \(registration.name) did not start: \(why)")
    }

    private func serveHostCalls() async {
        await withDiscardingTaskGroup { group in
            for await call in hostCalls.calls {
                group.addTask {
                    do {
                        let instance = try self.plugins.resolve(call.target)
                        call.reply(.ok(try await instance.call(call.method, request: call.request, context: call.context)))
                    } catch {
                        call.reply(.failure(BerthError.from(error)))
                    }
                }
            }
        }
    }

    /// Runs every started plugin that is a `Service` until graceful shutdown reaches the kernel
    /// (they see it too, as children of this task), then waits for them to return.
    private func runLongLivedPlugins() async {
        let services = plugins.startedInOrder.compactMap { name, instance in (instance as? any Service).map { (name, $0) } }
        let logger = logger
        await withDiscardingTaskGroup { group in
            for (name, service) in services {
                group.addTask {
                    do { try await service.run() } catch {
                        logger.error("plugin stopped running: \(error)", metadata: ["plugin": "\(name)"])
                    }
                }
            }
            try? await gracefulShutdown()
        }
    }

    /// Answers plugin calls whose deadline passed, each with DEADLINE_EXCEEDED and a log line.
    private nonisolated func expireOverdueCalls() async {
        while !Task.isCancelled {
            let (expired, next) = ReplyTable.expireOverdue(now: MonotonicClock.now)
            for label in expired { logger.warning("plugin call cut short: deadline exceeded", metadata: ["call": "\(label)"]) }
            // Sleep until the earliest pending deadline, but at most a second: a call made
            // meanwhile with a nearer deadline is then at most a second late.
            let wait = next == 0 ? 1_000_000_000 : max(1_000_000, min(1_000_000_000, next - MonotonicClock.now))
            try? await Task.sleep(for: .nanoseconds(wait))
        }
    }

    /// Stops the plugins last-started-first, each within `stopTimeout` and all within
    /// `stopBudget`; a plugin that does not answer in time is logged and left as it is (not
    /// destroyed: its work may still be running).
    private func stopAll() async {
        let clock = ContinuousClock()
        let end = clock.now + Self.stopBudget
        for (name, instance) in plugins.drainInReverse() {
            let limit = min(Self.stopTimeout, max(.zero, end - clock.now))
            let stopped = await withTaskGroup(of: Bool.self) { group in
                group.addTask {
                    await instance.stop()
                    return true
                }
                group.addTask {
                    try? await Task.sleep(for: limit)
                    return false
                }
                let first = await group.next() ?? false
                group.cancelAll()
                return first
            }
            if stopped {
                logger.debug("plugin stopped", metadata: ["plugin": "\(name)"])
            } else {
                logger.warning("plugin did not stop within \(limit); left as it was", metadata: ["plugin": "\(name)"])
            }
        }
    }
}
