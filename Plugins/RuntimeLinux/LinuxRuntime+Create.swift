import BerthPluginSDK
import BerthProto
import FoundationEssentials
import Glibc

extension LinuxRuntime {
    /// Container and exec ids the keeper accepts: [A-Za-z0-9_.-]{1,76} (keeper_protocol.h).
    static func checkIdentifier(_ value: String, what: String, container: String) throws {
        let allowed = value.utf8.allSatisfy { byte in
            (0x30...0x39).contains(byte) || (0x41...0x5a).contains(byte) || (0x61...0x7a).contains(byte) || byte == 0x2d || byte == 0x2e
                || byte == 0x5f
        }
        guard allowed, (1...76).contains(value.utf8.count) else {
            throw PluginError(.invalidArgument, "container \(container): \(what) \(value.debugDescription) must be 1 to 76 of [A-Za-z0-9_.-]")
        }
    }

    /// Create: checks the request, writes the plan (or the bundle), spawns the keeper and
    /// connects to it. On any failure everything made for the container is removed.
    func create(_ request: Berth_Runtime_V1_CreateRequest) async throws -> Berth_Runtime_V1_CreateResponse {
        let label = "\(request.namespace)/\(request.id)"
        try Self.checkIdentifier(request.id, what: "id", container: label)
        guard !request.namespace.isEmpty, !request.namespace.contains("/"), !request.namespace.utf8.contains(0) else {
            throw PluginError(.invalidArgument, "container \(label): namespace \(request.namespace.debugDescription) is not valid")
        }
        let spec = try ContainerPlan.decode(request.spec, container: label)
        let cgroupPath = try cgroupPath(spec, request: request, label: label)
        try reserve(namespace: request.namespace, id: request.id)
        let directory = StateDirectory.of(namespace: request.namespace, id: request.id, under: root)
        guard !FileManager.default.fileExists(atPath: directory.path) else {
            release(namespace: request.namespace, id: request.id)
            throw PluginError(.alreadyExists, "container \(label): its state directory \(directory.path) exists already")
        }
        let record = ContainerRecord(
            namespace: request.namespace, id: request.id, mode: settings.mode.rawValue,
            cgroupPath: cgroupPath,
            mountedRootfs: settings.mode == .oci && !request.rootfs.isEmpty)
        let container = LiveContainer(record: record, directory: directory)
        do {
            let pid = try prepareAndSpawn(request, spec: spec, container: container)
            _ = try await connection(container)
            install(container)
            return .with { $0.pid = pid }
        } catch {
            discard(container)
            release(namespace: request.namespace, id: request.id)
            throw error
        }
    }

    /// The spec's cgroupsPath (cgroupfs form, such as ctr's "/default/c1"), or berth/NS/ID.
    private func cgroupPath(_ spec: OCISpec, request: Berth_Runtime_V1_CreateRequest, label: String) throws -> String {
        let given = spec.linux?.cgroupsPath ?? ""
        guard !given.isEmpty else { return "berth/\(request.namespace)/\(request.id)" }
        guard !given.contains(":") else {
            throw SpecError.unsupported(label, "linux.cgroupsPath", "\(given.debugDescription) is a systemd slice path; only cgroupfs paths are")
        }
        let parts = given.split(separator: "/")
        guard !parts.isEmpty, !parts.contains(".."), !parts.contains(".") else {
            throw SpecError.invalid(label, "linux.cgroupsPath", "\(given.debugDescription) is not a cgroup path")
        }
        return parts.joined(separator: "/")
    }

    /// Makes DIR, writes what the keeper needs and runs `berth-keeper create`; blocks.
    private func prepareAndSpawn(_ request: Berth_Runtime_V1_CreateRequest, spec: OCISpec, container: LiveContainer) throws -> UInt32 {
        let directory = container.directory
        let label = container.label
        guard directory.path.utf8.count <= StateDirectory.maximumPathLength else {
            throw PluginError(
                .failedPrecondition,
                "container \(label): state directory \(directory.path) is longer than \(StateDirectory.maximumPathLength) bytes; use a shorter state_dir")
        }
        // 0711: searchable, not listable, so that a user-namespaced root reaches DIR/rootfs.
        guard mkdir(directory.path, 0o711) == 0 else {
            let reason = String(cString: strerror(errno))
            throw PluginError(errno == EEXIST ? .alreadyExists : .internal, "container \(label): create: mkdir \(directory.path): \(reason)")
        }
        guard mkdir(directory.rootfs, 0o755) == 0 else {
            throw PluginError(.internal, "container \(label): create: mkdir \(directory.rootfs): \(String(cString: strerror(errno)))")
        }
        do {
            try directory.writeRecord(container.record)
        } catch {
            throw PluginError(.internal, "container \(label): create: write \(directory.path)/\(StateDirectory.recordName): \(error)")
        }
        if spec.linux?.namespaces?.contains(where: { $0.type == "user" }) == true, let folder = directory.unsearchableAncestor() {
            throw PluginError(
                .failedPrecondition,
                "container \(label): create: \(folder) is not searchable by others, so the container's mapped root cannot reach its rootfs; make it 0711")
        }
        let plan: PlanRecords
        if settings.mode == .native {
            plan = try ContainerPlan(container: label, rootfsDirectory: directory.rootfs, cgroups: cgroups)
                .plan(spec, id: request.id, cgroupPath: container.record.cgroupPath, request: request)
        } else {
            plan = try writeBundle(request, spec: spec, container: container)
        }
        try plan.write(to: directory.plan)
        switch try KeeperLauncher(keeper: settings.keeper, container: label).create(state: directory.path) {
        case .created(let pid):
            return pid
        case .failed(let line):
            throw PluginError(KeeperErrors.createCode(line), "container \(label): create: \(line)")
        }
    }

    /// Mode oci: DIR/config.json is the client's spec with the root and cgroup path this
    /// plugin chose; the rootfs mounts are made here; the plan points the keeper at runc.
    private func writeBundle(_ request: Berth_Runtime_V1_CreateRequest, spec: OCISpec, container: LiveContainer) throws -> PlanRecords {
        let directory = container.directory
        let label = container.label
        guard case .object(var document)? = try? JSONDecoder().decode(JSONValue.self, from: request.spec) else {
            throw SpecError.invalid(label, "document", "not a JSON object")
        }
        var rootObject = document["root"]?.members ?? [:]
        if request.rootfs.isEmpty {
            guard let path = spec.root?.path, path.hasPrefix("/") else {
                throw SpecError.invalid(label, "root.path", "with no rootfs mounts in the request the root must be an absolute path")
            }
        } else {
            rootObject["path"] = .string(directory.rootfs)
            try RootfsMounts(container: label).mount(request.rootfs, on: directory.rootfs)
        }
        document["root"] = .object(rootObject)
        var linux = document["linux"]?.members ?? [:]
        linux["cgroupsPath"] = .string("/" + container.record.cgroupPath)
        document["linux"] = .object(linux)
        do {
            try StateDirectory.writePrivate(try JSONEncoder().encode(JSONValue.object(document)), to: directory.path + "/config.json")
        } catch {
            throw PluginError(.internal, "container \(label): create: write \(directory.path)/config.json: \(error)")
        }
        var plan = PlanRecords(container: label)
        try plan.add("mode", "oci", from: "mode")
        try plan.add("id", request.id, from: "id")
        try plan.add("runtime", settings.ociBinary, from: "oci_binary")
        try plan.add("runtime_root", directory.runcRoot, from: "runtime root")
        try plan.add("oci_bundle", directory.path, from: "bundle")
        try plan.add("cgroup_path", container.record.cgroupPath, from: "linux.cgroupsPath")
        if spec.process?.terminal == true || request.stdio.terminal { try plan.add("terminal", "1", from: "process.terminal") }
        for (key, path) in [("stdin", request.stdio.stdin), ("stdout", request.stdio.stdout), ("stderr", request.stdio.stderr)] where !path.isEmpty {
            try plan.add(key, path, from: "stdio.\(key)")
        }
        return plan
    }

    /// Removes what a failed create made: the keeper if it runs, cgroups, mounts, DIR.
    func discard(_ container: LiveContainer) {
        container.markDeleted()
        // Only a keeper that was running leaves cgroups: a failed `create` removes its own.
        if let pid = container.directory.liveKeeperPID {
            Glibc.kill(pid, SIGKILL)
            let left = cgroups.removeAbandoned(container.record.cgroupPath)
            if !left.isEmpty { host.log(.warning, "container \(container.label): cgroups left after a failed create: \(left)") }
        }
        if container.record.mountedRootfs { RootfsMounts(container: container.label).unmountAll(container.directory.rootfs) }
        container.directory.remove()
    }
}
