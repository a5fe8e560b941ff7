import Foundation
import Testing

/// `ctr leases` against berthd, and garbage collection as ctr users see it. Outputs were
/// compared with containerd 1.6.20 running the same commands on this machine (error texts are
/// Berth's own words with the same codes). One deliberate difference: containerd collects a
/// fresh `ctr snapshots view` at its next collection (containerd#11908); Berth keeps active
/// snapshots and views made outside a lease until they are removed.
@Suite(.serialized) struct CtrLeasesTests {
    @Test func ctrLeases_createListFilterDelete_behaveAsContainerd() throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        func ctr(_ arguments: String...) throws -> RunResult { try daemon.ctr(["leases"] + arguments) }

        let generated = try ctr("create")
        #expect(generated.status == 0)
        let generatedID = generated.stdout.trimmingCharacters(in: .newlines)
        #expect(!generatedID.isEmpty && !generatedID.contains("\n"))
        #expect(try ctr("create", "--id", "l1", "--expires", "1h", "a=b", "c").stdout == "l1\n")
        #expect(try ctr("create", "--id", "forever", "--expires", "0").stdout == "forever\n")
        let again = try ctr("create", "--id", "l1")
        #expect(again.status == 1 && again.stderr == "ctr: lease \"l1\": already exists\n")

        let listing = try ctr("ls").stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        #expect(listing.first == ["ID", "CREATED", "AT", "LABELS"])
        let rows = Dictionary(uniqueKeysWithValues: listing.dropFirst().map { (String($0[0]), $0.dropFirst().map(String.init)) })
        #expect(Set(rows.keys) == [generatedID, "l1", "forever"])
        #expect(rows["forever"]?.last == "-", "a lease created with --expires 0 has no labels")
        let l1Labels = rows["l1"]?.last ?? ""
        #expect(l1Labels.hasPrefix("a=b,containerd.io/gc.expire="), "label c had no value and is dropped: \(l1Labels)")
        let expiry = ISO8601DateFormatter().date(from: String(l1Labels.dropFirst("a=b,containerd.io/gc.expire=".count)))
        #expect(abs((expiry ?? .distantPast).timeIntervalSinceNow - 3600) < 5)
        #expect(try ctr("ls", "-q").stdout == [generatedID, "forever", "l1"].sorted().joined(separator: "\n") + "\n")
        #expect(try ctr("ls", "-q", "id==l1").stdout == "l1\n")
        #expect(try ctr("ls", "-q", "labels.a==b").stdout == "l1\n")
        #expect(try ctr("ls", "-q", "id==forever", "id==l1").stdout == "forever\nl1\n")
        let badFilter = try ctr("ls", "bad==")
        #expect(badFilter.status == 1 && badFilter.stderr.hasPrefix("ctr: failed to list leases: ") && badFilter.stderr.hasSuffix(": invalid argument\n"))

        let missing = try ctr("rm", "nope")
        #expect(missing.status == 1 && missing.stderr == "ctr: lease \"nope\": not found\n")
        #expect(try ctr("rm", "l1", generatedID).stdout == "l1\n\(generatedID)\n")
        #expect(try ctr("rm", "--sync", "forever").stdout == "forever\n")
        #expect(try ctr("ls", "-q").stdout == "")
        #expect(try daemon.ctr(["namespaces", "rm", "default"]).status == 0, "no lease is left in the namespace")
    }

    @Test func collection_throughCtr_removesUnreferencedContent_keepsViews() throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        func ctr(_ arguments: String...) throws -> RunResult { try daemon.ctr(arguments) }
        func ingest(_ ref: String, _ text: String) throws {
            let file = daemon.directory + "/" + ref
            try text.write(toFile: file, atomically: false, encoding: .utf8)
            #expect(try run("/bin/sh", ["-c", "/usr/bin/ctr --address \(daemon.socket) content ingest \(ref) < \(file)"]).status == 0)
        }
        /// A sync lease delete waits for a whole collection.
        func collect() throws {
            #expect(try ctr("leases", "create", "--id", "sync").status == 0)
            #expect(try ctr("leases", "rm", "--sync", "sync").status == 0)
        }

        try ingest("one", "first blob")
        try ingest("two", "second blob")
        let digests = try ctr("content", "ls", "-q").stdout.split(separator: "\n").map(String.init)
        #expect(digests.count == 2)
        #expect(try ctr("content", "label", digests[1], "containerd.io/gc.root=now").status == 0)
        try collect()
        #expect(try ctr("content", "ls", "-q").stdout == digests[1] + "\n", "the unlabelled blob is collected, as in containerd")

        // ctr labels what prepare and commit make with gc.root; a view gets no label.
        #expect(try ctr("snapshots", "prepare", "p").status == 0)
        #expect(try ctr("snapshots", "commit", "base", "p").status == 0)
        #expect(try ctr("snapshots", "view", "v", "base").status == 0)
        try collect()
        #expect(try ctr("snapshots", "ls").stdout == "KEY  PARENT KIND      \nbase        Committed \nv    base   View      \n")
        #expect(try ctr("snapshots", "label", "base", "containerd.io/gc.root=").status == 0)
        try collect()
        #expect(try ctr("snapshots", "ls").stdout.contains("base        Committed"), "the view still holds its parent")
        #expect(try ctr("snapshots", "rm", "v").status == 0)
        try collect()
        #expect(try ctr("snapshots", "ls").stdout == "KEY PARENT KIND \n")
        let layers = daemon.directory + "/root/io.containerd.snapshotter.v1.overlayfs/snapshots"
        #expect(try FileManager.default.contentsOfDirectory(atPath: layers) == [])
    }
}
