import BerthProto
import GRPCCore
import Kernel
import Runtime
import SwiftProtobuf

/// containerd.services.tasks.v1.Tasks: a thin forwarder to the TaskService and the supervisor.
struct TasksService: Containerd_Services_Tasks_V1_Tasks.ServiceProtocol {
    let tasks: TaskService
    var supervisor: TaskSupervisor { tasks.supervisor }

    typealias Request<T> = ServerRequest<T>
    typealias Response<T> = ServerResponse<T>
    typealias Empty = Google_Protobuf_Empty

    func create(request: Request<Containerd_Services_Tasks_V1_CreateTaskRequest>, context: ServerContext) async throws
        -> Response<Containerd_Services_Tasks_V1_CreateTaskResponse>
    {
        let message = request.message
        guard !message.hasCheckpoint else {
            throw BerthError.unimplemented("task \"\(message.containerID)\": creating from a checkpoint is not supported by Berth")
        }
        guard message.runtimePath.isEmpty else {
            throw BerthError.unimplemented(
                "task \"\(message.containerID)\": runtime_path is not supported; name the runtime in the container (runtime_aliases in plugin.conf)")
        }
        let stdio = ProcessStdio(stdin: message.stdin, stdout: message.stdout, stderr: message.stderr, terminal: message.terminal)
        let record = try await tasks.create(
            namespace: try RequestContext.namespace(request.metadata), containerID: message.containerID,
            rootfs: message.rootfs, stdio: stdio, options: message.hasOptions ? message.options : nil)
        return Response(
            message: .with {
                $0.containerID = record.containerID
                $0.pid = record.phase.pid
            })
    }

    func start(request: Request<Containerd_Services_Tasks_V1_StartRequest>, context: ServerContext) async throws
        -> Response<Containerd_Services_Tasks_V1_StartResponse>
    {
        let pid = try await supervisor.start(
            namespace: try RequestContext.namespace(request.metadata), containerID: request.message.containerID,
            execID: request.message.execID)
        return Response(message: .with { $0.pid = pid })
    }

    func delete(request: Request<Containerd_Services_Tasks_V1_DeleteTaskRequest>, context: ServerContext) async throws
        -> Response<Containerd_Services_Tasks_V1_DeleteResponse>
    {
        let record = try await supervisor.delete(
            namespace: try RequestContext.namespace(request.metadata), containerID: request.message.containerID)
        return Response(message: Self.deleted(record, id: record.containerID))
    }

    func deleteProcess(request: Request<Containerd_Services_Tasks_V1_DeleteProcessRequest>, context: ServerContext) async throws
        -> Response<Containerd_Services_Tasks_V1_DeleteResponse>
    {
        let record = try await supervisor.deleteProcess(
            namespace: try RequestContext.namespace(request.metadata), containerID: request.message.containerID,
            execID: request.message.execID)
        return Response(message: Self.deleted(record, id: record.execID))
    }

    func get(request: Request<Containerd_Services_Tasks_V1_GetRequest>, context: ServerContext) async throws
        -> Response<Containerd_Services_Tasks_V1_GetResponse>
    {
        let record = try await supervisor.get(
            namespace: try RequestContext.namespace(request.metadata), containerID: request.message.containerID,
            execID: request.message.execID)
        return Response(message: .with { $0.process = Self.process(record) })
    }

    func list(request: Request<Containerd_Services_Tasks_V1_ListTasksRequest>, context: ServerContext) async throws
        -> Response<Containerd_Services_Tasks_V1_ListTasksResponse>
    {
        let records = try await tasks.list(namespace: try RequestContext.namespace(request.metadata), filter: request.message.filter)
        return Response(message: .with { $0.tasks = records.map(Self.process) })
    }

    func kill(request: Request<Containerd_Services_Tasks_V1_KillRequest>, context: ServerContext) async throws -> Response<Empty> {
        let message = request.message
        try await tasks.kill(
            namespace: try RequestContext.namespace(request.metadata), containerID: message.containerID,
            execID: message.execID, signal: message.signal, all: message.all)
        return Response(message: Empty())
    }

    func exec(request: Request<Containerd_Services_Tasks_V1_ExecProcessRequest>, context: ServerContext) async throws -> Response<Empty> {
        let message = request.message
        guard message.hasSpec else {
            throw BerthError.invalidArgument("task \"\(message.containerID)\": exec \"\(message.execID.prefix(80))\" needs a process spec")
        }
        try await supervisor.exec(
            namespace: try RequestContext.namespace(request.metadata), containerID: message.containerID,
            execID: message.execID, spec: Array(message.spec.value),
            stdio: ProcessStdio(stdin: message.stdin, stdout: message.stdout, stderr: message.stderr, terminal: message.terminal))
        return Response(message: Empty())
    }

    func resizePty(request: Request<Containerd_Services_Tasks_V1_ResizePtyRequest>, context: ServerContext) async throws -> Response<Empty> {
        let message = request.message
        try await supervisor.resizePty(
            namespace: try RequestContext.namespace(request.metadata), containerID: message.containerID,
            execID: message.execID, width: message.width, height: message.height)
        return Response(message: Empty())
    }

    func closeIO(request: Request<Containerd_Services_Tasks_V1_CloseIORequest>, context: ServerContext) async throws -> Response<Empty> {
        let message = request.message
        if message.stdin {
            try await supervisor.closeStdin(
                namespace: try RequestContext.namespace(request.metadata), containerID: message.containerID, execID: message.execID)
        }
        return Response(message: Empty())
    }

    func pause(request: Request<Containerd_Services_Tasks_V1_PauseTaskRequest>, context: ServerContext) async throws -> Response<Empty> {
        try await supervisor.pause(namespace: try RequestContext.namespace(request.metadata), containerID: request.message.containerID)
        return Response(message: Empty())
    }

    func resume(request: Request<Containerd_Services_Tasks_V1_ResumeTaskRequest>, context: ServerContext) async throws -> Response<Empty> {
        try await supervisor.resume(namespace: try RequestContext.namespace(request.metadata), containerID: request.message.containerID)
        return Response(message: Empty())
    }

    func listPids(request: Request<Containerd_Services_Tasks_V1_ListPidsRequest>, context: ServerContext) async throws
        -> Response<Containerd_Services_Tasks_V1_ListPidsResponse>
    {
        let processes = try await supervisor.pids(
            namespace: try RequestContext.namespace(request.metadata), containerID: request.message.containerID)
        return Response(message: .with { $0.processes = processes })
    }

    func checkpoint(request: Request<Containerd_Services_Tasks_V1_CheckpointTaskRequest>, context: ServerContext) async throws
        -> Response<Containerd_Services_Tasks_V1_CheckpointTaskResponse>
    {
        throw BerthError.unimplemented(
            "task \"\(request.message.containerID)\": checkpoints are not supported by Berth (no CRIU integration)")
    }

    func update(request: Request<Containerd_Services_Tasks_V1_UpdateTaskRequest>, context: ServerContext) async throws -> Response<Empty> {
        try await supervisor.update(
            namespace: try RequestContext.namespace(request.metadata), containerID: request.message.containerID,
            resources: request.message.resources)
        return Response(message: Empty())
    }

    func metrics(request: Request<Containerd_Services_Tasks_V1_MetricsRequest>, context: ServerContext) async throws
        -> Response<Containerd_Services_Tasks_V1_MetricsResponse>
    {
        let metrics = try await tasks.metrics(namespace: try RequestContext.namespace(request.metadata), filters: request.message.filters)
        return Response(message: .with { $0.metrics = metrics })
    }

    func wait(request: Request<Containerd_Services_Tasks_V1_WaitRequest>, context: ServerContext) async throws
        -> Response<Containerd_Services_Tasks_V1_WaitResponse>
    {
        let exit = try await supervisor.wait(
            namespace: try RequestContext.namespace(request.metadata), containerID: request.message.containerID,
            execID: request.message.execID)
        return Response(
            message: .with {
                $0.exitStatus = exit.status
                $0.exitedAt = TaskSupervisor.timestamp(exit.at)
            })
    }

    // MARK: - Conversions

    /// A process as containerd reports it: a task's init carries the container id as its id.
    static func process(_ record: ProcessRecord) -> Containerd_V1_Types_Process {
        .with {
            $0.containerID = record.containerID
            $0.id = record.isInit ? record.containerID : record.execID
            $0.pid = record.phase.pid
            $0.stdin = record.stdio.stdin
            $0.stdout = record.stdio.stdout
            $0.stderr = record.stdio.stderr
            $0.terminal = record.stdio.terminal
            switch record.phase {
            case .creating: $0.status = .unknown
            case .created: $0.status = .created
            case .running: $0.status = .running
            case .paused: $0.status = .paused
            case .stopped(_, let exit):
                $0.status = .stopped
                $0.exitStatus = exit.status
                $0.exitedAt = TaskSupervisor.timestamp(exit.at)
            }
        }
    }

    static func deleted(_ record: ProcessRecord, id: String) -> Containerd_Services_Tasks_V1_DeleteResponse {
        .with {
            $0.id = id
            $0.pid = record.phase.pid
            if case .stopped(_, let exit) = record.phase {
                $0.exitStatus = exit.status
                $0.exitedAt = TaskSupervisor.timestamp(exit.at)
            }
        }
    }
}
