import Foundation
import Testing

/// `ctr content` against berthd. Outputs and exit codes were compared with containerd 1.6.20
/// running the same commands on this machine; error texts are Berth's own words.
@Suite(.serialized) struct CtrContentTests {
    @Test func ctrContent_ingestGetLabelActiveDelete_behaveAsContainerd() throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        let blob = daemon.directory + "/blob"
        let bytes = Data((0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 7) })
        try bytes.write(to: URL(fileURLWithPath: blob))
        let digest = try run("/usr/bin/sha256sum", [blob]).stdout.split(separator: " ")[0]
        let ref = "sha256:\(digest)"
        func ctr(_ arguments: [String], stdin: String? = nil) throws -> RunResult {
            guard let stdin else { return try daemon.ctr(["content"] + arguments) }
            let line = (["/usr/bin/ctr", "--address", daemon.socket, "content"] + arguments).joined(separator: " ")
            return try run("/bin/sh", ["-c", "\(line) < \(stdin)"])
        }

        #expect(try ctr(["ingest", "r1"], stdin: blob).status == 0)
        let listed = try ctr(["ls"]).stdout.split(separator: "\n")
        #expect(listed.count == 2)
        #expect(listed.last?.hasPrefix("\(ref)\t3MB\t") == true)
        let got = try run("/bin/sh", ["-c", "/usr/bin/ctr --address \(daemon.socket) content get \(ref) | sha256sum"])
        #expect(got.stdout.hasPrefix(String(digest)))
        // Ingesting content that exists succeeds, as with containerd (the client treats it as done).
        #expect(try ctr(["ingest", "--expected-digest", ref, "r2"], stdin: blob).status == 0)
        #expect(try ctr(["label", ref, "a=b"]).stdout == "a=b\n")
        #expect(try ctr(["ls"]).stdout.hasSuffix("\ta=b\n"))

        let small = daemon.directory + "/small"
        try Data(repeating: 7, count: 100).write(to: URL(fileURLWithPath: small))
        let wrong = try ctr(["ingest", "--expected-digest", "sha256:" + String(repeating: "0", count: 64), "r3"], stdin: small)
        #expect(wrong.status == 1 && wrong.stderr.contains("failed precondition"))
        let short = try ctr(["ingest", "--expected-size", "5", "r4"], stdin: small)
        #expect(short.status == 1 && short.stderr.contains("expected size 5, wrote 100 bytes: failed precondition"))
        let active = try ctr(["active"]).stdout.split(separator: "\n").map { $0.split(separator: "\t").prefix(2).joined(separator: " ") }
        #expect(active == ["REF SIZE", "r3 100B", "r4 100B"])
        // The failed expectation held for that session only: the same ref now commits.
        #expect(try ctr(["ingest", "r3"], stdin: small).status == 0)

        let bad = try ctr(["get", "sha256:bad"])
        #expect(bad.status == 1)
        #expect(try ctr(["delete", ref]).status == 0)
        let missing = try ctr(["get", ref])
        #expect(missing.status == 1 && missing.stderr.contains("not found"))
    }

    /// `content edit` (read, edit in $EDITOR, ingest the result) and `content prune references`,
    /// with the outputs containerd 1.6.20 gave for the same steps.
    @Test func ctrContent_editAndPruneReferences_behaveAsContainerd() throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        let editor = daemon.directory + "/editor.sh"
        try "#!/bin/sh\necho edited >> \"$1\"\n".write(toFile: editor, atomically: true, encoding: .utf8)
        chmod(editor, 0o755)
        let original = daemon.directory + "/hello"
        try "hello\n".write(toFile: original, atomically: true, encoding: .utf8)
        let hello = "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        let edited = "sha256:396545fdc28e586062cb280d0d66394b80a6a62f49d4183800e6f9e62732fd3d"
        #expect(try run("/bin/sh", ["-c", "/usr/bin/ctr --address \(daemon.socket) content ingest h1 < \(original)"]).status == 0)
        #expect(try daemon.ctr(["content", "label", hello, "containerd.io/gc.root=x"]).stdout == "containerd.io/gc.root=x\n")
        #expect(try daemon.ctr(["content", "edit", "--editor", editor, hello]).stdout == edited + "\n")
        #expect(try daemon.ctr(["content", "get", edited]).stdout == "hello\nedited\n")
        #expect(try daemon.ctr(["content", "label", hello, "containerd.io/gc.ref.content.l=\(edited)"]).status == 0)
        let prune = try daemon.ctr(["content", "prune", "references"])
        #expect(prune.status == 0, "\(prune.stderr)")
        // Only layer blobs lose their references by default: both blobs and labels stay.
        // ctr prints labels in Go's random map order: compare them as sets.
        let listed = try daemon.ctr(["content", "ls"]).stdout.split(separator: "\n").dropFirst().map { line in
            "\(line.split(separator: "\t").first!) " + line.split(separator: "\t").last!.split(separator: ",").sorted().joined(separator: ",")
        }
        #expect(listed == ["\(edited) -", "\(hello) containerd.io/gc.ref.content.l=\(edited),containerd.io/gc.root=x"])
    }

    /// ctr sends a PING after each reply it reads; more than 200 in 30 s used to make the HTTP/2
    /// layer close the connection mid-ingest. 300 MiB is 300 replies.
    @Test func ctrContent_ingestOf300MiB_survivesClientPings() throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        let blob = daemon.directory + "/big"
        #expect(try run("/bin/sh", ["-c", "head -c 314572800 /dev/zero | tr '\\0' x > \(blob)"]).status == 0)
        let digest = "sha256:" + (try run("/usr/bin/sha256sum", [blob]).stdout.split(separator: " ")[0])
        let ingest = try run("/bin/sh", ["-c", "/usr/bin/ctr --address \(daemon.socket) content ingest --expected-digest \(digest) big < \(blob)"])
        #expect(ingest.status == 0, "\(ingest.stderr)")
        #expect(try daemon.ctr(["content", "ls", "-q"]).stdout == "\(digest)\n")
    }

    /// `[gc] ingest_expiry_seconds` shortens how long an abandoned ingest is kept.
    @Test func ingestExpiry_fromPluginConf_removesAbandonedIngestAtNextCollection() throws {
        let daemon = try Daemon(plugins: Daemon.inTreePlugins + "\n[gc]\ningest_expiry_seconds = 1\n")
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        let small = daemon.directory + "/small"
        try Data(repeating: 7, count: 100).write(to: URL(fileURLWithPath: small))
        let ingest = try run("/bin/sh", ["-c", "/usr/bin/ctr --address \(daemon.socket) content ingest --expected-size 5 left < \(small)"])
        #expect(ingest.status == 1)
        #expect(try daemon.ctr(["content", "active"]).stdout.contains("left\t100B"))
        sleep(2)
        var active = ""
        for _ in 0..<50 {
            // Removing a snapshot asks for a collection; each run expires stale ingests.
            #expect(try daemon.ctr(["snapshots", "prepare", "nudge"]).status == 0)
            #expect(try daemon.ctr(["snapshots", "rm", "nudge"]).status == 0)
            active = try daemon.ctr(["content", "active"]).stdout
            if !active.contains("left") { break }
            usleep(100_000)
        }
        #expect(!active.contains("left"), "\(active)")
    }
}
