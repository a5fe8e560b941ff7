#if canImport(Glibc)
    import Glibc
#endif

/// A plugin's type: a versioned URI such as `io.containerd.snapshotter.v1`. containerd's URIs
/// are used as they are, so clients that introspect see what they expect.
public struct PluginType: Hashable, Sendable, Comparable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let rawValue: String

    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }

    public var description: String { rawValue }
    public static func < (lhs: PluginType, rhs: PluginType) -> Bool { lhs.rawValue < rhs.rawValue }

    public static let snapshotter: PluginType = "io.containerd.snapshotter.v1"
    public static let content: PluginType = "io.containerd.content.v1"
    public static let runtime: PluginType = "io.containerd.runtime.v2"
    public static let metadata: PluginType = "io.containerd.metadata.v1"
    public static let event: PluginType = "io.containerd.event.v1"
    public static let grpcService: PluginType = "io.containerd.grpc.v1"
    public static let garbageCollector: PluginType = "io.containerd.gc.v1"
    public static let differ: PluginType = "io.containerd.differ.v1"
    /// Services in the daemon's own process that the gRPC layer forwards to (containerd's
    /// `io.containerd.service.v1`): snapshots, content, leases, images, diff.
    public static let service: PluginType = "io.containerd.service.v1"
}

/// The name of one registration: its type and its id, written `type.id` as containerd does.
public struct PluginName: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var type: PluginType
    public var id: String

    public init(type: PluginType, id: String) {
        self.type = type
        self.id = id
    }

    public var description: String { "\(type.rawValue).\(id)" }
    public static func < (lhs: PluginName, rhs: PluginName) -> Bool { lhs.description < rhs.description }
}

/// An OCI platform as plugins declare it: `os`, optionally `/arch` and `/variant`.
public struct Platform: Hashable, Sendable, CustomStringConvertible {
    public var os: String
    public var architecture: String
    public var variant: String

    /// Parses "linux", "linux/amd64" or "linux/arm64/v8".
    public init(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        os = parts[0]
        architecture = parts.count > 1 ? parts[1] : ""
        variant = parts.count > 2 ? parts[2] : ""
    }

    public var description: String {
        [os, architecture, variant].filter { !$0.isEmpty }.joined(separator: "/")
    }

    /// The platform this daemon runs on, in OCI names.
    public static let host: Platform = {
        #if arch(x86_64)
            let arch = "amd64"
        #elseif arch(arm64)
            let arch = "arm64"
        #else
            let arch = "unknown"
        #endif
        #if os(Linux)
            return Platform("linux/\(arch)")
        #elseif os(Windows)
            return Platform("windows/\(arch)")
        #else
            return Platform("unknown/\(arch)")
        #endif
    }()

    /// True when a plugin declaring `self` can run on `other`; empty fields match anything.
    public func admits(_ other: Platform) -> Bool {
        os == other.os
            && (architecture.isEmpty || architecture == other.architecture)
            && (variant.isEmpty || variant == other.variant)
    }
}

/// A plugin as data: what the kernel sorts, checks and records before anything runs.
/// Where the code behind it lives (a shared object, or the daemon itself) is `origin`.
public struct Registration: Sendable {
    /// Where a registration's code comes from.
    public enum Origin: Sendable {
        /// Built into berthd (gRPC services, the event bus, the metadata store).
        case builtin(@Sendable (PluginContext) async throws -> any PluginInstance)
        /// Registration number `index` inside a loaded shared object.
        case sharedObject(LoadedModule, index: Int)
        /// The code could not be found (the file did not load, or lacks this registration).
        case failed(BerthError)
    }

    public var name: PluginName
    public var requires: [PluginType]
    public var platforms: [Platform]
    public var capabilities: [String]
    /// Whether a failure of this plugin stops the daemon (from plugin.conf).
    public var required: Bool
    /// The plugin's own table of plugin.conf, less the kernel's keys, as JSON.
    public var configJSON: String
    public var origin: Origin

    public init(
        name: PluginName, requires: [PluginType] = [], platforms: [Platform] = [],
        capabilities: [String] = [], required: Bool = false, configJSON: String = "{}",
        origin: Origin
    ) {
        self.name = name
        self.requires = requires
        self.platforms = platforms
        self.capabilities = capabilities
        self.required = required
        self.configJSON = configJSON
        self.origin = origin
    }
}

/// One registration and what became of it, as introspection reports it.
public struct PluginRecord: Sendable {
    public var name: PluginName
    public var requires: [PluginType]
    public var platforms: [Platform]
    public var capabilities: [String]
    public var exports: [String: String]
    public var status: PluginStatus
}

/// The outcome of one plugin's initialisation, as `ctr plugins ls` shows it.
public enum PluginStatus: Sendable, Equatable {
    case ok
    /// Deliberately not running here; not a failure.
    case skip(reason: String)
    case error(BerthError)
}

/// What a started plugin is to the kernel. Shared-object plugins answer `call`; built-in ones
/// may also expose typed Swift interfaces that other built-ins look up by casting.
///
/// An instance that is also a ServiceLifecycle `Service` is long-lived: once every plugin has
/// started, the kernel runs its `run()` until graceful shutdown, and waits for it to return
/// before it stops any plugin.
public protocol PluginInstance: Sendable {
    /// Facts the plugin publishes through introspection (for example its root directory).
    var exports: [String: String] { get }
    /// gRPC paths ("/package.Service/Method") the plugin serves to clients through `call`.
    var apiMethods: [String] { get }
    /// Runs one API method on protobuf bytes; unknown methods throw `.unimplemented`.
    func call(_ method: String, request: [UInt8], context: CallContext) async throws -> [UInt8]
    /// Releases what the plugin holds; called once, in reverse start order.
    func stop() async
}

extension PluginInstance {
    public var exports: [String: String] { [:] }
    public var apiMethods: [String] { [] }
    public func call(_ method: String, request: [UInt8], context: CallContext) async throws -> [UInt8] {
        throw BerthError.unimplemented("method \(method) is not served by this plugin")
    }
    public func stop() async {}
}

/// Per-request facts from the API edge.
public struct CallContext: Sendable {
    /// How long the caller of a plugin call waits for its answer.
    public enum Deadline: Sendable, Equatable {
        /// `plugin_call_timeout_seconds` from now.
        case kernelDefault
        /// A CLOCK_MONOTONIC time in nanoseconds (`MonotonicClock.now`).
        case at(nanoseconds: Int64)
        /// No limit: the call waits by nature (a task's Wait); it ends on cancellation only.
        case none
    }

    /// The containerd namespace of the request.
    public var namespace: String
    /// The lease the request runs under, or "".
    public var lease: String
    public var deadline: Deadline

    public init(namespace: String = "", lease: String = "", deadline: Deadline = .kernelDefault) {
        self.namespace = namespace
        self.lease = lease
        self.deadline = deadline
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of `berth_call_context.deadline_ns`.
public enum MonotonicClock {
    public static var now: Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }
}
