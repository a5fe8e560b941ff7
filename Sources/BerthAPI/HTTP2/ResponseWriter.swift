import GRPCCore
import NIOCore
import Synchronization

/// Counts the response bytes an RPC has handed to its connection and that have not reached the
/// socket yet (the client's flow-control window holds them back). A writer that gets more than
/// `limit` ahead waits here, and so does one whose connection's writers together are more than
/// the `budget`'s limit ahead, so server-streaming RPCs to a slow reader use bounded memory
/// however many streams it opens.
final class SendGate: Sendable {
    private struct State {
        var queued = 0
        var waiter: CheckedContinuation<Void, any Error>?
        var closed = false
    }

    private let state = Mutex(State())
    private let limit: Int
    let budget: ConnectionSendBudget
    /// Set before `close` takes the budget's lock, so a writer that starts waiting there later sees it.
    let isClosed = Atomic<Bool>(false)
    /// Parts of this stream handed to the event loop as jobs and not run yet.
    let queuedParts = Atomic<Int>(0)

    init(limit: Int, budget: ConnectionSendBudget) {
        self.limit = limit
        self.budget = budget
    }

    /// Fails once the stream has ended (reset by the client, closed connection, status sent).
    func checkOpen() throws {
        if state.withLock({ $0.closed }) { throw Self.closedError }
    }

    func add(_ bytes: Int) {
        let added: Bool = state.withLock {
            guard !$0.closed else { return false }
            $0.queued += bytes
            return true
        }
        if added { budget.add(bytes) }
    }

    /// Returns when the queue, and the connection's, are at or below their limits again.
    func waitForRoom() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let ready: Result<Void, any Error>? = state.withLock {
                if $0.closed { return .failure(Self.closedError) }
                if $0.queued <= limit { return .success(()) }
                $0.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
        try await budget.waitForRoom(for: self)
    }

    /// Called by the connection, on its event loop, when `bytes` went to the socket.
    /// A closed gate has already returned what it held to the budget.
    func drained(_ bytes: Int) {
        let (waiter, counted): (CheckedContinuation<Void, any Error>?, Bool) = state.withLock { state in
            guard !state.closed else { return (nil, false) }
            state.queued -= bytes
            guard state.queued <= limit else { return (nil, true) }
            defer { state.waiter = nil }
            return (state.waiter, true)
        }
        waiter?.resume()
        if counted { budget.drained(bytes) }
    }

    /// Ends the stream for writers: a waiting one and every later write fail; what it still had
    /// queued leaves the connection's budget.
    func close() {
        isClosed.store(true, ordering: .sequentiallyConsistent)
        let (waiter, queued): (CheckedContinuation<Void, any Error>?, Int) = state.withLock { state in
            guard !state.closed else { return (nil, 0) }
            state.closed = true
            defer {
                state.waiter = nil
                state.queued = 0
            }
            return (state.waiter, state.queued)
        }
        waiter?.resume(throwing: Self.closedError)
        budget.drained(queued)
        budget.release(self)
    }

    static let closedError = RPCError(code: .cancelled, message: "the stream was closed: the client cancelled it or went away")
}

/// The response bytes queued by all the writers of one connection. A writer that finds them above
/// `limit` waits until the connection has written enough, or until its own stream closes.
final class ConnectionSendBudget: Sendable {
    private struct State {
        var queued = 0
        var waiters: [ObjectIdentifier: CheckedContinuation<Void, any Error>] = [:]
    }

    private let state = Mutex(State())
    let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    func add(_ bytes: Int) {
        state.withLock { $0.queued += bytes }
    }

    func waitForRoom(for gate: SendGate) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let ready: Result<Void, any Error>? = state.withLock {
                if gate.isClosed.load(ordering: .sequentiallyConsistent) { return .failure(SendGate.closedError) }
                if $0.queued <= limit { return .success(()) }
                $0.waiters[ObjectIdentifier(gate)] = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }

    func drained(_ bytes: Int) {
        guard bytes > 0 else { return }
        let waiters: [CheckedContinuation<Void, any Error>] = state.withLock { state in
            state.queued -= bytes
            guard state.queued <= limit, !state.waiters.isEmpty else { return [] }
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// A closed stream's writer stops waiting.
    func release(_ gate: SendGate) {
        state.withLock { $0.waiters.removeValue(forKey: ObjectIdentifier(gate)) }?.resume(throwing: SendGate.closedError)
    }
}

/// The response side of one stream, used from the RPC's task. Parts reach the connection in
/// order: on the connection's event loop with no part of the stream still queued, a part is
/// handed over at once; otherwise it goes through `execute`, behind the parts queued before it
/// (a task can move between threads). The connection frames and flow-controls them.
struct ResponseWriter: ClosableRPCWriterProtocol {
    typealias Element = RPCResponsePart<WireBytes>

    /// Bytes of a gRPC message prefix: compressed flag and 32-bit length.
    static let prefixLength = 5

    let stream: UInt32
    let connection: NIOLoopBound<HTTP2ServerConnection>
    let gate: SendGate

    func write(_ element: Element) async throws {
        try gate.checkOpen()
        var size = 0
        if case .message(let bytes) = element {
            size = bytes.count + Self.prefixLength
            gate.add(size)
        }
        submit { $0.send(element, on: stream) }
        if size > 0 { try await gate.waitForRoom() }
    }

    func write(contentsOf elements: some Sequence<Element>) async throws {
        for element in elements { try await write(element) }
    }

    func finish() async {
        submit { $0.finish(stream, error: nil) }
    }

    func finish(throwing error: any Error) async {
        submit { $0.finish(stream, error: error) }
    }

    private func submit(_ body: @escaping @Sendable (HTTP2ServerConnection) -> Void) {
        let connection = self.connection, gate = self.gate
        if connection.eventLoop.inEventLoop, gate.queuedParts.load(ordering: .acquiring) == 0 {
            body(connection.value)
            return
        }
        gate.queuedParts.add(1, ordering: .relaxed)
        connection.eventLoop.execute {
            body(connection.value)
            gate.queuedParts.subtract(1, ordering: .releasing)
        }
    }
}
