import BerthPluginSDK
import BerthProto
import Foundation
import SwiftProtobuf
import Synchronization

/// The runtime contract (`BerthContracts.RuntimeContract`, Protos/berth/runtime/v1/runtime.proto)
/// as runnable cases: one named case per rule, driving a runtime plugin through the C ABI alone,
/// with the test playing the kernel's supervisor (`SupervisorRecorder`). Any Linux runtime,
/// ours or a third party's, runs them with only the SDK:
///
///     try BusyboxRootfs.make(at: "/tmp/rootfs")
///     for rule in RuntimeConformance.cases {
///         try await RuntimeConformance.run(rule, plugin: "/path/libX.so", id: "linux", rootfs: "/tmp/rootfs")
///     }
///
/// Containers run busybox from `rootfs` (bound as the request's rootfs mount), in namespace
/// "kit", with cgroupsPath /berth-kit-RUN/ID. The cases need root and Linux.
public enum RuntimeConformance {
    /// One rule and its check.
    public struct Case: Sendable, CustomStringConvertible {
        public let name: String
        public let run: @Sendable (Driver) async throws -> Void
        public var description: String { name }

        /// A rule named `name` (unit_condition_expectation) checked by `run`.
        public init(name: String, run: @escaping @Sendable (Driver) async throws -> Void) {
            self.name = name
            self.run = run
        }
    }

    /// Runs `rule` against a fresh instance of runtime `id` from `plugin` with `configJSON`, in
    /// a temporary folder; whatever the case left is deleted and the folder removed afterwards.
    public static func run(
        _ rule: Case, plugin: String, id: String, type: String = "io.containerd.runtime.v2",
        configJSON: String = "{}", rootfs: String
    ) async throws {
        let directory = NSTemporaryDirectory() + "rtkit-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let driver = try await Driver(
            plugin: plugin, type: type, id: id, configJSON: configJSON, directory: directory, rootfs: rootfs)
        do {
            try await rule.run(driver)
        } catch {
            await driver.tearDown()
            throw error
        }
        await driver.tearDown()
    }

    /// The runtime under test, with the calls and checks the cases make.
    public final class Driver: Sendable {
        /// Plays the kernel's supervisor for every instance of this run.
        public let supervisor = SupervisorRecorder()
        /// The containerd namespace of every request.
        public let namespace = "kit"
        /// The run's folder: the instance's root and state folders, FIFOs, scratch files.
        public let directory: String
        /// The busybox tree bound as each container's rootfs unless a case gives mounts.
        public let rootfs: String
        /// The cgroup parent of this run's containers: its own, so runs in parallel never share one.
        public let cgroupParent = "berth-kit-\(UUID().uuidString.prefix(8))"
        private let plugin: String
        private let type: String
        private let id: String
        private let configJSON: String
        private let instance: Mutex<PluginUnderTest?>
        private let created = Mutex([String]())

        init(plugin: String, type: String, id: String, configJSON: String, directory: String, rootfs: String) async throws {
            self.plugin = plugin
            self.type = type
            self.id = id
            self.configJSON = configJSON
            self.directory = directory
            self.rootfs = rootfs
            instance = Mutex(nil)
            try await startInstance()
        }

        /// The plugin instance now running.
        public var runtime: PluginUnderTest {
            get throws {
                guard let current = instance.withLock({ $0 }) else { throw ConformanceFailure(description: "no runtime instance runs") }
                return current
            }
        }

        /// Starts a new instance on the same directories (as berthd does after a restart).
        public func startInstance() async throws {
            let started = try await PluginUnderTest.start(
                path: plugin, type: type, id: id, directory: directory, configJSON: configJSON, hostCalls: supervisor.handler)
            instance.withLock { $0 = started }
        }

        /// Stops the running instance; its containers are expected to keep running.
        public func stopInstance() async {
            let current = instance.withLock { instance in
                defer { instance = nil }
                return instance
            }
            await current?.stop()
        }

        /// Deletes what the case left, then stops the instance.
        func tearDown() async {
            if (try? runtime) == nil { try? await startInstance() }
            let ids = created.withLock { $0 }
            for id in ids {
                _ = try? await call(
                    BerthContracts.RuntimeContract.kill,
                    .with {
                        $0.process = process(id)
                        $0.signal = 9
                        $0.all = true
                    })
                _ = try? await call(BerthContracts.RuntimeContract.delete, process(id))
            }
            await stopInstance()
            // This run's parent cgroups, which the runtime made for its containers.
            let root = "/sys/fs/cgroup"
            let hierarchies = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
            for parent in ([root] + hierarchies.map { "\(root)/\($0)" }).map({ "\($0)/\(cgroupParent)" }) { rmdir(parent) }
        }

        /// Calls one contract method in namespace "kit".
        public func call<Request, Response>(_ method: ContractMethod<Request, Response>, _ request: Request) async throws -> Response {
            try await runtime.call(method, request, namespace: namespace)
        }

        /// Names process `exec` ("" for the init) of container `id` in the kit's namespace.
        public func process(_ id: String, exec: String = "") -> Berth_Runtime_V1_ProcessRequest {
            .with {
                $0.namespace = namespace
                $0.id = id
                $0.execID = exec
            }
        }

        /// The cgroup path (relative) the kit gives container `id`.
        public func cgroupPath(_ id: String) -> String { "\(cgroupParent)/\(id)" }

        /// A spec like ctr's default one for `args`, as JSON; `edit` may change the object.
        public func spec(_ args: [String], id: String, edit: (inout [String: Any]) -> Void = { _ in }) -> Data {
            var object = RuntimeSpecs.defaultSpec(args: args, hostname: "kit-" + id, cgroupsPath: "/" + cgroupPath(id))
            edit(&object)
            return (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
        }

        /// Creates `id` from `spec` with `rootfs` mounts, by default a bind of the kit's busybox tree.
        @discardableResult
        public func create(
            _ id: String, spec: Data, stdio: Berth_Runtime_V1_Stdio = .init(), rootfs mounts: [Containerd_Types_Mount]? = nil
        ) async throws -> UInt32 {
            let response = try await call(
                BerthContracts.RuntimeContract.create,
                .with {
                    $0.namespace = namespace
                    $0.id = id
                    $0.spec = spec
                    $0.rootfs =
                        mounts ?? [
                            .with {
                                $0.type = "bind"
                                $0.source = rootfs
                                $0.options = ["rbind", "rw"]
                            }
                        ]
                    $0.stdio = stdio
                    $0.runtimeName = "io.containerd.runc.v2"
                })
            created.withLock { $0.append(id) }
            return response.pid
        }

        /// Creates and starts `id` running `args`; returns the init's pid.
        @discardableResult
        public func run(_ id: String, _ args: [String], stdio: Berth_Runtime_V1_Stdio = .init()) async throws -> UInt32 {
            let pid = try await create(id, spec: spec(args, id: id), stdio: stdio)
            let started = try await call(BerthContracts.RuntimeContract.start, process(id))
            try expectEqual(started.pid, pid, "Start's pid is Create's pid")
            return pid
        }

        /// A FIFO in the case's folder, and a non-blocking reader on it opened before use.
        public func fifo(_ name: String) throws -> (path: String, reader: Int32) {
            let path = directory + "/" + name
            try expect(mkfifo(path, 0o600) == 0, "mkfifo \(path): errno \(errno)")
            let reader = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
            try expect(reader >= 0, "open \(path): errno \(errno)")
            return (path, reader)
        }

        /// The entries of the runtime's state folder (per-container directories).
        public func stateEntries() -> [String] {
            let root = directory + "/state/containers"
            return ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted()
        }

        /// Lines of /proc/self/mountinfo that mention the case's folder.
        public func mountsUnderDirectory() -> [String] {
            let text = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
            return text.split(separator: "\n").map(String.init).filter { $0.contains(directory) }
        }

        /// The cgroup directories of `id` that exist on any hierarchy.
        public func cgroupDirectories(_ id: String) -> [String] {
            let root = "/sys/fs/cgroup"
            let hierarchies = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
            let candidates = [root + "/" + cgroupPath(id)] + hierarchies.map { "\(root)/\($0)/\(cgroupPath(id))" }
            return candidates.filter { FileManager.default.fileExists(atPath: $0) }
        }

        /// Forget `id` in teardown (the case deleted it itself).
        public func forget(_ id: String) {
            created.withLock { $0.removeAll { $0 == id } }
        }
    }
}

/// OCI specs as ctr's default (containerd oci.populateDefaultUnixSpec) makes them.
enum RuntimeSpecs {
    static let capabilities = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID",
        "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
    ]

    static func process(_ args: [String]) -> [String: Any] {
        [
            "terminal": false, "user": ["uid": 0, "gid": 0], "args": args, "env": ["PATH=/bin:/usr/bin"], "cwd": "/",
            "capabilities": ["bounding": capabilities, "effective": capabilities, "permitted": capabilities],
            "rlimits": [["type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024]], "noNewPrivileges": true,
        ]
    }

    static func defaultSpec(args: [String], hostname: String, cgroupsPath: String) -> [String: Any] {
        let mounts: [[String: Any]] = [
            ["destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]],
            ["destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]],
            [
                "destination": "/dev/pts", "type": "devpts", "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
            ],
            ["destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]],
            ["destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]],
            ["destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]],
        ]
        let linux: [String: Any] = [
            "resources": ["devices": [["allow": false, "access": "rwm"]]],
            "cgroupsPath": cgroupsPath,
            "namespaces": ["pid", "ipc", "uts", "mount", "network"].map { ["type": $0] },
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        ]
        return [
            "ociVersion": "1.1.0", "process": process(args), "root": ["path": "rootfs"], "hostname": hostname,
            "mounts": mounts, "linux": linux,
        ]
    }
}
