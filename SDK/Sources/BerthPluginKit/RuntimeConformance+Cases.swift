import BerthProto
import Foundation
import SwiftProtobuf

extension RuntimeConformance {
    public static let cases: [Case] = lifecycleCases + processCases + restoreCases + badInputCases

    static let contract = BerthContracts.RuntimeContract.self

    /// Create, start, exit, stdio, delete.
    static let lifecycleCases: [Case] = [
        Case(name: "create_thenStartAndExit_reportsStatusOnce") { d in
            let pid = try await d.run("c1", ["sh", "-c", "exit 3"])
            try expect(pid > 0, "Create returns the init's pid")
            let exit = try await d.supervisor.exit(of: "c1")
            try expectEqual(exit.exitStatus, 3, "exit status")
            try expectEqual(exit.pid, pid, "exit pid")
            try expectEqual(exit.namespace, "kit", "exit namespace")
            try expect(exit.exitedAt.seconds > 0, "exit time is set")
            try await Task.sleep(nanoseconds: 300_000_000)
            try expectEqual(d.supervisor.exits.filter { $0.id == "c1" }.count, 1, "Exited reports for one exit")
        },
        Case(name: "stdio_separateStreams_reachTheirFifos") { d in
            let out = try d.fifo("out")
            let err = try d.fifo("err")
            defer {
                close(out.reader)
                close(err.reader)
            }
            try await d.run(
                "c1", ["sh", "-c", "echo to-out; echo to-err >&2; echo more-out"],
                stdio: .with {
                    $0.stdout = out.path
                    $0.stderr = err.path
                })
            try expectEqual(try await Blocking.readToEnd(out.reader), "to-out\nmore-out\n", "stdout")
            try expectEqual(try await Blocking.readToEnd(err.reader), "to-err\n", "stderr")
            try expectEqual(try await d.supervisor.exit(of: "c1").exitStatus, 0, "exit status")
        },
        Case(name: "closeIO_stdinFifo_processReadsEndOfFile") { d in
            let input = try d.fifo("in")
            let out = try d.fifo("out")
            defer {
                close(input.reader)
                close(out.reader)
            }
            try await d.run(
                "c1", ["cat"],
                stdio: .with {
                    $0.stdin = input.path
                    $0.stdout = out.path
                })
            let writer = open(input.path, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
            try expect(writer >= 0, "open the stdin FIFO for writing: errno \(errno)")
            _ = "through stdin\n".withCString { write(writer, $0, strlen($0)) }
            close(writer)
            _ = try await d.call(contract.closeIO, d.process("c1"))
            try expectEqual(try await Blocking.readToEnd(out.reader), "through stdin\n", "stdout of cat")
            try expectEqual(try await d.supervisor.exit(of: "c1").exitStatus, 0, "cat's status after end of file")
        },
        Case(name: "terminal_resizePty_processSeesNewSize") { d in
            let out = try d.fifo("out")
            defer { close(out.reader) }
            // The process waits (up to 10 s) for the new size rather than a fixed time: under
            // load the resize may come later than any fixed sleep.
            let script = "i=0; while [ \"$(stty size 2>/dev/null)\" != '30 100' ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; tty; stty size"
            let spec = d.spec(["sh", "-c", script], id: "c1") { object in
                var process = object["process"] as? [String: Any] ?? [:]
                process["terminal"] = true
                object["process"] = process
            }
            try await d.create(
                "c1", spec: spec,
                stdio: .with {
                    $0.stdout = out.path
                    $0.terminal = true
                })
            _ = try await d.call(contract.start, d.process("c1"))
            _ = try await d.call(
                contract.resizePty,
                .with {
                    $0.process = d.process("c1")
                    $0.width = 100
                    $0.height = 30
                })
            let output = try await Blocking.readToEnd(out.reader).replacingOccurrences(of: "\r\n", with: "\n")
            try expectEqual(output, "/dev/pts/0\n30 100\n", "tty and size seen by the process")
        },
        Case(name: "delete_runningContainer_leavesNothing") { d in
            let pid = try await d.run("c1", ["sleep", "100"])
            try expect(!d.cgroupDirectories("c1").isEmpty, "the container has cgroup directories while it runs")
            _ = try await d.call(contract.delete, d.process("c1"))
            d.forget("c1")
            try expect(try await waitGone(pid), "init \(pid) still runs after Delete")
            try expectEqual(d.stateEntries(), [], "state directories after Delete")
            try expectEqual(d.mountsUnderDirectory(), [], "mounts under the test folder after Delete")
            try expectEqual(d.cgroupDirectories("c1"), [], "cgroup directories after Delete")
            try await expectCode(5, "a second Delete") { _ = try await d.call(contract.delete, d.process("c1")) }
        },
    ]

    /// Signals, exec, pids, pause and resume, metrics.
    static let processCases: [Case] = [
        Case(name: "kill_withSignal_reportsSignalStatus") { d in
            try await d.run("c1", ["sleep", "100"])
            _ = try await d.call(
                contract.kill,
                .with {
                    $0.process = d.process("c1")
                    $0.signal = 9
                })
            try expectEqual(try await d.supervisor.exit(of: "c1").exitStatus, 137, "status after SIGKILL (128+9)")
        },
        Case(name: "kill_all_endsEveryProcess") { d in
            let pid = try await d.run("c1", ["sh", "-c", "sleep 100 & sleep 100"])
            try await Task.sleep(nanoseconds: 300_000_000)
            let pids = try await d.call(contract.pids, d.process("c1")).processes.map(\.pid)
            try expectEqual(
                pids.count, 2,
                "Pids of sh with a background sleep (sh exec'd the last sleep): \(pids); init \(pid), children \(childrenOf(pid)) \(childrenOf(pid).map { (try? String(contentsOfFile: "/proc/\($0)/cgroup", encoding: .utf8)) ?? "" }) init: \((try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)) ?? "")"
            )
            try expect(pids.contains(pid), "Pids lists the init \(pid): \(pids)")
            _ = try await d.call(
                contract.kill,
                .with {
                    $0.process = d.process("c1")
                    $0.signal = 9
                    $0.all = true
                })
            try expectEqual(try await d.supervisor.exit(of: "c1").exitStatus, 137, "init status after kill all")
            for child in pids { try expect(try await waitGone(child), "process \(child) still runs after kill all") }
        },
        Case(name: "exec_ownStatusAndStdout") { d in
            let pid = try await d.run("c1", ["sleep", "100"])
            let out = try d.fifo("xout")
            defer { close(out.reader) }
            let process = try JSONSerialization.data(withJSONObject: RuntimeSpecs.process(["sh", "-c", "echo from-exec; exit 6"]))
            _ = try await d.call(
                contract.exec,
                .with {
                    $0.process = d.process("c1", exec: "x1")
                    $0.spec = process
                    $0.stdio = .with { $0.stdout = out.path }
                })
            let started = try await d.call(contract.start, d.process("c1", exec: "x1"))
            try expect(started.pid > 0 && started.pid != pid, "the exec has its own pid")
            let exit = try await d.supervisor.exit(of: "c1", execID: "x1")
            try expectEqual(exit.exitStatus, 6, "exec exit status")
            try expectEqual(exit.pid, started.pid, "exec exit pid")
            try expectEqual(try await Blocking.readToEnd(out.reader), "from-exec\n", "exec stdout")
            _ = try await d.call(contract.deleteProcess, d.process("c1", exec: "x1"))
            try expect(processRuns(pid), "the init still runs after its exec ended")
            try expect(d.supervisor.exits.allSatisfy { $0.execID == "x1" }, "only the exec exited")
        },
        Case(name: "exec_missingBinary_failsNamingItAndContainerRuns") { d in
            let pid = try await d.run("c1", ["sleep", "100"])
            let missing = try JSONSerialization.data(withJSONObject: RuntimeSpecs.process(["nope-binary"]))
            // A runtime may find out at Exec (set up before START) or only at Start (an OCI
            // runtime's exec runs then): either must fail and name the binary.
            do {
                _ = try await d.call(
                    contract.exec,
                    .with {
                        $0.process = d.process("c1", exec: "x1")
                        $0.spec = missing
                    })
                _ = try await d.call(contract.start, d.process("c1", exec: "x1"))
                throw ConformanceFailure(description: "an exec of a missing binary started")
            } catch let error as PluginCallError {
                try expect(error.message.contains("nope-binary"), "the error names the binary: \(error.message)")
            }
            try expect(processRuns(pid), "the init still runs after a failed exec")
            let fine = try JSONSerialization.data(withJSONObject: RuntimeSpecs.process(["true"]))
            _ = try await d.call(
                contract.exec,
                .with {
                    $0.process = d.process("c1", exec: "x2")
                    $0.spec = fine
                })
            _ = try await d.call(contract.start, d.process("c1", exec: "x2"))
            try expectEqual(try await d.supervisor.exit(of: "c1", execID: "x2").exitStatus, 0, "a later exec's status")
        },
        Case(name: "pause_thenResume_changesStatus") { d in
            try await d.run("c1", ["sleep", "100"])
            _ = try await d.call(contract.pause, d.process("c1"))
            try expectEqual(try await initStatus(d, "c1"), .paused, "status after Pause")
            _ = try await d.call(contract.resume, d.process("c1"))
            try expectEqual(try await initStatus(d, "c1"), .running, "status after Resume")
        },
        Case(name: "metrics_runningContainer_cgroupStatistics") { d in
            try await d.run("c1", ["sleep", "100"])
            // An OCI runtime's init may still be on its way to execve when Start returns: its
            // threads count as tasks in pids.current for a moment.
            let end = Date().addingTimeInterval(3)
            var current: UInt64 = 0
            repeat {
                let data = try await d.call(contract.metrics, d.process("c1")).data
                if data.typeURL == "io.containerd.cgroups.v1.Metrics" {
                    let metrics = try Io_Containerd_Cgroups_V1_Metrics(serializedBytes: [UInt8](data.value))
                    try expect(metrics.memory.usage.usage > 0, "memory usage is counted")
                    current = metrics.pids.current
                } else {
                    try expectEqual(data.typeURL, "io.containerd.cgroups.v2.Metrics", "metrics type URL")
                    current = try Io_Containerd_Cgroups_V2_Metrics(serializedBytes: [UInt8](data.value)).pids.current
                }
                if current != 1 { try await Task.sleep(nanoseconds: 50_000_000) }
            } while current != 1 && Date() < end
            try expectEqual(current, 1, "pids.current of a container running one sleep")
        },
    ]

    /// The pids whose parent is `pid` (for messages).
    static func childrenOf(_ pid: UInt32) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.filter { entry in
            guard UInt32(entry) != nil, let status = try? String(contentsOfFile: "/proc/\(entry)/status", encoding: .utf8) else { return false }
            return status.contains("\nPPid:\t\(pid)\n")
        }
    }

    /// The status of `id`'s init as Restore reports it.
    static func initStatus(_ d: Driver, _ id: String) async throws -> Containerd_V1_Types_Status {
        let restored = try await d.call(contract.restore, Google_Protobuf_Empty())
        guard let container = restored.containers.first(where: { $0.id == id }), let first = container.processes.first else {
            throw ConformanceFailure(description: "Restore does not list \(id)")
        }
        return first.status
    }
}
