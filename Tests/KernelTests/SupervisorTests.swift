import BerthProto
import Foundation
import SwiftProtobuf
import Synchronization
import Testing

@testable import Kernel

/// A runtime that answers the runtime contract from a script, in process, and records each call.
final class ScriptedRuntime: PluginInstance {
    struct State {
        var calls = [String]()
        var nextPID: UInt32 = 100
        var failCreate: BerthError?
        var restored = [Berth_Runtime_V1_RestoredContainer]()
    }
    let state = Mutex(State())

    var calls: [String] { state.withLock { $0.calls } }

    func call(_ method: String, request: [UInt8], context: CallContext) async throws -> [UInt8] {
        let name = String(method.split(separator: "/").last ?? "")
        let process: Berth_Runtime_V1_ProcessRequest? =
            switch name {
            case "Exec": try? Berth_Runtime_V1_ExecRequest(serializedBytes: request).process
            case "Kill": try? Berth_Runtime_V1_KillRequest(serializedBytes: request).process
            case "Create", "Restore": nil
            default: try? Berth_Runtime_V1_ProcessRequest(serializedBytes: request)
            }
        let id = process.map { "\($0.id)\($0.execID.isEmpty ? "" : "/" + $0.execID)" } ?? ""
        let (failure, pid, restored) = state.withLock { state in
            state.calls.append(name == "Create" ? "Create" : name == "Restore" ? "Restore" : "\(name) \(id)")
            state.nextPID += 1
            return (name == "Create" ? state.failCreate : nil, state.nextPID, state.restored)
        }
        if let failure { throw failure }
        switch name {
        case "Create": return try Berth_Runtime_V1_CreateResponse.with { $0.pid = pid }.serializedBytes()
        case "Start": return try Berth_Runtime_V1_StartResponse.with { $0.pid = pid }.serializedBytes()
        case "Restore": return try Berth_Runtime_V1_RestoreResponse.with { $0.containers = restored }.serializedBytes()
        default: return []
        }
    }
}

@Suite struct SupervisorTests {
    let directory = TestSupport.temporaryDirectory("supervisor")
    static let runtimeName = PluginName(type: .runtime, id: "scripted")

    /// A supervisor over one scripted runtime, with the event bus running; `body` gets both and
    /// a subscription to every event.
    private func withSupervisor(
        _ runtime: ScriptedRuntime = ScriptedRuntime(), restore: Bool = false, metadata: MetadataStore? = nil,
        _ body: @Sendable (TaskSupervisor, AsyncThrowingStream<EventEnvelope, any Error>.AsyncIterator) async throws -> Void
    ) async throws {
        let events = EventBus()
        let metadata = try metadata ?? MetadataStore(path: directory + "/meta.db", schemas: Kernel.schemas)
        let plugins = PluginDirectory()
        plugins.add(Self.runtimeName, runtime)
        let supervisor = TaskSupervisor(
            metadata: metadata, events: events, plugins: plugins,
            aliases: ["io.containerd.runc.v2": Self.runtimeName.description], logger: TestSupport.logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await events.run() }
            defer { group.cancelAll() }
            let stream = await events.subscribe { _ in true }
            if restore { await supervisor.restore() }
            try await body(supervisor, stream.makeAsyncIterator())
        }
    }

    private static func creation(_ id: String, runtime: String = "io.containerd.runc.v2") -> TaskCreation {
        TaskCreation(
            namespace: "ns", containerID: id, runtimeName: runtime, spec: Array("{}".utf8), rootfs: [],
            stdio: ProcessStdio(stdout: "/tmp/out"), options: nil)
    }

    private static func exit(_ id: String, exec: String = "", status: UInt32) -> [UInt8] {
        try! Berth_Runtime_V1_Exit.with {
            $0.namespace = "ns"
            $0.id = id
            $0.execID = exec
            $0.exitStatus = status
            $0.exitedAt = Google_Protobuf_Timestamp(seconds: 1_700_000_000, nanos: 5)
        }.serializedBytes()
    }

    private static func code(_ body: () async throws -> Void) async -> (BerthError.Code, String)? {
        do { try await body() } catch let error as BerthError { return (error.code, error.message) } catch { return (.unknown, "\(error)") }
        return nil
    }

    @Test func task_createStartExitDelete_phasesRecordedEventsInOrderWaitAnswered() async throws {
        let runtime = ScriptedRuntime()
        try await withSupervisor(runtime) { supervisor, events in
            var events = events
            let created = try await supervisor.create(Self.creation("c1"))
            #expect(created.phase == .created(pid: 101))
            #expect(created.stdio.stdout == "/tmp/out")
            async let waited = supervisor.wait(namespace: "ns", containerID: "c1", execID: "")
            #expect(try await supervisor.start(namespace: "ns", containerID: "c1", execID: "") == 102)
            #expect(try await supervisor.get(namespace: "ns", containerID: "c1", execID: "").phase == .running(pid: 102))
            _ = try await supervisor.call(BerthContracts.SupervisorContract.exited.path, request: Self.exit("c1", status: 3), context: CallContext())
            // The runtime sends the exit again (it had no answer): nothing changes, no second event.
            _ = try await supervisor.call(BerthContracts.SupervisorContract.exited.path, request: Self.exit("c1", status: 9), context: CallContext())
            let exit = try await waited
            #expect(exit == ExitFact(status: 3, at: 1_700_000_000_000_000_005))
            #expect(try await supervisor.get(namespace: "ns", containerID: "c1", execID: "").phase == .stopped(pid: 102, exit: exit))
            // Waiting on a stopped process answers at once.
            #expect(try await supervisor.wait(namespace: "ns", containerID: "c1", execID: "") == exit)
            let deleted = try await supervisor.delete(namespace: "ns", containerID: "c1")
            #expect(deleted.phase == .stopped(pid: 102, exit: exit))
            #expect(await Self.code { _ = try await supervisor.get(namespace: "ns", containerID: "c1", execID: "") }?.0 == .notFound)
            var topics = [String]()
            for _ in 0..<4 { topics.append(try await events.next()?.topic ?? "") }
            #expect(topics == ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"])
        }
        #expect(runtime.calls == ["Create", "Start c1", "Delete c1"])
    }

    @Test func requests_thePhaseDoesNotAllow_failNamingThePhase() async throws {
        try await withSupervisor { supervisor, _ in
            _ = try await supervisor.create(Self.creation("c1"))
            #expect(await Self.code { _ = try await supervisor.create(Self.creation("c1")) }?.0 == .alreadyExists)
            #expect(
                await Self.code { try await supervisor.pause(namespace: "ns", containerID: "c1") }! == (
                    .failedPrecondition, "task \"c1\" is created; only a running task can be paused"
                ))
            #expect(
                await Self.code { try await supervisor.exec(namespace: "ns", containerID: "c1", execID: "e1", spec: [], stdio: ProcessStdio()) }!
                    == (.failedPrecondition, "task \"c1\" is created; exec needs a running task"))
            _ = try await supervisor.start(namespace: "ns", containerID: "c1", execID: "")
            #expect(
                await Self.code { _ = try await supervisor.start(namespace: "ns", containerID: "c1", execID: "") }!
                    == (.failedPrecondition, "task \"c1\" is running; only a created process can be started"))
            #expect(
                await Self.code { _ = try await supervisor.delete(namespace: "ns", containerID: "c1") }!
                    == (.failedPrecondition, "task \"c1\" is running; it must be stopped before it is deleted"))
            #expect(
                await Self.code { try await supervisor.kill(namespace: "ns", containerID: "c1", execID: "", signal: 65, all: false) }?.0 == .invalidArgument)
            #expect(
                await Self.code { try await supervisor.exec(namespace: "ns", containerID: "c1", execID: "../x", spec: [], stdio: ProcessStdio()) }?.0
                    == .invalidArgument)
            _ = try await supervisor.call(BerthContracts.SupervisorContract.exited.path, request: Self.exit("c1", status: 0), context: CallContext())
            #expect(
                await Self.code { try await supervisor.kill(namespace: "ns", containerID: "c1", execID: "", signal: 9, all: false) }!
                    == (.notFound, "task \"c1\" in namespace \"ns\": process already finished"))
            #expect(
                await Self.code { _ = try await supervisor.start(namespace: "ns", containerID: "nope", execID: "") }!
                    == (.notFound, "task \"nope\" in namespace \"ns\": not found"))
        }
    }

    @Test func create_runtimeRefusesOrIsUnknown_nothingRecorded() async throws {
        let runtime = ScriptedRuntime()
        runtime.state.withLock { $0.failCreate = .invalidArgument("container \"c1\": spec has no process.args") }
        try await withSupervisor(runtime) { supervisor, _ in
            #expect(
                await Self.code { _ = try await supervisor.create(Self.creation("c1")) }! == (.invalidArgument, "container \"c1\": spec has no process.args"))
            let listed = try await supervisor.list(namespace: "ns")
            #expect(listed.isEmpty)
            do {
                _ = try await supervisor.create(Self.creation("c2", runtime: "io.example.nope"))
                Issue.record("an unknown runtime was accepted")
            } catch let error as BerthError {
                #expect(error.code == .notFound)
                #expect(
                    error.message.contains("runtime \"io.example.nope\" is unknown; known runtimes: io.containerd.runc.v2, io.containerd.runtime.v2.scripted"))
            }
            // A runtime plugin's own name works as well as an alias.
            runtime.state.withLock { $0.failCreate = nil }
            let created = try await supervisor.create(Self.creation("c3", runtime: Self.runtimeName.description))
            #expect(created.containerID == "c3")
        }
    }

    @Test func exec_addStartExitDeleteProcess_ownStatusAndEvents() async throws {
        let runtime = ScriptedRuntime()
        try await withSupervisor(runtime) { supervisor, events in
            var events = events
            _ = try await supervisor.create(Self.creation("c1"))
            _ = try await supervisor.start(namespace: "ns", containerID: "c1", execID: "")
            try await supervisor.exec(namespace: "ns", containerID: "c1", execID: "e1", spec: Array("{}".utf8), stdio: ProcessStdio())
            #expect(
                await Self.code { try await supervisor.exec(namespace: "ns", containerID: "c1", execID: "e1", spec: [], stdio: ProcessStdio()) }?.0
                    == .alreadyExists)
            #expect(try await supervisor.start(namespace: "ns", containerID: "c1", execID: "e1") == 104)
            _ = try await supervisor.call(
                BerthContracts.SupervisorContract.exited.path, request: Self.exit("c1", exec: "e1", status: 4), context: CallContext())
            #expect(try await supervisor.wait(namespace: "ns", containerID: "c1", execID: "e1").status == 4)
            #expect(try await supervisor.get(namespace: "ns", containerID: "c1", execID: "").phase == .running(pid: 102))
            _ = try await supervisor.deleteProcess(namespace: "ns", containerID: "c1", execID: "e1")
            // containerd publishes nothing when an exec process is deleted: the next event is the pause.
            try await supervisor.pause(namespace: "ns", containerID: "c1")
            var topics = [String]()
            for _ in 0..<6 { topics.append(try await events.next()?.topic ?? "") }
            #expect(topics == ["/tasks/create", "/tasks/start", "/tasks/exec-added", "/tasks/exec-started", "/tasks/exit", "/tasks/paused"])
        }
        #expect(runtime.calls == ["Create", "Start c1", "Exec c1/e1", "Start c1/e1", "DeleteProcess c1/e1", "Pause c1"])
    }

    @Test func wait_callerCancelled_endsWithoutAnExit() async throws {
        try await withSupervisor { supervisor, _ in
            _ = try await supervisor.create(Self.creation("c1"))
            let waiter = Task { try await supervisor.wait(namespace: "ns", containerID: "c1", execID: "") }
            try await Task.sleep(for: .milliseconds(50))
            waiter.cancel()
            await #expect(throws: CancellationError.self) { try await waiter.value }
            #expect(await supervisor.waiters.isEmpty)
        }
    }

    @Test func restore_afterACrash_everyTaskRunningAndListedOrGoneWithItsExit() async throws {
        // First life: four tasks in different phases. (One store for both lives: a restarted
        // daemon opens the same file; here the first life's connection may still be open.)
        let metadata = try MetadataStore(path: directory + "/meta.db", schemas: Kernel.schemas)
        try await withSupervisor(metadata: metadata) { supervisor, _ in
            for id in ["half", "kept", "exited", "lost"] { _ = try await supervisor.create(Self.creation(id)) }
            for id in ["kept", "exited", "lost"] { _ = try await supervisor.start(namespace: "ns", containerID: id, execID: "") }
        }
        // A create the daemon did not finish: its intent is all the store has.
        _ = try await metadata.updateProcess(namespace: "ns", containerID: "half", execID: "") { _ in .creating }
        // The runtime kept "half" and "kept", saw "exited" end, lost "lost", and has an orphan.
        let runtime = ScriptedRuntime()
        runtime.state.withLock { state in
            func container(_ id: String, _ process: Berth_Runtime_V1_RestoredProcess) -> Berth_Runtime_V1_RestoredContainer {
                .with {
                    $0.namespace = "ns"
                    $0.id = id
                    $0.processes = [process]
                }
            }
            state.restored = [
                container(
                    "half",
                    .with {
                        $0.status = .created
                        $0.pid = 7
                    }),
                container(
                    "kept",
                    .with {
                        $0.status = .running
                        $0.pid = 104
                    }),
                container(
                    "exited",
                    .with {
                        $0.status = .stopped
                        $0.pid = 105
                        $0.exit = .with {
                            $0.exitStatus = 9
                            $0.pid = 105
                            $0.exitedAt = Google_Protobuf_Timestamp(seconds: 5)
                        }
                    }),
                container(
                    "orphan",
                    .with {
                        $0.status = .running
                        $0.pid = 8
                    }),
            ]
        }
        try await withSupervisor(runtime, restore: true, metadata: metadata) { supervisor, events in
            var events = events
            #expect(await Self.code { _ = try await supervisor.get(namespace: "ns", containerID: "half", execID: "") }?.0 == .notFound)
            #expect(try await supervisor.get(namespace: "ns", containerID: "kept", execID: "").phase == .running(pid: 104))
            #expect(
                try await supervisor.get(namespace: "ns", containerID: "exited", execID: "").phase
                    == .stopped(pid: 106, exit: ExitFact(status: 9, at: 5_000_000_000)))
            guard case .stopped(_, let lost) = try await supervisor.get(namespace: "ns", containerID: "lost", execID: "").phase else {
                Issue.record("lost is not stopped")
                return
            }
            #expect(lost.status == TaskSupervisor.lostExitStatus)
            // One exit event each for the two that ended, and nothing for the rest.
            var exits = [String]()
            for _ in 0..<2 {
                let envelope = try await events.next()
                #expect(envelope?.topic == "/tasks/exit")
                exits.append(try Containerd_Events_TaskExit(serializedBytes: envelope?.event.value ?? Data()).containerID)
            }
            #expect(exits == ["exited", "lost"])
        }
        #expect(runtime.calls.sorted() == ["Delete half", "Delete orphan", "Restore"])
    }
}
