import BerthProto
import Foundation
import SwiftProtobuf

extension RuntimeConformance {
    /// A new instance on the same directories finds what the previous one left.
    static let restoreCases: [Case] = [
        Case(name: "restore_afterRestart_containerStillRunsWithSamePid") { d in
            let pid = try await d.run("c1", ["sleep", "100"])
            await d.stopInstance()
            try expect(processRuns(pid), "the init runs while no runtime instance does")
            try await d.startInstance()
            let restored = try await d.call(contract.restore, Google_Protobuf_Empty())
            try expectEqual(restored.containers.map(\.id), ["c1"], "containers restored")
            let process = restored.containers[0].processes.first
            try expectEqual(process?.pid, pid, "restored init pid")
            try expectEqual(process?.status, .running, "restored init status")
            _ = try await d.call(
                contract.kill,
                .with {
                    $0.process = d.process("c1")
                    $0.signal = 9
                })
            try expectEqual(try await d.supervisor.exit(of: "c1").exitStatus, 137, "the restored container's exit is reported")
        },
        Case(name: "restore_exitWhileNoInstanceRuns_reportedOnceAfterAck") { d in
            try await d.run("c1", ["sh", "-c", "sleep 0.5; exit 4"])
            await d.stopInstance()
            try await Task.sleep(nanoseconds: 1_500_000_000)
            try expect(d.supervisor.exits.isEmpty, "no exit reported while no instance runs")
            // The first report is refused (a supervisor still starting): it must be sent again.
            d.supervisor.failNext(1)
            try await d.startInstance()
            let exit = try await d.supervisor.exit(of: "c1")
            try expectEqual(exit.exitStatus, 4, "status of the exit that happened while no instance ran")
            try expectEqual(d.supervisor.refused.count, 1, "refused reports")
            let restored = try await d.call(contract.restore, Google_Protobuf_Empty())
            let process = restored.containers.first { $0.id == "c1" }?.processes.first
            try expectEqual(process?.status, .stopped, "restored status")
            try expectEqual(process?.exit.exitStatus, 4, "restored exit status")
            // Acknowledged exits are forgotten: another restart reports nothing new.
            try await Task.sleep(nanoseconds: 300_000_000)
            await d.stopInstance()
            try await d.startInstance()
            try await Task.sleep(nanoseconds: 1_000_000_000)
            try expectEqual(d.supervisor.exits.filter { $0.id == "c1" }.count, 1, "Exited reports accepted for one exit over two restarts")
        },
    ]

    /// Requests a runtime must refuse, leaving nothing behind.
    static let badInputCases: [Case] = [
        Case(name: "create_invalidJSON_invalidArgumentNamingContainer") { d in
            try await expectRefusal(d, code: 3, mentioning: ["kit/c1"]) {
                try await d.create("c1", spec: Data("{not json".utf8))
            }
        },
        Case(name: "create_noProcessArgs_invalidArgumentNamingField") { d in
            let spec = d.spec([], id: "c1") { object in
                var process = object["process"] as? [String: Any] ?? [:]
                process.removeValue(forKey: "args")
                object["process"] = process
            }
            try await expectRefusal(d, code: 3, mentioning: ["kit/c1", "process.args"]) { try await d.create("c1", spec: spec) }
        },
        Case(name: "create_unknownSpecMajorVersion_invalidArgument") { d in
            let spec = d.spec(["true"], id: "c1") { $0["ociVersion"] = "2.0.0" }
            try await expectRefusal(d, code: 3, mentioning: ["kit/c1", "ociVersion"]) { try await d.create("c1", spec: spec) }
        },
        Case(name: "create_missingBinary_errorNamesIt") { d in
            try await expectRefusal(d, code: 5, mentioning: ["kit/c1", "nope-binary", "executable file not found in $PATH"]) {
                try await d.create("c1", spec: d.spec(["nope-binary"], id: "c1"))
            }
            try expectEqual(d.cgroupDirectories("c1"), [], "cgroup directories after a failed create")
        },
        Case(name: "create_duplicateID_alreadyExists") { d in
            try await d.create("c1", spec: d.spec(["sleep", "100"], id: "c1"))
            try await expectCode(6, "a second Create of c1") { try await d.create("c1", spec: d.spec(["true"], id: "c1")) }
            let restored = try await d.call(contract.restore, Google_Protobuf_Empty())
            try expectEqual(restored.containers.first?.processes.first?.status, .created, "the first c1 is untouched")
        },
        Case(name: "requests_unknownContainer_notFound") { d in
            try await expectCode(5, "Start of an unknown container") { _ = try await d.call(contract.start, d.process("ghost")) }
            try await expectCode(5, "Delete of an unknown container") { _ = try await d.call(contract.delete, d.process("ghost")) }
        },
    ]

    /// Runs `body`, expects it to fail with `code` and a message holding every one of
    /// `mentioning`, and checks that no state directory or mount was left.
    public static func expectRefusal(_ d: Driver, code: Int32, mentioning: [String], _ body: () async throws -> Void) async throws {
        do {
            try await body()
            throw ConformanceFailure(description: "expected code \(code), but the call succeeded")
        } catch let error as PluginCallError {
            try expectEqual(error.code, code, "error code (message: \(error.message))")
            for part in mentioning {
                try expect(error.message.contains(part), "the message \(error.message.debugDescription) mentions \(part.debugDescription)")
            }
        }
        try expectEqual(d.stateEntries(), [], "state directories after a refused create")
        try expectEqual(d.mountsUnderDirectory(), [], "mounts left after a refused create")
    }
}
