import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwiftProtobuf
import Testing

/// What crosses the plugin boundary as seen by clients: plugins' own gRPC methods, services
/// served only when they started, and calls into a plugin that never answers.
@Suite(.serialized) struct PluginBoundaryTests {
    /// Calls `path` on `daemon` with raw request bytes and returns the raw reply.
    private func rawCall(_ client: GRPCClient<HTTP2ClientTransport.Posix>, _ path: String, _ request: [UInt8]) async throws -> [UInt8] {
        let parts = path.split(separator: "/")
        let method = MethodDescriptor(fullyQualifiedService: String(parts[0]), method: String(parts[1]))
        return try await client.unary(
            request: ClientRequest(message: request), descriptor: method,
            serializer: Bytes(), deserializer: Bytes(), options: .defaults
        ) { try $0.message }
    }

    struct Bytes: MessageSerializer, MessageDeserializer {
        func serialize<Output: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Output { Output(message) }
        func deserialize<Input: GRPCContiguousBytes>(_ bytes: Input) throws -> [UInt8] { bytes.withUnsafeBytes { Array($0) } }
    }

    @Test func pluginAPI_cAndSwiftPluginsOfANewType_areReachableThroughBerthd() async throws {
        let directory = NSTemporaryDirectory() + "plugin-api-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let echo = try Tree.cPlugin("Examples/CPlugin/echo_plugin.c", into: directory, name: "echo")
        let hello = try Tree.helloPlugin.get()
        let daemon = try Daemon(
            plugins: Daemon.inTreePlugins + """
                [plugins."io.berth.example.v1.echo-c"]
                path = "\(echo)"
                [plugins."io.berth.example.v1.hello"]
                path = "\(hello)"
                [plugins."io.berth.example.v1.hello".config]
                greeting = "ahoy"

                """)
        try daemon.waitReady()
        try await withClient(daemon) { client in
            #expect(try await rawCall(client, "berth.example.v1.Echo/Echo", [1, 2, 3, 250]) == [1, 2, 3, 250])
            let name: [UInt8] = try Google_Protobuf_StringValue(stringLiteral: "sailor").serializedBytes()
            let answer = try Google_Protobuf_StringValue(serializedBytes: try await rawCall(client, "berth.example.v1.Hello/Greet", name))
            #expect(answer.value == "ahoy, sailor")
            // The plugin's own errors reach the client with their code.
            let empty: [UInt8] = try Google_Protobuf_StringValue().serializedBytes()
            let failure = await rpcFailure { _ = try await rawCall(client, "berth.example.v1.Hello/Greet", empty) }
            #expect(failure?.0 == .invalidArgument)
            #expect(failure?.1 == "Greet needs a name")
        }
        // Introspection lists what each plugin offers.
        let listing = try daemon.ctr(["plugins", "ls", "--detailed", "id==echo-c"]).stdout
        #expect(listing.contains("api_methods") && listing.contains("/berth.example.v1.Echo/Echo"))
        #expect(daemon.stop() == 0)
    }

    @Test func builtinService_whoseStorageServiceDidNotStart_isListedErrorAndNotServed() async throws {
        // No snapshotter: the snapshots service cannot run, so neither can its gRPC service.
        let daemon = try Daemon(
            plugins: """
                [plugins."io.containerd.content.v1.content"]
                path = "libBerthContent.so"
                required = true

                """)
        try daemon.waitReady()
        let listing = try daemon.ctr(["plugins", "ls"]).stdout
        let line = try #require(listing.split(separator: "\n").first { $0.hasPrefix("io.containerd.grpc.v1") && $0.contains(" snapshots ") })
        #expect(line.split(separator: " ").last == "error")
        let content = try #require(listing.split(separator: "\n").first { $0.hasPrefix("io.containerd.grpc.v1") && $0.contains(" content ") })
        #expect(content.split(separator: " ").last == "ok")
        let snapshots = try daemon.ctr(["snapshots", "ls"])
        #expect(snapshots.status != 0)
        #expect(snapshots.stderr.contains("not implemented"))
        #expect(try daemon.ctr(["content", "ls"]).status == 0)
        let detail = try daemon.ctr(["plugins", "ls", "--detailed", "id==snapshots"]).stdout
        #expect(detail.contains("io.containerd.service.v1.snapshots-service is not running"))
        #expect(daemon.stop() == 0)
    }

    private func hangingDaemon(timeout: Int, in directory: String) throws -> Daemon {
        let fixture = try Tree.cPlugin("Tests/Fixtures/fixture_plugin.c", flags: ["-DFIXTURE_API"], into: directory, name: "hang")
        return try Daemon(
            plugins: Daemon.inTreePlugins + """
                [plugins."io.berth.fixture.v1.fixture"]
                path = "\(fixture)"

                """, settings: "plugin_call_timeout_seconds = \(timeout)")
    }

    @Test func pluginThatNeverReplies_rpcIsDeadlineExceededWhileOthersAreServed() async throws {
        let directory = NSTemporaryDirectory() + "hang-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let daemon = try hangingDaemon(timeout: 2, in: directory)
        try daemon.waitReady()
        let clock = ContinuousClock()
        try await withClient(daemon) { client in
            let started = clock.now
            async let hung = rpcFailure { _ = try await rawCall(client, "berth.fixture.v1.Fixture/Hang", [1]) }
            // Other clients are served meanwhile.
            for _ in 0..<5 { #expect((try? daemon.ctr(["version"]))?.status == 0) }
            #expect(clock.now - started < .seconds(2))
            let failure = await hung
            let waited = clock.now - started
            #expect(failure?.0 == .deadlineExceeded)
            #expect(
                failure?.1 == "plugin io.berth.fixture.v1.fixture method /berth.fixture.v1.Fixture/Hang: the plugin did not answer before the call's deadline")
            #expect(waited >= .seconds(2) && waited < .seconds(5))
        }
        #expect(daemon.log.contains("plugin call cut short: deadline exceeded"))
        #expect(daemon.stop() == 0)
    }

    @Test func sigterm_withAPluginCallThatNeverAnswers_exitsWithinTheBound() async throws {
        let directory = NSTemporaryDirectory() + "hang-stop-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let daemon = try hangingDaemon(timeout: 600, in: directory)
        try daemon.waitReady()
        let clock = ContinuousClock()
        try await withClient(daemon) { client in
            // One answered call first, so the hanging one goes out on an open connection.
            #expect(try await rawCall(client, "berth.fixture.v1.Fixture/Echo", [7]) == [7])
            async let hung = rpcFailure { _ = try await rawCall(client, "berth.fixture.v1.Fixture/Hang", [1]) }
            // The test pool may be busy: wait until the plugin holds the call, not for a fixed time.
            let sent = clock.now
            while !daemon.log.contains("fixture: Hang arrived"), clock.now - sent < .seconds(30) {
                try await Task.sleep(for: .milliseconds(20))
            }
            try #require(daemon.log.contains("fixture: Hang arrived"))
            let stopping = clock.now
            kill(daemon.process.processIdentifier, SIGTERM)
            _ = await hung
            while daemon.process.isRunning, clock.now - stopping < .seconds(15) { try await Task.sleep(for: .milliseconds(50)) }
            let took = clock.now - stopping
            #expect(!daemon.process.isRunning)
            // The API drains for 5 s before it cancels the call; the whole stop is bounded by 10 s.
            #expect(took >= .seconds(4) && took < .seconds(10))
        }
        #expect(daemon.waitExit() == 0)
        #expect(daemon.log.contains("plugin call cut short: its caller was cancelled"))
        #expect(daemon.log.contains("/berth.fixture.v1.Fixture/Hang"))
        #expect(daemon.log.contains("berthd stopped"))
    }

    @Test func example_copiedOutOfTheTree_passesTheDriverKitFromItsOwnPackage() async throws {
        _ = try Tree.helloPlugin.get()
        // Built with its tests by scripts/build-example.sh (through Tree.helloPlugin): only runs here,
        // so that no compiler competes with the timing-sensitive tests running beside it.
        let result = try await Tree.swiftInExample(["test", "--skip-build"])
        #expect(result.status == 0, "swift test in the example failed:\n\(result.stdout.suffix(4000))\(result.stderr.suffix(2000))")
        // Every case of the kit ran, and passed.
        let output = result.stdout + result.stderr
        #expect(output.contains("driverContract(rule:) with 13 test cases passed"), "\(output.suffix(2000))")
    }
}
