import BerthProto
import FoundationEssentials
import Glibc
import Logging
import SwiftProtobuf

/// What a task is made from: the container's facts as its record holds them, and what the
/// client gave for this task.
public struct TaskCreation: Sendable {
    public var namespace: String
    public var containerID: String
    /// The runtime name the container carries (`io.containerd.runc.v2`), resolved through
    /// `[runtime_aliases]`, or a runtime plugin's own name.
    public var runtimeName: String
    /// The OCI runtime spec, as the JSON the client stored in the container.
    public var spec: [UInt8]
    public var rootfs: [Containerd_Types_Mount]
    public var stdio: ProcessStdio
    public var options: Google_Protobuf_Any?

    public init(
        namespace: String, containerID: String, runtimeName: String, spec: [UInt8],
        rootfs: [Containerd_Types_Mount], stdio: ProcessStdio, options: Google_Protobuf_Any?
    ) {
        self.namespace = namespace
        self.containerID = containerID
        self.runtimeName = runtimeName
        self.spec = spec
        self.rootfs = rootfs
        self.stdio = stdio
        self.options = options
    }
}

/// The supervisor: the one owner of every task's state machine, over whatever runtime plugin
/// produced the container.
///
/// Terms: a *task* is a container's init process; *exec processes* are added to a running task.
/// Each process moves creating → created → running ⇄ paused → stopped, and is deleted from
/// stopped (or from created, which kills it). The runtime plugins do the work (`RuntimeContract`);
/// the supervisor checks each request against the phase, asks the runtime, writes the new phase
/// to the metadata store and only then publishes the event (containerd's `/tasks/*` topics and
/// payloads). Exits come from the runtimes through the host table (`SupervisorContract`): each
/// is written before `/tasks/exit` is published and before any `Wait` returns, and a repeated
/// exit is answered without a second event.
///
/// Worked example (`ctr run --rm busybox c1 true`): create (phase creating, runtime Create,
/// created pid 4242, `/tasks/create`); Wait (no exit yet: it waits); start (runtime Start,
/// running, `/tasks/start`); the runtime reports the exit (stopped 0, `/tasks/exit`, Wait
/// returns); delete (runtime Delete, record gone, `/tasks/delete`).
///
/// Repeats and absences: a second task for a container is `.alreadyExists`; anything on a
/// process that does not exist is `.notFound` naming it; a request the phase does not allow
/// (start of a running task, delete of a running one) is `.failedPrecondition` naming the phase.
/// A runtime's work, once asked for, is finished and recorded even if the client goes away.
public actor TaskSupervisor: PluginInstance {
    public static let name = PluginName(type: .service, id: "tasks-service")

    let metadata: MetadataStore
    let events: EventBus
    let plugins: PluginDirectory
    let aliases: [String: String]
    let logger: Logger
    /// Clients waiting for exits, by process.
    var waiters = [ProcessKey: [UInt64: WaiterSlot]]()
    var nextWaiter: UInt64 = 0
    /// Exits of processes whose Start is still under way, held back until `/tasks/start` or
    /// `/tasks/exec-started` is out: a process that exits at once must not be seen exiting
    /// before it started (containerd 1.6 publishes start, then exit).
    var exitsHeldForStart = [ProcessKey: [(ProcessRecord, ExitFact)]]()

    public init(metadata: MetadataStore, events: EventBus, plugins: PluginDirectory, aliases: [String: String], logger: Logger) {
        self.metadata = metadata
        self.events = events
        self.plugins = plugins
        self.aliases = aliases
        self.logger = logger
    }

    /// The supervisor as a kernel registration: it starts after the runtime plugins and
    /// restores their containers before anything can reach it.
    public static func registration() -> Registration {
        Registration(
            name: name, requires: [.runtime, .metadata, .event],
            origin: .builtin { context in
                let supervisor = TaskSupervisor(
                    metadata: context.metadata, events: context.events, plugins: context.plugins,
                    aliases: context.daemon.runtimeAliases, logger: context.logger)
                await supervisor.restore()
                return supervisor
            })
    }

    // MARK: - Tasks

    /// Creates the task of a container: its init, created and not started.
    public func create(_ creation: TaskCreation) async throws(BerthError) -> ProcessRecord {
        let runtime = try resolveRuntime(creation.runtimeName, for: creation.containerID)
        let record = ProcessRecord(
            namespace: creation.namespace, containerID: creation.containerID, execID: "",
            runtime: runtime.description, phase: .creating, stdio: creation.stdio)
        try await metadata.insertProcess(record)
        let created = try await finishing { () async throws(BerthError) in try await self.makeTask(record, creation) }
        events.publish(
            topic: "/tasks/create", namespace: created.namespace,
            Containerd_Events_TaskCreate.with {
                $0.containerID = created.containerID
                $0.rootfs = creation.rootfs
                $0.io = .with {
                    $0.stdin = created.stdio.stdin
                    $0.stdout = created.stdio.stdout
                    $0.stderr = created.stdio.stderr
                    $0.terminal = created.stdio.terminal
                }
                $0.pid = created.phase.pid
            })
        return created
    }

    private func makeTask(_ record: ProcessRecord, _ creation: TaskCreation) async throws(BerthError) -> ProcessRecord {
        let request = Berth_Runtime_V1_CreateRequest.with {
            $0.namespace = creation.namespace
            $0.id = creation.containerID
            $0.spec = Data(creation.spec)
            $0.rootfs = creation.rootfs
            $0.stdio = Self.stdio(creation.stdio)
            if let options = creation.options { $0.options = options }
            $0.runtimeName = creation.runtimeName
        }
        let response: Berth_Runtime_V1_CreateResponse
        do {
            response = try await runtimeCall(record, BerthContracts.RuntimeContract.create, request)
        } catch {
            try? await metadata.deleteProcesses(namespace: record.namespace, containerID: record.containerID, execID: nil)
            throw error
        }
        let pid = response.pid
        return try await advance(record) { if case .creating = $0 { .created(pid: pid) } else { nil } }
    }

    /// Starts a created process; returns its pid.
    public func start(namespace: String, containerID: String, execID: String) async throws(BerthError) -> UInt32 {
        let record = try await existing(namespace, containerID, execID)
        guard case .created = record.phase else {
            throw .failedPrecondition("\(record.noun) is \(record.phase.name); only a created process can be started")
        }
        let key = ProcessKey(record)
        let holding = exitsHeldForStart[key] == nil
        if holding { exitsHeldForStart[key] = [] }
        defer { if holding { releaseExits(of: key) } }
        let started = try await finishing { () async throws(BerthError) in
            let response = try await self.runtimeCall(record, BerthContracts.RuntimeContract.start, Self.processRequest(record))
            let pid = response.pid
            // An exit the runtime reported meanwhile is newer than this answer: it stays.
            return try await self.advance(record) { if case .created = $0 { .running(pid: pid) } else { nil } }
        }
        let pid = started.phase.pid
        if record.isInit {
            events.publish(
                topic: "/tasks/start", namespace: namespace,
                Containerd_Events_TaskStart.with {
                    $0.containerID = containerID
                    $0.pid = pid
                })
        } else {
            events.publish(
                topic: "/tasks/exec-started", namespace: namespace,
                Containerd_Events_TaskExecStarted.with {
                    $0.containerID = containerID
                    $0.execID = execID
                    $0.pid = pid
                })
        }
        return pid
    }

    /// Sends `signal` to a live process (or, with `all`, to every process of its container).
    public func kill(namespace: String, containerID: String, execID: String, signal: UInt32, all: Bool) async throws(BerthError) {
        guard (1...64).contains(signal) else {
            throw .invalidArgument("signal \(signal) for task \"\(containerID)\" is out of range (1-64)")
        }
        let record = try await existing(namespace, containerID, execID)
        if case .stopped = record.phase, !all {
            throw .notFound("\(record.noun) in namespace \"\(namespace)\": process already finished")
        }
        let request = Berth_Runtime_V1_KillRequest.with {
            $0.process = Self.processRequest(record)
            $0.signal = signal
            $0.all = all
        }
        _ = try await runtimeCall(record, BerthContracts.RuntimeContract.kill, request)
    }

    /// Adds exec process `execID` to a running task, created and not started.
    public func exec(namespace: String, containerID: String, execID: String, spec: [UInt8], stdio: ProcessStdio) async throws(BerthError) {
        try Validation.execID(execID, task: containerID)
        let task = try await existing(namespace, containerID, "")
        guard case .running = task.phase else {
            throw .failedPrecondition("task \"\(containerID)\" is \(task.phase.name); exec needs a running task")
        }
        let record = ProcessRecord(
            namespace: namespace, containerID: containerID, execID: execID, runtime: task.runtime,
            phase: .creating, stdio: stdio)
        try await metadata.insertProcess(record)
        _ = try await finishing { () async throws(BerthError) in
            let request = Berth_Runtime_V1_ExecRequest.with {
                $0.process = Self.processRequest(record)
                $0.spec = Data(spec)
                $0.stdio = Self.stdio(stdio)
            }
            do throws(BerthError) {
                _ = try await self.runtimeCall(record, BerthContracts.RuntimeContract.exec, request)
            } catch {
                try? await self.metadata.deleteProcesses(namespace: namespace, containerID: containerID, execID: execID)
                throw error
            }
            return try await self.advance(record) { if case .creating = $0 { .created(pid: 0) } else { nil } }
        }
        events.publish(
            topic: "/tasks/exec-added", namespace: namespace,
            Containerd_Events_TaskExecAdded.with {
                $0.containerID = containerID
                $0.execID = execID
            })
    }

    /// Deletes a task that is stopped (or created, which the runtime kills) with every process
    /// of it; returns the init's last record.
    public func delete(namespace: String, containerID: String) async throws(BerthError) -> ProcessRecord {
        let record = try await existing(namespace, containerID, "")
        switch record.phase {
        case .running, .paused, .creating:
            throw .failedPrecondition("task \"\(containerID)\" is \(record.phase.name); it must be stopped before it is deleted")
        case .created, .stopped: break
        }
        try await finishing { () async throws(BerthError) in
            try await self.deleteInRuntime(record)
            try await self.metadata.deleteProcesses(namespace: namespace, containerID: containerID, execID: nil)
        }
        failWaiters(of: record, "task \"\(containerID)\" was deleted")
        let exit: ExitFact? = if case .stopped(_, let exit) = record.phase { exit } else { nil }
        events.publish(
            topic: "/tasks/delete", namespace: namespace,
            Containerd_Events_TaskDelete.with {
                // The id stays empty for a task, as containerd 1.6 sends it.
                $0.containerID = containerID
                $0.pid = record.phase.pid
                $0.exitStatus = exit?.status ?? 0
                if let exit { $0.exitedAt = Self.timestamp(exit.at) }
            })
        return record
    }

    /// Deletes a stopped (or never started) exec process; returns its last record.
    public func deleteProcess(namespace: String, containerID: String, execID: String) async throws(BerthError) -> ProcessRecord {
        guard !execID.isEmpty else { throw .invalidArgument("task \"\(containerID)\": an exec id is required; delete the task instead") }
        let record = try await existing(namespace, containerID, execID)
        switch record.phase {
        case .running, .paused, .creating:
            throw .failedPrecondition("\(record.noun) is \(record.phase.name); it must be stopped before it is deleted")
        case .created, .stopped: break
        }
        try await finishing { () async throws(BerthError) in
            try await self.deleteInRuntime(record)
            try await self.metadata.deleteProcesses(namespace: namespace, containerID: containerID, execID: execID)
        }
        // containerd publishes no event when an exec process is deleted; neither does Berth.
        failWaiters(of: record, "\(record.noun) was deleted")
        return record
    }

    /// Freezes a running task.
    public func pause(namespace: String, containerID: String) async throws(BerthError) {
        let record = try await existing(namespace, containerID, "")
        guard case .running(let pid) = record.phase else {
            throw .failedPrecondition("task \"\(containerID)\" is \(record.phase.name); only a running task can be paused")
        }
        try await finishing { () async throws(BerthError) in
            _ = try await self.runtimeCall(record, BerthContracts.RuntimeContract.pause, Self.processRequest(record))
            _ = try await self.advance(record) { if case .running = $0 { .paused(pid: pid) } else { nil } }
        }
        events.publish(topic: "/tasks/paused", namespace: namespace, Containerd_Events_TaskPaused.with { $0.containerID = containerID })
    }

    /// Thaws a paused task.
    public func resume(namespace: String, containerID: String) async throws(BerthError) {
        let record = try await existing(namespace, containerID, "")
        guard case .paused(let pid) = record.phase else {
            throw .failedPrecondition("task \"\(containerID)\" is \(record.phase.name); only a paused task can be resumed")
        }
        try await finishing { () async throws(BerthError) in
            _ = try await self.runtimeCall(record, BerthContracts.RuntimeContract.resume, Self.processRequest(record))
            _ = try await self.advance(record) { if case .paused = $0 { .running(pid: pid) } else { nil } }
        }
        events.publish(topic: "/tasks/resumed", namespace: namespace, Containerd_Events_TaskResumed.with { $0.containerID = containerID })
    }

    // MARK: - Questions and pass-through requests

    /// One process as the store holds it; `.notFound` naming it.
    public func get(namespace: String, containerID: String, execID: String) async throws(BerthError) -> ProcessRecord {
        try await existing(namespace, containerID, execID)
    }

    /// The tasks (init processes) of `namespace`, by container id.
    public func list(namespace: String) async throws(BerthError) -> [ProcessRecord] {
        try await metadata.tasks(namespace: namespace)
    }

    /// Every process of a container, the init first.
    public func processes(namespace: String, containerID: String) async throws(BerthError) -> [ProcessRecord] {
        try await metadata.processes(namespace: namespace, containerID: containerID)
    }

    /// The pids in a task's container; an exec process's pid carries its exec id as the runc
    /// shim's `containerd.runc.v1.ProcessDetails`, which `ctr tasks ps` prints in its INFO column.
    public func pids(namespace: String, containerID: String) async throws(BerthError) -> [Containerd_V1_Types_ProcessInfo] {
        let record = try await existing(namespace, containerID, "")
        var processes = try await runtimeCall(record, BerthContracts.RuntimeContract.pids, Self.processRequest(record)).processes
        var execs = [UInt32: String]()
        for exec in try await metadata.processes(namespace: namespace, containerID: containerID) where !exec.isInit {
            if case .running(let pid) = exec.phase { execs[pid] = exec.execID }
        }
        for index in processes.indices {
            guard let execID = execs[processes[index].pid], !processes[index].hasInfo else { continue }
            processes[index].info = .with {
                $0.typeURL = "containerd.runc.v1.ProcessDetails"
                $0.value = Self.processDetails(execID: execID)
            }
        }
        return processes
    }

    /// `ProcessDetails { string exec_id = 1; }` (containerd runc/options), encoded by hand: the
    /// one field's tag, its length as a varint, its bytes.
    static func processDetails(execID: String) -> Data {
        var bytes: [UInt8] = [0x0a]
        var length = UInt(execID.utf8.count)
        while length >= 0x80 {
            bytes.append(UInt8(length & 0x7f) | 0x80)
            length >>= 7
        }
        bytes.append(UInt8(length))
        return Data(bytes + Array(execID.utf8))
    }

    /// The runtime's statistics for a task (cgroup metrics on Linux).
    public func metrics(namespace: String, containerID: String) async throws(BerthError) -> Google_Protobuf_Any {
        let record = try await existing(namespace, containerID, "")
        return try await runtimeCall(record, BerthContracts.RuntimeContract.metrics, Self.processRequest(record)).data
    }

    public func update(namespace: String, containerID: String, resources: Google_Protobuf_Any) async throws(BerthError) {
        let record = try await live(namespace, containerID, "")
        let request = Berth_Runtime_V1_UpdateRequest.with {
            $0.process = Self.processRequest(record)
            $0.resources = resources
        }
        _ = try await runtimeCall(record, BerthContracts.RuntimeContract.update, request)
    }

    /// Sets the console size of a process; nothing to do once it has exited (a client resizes
    /// right after a short `run -t` ended, and containerd answers OK).
    public func resizePty(namespace: String, containerID: String, execID: String, width: UInt32, height: UInt32) async throws(BerthError) {
        let record = try await existing(namespace, containerID, execID)
        if case .stopped = record.phase { return }
        let request = Berth_Runtime_V1_ResizePtyRequest.with {
            $0.process = Self.processRequest(record)
            $0.width = width
            $0.height = height
        }
        _ = try await runtimeCall(record, BerthContracts.RuntimeContract.resizePty, request)
    }

    /// Closes a process's stdin, so it reads end of file.
    public func closeStdin(namespace: String, containerID: String, execID: String) async throws(BerthError) {
        let record = try await existing(namespace, containerID, execID)
        _ = try await runtimeCall(record, BerthContracts.RuntimeContract.closeIO, Self.processRequest(record))
    }

    // MARK: - Helpers

    func existing(_ namespace: String, _ containerID: String, _ execID: String) async throws(BerthError) -> ProcessRecord {
        guard let record = try await metadata.process(namespace: namespace, containerID: containerID, execID: execID) else {
            let noun = execID.isEmpty ? "task \"\(containerID)\"" : "process \"\(execID)\" of task \"\(containerID)\""
            throw .notFound("\(noun) in namespace \"\(namespace)\": not found")
        }
        return record
    }

    /// A process that exists and has not exited.
    private func live(_ namespace: String, _ containerID: String, _ execID: String) async throws(BerthError) -> ProcessRecord {
        let record = try await existing(namespace, containerID, execID)
        if case .stopped = record.phase { throw .failedPrecondition("\(record.noun) has exited") }
        return record
    }

    /// Asks the runtime to delete `record`'s process. A stopped process the runtime does not have
    /// counts as deleted there: restore records a process the runtime lost as exited (255), and a
    /// daemon killed after the runtime's delete and before the store's leaves the record behind;
    /// the runtime answers `.notFound` for both, and the record must still be deletable.
    private func deleteInRuntime(_ record: ProcessRecord) async throws(BerthError) {
        let method = record.isInit ? BerthContracts.RuntimeContract.delete : BerthContracts.RuntimeContract.deleteProcess
        do {
            _ = try await runtimeCall(record, method, Self.processRequest(record))
        } catch {
            guard error.code == .notFound, case .stopped = record.phase else { throw error }
            logger.info(
                "the runtime has no such process any more; deleting its record", metadata: ["container": "\(record.containerID)", "exec": "\(record.execID)"])
        }
    }

    /// Writes the phase `change` gives; `.notFound` when the process vanished meanwhile.
    func advance(_ record: ProcessRecord, _ change: @escaping @Sendable (ProcessPhase) -> ProcessPhase?) async throws(BerthError)
        -> ProcessRecord
    {
        guard
            let updated = try await metadata.updateProcess(
                namespace: record.namespace, containerID: record.containerID, execID: record.execID, change)
        else { throw .notFound("\(record.noun) in namespace \"\(record.namespace)\": deleted meanwhile") }
        return updated.record
    }

    /// The runtime plugin a runtime name stands for: an alias from `[runtime_aliases]`, or a
    /// runtime plugin's own name; it must be running.
    func resolveRuntime(_ name: String, for containerID: String) throws(BerthError) -> PluginName {
        let target = aliases[name] ?? name
        let running = plugins.instances(of: .runtime).keys.map { PluginName(type: .runtime, id: $0) }
        if let found = running.first(where: { $0.description == target }) { return found }
        if aliases[name] != nil {
            throw .failedPrecondition(
                "container \"\(containerID)\": runtime \"\(name)\" maps to plugin \(target), which is not running")
        }
        let known = (Array(aliases.keys) + running.map(\.description)).sorted().joined(separator: ", ")
        throw .notFound("container \"\(containerID)\": runtime \"\(name.prefix(128))\" is unknown; known runtimes: \(known)")
    }

    /// Calls the runtime that made `record`.
    func runtimeCall<Request, Response>(
        _ record: ProcessRecord, _ method: ContractMethod<Request, Response>, _ request: Request
    ) async throws(BerthError) -> Response {
        do {
            let instance = try plugins.resolve(record.runtime)
            return try await instance.call(method, request, context: CallContext(namespace: record.namespace))
        } catch { throw BerthError.from(error) }
    }

    /// Runs `work` to its end even when the caller is cancelled: a change the runtime was asked
    /// for must be finished and recorded, not abandoned between the runtime and the store.
    func finishing<T: Sendable>(_ work: @escaping @Sendable () async throws(BerthError) -> T) async throws(BerthError) -> T {
        let result = await Task { () async -> Result<T, BerthError> in
            do throws(BerthError) { return .success(try await work()) } catch { return .failure(error) }
        }.value
        return try result.get()
    }

    static func processRequest(_ record: ProcessRecord) -> Berth_Runtime_V1_ProcessRequest {
        .with {
            $0.namespace = record.namespace
            $0.id = record.containerID
            $0.execID = record.execID
        }
    }

    static func stdio(_ stdio: ProcessStdio) -> Berth_Runtime_V1_Stdio {
        .with {
            $0.stdin = stdio.stdin
            $0.stdout = stdio.stdout
            $0.stderr = stdio.stderr
            $0.terminal = stdio.terminal
        }
    }

    /// A time in nanoseconds since 1970 (the store's unit) as the API carries it.
    public static func timestamp(_ nanoseconds: Int64) -> Google_Protobuf_Timestamp {
        Google_Protobuf_Timestamp(seconds: nanoseconds / 1_000_000_000, nanos: Int32(nanoseconds % 1_000_000_000))
    }
}
