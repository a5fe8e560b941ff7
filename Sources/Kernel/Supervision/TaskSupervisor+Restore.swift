import BerthProto
import SwiftProtobuf

/// After a daemon restart: what each runtime says survived, reconciled with what the store
/// holds, so that every container is either running and listed or gone with its exit recorded.
///
/// Rules, per process the store holds (by runtime plugin):
/// - phase creating (the daemon died before the client had an answer): undone; the runtime's
///   container, if any, is deleted with it;
/// - listed by the runtime as stopped: its exit is recorded (and published once);
/// - listed as created, running or paused: that phase and pid are written;
/// - not listed: the runtime lost it; it is recorded as exited with status 255 now, as
///   containerd records a task whose shim is gone.
/// A container the runtime has and the store does not (a crash between the runtime's work and
/// the record) is deleted from the runtime.
extension TaskSupervisor {
    static let lostExitStatus: UInt32 = 255

    func restore() async {
        for (id, instance) in plugins.instances(of: .runtime).sorted(by: { $0.key < $1.key }) {
            let runtime = PluginName(type: .runtime, id: id).description
            do {
                let restored = try await instance.call(BerthContracts.RuntimeContract.restore, Google_Protobuf_Empty())
                try await reconcile(runtime: runtime, restored.containers)
            } catch {
                logger.error("restore failed: \(BerthError.from(error).message)", metadata: ["runtime": "\(runtime)"])
            }
        }
    }

    private func reconcile(runtime: String, _ restored: [Berth_Runtime_V1_RestoredContainer]) async throws(BerthError) {
        var survivors = [ProcessKey: Berth_Runtime_V1_RestoredProcess]()
        var containers = Set<ProcessKey>()
        for container in restored {
            containers.insert(ProcessKey(namespace: container.namespace, containerID: container.id, execID: ""))
            for process in container.processes {
                survivors[ProcessKey(namespace: container.namespace, containerID: container.id, execID: process.execID)] = process
            }
        }
        let records = try await metadata.processes(runtime: runtime)
        var known = Set<ProcessKey>()
        for record in records {
            known.insert(ProcessKey(namespace: record.namespace, containerID: record.containerID, execID: ""))
            await reconcile(record, survivor: survivors[ProcessKey(record)])
        }
        for orphan in containers.subtracting(known) {
            logger.warning(
                "deleting a container the runtime has and no task record names",
                metadata: ["runtime": "\(runtime)", "namespace": "\(orphan.namespace)", "container": "\(orphan.containerID)"])
            let record = ProcessRecord(
                namespace: orphan.namespace, containerID: orphan.containerID, execID: "", runtime: runtime,
                phase: .creating, stdio: ProcessStdio())
            _ = try? await runtimeCall(record, BerthContracts.RuntimeContract.delete, Self.processRequest(record))
        }
    }

    private func reconcile(_ record: ProcessRecord, survivor: Berth_Runtime_V1_RestoredProcess?) async {
        do throws(BerthError) {
            switch (record.phase, survivor) {
            case (.stopped, _):
                return
            case (.creating, _):
                logger.info("undoing a create the daemon did not finish", metadata: ["container": "\(record.containerID)", "exec": "\(record.execID)"])
                let method = record.isInit ? BerthContracts.RuntimeContract.delete : BerthContracts.RuntimeContract.deleteProcess
                if survivor != nil { _ = try? await runtimeCall(record, method, Self.processRequest(record)) }
                try await metadata.deleteProcesses(
                    namespace: record.namespace, containerID: record.containerID, execID: record.isInit ? nil : record.execID)
            case (_, nil):
                logger.warning(
                    "the runtime lost a process; recording it as exited", metadata: ["container": "\(record.containerID)", "exec": "\(record.execID)"])
                try await recordExit(Self.exit(record, status: Self.lostExitStatus, at: MetadataStore.now()))
            case (_, let survivor?):
                try await adopt(record, survivor)
            }
        } catch {
            logger.error("restore of \(record.noun) failed: \(error.message)", metadata: ["namespace": "\(record.namespace)"])
        }
    }

    /// Writes the phase the runtime reports for a surviving process.
    private func adopt(_ record: ProcessRecord, _ survivor: Berth_Runtime_V1_RestoredProcess) async throws(BerthError) {
        let pid = survivor.pid == 0 ? record.phase.pid : survivor.pid
        let phase: ProcessPhase
        switch survivor.status {
        case .stopped:
            var exit = survivor.exit
            exit.namespace = record.namespace
            exit.id = record.containerID
            exit.execID = record.execID
            try await recordExit(exit)
            return
        case .created: phase = .created(pid: pid)
        case .paused, .pausing: phase = .paused(pid: pid)
        default: phase = .running(pid: pid)
        }
        // Most survivors are as recorded: no transaction for them (200 took ~30 ms).
        guard record.phase != phase else { return }
        _ = try await advance(record) { current in current == phase ? nil : phase }
    }

    static func exit(_ record: ProcessRecord, status: UInt32, at: Int64) -> Berth_Runtime_V1_Exit {
        .with {
            $0.namespace = record.namespace
            $0.id = record.containerID
            $0.execID = record.execID
            $0.pid = record.phase.pid
            $0.exitStatus = status
            $0.exitedAt = timestamp(at)
        }
    }
}
