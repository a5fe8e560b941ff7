import Foundation
import Testing

/// `ctr events` sees the storage and namespace events berthd publishes, in order.
@Suite(.serialized) struct CtrEventsTests {
    @Test func ctrEvents_streamsSnapshotAndNamespaceEventsInOrder() throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        let output = daemon.directory + "/events.txt"
        FileManager.default.createFile(atPath: output, contents: nil)
        let watcher = Process()
        watcher.executableURL = URL(fileURLWithPath: "/usr/bin/ctr")
        watcher.arguments = ["--address", daemon.socket, "events"]
        watcher.standardOutput = FileHandle(forWritingAtPath: output)
        try watcher.run()
        defer {
            watcher.terminate()
            watcher.waitUntilExit()
        }
        usleep(300_000)  // let the subscription reach the daemon before anything happens

        #expect(try daemon.ctr(["snapshots", "prepare", "k"], namespace: "evns").status == 0)
        #expect(try daemon.ctr(["snapshots", "commit", "n", "k"], namespace: "evns").status == 0)
        #expect(try daemon.ctr(["snapshots", "rm", "n"], namespace: "evns").status == 0)
        #expect(try daemon.ctr(["namespaces", "label", "evns", "a=b"]).status == 0)

        var lines = [Substring]()
        for _ in 0..<100 {
            lines = (try String(contentsOfFile: output, encoding: .utf8)).split(separator: "\n")
            if lines.count >= 4 { break }
            usleep(50_000)
        }
        let topics = lines.map { line in line.split(separator: " ").dropFirst(4).prefix(3).joined(separator: " ") }
        #expect(
            topics == [
                "evns /snapshot/prepare {\"key\":\"k\"}",
                "evns /snapshot/commit {\"key\":\"k\",\"name\":\"n\"}",
                "evns /snapshot/remove {\"key\":\"n\"}",
                "evns /namespaces/update {\"name\":\"evns\",\"labels\":{\"a\":\"b\"}}",
            ])
    }
}
