import FoundationEssentials
import Glibc
import ServiceLifecycle
import SwiftProtobuf
import Synchronization

/// One event as it travels on the bus: where and when it happened, and its typed payload.
public struct EventEnvelope: Sendable {
    public var timestamp: Date
    /// The containerd namespace the event belongs to, or "" for daemon-wide events.
    public var namespace: String
    /// A path such as `/snapshot/prepare` or `/tasks/exit`.
    public var topic: String
    /// The payload message, packed with its type URL.
    public var event: Google_Protobuf_Any

    public init(timestamp: Date = Date(), namespace: String, topic: String, event: Google_Protobuf_Any) {
        self.timestamp = timestamp
        self.namespace = namespace
        self.topic = topic
        self.event = event
    }

    /// Field lookup for containerd filters: `topic` and `namespace`.
    public func field(_ path: [String]) -> String? {
        switch path {
        case ["topic"]: topic
        case ["namespace"]: namespace
        default: nil
        }
    }
}

/// The kernel's event bus: many publishers, many filtered subscribers.
///
/// Policy: publishing never blocks and never waits for a subscriber. Each subscriber has a
/// bounded buffer; a subscriber that lets it fill is ended with `.resourceExhausted`, after it
/// has received every event buffered before the overflow. It therefore always knows when it
/// lost events (containerd's exchange, by contrast, blocks publishers on a slow subscriber).
/// Events reach each subscriber in publication order.
public actor EventBus: Service {
    /// Events a subscriber may have pending before it is ended.
    public static let defaultBufferSize = 1024

    private struct Subscriber {
        var matches: @Sendable (EventEnvelope) -> Bool
        var continuation: AsyncThrowingStream<EventEnvelope, any Error>.Continuation
        var bufferSize: Int
    }

    private nonisolated let subscriptionsEnded = Atomic<Bool>(false)
    private let inbox: AsyncStream<EventEnvelope>
    private nonisolated let inboxContinuation: AsyncStream<EventEnvelope>.Continuation
    private var subscribers = [UInt64: Subscriber]()
    private var nextID: UInt64 = 0

    public init() {
        (inbox, inboxContinuation) = AsyncStream.makeStream(of: EventEnvelope.self, bufferingPolicy: .unbounded)
    }

    /// Queues an event for delivery; callable from any thread or task, returns at once.
    public nonisolated func publish(_ envelope: EventEnvelope) {
        inboxContinuation.yield(envelope)
    }

    /// Packs `message` and publishes it under `topic`.
    public nonisolated func publish(topic: String, namespace: String, _ message: any SwiftProtobuf.Message) {
        guard let any = try? Google_Protobuf_Any(message: message, typePrefix: "") else { return }
        var packed = any
        packed.typeURL = type(of: message).protoMessageName
        publish(EventEnvelope(namespace: namespace, topic: topic, event: packed))
    }

    /// Starts a subscription that receives the events `matches` accepts from now on. The
    /// predicate runs on the bus for every event published: keep it cheap and non-blocking.
    public func subscribe(
        bufferSize: Int = EventBus.defaultBufferSize,
        matching matches: @escaping @Sendable (EventEnvelope) -> Bool
    )
        -> AsyncThrowingStream<EventEnvelope, any Error>
    {
        let (stream, continuation) = AsyncThrowingStream.makeStream(
            of: EventEnvelope.self, throwing: (any Error).self, bufferingPolicy: .bufferingOldest(bufferSize))
        // A subscription made after the flag was set ends here; one made before it is ended by
        // the finishAll that endSubscriptions queues after setting it.
        if subscriptionsEnded.load(ordering: .sequentiallyConsistent) {
            continuation.finish()
            return stream
        }
        nextID += 1
        let id = nextID
        subscribers[id] = Subscriber(matches: matches, continuation: continuation, bufferSize: bufferSize)
        // A subscriber whose task is cancelled (its client went away) or that drops the stream
        // leaves at once: waiting for a matching event would keep it, and slow every delivery,
        // forever when its filters never match.
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            Task { await self.unsubscribe(id) }
        }
        return stream
    }

    private func unsubscribe(_ id: UInt64) {
        subscribers[id] = nil
    }

    /// Number of live subscriptions (a cancelled or dropped one leaves once its termination is seen).
    public var subscriberCount: Int { subscribers.count }

    /// Delivers queued events until the task is cancelled or the service group shuts down.
    public func run() async {
        await cancelWhenGracefulShutdown {
            for await envelope in self.inbox {
                await self.deliver(envelope)
            }
        }
        finishAll()
    }

    private func deliver(_ envelope: EventEnvelope) {
        for (id, subscriber) in subscribers where subscriber.matches(envelope) {
            switch subscriber.continuation.yield(envelope) {
            case .enqueued: continue
            case .terminated: subscribers[id] = nil
            case .dropped:
                subscriber.continuation.finish(
                    throwing: BerthError(
                        .resourceExhausted,
                        "event subscriber fell \(subscriber.bufferSize) events behind at topic \(envelope.topic); subscription ended, later events were not delivered"
                    ))
                subscribers[id] = nil
            @unknown default: continue
            }
        }
    }

    /// Ends every subscription, and every later one at once; publishing goes on. The API server
    /// calls it when it begins to stop, so that open Subscribe streams end instead of holding
    /// the server's shutdown up.
    public nonisolated func endSubscriptions() {
        subscriptionsEnded.store(true, ordering: .sequentiallyConsistent)
        Task { await self.finishAll() }
    }

    private func finishAll() {
        for subscriber in subscribers.values { subscriber.continuation.finish() }
        subscribers.removeAll()
    }
}
