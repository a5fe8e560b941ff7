import GRPCCore
import NIOCore
import Synchronization

/// The bytes of one gRPC message as the transport received or will send them: a view of a
/// `ByteBuffer`, so a request message is a slice of what the socket read, not a copy.
public struct WireBytes: GRPCContiguousBytes, Sendable {
    var buffer: ByteBuffer

    init(_ buffer: ByteBuffer) {
        self.buffer = buffer
    }

    public init(repeating byte: UInt8, count: Int) {
        buffer = ByteBuffer(repeating: byte, count: count)
    }

    public init(_ sequence: some Sequence<UInt8>) {
        buffer = ByteBuffer(bytes: sequence)
    }

    public var count: Int { buffer.readableBytes }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeReadableBytes(body)
    }

    public mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeMutableReadableBytes(body)
    }
}

/// The request side of one stream: the connection pushes parts on its event loop, the RPC's
/// task takes them. Taking a message returns its bytes to the stream's flow-control window
/// (through `credit`), so a client can never have more than one window of requests queued here
/// however slowly the handler reads: that is the backpressure for client-streaming RPCs.
final class RequestQueue: AsyncSequence, Sendable {
    typealias Element = RPCRequestPart<WireBytes>
    typealias Part = RPCRequestPart<WireBytes>

    private struct State {
        var parts: [(part: Part, size: Int)] = []
        var head = 0
        var end: (any Error)?? = nil  // .some(nil): finished; .some(error): failed
        var waiter: CheckedContinuation<Part?, any Error>?
        var uncredited = 0
        /// The RPC's task, waiting for the first message before its handler starts.
        var firstWaiter: CheckedContinuation<Int, Never>?

        /// The first request message's size once it (or the end) is queued, 0 for no message.
        var firstMessageSize: Int? {
            for (part, _) in parts[head...] { if case .message(let bytes) = part { return bytes.count } }
            return end != nil ? 0 : nil
        }
    }

    private let state = Mutex(State())
    /// How many consumed bytes are batched before they are returned to the window.
    private let creditBatch: Int
    private let credit: @Sendable (Int) -> Void

    init(creditBatch: Int, credit: @escaping @Sendable (Int) -> Void) {
        self.creditBatch = creditBatch
        self.credit = credit
    }

    /// Adds a part; `size` is what it occupied of the flow-control window.
    func push(_ part: Part, size: Int = 0) {
        let (waiter, first): (CheckedContinuation<Part?, any Error>?, (CheckedContinuation<Int, Never>, Int)?) = state.withLock {
            guard $0.end == nil else { return (nil, nil) }
            if let waiter = $0.waiter {
                $0.waiter = nil
                $0.uncredited += size
                return (waiter, nil)
            }
            $0.parts.append((part, size))
            return (nil, Self.takeFirstWaiter(&$0))
        }
        waiter?.resume(returning: part)
        if let (firstWaiter, size) = first { firstWaiter.resume(returning: size) }
        flushCredit()
    }

    /// Returns once the first request message, or the end of the requests, is queued: the size
    /// of that message, 0 without one. The RPC's task asks before its handler starts, to decide
    /// where the handler runs (see `ConnectionHub.accept`).
    func firstMessageSize() async -> Int {
        if let size = state.withLock({ $0.firstMessageSize }) { return size }
        return await withCheckedContinuation { (continuation: CheckedContinuation<Int, Never>) in
            let size: Int? = state.withLock {
                if let size = $0.firstMessageSize { return size }
                $0.firstWaiter = continuation
                return nil
            }
            if let size { continuation.resume(returning: size) }
        }
    }

    private static func takeFirstWaiter(_ state: inout State) -> (CheckedContinuation<Int, Never>, Int)? {
        guard let waiter = state.firstWaiter, let size = state.firstMessageSize else { return nil }
        state.firstWaiter = nil
        return (waiter, size)
    }

    /// Ends the sequence after the parts already queued; with an error, the error replaces them.
    func finish(throwing error: (any Error)? = nil) {
        let (waiter, first): (CheckedContinuation<Part?, any Error>?, (CheckedContinuation<Int, Never>, Int)?) = state.withLock {
            guard $0.end == nil else { return (nil, nil) }
            $0.end = .some(error)
            if error != nil {
                $0.parts.removeAll()
                $0.head = 0
            }
            let waiter = $0.waiter
            $0.waiter = nil
            return (waiter, Self.takeFirstWaiter(&$0))
        }
        if let error { waiter?.resume(throwing: error) } else { waiter?.resume(returning: nil) }
        if let (firstWaiter, size) = first { firstWaiter.resume(returning: size) }
    }

    private func next() async throws -> Part? {
        let part: Part? = try await withCheckedThrowingContinuation { continuation in
            let ready: Result<Part?, any Error>? = state.withLock { state in
                if let taken = Self.take(&state) { return taken }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
        flushCredit()
        return part
    }

    /// What the consumer gets now: a queued part, the end, or nil when it has to wait.
    private static func take(_ state: inout State) -> Result<Part?, any Error>? {
        if state.head < state.parts.count {
            let (part, size) = state.parts[state.head]
            state.head += 1
            state.uncredited += size
            if state.head == state.parts.count {
                state.parts.removeAll(keepingCapacity: true)
                state.head = 0
            }
            return .success(part)
        }
        guard let end = state.end else { return nil }
        if let error = end { return .failure(error) }
        return .success(nil)
    }

    private func flushCredit() {
        let amount: Int = state.withLock { state in
            guard state.uncredited >= creditBatch else { return 0 }
            defer { state.uncredited = 0 }
            return state.uncredited
        }
        if amount > 0 { credit(amount) }
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        let queue: RequestQueue
        mutating func next() async throws -> Part? { try await queue.next() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(queue: self) }
}
