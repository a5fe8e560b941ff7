import BerthPluginSDK
import BerthProto
import FoundationEssentials
import Glibc
import Synchronization

/// A container this plugin instance holds: its record, its directory and, while its keeper
/// lives, one control connection (opened again on demand if the keeper dropped it).
final class LiveContainer: Sendable {
    private struct Link {
        var connection: KeeperConnection?
        var token = 0
        var deleted = false
        /// Delete has begun: the keeper closing its connections is expected.
        var deleting = false
        /// Set when the keeper is gone: the init's exit read from DIR/exits/init.
        var abandonedExit: Berth_Runtime_V1_Exit?
    }

    let record: ContainerRecord
    let directory: StateDirectory
    /// "namespace/id", for messages.
    let label: String
    private let link = Mutex(Link())

    init(record: ContainerRecord, directory: StateDirectory) {
        self.record = record
        self.directory = directory
        label = "\(record.namespace)/\(record.id)"
    }

    var isDeleted: Bool { link.withLock { $0.deleted } }
    var isDeleting: Bool { link.withLock { $0.deleting || $0.deleted } }

    func markDeleting(_ deleting: Bool) {
        link.withLock { $0.deleting = deleting }
    }
    var abandonedExit: Berth_Runtime_V1_Exit? { link.withLock { $0.abandonedExit } }
    var currentConnection: KeeperConnection? { link.withLock { $0.connection } }

    func markDeleted() {
        let connection = link.withLock { link in
            link.deleted = true
            defer { link.connection = nil }
            return link.connection
        }
        connection?.close()
    }

    func markAbandoned(exit: Berth_Runtime_V1_Exit) {
        link.withLock { $0.abandonedExit = exit }
    }

    /// Installs `connection` unless another was installed meanwhile; returns the one in use
    /// and the token that `detach` needs.
    func adopt(_ connection: KeeperConnection, token: Int) -> KeeperConnection {
        link.withLock { link in
            if let existing = link.connection, !existing.isClosed { return existing }
            link.connection = connection
            link.token = token
            return connection
        }
    }

    func detach(token: Int) {
        link.withLock { link in
            if link.token == token { link.connection = nil }
        }
    }
}

/// The Linux runtime: the containers of this instance by (namespace, id), the keepers that
/// run them, and the reporter of their exits. The contract's methods are in extensions by
/// concern (+Create, +Process, +Delete, +Restore).
final class LinuxRuntime: Sendable {
    private enum Slot {
        /// A create is under way: the id is taken, nothing may use it yet.
        case reserved
        case live(LiveContainer)
    }

    let host: PluginHost
    let settings: RuntimeSettings
    let cgroups: CgroupLayout
    /// The folder of the per-container directories.
    let root: String
    let reporter: ExitReporter
    /// Reads every keeper connection of this instance on one thread.
    let poller = KeeperPoller()
    private let slots = Mutex([String: Slot]())
    private let tokens = Atomic<Int>(0)
    /// Set by `disconnectAll`: connections closing then are this instance's doing.
    private let stopping = Atomic<Bool>(false)

    init(host: PluginHost, settings: RuntimeSettings, cgroups: CgroupLayout = .detect()) {
        self.host = host
        self.settings = settings
        self.cgroups = cgroups
        root = host.stateDirectory + "/containers"
        reporter = ExitReporter(host: host)
    }

    private static func key(_ namespace: String, _ id: String) -> String { namespace + "\u{0}" + id }

    /// Takes (namespace, id) for a create; a taken id is ALREADY_EXISTS, a full table
    /// RESOURCE_EXHAUSTED.
    func reserve(namespace: String, id: String) throws {
        try slots.withLock { slots in
            let key = Self.key(namespace, id)
            guard slots[key] == nil else {
                throw PluginError(.alreadyExists, "container \(namespace)/\(id) already exists in the Linux runtime")
            }
            guard slots.count < settings.maximumContainers else {
                throw PluginError(.resourceExhausted, "container \(namespace)/\(id): the Linux runtime holds \(slots.count) containers, its max_containers")
            }
            slots[key] = .reserved
        }
    }

    func install(_ container: LiveContainer) {
        slots.withLock { $0[Self.key(container.record.namespace, container.record.id)] = .live(container) }
    }

    func release(namespace: String, id: String) {
        _ = slots.withLock { $0.removeValue(forKey: Self.key(namespace, id)) }
    }

    /// Every container this instance holds.
    var all: [LiveContainer] {
        slots.withLock { slots in
            slots.values.compactMap { if case .live(let container) = $0 { container } else { nil } }
        }
    }

    /// The container a request names; NOT_FOUND when this instance does not hold it.
    func container(_ namespace: String, _ id: String) throws -> LiveContainer {
        let slot = slots.withLock { $0[Self.key(namespace, id)] }
        guard case .live(let container) = slot else {
            throw PluginError(.notFound, "container \(namespace)/\(id) not found in the Linux runtime")
        }
        return container
    }

    /// The keeper connection of `container`, connecting and subscribing when there is none.
    func connection(_ container: LiveContainer) async throws -> KeeperConnection {
        if let connection = container.currentConnection, !connection.isClosed { return connection }
        guard !stopping.load(ordering: .relaxed) else {
            throw PluginError(.unavailable, "container \(container.label): the Linux runtime is stopping")
        }
        guard container.abandonedExit == nil, !container.isDeleted else {
            throw PluginError(.failedPrecondition, "container \(container.label): its keeper is gone; only Delete is possible")
        }
        let token = tokens.add(1, ordering: .relaxed).newValue
        let connection = try KeeperConnection.open(
            socketPath: container.directory.controlSocket, container: container.label, poller: poller,
            onEvent: { [weak self] event in self?.received(event, from: container) },
            onClose: { [weak self] in
                container.detach(token: token)
                self?.keeperClosed(container)
            })
        let used = container.adopt(connection, token: token)
        guard used === connection else {
            connection.close()
            return used
        }
        do {
            _ = try await connection.request(.subscribe)
        } catch {
            connection.close()
            throw error
        }
        return connection
    }

    /// Sends one request to the keeper of `container`.
    func keeper(_ container: LiveContainer, _ request: KeeperRequest, _ fields: [String] = []) async throws -> [String] {
        try await connection(container).request(request, fields)
    }

    private func received(_ event: KeeperEvent, from container: LiveContainer) {
        let record = container.record
        switch event {
        case .exit(let execID, let pid, let status, let exitedAt):
            let exit = Berth_Runtime_V1_Exit(
                namespace: record.namespace, id: record.id, execID: execID, pid: pid, status: status, exitedAt: exitedAt)
            reporter.submit(
                SupervisorReport(
                    fact: .exit(exit),
                    recorded: { [weak self] in
                        // A Delete under way ends the keeper and its exits with it.
                        guard !container.isDeleting else { return }
                        do {
                            _ = try await self?.keeper(container, .ackExit, [execID])
                        } catch {
                            self?.host.log(.warning, "container \(container.label): ACK_EXIT \(execID.debugDescription): \(error)")
                        }
                    },
                    stillWanted: { !container.isDeleted }))
        case .outOfMemory:
            let oom = Berth_Runtime_V1_OutOfMemory.with {
                $0.namespace = record.namespace
                $0.id = record.id
            }
            reporter.submit(SupervisorReport(fact: .outOfMemory(oom), recorded: {}, stillWanted: { !container.isDeleted }))
        }
    }

    /// A keeper that closed its connection outside Delete has died (it never drops a client
    /// that reads its events): its init's exit, if it wrote one, is reported as at restore.
    /// Called on the poller's thread, which must not block: the wait for the keeper's end
    /// runs on a thread of its own.
    private func keeperClosed(_ container: LiveContainer) {
        guard !container.isDeleting, !stopping.load(ordering: .relaxed) else { return }
        do {
            try startDetachedThread(name: "keeper-gone") { [weak self] in self?.checkKeeperGone(container) }
        } catch {
            host.log(.error, "container \(container.label): cannot check its closed keeper: \(error)")
        }
    }

    private func checkKeeperGone(_ container: LiveContainer) {
        // The socket closes early in the keeper's exit, before it is a zombie: give it 500 ms.
        var waited = 0
        while container.directory.liveKeeperPID != nil, waited < 50 {
            usleep(10_000)
            waited += 1
        }
        guard !container.isDeleting, !stopping.load(ordering: .relaxed), container.directory.liveKeeperPID == nil else { return }
        host.log(.error, "container \(container.label): its keeper died; the container is no longer supervised")
        abandon(container, reportLoss: true)
    }

    /// Closes every keeper connection; containers and keepers keep running.
    func disconnectAll() {
        stopping.store(true, ordering: .relaxed)
        for container in all { container.currentConnection?.close() }
        poller.stop()
    }
}

/// Whether `pid` runs: a zombie counts as gone (a keeper's parent is the host's init, which
/// may reap it late).
func processRuns(_ pid: pid_t) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let end = stat.lastIndex(of: ")")
    else { return false }
    return stat[stat.index(after: end)...].split(separator: " ").first != "Z"
}
