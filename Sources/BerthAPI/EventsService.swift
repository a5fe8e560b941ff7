import BerthProto
import Filters
import FoundationEssentials
import GRPCCore
import Glibc
import Kernel
import SwiftProtobuf

/// containerd.services.events.v1.Events over the kernel's event bus. A subscriber that falls
/// more than the bus's buffer behind is ended with RESOURCE_EXHAUSTED, never silently skipped.
struct EventsService: Containerd_Services_Events_V1_Events.ServiceProtocol {
    let events: EventBus

    typealias Envelope = Containerd_Services_Events_V1_Envelope

    func publish(request: ServerRequest<Containerd_Services_Events_V1_PublishRequest>, context: ServerContext) async throws
        -> ServerResponse<Google_Protobuf_Empty>
    {
        let namespace = try RequestContext.namespace(request.metadata)
        try Self.validate(topic: request.message.topic)
        guard request.message.hasEvent else { throw BerthError.invalidArgument("event for topic \(request.message.topic) is missing") }
        events.publish(EventEnvelope(namespace: namespace, topic: request.message.topic, event: request.message.event))
        return ServerResponse(message: Google_Protobuf_Empty())
    }

    func forward(request: ServerRequest<Containerd_Services_Events_V1_ForwardRequest>, context: ServerContext) async throws
        -> ServerResponse<Google_Protobuf_Empty>
    {
        let envelope = request.message.envelope
        try Self.validate(topic: envelope.topic)
        try Validation.namespaceName(envelope.namespace)
        events.publish(
            EventEnvelope(
                timestamp: envelope.hasTimestamp ? envelope.timestamp.date : Date(),
                namespace: envelope.namespace, topic: envelope.topic, event: envelope.event))
        return ServerResponse(message: Google_Protobuf_Empty())
    }

    func subscribe(request: ServerRequest<Containerd_Services_Events_V1_SubscribeRequest>, context: ServerContext) async throws
        -> StreamingServerResponse<Envelope>
    {
        let stream = await events.subscribe(filters: try FilterSet(request.message.filters))
        return StreamingServerResponse { writer in
            // Ends when the bus ends subscriptions: APIServer asks it to when it begins to stop,
            // as its graceful shutdown would otherwise wait for this stream.
            for try await envelope in stream {
                try await writer.write(
                    .with {
                        $0.timestamp = Google_Protobuf_Timestamp(date: envelope.timestamp)
                        $0.namespace = envelope.namespace
                        $0.topic = envelope.topic
                        $0.event = envelope.event
                    })
            }
            return [:]
        }
    }

    /// containerd's rule: a topic is "/"-separated identifiers, at least one, starting with "/".
    static func validate(topic: String) throws(BerthError) {
        let parts = topic.split(separator: "/", omittingEmptySubsequences: false)
        guard topic.hasPrefix("/"), parts.count >= 2, parts.dropFirst().allSatisfy({ !$0.isEmpty }) else {
            throw .invalidArgument("event topic \"\(topic)\" must be \"/\" followed by \"/\"-separated names")
        }
        for part in parts.dropFirst() {
            guard part.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
                throw .invalidArgument("event topic \"\(topic)\" has an invalid name \"\(part)\"")
            }
        }
    }
}
