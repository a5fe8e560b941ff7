import Foundation
import Testing

/// berthd as a service: refusals at start, socket permissions, shutdown.
@Suite(.serialized) struct DaemonTests {
    @Test func berthd_requiredPluginFails_exitsNonZeroNamingIt() throws {
        let daemon = try Daemon(
            plugins: """
                [plugins."io.containerd.content.v1.content"]
                path = "/nonexistent/libBerthContent.so"
                required = true
                """)
        #expect(daemon.waitExit() == 1)
        #expect(
            daemon.log.contains(
                "berthd: required plugin io.containerd.content.v1.content did not start: plugin file /nonexistent/libBerthContent.so does not exist"))
        #expect(!FileManager.default.fileExists(atPath: daemon.socket))
    }

    @Test func berthd_secondDaemonOnSameRoot_refusesWithClearMessage() throws {
        let first = try Daemon()
        try first.waitReady()
        let second = try Daemon(directory: first.directory + "/second")
        // Point the second at the first one's root by rewriting its config and restarting it.
        _ = second.stop()
        var config = try String(contentsOfFile: second.configPath, encoding: .utf8)
        config = config.replacingOccurrences(of: "\(second.directory)/root", with: "\(first.directory)/root")
        try config.write(toFile: second.configPath, atomically: true, encoding: .utf8)
        let result = try run(Tree.berthd, ["--config", second.configPath])
        #expect(result.status == 1)
        #expect(result.stderr.contains("berthd: another berthd (pid \(first.process.processIdentifier)) is already using root \(first.directory)/root"))
        #expect(try first.ctr(["version"]).status == 0)
        #expect(first.stop() == 0)
    }

    @Test func berthd_badConfig_exitsNamingKeyAndLine() throws {
        let directory = NSTemporaryDirectory() + "badconf-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "version = 1\n[grpc]\nadress = \"/x\"\n".write(toFile: directory + "/p.conf", atomically: true, encoding: .utf8)
        let result = try run(Tree.berthd, ["--config", directory + "/p.conf"])
        #expect(result.status == 1)
        #expect(result.stderr == "berthd: \(directory)/p.conf:3: unknown key \"grpc.adress\"\n")
        let missing = try run(Tree.berthd, ["--config", directory + "/absent.conf"])
        #expect(missing.status == 1)
        #expect(missing.stderr == "berthd: config file \(directory)/absent.conf does not exist or cannot be read\n")
    }

    @Test func berthd_socketAndFolderModes_andCleanShutdownOnSIGTERM() throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        let socketMode = try FileManager.default.attributesOfItem(atPath: daemon.socket)[.posixPermissions] as? Int
        let folderMode = try FileManager.default.attributesOfItem(atPath: daemon.directory)[.posixPermissions] as? Int
        #expect(socketMode == 0o660)
        #expect(folderMode == 0o755)  // the test made the folder: it keeps its mode (HTTP2ServerTests.socketFolder_*)
        #expect(daemon.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: daemon.socket))
        // Nothing outside root, state and the socket (the config and log are the test's own).
        let entries = try FileManager.default.contentsOfDirectory(atPath: daemon.directory).sorted()
        #expect(entries == ["berthd.log", "plugin.conf", "root", "state"])
        #expect(daemon.log.contains("msg=\"berthd stopped\""))
    }
}
