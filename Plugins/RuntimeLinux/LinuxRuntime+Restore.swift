import BerthPluginSDK
import BerthProto
import FoundationEssentials
import Glibc

extension LinuxRuntime {
    /// At start: takes back every container directory a previous instance left.
    /// - keeper alive: connect and SUBSCRIBE; exits it holds arrive and are reported;
    /// - keeper gone with DIR/exits/init: the init's exit is reported, leftovers (processes in
    ///   its cgroups, cgroups, oci mounts) removed, and DIR once the kernel recorded the exit;
    ///   the container stays listed as stopped until Delete;
    /// - anything else (crash during create, keeper gone without an init exit): removed.
    func restoreDirectories() async {
        // Reading folders and cleaning up after dead keepers blocks (cgroup removal waits up to
        // a second): that part runs on a thread of its own, not on Swift's pool.
        let clock = ContinuousClock()
        let start = clock.now
        let alive = await withCheckedContinuation { continuation in
            do {
                try startDetachedThread(name: "berth-restore") { continuation.resume(returning: self.scanDirectories()) }
            } catch {
                continuation.resume(returning: self.scanDirectories())
            }
        }
        let scanned = clock.now
        for container in alive { install(container) }
        // Keepers answer in parallel: one at a time, 200 of them took ~100 ms of round trips.
        _ = await Self.concurrently(alive) { container in
            do {
                _ = try await self.connection(container)
            } catch {
                self.host.log(.warning, "container \(container.label): keeper runs but does not answer yet: \(error)")
            }
        }
        if !alive.isEmpty {
            host.log(
                .info,
                "took back \(alive.count) running containers: folders read in \(Self.milliseconds(scanned - start)) ms, keepers subscribed in \(Self.milliseconds(clock.now - scanned)) ms"
            )
        }
    }

    private static func milliseconds(_ duration: Duration) -> Int {
        Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
    }

    /// The keepers a restore talks to at once.
    static let restoreParallelism = 32

    /// `body` of every element, at most `restoreParallelism` at a time; results in input order.
    static func concurrently<Element: Sendable, Result: Sendable>(
        _ elements: [Element], _ body: @escaping @Sendable (Element) async -> Result
    ) async -> [Result] {
        await withTaskGroup(of: (Int, Result).self) { group in
            var results = [Result?](repeating: nil, count: elements.count)
            for (index, element) in elements.enumerated() {
                if index >= restoreParallelism, let (done, result) = await group.next() { results[done] = result }
                group.addTask { (index, await body(element)) }
            }
            for await (done, result) in group { results[done] = result }
            return results.map { $0! }
        }
    }

    /// The containers whose keeper runs; the others are taken back or removed on the way.
    private func scanDirectories() -> [LiveContainer] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        var alive = [LiveContainer]()
        for name in names.sorted() {
            let directory = StateDirectory(path: root + "/" + name)
            guard let record = try? directory.readRecord() else {
                host.log(.warning, "removing \(directory.path): no readable \(StateDirectory.recordName) (a create that did not finish)")
                directory.remove()
                continue
            }
            let container = LiveContainer(record: record, directory: directory)
            if directory.liveKeeperPID != nil {
                alive.append(container)
            } else {
                takeBackAbandoned(container)
            }
        }
        return alive
    }

    private func takeBackAbandoned(_ container: LiveContainer) {
        if abandon(container) { install(container) }
    }

    /// A container whose keeper is gone: processes left in its cgroups are killed, the cgroups
    /// and oci mounts removed. With DIR/exits/init, the init's exit is reported and the
    /// container kept as stopped until Delete (true); without, DIR is removed (false), unless
    /// `reportLoss`: then the init is reported exited with 255 and kept until Delete (true).
    /// `reportLoss` is for a keeper that died while this instance held the container: the
    /// supervisor recorded it running and, told nothing, would list it so for ever. (At
    /// restore the supervisor records 255 itself for a container Restore does not list.)
    @discardableResult
    func abandon(_ container: LiveContainer, reportLoss: Bool = false) -> Bool {
        let record = container.record
        let left = cgroups.removeAbandoned(record.cgroupPath)
        if record.mountedRootfs { RootfsMounts(container: container.label).unmountAll(container.directory.rootfs) }
        guard let found = container.directory.recordedExit("") ?? (reportLoss ? container.directory.lostExit() : nil) else {
            host.log(.warning, "container \(container.label): keeper gone and no init exit recorded; removed \(container.directory.path)")
            container.markDeleted()
            container.directory.remove()
            release(namespace: record.namespace, id: record.id)
            return false
        }
        if !left.isEmpty { host.log(.warning, "container \(container.label): cgroups left by its dead keeper: \(left)") }
        let exit = Berth_Runtime_V1_Exit(
            namespace: record.namespace, id: record.id, execID: "", pid: found.pid, status: found.status, exitedAt: found.exitedAt)
        container.markAbandoned(exit: exit)
        let directory = container.directory
        reporter.submit(
            SupervisorReport(
                fact: .exit(exit), recorded: { try? FileManager.default.removeItem(atPath: directory.exitFile("")) },
                stillWanted: { !container.isDeleted }))
        return true
    }

    /// Restore: every container held, with its processes' states from the keeper (STATE).
    func restore() async -> Berth_Runtime_V1_RestoreResponse {
        var response = Berth_Runtime_V1_RestoreResponse()
        let containers = all.sorted(by: { $0.label < $1.label })
        response.containers = await Self.concurrently(containers) { container in await self.restored(container) }.compactMap { $0 }
        return response
    }

    /// One container as Restore reports it; nil when its keeper does not answer STATE.
    private func restored(_ container: LiveContainer) async -> Berth_Runtime_V1_RestoredContainer? {
        var restored = Berth_Runtime_V1_RestoredContainer()
        restored.namespace = container.record.namespace
        restored.id = container.record.id
        if let exit = container.abandonedExit {
            restored.processes = [
                .with {
                    $0.pid = exit.pid
                    $0.status = .stopped
                    $0.exit = exit
                }
            ]
            return restored
        }
        do {
            restored.processes = try parseState(try await keeper(container, .state), container: container)
            return restored
        } catch {
            host.log(.warning, "container \(container.label): STATE failed during Restore: \(error)")
            return nil
        }
    }

    /// The STATE reply: status pid exit_status exited_at oom_count, then per exec
    /// exec_id status pid exit_status exited_at.
    private func parseState(_ fields: [String], container: LiveContainer) throws -> [Berth_Runtime_V1_RestoredProcess] {
        guard fields.count >= 5, (fields.count - 5) % 5 == 0 else {
            throw PluginError(.internal, "container \(container.label): STATE reply has \(fields.count) fields")
        }
        var processes = [process(execID: "", fields[0], fields[1], fields[2], fields[3], container: container)]
        var index = 5
        while index + 5 <= fields.count {
            processes.append(process(execID: fields[index], fields[index + 1], fields[index + 2], fields[index + 3], fields[index + 4], container: container))
            index += 5
        }
        return processes
    }

    private func process(
        execID: String, _ status: String, _ pid: String, _ exitStatus: String, _ exitedAt: String, container: LiveContainer
    ) -> Berth_Runtime_V1_RestoredProcess {
        var process = Berth_Runtime_V1_RestoredProcess()
        process.execID = execID
        process.pid = UInt32(pid) ?? 0
        switch status {
        case "created": process.status = .created
        case "running": process.status = .running
        case "paused": process.status = .paused
        case "stopped":
            process.status = .stopped
            process.exit = Berth_Runtime_V1_Exit(
                namespace: container.record.namespace, id: container.record.id, execID: execID, pid: process.pid,
                status: UInt32(exitStatus) ?? 0, exitedAt: exitedAt)
        default: process.status = .unknown
        }
        return process
    }
}
