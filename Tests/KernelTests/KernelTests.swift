import Filters
import Foundation
import SwiftProtobuf
import Testing

@testable import Kernel

/// The kernel driving real shared objects: statuses, required plugins, calls and events.
@Suite struct KernelTests {
    let directory = TestSupport.temporaryDirectory("kernel")

    private func config(_ entries: [(String, String, Bool)]) -> DaemonConfig {
        var config = DaemonConfig()
        config.root = directory + "/root"
        config.state = directory + "/state"
        config.plugins = entries.map { name, path, required in
            let dot = name.lastIndex(of: ".")!
            return .init(
                name: PluginName(type: PluginType(String(name[..<dot])), id: String(name[name.index(after: dot)...])),
                path: path, enabled: true, required: required, configJSON: "{}")
        }
        return config
    }

    /// Starts a kernel with `config` (plus the event-bus built-in), runs `body`, then shuts down.
    private func withKernel(_ config: DaemonConfig, _ body: @Sendable (Kernel) async throws -> Void) async throws {
        let events = EventBus()
        let metadata = try MetadataStore(path: directory + "/meta.db")
        let kernel = Kernel(
            config: config, events: events, metadata: metadata,
            builtins: [builtin("io.containerd.event.v1", "exchange")], logger: TestSupport.logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await events.run() }
            group.addTask { try await kernel.run() }
            defer { group.cancelAll() }
            try await body(kernel)
        }
    }

    private func status(_ kernel: Kernel, _ name: String) async -> PluginStatus? {
        await kernel.pluginRecords.first { $0.name.description == name }?.status
    }

    @Test func kernel_optionalPluginsFailingOrSkipping_areRecordedAndOthersStart() async throws {
        let failing = try TestSupport.buildCPlugin(
            TestSupport.fixture, flags: ["-DFIXTURE_FAIL_START", "-DFIXTURE_ID=\"failing\""], into: directory, name: "failing")
        let skipping = try TestSupport.buildCPlugin(
            TestSupport.fixture, flags: ["-DFIXTURE_SKIP_START", "-DFIXTURE_ID=\"skipping\""], into: directory, name: "skipping")
        let abi2 = try TestSupport.buildCPlugin(TestSupport.fixture, flags: ["-DFIXTURE_ABI_MAJOR=2", "-DFIXTURE_ID=\"abi2\""], into: directory, name: "abi2")
        let good = try TestSupport.buildCPlugin(TestSupport.fixture, flags: [], into: directory, name: "good")
        let config = config([
            ("io.berth.fixture.v1.failing", failing, false), ("io.berth.fixture.v1.skipping", skipping, false),
            ("io.berth.fixture.v1.abi2", abi2, false), ("io.berth.fixture.v1.fixture", good, false),
            ("io.berth.fixture.v1.absent", directory + "/absent.so", false),
        ])
        try await withKernel(config) { kernel in
            try await kernel.waitUntilStarted()
            #expect(await status(kernel, "io.berth.fixture.v1.fixture") == .ok)
            #expect(await status(kernel, "io.berth.fixture.v1.skipping") == .skip(reason: "skip plugin: fixture has nothing to do here"))
            #expect(
                await status(kernel, "io.berth.fixture.v1.failing")
                    == .error(
                        BerthError(
                            .failedPrecondition,
                            "plugin io.berth.fixture.v1.failing failed to start: fixture refuses to start: no widget")))
            #expect(
                await status(kernel, "io.berth.fixture.v1.abi2")
                    == .error(
                        BerthError(
                            .failedPrecondition,
                            "plugin file \(abi2) was built for plugin ABI 2.1; this berthd speaks ABI 1.x (1.1)")))
            #expect(
                await status(kernel, "io.berth.fixture.v1.absent")
                    == .error(
                        BerthError(
                            .notFound,
                            "plugin file \(directory)/absent.so does not exist")))
        }
    }

    @Test func kernel_requiredPluginFailing_refusesToStartNamingIt() async throws {
        let failing = try TestSupport.buildCPlugin(TestSupport.fixture, flags: ["-DFIXTURE_FAIL_START"], into: directory, name: "failing")
        try await withKernel(config([("io.berth.fixture.v1.fixture", failing, true)])) { kernel in
            await #expect(
                throws: BerthError(
                    .failedPrecondition,
                    "required plugin io.berth.fixture.v1.fixture did not start: plugin io.berth.fixture.v1.fixture failed to start: fixture refuses to start: no widget"
                )
            ) {
                try await kernel.waitUntilStarted()
            }
        }
    }

    @Test func kernel_configNamesRegistrationTheFileLacks_isNotFoundListingOffers() async throws {
        let good = try TestSupport.buildCPlugin(TestSupport.fixture, flags: [], into: directory, name: "good")
        try await withKernel(config([("io.berth.fixture.v1.other", good, false)])) { kernel in
            try await kernel.waitUntilStarted()
            #expect(
                await status(kernel, "io.berth.fixture.v1.other")
                    == .error(
                        BerthError(
                            .notFound,
                            "plugin file \(good) has no plugin io.berth.fixture.v1.other; it offers: io.berth.fixture.v1.fixture")))
        }
    }

    @Test func kernel_duplicateOfBuiltinName_isRefusedAsDuplicate() async throws {
        let dup = try TestSupport.buildCPlugin(TestSupport.fixture, flags: [], into: directory, name: "dup")
        var config = config([("io.containerd.event.v1.exchange", dup, false)])
        config.plugins[0].name = PluginName(type: .event, id: "exchange")
        try await withKernel(config) { kernel in
            try await kernel.waitUntilStarted()
            let records = await kernel.pluginRecords.filter { $0.name.description == "io.containerd.event.v1.exchange" }
            // Refusals are recorded before the plan starts; the first registration still runs.
            #expect(
                records.map(\.status) == [
                    .error(
                        BerthError(
                            .alreadyExists,
                            "plugin io.containerd.event.v1.exchange is registered twice; the second registration was refused")), .ok,
                ])
        }
    }

    @Test func kernel_missingRequirement_isErrorNamingType() async throws {
        let needy = try TestSupport.buildCPlugin(TestSupport.fixture, flags: ["-DFIXTURE_REQUIRES=\"io.ghost.v1\""], into: directory, name: "needy")
        try await withKernel(config([("io.berth.fixture.v1.fixture", needy, false)])) { kernel in
            try await kernel.waitUntilStarted()
            #expect(
                await status(kernel, "io.berth.fixture.v1.fixture")
                    == .error(
                        BerthError(
                            .failedPrecondition,
                            "plugin io.berth.fixture.v1.fixture requires type io.ghost.v1, which no registered plugin provides")))
        }
    }

    @Test func kernel_cPluginCall_passesNamespaceAndSurvivesDoubleReply() async throws {
        let good = try TestSupport.buildCPlugin(TestSupport.fixture, flags: [], into: directory, name: "good")
        try await withKernel(config([("io.berth.fixture.v1.fixture", good, false)])) { kernel in
            try await kernel.waitUntilStarted()
            let plugin = try kernel.plugins.resolve("io.berth.fixture.v1.fixture")
            for namespace in ["default", "other"] {
                let reply = try await plugin.call("/x/Y", request: [1, 2], context: CallContext(namespace: namespace))
                #expect(reply == Array(namespace.utf8))
            }
        }
    }

    @Test func kernel_cExamplePlugin_echoesAndPublishesThroughHost() async throws {
        let echo = try TestSupport.buildCPlugin("Examples/CPlugin/echo_plugin.c", into: directory, name: "echo")
        let events = EventBus()
        let metadata = try MetadataStore(path: directory + "/meta.db")
        let kernel = Kernel(
            config: config([("io.berth.example.v1.echo-c", echo, true)]), events: events, metadata: metadata,
            builtins: [], logger: TestSupport.logger)
        let started = await events.subscribe(filters: try FilterSet(["topic==/example/started"]))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await events.run() }
            group.addTask { try await kernel.run() }
            defer { group.cancelAll() }
            try await kernel.waitUntilStarted()
            let plugin = try kernel.plugins.resolve("io.berth.example.v1")
            #expect(try await plugin.call("/berth.example.v1.Echo/Echo", request: [7, 8, 9], context: CallContext()) == [7, 8, 9])
            await #expect(throws: BerthError(.unimplemented, "echo-c serves only /berth.example.v1.Echo/Echo")) {
                try await plugin.call("/other/Method", request: [], context: CallContext())
            }
            var iterator = started.makeAsyncIterator()
            #expect(try await iterator.next()?.event.typeURL == "google.protobuf.Empty")
        }
    }

    /// The fixture's count of calls the host cancelled (`fixture_cancelled_calls`).
    private func cancelledCalls(in path: String) throws -> Int32 {
        let handle = try #require(dlopen(path, RTLD_NOW | RTLD_NOLOAD))
        let counter = try #require(dlsym(handle, "fixture_cancelled_calls"))
        return counter.assumingMemoryBound(to: Int32.self).pointee
    }

    @Test func kernel_pluginThatNeverReplies_isDeadlineExceededWhileOthersAnswer() async throws {
        let hang = try TestSupport.buildCPlugin(TestSupport.fixture, flags: [], into: directory, name: "hang")
        var config = config([("io.berth.fixture.v1.fixture", hang, false)])
        config.pluginCallTimeoutSeconds = 1
        try await withKernel(config) { kernel in
            try await kernel.waitUntilStarted()
            let plugin = try kernel.plugins.resolve("io.berth.fixture.v1.fixture")
            let clock = ContinuousClock()
            let started = clock.now
            let hung = Task { try await plugin.call("/berth.fixture.v1.Fixture/Hang", request: [], context: CallContext()) }
            // Meanwhile other calls are answered at once.
            for _ in 0..<20 {
                #expect(try await plugin.call("/berth.fixture.v1.Fixture/Echo", request: [5], context: CallContext()) == [5])
            }
            #expect(clock.now - started < .milliseconds(900))
            await #expect(
                throws: BerthError(
                    .deadlineExceeded,
                    "plugin io.berth.fixture.v1.fixture method /berth.fixture.v1.Fixture/Hang: the plugin did not answer before the call's deadline")
            ) {
                _ = try await hung.value
            }
            // Not before the deadline. The upper bound is loose: this test shares a thread pool of
            // two with tests that block threads on child processes (the daemon-level bound is
            // PluginBoundaryTests' job, against a real berthd).
            let waited = clock.now - started
            #expect(waited >= .seconds(1) && waited < .seconds(30))
            #expect(try cancelledCalls(in: hang) == 1)
        }
    }

    @Test func kernel_callWhoseCallerIsCancelled_endsAtOnceAndTellsThePlugin() async throws {
        let hang = try TestSupport.buildCPlugin(TestSupport.fixture, flags: [], into: directory, name: "cancel")
        try await withKernel(config([("io.berth.fixture.v1.fixture", hang, false)])) { kernel in
            try await kernel.waitUntilStarted()
            let plugin = try kernel.plugins.resolve("io.berth.fixture.v1.fixture")
            let call = Task { try await plugin.call("/berth.fixture.v1.Fixture/Hang", request: [], context: CallContext(deadline: .none)) }
            try await Task.sleep(for: .milliseconds(100))
            call.cancel()
            await #expect(
                throws: BerthError(
                    .cancelled,
                    "plugin io.berth.fixture.v1.fixture method /berth.fixture.v1.Fixture/Hang: the caller went away before the plugin answered")
            ) {
                _ = try await call.value
            }
            #expect(try cancelledCalls(in: hang) == 1)
        }
    }
}
