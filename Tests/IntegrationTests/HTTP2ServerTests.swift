import Foundation
import Testing

/// berthd's own HTTP/2 server (Sources/BerthAPI/HTTP2) against frames real clients rarely send:
/// Tests/Fixtures/http2_edges.py plays a hand-written client, one connection per case, with
/// Debian's python3-h2 for the well-formed parts.
@Suite(.serialized) struct HTTP2ServerTests {
    static let cases = [
        "bad_preface", "data_on_idle_stream", "oversized_frame", "unary", "ping", "tiny_client_window",
        "padded_and_split_request", "continuation", "unknown_method", "malformed_path", "not_post", "not_grpc",
        "compressed_request", "oversized_message", "cancel_stream_then_reuse",
    ]

    @Test func http2Server_framesCtrNeverSends_answeredAndDaemonKeepsServing() throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        let result = try run("/usr/bin/python3", [Tree.root + "/Tests/Fixtures/http2_edges.py", daemon.socket])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout == Self.cases.map { "ok \($0)\n" }.joined())
        #expect(try daemon.ctr(["version"]).status == 0)
        #expect(daemon.stop() == 0)
    }

    /// h2spec's server cases (Tests/Fixtures/http2_conformance.py reimplements them: h2spec is
    /// neither on Debian nor on PyPI). The many broken connections also show the log limit.
    @Test func http2Server_h2specCases_allPass_brokenConnectionsLoggedAtMost20AMinute() throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        let result = try run("/usr/bin/python3", [Tree.root + "/Tests/Fixtures/http2_conformance.py", daemon.socket])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.hasSuffix(" passed, 0 failed\n"), "\(result.stdout)")
        #expect(!result.stdout.contains("FAIL"))
        #expect(try daemon.ctr(["version"]).status == 0)
        let notices = daemon.log.components(separatedBy: "\n").filter {
            $0.contains("msg=\"closing a gRPC connection that broke HTTP/2\"") || $0.contains("msg=\"gRPC connection failed\"")
        }
        #expect(notices.count == 20, "\(notices.count) notices")  // ConnectionHub.noticesPerMinute; the run takes seconds
        #expect(daemon.stop() == 0)
    }

    @Test func http2Server_fuzzedFramesAndBodiesFor20s_daemonStaysUpAndServes() throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        let seed = 20_261_201
        let result = try run("/usr/bin/python3", [Tree.root + "/Tests/Fixtures/http2_fuzz.py", daemon.socket, "20", "\(seed)"])
        #expect(result.status == 0, "seed \(seed): \(result.stdout)\(result.stderr)\n\(daemon.log.suffix(4000))")
        #expect(result.stdout.hasPrefix("seed=\(seed)\n"))
        #expect(result.stdout.hasSuffix("ok normal call after fuzzing\n"))
        #expect(daemon.process.isRunning)
        #expect(try daemon.ctr(["version"]).status == 0)
        #expect(daemon.stop() == 0)
    }

    /// Runs one attack of Tests/Fixtures/http2_attacks.py against a fresh daemon (debug build)
    /// while `ctr version` runs on another connection; the fixture checks the outcome, the RSS
    /// growth and the other client's median latency, all scaled to the debug build.
    private func attack(
        _ name: String, seconds: Int = 5, expect outcome: String, boundMiB: Int = 96,
        latencyMs: Int? = 1500
    ) throws -> String {
        let daemon = try Daemon()
        try daemon.waitReady()
        let result = try run(
            "/usr/bin/python3",
            [
                Tree.root + "/Tests/Fixtures/http2_attacks.py", daemon.socket, "\(daemon.process.processIdentifier)", name,
                "\(seconds)", "--expect", outcome, "--bound-mib", "\(boundMiB)",
            ] + (latencyMs.map { ["--latency-ms", "\($0)"] } ?? []))
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("outcome=\(outcome)"), "\(result.stdout)")
        #expect(daemon.process.isRunning)
        #expect(try daemon.ctr(["version"]).status == 0)
        #expect(daemon.stop() == 0)
        return result.stdout
    }

    @Test func http2Server_pingFloodUnread_endsWithEnhanceYourCalm_memoryBounded_othersServed() throws {
        _ = try attack("ping_flood", expect: "goaway:11")
    }

    @Test func http2Server_settingsFloodUnread_endsWithEnhanceYourCalm_memoryBounded_othersServed() throws {
        _ = try attack("settings_flood", expect: "goaway:11")
    }

    @Test func http2Server_dataOnClosedStreamFlood_endsWithEnhanceYourCalm_memoryBounded_othersServed() throws {
        _ = try attack("rst_provoking_data", expect: "goaway:11")
    }

    @Test func http2Server_rejectedRequestsUnread_serverStopsReading_memoryBounded_othersServed() throws {
        _ = try attack("rejected_requests", seconds: 10, expect: "backpressure")
    }

    @Test func http2Server_rapidReset_endsWithEnhanceYourCalm_othersServed() throws {
        _ = try attack("rapid_reset", expect: "goaway:11")
    }

    @Test func http2Server_emptyContinuationFlood_endsWithEnhanceYourCalm() throws {
        _ = try attack("empty_continuation", seconds: 1, expect: "goaway:11")
    }

    @Test func http2Server_unfinishedLargeMessages_overConnectionBound_resourceExhausted() throws {
        _ = try attack("unfinished_messages", expect: "status:8", boundMiB: 256)
    }

    @Test func http2Server_slowReader1000Streams_128Served872Refused_memoryBounded() throws {
        _ = try attack("slow_reader", seconds: 8, expect: "refused:872", boundMiB: 512)
    }

    @Test func http2Server_cancelledSubscriptions_leaveTheBus_publishNotSlower() throws {
        _ = try attack("cancelled_subscriptions", seconds: 10, expect: "subscriptions:", boundMiB: 48)
    }

    /// 1,020 connections at once: the server keeps 1,000 (the victim's `ctr version` counts
    /// among them, so it may be refused meanwhile: no latency bound here) and closes the rest.
    @Test func http2Server_connectionsOverTheLimit_closedOnArrival() throws {
        let output = try attack("connection_limit", seconds: 1, expect: "closed_on_arrival:", latencyMs: nil)
        let closed = output.components(separatedBy: "closed_on_arrival:").last.flatMap { Int($0.prefix { $0.isNumber }) } ?? -1
        #expect((20...21).contains(closed), "\(output)")
    }

    @Test func http2Server_connectionsWithoutPreface_closedAfterHandshakeTimeout() throws {
        _ = try attack("handshake_timeout", seconds: 14, expect: "closed:100/100", latencyMs: 3000)
    }

    /// Only a folder berthd creates for its socket is made 0711 (`--address /tmp/x.sock` once
    /// turned /tmp from 1777 into 0711).
    @Test func socketFolder_existing_keepsItsMode() throws {
        let directory = NSTemporaryDirectory() + "berthd-mode-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(chmod(directory, 0o1777) == 0)
        let daemon = try Daemon(directory: directory)
        try daemon.waitReady()
        var info = stat()
        #expect(stat(directory, &info) == 0)
        #expect(info.st_mode & 0o7777 == 0o1777)
        #expect(daemon.stop() == 0)
        // A folder it makes for the socket is 0711.
        let made = directory + "/made"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Tree.berthd)
        process.arguments = ["--config", daemon.configPath, "--address", made + "/berth.sock"]
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer {
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
        }
        for _ in 0..<400 where !FileManager.default.fileExists(atPath: made + "/berth.sock") { usleep(25_000) }
        #expect(stat(made, &info) == 0)
        #expect(info.st_mode & 0o7777 == 0o711)
    }

    /// Untrusted input in an error comes back truncated: a 64 KiB key, not 64 KiB of error, and
    /// what went wrong is still said.
    @Test func errorMessages_echoedInputTruncated() throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        let result = try daemon.ctr(["snapshots", "info", String(repeating: "k", count: 64 << 10)])
        #expect(result.status != 0)
        #expect(result.stderr.utf8.count < 512, "\(result.stderr.utf8.count) bytes")
        #expect(result.stderr.contains("more bytes)"), "\(result.stderr.prefix(300))")
        #expect(result.stderr.contains("not found"), "\(result.stderr.prefix(300))")
        #expect(daemon.stop() == 0)
    }
}
