import BerthPluginSDK
import BerthProto
import FoundationEssentials
import Glibc
import SwiftProtobuf
import Synchronization

/// The Linux runtime plugin: serves `BerthContracts.RuntimeContract`
/// (Protos/berth/runtime/v1/runtime.proto) with one berth-keeper per container
/// (Helpers/keeper/README.md), in native mode or driving an OCI runtime (mode oci).
///
/// Terms: a *keeper* is the helper process of one container; its *directory* (DIR) is
/// `STATE/containers/HASH` with the plan, the keeper's socket and exit files and
/// `container.json`; an *exit* is held by the keeper until this plugin acknowledges it, which
/// it does only after the kernel's supervisor answered OK to Exited.
///
/// Lifecycle: `start()` reads the config, takes back the containers a previous instance left
/// (LinuxRuntime+Restore) and starts the exit reporter; `stop()` closes the keeper
/// connections and ends the reporter. Containers and keepers outlive both.
///
/// Worked example (`ctr run busybox c1 sh -c 'exit 3'` in namespace default): Create writes
/// DIR/plan from the spec and spawns `berth-keeper create`, which answers the init's pid;
/// Start sends START; the keeper writes DIR/exits/init and sends EVENT_EXIT; the reporter
/// calls Supervisor.Exited {default, c1, "", pid, 3}, then ACK_EXIT; Delete sends DELETE and
/// removes DIR.
///
/// Repeats and absences: a second Create of an id is ALREADY_EXISTS; any call naming a
/// container this instance does not hold is NOT_FOUND, so is a second Delete; Kill of an
/// exited process is NOT_FOUND and a second Start FAILED_PRECONDITION (the keeper's codes).
/// Cancellation: a call whose caller gave up still runs to its end (a half-done create is
/// never left behind; a keeper request is not taken back), and its answer is dropped.
final class RuntimeLinuxPlugin: BerthPlugin {
    private let host: PluginHost
    private let runtime: Result<LinuxRuntime, PluginError>
    private let reporting = Mutex<Task<Void, Never>?>(nil)
    let methods: MethodTable

    init(host: PluginHost) {
        self.host = host
        let runtime: Result<LinuxRuntime, PluginError>
        do {
            runtime = .success(LinuxRuntime(host: host, settings: try RuntimeSettings(host: host)))
        } catch let error as PluginError {
            runtime = .failure(error)
        } catch {
            runtime = .failure(PluginError(.invalidArgument, "plugin config: \(error)"))
        }
        self.runtime = runtime
        methods = Self.table(runtime)
    }

    func start() async throws {
        guard FileManager.default.fileExists(atPath: "/proc/self/ns/pid") else {
            throw PluginSkip("skip plugin: this kernel has no PID namespaces (/proc/self/ns/pid is missing)")
        }
        let runtime = try runtime.get()
        // 0711 down to each container's directory (searchable, not listable), as containerd's
        // state folders: a user-namespaced container's root must reach its rootfs there.
        try FileManager.default.createDirectory(
            atPath: runtime.root, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o711])
        chmod(host.stateDirectory, 0o711)
        chmod(runtime.root, 0o711)
        let reporter = runtime.reporter
        // The one long-lived task of this plugin, owned here: stop() cancels it and waits.
        reporting.withLock { $0 = Task { await reporter.run() } }
        await runtime.restoreDirectories()
    }

    func stop() async {
        guard case .success(let runtime) = runtime else { return }
        runtime.disconnectAll()
        runtime.reporter.finish()
        let task = reporting.withLock { task in
            defer { task = nil }
            return task
        }
        task?.cancel()
        await task?.value
    }

    /// The contract's methods. Create, Delete and Restore spawn or wait for processes and
    /// read directories: they run on the blocking pool. The others wait for a keeper's reply
    /// without holding a thread.
    private static func table(_ result: Result<LinuxRuntime, PluginError>) -> MethodTable {
        var methods = MethodTable()
        let contract = BerthContracts.RuntimeContract.self
        @Sendable func runtime() throws -> LinuxRuntime { try result.get() }
        methods.serve(contract.create, blocking: true) { request, _ in try await runtime().create(request) }
        methods.serve(contract.start) { request, _ in try await runtime().start(request) }
        methods.serve(contract.kill) { request, _ in
            try await runtime().signal(request)
            return Google_Protobuf_Empty()
        }
        methods.serve(contract.exec, blocking: true) { request, _ in
            try await runtime().exec(request)
            return Google_Protobuf_Empty()
        }
        methods.serve(contract.resizePty) { request, _ in
            try await runtime().resizePty(request)
            return Google_Protobuf_Empty()
        }
        methods.serve(contract.closeIO) { request, _ in
            try await runtime().closeIO(request)
            return Google_Protobuf_Empty()
        }
        methods.serve(contract.pause) { request, _ in
            try await runtime().pause(request)
            return Google_Protobuf_Empty()
        }
        methods.serve(contract.resume) { request, _ in
            try await runtime().resume(request)
            return Google_Protobuf_Empty()
        }
        methods.serve(contract.pids) { request, _ in try await runtime().pids(request) }
        // Reads a handful of small cgroup files.
        methods.serve(contract.metrics, blocking: true) { request, _ in try runtime().metrics(request) }
        methods.serve(contract.deleteProcess) { request, _ in
            try await runtime().deleteProcess(request)
            return Google_Protobuf_Empty()
        }
        methods.serve(contract.delete, blocking: true) { request, _ in
            try await runtime().delete(request)
            return Google_Protobuf_Empty()
        }
        methods.serve(contract.restore) { _, _ in try await runtime().restore() }
        // Writes a few cgroup files.
        methods.serve(contract.update, blocking: true) { request, _ in
            try runtime().update(request)
            return Google_Protobuf_Empty()
        }
        return methods
    }
}
