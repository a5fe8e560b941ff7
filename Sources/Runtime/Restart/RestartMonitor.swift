import BerthProto
import FoundationEssentials
import Glibc
import Kernel
import Logging
import ServiceLifecycle
import Storage

/// Keeps the containers whose labels ask for it running (`RestartLabels`, `RestartPolicy`).
///
/// It follows `/tasks/exit` on the event bus, so a restart starts as soon as the exit is recorded
/// (containerd's monitor polls every 10 s), and it checks every labelled container once after the
/// daemon started, which brings back those whose task ended or vanished while the daemon was
/// down. A restart deletes the stopped task and creates and starts a new one on the container's
/// snapshot, with no stdio (the client that started the first task is gone).
///
/// Backoff: the n-th consecutive restart waits `baseDelay * 2^(n-1)`, at most `maxDelay`; a task
/// that ran `stableRun` or longer resets the count. A container that cannot be restarted (its
/// snapshot is gone, the runtime refuses) is retried on the same backoff, and logged each time.
public actor RestartMonitor: Service, PluginInstance {
    public static let name = PluginName(type: "io.containerd.internal.v1", id: "restart")
    static let baseDelay = Duration.milliseconds(100)
    static let maxDelay = Duration.seconds(30)
    static let stableRun = Duration.seconds(10)

    let tasks: TaskService
    let snapshots: SnapshotService
    let events: EventBus
    let logger: Logger
    private let clock = ContinuousClock()
    /// Per container: consecutive restarts and when the last one started.
    private var history = [Key: (consecutive: Int, startedAt: ContinuousClock.Instant)]()
    /// Containers with a restart in progress (one at a time each).
    private var restarting = Set<Key>()
    /// Containers whose task ended while a restart of theirs was in progress: a task that exits
    /// at once can do so before the restart has finished, and that exit must not be lost.
    private var recheck = Set<Key>()

    struct Key: Hashable, Sendable {
        var namespace: String
        var id: String
    }

    public init(tasks: TaskService, snapshots: SnapshotService, events: EventBus, logger: Logger) {
        self.tasks = tasks
        self.snapshots = snapshots
        self.events = events
        self.logger = logger
    }

    public func run() async throws {
        let exits = await events.subscribe { $0.topic == "/tasks/exit" }
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for key in await self.labelledContainers() {
                    group.addTask { await self.consider(key, atDaemonStart: true) }
                }
                do {
                    for try await envelope in exits {
                        guard let exit = try? Containerd_Events_TaskExit(serializedBytes: envelope.event.value),
                            exit.id == exit.containerID
                        else { continue }
                        let key = Key(namespace: envelope.namespace, id: exit.containerID)
                        group.addTask { await self.consider(key, atDaemonStart: false) }
                    }
                } catch {
                    self.logger.warning("restart monitor lost its event subscription: \(error)")
                }
            }
        }
    }

    /// Every container in every namespace whose status label asks for running.
    private func labelledContainers() async -> [Key] {
        var keys = [Key]()
        for namespace in (try? await tasks.containers.metadata.namespaces()) ?? [] {
            let containers = (try? await tasks.containers.list(namespace: namespace.name, filters: [])) ?? []
            for container in containers where container.labels[RestartLabels.status] == "running" {
                keys.append(Key(namespace: namespace.name, id: container.id))
            }
        }
        return keys
    }

    /// Restarts the container if its labels and its task's end ask for it, after the backoff.
    private func consider(_ key: Key, atDaemonStart: Bool) async {
        guard !restarting.contains(key) else {
            recheck.insert(key)
            return
        }
        restarting.insert(key)
        defer { restarting.remove(key) }
        var atStart = atDaemonStart
        repeat {
            recheck.remove(key)
            await considerOnce(key, atDaemonStart: atStart)
            atStart = false
        } while recheck.contains(key) && !Task.isCancelled
    }

    /// One decision and, if it asks for one, one restart (retried on the backoff if it fails).
    private func considerOnce(_ key: Key, atDaemonStart: Bool) async {
        while !Task.isCancelled {
            guard let delay = await decision(key, atDaemonStart: atDaemonStart) else { return }
            try? await Task.sleep(for: delay)
            guard !Task.isCancelled, await decision(key, atDaemonStart: atDaemonStart) != nil else { return }
            do {
                try await restart(key)
                return
            } catch {
                logger.warning(
                    "restart failed: \(BerthError.from(error).message)",
                    metadata: ["namespace": "\(key.namespace)", "container": "\(key.id)"])
            }
        }
    }

    /// How long to wait before restarting, or nil when the container is not to be restarted.
    private func decision(_ key: Key, atDaemonStart: Bool) async -> Duration? {
        guard let container = try? await tasks.containers.get(namespace: key.namespace, id: key.id),
            container.labels[RestartLabels.status] == "running",
            let policy = RestartPolicy(label: container.labels[RestartLabels.policy])
        else { return nil }
        let task = try? await tasks.supervisor.get(namespace: key.namespace, containerID: key.id, execID: "")
        let exitStatus: UInt32?
        switch task?.phase {
        case .stopped(_, let exit)?: exitStatus = exit.status
        case nil: exitStatus = nil
        default: return nil
        }
        let restarts = Int(container.labels[RestartLabels.count] ?? "0") ?? 0
        let stopped = container.labels[RestartLabels.explicitlyStopped] == "true"
        guard policy.restarts(exitStatus: exitStatus, restarts: restarts, explicitlyStopped: stopped, atDaemonStart: atDaemonStart) else {
            return nil
        }
        var consecutive = history[key]?.consecutive ?? 0
        if let startedAt = history[key]?.startedAt, clock.now - startedAt >= Self.stableRun { consecutive = 0 }
        return consecutive == 0 ? .zero : min(Self.maxDelay, Self.baseDelay * (1 << min(consecutive - 1, 20)))
    }

    private func restart(_ key: Key) async throws {
        if let task = try? await tasks.supervisor.get(namespace: key.namespace, containerID: key.id, execID: ""),
            case .stopped = task.phase
        {
            _ = try await tasks.supervisor.delete(namespace: key.namespace, containerID: key.id)
        }
        var container = try await tasks.containers.get(namespace: key.namespace, id: key.id)
        let rootfs =
            container.snapshotKey.isEmpty
            ? [] : try await snapshots.mounts(namespace: key.namespace, snapshotter: container.snapshotter, key: container.snapshotKey)
        let consecutive = (history[key]?.consecutive ?? 0) + 1
        history[key] = (consecutive, clock.now)
        _ = try await tasks.supervisor.create(
            TaskCreation(
                namespace: key.namespace, containerID: key.id, runtimeName: container.runtime.name,
                spec: Array(container.spec.value), rootfs: rootfs, stdio: ProcessStdio(),
                options: container.runtime.hasOptions ? container.runtime.options : nil))
        _ = try await tasks.supervisor.start(namespace: key.namespace, containerID: key.id, execID: "")
        container.labels[RestartLabels.count] = String((Int(container.labels[RestartLabels.count] ?? "0") ?? 0) + 1)
        _ = try await tasks.containers.update(namespace: key.namespace, container, paths: ["labels.\(RestartLabels.count)"])
        logger.info("restarted", metadata: ["namespace": "\(key.namespace)", "container": "\(key.id)", "restarts": "\(consecutive)"])
    }
}
