import BerthProto
import Filters
import FoundationEssentials
import Glibc
import Kernel
import SwiftProtobuf

/// Tasks as clients ask for them: a container's record joined with the supervisor.
///
/// The supervisor (kernel) knows processes and runtimes; this service knows containers. Creating
/// a task reads the container (its spec, runtime name and options) and hands the supervisor
/// everything the runtime needs, so no runtime ever reads the metadata store. Listing and
/// metrics take containerd's filters here, above the kernel.
public struct TaskService: Sendable {
    public let containers: ContainerService
    public let supervisor: TaskSupervisor

    public init(containers: ContainerService, supervisor: TaskSupervisor) {
        self.containers = containers
        self.supervisor = supervisor
    }

    /// The task service over the started containers service and supervisor, for the plugins
    /// that use it (the Tasks API and the restart monitor).
    public init(_ plugins: PluginDirectory) throws(BerthError) {
        self.init(
            containers: try plugins.service(RuntimePlugins.containers, as: ContainerService.self),
            supervisor: try plugins.service(TaskSupervisor.name, as: TaskSupervisor.self))
    }

    /// Creates the task of container `containerID`. Runtime options given here win over the
    /// container's own, as in containerd.
    public func create(
        namespace: String, containerID: String, rootfs: [Containerd_Types_Mount], stdio: ProcessStdio,
        options: Google_Protobuf_Any?
    ) async throws -> ProcessRecord {
        var container = try await containers.get(namespace: namespace, id: containerID)
        if container.labels[RestartLabels.explicitlyStopped] != nil {
            // A client starts it again: the restart policy applies again.
            container.labels[RestartLabels.explicitlyStopped] = nil
            container = try await containers.update(
                namespace: namespace, container, paths: ["labels.\(RestartLabels.explicitlyStopped)"])
        }
        let runtimeOptions = options ?? (container.runtime.hasOptions ? container.runtime.options : nil)
        return try await supervisor.create(
            TaskCreation(
                namespace: namespace, containerID: containerID, runtimeName: container.runtime.name,
                spec: Array(container.spec.value), rootfs: rootfs, stdio: stdio, options: runtimeOptions))
    }

    /// Signals that stop a process unless it handles them: sent by a client, they mean "stop".
    static let stopSignals: Set<UInt32> = [2, 3, 9, 15]

    /// Signals a task's process (or all of them); a client stopping a container that its restart
    /// labels keep running marks it explicitly stopped first, so the restart monitor leaves it.
    public func kill(namespace: String, containerID: String, execID: String, signal: UInt32, all: Bool) async throws {
        if execID.isEmpty, Self.stopSignals.contains(signal),
            var container = try? await containers.get(namespace: namespace, id: containerID),
            container.labels[RestartLabels.status] == "running", container.labels[RestartLabels.explicitlyStopped] != "true"
        {
            container.labels[RestartLabels.explicitlyStopped] = "true"
            _ = try await containers.update(namespace: namespace, container, paths: ["labels.\(RestartLabels.explicitlyStopped)"])
        }
        try await supervisor.kill(namespace: namespace, containerID: containerID, execID: execID, signal: signal, all: all)
    }

    /// Tasks of `namespace` matching `filter` (fields id, pid, status), by container id.
    public func list(namespace: String, filter: String) async throws -> [ProcessRecord] {
        let filters = try FilterSet(filter.isEmpty ? [] : [filter])
        return try await supervisor.list(namespace: namespace).filter { record in
            filters.matches { Self.field(record, $0) }
        }
    }

    /// One metric per task matching any of `filters`.
    public func metrics(namespace: String, filters: [String]) async throws -> [Containerd_Types_Metric] {
        let filterSet = try FilterSet(filters)
        var metrics = [Containerd_Types_Metric]()
        for record in try await supervisor.list(namespace: namespace) where filterSet.matches({ Self.field(record, $0) }) {
            // A stopped task keeps its cgroup until it is deleted, and containerd reports it;
            // one whose cgroup went (its keeper died while berthd was down) is left out.
            let data: Google_Protobuf_Any
            if case .stopped = record.phase {
                guard let figures = try? await supervisor.metrics(namespace: namespace, containerID: record.containerID) else { continue }
                data = figures
            } else {
                data = try await supervisor.metrics(namespace: namespace, containerID: record.containerID)
            }
            metrics.append(
                .with {
                    $0.timestamp = Google_Protobuf_Timestamp(date: Date())
                    $0.id = record.containerID
                    $0.data = data
                })
        }
        return metrics
    }

    private static func field(_ record: ProcessRecord, _ path: [String]) -> String? {
        switch path.first {
        case "id", "container_id": record.containerID
        case "pid": String(record.phase.pid)
        case "status": record.phase.name
        case "runtime": record.runtime
        default: nil
        }
    }
}
