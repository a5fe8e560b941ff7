import BerthAPI
import BerthProto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwiftProtobuf
import Testing

/// Bad input over gRPC: clients that give up mid-stream, oversized labels, malformed requests.
/// Each must get a clear status, leave nothing half-made behind, and leave the daemon serving.
@Suite(.serialized) struct BadInputTests {
    typealias Snapshots = Containerd_Services_Snapshots_V1_Snapshots.Client<HTTP2ClientTransport.Posix>
    typealias Content = Containerd_Services_Content_V1_Content.Client<HTTP2ClientTransport.Posix>
    static let metadata: Metadata = ["containerd-namespace": "bad"]
    struct Abandoned: Error {}

    private func withClients(_ body: (Snapshots, Content, Daemon) async throws -> Void) async throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        try await withClient(daemon) { client in
            try await body(Snapshots(wrapping: client), Content(wrapping: client), daemon)
        }
        #expect(!daemon.log.contains("level=critical"))
    }

    @Test func write_clientGivesUpMidStream_ingestIsReleasedAndResumes() async throws {
        try await withClients { _, content, _ in
            let bytes = Data((0..<(3 << 16)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            // Two 64 KiB writes, then the client abandons the stream without committing.
            do {
                try await content.write(
                    metadata: Self.metadata,
                    requestProducer: { writer in
                        for index in 0..<2 {
                            try await writer.write(
                                .with {
                                    $0.action = .write
                                    $0.ref = "half"
                                    $0.offset = Int64(index << 16)
                                    $0.data = bytes.subdata(in: (index << 16)..<((index + 1) << 16))
                                })
                        }
                        try await Task.sleep(for: .milliseconds(200))
                        throw Abandoned()
                    }, onResponse: { response in for try await _ in response.messages {} })
            } catch {}
            // The ref is free again and reports what arrived; a new writer finishes the blob.
            var status = try await content.status(.with { $0.ref = "half" }, metadata: Self.metadata).status
            for _ in 0..<50 where status.offset != 2 << 16 {
                try await Task.sleep(for: .milliseconds(20))
                status = try await content.status(.with { $0.ref = "half" }, metadata: Self.metadata).status
            }
            #expect(status.offset == 2 << 16)
            let expected = try Self.sha256(bytes)
            try await content.write(
                metadata: Self.metadata,
                requestProducer: { writer in
                    try await writer.write(
                        .with {
                            $0.action = .commit
                            $0.ref = "half"
                            $0.offset = 2 << 16
                            $0.total = Int64(bytes.count)
                            $0.expected = expected
                            $0.data = bytes.subdata(in: (2 << 16)..<(3 << 16))
                        })
                }, onResponse: { response in for try await _ in response.messages {} })
            let info = try await content.info(.with { $0.digest = expected }, metadata: Self.metadata).info
            #expect(info.size == Int64(bytes.count))
            let active = try await content.listStatuses(.with { _ in }, metadata: Self.metadata).statuses
            #expect(active.isEmpty, "the committed ingest is gone")
        }
    }

    @Test func read_clientGivesUpMidStream_daemonKeepsServing() async throws {
        try await withClients { _, content, _ in
            let bytes = Data(repeating: 0x5A, count: 8 << 20)
            let digest = try Self.sha256(bytes)
            try await content.write(
                metadata: Self.metadata,
                requestProducer: { writer in
                    try await writer.write(
                        .with {
                            $0.action = .commit
                            $0.ref = "big"
                            $0.total = Int64(bytes.count)
                            $0.expected = digest
                            $0.data = bytes
                        })
                }, onResponse: { response in for try await _ in response.messages {} })
            for _ in 0..<20 {
                let first = try await content.read(.with { $0.digest = digest }, metadata: Self.metadata) { response in
                    for try await message in response.messages { return message.data.count }
                    return 0
                }
                #expect(first == 1 << 20)
            }
            let whole = try await content.read(.with { $0.digest = digest }, metadata: Self.metadata) { response in
                try await response.messages.reduce(0) { $0 + $1.data.count }
            }
            #expect(whole == bytes.count)
            let beyond = await rpcFailure {
                _ = try await content.read(
                    .with {
                        $0.digest = digest
                        $0.offset = Int64(bytes.count) + 1
                    }, metadata: Self.metadata
                ) { response in
                    for try await _ in response.messages {}
                }
            }
            #expect(beyond?.0 == .outOfRange)
        }
    }

    @Test func labels_oversizedOrEmptyKey_areRefused_manySmallOnesAccepted() async throws {
        try await withClients { snapshots, content, _ in
            let huge = String(repeating: "x", count: 5000)
            let big = await rpcFailure {
                _ = try await snapshots.prepare(
                    .with {
                        $0.key = "k"
                        $0.labels = ["big": huge]
                    }, metadata: Self.metadata)
            }
            #expect(big?.0 == .invalidArgument)
            #expect(big?.1 == "label \"big\": key and value are larger than 4096 bytes")
            let emptyKey = await rpcFailure {
                _ = try await snapshots.prepare(
                    .with {
                        $0.key = "k"
                        $0.labels = ["": "v"]
                    }, metadata: Self.metadata)
            }
            #expect(emptyKey?.0 == .invalidArgument)
            let listed = try await snapshots.list(.with { _ in }, metadata: Self.metadata) { response in
                try await response.messages.reduce(0) { $0 + $1.info.count }
            }
            #expect(listed == 0, "refused prepares leave no snapshot")

            var many = [String: String]()
            for index in 0..<5000 { many["label.\(index)"] = String(repeating: "v", count: 100) }
            _ = try await snapshots.prepare(
                .with {
                    $0.key = "many"
                    $0.labels = many
                }, metadata: Self.metadata)
            let info = try await snapshots.stat(.with { $0.key = "many" }, metadata: Self.metadata).info
            #expect(info.labels == many)

            let bytes = Data("labelled".utf8)
            let digest = try Self.sha256(bytes)
            try await CollectionRaceTests.commit(content, bytes, digest: digest, ref: "labelled", metadata: Self.metadata)
            let update = await rpcFailure {
                _ = try await content.update(
                    .with {
                        $0.info.digest = digest
                        $0.info.labels = ["big": huge]
                    }, metadata: Self.metadata)
            }
            #expect(update?.0 == .invalidArgument && update?.1 == "label \"big\": key and value are larger than 4096 bytes")
            #expect(try await content.info(.with { $0.digest = digest }, metadata: Self.metadata).info.labels == [:], "the refused update changed nothing")
        }
    }

    @Test func requests_malformed_getCodesNamingTheObject() async throws {
        try await withClients { snapshots, content, _ in
            let cases: [(String, RPCError.Code, String, () async throws -> Void)] = [
                (
                    "empty key", .invalidArgument, "snapshot key must not be empty",
                    { _ = try await snapshots.prepare(.with { $0.key = "" }, metadata: Self.metadata) }
                ),
                (
                    "unknown snapshotter", .invalidArgument, "snapshotter \"zfs\" is not loaded",
                    {
                        _ = try await snapshots.prepare(
                            .with {
                                $0.key = "a"
                                $0.snapshotter = "zfs"
                            }, metadata: Self.metadata)
                    }
                ),
                (
                    "missing parent", .notFound, "parent snapshot \"ghost\" does not exist",
                    {
                        _ = try await snapshots.prepare(
                            .with {
                                $0.key = "a"
                                $0.parent = "ghost"
                            }, metadata: Self.metadata)
                    }
                ),
                (
                    "bad digest", .invalidArgument, "digest \"sha256:xyz\" is not a valid sha256 digest (\"sha256:\" and 64 lowercase hex digits)",
                    { _ = try await content.info(.with { $0.digest = "sha256:xyz" }, metadata: Self.metadata) }
                ),
                (
                    "no namespace", .failedPrecondition, "namespace is required: send it in the containerd-namespace header",
                    { _ = try await snapshots.stat(.with { $0.key = "a" }) }
                ),
                (
                    "bad namespace", .invalidArgument, "namespace name \"a/b\" must be letters and digits joined by single '.', '_' or '-'",
                    { _ = try await snapshots.stat(.with { $0.key = "a" }, metadata: ["containerd-namespace": "a/b"]) }
                ),
                (
                    "empty ingest ref", .invalidArgument, "ingest ref must not be empty",
                    {
                        try await content.write(
                            metadata: Self.metadata,
                            requestProducer: { writer in
                                try await writer.write(.with { $0.action = .stat })
                            }, onResponse: { response in for try await _ in response.messages {} })
                    }
                ),
            ]
            for (name, code, message, body) in cases {
                let error = await rpcFailure(body)
                #expect(error?.0 == code, "\(name)")
                #expect(error?.1 == message, "\(name)")
            }
            _ = try await snapshots.prepare(.with { $0.key = "after" }, metadata: Self.metadata)
        }
    }

    static func sha256(_ data: Data) throws -> String {
        let file = NSTemporaryDirectory() + "sha-\(UUID().uuidString)"
        try data.write(to: URL(fileURLWithPath: file))
        defer { try? FileManager.default.removeItem(atPath: file) }
        return "sha256:" + (try run("/usr/bin/sha256sum", [file]).stdout.prefix(64))
    }
}
