import BerthAPI
import BerthProto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwiftProtobuf
import Testing

/// Behaviours where containerd's own conformance suites (core/snapshots/testsuite,
/// core/content/testsuite) or ctr found Berth differing from containerd 1.6.20 (issue 11). Each
/// expectation was checked against containerd 1.6.20 on this machine.
@Suite(.serialized) struct ContainerdParityTests {
    typealias Content = Containerd_Services_Content_V1_Content.Client<HTTP2ClientTransport.Posix>
    typealias WriteResponse = Containerd_Services_Content_V1_WriteContentResponse

    static func namespace(_ name: String) -> Metadata {
        var metadata = Metadata()
        metadata.addString(name, forKey: "containerd-namespace")
        return metadata
    }

    /// Sends `requests` on one Write stream and returns every response.
    private func write(_ content: Content, _ namespace: String, _ requests: [Containerd_Services_Content_V1_WriteContentRequest])
        async throws -> [WriteResponse]
    {
        try await content.write(
            metadata: Self.namespace(namespace),
            requestProducer: { writer in
                for request in requests { try await writer.write(request) }
            },
            onResponse: { response in
                try await response.messages.reduce(into: [WriteResponse]()) { $0.append($1) }
            })
    }

    private func read(_ content: Content, _ namespace: String, _ digest: String) async throws -> Data {
        try await content.read(.with { $0.digest = digest }, metadata: Self.namespace(namespace)) { response in
            try await response.messages.reduce(into: Data()) { $0.append($1.data) }
        }
    }

    /// containerd's TestSnapshotter/Update: a fresh commit has created == updated, both the
    /// commit's time; and (as containerd answers) a committed snapshot has no mounts.
    @Test(arguments: ["overlayfs", "native"])
    func ctrSnapshots_committed_createdEqualsUpdatedAndMountsAreFailedPrecondition(snapshotter: String) throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        func ctr(_ arguments: String...) throws -> RunResult { try daemon.ctr(["snapshots", "--snapshotter", snapshotter] + arguments) }
        #expect(try ctr("prepare", "a").status == 0)
        usleep(50_000)
        #expect(try ctr("commit", "c", "a").status == 0)
        let info = try JSONSerialization.jsonObject(with: Data(try ctr("info", "c").stdout.utf8)) as? [String: Any]
        #expect(info?["Kind"] as? String == "Committed")
        #expect(info?["Created"] as? String != nil && info?["Created"] as? String == info?["Updated"] as? String)
        let mounts = try ctr("mounts", daemon.directory + "/m", "c")
        #expect(mounts.status == 1)
        #expect(mounts.stdout == "")
        #expect(mounts.stderr == "ctr: snapshot \"c\" is committed; only active snapshots and views have mounts: failed precondition\n")
    }

    /// containerd's TestContent/Resume: Status and a resumed writer report the time of the last
    /// write as updated_at, to the nanosecond the daemon saw, not the start or a whole second.
    @Test func status_afterWriteCloseAndResume_updatedAtIsTheLastWrite() async throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        try await withClient(daemon) { client in
            let content = Content(wrapping: client)
            let start = Date()
            _ = try await write(
                content, "resume",
                [
                    .with {
                        $0.action = .stat
                        $0.ref = "r"
                        $0.total = 256
                    }
                ])
            try await Task.sleep(for: .milliseconds(300))
            let beforeWrite = Date()
            _ = try await write(
                content, "resume",
                [
                    .with {
                        $0.action = .write
                        $0.ref = "r"
                        $0.data = Data(repeating: 1, count: 128)
                    }
                ])
            let afterWrite = Date()
            let status = try await content.status(.with { $0.ref = "r" }, metadata: Self.namespace("resume")).status
            #expect(status.offset == 128)
            #expect(status.startedAt.date >= start.addingTimeInterval(-0.001) && status.startedAt.date < beforeWrite)
            #expect(
                status.updatedAt.date >= beforeWrite && status.updatedAt.date <= afterWrite,
                "updated \(status.updatedAt.date.timeIntervalSince1970) not in [\(beforeWrite.timeIntervalSince1970), \(afterWrite.timeIntervalSince1970)]")
            let listed = try await content.listStatuses(.with { _ in }, metadata: Self.namespace("resume")).statuses
            #expect(listed.map(\.updatedAt) == [status.updatedAt])
            let resumed = try await write(
                content, "resume",
                [
                    .with {
                        $0.action = .stat
                        $0.ref = "r"
                        $0.total = 256
                    }
                ])
            #expect(resumed.map(\.offset) == [128])
            #expect(resumed.map(\.updatedAt) == [status.updatedAt])
        }
    }

    /// containerd's TestContentCrossNS/CrossNamespaceShare and CrossNamespaceAppend: a writer in
    /// namespace B that expects a digest namespace A holds reports those bytes as written; its
    /// commit records them for B; and a write after them appends to a copy.
    @Test func write_inSecondNamespace_ofDigestAnotherHolds_reportsItWrittenThenCommitsOrAppends() async throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        try await withClient(daemon) { client in
            let content = Content(wrapping: client)
            let bytes = Data((0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
            let digest = try BadInputTests.sha256(bytes)
            _ = try await write(
                content, "a",
                [
                    .with {
                        $0.action = .commit
                        $0.ref = "ref-1000"
                        $0.total = 1000
                        $0.expected = digest
                        $0.data = bytes
                    }
                ])

            let shared = try await write(
                content, "b",
                [
                    .with {
                        $0.action = .stat
                        $0.ref = "ref-1000"
                        $0.total = 1000
                        $0.expected = digest
                    },
                    .with {
                        $0.action = .commit
                        $0.ref = "ref-1000"
                        $0.total = 1000
                        $0.expected = digest
                    },
                ])
            #expect(shared.map(\.action) == [.stat, .commit])
            #expect(shared.map(\.offset) == [1000, 1000])
            #expect(shared.map(\.total) == [1000, 1000])
            #expect(shared.map(\.digest) == [digest, digest])
            #expect(try await content.info(.with { $0.digest = digest }, metadata: Self.namespace("b")).info.size == 1000)
            #expect(try await read(content, "b", digest) == bytes)
            #expect(try await content.listStatuses(.with { _ in }, metadata: Self.namespace("b")).statuses.isEmpty)

            let longer = bytes + Data("appended bytes".utf8)
            let longerDigest = try BadInputTests.sha256(longer)
            let appended = try await write(
                content, "c",
                [
                    .with {
                        $0.action = .stat
                        $0.ref = "ref-1000"
                        $0.total = 1000
                        $0.expected = digest
                    },
                    .with {
                        $0.action = .write
                        $0.ref = "ref-1000"
                        $0.offset = 1000
                        $0.data = Data("appended bytes".utf8)
                    },
                    .with {
                        $0.action = .commit
                        $0.ref = "ref-1000"
                        $0.total = Int64(longer.count)
                        $0.expected = longerDigest
                    },
                ])
            #expect(appended.map(\.offset) == [1000, 1014, 1014])
            #expect(appended.first?.digest == digest && appended.last?.digest == longerDigest)
            #expect(try await read(content, "c", longerDigest) == longer)
            let missing = await rpcFailure { _ = try await content.info(.with { $0.digest = digest }, metadata: Self.namespace("c")) }
            #expect(missing?.0 == .notFound)
            #expect(try await read(content, "a", digest) == bytes)
        }
    }

    /// A commit checks what its own session declared: a size an earlier client expected (and
    /// failed to meet) does not bind the next writer of the ref, which containerd completes.
    @Test func ctrContentIngest_afterFailedExpectedSize_withoutExpectations_commits() throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        let file = daemon.directory + "/twelve"
        try "hello world\n".write(toFile: file, atomically: true, encoding: .utf8)
        func ingest(_ flags: String) throws -> RunResult {
            try run("/bin/sh", ["-c", "/usr/bin/ctr --address \(daemon.socket) content ingest \(flags) r < \(file)"])
        }
        let failed = try ingest("--expected-size 5")
        #expect(failed.status == 1)
        #expect(failed.stderr.contains("expected size 5, wrote 12 bytes: failed precondition"))
        let again = try ingest("")
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try daemon.ctr(["content", "ls", "-q"]).stdout == "sha256:a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447\n")
        #expect(try daemon.ctr(["content", "active"]).stdout == "REF\tSIZE\tAGE\t\n")
    }

    /// `labels.x===y` is an unsupported operator for containerd's filter parser: listing content
    /// or images with it fails with INVALID_ARGUMENT instead of listing nothing.
    @Test func ctrContentAndImagesLs_filterWithOperatorRun_isInvalidArgument() throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        let content = try daemon.ctr(["content", "ls", "labels.x===y"])
        #expect(content.status == 1)
        #expect(content.stderr == "ctr: filter \"labels.x===y\": unsupported operator \"===\" at offset 8: invalid argument\n")
        let images = try daemon.ctr(["images", "ls", "labels.x===y"])
        #expect(images.status == 1)
        #expect(images.stderr == "ctr: failed to list images: filter \"labels.x===y\": unsupported operator \"===\" at offset 8: invalid argument\n")
        #expect(try daemon.ctr(["images", "ls", "-q", "labels.x==y"]).status == 0)
    }

    /// `ctr images import` of a truncated archive fails half-way through a blob; the ingest it
    /// was writing was opened under the import's lease, and containerd removes it with that
    /// lease (within a second on this machine). Berth too: nothing half-made stays listed.
    @Test func ctrImagesImport_truncatedArchive_leavesNoIngestOnceItsLeaseIsGone() throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        let (tarball, _) = try CtrImagesTests.buildImage(in: daemon.directory)
        let truncated = daemon.directory + "/truncated.tar"
        #expect(try run("/bin/sh", ["-c", "head -c 600000 \(tarball) > \(truncated)"]).status == 0)
        let imported = try daemon.ctr(["images", "import", "--base-name", "x/y", truncated], namespace: "imp")
        #expect(imported.status == 1)
        #expect(imported.stderr.contains("unexpected EOF"), "\(imported.stderr)")
        var active = ""
        for _ in 0..<50 {
            active = try daemon.ctr(["content", "active"], namespace: "imp").stdout
            if active == "REF\tSIZE\tAGE\t\n" { break }
            usleep(100_000)
        }
        #expect(active == "REF\tSIZE\tAGE\t\n")
        #expect(try daemon.ctr(["leases", "ls", "-q"], namespace: "imp").stdout == "")
        #expect(try daemon.ctr(["content", "ls", "-q"], namespace: "imp").stdout == "")
        #expect(daemon.log.contains("removed ingests no lease holds"))
    }
}
