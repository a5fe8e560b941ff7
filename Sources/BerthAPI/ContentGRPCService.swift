import BerthProto
import FoundationEssentials
import GRPCCore
import Glibc
import Kernel
import Storage
import SwiftProtobuf

/// containerd.services.content.v1.Content: a thin forwarder to the kernel's ContentService.
struct ContentGRPCService: Containerd_Services_Content_V1_Content.ServiceProtocol {
    let content: ContentService

    /// Bytes per Read response message, far below the 16 MiB limit.
    static let readChunk: Int64 = 1 << 20

    typealias Info = Containerd_Services_Content_V1_Info

    func info(request: ServerRequest<Containerd_Services_Content_V1_InfoRequest>, context: ServerContext) async throws
        -> ServerResponse<Containerd_Services_Content_V1_InfoResponse>
    {
        let record = try await content.info(namespace: try RequestContext.namespace(request.metadata), digest: request.message.digest)
        return ServerResponse(message: .with { $0.info = Self.info(record) })
    }

    func update(request: ServerRequest<Containerd_Services_Content_V1_UpdateRequest>, context: ServerContext) async throws
        -> ServerResponse<Containerd_Services_Content_V1_UpdateResponse>
    {
        let m = request.message
        let record = try await content.update(
            namespace: try RequestContext.namespace(request.metadata), digest: m.info.digest,
            labels: m.info.labels, paths: m.updateMask.paths)
        return ServerResponse(message: .with { $0.info = Self.info(record) })
    }

    func list(request: ServerRequest<Containerd_Services_Content_V1_ListContentRequest>, context: ServerContext) async throws
        -> StreamingServerResponse<Containerd_Services_Content_V1_ListContentResponse>
    {
        let records = try await content.list(namespace: try RequestContext.namespace(request.metadata), filters: request.message.filters)
        return StreamingServerResponse { writer in
            for start in stride(from: 0, to: records.count, by: 100) {
                try await writer.write(.with { $0.info = records[start..<min(start + 100, records.count)].map(Self.info) })
            }
            return [:]
        }
    }

    func delete(request: ServerRequest<Containerd_Services_Content_V1_DeleteContentRequest>, context: ServerContext) async throws
        -> ServerResponse<Google_Protobuf_Empty>
    {
        try await content.delete(namespace: try RequestContext.namespace(request.metadata), digest: request.message.digest)
        return ServerResponse(message: Google_Protobuf_Empty())
    }

    func read(request: ServerRequest<Containerd_Services_Content_V1_ReadContentRequest>, context: ServerContext) async throws
        -> StreamingServerResponse<Containerd_Services_Content_V1_ReadContentResponse>
    {
        let namespace = try RequestContext.namespace(request.metadata)
        let m = request.message
        let blob = try await content.open(namespace: namespace, digest: m.digest)
        let record = blob.record
        let start = max(0, m.offset)
        guard start <= record.size else {
            throw BerthError(.outOfRange, "read of content \(m.digest) at offset \(start), beyond its \(record.size) bytes")
        }
        let end = m.size > 0 ? min(record.size, start + m.size) : record.size
        // The first piece is read before the response starts, so that headers, that piece
        // and, for a small read such as ctr's 32 KiB ones, the trailers leave in one write.
        let first = start < end ? try await blob.read(offset: start, size: min(Self.readChunk, end - start)) : Data()
        return StreamingServerResponse { writer in
            var offset = start, data = first
            while !data.isEmpty {
                try await writer.write(
                    .with {
                        $0.offset = offset
                        $0.data = data
                    })
                offset += Int64(data.count)
                guard offset < end else { break }
                data = try await blob.read(offset: offset, size: min(Self.readChunk, end - offset))
            }
            return [:]
        }
    }

    func status(request: ServerRequest<Containerd_Services_Content_V1_StatusRequest>, context: ServerContext) async throws
        -> ServerResponse<Containerd_Services_Content_V1_StatusResponse>
    {
        let state = try await content.status(namespace: try RequestContext.namespace(request.metadata), ref: request.message.ref)
        return ServerResponse(message: .with { $0.status = Self.status(state) })
    }

    func listStatuses(request: ServerRequest<Containerd_Services_Content_V1_ListStatusesRequest>, context: ServerContext) async throws
        -> ServerResponse<Containerd_Services_Content_V1_ListStatusesResponse>
    {
        let states = try await content.listStatuses(
            namespace: try RequestContext.namespace(request.metadata),
            filters: request.message.filters)
        return ServerResponse(message: .with { $0.statuses = states.map(Self.status) })
    }

    func write(request: StreamingServerRequest<Containerd_Services_Content_V1_WriteContentRequest>, context: ServerContext) async throws
        -> StreamingServerResponse<Containerd_Services_Content_V1_WriteContentResponse>
    {
        let namespace = try RequestContext.namespace(request.metadata)
        let lease = RequestContext.of(request.metadata).lease
        return StreamingServerResponse { writer in
            var session: ContentWriter?
            do {
                for try await message in request.messages {
                    if session == nil {
                        session = try await content.openWriter(
                            namespace: namespace, ref: message.ref,
                            total: message.total, expected: message.expected, lease: lease)
                    }
                    try await Self.handle(message, session!, writer)
                    if message.action == .commit { break }
                }
            } catch {
                await session?.close()
                throw error
            }
            await session?.close()
            return [:]
        }
    }

    /// One message of a Write stream: stat, write, or write-then-commit.
    private static func handle(
        _ message: Containerd_Services_Content_V1_WriteContentRequest, _ session: ContentWriter,
        _ writer: RPCWriter<Containerd_Services_Content_V1_WriteContentResponse>
    ) async throws {
        switch message.action {
        case .stat:
            try await writer.write(response(.stat, try await session.status()))
        case .write:
            let state = try await session.write(offset: message.offset, data: message.data, total: message.total, expected: message.expected)
            try await writer.write(response(.write, state))
        case .commit:
            let state =
                message.data.isEmpty
                ? try await session.status()
                : try await session.write(offset: message.offset, data: message.data, total: message.total, expected: message.expected)
            let record = try await session.commit(size: message.total, expected: message.expected, labels: message.labels)
            var reply = response(.commit, state)
            reply.offset = record.size
            reply.digest = record.digest
            try await writer.write(reply)
        case .UNRECOGNIZED(let value):
            throw BerthError.invalidArgument("write action \(value) is not stat, write or commit")
        }
    }

    private static func response(_ action: Containerd_Services_Content_V1_WriteAction, _ state: Berth_Content_V1_IngestState)
        -> Containerd_Services_Content_V1_WriteContentResponse
    {
        .with {
            $0.action = action
            $0.startedAt = state.startedAt
            $0.updatedAt = state.updatedAt
            $0.offset = state.offset
            $0.total = state.total
            $0.digest = state.digest
        }
    }

    func abort(request: ServerRequest<Containerd_Services_Content_V1_AbortRequest>, context: ServerContext) async throws
        -> ServerResponse<Google_Protobuf_Empty>
    {
        try await content.abort(namespace: try RequestContext.namespace(request.metadata), ref: request.message.ref)
        return ServerResponse(message: Google_Protobuf_Empty())
    }

    static func info(_ record: ContentRecord) -> Info {
        .with {
            $0.digest = record.digest
            $0.size = record.size
            $0.createdAt = Google_Protobuf_Timestamp(date: record.created)
            $0.updatedAt = Google_Protobuf_Timestamp(date: record.updated)
            $0.labels = record.labels
        }
    }

    static func status(_ state: Berth_Content_V1_IngestState) -> Containerd_Services_Content_V1_Status {
        .with {
            $0.ref = state.ref
            $0.offset = state.offset
            $0.total = state.total
            $0.expected = state.expected
            $0.startedAt = state.startedAt
            $0.updatedAt = state.updatedAt
        }
    }
}
