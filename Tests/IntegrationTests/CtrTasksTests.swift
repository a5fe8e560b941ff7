import Foundation
import Testing

/// `ctr run` and `ctr tasks` against berthd with the default Linux runtime. Each expectation is
/// what containerd 1.6.20 + runc 1.1.5 gave for the same commands and image on this machine
/// (recorded in the test's comments where the output is containerd's own wording).
@Suite(.serialized) struct CtrTasksTests {
    static let image = "docker.io/library/bb:latest"

    /// An OCI layout tarball holding busybox with the applets the tests run.
    static func buildImage(in directory: String) throws -> String {
        try TestImage.build(in: directory, applets: TestImage.runtimeApplets).tarball
    }

    /// A daemon with the test image imported in namespace "run".
    static func daemonWithImage(directory: String? = nil) throws -> Daemon {
        let daemon = try Daemon(directory: directory)
        try daemon.waitReady()
        let tarball = try buildImage(in: daemon.directory)
        let imported = try daemon.ctr(["images", "import", "--base-name", "docker.io/library/bb", tarball], namespace: "run")
        guard imported.status == 0 else { throw Failure("import failed: \(imported.stderr)") }
        return daemon
    }

    /// Keepers (one per container) alive for `daemon`'s containers: their command line names a
    /// state directory inside the daemon's folder. A process set up by a keeper and waiting
    /// for START (an exec whose client went) is a fork of it with the same command line; it
    /// is the keeper's child, and not counted.
    static func keeperCount(_ daemon: Daemon) throws -> Int {
        let listed = try run("/usr/bin/pgrep", ["-f", "berth-keeper .*\(daemon.directory)/"]).stdout
        let pids = Set(listed.split(separator: "\n").compactMap { Int32($0) })
        return pids.filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && !pids.contains(Int32(fields[1]) ?? 0)
        }.count
    }

    /// `ctr tasks ls` as rows of [task, pid, status].
    static func tasks(_ daemon: Daemon) throws -> [[String]] {
        try daemon.ctr(["tasks", "ls"], namespace: "run").stdout.split(separator: "\n").dropFirst()
            .map { $0.split(separator: " ").map(String.init) }
    }

    @Test func ctrRunRm_exitStatusAndSeparateStreams_nothingLeftBehind() throws {
        let daemon = try Self.daemonWithImage()
        defer { _ = daemon.stop() }
        func ctr(_ arguments: String...) throws -> RunResult { try daemon.ctr(arguments, namespace: "run") }

        let ran = try ctr("run", "--rm", Self.image, "c1", "/bin/sh", "-c", "echo out; echo err >&2; exit 3")
        #expect(ran.status == 3, "\(ran.stderr)")
        #expect(ran.stdout == "out\n")
        #expect(ran.stderr == "err\n")
        #expect(try ctr("containers", "ls").stdout == "CONTAINER    IMAGE    RUNTIME    \n")
        #expect(try Self.tasks(daemon).isEmpty)
        #expect(!(try ctr("snapshots", "ls").stdout.contains("c1 ")))

        // No hostname in ctr's spec: the container's UTS namespace starts as a copy of the host's.
        let hostname = try ctr("run", "--rm", Self.image, "c1", "hostname")
        #expect(hostname.status == 0, "\(hostname.stderr)")
        #expect(hostname.stdout == ProcessInfo.processInfo.hostName.split(separator: ".").first.map { "\($0)\n" })

        // containerd + runc: `exec: "/bin/nope": stat /bin/nope: no such file or directory`, status 1.
        let missing = try ctr("run", "--rm", Self.image, "c2", "/bin/nope")
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("exec: \"/bin/nope\": stat /bin/nope: no such file or directory"), "\(missing.stderr)")
        #expect(try ctr("containers", "ls").stdout == "CONTAINER    IMAGE    RUNTIME    \n")
        #expect(try Self.tasks(daemon).isEmpty)
        #expect(try Self.keeperCount(daemon) == 0)
        let mounts = try String(contentsOfFile: "/proc/mounts", encoding: .utf8)
        #expect(!mounts.contains(daemon.directory + "/state"))
    }

    @Test func ctrRunDetached_lsPsExecPauseResumeKillDelete_behaveAsContainerd() throws {
        let daemon = try Self.daemonWithImage()
        defer { _ = daemon.stop() }
        func ctr(_ arguments: String...) throws -> RunResult { try daemon.ctr(arguments, namespace: "run") }

        let started = try ctr("run", "-d", Self.image, "c2", "sleep", "1000")
        #expect(started.status == 0, "\(started.stderr)")
        let row = try #require(try Self.tasks(daemon).first)
        #expect(row.first == "c2" && row.last == "RUNNING")
        let pid = try #require(Int32(row[1]))
        let command = try String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)
        #expect(command == "sleep\u{0}1000\u{0}")
        #expect(try ctr("tasks", "ps", "c2").stdout.split(separator: "\n").dropFirst().first?.hasPrefix("\(pid) ") == true)

        let exec = try ctr("tasks", "exec", "--exec-id", "e1", "c2", "/bin/sh", "-c", "echo in-exec; exit 4")
        #expect(exec.status == 4, "\(exec.stderr)")
        #expect(exec.stdout == "in-exec\n")

        #expect(try ctr("tasks", "pause", "c2").status == 0)
        #expect(try Self.tasks(daemon).first?.last == "PAUSED")
        #expect(try ctr("tasks", "resume", "c2").status == 0)
        #expect(try Self.tasks(daemon).first?.last == "RUNNING")

        // containerd: "task must be stopped before deletion: running: failed precondition".
        let deleteRunning = try ctr("tasks", "delete", "c2")
        #expect(deleteRunning.status == 1)
        #expect(deleteRunning.stderr.contains("failed precondition"), "\(deleteRunning.stderr)")

        // The init of a PID namespace ignores SIGTERM it has no handler for.
        #expect(try ctr("tasks", "kill", "c2").status == 0)
        usleep(500_000)
        #expect(try Self.tasks(daemon).first?.last == "RUNNING")
        #expect(try ctr("tasks", "kill", "-s", "SIGKILL", "c2").status == 0)
        try Self.waitFor(daemon, "c2", status: "STOPPED")
        #expect(kill(pid, 0) != 0)
        // containerd: "process already finished: not found".
        let again = try ctr("tasks", "kill", "-s", "SIGKILL", "c2")
        #expect(again.status == 1 && again.stderr.contains("process already finished"), "\(again.stderr)")

        let deleted = try ctr("tasks", "delete", "c2")
        #expect(deleted.status == 0)
        #expect(deleted.stderr.contains("exit with non-zero exit code 137"), "\(deleted.stderr)")
        #expect(try ctr("tasks", "delete", "c2").status == 1)
        #expect(try ctr("containers", "rm", "c2").status == 0)
    }

    @Test func berthdKilled_containersLiveOn_restartReportsRunningAndExitedWhileDown() throws {
        let directory = NSTemporaryDirectory() + "berthd-restart-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var daemon = try Self.daemonWithImage(directory: directory)
        func ctr(_ arguments: String...) throws -> RunResult { try daemon.ctr(arguments, namespace: "run") }
        #expect(try ctr("run", "-d", Self.image, "live", "sleep", "1000").status == 0)
        #expect(try ctr("run", "-d", Self.image, "quits", "/bin/sh", "-c", "sleep 2; exit 7").status == 0)
        let pid = try #require(try Self.tasks(daemon).first { $0.first == "live" }.flatMap { Int32($0[1]) })

        kill(daemon.process.processIdentifier, SIGKILL)
        _ = daemon.waitExit()
        sleep(3)
        #expect(kill(pid, 0) == 0, "the container must outlive the daemon")

        daemon = try Daemon(directory: directory)
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        let rows = try Self.tasks(daemon)
        #expect(rows.first { $0.first == "live" } == ["live", "\(pid)", "RUNNING"])
        #expect(rows.first { $0.first == "quits" }?.last == "STOPPED")
        let quits = try ctr("tasks", "delete", "quits")
        #expect(quits.status == 0 && quits.stderr.contains("exit with non-zero exit code 7"), "\(quits.stderr)")

        let exec = try ctr("tasks", "exec", "--exec-id", "after", "live", "/bin/sh", "-c", "exit 5")
        #expect(exec.status == 5, "\(exec.stderr)")
        #expect(try ctr("tasks", "kill", "-s", "SIGKILL", "live").status == 0)
        try Self.waitFor(daemon, "live", status: "STOPPED")
        #expect(try ctr("tasks", "delete", "live").status == 0)
        #expect(try ctr("containers", "rm", "live", "quits").status == 0)
    }

    /// Polls `ctr tasks ls` until `task` shows `status` (at most 10 s).
    static func waitFor(_ daemon: Daemon, _ task: String, status: String) throws {
        for _ in 0..<200 {
            if try tasks(daemon).first(where: { $0.first == task })?.last == status { return }
            usleep(50_000)
        }
        throw Failure("task \(task) did not reach \(status): \(try tasks(daemon))")
    }
}
