import Filters
import Foundation
import SwiftProtobuf
import Testing

@testable import Kernel

@Suite struct EventBusTests {
    private func envelope(_ topic: String, _ n: Int = 0) -> EventEnvelope {
        var any = Google_Protobuf_Any()
        any.typeURL = "test.Event"
        any.value = Data([UInt8(n & 0xFF)])
        return EventEnvelope(namespace: "default", topic: topic, event: any)
    }

    /// Runs `body` with a bus whose delivery loop is running.
    private func withBus(_ body: @Sendable (EventBus) async throws -> Void) async throws {
        let bus = EventBus()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await bus.run() }
            try await body(bus)
            group.cancelAll()
        }
    }

    @Test func bus_twoSubscribers_bothReceiveEveryMatchingEventInOrder() async throws {
        try await withBus { bus in
            let all = await bus.subscribe(filters: try FilterSet([]))
            let exits = await bus.subscribe(filters: try FilterSet(["topic==/tasks/exit"]))
            for n in 0..<3 { bus.publish(envelope(n == 1 ? "/tasks/start" : "/tasks/exit", n)) }
            var allIterator = all.makeAsyncIterator()
            var received = [String]()
            for _ in 0..<3 { received.append(try await allIterator.next()!.topic) }
            #expect(received == ["/tasks/exit", "/tasks/start", "/tasks/exit"])
            var exitIterator = exits.makeAsyncIterator()
            #expect(try await exitIterator.next()?.event.value == Data([0]))
            #expect(try await exitIterator.next()?.event.value == Data([2]))
        }
    }

    @Test func bus_slowSubscriber_isEndedWithVisibleErrorAfterItsBuffer_othersUnaffected() async throws {
        try await withBus { bus in
            let slow = await bus.subscribe(filters: try FilterSet([]), bufferSize: 4)
            let fast = await bus.subscribe(filters: try FilterSet([]), bufferSize: 100)
            for n in 0..<10 { bus.publish(envelope("/t", n)) }  // returns at once: nobody reads yet
            var fastIterator = fast.makeAsyncIterator()
            for n in 0..<10 { #expect(try await fastIterator.next()?.event.value == Data([UInt8(n)])) }
            var values = [UInt8]()
            var ending: (any Error)?
            do {
                for try await event in slow { values.append(event.event.value.first!) }
            } catch {
                ending = error
            }
            #expect(values == [0, 1, 2, 3])
            let error = try #require(ending as? BerthError)
            #expect(error.code == .resourceExhausted)
            #expect(error.message.contains("fell 4 events behind at topic /t"))
            #expect(await bus.subscriberCount == 1)
        }
    }

    @Test func bus_subscriberTaskCancelled_leavesWithoutAMatchingEvent() async throws {
        try await withBus { bus in
            var waiting: [Task<Void, any Error>] = []
            for _ in 0..<100 {
                let stream = await bus.subscribe(filters: try FilterSet(["topic==/never"]))
                waiting.append(Task { for try await _ in stream {} })
            }
            #expect(await bus.subscriberCount == 100)
            for task in waiting { task.cancel() }
            for task in waiting { _ = try? await task.value }
            var count = await bus.subscriberCount
            for _ in 0..<200 where count > 0 {
                try await Task.sleep(for: .milliseconds(5))
                count = await bus.subscriberCount
            }
            #expect(count == 0)
        }
    }
}
