import Foundation
import Testing

@testable import Kernel

@Suite struct ConfigTests {
    @Test func defaultPluginConf_parses_withEveryInTreePlugin() throws {
        let config = try DaemonConfig(contentsOf: TestSupport.repositoryRoot + "/plugin.conf")
        #expect(config.root == "/var/lib/berth")
        #expect(config.state == "/run/berth")
        #expect(config.address == "/run/berth/berth.sock")
        #expect(config.runtimeAliases["io.containerd.runc.v2"] == "io.containerd.runtime.v2.linux")
        let enabled = config.plugins.filter(\.enabled).map(\.name.description)
        #expect(
            enabled == [
                "io.containerd.content.v1.content", "io.containerd.differ.v1.walking", "io.containerd.runtime.v2.linux",
                "io.containerd.runtime.v2.windows",
                "io.containerd.snapshotter.v1.native", "io.containerd.snapshotter.v1.overlayfs",
            ])
        #expect(config.plugins.first { $0.name.id == "overlayfs" }?.required == true)
    }

    @Test func config_pluginTable_passesItsConfigAsJSON() throws {
        let config = try DaemonConfig(
            text: """
                [plugins."io.example.v1.x"]
                path = "x.so"
                [plugins."io.example.v1.x".config]
                greeting = "hi"
                """, file: "t.conf")
        let json = try #require(config.plugins.first?.configJSON)
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: String]
        #expect(object == ["greeting": "hi"])
    }

    @Test func config_gcTable_setsCollectorShareAndIngestExpiry() throws {
        let defaults = try DaemonConfig(text: "version = 1\n", file: "t.conf")
        #expect(defaults.gcPauseThreshold == 0.05 && defaults.ingestExpirySeconds == 86_400)
        let set = try DaemonConfig(text: "[gc]\npause_threshold = 0.02\ningest_expiry_seconds = 3600\n", file: "t.conf")
        #expect(set.gcPauseThreshold == 0.02 && set.ingestExpirySeconds == 3600)
        #expect(throws: BerthError(.invalidArgument, "t.conf:2: gc.pause_threshold must be above 0 and below 1, found 1.0")) {
            try DaemonConfig(text: "[gc]\npause_threshold = 1\n", file: "t.conf")
        }
        #expect(throws: BerthError(.invalidArgument, "t.conf:3: gc.ingest_expiry_seconds must be positive, found 0")) {
            try DaemonConfig(text: "[gc]\n\ningest_expiry_seconds = 0\n", file: "t.conf")
        }
        #expect(throws: BerthError(.invalidArgument, "t.conf:2: unknown key \"gc.pause\"")) {
            try DaemonConfig(text: "[gc]\npause = 0.1\n", file: "t.conf")
        }
    }

    @Test func config_unpackTable_setsUnpackAheadAndItsBounds() throws {
        let defaults = try DaemonConfig(text: "version = 1\n", file: "t.conf")
        #expect(defaults.unpackAhead && defaults.unpackAheadLayers == 16 && defaults.unpackAheadBytes == 4 << 30 && defaults.unpackAheadTTLSeconds == 600)
        let set = try DaemonConfig(text: "[unpack]\nahead = false\nahead_layers = 2\nahead_bytes = 1048576\nahead_ttl_seconds = 5\n", file: "t.conf")
        #expect(!set.unpackAhead && set.unpackAheadLayers == 2 && set.unpackAheadBytes == 1_048_576 && set.unpackAheadTTLSeconds == 5)
        #expect(throws: BerthError(.invalidArgument, "t.conf:2: unpack.ahead_layers must be positive, found 0")) {
            try DaemonConfig(text: "[unpack]\nahead_layers = 0\n", file: "t.conf")
        }
        #expect(throws: BerthError(.invalidArgument, "t.conf:2: unknown key \"unpack.behind\"")) {
            try DaemonConfig(text: "[unpack]\nbehind = 1\n", file: "t.conf")
        }
    }

    @Test func config_unknownTopLevelKey_namesKeyAndLine() {
        #expect(throws: BerthError(.invalidArgument, "t.conf:3: unknown key \"rot\"")) {
            try DaemonConfig(text: "version = 1\n\nrot = \"/x\"\n", file: "t.conf")
        }
    }

    @Test func config_unknownPluginKey_namesPluginKeyAndLine() {
        let text = """
            [plugins."io.example.v1.x"]
            path = "x.so"
            requried = true
            """
        #expect(throws: BerthError(.invalidArgument, "t.conf:3: unknown key \"requried\" in plugin io.example.v1.x")) {
            try DaemonConfig(text: text, file: "t.conf")
        }
    }

    @Test func config_wrongType_namesKeyTypeAndLine() {
        let text = "[grpc]\naddress = 5\n"
        #expect(throws: BerthError(.invalidArgument, "t.conf:2: key \"address\" must be a string, found integer")) {
            try DaemonConfig(text: text, file: "t.conf")
        }
        #expect(throws: BerthError(.invalidArgument, "t.conf:2: key \"required\" must be a boolean, found string")) {
            try DaemonConfig(text: "[plugins.\"a.b.c\"]\nrequired = \"yes\"\npath = \"p\"\n", file: "t.conf")
        }
    }

    @Test func config_malformedTOML_namesLine() throws {
        let error = try #require(throws: BerthError.self) { try DaemonConfig(text: "a = 1\nb = = 2\n", file: "t.conf") }
        #expect(error.code == .invalidArgument)
        #expect(error.message.hasPrefix("t.conf:2: "))
    }

    @Test func config_missingFile_isNotFoundNamingFile() {
        #expect(throws: BerthError(.notFound, "config file /nonexistent/plugin.conf does not exist or cannot be read")) {
            try DaemonConfig(contentsOf: "/nonexistent/plugin.conf")
        }
    }

    @Test func config_pluginWithoutPath_isRefused() {
        #expect(throws: BerthError(.invalidArgument, "t.conf:1: plugin io.example.v1.x has no \"path\"")) {
            try DaemonConfig(text: "[plugins.\"io.example.v1.x\"]\nenabled = true\n", file: "t.conf")
        }
    }
}
