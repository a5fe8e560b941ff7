import Logging
import Synchronization

/// What the kernel hands a plugin when it starts it.
public struct PluginContext: Sendable {
    public var name: PluginName
    /// The plugin's own persistent directory (`<root>/<type>.<id>`), already created.
    public var rootDirectory: String
    /// The plugin's own volatile directory (`<state>/<type>.<id>`), already created.
    public var stateDirectory: String
    /// The plugin's table from plugin.conf, less the kernel's keys, as JSON.
    public var configJSON: String
    public var events: EventBus
    public var logger: Logger
    /// The plugins started before this one, to look up dependencies.
    public var plugins: PluginDirectory
    /// Calls from shared-object plugins into other plugins, served by the kernel's run loop.
    var hostCalls: HostCallQueue
    /// The metadata store, for built-in plugins that keep records.
    public var metadata: MetadataStore
    /// The daemon's whole configuration, for built-ins whose settings live outside their table.
    public var daemon: DaemonConfig
}

/// The started plugins, by name, and how every registration's start ended; readable from any
/// thread.
public final class PluginDirectory: Sendable {
    private let started = Mutex<[(PluginName, any PluginInstance)]>([])
    private let outcomes = Mutex<[PluginRecord]>([])

    public init() {}

    func add(_ name: PluginName, _ instance: any PluginInstance) {
        started.withLock { $0.append((name, instance)) }
    }

    func record(_ record: PluginRecord) {
        outcomes.withLock { $0.append(record) }
    }

    /// Every registration in start order, then the refused ones, with its status: what
    /// introspection reports. A plugin is listed `ok` exactly when it is in this directory.
    public var records: [PluginRecord] { outcomes.withLock { $0 } }

    /// Every started instance, first started first.
    public var startedInOrder: [(PluginName, any PluginInstance)] { started.withLock { $0 } }

    /// Removes and returns every instance, last started first.
    func drainInReverse() -> [(PluginName, any PluginInstance)] {
        started.withLock { list in
            defer { list.removeAll() }
            return list.reversed()
        }
    }

    /// The instance named `target`: "type.id", or a type that exactly one started plugin has.
    public func resolve(_ target: String) throws(BerthError) -> any PluginInstance {
        let list = started.withLock { $0 }
        if let match = list.first(where: { $0.0.description == target }) { return match.1 }
        let ofType = list.filter { $0.0.type.rawValue == target }
        guard ofType.count == 1 else {
            throw ofType.isEmpty
                ? .notFound("no started plugin is named \(target)")
                : .failedPrecondition("\(ofType.count) started plugins have type \(target); name one as type.id")
        }
        return ofType[0].1
    }

    /// The started plugin `name` as the Swift type `T`, for built-ins that use each other's typed
    /// interfaces; `.failedPrecondition` naming it when it is not running (it failed, was
    /// skipped, or is not registered).
    public func service<T>(_ name: PluginName, as type: T.Type) throws(BerthError) -> T {
        guard let instance = instance(of: name.type, id: name.id) else {
            throw .failedPrecondition("\(name) is not running")
        }
        guard let typed = instance as? T else {
            throw .internal("\(name) is not a \(T.self)")
        }
        return typed
    }

    /// Every started instance of `type`, by id.
    public func instances(of type: PluginType) -> [String: any PluginInstance] {
        let list = started.withLock { $0 }
        return Dictionary(list.filter { $0.0.type == type }.map { ($0.0.id, $0.1) }, uniquingKeysWith: { a, _ in a })
    }

    /// The started plugin of `type` called `id`, or the first of that type when `id` is nil;
    /// for request paths, which should not build a dictionary per call.
    public func instance(of type: PluginType, id: String? = nil) -> (any PluginInstance)? {
        started.withLock { list in list.first { $0.0.type == type && (id == nil || $0.0.id == id) }?.1 }
    }
}

/// One call from a plugin into another, waiting for the kernel's run loop.
struct HostCall: Sendable {
    var target: String
    var method: String
    var request: [UInt8]
    var context: CallContext
    var reply: @Sendable (PluginReply) -> Void
}

/// Carries host calls from C threads into the kernel's structured run loop.
final class HostCallQueue: Sendable {
    let calls: AsyncStream<HostCall>
    private let continuation: AsyncStream<HostCall>.Continuation

    init() {
        (calls, continuation) = AsyncStream.makeStream(of: HostCall.self, bufferingPolicy: .unbounded)
    }

    /// Queues a call; answered with `.unavailable` once the kernel has stopped serving.
    func submit(_ call: HostCall) {
        if case .terminated = continuation.yield(call) {
            call.reply(.failure(.unavailable("the kernel is shutting down; call to \(call.target) refused")))
        }
    }

    func finish() { continuation.finish() }
}
