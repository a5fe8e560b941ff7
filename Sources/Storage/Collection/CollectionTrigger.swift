import FoundationEssentials
import Glibc
import Kernel
import Synchronization

/// How services ask the garbage collector for a run. Removing an object, deleting a lease or
/// changing a `containerd.io/gc.*` label can make other objects unreachable; those services
/// call `schedule()`. Runs are coalesced: one run answers every request made before it began.
public final class CollectionTrigger: Sendable {
    struct Request: Sendable {
        let sequence: Int
        let done: CheckedContinuation<Void, Never>?
    }

    private let counter = Atomic<Int>(0)
    private let expiryHint = Mutex<Date?>(nil)
    let requests: AsyncStream<Request>
    private let continuation: AsyncStream<Request>.Continuation

    public init() {
        (requests, continuation) = AsyncStream.makeStream()
    }

    /// Asks for a collection soon and returns at once.
    public func schedule() {
        continuation.yield(Request(sequence: counter.add(1, ordering: .relaxed).newValue, done: nil))
    }

    /// Asks for a collection and returns when one that began after this call has finished
    /// (at once if no collector runs).
    public func collect() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let request = Request(sequence: counter.add(1, ordering: .relaxed).newValue, done: done)
            if case .terminated = continuation.yield(request) { done.resume() }
        }
    }

    /// Tells the collector that a lease expires at `date`, so that it runs then.
    public func noteExpiry(_ date: Date) {
        expiryHint.withLock { $0 = min($0 ?? date, date) }
    }

    /// The number of the latest request; a run that starts now answers all up to it.
    var latest: Int { counter.load(ordering: .relaxed) }

    /// Whether a noted expiry has passed.
    func expiryPassed(_ now: Date) -> Bool { expiryHint.withLock { $0.map { $0 <= now } ?? false } }

    /// After a run: keep noted expiries still ahead and the earliest one the run found.
    func replaceExpiry(_ next: Date?, now: Date) {
        expiryHint.withLock { hint in
            hint = [hint, next].compactMap { $0 }.filter { $0 > now }.min()
        }
    }

    func finish() { continuation.finish() }
}

/// A lock for async code, handed over in arrival order.
public actor AsyncGate {
    private var held = false
    private var waiters = [CheckedContinuation<Void, Never>]()

    public init() {}

    /// Runs `body` while holding the gate.
    public nonisolated func withLock<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        await acquire()
        do {
            let value = try await body()
            await release()
            return value
        } catch {
            await release()
            throw error
        }
    }

    private func acquire() async {
        guard held else {
            held = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    private func release() {
        if waiters.isEmpty { held = false } else { waiters.removeFirst().resume() }
    }
}

extension LabelUpdate {
    /// Whether an update touches a `containerd.io/gc.*` label (or replaces them all), which can
    /// change what the garbage collector keeps.
    static func mayAffectCollection(paths: [String]) -> Bool {
        paths.isEmpty || paths.contains("labels")
            || paths.contains { $0.hasPrefix("labels.") && CollectionLabel.affectsCollection(String($0.dropFirst("labels.".count))) }
    }
}

/// A service whose records hold storage objects the collector must keep. Its query selects one
/// row per holding record: namespace, snapshotter, snapshot key (either may be "") and the
/// record's labels as JSON, whose `containerd.io/gc.ref.*` references count too. It runs inside
/// the collection's transaction.
public protocol CollectionRoots: Sendable {
    var collectionRootQuery: String { get }
}
