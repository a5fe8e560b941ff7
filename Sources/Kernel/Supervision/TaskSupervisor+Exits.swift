import BerthProto
import FoundationEssentials
import Glibc
import SwiftProtobuf

/// One process, as a dictionary key.
struct ProcessKey: Hashable, Sendable {
    var namespace: String
    var containerID: String
    var execID: String

    init(_ record: ProcessRecord) {
        self.init(namespace: record.namespace, containerID: record.containerID, execID: record.execID)
    }

    init(namespace: String, containerID: String, execID: String) {
        self.namespace = namespace
        self.containerID = containerID
        self.execID = execID
    }
}

/// A client waiting for an exit. The slot is taken before the store is read, so an exit
/// recorded between that read and the wait itself is kept here instead of being missed.
enum WaiterSlot {
    case registered
    case waiting(CheckedContinuation<ExitFact, any Error>)
    case exited(ExitFact)
}

extension TaskSupervisor {
    /// Returns when the process exits (at once if it has), with its status; ends with
    /// CancellationError when the caller goes away and `.notFound` when the process is deleted.
    public func wait(namespace: String, containerID: String, execID: String) async throws -> ExitFact {
        let key = ProcessKey(namespace: namespace, containerID: containerID, execID: execID)
        let id = nextWaiter
        nextWaiter += 1
        waiters[key, default: [:]][id] = .registered
        let record: ProcessRecord
        do { record = try await existing(namespace, containerID, execID) } catch {
            removeWaiter(key, id)
            throw error
        }
        if case .stopped(_, let exit) = record.phase {
            removeWaiter(key, id)
            return exit
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                switch waiters[key]?[id] {
                case .exited(let exit):
                    removeWaiter(key, id)
                    continuation.resume(returning: exit)
                case .registered:
                    waiters[key]?[id] = .waiting(continuation)
                case .waiting, nil:
                    continuation.resume(throwing: CancellationError())
                }
            }
        } onCancel: {
            Task { await self.cancelWaiter(key, id) }
        }
    }

    private func cancelWaiter(_ key: ProcessKey, _ id: UInt64) {
        if case .waiting(let continuation) = waiters[key]?[id] { continuation.resume(throwing: CancellationError()) }
        removeWaiter(key, id)
    }

    private func removeWaiter(_ key: ProcessKey, _ id: UInt64) {
        waiters[key]?[id] = nil
        if waiters[key]?.isEmpty == true { waiters[key] = nil }
    }

    /// Answers every waiter of `record` with `exit`.
    private func resumeWaiters(of record: ProcessRecord, with exit: ExitFact) {
        let key = ProcessKey(record)
        guard var slots = waiters[key] else { return }
        for (id, slot) in slots {
            switch slot {
            case .waiting(let continuation):
                continuation.resume(returning: exit)
                slots[id] = nil
            case .registered: slots[id] = .exited(exit)
            case .exited: break
            }
        }
        waiters[key] = slots.isEmpty ? nil : slots
    }

    /// Ends every waiter of `record` (and, for a task, of its exec processes) with `.notFound`.
    func failWaiters(of record: ProcessRecord, _ why: String) {
        for key in waiters.keys
        where key.namespace == record.namespace && key.containerID == record.containerID && (record.isInit || key.execID == record.execID) {
            for slot in (waiters[key] ?? [:]).values {
                if case .waiting(let continuation) = slot { continuation.resume(throwing: BerthError.notFound(why)) }
            }
            waiters[key] = nil
        }
    }

    // MARK: - Facts from the runtimes

    /// Records an exit the runtime saw, then publishes `/tasks/exit` and answers the waiters.
    /// An exit already recorded, or of a process the supervisor does not know (deleted, or never
    /// recorded), changes nothing and is answered OK so the runtime can forget it.
    func recordExit(_ exit: Berth_Runtime_V1_Exit) async throws(BerthError) {
        let at = exit.hasExitedAt ? exit.exitedAt.seconds * 1_000_000_000 + Int64(exit.exitedAt.nanos) : MetadataStore.now()
        let fact = ExitFact(status: exit.exitStatus, at: at)
        let reportedPID = exit.pid
        guard
            let (record, changed) = try await metadata.updateProcess(
                namespace: exit.namespace, containerID: exit.id, execID: exit.execID,
                { phase in
                    if case .stopped = phase { return nil }
                    return .stopped(pid: phase.pid == 0 ? reportedPID : phase.pid, exit: fact)
                })
        else {
            logger.debug("exit of an unknown process", metadata: ["namespace": "\(exit.namespace)", "container": "\(exit.id)", "exec": "\(exit.execID)"])
            return
        }
        guard changed else { return }
        if exitsHeldForStart[ProcessKey(record)] != nil {
            exitsHeldForStart[ProcessKey(record)]?.append((record, fact))
            return
        }
        announceExit(record, fact)
    }

    /// Announces the exits held while the start of `key` was under way.
    func releaseExits(of key: ProcessKey) {
        for (record, fact) in exitsHeldForStart.removeValue(forKey: key) ?? [] { announceExit(record, fact) }
    }

    /// Publishes `/tasks/exit` for a recorded exit, then answers the waiters.
    private func announceExit(_ record: ProcessRecord, _ fact: ExitFact) {
        events.publish(
            topic: "/tasks/exit", namespace: record.namespace,
            Containerd_Events_TaskExit.with {
                $0.containerID = record.containerID
                $0.id = record.isInit ? record.containerID : record.execID
                $0.pid = record.phase.pid
                $0.exitStatus = fact.status
                $0.exitedAt = Self.timestamp(fact.at)
            })
        resumeWaiters(of: record, with: fact)
    }

    /// The `SupervisorContract` methods, which runtimes call through the host table.
    public func call(_ method: String, request: [UInt8], context: CallContext) async throws -> [UInt8] {
        switch method {
        case BerthContracts.SupervisorContract.exited.path:
            guard let exit = try? Berth_Runtime_V1_Exit(serializedBytes: request) else {
                throw BerthError.invalidArgument("\(method): the request is not a berth.runtime.v1.Exit")
            }
            try await recordExit(exit)
            return []
        case BerthContracts.SupervisorContract.outOfMemoryKilled.path:
            guard let oom = try? Berth_Runtime_V1_OutOfMemory(serializedBytes: request) else {
                throw BerthError.invalidArgument("\(method): the request is not a berth.runtime.v1.OutOfMemory")
            }
            guard try await metadata.process(namespace: oom.namespace, containerID: oom.id, execID: "") != nil else { return [] }
            events.publish(topic: "/tasks/oom", namespace: oom.namespace, Containerd_Events_TaskOOM.with { $0.containerID = oom.id })
            return []
        default:
            throw BerthError.unimplemented("method \(method) is not served by \(Self.name)")
        }
    }
}
