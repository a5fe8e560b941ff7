import BerthPluginKit
import BerthProto
import Foundation
import SwiftProtobuf
import Testing

/// The Linux runtime's own restore rules (its state directories and keepers), and Update.
@Suite(.serialized) struct RuntimeLinuxRestoreTests {
    static let contract = BerthContracts.RuntimeContract.self

    private func run(_ name: String, config: String = #"{"mode":"native"}"#, _ body: @escaping @Sendable (RuntimeConformance.Driver) async throws -> Void)
        async throws
    {
        try await RuntimeConformance.run(
            RuntimeConformance.Case(name: name, run: body), plugin: RuntimeLinuxTests.plugin, id: "linux", configJSON: config,
            rootfs: RuntimeLinuxTests.rootfs)
    }

    /// The pid of the only container's keeper.
    private static func keeperPID(_ d: RuntimeConformance.Driver) throws -> pid_t {
        let entry = try #require(d.stateEntries().first)
        let text = try String(contentsOfFile: "\(d.directory)/state/containers/\(entry)/keeper.pid", encoding: .utf8)
        return try #require(pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    private static func killKeeper(_ d: RuntimeConformance.Driver) async throws {
        let keeper = try keeperPID(d)
        #expect(kill(keeper, SIGKILL) == 0)
        let end = Date().addingTimeInterval(5)
        while (try? String(contentsOfFile: "/proc/\(keeper)/stat", encoding: .utf8)).map({ !$0.contains(") Z ") }) ?? false, Date() < end {
            try await Task.sleep(nanoseconds: 20_000_000)
        }
    }

    @Test func restore_keeperKilledWhileStopped_containerCleanedUp() async throws {
        try await run(#function) { d in
            let pid = try await d.run("c1", ["sleep", "100"])
            await d.stopInstance()
            try await Self.killKeeper(d)
            try await d.startInstance()
            d.forget("c1")
            #expect(d.stateEntries() == [])
            #expect(d.cgroupDirectories("c1") == [])
            let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
            #expect(stat.isEmpty || stat.contains(") Z "), "the init \(pid) was killed with its cgroup")
            #expect(try await d.call(Self.contract.restore, Google_Protobuf_Empty()).containers.isEmpty)
        }
    }

    @Test func restore_keeperKilledAfterInitExit_exitReportedThenDeleteLeavesNothing() async throws {
        try await run(#function) { d in
            d.supervisor.failNext(1_000_000)
            try await d.run("c1", ["sh", "-c", "exit 5"])
            let end = Date().addingTimeInterval(10)
            while d.supervisor.refused.isEmpty, Date() < end { try await Task.sleep(nanoseconds: 20_000_000) }
            #expect(d.supervisor.refused.first?.exitStatus == 5)
            await d.stopInstance()
            try await Self.killKeeper(d)
            d.supervisor.failNext(0)
            try await d.startInstance()
            #expect(try await d.supervisor.exit(of: "c1").exitStatus == 5)
            let restored = try await d.call(Self.contract.restore, Google_Protobuf_Empty())
            #expect(restored.containers.first?.processes.first?.status == .stopped)
            #expect(restored.containers.first?.processes.first?.exit.exitStatus == 5)
            _ = try await d.call(Self.contract.delete, d.process("c1"))
            d.forget("c1")
            #expect(d.stateEntries() == [])
            #expect(d.cgroupDirectories("c1") == [])
        }
    }

    /// The supervisor had the init running: told nothing, it would list it running for ever.
    @Test func keeperDiesWhileInstanceRuns_exit255ReportedAndDeleteLeavesNothing() async throws {
        try await run(#function) { d in
            try await d.run("c1", ["sleep", "100"])
            try await Self.killKeeper(d)
            #expect(try await d.supervisor.exit(of: "c1").exitStatus == 255)
            #expect(d.cgroupDirectories("c1") == [])
            let restored = try await d.call(Self.contract.restore, Google_Protobuf_Empty())
            #expect(restored.containers.first?.processes.first?.status == .stopped)
            #expect(restored.containers.first?.processes.first?.exit.exitStatus == 255)
            _ = try await d.call(Self.contract.delete, d.process("c1"))
            d.forget("c1")
            #expect(d.stateEntries() == [])
        }
    }

    @Test func restore_halfCreatedDirectories_removed() async throws {
        try await run(#function) { d in
            await d.stopInstance()
            let root = d.directory + "/state/containers"
            let record = #"{"namespace":"kit","id":"half","mode":"native","cgroupPath":"berth-kit-none/half","mountedRootfs":false}"#
            try FileManager.default.createDirectory(atPath: root + "/00000000000000aa", withIntermediateDirectories: true)
            try record.write(toFile: root + "/00000000000000aa/container.json", atomically: true, encoding: .utf8)
            try FileManager.default.createDirectory(atPath: root + "/00000000000000bb", withIntermediateDirectories: true)
            try await d.startInstance()
            #expect(d.stateEntries() == [])
        }
    }

    @Test(arguments: [#"{"mode":"native"}"#, #"{"mode":"oci"}"#])
    func update_memoryAndPids_writtenToCgroup(config: String) async throws {
        try await run(#function, config: config) { d in
            try await d.run("c1", ["sleep", "100"])
            var resources = Google_Protobuf_Any()
            resources.typeURL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
            resources.value = Data(#"{"memory":{"limit":33554432},"pids":{"limit":20},"cpu":{"shares":512}}"#.utf8)
            _ = try await d.call(
                Self.contract.update,
                .with {
                    $0.process = d.process("c1")
                    $0.resources = resources
                })
            let data = try await d.call(Self.contract.metrics, d.process("c1")).data
            let metrics = try Io_Containerd_Cgroups_V1_Metrics(serializedBytes: [UInt8](data.value))
            #expect(metrics.memory.usage.limit == 33_554_432)
            #expect(metrics.pids.limit == 20)
            let shares = try String(contentsOfFile: "/sys/fs/cgroup/cpu/\(d.cgroupPath("c1"))/cpu.shares", encoding: .utf8)
            #expect(shares == "512\n")
            resources.value = Data(#"{"blockIO":{"weight":10}}"#.utf8)
            await #expect(throws: PluginCallError.self) {
                _ = try await d.call(
                    Self.contract.update,
                    .with {
                        $0.process = d.process("c1")
                        $0.resources = resources
                    })
            }
        }
    }
}
