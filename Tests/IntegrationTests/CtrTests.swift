import Foundation
import Testing

/// containerd's own `ctr` (1.6) against berthd. Expected outputs were recorded from containerd
/// 1.6.20 running the same commands on this machine.
@Suite(.serialized) struct CtrTests {
    @Test func ctrVersion_exitsZero_printsBerthVersionAndUUID() throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        let result = try daemon.ctr(["version"])
        #expect(result.status == 0)
        let server = try #require(result.stdout.components(separatedBy: "Server:\n").last)
        let lines = server.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(lines.count == 3)
        #expect(lines.first == "Version:  0.1.0")
        #expect(lines.dropFirst().first == "Revision: development")
        let uuid = try #require(lines.last?.split(separator: " ").last)
        #expect(UUID(uuidString: String(uuid)) != nil)
        #expect(daemon.stop() == 0)
    }

    @Test func ctrPluginsLs_listsEveryPluginWithItsStatus() throws {
        let daemon = try Daemon()
        let work = daemon.directory
        let hello = try Tree.helloPlugin.get()
        let echo = try Tree.cPlugin("Examples/CPlugin/echo_plugin.c", into: work, name: "echo")
        let abi2 = try Tree.cPlugin("Tests/Fixtures/fixture_plugin.c", flags: ["-DFIXTURE_ABI_MAJOR=2", "-DFIXTURE_ID=\"abi2\""], into: work, name: "abi2")
        let noEntry = try Tree.cPlugin(
            "Tests/Fixtures/fixture_plugin.c", flags: ["-DFIXTURE_NO_ENTRY", "-DFIXTURE_ID=\"noentry\""], into: work, name: "noentry")
        let failing = try Tree.cPlugin(
            "Tests/Fixtures/fixture_plugin.c", flags: ["-DFIXTURE_FAIL_START", "-DFIXTURE_ID=\"failing\""], into: work, name: "failing")
        _ = daemon.stop()
        let withExamples = try Daemon(
            plugins: Daemon.inTreePlugins + """
                [plugins."io.berth.example.v1.hello"]
                path = "\(hello)"
                [plugins."io.berth.example.v1.hello".config]
                greeting = "hi"
                [plugins."io.berth.example.v1.echo-c"]
                path = "\(echo)"
                [plugins."io.berth.fixture.v1.abi2"]
                path = "\(abi2)"
                [plugins."io.berth.fixture.v1.noentry"]
                path = "\(noEntry)"
                [plugins."io.berth.fixture.v1.failing"]
                path = "\(failing)"
                """)
        try withExamples.waitReady()
        let result = try withExamples.ctr(["plugins", "ls"])
        #expect(result.status == 0)
        let rows = result.stdout.split(separator: "\n").dropFirst().map { line in
            line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        }
        let status = Dictionary(rows.map { ("\($0[0]).\($0[1])", $0.last!) }, uniquingKeysWith: { a, _ in a })
        #expect(
            status == [
                "io.containerd.content.v1.content": "ok",
                "io.containerd.event.v1.exchange": "ok",
                "io.containerd.metadata.v1.sqlite": "ok",
                "io.containerd.service.v1.tasks-service": "ok",
                "io.containerd.internal.v1.restart": "ok",
                "io.containerd.grpc.v1.tasks": "ok",
                "io.containerd.grpc.v1.healthcheck": "ok",
                "io.containerd.grpc.v1.introspection": "ok",
                "io.containerd.grpc.v1.namespaces": "ok",
                "io.containerd.grpc.v1.version": "ok",
                "io.containerd.grpc.v1.snapshots": "ok",
                "io.containerd.grpc.v1.events": "ok",
                "io.containerd.grpc.v1.content": "ok",
                "io.containerd.grpc.v1.leases": "ok",
                "io.containerd.gc.v1.scheduler": "ok",
                "io.containerd.service.v1.snapshots-service": "ok",
                "io.containerd.service.v1.content-service": "ok",
                "io.containerd.service.v1.leases-service": "ok",
                "io.containerd.service.v1.images-service": "ok",
                "io.containerd.service.v1.diff-service": "ok",
                "io.containerd.service.v1.layer-staging": "ok",
                "io.containerd.service.v1.containers-service": "ok",
                "io.containerd.grpc.v1.containers": "ok",
                "io.containerd.grpc.v1.diff": "ok",
                "io.containerd.grpc.v1.images": "ok",
                "io.containerd.differ.v1.walking": "ok",
                "io.containerd.runtime.v2.linux": "ok",
                "io.containerd.runtime.v2.windows": "skip",
                "io.containerd.snapshotter.v1.native": "ok",
                "io.containerd.snapshotter.v1.overlayfs": "ok",
                "io.berth.example.v1.hello": "ok",
                "io.berth.example.v1.echo-c": "ok",
                "io.berth.fixture.v1.abi2": "error",
                "io.berth.fixture.v1.noentry": "error",
                "io.berth.fixture.v1.failing": "error",
            ])
        // One clear error line per bad plugin, naming the plugin and the cause.
        let errorLines = withExamples.log.split(separator: "\n").filter { $0.contains("level=error") }
        #expect(errorLines.count == 3)
        #expect(
            errorLines.contains { $0.contains("plugin=io.berth.fixture.v1.abi2") && $0.contains("was built for plugin ABI 2.1; this berthd speaks ABI 1.x") })
        #expect(errorLines.contains { $0.contains("plugin=io.berth.fixture.v1.noentry") && $0.contains("does not export the entry symbol berth_plugin_entry") })
        #expect(errorLines.contains { $0.contains("plugin=io.berth.fixture.v1.failing") && $0.contains("fixture refuses to start: no widget") })
        // The detailed view carries the error text from the daemon.
        let detailed = try withExamples.ctr(["plugins", "ls", "--detailed", "id==abi2"])
        #expect(detailed.stdout.contains("was built for plugin ABI 2.1"))
        let filtered = try withExamples.ctr(["plugins", "ls", "type==io.containerd.snapshotter.v1"])
        #expect(filtered.stdout.split(separator: "\n").count == 3)
        #expect(withExamples.stop() == 0)
    }

    @Test func ctrNamespaces_createListLabelRemove_behaveAsContainerd() throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        #expect(try daemon.ctr(["namespaces", "create", "team-a", "owner=me", "tier=1"]).status == 0)
        #expect(try daemon.ctr(["namespaces", "create", "team-b"]).status == 0)
        #expect(try daemon.ctr(["namespaces", "ls"]).stdout == "NAME   LABELS          \nteam-a owner=me,tier=1 \nteam-b                 \n")
        #expect(try daemon.ctr(["namespaces", "ls", "-q"]).stdout == "team-a\nteam-b\n")
        #expect(try daemon.ctr(["namespaces", "label", "team-a", "tier=2", "owner="]).status == 0)
        #expect(try daemon.ctr(["namespaces", "ls"]).stdout == "NAME   LABELS \nteam-a tier=2 \nteam-b        \n")
        let again = try daemon.ctr(["namespaces", "create", "team-a"])
        #expect(again.status == 1)
        #expect(again.stderr == "ctr: namespace \"team-a\": already exists\n")
        let bad = try daemon.ctr(["namespaces", "create", "Bad..name"])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("invalid argument"))
        // containerd's ctr prints every name it was given and ignores names that do not exist.
        let removed = try daemon.ctr(["namespaces", "rm", "team-a", "team-b", "nope"])
        #expect(removed.status == 0)
        #expect(removed.stdout == "team-a\nteam-b\nnope\n")
        #expect(try daemon.ctr(["namespaces", "ls", "-q"]).stdout == "")
        #expect(daemon.stop() == 0)
    }
}
