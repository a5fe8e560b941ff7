import BerthAPI
import BerthProto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwiftProtobuf
import Testing

/// Containers across `kill -9` of berthd: kills in the middle of create, start, exec and delete;
/// exits while the daemon is down; the restart monitor's policies. Each test names its daemon's
/// directory, restarts berthd on it, and checks that nothing is left behind.
@Suite(.serialized) struct RuntimeSurvivalTests {
    typealias Tasks = Containerd_Services_Tasks_V1_Tasks.Client<HTTP2ClientTransport.Posix>
    typealias Events = Containerd_Services_Events_V1_Events.Client<HTTP2ClientTransport.Posix>
    /// A namespace of its own, so cgroups (berth/NAMESPACE/ID) cannot meet other suites' ones.
    static let namespace = "survival"
    static let metadata: Metadata = ["containerd-namespace": "survival"]
    static let image = CtrTasksTests.image

    // MARK: - 1. Kills in the middle of create, start, exec and delete

    @Test func killDuringRunExecDelete_restart_eachTaskRunningOrStoppedAndNothingLeft() throws {
        let directory = NSTemporaryDirectory() + "survival-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var daemon = try Self.daemonWithImage(directory: directory)
        let delays: [UInt32] = [0, 45, 95, 150, 220, 300]
        var interrupted = [String]()
        var repairs = [String]()
        // Six rounds at least; more (up to twelve) while too few kills landed mid-command, which
        // on a loaded machine a fixed schedule cannot promise.
        var round = 0
        while round < delays.count || (round < 2 * delays.count && (interrupted.count < 4 || Set(interrupted).count < 2)) {
            defer { round += 1 }
            let worker = Worker(daemon: daemon, round: round)
            Thread.detachNewThread { worker.loop() }
            // Once the loop is under way (however loaded the machine), kill at a varying point.
            for _ in 0..<600 where worker.finished < 3 { usleep(20_000) }
            usleep(delays[round % delays.count] * 1000)
            let inFlight = worker.killNow()
            #expect(daemon.waitExit() == SIGKILL, "round \(round): berthd was killed, not stopped")
            // A `ctr tasks exec` cut between Exec and Start waits for its output until the exec
            // is undone, which the restarted daemon does (as with containerd, ctr's FIFOs stay
            // open while the process that holds them lives): restart first if it is still out.
            var outcome = worker.waitDone(timeout: .seconds(5))
            daemon = try Daemon(directory: directory)
            try daemon.waitReady()
            if outcome == nil {
                outcome = worker.waitDone(timeout: .seconds(60))
                if outcome == nil {
                    Issue.record("round \(round): \(inFlight ?? "?") still runs 60 s after the restart")
                    worker.stopCommand()
                    outcome = worker.waitDone(timeout: .seconds(10))
                }
            }
            // The kill landed mid-command when the command running at that instant failed.
            if let inFlight, case let last?? = outcome, last.command == inFlight, last.status != 0 { interrupted.append(inFlight) }
            #expect(worker.unexpected.isEmpty, "round \(round): commands failed while berthd ran: \(worker.unexpected)")
            repairs += daemon.log.split(separator: "\n").filter { $0.contains("level=warning") || $0.contains("undoing") }.map(String.init)
            try Self.verifyAfterRestart(daemon, round: round)
        }
        defer { _ = daemon.stop() }
        // Remove what is left, then nothing of the daemon's containers may remain.
        for row in try Self.tasks(daemon) where row.last == "RUNNING" || row.last == "CREATED" {
            #expect(try Self.ctr(daemon, "tasks", "kill", "-s", "SIGKILL", row[0]).status == 0)
            try Self.waitFor(daemon, row[0], status: "STOPPED")
        }
        for row in try Self.tasks(daemon) { #expect(try Self.ctr(daemon, "tasks", "delete", row[0]).status == 0) }
        for id in try Self.containers(daemon) { #expect(try Self.ctr(daemon, "containers", "rm", id).status == 0) }
        try Self.expectNothingLeft(daemon, running: [])
        print("survival: in flight at the kills: \(interrupted); repairs after restarts: \(repairs)")
        // The kills must land mid-command (at least 4 rounds, of at least 2 kinds), or the test
        // shows nothing.
        #expect(interrupted.count >= 4, "kills landed between commands: \(interrupted)")
        #expect(Set(interrupted).count >= 2, "kills landed in one kind of command only: \(interrupted)")
        #expect(!daemon.log.contains("level=error"), "errors after the last restart:\n\(daemon.log)")
    }

    /// After a restart: every task is running (its pid alive, running `sleep 1000`), created or
    /// stopped; stopped and created tasks are deleted, as are containers without a task; then a
    /// survivor takes an exec, and keepers, state directories and cgroups match the survivors.
    static func verifyAfterRestart(_ daemon: Daemon, round: Int) throws {
        var running = [String]()
        for row in try tasks(daemon) {
            let (id, status) = (row[0], row.last ?? "")
            switch status {
            case "RUNNING":
                let pid = try #require(Int32(row[1]))
                #expect(Self.alive(pid), "round \(round): \(id) is listed running, its pid \(pid) is gone")
                let command = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)
                #expect(command == "sleep\u{0}1000\u{0}", "round \(round): \(id) pid \(pid) runs \(command ?? "nothing")")
                running.append(id)
            case "STOPPED", "CREATED":
                // A created task is killed first: ctr refuses to delete it (as with containerd).
                if status == "CREATED" {
                    #expect(try ctr(daemon, "tasks", "kill", "-s", "SIGKILL", id).status == 0, "round \(round): kill of created \(id)")
                    try waitFor(daemon, id, status: "STOPPED")
                }
                let deleted = try ctr(daemon, "tasks", "delete", id)
                #expect(deleted.status == 0, "round \(round): delete of \(status) \(id): \(deleted.stderr)")
            default:
                Issue.record("round \(round): task \(id) is \(status) after the restart")
            }
        }
        for id in try containers(daemon) where !running.contains(id) {
            let removed = try ctr(daemon, "containers", "rm", id)
            #expect(removed.status == 0, "round \(round): containers rm \(id): \(removed.stderr)")
        }
        if let survivor = running.first {
            let exec = try ctr(daemon, "tasks", "exec", "--exec-id", "after-\(round)", survivor, "/bin/sh", "-c", "exit 6")
            #expect(exec.status == 6, "round \(round): exec in \(survivor) after the restart: \(exec.stderr)")
        }
        try expectNothingLeft(daemon, running: running, round: round)
    }

    /// Keepers, runtime state directories and cgroups of `daemon` are exactly those of `running`;
    /// no mount under the daemon's directory.
    static func expectNothingLeft(_ daemon: Daemon, running: [String], round: Int = -1) throws {
        #expect(try CtrTasksTests.keeperCount(daemon) == running.count, "round \(round): keepers for \(running)")
        let stateRoot = daemon.directory + "/state/io.containerd.runtime.v2.linux/containers"
        let states = (try? FileManager.default.contentsOfDirectory(atPath: stateRoot)) ?? []
        #expect(states.count == running.count, "round \(round): state directories \(states) for \(running)")
        let mounts = try String(contentsOfFile: "/proc/mounts", encoding: .utf8).split(separator: "\n")
            .filter { $0.contains(daemon.directory + "/") }
        #expect(mounts.isEmpty, "round \(round): mounts left: \(mounts)")
        var cgroups = Set<String>()
        for hierarchy in (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? [] {
            // ctr's spec names /NAMESPACE/ID; without one the runtime uses berth/NAMESPACE/ID.
            for folder in ["/sys/fs/cgroup/\(hierarchy)/\(namespace)", "/sys/fs/cgroup/\(hierarchy)/berth/\(namespace)"] {
                for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] {
                    var isFolder: ObjCBool = false
                    if FileManager.default.fileExists(atPath: folder + "/" + name, isDirectory: &isFolder), isFolder.boolValue { cgroups.insert(name) }
                }
            }
        }
        #expect(cgroups == Set(running), "round \(round): cgroups \(cgroups.sorted()) for \(running)")
    }

    /// Loops `ctr run -d`, `ctr tasks exec` and, for every other container, kill, delete and
    /// `containers rm`, until the test kills berthd; notes the command running at that instant.
    final class Worker: @unchecked Sendable {
        let daemon: Daemon
        let round: Int
        private let lock = NSCondition()
        private var current: String?
        private var killed = false
        private var done = false
        private var last: (command: String, status: Int32)?
        private var running: Process?
        private var count = 0
        private(set) var unexpected = [String]()

        init(daemon: Daemon, round: Int) {
            self.daemon = daemon
            self.round = round
        }

        var finished: Int { lock.withLock { count } }

        /// Kills berthd; returns the command that was running then, if any.
        func killNow() -> String? {
            lock.withLock {
                kill(daemon.process.processIdentifier, SIGKILL)
                killed = true
                return current
            }
        }

        /// Waits up to `timeout` for the loop to end; returns the last command it ran and its
        /// status, or nil when the loop still runs.
        func waitDone(timeout: Duration) -> (command: String, status: Int32)?? {
            let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
            let deadline = Date(timeIntervalSinceNow: seconds)
            lock.lock()
            defer { lock.unlock() }
            while !done { if !lock.wait(until: deadline) { return nil } }
            return .some(last)
        }

        /// Kills the ctr command in flight.
        func stopCommand() {
            lock.withLock {
                if let process = running, process.isRunning { kill(process.processIdentifier, SIGKILL) }
            }
        }

        func loop() {
            defer {
                lock.withLock {
                    done = true
                    lock.broadcast()
                }
            }
            for i in 0..<10_000 {
                let id = "r\(round)c\(i)"
                guard step("run", ["run", "-d", RuntimeSurvivalTests.image, id, "sleep", "1000"], expect: 0),
                    step("exec", ["tasks", "exec", "--exec-id", "x\(i)", id, "/bin/sh", "-c", "exit 2"], expect: 2)
                else { return }
                guard i % 2 == 0 else { continue }
                guard step("kill", ["tasks", "kill", "-s", "SIGKILL", id], expect: 0) else { return }
                var stopped = false
                while !stopped {
                    guard let listed = try? daemon.ctr(["tasks", "ls"], namespace: RuntimeSurvivalTests.namespace) else { return }
                    if lock.withLock({ killed }) { return }
                    stopped =
                        listed.stdout.contains("\(id) ") && listed.stdout.split(separator: "\n").contains { $0.hasPrefix("\(id) ") && $0.hasSuffix("STOPPED") }
                    if !stopped { usleep(10_000) }
                }
                guard step("delete", ["tasks", "delete", id], expect: 0),
                    step("rm", ["containers", "rm", id], expect: 0)
                else { return }
            }
        }

        /// Runs one ctr command; false once berthd was killed (or the command failed).
        private func step(_ name: String, _ arguments: [String], expect status: Int32) -> Bool {
            lock.withLock { current = name }
            let result = try? daemon.ctr(arguments, namespace: RuntimeSurvivalTests.namespace) { process in
                self.lock.withLock { self.running = process }
            }
            return lock.withLock {
                current = nil
                running = nil
                last = (name, result?.status ?? -1)
                if killed { return false }
                count += 1
                guard result?.status == status else {
                    unexpected.append("\(arguments.joined(separator: " ")): \(result?.status ?? -1) \(result?.stderr ?? "")")
                    return false
                }
                return true
            }
        }
    }

    // MARK: - 2 and 3. Exits while berthd is down; survivors after the restart

    @Test func exitsWhileDown_restart_eachStoppedWithItsStatusOnceAndWaitReissuedReturnsIt() async throws {
        let directory = NSTemporaryDirectory() + "survival-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var daemon = try Self.daemonWithImage(directory: directory)
        let statuses: [String: UInt32] = ["q0": 0, "q3": 3, "q42": 42]
        // They exit when the test says so (a file appears in a folder bound into them), not
        // after a fixed time: on a busy machine the setup below can take longer than any sleep.
        let trigger = directory + "/trigger"
        try FileManager.default.createDirectory(atPath: trigger, withIntermediateDirectories: true)
        for (id, status) in statuses.sorted(by: { $0.key < $1.key }) {
            let started = try Self.ctr(
                daemon, "run", "-d", "--mount", "type=bind,src=\(trigger),dst=/trigger,options=rbind:ro", Self.image, id,
                "/bin/sh", "-c", "while ! cat /trigger/go 2>/dev/null; do sleep 0.05; done; exit \(status)")
            #expect(started.status == 0, "\(started.stderr)")
        }
        #expect(try Self.ctr(daemon, "run", "-d", Self.image, "live", "sleep", "1000").status == 0)
        #expect(try Self.ctr(daemon, "run", "-d", Self.image, "frozen", "sleep", "1000").status == 0)
        #expect(try Self.ctr(daemon, "tasks", "pause", "frozen").status == 0)
        let rowsBefore = try Self.tasks(daemon)
        #expect(rowsBefore.filter { $0.last == "RUNNING" }.count == 4, "\(rowsBefore)")
        let livePID = try #require(rowsBefore.first { $0[0] == "live" }.flatMap { Int32($0[1]) })
        let quitting = rowsBefore.filter { statuses[$0[0]] != nil }.compactMap { Int32($0[1]) }
        #expect(quitting.count == 3, "\(rowsBefore)")

        // A Wait in flight when the daemon dies fails.
        let daemonBefore = daemon
        let waitBefore = Task { await rpcFailure { _ = try await Self.wait(daemonBefore, "q42") } }
        try await Task.sleep(for: .milliseconds(500))
        let killedAt = Date()
        kill(daemon.process.processIdentifier, SIGKILL)
        #expect(daemon.waitExit() == SIGKILL)
        let failure = await waitBefore.value
        #expect(failure?.0 == .unavailable, "Wait in flight at the kill: \(String(describing: failure))")
        #expect(quitting.allSatisfy(Self.alive), "the three are still running when berthd dies")
        FileManager.default.createFile(atPath: trigger + "/go", contents: nil)
        for _ in 0..<300 where quitting.contains(where: Self.alive) { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!quitting.contains(where: Self.alive), "the containers exit while berthd is down")
        let restartedAt = Date()

        daemon = try Daemon(directory: directory)
        let events = EventRecorder(daemon)
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        try await events.waitSubscribed()
        try await Task.sleep(for: .milliseconds(500))
        let rows = try Self.tasks(daemon)
        #expect(rows.first { $0[0] == "live" } == ["live", "\(livePID)", "RUNNING"])
        #expect(rows.first { $0[0] == "frozen" }?.last == "PAUSED")
        var exitedAt = [String: Google_Protobuf_Timestamp]()
        for (id, status) in statuses {
            #expect(rows.first { $0[0] == id }?.last == "STOPPED", "\(id): \(rows)")
            let process = try await Self.get(daemon, id)
            #expect(process.status == .stopped && process.exitStatus == status, "\(id): \(process)")
            // The exit happened while berthd was down.
            let at = process.exitedAt.date
            #expect(at > killedAt && at < restartedAt, "\(id) exited at \(at), berthd was down \(killedAt)-\(restartedAt)")
            exitedAt[id] = process.exitedAt
            #expect(try await Self.wait(daemon, id).exitStatus == status, "\(id): Wait re-issued after the restart")
        }
        // Exits recorded while restoring are published before the API is up: nothing repeats them.
        #expect(events.exits.isEmpty, "exits published again after the restart: \(events.exits)")

        // The survivors work: exec, resume, pause, resume, wait, kill, delete.
        let exec = try Self.ctr(daemon, "tasks", "exec", "--exec-id", "after", "live", "/bin/sh", "-c", "exit 5")
        #expect(exec.status == 5, "\(exec.stderr)")
        #expect(try Self.ctr(daemon, "tasks", "resume", "frozen").status == 0)
        #expect(try Self.ctr(daemon, "tasks", "pause", "live").status == 0)
        #expect(try Self.tasks(daemon).first { $0[0] == "live" }?.last == "PAUSED")
        #expect(try Self.ctr(daemon, "tasks", "resume", "live").status == 0)
        let daemonAfter = daemon
        let waitAfter = Task { try await Self.wait(daemonAfter, "live") }
        try await Task.sleep(for: .milliseconds(300))
        #expect(try Self.ctr(daemon, "tasks", "kill", "-s", "SIGKILL", "live").status == 0)
        #expect(try await waitAfter.value.exitStatus == 137)
        #expect(!Self.alive(livePID))
        for _ in 0..<100 where events.exits.isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        try await Task.sleep(for: .milliseconds(300))
        #expect(events.exits == ["live:137"], "one /tasks/exit for the kill after the restart: \(events.exits)")

        // A further restart records nothing again: same statuses and times, no event.
        kill(daemon.process.processIdentifier, SIGKILL)
        #expect(daemon.waitExit() == SIGKILL)
        daemon = try Daemon(directory: directory)
        let eventsAgain = EventRecorder(daemon)
        try daemon.waitReady()
        try await eventsAgain.waitSubscribed()
        try await Task.sleep(for: .milliseconds(800))
        for (id, status) in statuses {
            let process = try await Self.get(daemon, id)
            #expect(process.exitStatus == status && process.exitedAt == exitedAt[id], "\(id) after the second restart: \(process)")
            let deleted = try Self.ctr(daemon, "tasks", "delete", id)
            #expect(deleted.status == 0, "\(deleted.stderr)")
        }
        #expect(eventsAgain.exits.isEmpty, "exits published after the second restart: \(eventsAgain.exits)")
        #expect(try Self.tasks(daemon).first { $0[0] == "frozen" }?.last == "RUNNING")
        #expect(try Self.ctr(daemon, "tasks", "kill", "-s", "SIGKILL", "frozen").status == 0)
        try Self.waitFor(daemon, "frozen", status: "STOPPED")
        for id in ["live", "frozen"] { #expect(try Self.ctr(daemon, "tasks", "delete", id).status == 0) }
        for id in try Self.containers(daemon) { #expect(try Self.ctr(daemon, "containers", "rm", id).status == 0) }
        try Self.expectNothingLeft(daemon, running: [])
        // The event travels to the subscriber on its own stream: give it time on a busy machine.
        for _ in 0..<100 where eventsAgain.exits.isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        #expect(eventsAgain.exits == ["frozen:137"], "\(eventsAgain.exits)")
    }

    /// The keeper itself killed while berthd is down: the runtime lost the container, so the
    /// task is recorded as exited with 255 (as containerd does when a shim is gone) and deletes.
    @Test func keeperKilledWhileBerthdDown_restart_taskStoppedWith255AndDeletable() async throws {
        let directory = NSTemporaryDirectory() + "survival-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var daemon = try Self.daemonWithImage(directory: directory)
        #expect(try Self.ctr(daemon, "run", "-d", Self.image, "orphan", "sleep", "1000").status == 0)
        let pid = try #require(try Self.tasks(daemon).first { $0[0] == "orphan" }.flatMap { Int32($0[1]) })
        let keeper = try run("/usr/bin/pgrep", ["-f", "berth-keeper .*\(daemon.directory)/"]).stdout
        let keeperPID = try #require(Int32(keeper.trimmingCharacters(in: .whitespacesAndNewlines)))
        kill(daemon.process.processIdentifier, SIGKILL)
        #expect(daemon.waitExit() == SIGKILL)
        kill(keeperPID, SIGKILL)
        try await Task.sleep(for: .milliseconds(300))

        daemon = try Daemon(directory: directory)
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        #expect(!Self.alive(pid), "the dead keeper's container process is killed")
        #expect(try Self.tasks(daemon).first { $0[0] == "orphan" }?.last == "STOPPED")
        #expect(try await Self.get(daemon, "orphan").exitStatus == 255)
        let deleted = try Self.ctr(daemon, "tasks", "delete", "orphan")
        #expect(deleted.status == 0 && deleted.stderr.contains("exit with non-zero exit code 255"), "\(deleted.stderr)")
        #expect(try Self.tasks(daemon).isEmpty)
        #expect(try Self.ctr(daemon, "containers", "rm", "orphan").status == 0)
        try Self.expectNothingLeft(daemon, running: [])
    }

    // MARK: - 4. Restart policies

    static func runLabelled(_ daemon: Daemon, _ id: String, policy: String, _ command: String...) throws -> RunResult {
        try ctr(
            daemon,
            [
                "run", "-d", "--label", "containerd.io/restart.status=running", "--label", "containerd.io/restart.policy=\(policy)",
                Self.image, id,
            ] + command)
    }

    @Test func restartPolicies_always_onFailure_unlessStopped_followTheLabels() async throws {
        let daemon = try Self.daemonWithImage(directory: nil)
        defer { _ = daemon.stop() }
        let events = EventRecorder(daemon)
        try await events.waitSubscribed()

        // always, exiting at once: restarted with growing delays (100 ms, doubling, after an
        // immediate first restart) until a client stops it.
        #expect(try Self.runLabelled(daemon, "always", policy: "always", "/bin/sh", "-c", "exit 1").status == 0)
        try await Task.sleep(for: .seconds(3))
        // Running, stopped or between two tasks: the stop is recorded in every case.
        _ = try Self.ctr(daemon, "tasks", "kill", "-s", "SIGKILL", "always")
        try await Task.sleep(for: .milliseconds(300))
        let starts = events.starts(of: "always")
        let gaps = zip(starts.dropFirst(), starts).map { $0.timeIntervalSince($1) }
        #expect((4...7).contains(starts.count), "starts in 3 s: \(starts.count), gaps \(gaps)")
        for (n, gap) in gaps.enumerated().dropFirst() {
            // The n-th restart after the first waits 100 ms * 2^(n-1).
            let backoff = 0.1 * Double(1 << (n - 1))
            #expect(gap >= backoff && gap < backoff + 1.0, "gap \(n): \(gap) s, backoff \(backoff) s; gaps \(gaps)")
        }
        let labels = try Self.labels(daemon, "always")
        #expect(labels["containerd.io/restart.count"] == "\(starts.count - 1)", "\(labels)")
        #expect(labels["containerd.io/restart.explicitly-stopped"] == "true", "\(labels)")
        try await Task.sleep(for: .seconds(1))
        #expect(events.starts(of: "always").count == starts.count, "restarted after the explicit stop")

        // on-failure:2 with exit 3: exactly two restarts.
        #expect(try Self.runLabelled(daemon, "fail2", policy: "on-failure:2", "/bin/sh", "-c", "exit 3").status == 0)
        // on-failure with exit 0: none.
        #expect(try Self.runLabelled(daemon, "ok", policy: "on-failure", "/bin/sh", "-c", "exit 0").status == 0)
        // unless-stopped, stopped by a client: stays stopped.
        #expect(try Self.runLabelled(daemon, "unless", policy: "unless-stopped", "sleep", "1000").status == 0)
        try await Task.sleep(for: .milliseconds(300))
        #expect(try Self.ctr(daemon, "tasks", "kill", "-s", "SIGKILL", "unless").status == 0)
        try await Task.sleep(for: .seconds(2))
        #expect(events.starts(of: "fail2").count == 3)
        #expect(events.exitStatuses(of: "fail2") == [3, 3, 3])
        #expect(try Self.labels(daemon, "fail2")["containerd.io/restart.count"] == "2")
        #expect(try Self.tasks(daemon).first { $0[0] == "fail2" }?.last == "STOPPED")
        #expect(events.starts(of: "ok").count == 1)
        #expect(events.exitStatuses(of: "ok") == [0])
        #expect(try Self.labels(daemon, "ok")["containerd.io/restart.count"] == nil)
        #expect(events.starts(of: "unless").count == 1)
        #expect(events.exitStatuses(of: "unless") == [137])
        #expect(try Self.labels(daemon, "unless")["containerd.io/restart.explicitly-stopped"] == "true")
        #expect(try Self.tasks(daemon).first { $0[0] == "unless" }?.last == "STOPPED")
        for id in ["always", "fail2", "ok", "unless"] {
            _ = try Self.ctr(daemon, "tasks", "delete", id)
            #expect(try Self.ctr(daemon, "containers", "rm", id).status == 0)
        }
        try Self.expectNothingLeft(daemon, running: [])
    }

    @Test func restartPolicyAlways_containerKilledWhileBerthdDown_restartedAfterTheRestart() async throws {
        let directory = NSTemporaryDirectory() + "survival-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var daemon = try Self.daemonWithImage(directory: directory)
        #expect(try Self.runLabelled(daemon, "back", policy: "always", "sleep", "1000").status == 0)
        let pid = try #require(try Self.tasks(daemon).first { $0[0] == "back" }.flatMap { Int32($0[1]) })
        kill(daemon.process.processIdentifier, SIGKILL)
        #expect(daemon.waitExit() == SIGKILL)
        kill(pid, SIGKILL)
        try await Task.sleep(for: .seconds(1))
        #expect(!Self.alive(pid))

        daemon = try Daemon(directory: directory)
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        try Self.waitFor(daemon, "back", status: "RUNNING")
        let row = try #require(try Self.tasks(daemon).first { $0[0] == "back" })
        let newPID = try #require(Int32(row[1]))
        #expect(newPID != pid && Self.alive(newPID))
        #expect(try String(contentsOfFile: "/proc/\(newPID)/cmdline", encoding: .utf8) == "sleep\u{0}1000\u{0}")
        #expect(try Self.labels(daemon, "back")["containerd.io/restart.count"] == "1")
        #expect(try Self.ctr(daemon, "tasks", "kill", "-s", "SIGKILL", "back").status == 0)
        try Self.waitFor(daemon, "back", status: "STOPPED")
        try await Task.sleep(for: .seconds(1))
        #expect(try Self.tasks(daemon).first { $0[0] == "back" }?.last == "STOPPED", "restarted after the explicit stop")
        #expect(try Self.ctr(daemon, "tasks", "delete", "back").status == 0)
        #expect(try Self.ctr(daemon, "containers", "rm", "back").status == 0)
        try Self.expectNothingLeft(daemon, running: [])
    }

    // MARK: - Helpers

    /// A daemon on `directory` with the test image imported in this suite's namespace.
    static func daemonWithImage(directory: String?) throws -> Daemon {
        let daemon = try Daemon(directory: directory)
        try daemon.waitReady()
        let tarball = try CtrTasksTests.buildImage(in: daemon.directory)
        let imported = try ctr(daemon, "images", "import", "--base-name", "docker.io/library/bb", tarball)
        guard imported.status == 0 else { throw Failure("import failed: \(imported.stderr)") }
        return daemon
    }

    /// Whether `pid` runs (a zombie no one reaped yet does not).
    static func alive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        return !stat[close...].hasPrefix(") Z")
    }

    static func ctr(_ daemon: Daemon, _ arguments: String...) throws -> RunResult { try ctr(daemon, arguments) }
    static func ctr(_ daemon: Daemon, _ arguments: [String]) throws -> RunResult { try daemon.ctr(arguments, namespace: namespace) }

    /// `ctr tasks ls` as rows of [task, pid, status].
    static func tasks(_ daemon: Daemon) throws -> [[String]] {
        try ctr(daemon, "tasks", "ls").stdout.split(separator: "\n").dropFirst().map { $0.split(separator: " ").map(String.init) }
    }

    static func containers(_ daemon: Daemon) throws -> [String] {
        try ctr(daemon, "containers", "ls", "-q").stdout.split(separator: "\n").map(String.init)
    }

    static func labels(_ daemon: Daemon, _ id: String) throws -> [String: String] {
        let info = try ctr(daemon, "containers", "info", id).stdout
        let object = try JSONSerialization.jsonObject(with: Data(info.utf8)) as? [String: Any]
        return object?["Labels"] as? [String: String] ?? [:]
    }

    /// Polls `ctr tasks ls` until `task` shows `status` (at most 10 s).
    static func waitFor(_ daemon: Daemon, _ task: String, status: String) throws {
        for _ in 0..<200 {
            if try tasks(daemon).first(where: { $0.first == task })?.last == status { return }
            usleep(50_000)
        }
        throw Failure("task \(task) did not reach \(status): \(try tasks(daemon))")
    }

    static func wait(_ daemon: Daemon, _ id: String) async throws -> Containerd_Services_Tasks_V1_WaitResponse {
        var response: Containerd_Services_Tasks_V1_WaitResponse?
        try await withClient(daemon) { client in
            response = try await Tasks(wrapping: client).wait(.with { $0.containerID = id }, metadata: metadata)
        }
        return try #require(response)
    }

    static func get(_ daemon: Daemon, _ id: String) async throws -> Containerd_V1_Types_Process {
        var response: Containerd_Services_Tasks_V1_GetResponse?
        try await withClient(daemon) { client in
            response = try await Tasks(wrapping: client).get(.with { $0.containerID = id }, metadata: metadata)
        }
        return try #require(response).process
    }

    /// `/tasks/start` and `/tasks/exit` of this suite's namespace, from a raw Events.Subscribe
    /// started as soon as the daemon's socket exists (before anything else talks to it).
    final class EventRecorder: @unchecked Sendable {
        private let lock = NSLock()
        private var startTimes = [String: [Date]]()
        private var exitList = [(id: String, status: UInt32)]()
        private var task: Task<Void, Never>?
        private var subscribed = false

        init(_ daemon: Daemon) {
            for _ in 0..<2000 where !FileManager.default.fileExists(atPath: daemon.socket) { usleep(2_000) }
            task = Task { [self] in
                // The socket may exist before it accepts: try again until the stream is open.
                while !Task.isCancelled, !lock.withLock({ subscribed }) {
                    try? await withClient(daemon) { client in
                        try await Events(wrapping: client).subscribe(.with { _ in }) { response in
                            self.lock.withLock { self.subscribed = true }
                            for try await envelope in response.messages where envelope.namespace == RuntimeSurvivalTests.namespace {
                                self.record(envelope)
                            }
                        }
                    }
                    try? await Task.sleep(for: .milliseconds(20))
                }
            }
        }

        /// Waits until the subscription is open (the server subscribed before answering).
        func waitSubscribed() async throws {
            for _ in 0..<500 where !lock.withLock({ subscribed }) { try await Task.sleep(for: .milliseconds(10)) }
            guard lock.withLock({ subscribed }) else { throw Failure("Events.Subscribe did not open") }
        }

        deinit { task?.cancel() }

        private func record(_ envelope: Containerd_Services_Events_V1_Envelope) {
            // The daemon's time of the event: under load, events reach this client in bursts,
            // and their arrival times would shrink the gaps between restarts.
            let now = envelope.timestamp.date
            lock.withLock {
                if envelope.topic == "/tasks/start", let start = try? Containerd_Events_TaskStart(serializedBytes: envelope.event.value) {
                    startTimes[start.containerID, default: []].append(now)
                }
                if envelope.topic == "/tasks/exit", let exit = try? Containerd_Events_TaskExit(serializedBytes: envelope.event.value),
                    exit.id == exit.containerID
                {
                    exitList.append((exit.containerID, exit.exitStatus))
                }
            }
        }

        func starts(of id: String) -> [Date] { lock.withLock { startTimes[id] ?? [] } }
        func exitStatuses(of id: String) -> [UInt32] { lock.withLock { exitList.filter { $0.id == id }.map(\.status) } }
        /// Every task exit seen, as "id:status".
        var exits: [String] { lock.withLock { exitList.map { "\($0.id):\($0.status)" } } }
    }
}
