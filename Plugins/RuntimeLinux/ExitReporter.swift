import BerthPluginSDK
import BerthProto
import FoundationEssentials
import Glibc
import SwiftProtobuf
import Synchronization

/// One fact for the kernel's supervisor, with what to do once the kernel has recorded it.
struct SupervisorReport: Sendable {
    enum Fact: Sendable {
        case exit(Berth_Runtime_V1_Exit)
        case outOfMemory(Berth_Runtime_V1_OutOfMemory)
    }

    let fact: Fact
    /// Runs after the kernel answered OK (for an exit: ACK_EXIT to the keeper).
    let recorded: @Sendable () async -> Void
    /// False once the container is gone: a report nobody can acknowledge stops retrying.
    let stillWanted: @Sendable () -> Bool

    /// Identifies the fact, so that an exit sent again by the keeper while a report of it is
    /// under way is not reported twice, and OOM kills of one container coalesce while one
    /// is being reported (the reports under way stay bounded by the processes held).
    var key: String {
        switch fact {
        case .exit(let exit): "exit/\(exit.namespace)/\(exit.id)/\(exit.execID)"
        case .outOfMemory(let oom): "oom/\(oom.namespace)/\(oom.id)"
        }
    }
}

/// Sends exits and OOM kills to the kernel's Supervisor service through the host table
/// (runtime.proto: "the runtime keeps the fact and sends it again") and only then lets the
/// keeper forget them. A failed call (supervisor not started yet, daemon stopping) is retried
/// after 50 ms, doubling up to 2 s, until it succeeds, the container is deleted or the
/// reporter stops; an exit not acknowledged by then stays in the keeper and is sent again on
/// the next SUBSCRIBE, by the next plugin instance if need be.
///
/// Lifecycle: `run()` serves reports until `finish()`; each report is its own child task.
final class ExitReporter: Sendable {
    static let supervisor = "io.containerd.service.v1.tasks-service"
    static let firstDelay: UInt64 = 50_000_000
    static let longestDelay: UInt64 = 2_000_000_000

    private let host: PluginHost
    private let stream: AsyncStream<SupervisorReport>
    private let input: AsyncStream<SupervisorReport>.Continuation
    private let underWay = Mutex(Set<String>())

    init(host: PluginHost) {
        self.host = host
        (stream, input) = AsyncStream.makeStream(of: SupervisorReport.self)
    }

    /// Queues `report` unless the same fact is being reported already.
    func submit(_ report: SupervisorReport) {
        let key = report.key
        guard underWay.withLock({ $0.insert(key).inserted }) else { return }
        input.yield(report)
    }

    /// Delivers reports until `finish()`; cancelling the task abandons the retries.
    func run() async {
        await withDiscardingTaskGroup { group in
            for await report in stream {
                group.addTask { await self.deliver(report) }
            }
        }
    }

    /// Ends `run()` once the reports under way are done or cancelled.
    func finish() {
        input.finish()
    }

    private func deliver(_ report: SupervisorReport) async {
        defer { _ = underWay.withLock { $0.remove(report.key) } }
        var delay = Self.firstDelay
        var attempts = 0
        while !Task.isCancelled, report.stillWanted() {
            do {
                switch report.fact {
                case .exit(let exit):
                    _ = try await host.call(Self.supervisor, BerthContracts.SupervisorContract.exited.path, exit, returning: Google_Protobuf_Empty.self)
                case .outOfMemory(let oom):
                    _ = try await host.call(
                        Self.supervisor, BerthContracts.SupervisorContract.outOfMemoryKilled.path, oom, returning: Google_Protobuf_Empty.self)
                }
                await report.recorded()
                return
            } catch {
                attempts += 1
                if attempts == 1 || attempts % 30 == 0 {
                    host.log(.warning, "reporting \(report.key) failed (attempt \(attempts)), will retry: \(error)")
                }
            }
            try? await Task.sleep(nanoseconds: delay)
            delay = min(delay * 2, Self.longestDelay)
        }
    }
}

extension Berth_Runtime_V1_Exit {
    /// An exit from the keeper's fields; `exitedAt` is "SEC.NSEC".
    init(namespace: String, id: String, execID: String, pid: UInt32, status: UInt32, exitedAt: String) {
        self.init()
        self.namespace = namespace
        self.id = id
        self.execID = execID
        self.pid = pid
        self.exitStatus = status
        let parts = exitedAt.split(separator: ".")
        var time = Google_Protobuf_Timestamp()
        time.seconds = parts.first.flatMap { Int64($0) } ?? 0
        time.nanos = parts.count > 1 ? Int32(parts[1]) ?? 0 : 0
        self.exitedAt = time
    }
}
