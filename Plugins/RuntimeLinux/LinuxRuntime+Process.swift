import BerthPluginSDK
import BerthProto
import FoundationEssentials
import Glibc

/// Methods on a running container's processes: each is one keeper request
/// (keeper_protocol.h section 3); the keeper's ERROR codes come back as the SDK's codes.
extension LinuxRuntime {
    func start(_ request: Berth_Runtime_V1_ProcessRequest) async throws -> Berth_Runtime_V1_StartResponse {
        let container = try container(request.namespace, request.id)
        let reply = try await keeper(container, .start, [request.execID])
        return .with { $0.pid = reply.first.flatMap { UInt32($0) } ?? 0 }
    }

    func signal(_ request: Berth_Runtime_V1_KillRequest) async throws {
        let process = request.process
        let container = try container(process.namespace, process.id)
        guard (1...64).contains(request.signal) else {
            throw PluginError(.invalidArgument, "container \(container.label): kill: signal \(request.signal) is not 1...64")
        }
        _ = try await keeper(container, .kill, [process.execID, String(request.signal), request.all ? "1" : "0"])
    }

    /// Exec: writes the exec plan (native) or process.json and its plan (oci) in DIR and asks
    /// the keeper to set the process up; files are removed again if it refuses.
    func exec(_ request: Berth_Runtime_V1_ExecRequest) async throws {
        let process = request.process
        let container = try container(process.namespace, process.id)
        try Self.checkIdentifier(process.execID, what: "exec id", container: container.label)
        let directory = container.directory
        let planPath = directory.execPlan(process.execID)
        guard !FileManager.default.fileExists(atPath: planPath) else {
            throw PluginError(.alreadyExists, "container \(container.label): exec \(process.execID) already exists")
        }
        let processPlan = ProcessPlan(container: container.label)
        let decoded = try processPlan.decodeExec(request.spec)
        try processPlan.validate(decoded, field: "exec process")
        var plan = PlanRecords(container: container.label)
        if container.record.mode == RuntimeSettings.Mode.oci.rawValue {
            let json = directory.execProcess(process.execID)
            do {
                try StateDirectory.writePrivate(request.spec, to: json)
            } catch {
                throw PluginError(.internal, "container \(container.label): exec \(process.execID): write \(json): \(error)")
            }
            try plan.add("oci_process", json, from: "exec process")
            if decoded.terminal == true || request.stdio.terminal { try plan.add("terminal", "1", from: "exec process.terminal") }
            for (key, path) in [("stdin", request.stdio.stdin), ("stdout", request.stdio.stdout), ("stderr", request.stdio.stderr)]
            where !path.isEmpty {
                try plan.add(key, path, from: "stdio.\(key)")
            }
        } else {
            try processPlan.refuseUnsupported(decoded, field: "exec process")
            if let adjust = decoded.oomScoreAdj, !(-1000...1000).contains(adjust) {
                throw SpecError.invalid(container.label, "exec process.oomScoreAdj", "\(adjust) is outside -1000...1000")
            }
            try processPlan.add(decoded, stdio: request.stdio, field: "exec process", to: &plan)
        }
        do {
            try plan.write(to: planPath)
            let reply = try await keeper(container, .exec, [process.execID, planPath])
            if container.record.mode == RuntimeSettings.Mode.native.rawValue, let adjust = decoded.oomScoreAdj {
                try await setScore(adjust, pid: reply.first ?? "", execID: process.execID, container: container)
            }
        } catch {
            removeExecFiles(container, process.execID)
            throw error
        }
    }

    /// The keeper's plans have no per-exec OOM score: it is written here while the exec waits
    /// for START (proc(5), /proc/PID/oom_score_adj); if that fails the exec is ended and forgotten.
    private func setScore(_ adjust: Int, pid: String, execID: String, container: LiveContainer) async throws {
        let path = "/proc/\(pid)/oom_score_adj"
        do {
            try String(adjust).write(toFile: path, atomically: false, encoding: .utf8)
        } catch {
            _ = try? await keeper(container, .kill, [execID, "9", "0"])
            _ = try? await keeper(container, .delete, [execID, "1"])
            throw PluginError(.internal, "container \(container.label): exec \(execID): write oomScoreAdj to \(path): \(error)")
        }
    }

    func resizePty(_ request: Berth_Runtime_V1_ResizePtyRequest) async throws {
        let process = request.process
        let container = try container(process.namespace, process.id)
        _ = try await keeper(container, .resize, [process.execID, String(request.width), String(request.height)])
    }

    func closeIO(_ request: Berth_Runtime_V1_ProcessRequest) async throws {
        let container = try container(request.namespace, request.id)
        _ = try await keeper(container, .closeStdin, [request.execID])
    }

    func pause(_ request: Berth_Runtime_V1_ProcessRequest) async throws {
        let container = try container(request.namespace, request.id)
        _ = try await keeper(container, .pause)
    }

    func resume(_ request: Berth_Runtime_V1_ProcessRequest) async throws {
        let container = try container(request.namespace, request.id)
        _ = try await keeper(container, .resume)
    }

    func pids(_ request: Berth_Runtime_V1_ProcessRequest) async throws -> Berth_Runtime_V1_PidsResponse {
        let container = try container(request.namespace, request.id)
        let reply = try await keeper(container, .pids)
        return .with { response in
            response.processes = reply.compactMap { UInt32($0) }.map { pid in .with { $0.pid = pid } }
        }
    }

    func metrics(_ request: Berth_Runtime_V1_ProcessRequest) throws -> Berth_Runtime_V1_MetricsResponse {
        let container = try container(request.namespace, request.id)
        let data = try CgroupMetrics(layout: cgroups, relative: container.record.cgroupPath, container: container.label).collect()
        return .with { $0.data = data }
    }

    /// Update: the new limits go straight to the container's cgroup files (CgroupUpdate).
    func update(_ request: Berth_Runtime_V1_UpdateRequest) throws {
        let container = try container(request.process.namespace, request.process.id)
        let update = CgroupUpdate(layout: cgroups, relative: container.record.cgroupPath, container: container.label)
        try update.apply(try update.writes(for: request.resources))
    }

    /// Forgets a stopped exec (DELETE exec_id 0) and removes its files.
    func deleteProcess(_ request: Berth_Runtime_V1_ProcessRequest) async throws {
        let container = try container(request.namespace, request.id)
        guard !request.execID.isEmpty else {
            throw PluginError(.invalidArgument, "container \(container.label): DeleteProcess needs an exec id; Delete ends the container")
        }
        _ = try await keeper(container, .delete, [request.execID, "0"])
        removeExecFiles(container, request.execID)
    }

    private func removeExecFiles(_ container: LiveContainer, _ execID: String) {
        try? FileManager.default.removeItem(atPath: container.directory.execPlan(execID))
        try? FileManager.default.removeItem(atPath: container.directory.execProcess(execID))
    }
}
