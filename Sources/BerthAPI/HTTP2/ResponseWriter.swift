import GRPCCore
import NIOCore
import Synchronization

/// Counts the response bytes an RPC has handed to its connection and that have not reached the
/// socket yet (the client's flow-control window holds them back). A writer that gets more than
/// `limit` ahead waits here, so a server-streaming RPC to a slow reader uses bounded memory.
final class SendGate: Sendable {
    private struct State {
        var queued = 0
        var waiter: CheckedContinuation<Void, any Error>?
        var closed = false
    }

    private let state = Mutex(State())
    private let limit: Int
    /// Parts of this stream handed to the event loop as jobs and not run yet.
    let queuedParts = Atomic<Int>(0)

    init(limit: Int) {
        self.limit = limit
    }

    /// Fails once the stream has ended (reset by the client, closed connection, status sent).
    func checkOpen() throws {
        if state.withLock({ $0.closed }) { throw Self.closedError }
    }

    func add(_ bytes: Int) {
        state.withLock { $0.queued += bytes }
    }

    /// Returns when the queue is at or below the limit again.
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
    }

    /// Called by the connection, on its event loop, when `bytes` went to the socket.
    func drained(_ bytes: Int) {
        let waiter: CheckedContinuation<Void, any Error>? = state.withLock { state in
            state.queued -= bytes
            guard state.queued <= limit else { return nil }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Ends the stream for writers: a waiting one and every later write fail.
    func close() {
        let waiter: CheckedContinuation<Void, any Error>? = state.withLock { state in
            state.closed = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(throwing: Self.closedError)
    }

    static let closedError = RPCError(code: .cancelled, message: "the stream was closed: the client cancelled it or went away")
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
