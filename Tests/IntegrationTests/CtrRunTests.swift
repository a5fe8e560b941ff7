import BerthAPI
import BerthProto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwiftProtobuf
import Testing

/// `ctr run` flags, `ctr tasks`, `ctr events`, `ctr containers` and bad task input against berthd,
/// in native and OCI mode. Each expectation is what containerd 1.6.20 + runc 1.1.5 gave for the
/// same command and image on this machine; quoted text is containerd's own wording. Where Berth
/// answers differently on purpose the comment says so.
@Suite(.serialized) struct CtrRunTests {
    static let image = "docker.io/library/bb:latest"
    /// The same image with a command in its config (`ctr containers create` takes no command).
    static let imageWithCommand = "docker.io/library/bb:cmd"

    /// An OCI layout with two tags: `latest` (busybox applets, no command) and `cmd` (runs
    /// `echo started; exit 2`). The unpacked tree stays at DIR/bundle/rootfs for `--rootfs`.
    static func buildImage(in directory: String) throws -> String {
        try TestImage.build(
            in: directory, applets: TestImage.runtimeApplets + " tty grep",
            commandTags: ["cmd": ["/bin/sh", "-c", "echo started; exit 2"]]
        ).tarball
    }

    /// The in-tree plugins with the Linux runtime in OCI mode (runc on a bundle).
    static let ociPlugins =
        Daemon.inTreePlugins + """
            [plugins."io.containerd.runtime.v2.linux".config]
            mode = "oci"

            """

    /// A daemon with both tags imported in namespace "run".
    static func daemonWithImage(plugins: String = Daemon.inTreePlugins) throws -> Daemon {
        let daemon = try Daemon(plugins: plugins)
        try daemon.waitReady()
        let tarball = try buildImage(in: daemon.directory)
        let imported = try daemon.ctr(["images", "import", "--base-name", "docker.io/library/bb", tarball], namespace: "run")
        guard imported.status == 0 else { throw Failure("import failed: \(imported.stderr)") }
        return daemon
    }

    /// The runtime's per-container state folders (empty when nothing is left behind).
    static func stateFolders(_ daemon: Daemon) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: daemon.directory + "/state/io.containerd.runtime.v2.linux/containers")) ?? []
    }

    /// Mounts under the daemon's folder.
    static func mounts(_ daemon: Daemon) throws -> [String] {
        try String(contentsOfFile: "/proc/mounts", encoding: .utf8).split(separator: "\n").map(String.init)
            .filter { $0.contains(daemon.directory) }
    }

    /// `ctr` run under script(1), so that it has a terminal (for `-t`); status is ctr's (-e).
    static func inTerminal(_ daemon: Daemon, _ command: String) throws -> RunResult {
        try run("/usr/bin/script", ["-qec", "/usr/bin/ctr --address \(daemon.socket) --namespace run \(command)", "/dev/null"])
    }

    /// `ctr containers info ID` as JSON.
    static func info(_ daemon: Daemon, _ id: String) throws -> [String: Any] {
        let text = try daemon.ctr(["containers", "info", id], namespace: "run").stdout
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    // MARK: - 1. ctr run flags

    @Test func ctrRun_envCwdMountLabelRootfsReadOnly_asContainerd() throws {
        let daemon = try Self.daemonWithImage()
        defer { _ = daemon.stop() }
        func ctr(_ arguments: String...) throws -> RunResult { try daemon.ctr(arguments, namespace: "run") }

        // runc adds HOME (from /etc/passwd, else "/") when the env has none.
        let env = try ctr("run", "--rm", "--env", "FOO=bar", "--env", "A=1", Self.image, "r1", "env")
        #expect(env.status == 0, "\(env.stderr)")
        #expect(env.stdout == "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nFOO=bar\nA=1\nHOME=/\n")

        let cwd = try ctr("run", "--rm", "--cwd", "/tmp", Self.image, "r1", "pwd")
        #expect(cwd.status == 0 && cwd.stdout == "/tmp\n", "\(cwd.stderr)")
        // runc creates a cwd the image lacks.
        let missing = try ctr("run", "--rm", "--cwd", "/nope/deeper", Self.image, "r1", "pwd")
        #expect(missing.status == 0 && missing.stdout == "/nope/deeper\n", "\(missing.stderr)")

        let host = daemon.directory + "/host"
        try FileManager.default.createDirectory(atPath: host, withIntermediateDirectories: true)
        try "hostfile\n".write(toFile: host + "/f", atomically: true, encoding: .utf8)
        let bind = try ctr(
            "run", "--rm", "--mount", "type=bind,src=\(host),dst=/mnt/h,options=rbind:ro", Self.image, "r1",
            "sh", "-c", "cat /mnt/h/f; touch /mnt/h/g; echo rc=$?")
        #expect(bind.stdout == "hostfile\nrc=1\n")
        // containerd + runc: "touch: /mnt/h/g: Read-only file system".
        #expect(bind.stderr == "touch: /mnt/h/g: Read-only file system\n")
        #expect(!FileManager.default.fileExists(atPath: host + "/g"))

        #expect(try ctr("run", "-d", "--null-io", "--label", "a=b", "--label", "c=d", Self.image, "r2", "sleep", "100").status == 0)
        let labels = try Self.info(daemon, "r2")["Labels"] as? [String: String]
        #expect(labels == ["a": "b", "c": "d", "io.containerd.image.config.stop-signal": "SIGTERM"])
        #expect(try ctr("containers", "ls", "-q", "labels.a==b").stdout == "r2\n")
        #expect(try ctr("containers", "ls", "-q", "labels.a==x").stdout == "")
        #expect(try ctr("tasks", "kill", "-s", "SIGKILL", "r2").status == 0)
        try CtrTasksTests.waitFor(daemon, "r2", status: "STOPPED")
        #expect(try ctr("tasks", "delete", "r2").status == 0)
        #expect(try ctr("containers", "rm", "r2").status == 0)

        // --rootfs: no snapshot, no image config (so no PATH: busybox sh's own default shows).
        let rootfs = try ctr("run", "--rm", "--rootfs", daemon.directory + "/bundle/rootfs", "r3", "/bin/sh", "-c", "echo inroot; /bin/ls /; echo $PATH")
        #expect(rootfs.status == 0, "\(rootfs.stderr)")
        #expect(rootfs.stdout == "inroot\nbin\ndev\nproc\nrun\nsys\n/sbin:/usr/sbin:/bin:/usr/bin\n")
        #expect(try ctr("snapshots", "ls").stdout.split(separator: "\n").count == 2, "only the image's layer")

        let readOnly = try ctr("run", "--rm", "--read-only", Self.image, "r4", "sh", "-c", "touch /x; echo rc=$?")
        #expect(readOnly.stdout == "rc=1\n")
        // containerd + runc: "touch: /x: Read-only file system".
        #expect(readOnly.stderr == "touch: /x: Read-only file system\n")
        let writable = try ctr("run", "--rm", Self.image, "r4", "sh", "-c", "touch /x; echo rc=$?")
        #expect(writable.stdout == "rc=0\n" && writable.stderr == "")

        #expect(try ctr("containers", "ls", "-q").stdout == "")
        #expect(try CtrTasksTests.keeperCount(daemon) == 0)
        #expect(Self.stateFolders(daemon) == [])
    }

    @Test func ctrRun_limitsNamespacesSecurityRuntimeTerminal_asContainerd() throws {
        let daemon = try Self.daemonWithImage()
        defer { _ = daemon.stop() }
        func ctr(_ arguments: String...) throws -> RunResult { try daemon.ctr(arguments, namespace: "run") }

        #expect(try ctr("run", "-d", "--null-io", "--memory-limit", "67108864", Self.image, "m1", "sleep", "100").status == 0)
        let limitFile = "/sys/fs/cgroup/memory/run/m1/memory.limit_in_bytes"
        #expect(try String(contentsOfFile: limitFile, encoding: .utf8) == "67108864\n")
        #expect(try ctr("tasks", "kill", "-s", "SIGKILL", "m1").status == 0)
        try CtrTasksTests.waitFor(daemon, "m1", status: "STOPPED")
        #expect(try ctr("tasks", "delete", "m1").status == 0)
        #expect(!FileManager.default.fileExists(atPath: "/sys/fs/cgroup/memory/run/m1"))
        #expect(try ctr("containers", "rm", "m1").status == 0)

        let hostInterfaces = try FileManager.default.contentsOfDirectory(atPath: "/sys/class/net").sorted()
        let hostNet = try ctr("run", "--rm", "--net-host", Self.image, "n1", "ls", "/sys/class/net")
        #expect(hostNet.stdout == hostInterfaces.map { $0 + "\n" }.joined(), "\(hostNet.stderr)")
        #expect(try ctr("run", "--rm", Self.image, "n1", "ls", "/sys/class/net").stdout == "lo\n")

        #expect(try ctr("run", "--rm", "--seccomp", Self.image, "s1", "grep", "Seccomp:", "/proc/self/status").stdout == "Seccomp:\t2\n")
        #expect(try ctr("run", "--rm", Self.image, "s1", "grep", "Seccomp:", "/proc/self/status").stdout == "Seccomp:\t0\n")

        // Berth accepts a runtime plugin's own name; containerd has no runtime of that name
        // ("binary not installed \"containerd-shim-v2-linux\"").
        let own = try ctr("run", "--rm", "--runtime", "io.containerd.runtime.v2.linux", Self.image, "t1", "true")
        #expect(own.status == 0, "\(own.stderr)")
        // containerd: "failed to start shim: failed to resolve runtime path: runtime \"io.nope\"
        // binary not installed \"containerd-shim-io-nope\": file does not exist: unknown"; the
        // container stays (ctr removes it only with --rm).
        let nope = try ctr("run", "--runtime", "io.nope", Self.image, "t2", "true")
        #expect(nope.status == 1)
        #expect(
            nope.stderr
                == "ctr: container \"t2\": runtime \"io.nope\" is unknown; known runtimes: io.containerd.runc.v2, io.containerd.runtime.v2.linux: not found\n")
        #expect(try ctr("containers", "ls", "-q").stdout == "t2\n")
        #expect(try CtrTasksTests.tasks(daemon).isEmpty)
        #expect(try ctr("containers", "rm", "t2").status == 0)
        #expect(try ctr("run", "--rm", "--runtime", "io.nope", Self.image, "t2", "true").status == 1)
        #expect(try ctr("containers", "ls", "-q").stdout == "")

        func status(_ field: String, _ flags: [String]) throws -> String {
            try daemon.ctr(["run", "--rm"] + flags + [Self.image, "p1", "grep", field, "/proc/self/status"], namespace: "run").stdout
        }
        #expect(try status("CapEff", []) == "CapEff:\t00000000a80425fb\n")
        #expect(try status("CapEff", ["--cap-add", "CAP_SYS_ADMIN", "--cap-drop", "CAP_CHOWN"]) == "CapEff:\t00000000a82425fa\n")
        #expect(try status("NoNewPrivs", []) == "NoNewPrivs:\t1\n")
        #expect(try status("NoNewPrivs", ["--allow-new-privs"]) == "NoNewPrivs:\t0\n")
        #expect(try status("CapEff", ["--privileged"]) == "CapEff:\t000001fffeffffff\n")
        #expect(try status("Seccomp:", ["--privileged"]) == "Seccomp:\t0\n")
        #expect(try ctr("run", "--rm", Self.image, "p1", "sh", "-c", "echo $$").stdout == "1\n")

        // containerd + runc: "\0/dev/pts/0\r\r\n" through script, and ctr exited 3.
        let terminal = try Self.inTerminal(daemon, "run --rm -t \(Self.image) p2 sh -c 'tty; exit 3'")
        #expect(terminal.status == 3, "\(terminal.stderr)")
        #expect(terminal.stdout.contains("/dev/pts/0\r"), "\(terminal.stdout.debugDescription)")

        #expect(try ctr("containers", "ls", "-q").stdout == "")
        #expect(try CtrTasksTests.keeperCount(daemon) == 0)
        #expect(Self.stateFolders(daemon) == [])
        #expect(try Self.mounts(daemon).filter { $0.contains("/state/") } == [])
    }

    // MARK: - 2. ctr tasks

    @Test func ctrTasks_startAttachKillForceDeleteExecPsMetrics_asContainerd() throws {
        let daemon = try Self.daemonWithImage()
        defer { _ = daemon.stop() }
        func ctr(_ arguments: String...) throws -> RunResult { try daemon.ctr(arguments, namespace: "run") }

        #expect(try ctr("containers", "create", Self.imageWithCommand, "s1").status == 0)
        let started = try ctr("tasks", "start", "s1")
        #expect(started.status == 2 && started.stdout == "started\n", "\(started.stderr)")
        #expect(try CtrTasksTests.tasks(daemon).isEmpty, "ctr deletes the task it waited for")
        // containerd: "ctr: no running task found: task s1 not found: not found".
        let gone = try ctr("tasks", "delete", "s1")
        #expect(gone.status == 1 && gone.stderr.contains("ctr: no running task found: task \"s1\" in namespace \"run\": not found"), "\(gone.stderr)")
        #expect(try ctr("containers", "create", Self.imageWithCommand, "s2").status == 0)
        #expect(try ctr("tasks", "start", "-d", "s2").status == 0)
        try CtrTasksTests.waitFor(daemon, "s2", status: "STOPPED")
        let deleted = try ctr("tasks", "delete", "s2")
        #expect(deleted.status == 0 && deleted.stderr.contains("task s2 exit with non-zero exit code 2"), "\(deleted.stderr)")
        #expect(try ctr("containers", "rm", "s1", "s2").status == 0)

        // attach: containerd showed the ticks written after it attached.
        let ticker = try ctr("run", "-d", Self.image, "a1", "sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done")
        #expect(ticker.status == 0, "\(ticker.stderr)")
        let attached = daemon.directory + "/attach.out"
        FileManager.default.createFile(atPath: attached, contents: nil)
        let attach = Process()
        attach.executableURL = URL(fileURLWithPath: "/usr/bin/ctr")
        attach.arguments = ["--address", daemon.socket, "--namespace", "run", "tasks", "attach", "a1"]
        attach.standardInput = FileHandle.nullDevice
        attach.standardOutput = FileHandle(forWritingAtPath: attached)
        try attach.run()
        usleep(1_500_000)
        kill(attach.processIdentifier, SIGKILL)  // ctr attach passes SIGTERM on to the task
        attach.waitUntilExit()
        let ticks = try String(contentsOfFile: attached, encoding: .utf8).split(separator: "\n")
        #expect(ticks.count >= 3 && ticks.allSatisfy { $0.hasPrefix("tick ") }, "\(ticks)")

        // ps: the exec's row carries the runc shim's ProcessDetails.
        #expect(try ctr("tasks", "exec", "-d", "--exec-id", "x1", "a1", "sleep", "100").status == 0)
        let ps = try ctr("tasks", "ps", "a1").stdout.split(separator: "\n")
        #expect(ps.first?.hasPrefix("PID") == true && ps.count == 4, "\(ps)")
        let execRow = ps.first { $0.hasSuffix("&ProcessDetails{ExecID:x1,XXX_unrecognized:[],}") }
        let execPID = try #require(execRow.flatMap { Int32($0.split(separator: " ")[0]) }, "\(ps)")
        // containerd's rows: init "-", exec "&ProcessDetails{ExecID:x1,...}", the loop's sleep "-".
        #expect(ps.filter { $0.hasSuffix(" -") }.count == 2, "\(ps)")
        #expect(try ctr("tasks", "kill", "--all", "-s", "SIGKILL", "a1").status == 0)
        try CtrTasksTests.waitFor(daemon, "a1", status: "STOPPED")
        #expect(kill(execPID, 0) != 0)
        #expect(try ctr("tasks", "delete", "a1").status == 0)

        let trap = try ctr(
            "run", "-d", "--null-io", Self.image, "u1", "sh", "-c", "trap 'exit 9' USR1; while true; do sleep 0.1; done")
        #expect(trap.status == 0)
        usleep(300_000)
        #expect(try ctr("tasks", "kill", "-s", "SIGUSR1", "u1").status == 0)
        try CtrTasksTests.waitFor(daemon, "u1", status: "STOPPED")
        #expect(try ctr("tasks", "delete", "u1").stderr.contains("task u1 exit with non-zero exit code 9"))

        #expect(try ctr("run", "-d", "--null-io", Self.image, "f1", "sleep", "100").status == 0)
        // containerd: "ctr: task must be stopped before deletion: running: failed precondition".
        #expect(try ctr("tasks", "delete", "f1").status == 1)
        let forced = try ctr("tasks", "delete", "--force", "f1")
        #expect(forced.status == 0 && forced.stderr.contains("task f1 exit with non-zero exit code 137"), "\(forced.stderr)")
        #expect(try CtrTasksTests.tasks(daemon).filter { $0.first == "f1" }.isEmpty)

        #expect(try ctr("run", "-d", "--null-io", Self.image, "x1", "sleep", "100").status == 0)
        let execTerminal = try Self.inTerminal(daemon, "tasks exec -t --exec-id t1 x1 sh -c 'tty; exit 4'")
        #expect(execTerminal.status == 4 && execTerminal.stdout.contains("/dev/pts/0\r"), "\(execTerminal.stdout.debugDescription)")
        #expect(try ctr("tasks", "exec", "-d", "--exec-id", "d1", "x1", "sleep", "50").status == 0)
        // containerd: "ctr: id d1: already exists".
        let duplicate = try ctr("tasks", "exec", "--exec-id", "d1", "x1", "true")
        #expect(duplicate.status == 1 && duplicate.stderr.contains("already exists"), "\(duplicate.stderr)")

        // runc adds HOME to an exec's env too; an exec's missing cwd it does not create
        // ("chdir to cwd (\"/nope2\") set in config.json failed: no such file or directory").
        let execEnv = try ctr("tasks", "exec", "--exec-id", "h1", "x1", "env")
        #expect(execEnv.stdout == "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nHOME=/\n", "\(execEnv.stderr)")
        #expect(try ctr("tasks", "exec", "--exec-id", "h2", "--cwd", "/nope2", "x1", "pwd").status == 1)

        try expectMetrics(ctr("tasks", "metrics", "x1"), pids: 2)
        #expect(try ctr("tasks", "pause", "x1").status == 0)
        #expect(try CtrTasksTests.tasks(daemon).first { $0.first == "x1" }?.last == "PAUSED")
        #expect(try ctr("tasks", "resume", "x1").status == 0)
        #expect(try ctr("tasks", "kill", "-s", "SIGKILL", "x1").status == 0)
        try CtrTasksTests.waitFor(daemon, "x1", status: "STOPPED")
        // containerd reports a stopped task's cgroup until the task is deleted.
        try expectMetrics(ctr("tasks", "metrics", "x1"), pids: 0)
        #expect(try ctr("tasks", "delete", "x1").status == 0)
        #expect(try ctr("containers", "rm", "a1", "u1", "f1", "x1").status == 0)
        #expect(try CtrTasksTests.keeperCount(daemon) == 0)
        #expect(Self.stateFolders(daemon) == [])
    }

    /// The metric rows ctr prints for cgroup v1, as containerd gave them (values aside from the
    /// unlimited memory and the pid count).
    private func expectMetrics(_ result: RunResult, pids: Int) throws {
        #expect(result.status == 0, "\(result.stderr)")
        let rows = result.stdout.split(separator: "\n").drop { !$0.hasPrefix("METRIC") }.dropFirst()
            .map { $0.split(separator: " ", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) } }
        #expect(
            rows.map { $0[0] } == [
                "memory.usage_in_bytes", "memory.limit_in_bytes", "memory.stat.cache", "cpuacct.usage",
                "cpuacct.usage_percpu", "pids.current", "pids.limit",
            ], "\(result.stdout)")
        guard rows.count == 7 else { return }
        #expect(rows[1][1] == "9223372036854771712")
        let perCPU = rows[4][1].dropFirst().dropLast().split(separator: " ")
        let hostPerCPU = try String(contentsOfFile: "/sys/fs/cgroup/cpuacct/cpuacct.usage_percpu", encoding: .utf8).split(separator: " ")
            .filter { $0 != "\n" }
        #expect(perCPU.count == hostPerCPU.count, "\(rows[4])")
        #expect(rows[5][1] == "\(pids)")
    }

    // MARK: - 3. ctr events

    @Test func ctrEvents_runRmAndDetachedLifecycle_topicsAndPayloadsAsContainerd() throws {
        let daemon = try Self.daemonWithImage()
        defer { _ = daemon.stop() }
        func ctr(_ arguments: String...) throws -> RunResult { try daemon.ctr(arguments, namespace: "run") }
        let output = daemon.directory + "/events.txt"
        FileManager.default.createFile(atPath: output, contents: nil)
        let watcher = Process()
        watcher.executableURL = URL(fileURLWithPath: "/usr/bin/ctr")
        watcher.arguments = ["--address", daemon.socket, "events"]
        watcher.standardOutput = FileHandle(forWritingAtPath: output)
        try watcher.run()
        defer {
            watcher.terminate()
            watcher.waitUntilExit()
        }
        usleep(300_000)

        #expect(try ctr("run", "--rm", Self.image, "v1", "sh", "-c", "exit 3").status == 3)
        #expect(try ctr("run", "-d", "--null-io", Self.image, "v2", "sleep", "100").status == 0)
        #expect(try ctr("tasks", "exec", "--exec-id", "ex", "v2", "sh", "-c", "exit 5").status == 5)
        #expect(try ctr("tasks", "pause", "v2").status == 0)
        #expect(try ctr("tasks", "resume", "v2").status == 0)
        #expect(try ctr("tasks", "kill", "-s", "SIGKILL", "v2").status == 0)
        try CtrTasksTests.waitFor(daemon, "v2", status: "STOPPED")
        #expect(try ctr("tasks", "delete", "v2").status == 0)
        #expect(try ctr("containers", "rm", "v2").status == 0)

        let expected = Self.lifecycleEvents
        var events = [String]()
        for _ in 0..<100 {
            events = try String(contentsOfFile: output, encoding: .utf8).split(separator: "\n").map(Self.normalized)
            if events.count >= expected.count { break }
            usleep(50_000)
        }
        #expect(events == expected)
    }

    /// What containerd published for the commands above, with pids, times, paths and the image
    /// layer as "*". Berth's /tasks/create carries no "bundle" (containerd's shim bundle folder;
    /// Berth's native runtime has none): the one key left out.
    static let lifecycleEvents = [
        #"run /snapshot/prepare {"key":"v1","parent":"*"}"#,
        #"run /containers/create {"id":"v1","image":"docker.io/library/bb:latest","runtime":{"name":"io.containerd.runc.v2","options":{"type_url":"containerd.runc.v1.Options"}}}"#,
        #"run /tasks/create {"container_id":"v1","io":"*","pid":"*","rootfs":"*"}"#,
        #"run /tasks/start {"container_id":"v1","pid":"*"}"#,
        #"run /tasks/exit {"container_id":"v1","exit_status":3,"exited_at":"*","id":"v1","pid":"*"}"#,
        #"run /tasks/delete {"container_id":"v1","exit_status":3,"exited_at":"*","pid":"*"}"#,
        #"run /snapshot/remove {"key":"v1"}"#,
        #"run /containers/delete {"id":"v1"}"#,
        #"run /snapshot/prepare {"key":"v2","parent":"*"}"#,
        #"run /containers/create {"id":"v2","image":"docker.io/library/bb:latest","runtime":{"name":"io.containerd.runc.v2","options":{"type_url":"containerd.runc.v1.Options"}}}"#,
        #"run /tasks/create {"container_id":"v2","io":{},"pid":"*","rootfs":"*"}"#,
        #"run /tasks/start {"container_id":"v2","pid":"*"}"#,
        #"run /tasks/exec-added {"container_id":"v2","exec_id":"ex"}"#,
        #"run /tasks/exec-started {"container_id":"v2","exec_id":"ex","pid":"*"}"#,
        #"run /tasks/exit {"container_id":"v2","exit_status":5,"exited_at":"*","id":"ex","pid":"*"}"#,
        #"run /tasks/paused {"container_id":"v2"}"#,
        #"run /tasks/resumed {"container_id":"v2"}"#,
        #"run /tasks/exit {"container_id":"v2","exit_status":137,"exited_at":"*","id":"v2","pid":"*"}"#,
        #"run /tasks/delete {"container_id":"v2","exit_status":137,"exited_at":"*","pid":"*"}"#,
        #"run /snapshot/remove {"key":"v2"}"#,
        #"run /containers/delete {"id":"v2"}"#,
    ]

    /// `NAMESPACE TOPIC PAYLOAD` of a `ctr events` line, the payload's varying values as "*"
    /// (an empty io stays `{}`) and its keys sorted.
    static func normalized(_ line: Substring) -> String {
        let fields = line.split(separator: " ", maxSplits: 6)
        guard fields.count == 7, var payload = try? JSONSerialization.jsonObject(with: Data(fields[6].utf8)) as? [String: Any] else {
            return String(line)
        }
        for key in ["pid", "exited_at", "rootfs", "bundle", "parent"] where payload[key] != nil { payload[key] = "*" }
        if let io = payload["io"] as? [String: Any], !io.isEmpty { payload["io"] = "*" }
        let data = (try? JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return "\(fields[4]) \(fields[5]) \(String(decoding: data, as: UTF8.self))"
    }

    // MARK: - 4. ctr containers

    @Test func ctrContainers_rmRunningInfoAndFilters_asContainerd() throws {
        let daemon = try Self.daemonWithImage()
        defer { _ = daemon.stop() }
        func ctr(_ arguments: String...) throws -> RunResult { try daemon.ctr(arguments, namespace: "run") }
        #expect(try ctr("run", "-d", "--null-io", "--label", "team=a", Self.image, "k1", "sleep", "100").status == 0)
        #expect(try ctr("containers", "create", Self.imageWithCommand, "k2").status == 0)

        // ctr's own check, the same words against containerd.
        let removing = try ctr("containers", "rm", "k1")
        #expect(removing.status == 1)
        #expect(removing.stderr.hasSuffix("ctr: cannot delete a non stopped container: {running 0 0001-01-01 00:00:00 +0000 UTC}\n"), "\(removing.stderr)")
        #expect(try CtrTasksTests.tasks(daemon).first?.last == "RUNNING")

        let info = try Self.info(daemon, "k1")
        #expect(info["ID"] as? String == "k1")
        #expect(info["Image"] as? String == Self.image)
        #expect(info["SnapshotKey"] as? String == "k1")
        #expect(info["Snapshotter"] as? String == "overlayfs")
        #expect((info["Runtime"] as? [String: Any])?["Name"] as? String == "io.containerd.runc.v2")
        #expect(((info["Spec"] as? [String: Any])?["process"] as? [String: Any])?["args"] as? [String] == ["sleep", "100"])

        #expect(try ctr("containers", "ls", "-q").stdout == "k1\nk2\n")
        #expect(try ctr("containers", "ls", "-q", "image==\(Self.imageWithCommand)").stdout == "k2\n")
        #expect(try ctr("containers", "ls", "-q", "labels.team==a").stdout == "k1\n")
        #expect(try ctr("containers", "ls", "-q", "id==nope").stdout == "")
        #expect(try ctr("containers", "ls", "id==nope").stdout == "CONTAINER    IMAGE    RUNTIME    \n")

        #expect(try ctr("tasks", "kill", "-s", "SIGKILL", "k1").status == 0)
        try CtrTasksTests.waitFor(daemon, "k1", status: "STOPPED")
        #expect(try ctr("tasks", "delete", "k1").status == 0)
        #expect(try ctr("containers", "rm", "k1", "k2").status == 0)
    }

    // MARK: - 5. OCI mode (runc)

    @Test func ociMode_runRmExecPauseKillDelete_asContainerd() throws {
        let daemon = try Self.daemonWithImage(plugins: Self.ociPlugins)
        defer { _ = daemon.stop() }
        func ctr(_ arguments: String...) throws -> RunResult { try daemon.ctr(arguments, namespace: "run") }

        let ran = try ctr("run", "--rm", Self.image, "o1", "/bin/sh", "-c", "echo out; echo err >&2; exit 3")
        #expect(ran.status == 3 && ran.stdout == "out\n" && ran.stderr == "err\n", "\(ran.stderr)")
        let env = try ctr("run", "--rm", "--cwd", "/nope", Self.image, "o1", "sh", "-c", "pwd; echo $HOME")
        #expect(env.status == 0 && env.stdout == "/nope\n/\n", "\(env.stderr)")

        #expect(try ctr("run", "-d", "--null-io", Self.image, "o2", "sleep", "1000").status == 0)
        let row = try #require(try CtrTasksTests.tasks(daemon).first)
        #expect(row.first == "o2" && row.last == "RUNNING")
        let pid = try #require(Int32(row[1]))
        #expect(try String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8) == "sleep\u{0}1000\u{0}")
        let exec = try ctr("tasks", "exec", "--exec-id", "e1", "o2", "/bin/sh", "-c", "echo in-exec; exit 4")
        #expect(exec.status == 4 && exec.stdout == "in-exec\n", "\(exec.stderr)")
        #expect(try ctr("tasks", "pause", "o2").status == 0)
        #expect(try CtrTasksTests.tasks(daemon).first?.last == "PAUSED")
        #expect(try ctr("tasks", "resume", "o2").status == 0)
        #expect(try CtrTasksTests.tasks(daemon).first?.last == "RUNNING")
        #expect(try ctr("tasks", "kill", "-s", "SIGKILL", "o2").status == 0)
        try CtrTasksTests.waitFor(daemon, "o2", status: "STOPPED")
        // containerd: "process already finished: not found".
        let again = try ctr("tasks", "kill", "-s", "SIGKILL", "o2")
        #expect(again.status == 1 && again.stderr.contains("process already finished: not found"), "\(again.stderr)")
        let deleted = try ctr("tasks", "delete", "o2")
        #expect(deleted.status == 0 && deleted.stderr.contains("exit with non-zero exit code 137"), "\(deleted.stderr)")
        #expect(try ctr("containers", "rm", "o2").status == 0)
        #expect(try CtrTasksTests.keeperCount(daemon) == 0)
        #expect(Self.stateFolders(daemon) == [])
        #expect(try Self.mounts(daemon).filter { $0.contains("/state/") } == [])
    }

    // MARK: - 6. Bad input

    private typealias Containers = Containerd_Services_Containers_V1_Containers.Client<HTTP2ClientTransport.Posix>
    private typealias Tasks = Containerd_Services_Tasks_V1_Tasks.Client<HTTP2ClientTransport.Posix>
    private static let metadata: Metadata = ["containerd-namespace": "run"]

    @Test func tasks_badInput_clearStatusNothingLeftDaemonServing() async throws {
        let daemon = try Self.daemonWithImage()
        defer { _ = daemon.stop() }
        func ctr(_ arguments: String...) throws -> RunResult { try daemon.ctr(arguments, namespace: "run") }
        #expect(try ctr("run", "-d", "--null-io", Self.image, "b1", "sleep", "100").status == 0)

        try await withClient(daemon) { grpc in
            let containers = Containers(wrapping: grpc)
            let tasks = Tasks(wrapping: grpc)
            for (id, spec) in [("notjson", "{not json"), ("noargs", #"{"ociVersion":"1.0.2","process":{"cwd":"/"}}"#)] {
                _ = try await containers.create(
                    .with {
                        $0.container.id = id
                        $0.container.runtime.name = "io.containerd.runc.v2"
                        $0.container.spec = .with {
                            $0.typeURL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
                            $0.value = Data(spec.utf8)
                        }
                    }, metadata: Self.metadata)
            }
            let cases: [(String, RPCError.Code, String, () async throws -> Void)] = [
                (
                    "spec not JSON", .invalidArgument, "container run/notjson: spec document: not a JSON OCI runtime spec: The given data was not valid JSON.",
                    { _ = try await tasks.create(.with { $0.containerID = "notjson" }, metadata: Self.metadata) }
                ),
                (
                    "no process.args", .invalidArgument, "container run/noargs: spec process.args: missing or empty: a process needs its argv",
                    { _ = try await tasks.create(.with { $0.containerID = "noargs" }, metadata: Self.metadata) }
                ),
                // containerd (through ctr tasks start): "task b1: already exists".
                (
                    "task twice", .alreadyExists, #"task "b1" in namespace "run": already exists"#,
                    { _ = try await tasks.create(.with { $0.containerID = "b1" }, metadata: Self.metadata) }
                ),
                (
                    "start running", .failedPrecondition, #"task "b1" is running; only a created process can be started"#,
                    { _ = try await tasks.start(.with { $0.containerID = "b1" }, metadata: Self.metadata) }
                ),
                // containerd: "unknown error after kill: runc did not terminate successfully: exit
                // status 1: unable to signal init: invalid argument: unknown"; Berth refuses it first.
                (
                    "signal 99", .invalidArgument, #"signal 99 for task "b1" is out of range (1-64)"#,
                    {
                        _ = try await tasks.kill(
                            .with {
                                $0.containerID = "b1"
                                $0.signal = 99
                            }, metadata: Self.metadata)
                    }
                ),
                // containerd: "invalid exec id a b: identifier \"a b\" must match ^[A-Za-z0-9]+...".
                (
                    "exec id", .invalidArgument, #"task "b1": exec id "a b" must be 1-76 letters, digits, '.', '_' or '-'"#,
                    {
                        _ = try await tasks.exec(
                            .with {
                                $0.containerID = "b1"
                                $0.execID = "a b"
                                $0.spec = .with {
                                    $0.typeURL = "types.containerd.io/opencontainers/runtime-spec/1/Process"
                                    $0.value = Data(#"{"args":["true"],"cwd":"/"}"#.utf8)
                                }
                            }, metadata: Self.metadata)
                    }
                ),
            ]
            for (name, code, message, body) in cases {
                let error = await rpcFailure(body)
                #expect(error?.0 == code, "\(name): \(String(describing: error))")
                #expect(error?.1 == message, "\(name)")
            }
        }
        // containerd + runc ran a 1 MiB env (100 variables of 10 KiB, via --env-file; ctr reads
        // lines of at most 64 KiB). Berth's keeper plan is limited to 1 MiB: refused, named.
        let bigEnv = daemon.directory + "/big.env"
        try (0..<100).map { "V\($0)=" + String(repeating: "a", count: 10480) + "\n" }.joined().write(toFile: bigEnv, atomically: true, encoding: .utf8)
        let huge = try ctr("run", "--rm", "--env-file", bigEnv, Self.image, "b2", "true")
        #expect(huge.status == 1)
        #expect(huge.stderr == "ctr: container run/b2: spec process.env: the plan grows past 1048576 bytes: invalid argument\n", "\(huge.stderr)")

        #expect(try CtrTasksTests.tasks(daemon).map { [$0[0], $0[2]] } == [["b1", "RUNNING"]])
        #expect(try CtrTasksTests.keeperCount(daemon) == 1)
        #expect(Self.stateFolders(daemon).count == 1)
        #expect(try ctr("containers", "ls", "-q").stdout == "b1\nnoargs\nnotjson\n")
        #expect(try ctr("tasks", "kill", "-s", "SIGKILL", "b1").status == 0)
        try CtrTasksTests.waitFor(daemon, "b1", status: "STOPPED")
        #expect(try ctr("tasks", "delete", "b1").status == 0)
        #expect(try ctr("containers", "rm", "b1", "noargs", "notjson").status == 0)
        #expect(try CtrTasksTests.keeperCount(daemon) == 0)
        #expect(Self.stateFolders(daemon) == [])
        #expect(try Self.mounts(daemon).filter { $0.contains("/state/") } == [])
    }
}
