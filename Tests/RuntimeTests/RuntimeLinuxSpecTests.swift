import BerthPluginKit
import BerthProto
import Foundation
import Testing

/// What the Linux runtime does with the parts of a spec beyond the common contract: limits,
/// seccomp, OOM reports, fields it must refuse by name, and its plugin config.
@Suite(.serialized) struct RuntimeLinuxSpecTests {
    static let native = #"{"mode":"native"}"#
    static let contract = BerthContracts.RuntimeContract.self

    private func run(_ name: String, config: String = native, _ body: @escaping @Sendable (RuntimeConformance.Driver) async throws -> Void) async throws {
        try await RuntimeConformance.run(
            RuntimeConformance.Case(name: name, run: body), plugin: RuntimeLinuxTests.plugin, id: "linux", configJSON: config,
            rootfs: RuntimeLinuxTests.rootfs)
    }

    @Test(arguments: [native, #"{"mode":"oci"}"#])
    func limits_memoryAndPids_appearInMetrics(config: String) async throws {
        try await run(#function, config: config) { d in
            let spec = d.spec(["sleep", "100"], id: "c1") { object in
                var linux = object["linux"] as! [String: Any]
                var resources = linux["resources"] as! [String: Any]
                resources["memory"] = ["limit": 64 << 20]
                resources["pids"] = ["limit": 10]
                linux["resources"] = resources
                object["linux"] = linux
            }
            try await d.create("c1", spec: spec)
            _ = try await d.call(Self.contract.start, d.process("c1"))
            let data = try await d.call(Self.contract.metrics, d.process("c1")).data
            #expect(data.typeURL == "io.containerd.cgroups.v1.Metrics")
            let metrics = try Io_Containerd_Cgroups_V1_Metrics(serializedBytes: [UInt8](data.value))
            #expect(metrics.memory.usage.limit == 64 << 20)
            #expect(metrics.pids.limit == 10)
        }
    }

    /// An overlay from the snapshotter as the rootfs: writes land in its upper directory, the
    /// lower tree is untouched, and Delete leaves no mount (mode oci mounts it in the host).
    @Test(arguments: [native, #"{"mode":"oci"}"#])
    func rootfs_overlayMount_writesGoToUpperDirectory(config: String) async throws {
        try await run(#function, config: config) { d in
            let upper = d.directory + "/upper"
            let work = d.directory + "/work"
            for folder in [upper, work] { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
            let overlay = Containerd_Types_Mount.with {
                $0.type = "overlay"
                $0.source = "overlay"
                $0.options = ["lowerdir=\(d.rootfs)", "upperdir=\(upper)", "workdir=\(work)"]
            }
            try await d.create("c1", spec: d.spec(["sh", "-c", "echo written > /hello"], id: "c1"), rootfs: [overlay])
            _ = try await d.call(Self.contract.start, d.process("c1"))
            #expect(try await d.supervisor.exit(of: "c1").exitStatus == 0)
            #expect(try String(contentsOfFile: upper + "/hello", encoding: .utf8) == "written\n")
            #expect(!FileManager.default.fileExists(atPath: d.rootfs + "/hello"))
            _ = try await d.call(Self.contract.delete, d.process("c1"))
            d.forget("c1")
            #expect(d.mountsUnderDirectory() == [])
        }
    }

    /// The spec `ctr run --seccomp` sent to containerd 1.6.20 on this machine (recorded from the
    /// bundle's config.json): containerd's default profile, 360 syscall names, ERRNO default.
    static let ctrSeccompSpec = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path + "/Fixtures/ctr-run-seccomp-spec.json"

    @Test(arguments: [native, #"{"mode":"oci"}"#])
    func seccomp_ctrDefaultProfile_runsFiltered(config: String) async throws {
        try await run(#function, config: config) { d in
            let out = try d.fifo("out")
            defer { close(out.reader) }
            var object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.ctrSeccompSpec))) as? [String: Any])
            var process = try #require(object["process"] as? [String: Any])
            process["args"] = ["sh", "-c", "grep Seccomp: /proc/self/status; echo done"]
            process["env"] = ["PATH=/bin"]
            object["process"] = process
            var linux = try #require(object["linux"] as? [String: Any])
            linux["cgroupsPath"] = "/" + d.cgroupPath("c1")
            object["linux"] = linux
            let spec = try JSONSerialization.data(withJSONObject: object)
            try await d.create("c1", spec: spec, stdio: .with { $0.stdout = out.path })
            _ = try await d.call(Self.contract.start, d.process("c1"))
            #expect(try await Blocking.readToEnd(out.reader) == "Seccomp:\t2\ndone\n")
            #expect(try await d.supervisor.exit(of: "c1").exitStatus == 0)
        }
    }

    /// The init's user, hostname and sysctls, and an exec's own OOM score, as the process sees them.
    @Test func process_userHostnameSysctlAndExecScore_seenInside() async throws {
        try await run(#function) { d in
            let out = try d.fifo("out")
            defer { close(out.reader) }
            let input = try d.fifo("in")
            defer { close(input.reader) }
            // The init prints, then waits for end of file on stdin (CloseIO below) and exits.
            let spec = d.spec(["sh", "-c", "id -u; id -g; hostname; cat /proc/sys/net/ipv4/ip_forward; read line"], id: "c1") { object in
                var process = object["process"] as! [String: Any]
                process["user"] = ["uid": 1000, "gid": 1001]
                object["process"] = process
                var linux = object["linux"] as! [String: Any]
                linux["sysctl"] = ["net.ipv4.ip_forward": "1"]
                object["linux"] = linux
            }
            try await d.create(
                "c1", spec: spec,
                stdio: .with {
                    $0.stdin = input.path
                    $0.stdout = out.path
                })
            _ = try await d.call(Self.contract.start, d.process("c1"))
            let xout = try d.fifo("xout")
            defer { close(xout.reader) }
            var process =
                try #require(try JSONSerialization.jsonObject(with: d.spec(["cat", "/proc/self/oom_score_adj"], id: "c1")) as? [String: Any])["process"]
                as! [String: Any]
            process["oomScoreAdj"] = 500
            _ = try await d.call(
                Self.contract.exec,
                .with {
                    $0.process = d.process("c1", exec: "x1")
                    $0.spec = try! JSONSerialization.data(withJSONObject: process)
                    $0.stdio = .with { $0.stdout = xout.path }
                })
            _ = try await d.call(Self.contract.start, d.process("c1", exec: "x1"))
            #expect(try await Blocking.readToEnd(xout.reader) == "500\n")
            _ = try await d.call(Self.contract.closeIO, d.process("c1"))
            #expect(try await Blocking.readToEnd(out.reader) == "1000\n1001\nkit-c1\n1\n")
            #expect(try await d.supervisor.exit(of: "c1").exitStatus == 1)
        }
    }

    /// A user namespace from the spec's mappings: the process sees the maps it was given.
    @Test(arguments: [native, #"{"mode":"oci"}"#])
    func userNamespace_mappings_seenInside(config: String) async throws {
        try await run(#function, config: config) { d in
            let out = try d.fifo("out")
            defer { close(out.reader) }
            let spec = d.spec(["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u"], id: "c1") { object in
                var linux = object["linux"] as! [String: Any]
                var namespaces = linux["namespaces"] as! [[String: Any]]
                namespaces.append(["type": "user"])
                linux["namespaces"] = namespaces
                linux["uidMappings"] = [["containerID": 0, "hostID": 200_000, "size": 65536]]
                linux["gidMappings"] = [["containerID": 0, "hostID": 300_000, "size": 65536]]
                object["linux"] = linux
            }
            try await d.create("c1", spec: spec, stdio: .with { $0.stdout = out.path })
            _ = try await d.call(Self.contract.start, d.process("c1"))
            let lines = try await Blocking.readToEnd(out.reader).split(separator: "\n").map { $0.split(separator: " ").joined(separator: " ") }
            #expect(lines == ["0 200000 65536", "0 300000 65536", "0"])
        }
    }

    /// Twenty containers created at once: every create succeeds, every exit is reported once
    /// with its own status, and deleting them all leaves no state directory.
    @Test func manyContainers_createdAtOnce_eachExitReportedOnce() async throws {
        try await run(#function) { d in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<20 {
                    group.addTask { try await d.run("m\(index)", ["sh", "-c", "exit \(index)"]) }
                }
                try await group.waitForAll()
            }
            for index in 0..<20 {
                #expect(try await d.supervisor.exit(of: "m\(index)").exitStatus == UInt32(index))
            }
            #expect(d.supervisor.exits.count == 20)
            for index in 0..<20 {
                _ = try await d.call(Self.contract.delete, d.process("m\(index)"))
                d.forget("m\(index)")
            }
            #expect(d.stateEntries() == [])
        }
    }

    @Test func seccomp_ruleForMkdir_failsWithErrno() async throws {
        try await run(#function) { d in
            let out = try d.fifo("out")
            defer { close(out.reader) }
            let spec = d.spec(["sh", "-c", "mkdir /tmp/x 2>/dev/null; echo $?"], id: "c1") { object in
                var linux = object["linux"] as! [String: Any]
                linux["seccomp"] = [
                    "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                    "syscalls": [["names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1]],
                ]
                object["linux"] = linux
            }
            try await d.create("c1", spec: spec, stdio: .with { $0.stdout = out.path })
            _ = try await d.call(Self.contract.start, d.process("c1"))
            #expect(try await Blocking.readToEnd(out.reader) == "1\n")
        }
    }

    @Test func oom_memoryLimitExceeded_reportedToSupervisor() async throws {
        try await run(#function) { d in
            let spec = d.spec(["sh", "-c", "x=$(dd if=/dev/zero bs=1M count=64 2>/dev/null | tr '\\0' a); echo survived"], id: "c1") { object in
                var linux = object["linux"] as! [String: Any]
                var resources = linux["resources"] as! [String: Any]
                resources["memory"] = ["limit": 16 << 20, "swap": 16 << 20]
                linux["resources"] = resources
                object["linux"] = linux
            }
            try await d.create("c1", spec: spec)
            _ = try await d.call(Self.contract.start, d.process("c1"))
            let end = Date().addingTimeInterval(15)
            while d.supervisor.outOfMemory.isEmpty, Date() < end { try await Task.sleep(nanoseconds: 50_000_000) }
            #expect(d.supervisor.outOfMemory.map(\.id).first == "c1")
        }
    }

    /// Each field the keeper cannot honour is refused by name, and nothing is left behind.
    @Test(arguments: [
        ("hooks", #"{"hooks": {"prestart": [{"path": "/bin/true"}]}}"#),
        ("linux.namespaces mount path", #"{"linux.namespaces": [{"type": "mount", "path": "/proc/1/ns/mnt"}]}"#),
        ("linux.resources.blockIO", #"{"linux.resources": {"blockIO": {"weight": 10}}}"#),
        ("linux.seccomp.flags", #"{"linux.seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"]}}"#),
        ("process.apparmorProfile", #"{"process.apparmorProfile": "docker-default"}"#),
        ("linux.cgroupsPath", #"{"linux.cgroupsPath": "system.slice:berth:c1"}"#),
    ])
    func create_unsupportedField_refusedByName(field: String, change: String) async throws {
        try await run(#function) { d in
            let changes = try #require(try JSONSerialization.jsonObject(with: Data(change.utf8)) as? [String: Any])
            let spec = d.spec(["true"], id: "c1") { object in
                for (path, value) in changes { Self.set(&object, path: path.split(separator: ".").map(String.init), value) }
            }
            try await RuntimeConformance.expectRefusal(d, code: 3, mentioning: ["kit/c1", field]) { try await d.create("c1", spec: spec) }
        }
    }

    private static func set(_ object: inout [String: Any], path: [String], _ value: Any) {
        guard path.count > 1 else {
            object[path[0]] = value
            return
        }
        var inner = object[path[0]] as? [String: Any] ?? [:]
        set(&inner, path: Array(path.dropFirst()), value)
        object[path[0]] = inner
    }

    @Test(arguments: [
        (#"{"mode":"vm"}"#, "mode \"vm\""),
        (#"{"keeper":"/nonexistent/berth-keeper"}"#, "keeper /nonexistent/berth-keeper"),
        (#"{"mode":"oci","oci_binary":"no-such-runc"}"#, #"exec: "no-such-runc": executable file not found in $PATH"#),
    ])
    func start_badConfig_failsNamingTheKey(config: String, mentions: String) async throws {
        let directory = NSTemporaryDirectory() + "rtkit-config-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let instance = try await PluginUnderTest.start(
                path: RuntimeLinuxTests.plugin, type: "io.containerd.runtime.v2", id: "linux", directory: directory, configJSON: config)
            await instance.stop()
            Issue.record("the plugin started with \(config)")
        } catch let error as PluginCallError {
            #expect(error.message.contains(mentions), "\(error.message)")
        }
    }
}
