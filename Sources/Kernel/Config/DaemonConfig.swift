import FoundationEssentials
import Glibc

/// berthd's configuration, read from plugin.conf (TOML). docs/plugin-conf.md lists every key.
///
/// Parsing is strict: an unknown key, a value of the wrong type or a malformed file is refused
/// with the file, the line and the key, so a typo never silently falls back to a default.
public struct DaemonConfig: Sendable, Equatable {
    /// One `[plugins."type.id"]` table.
    public struct PluginEntry: Sendable, Equatable {
        public var name: PluginName
        /// The shared object; relative paths are resolved against `pluginDirectory`.
        public var path: String
        public var enabled: Bool
        /// When true, a failure of this plugin stops the daemon.
        public var required: Bool
        /// The `config` sub-table, as JSON, handed to the plugin untouched.
        public var configJSON: String

        public init(
            name: PluginName, path: String, enabled: Bool = true, required: Bool = false,
            configJSON: String = "{}"
        ) {
            self.name = name
            self.path = path
            self.enabled = enabled
            self.required = required
            self.configJSON = configJSON
        }
    }

    /// Persistent data (metadata database, snapshots, blobs).
    public var root: String = "/var/lib/berth"
    /// Volatile data (sockets, mounts, the lock); normally on tmpfs.
    public var state: String = "/run/berth"
    /// The gRPC unix socket.
    public var address: String = "/run/berth/berth.sock"
    /// Where relative plugin paths are found; empty means the folder holding berthd.
    public var pluginDirectory: String = ""
    /// One of trace, debug, info, notice, warning, error, critical.
    public var logLevel: String = "info"
    /// Runtime names clients send (`io.containerd.runc.v2`) mapped to a runtime plugin's `type.id`.
    public var runtimeAliases: [String: String] = [:]
    public var plugins: [PluginEntry] = []
    /// `[gc] pause_threshold`: the largest share of the daemon's time garbage collection may take
    /// (a run that took `d` is followed by a pause of `d × (1 − t) / t`).
    public var gcPauseThreshold: Double = 0.05
    /// `[gc] ingest_expiry_seconds`: how long an ingest nobody holds, leases or writes to is kept.
    public var ingestExpirySeconds: Int = 24 * 3600
    /// `[unpack] ahead`: whether layer blobs are unpacked while an import still sends the
    /// next ones (Sources/Storage/Diff/LayerStaging.swift).
    public var unpackAhead: Bool = true
    /// `[unpack] ahead_layers`: layers unpacked ahead and not yet applied, at most.
    public var unpackAheadLayers: Int = 16
    /// `[unpack] ahead_bytes`: their bytes (blob, or uncompressed once known), at most.
    public var unpackAheadBytes: Int = 4 << 30
    /// `[unpack] ahead_ttl_seconds`: how long a layer unpacked ahead waits for its Apply.
    public var unpackAheadTTLSeconds: Int = 600
    /// `plugin_call_timeout_seconds`: how long a call into a shared-object plugin may take when
    /// its caller sets no deadline of its own; then the call fails with DEADLINE_EXCEEDED and
    /// the plugin is told to cancel it. Calls that wait by nature (a task's Wait) are exempt.
    public var pluginCallTimeoutSeconds: Int = 300

    public init() {}

    /// Reads and checks the file at `path`.
    public init(contentsOf path: String) throws(BerthError) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .notFound("config file \(path) does not exist or cannot be read")
        }
        try self.init(text: String(decoding: data, as: UTF8.self), file: path)
    }

    /// Parses `text`; `file` names the source in errors.
    public init(text: String, file: String) throws(BerthError) {
        let table: TOML.Table
        do {
            table = try TOML.parse(text)
        } catch {
            throw .invalidArgument("\(file):\(error.line): \(error.message)")
        }
        let reader = ConfigReader(text: text, file: file)
        try reader.read(table, into: &self)
    }
}

/// Walks the parsed table, checking every key and type against the schema.
private struct ConfigReader {
    let text: String
    let file: String

    func read(_ table: TOML.Table, into config: inout DaemonConfig) throws(BerthError) {
        for key in table.keys.sorted() {
            let value = table[key]!
            switch key {
            case "version":
                guard try int(value, key: key, section: nil) == 1 else {
                    throw error("version must be 1", key: key, section: nil)
                }
            case "root": config.root = try string(value, key: key, section: nil)
            case "state": config.state = try string(value, key: key, section: nil)
            case "plugin_dir": config.pluginDirectory = try string(value, key: key, section: nil)
            case "log_level": config.logLevel = try logLevel(value, key: key)
            case "plugin_call_timeout_seconds":
                let seconds = try int(value, key: key, section: nil)
                guard seconds > 0 else { throw error("plugin_call_timeout_seconds must be positive, found \(seconds)", key: key, section: nil) }
                config.pluginCallTimeoutSeconds = seconds
            case "grpc": try readGRPC(try subtable(value, key: key, section: nil), into: &config)
            case "gc": try readGC(try subtable(value, key: key, section: nil), into: &config)
            case "unpack": try readUnpack(try subtable(value, key: key, section: nil), into: &config)
            case "runtime_aliases": config.runtimeAliases = try aliases(try subtable(value, key: key, section: nil))
            case "plugins": config.plugins = try plugins(try subtable(value, key: key, section: nil))
            default: throw error("unknown key \"\(key)\"", key: key, section: nil)
            }
        }
    }

    private func readGRPC(_ table: TOML.Table, into config: inout DaemonConfig) throws(BerthError) {
        for key in table.keys {
            guard key == "address" else { throw error("unknown key \"grpc.\(key)\"", key: key, section: "grpc") }
            config.address = try string(table[key]!, key: key, section: "grpc")
        }
    }

    private func readGC(_ table: TOML.Table, into config: inout DaemonConfig) throws(BerthError) {
        for key in table.keys {
            let value = table[key]!
            switch key {
            case "pause_threshold":
                guard let share = value.float ?? value.integer.map(Double.init) else { throw typeError(value, "a number", key: key, section: "gc") }
                guard share > 0, share < 1 else { throw error("gc.pause_threshold must be above 0 and below 1, found \(share)", key: key, section: "gc") }
                config.gcPauseThreshold = share
            case "ingest_expiry_seconds":
                let seconds = try int(value, key: key, section: "gc")
                guard seconds > 0 else { throw error("gc.ingest_expiry_seconds must be positive, found \(seconds)", key: key, section: "gc") }
                config.ingestExpirySeconds = seconds
            default:
                throw error("unknown key \"gc.\(key)\"", key: key, section: "gc")
            }
        }
    }

    private func readUnpack(_ table: TOML.Table, into config: inout DaemonConfig) throws(BerthError) {
        for key in table.keys {
            let value = table[key]!
            if key == "ahead" {
                config.unpackAhead = try bool(value, key: key, section: "unpack")
                continue
            }
            let number = try int(value, key: key, section: "unpack")
            guard number > 0 else { throw error("unpack.\(key) must be positive, found \(number)", key: key, section: "unpack") }
            switch key {
            case "ahead_layers": config.unpackAheadLayers = number
            case "ahead_bytes": config.unpackAheadBytes = number
            case "ahead_ttl_seconds": config.unpackAheadTTLSeconds = number
            default: throw error("unknown key \"unpack.\(key)\"", key: key, section: "unpack")
            }
        }
    }

    private func aliases(_ table: TOML.Table) throws(BerthError) -> [String: String] {
        var result = [String: String]()
        for key in table.keys { result[key] = try string(table[key]!, key: key, section: "runtime_aliases") }
        return result
    }

    private func plugins(_ table: TOML.Table) throws(BerthError) -> [DaemonConfig.PluginEntry] {
        var entries = [DaemonConfig.PluginEntry]()
        for key in table.keys.sorted() {
            let section = "plugins.\"\(key)\""
            guard let dot = key.lastIndex(of: "."), dot != key.startIndex, key.index(after: dot) != key.endIndex else {
                throw error("plugin table \"\(key)\" must be named \"type.id\"", key: key, section: "plugins")
            }
            let name = PluginName(type: PluginType(String(key[..<dot])), id: String(key[key.index(after: dot)...]))
            entries.append(try plugin(try subtable(table[key]!, key: key, section: "plugins"), name: name, section: section))
        }
        return entries
    }

    private func plugin(_ table: TOML.Table, name: PluginName, section: String) throws(BerthError) -> DaemonConfig.PluginEntry {
        var entry = DaemonConfig.PluginEntry(name: name, path: "", enabled: true, required: false, configJSON: "{}")
        for key in table.keys {
            let value = table[key]!
            switch key {
            case "path": entry.path = try string(value, key: key, section: section)
            case "enabled": entry.enabled = try bool(value, key: key, section: section)
            case "required": entry.required = try bool(value, key: key, section: section)
            case "config":
                let config = try subtable(value, key: key, section: section)
                do {
                    entry.configJSON = try config.json()
                } catch {
                    throw self.error("plugin \(name): \(error.message)", key: key, section: section)
                }
            default: throw error("unknown key \"\(key)\" in plugin \(name)", key: key, section: section)
            }
        }
        guard !entry.path.isEmpty else { throw error("plugin \(name) has no \"path\"", key: nil, section: section) }
        return entry
    }

    private func logLevel(_ value: TOML.Value, key: String) throws(BerthError) -> String {
        let level = try string(value, key: key, section: nil)
        let known = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
        guard known.contains(level) else {
            throw error("log_level \"\(level)\" is not one of \(known.joined(separator: ", "))", key: key, section: nil)
        }
        return level
    }

    private func string(_ value: TOML.Value, key: String, section: String?) throws(BerthError) -> String {
        guard let string = value.string else { throw typeError(value, "a string", key: key, section: section) }
        return string
    }

    private func bool(_ value: TOML.Value, key: String, section: String?) throws(BerthError) -> Bool {
        guard let bool = value.boolean else { throw typeError(value, "a boolean", key: key, section: section) }
        return bool
    }

    private func int(_ value: TOML.Value, key: String, section: String?) throws(BerthError) -> Int {
        guard let integer = value.integer, let int = Int(exactly: integer) else { throw typeError(value, "an integer", key: key, section: section) }
        return int
    }

    private func subtable(_ value: TOML.Value, key: String, section: String?) throws(BerthError) -> TOML.Table {
        guard let table = value.table else { throw typeError(value, "a table", key: key, section: section) }
        return table
    }

    private func typeError(_ value: TOML.Value, _ expected: String, key: String, section: String?) -> BerthError {
        error("key \"\(key)\" must be \(expected), found \(value.typeName)", key: key, section: section)
    }

    private func error(_ message: String, key: String?, section: String?) -> BerthError {
        let line = ConfigLines.line(of: key, in: section, text: text)
        return .invalidArgument("\(file)\(line.map { ":\($0)" } ?? ""): \(message)")
    }
}

/// Finds the line of a key for error messages (the parsed tree keeps no positions).
enum ConfigLines {
    /// The 1-based line where `key` is assigned inside table `section` (nil: the top level),
    /// or where the table itself is opened when `key` is nil or not found.
    static func line(of key: String?, in section: String?, text: String) -> Int? {
        var current: String? = nil
        var sectionLine: Int? = nil
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmed
            if line.hasPrefix("[") {
                current = normalize(String(line.drop { $0 == "[" }.reversed().drop { $0 == "]" }.reversed()))
                if let section, current == normalize(section) { sectionLine = index + 1 }
                if let section, let key, current == normalize(section + "." + quoteIfDotted(key)) { return index + 1 }
                if section == nil, let key, current == normalize(key) || current?.hasPrefix(normalize(key) + ".") == true { return index + 1 }
                continue
            }
            guard let key, current == section.map(normalize) else { continue }
            let name = line.split(separator: "=", maxSplits: 1).first.map { normalize(String($0)) }
            if name == normalize(quoteIfDotted(key)) || name == key { return index + 1 }
        }
        return sectionLine
    }

    private static func normalize(_ text: String) -> String {
        text.replacing(" ", with: "")
    }

    private static func quoteIfDotted(_ key: String) -> String {
        key.contains(".") ? "\"\(key)\"" : key
    }
}
