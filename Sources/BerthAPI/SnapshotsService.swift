import BerthProto
import FoundationEssentials
import GRPCCore
import Glibc
import Kernel
import Storage
import SwiftProtobuf

/// containerd.services.snapshots.v1.Snapshots: a thin forwarder to the kernel's SnapshotService.
struct SnapshotsService: Containerd_Services_Snapshots_V1_Snapshots.ServiceProtocol {
    let snapshots: SnapshotService

    typealias Request<T> = ServerRequest<T>

    func prepare(request: Request<Containerd_Services_Snapshots_V1_PrepareSnapshotRequest>, context: ServerContext) async throws
        -> ServerResponse<Containerd_Services_Snapshots_V1_PrepareSnapshotResponse>
    {
        let m = request.message
        let mounts = try await snapshots.prepare(
            namespace: try RequestContext.namespace(request.metadata), snapshotter: m.snapshotter,
            key: m.key, parent: m.parent, labels: m.labels,
            lease: RequestContext.of(request.metadata).lease)
        return ServerResponse(message: .with { $0.mounts = mounts })
    }

    func view(request: Request<Containerd_Services_Snapshots_V1_ViewSnapshotRequest>, context: ServerContext) async throws
        -> ServerResponse<Containerd_Services_Snapshots_V1_ViewSnapshotResponse>
    {
        let m = request.message
        let mounts = try await snapshots.view(
            namespace: try RequestContext.namespace(request.metadata), snapshotter: m.snapshotter,
            key: m.key, parent: m.parent, labels: m.labels,
            lease: RequestContext.of(request.metadata).lease)
        return ServerResponse(message: .with { $0.mounts = mounts })
    }

    func mounts(request: Request<Containerd_Services_Snapshots_V1_MountsRequest>, context: ServerContext) async throws
        -> ServerResponse<Containerd_Services_Snapshots_V1_MountsResponse>
    {
        let mounts = try await snapshots.mounts(
            namespace: try RequestContext.namespace(request.metadata),
            snapshotter: request.message.snapshotter, key: request.message.key)
        return ServerResponse(message: .with { $0.mounts = mounts })
    }

    func commit(request: Request<Containerd_Services_Snapshots_V1_CommitSnapshotRequest>, context: ServerContext) async throws
        -> ServerResponse<Google_Protobuf_Empty>
    {
        let m = request.message
        try await snapshots.commit(
            namespace: try RequestContext.namespace(request.metadata), snapshotter: m.snapshotter,
            name: m.name, key: m.key, labels: m.labels, lease: RequestContext.of(request.metadata).lease)
        return ServerResponse(message: Google_Protobuf_Empty())
    }

    func remove(request: Request<Containerd_Services_Snapshots_V1_RemoveSnapshotRequest>, context: ServerContext) async throws
        -> ServerResponse<Google_Protobuf_Empty>
    {
        try await snapshots.remove(
            namespace: try RequestContext.namespace(request.metadata),
            snapshotter: request.message.snapshotter, key: request.message.key)
        return ServerResponse(message: Google_Protobuf_Empty())
    }

    func stat(request: Request<Containerd_Services_Snapshots_V1_StatSnapshotRequest>, context: ServerContext) async throws
        -> ServerResponse<Containerd_Services_Snapshots_V1_StatSnapshotResponse>
    {
        let record = try await snapshots.stat(
            namespace: try RequestContext.namespace(request.metadata),
            snapshotter: request.message.snapshotter, key: request.message.key)
        return ServerResponse(message: .with { $0.info = Self.info(record) })
    }

    func update(request: Request<Containerd_Services_Snapshots_V1_UpdateSnapshotRequest>, context: ServerContext) async throws
        -> ServerResponse<Containerd_Services_Snapshots_V1_UpdateSnapshotResponse>
    {
        let m = request.message
        let record = try await snapshots.update(
            namespace: try RequestContext.namespace(request.metadata), snapshotter: m.snapshotter,
            key: m.info.name, labels: m.info.labels, paths: m.updateMask.paths)
        return ServerResponse(message: .with { $0.info = Self.info(record) })
    }

    func list(request: Request<Containerd_Services_Snapshots_V1_ListSnapshotsRequest>, context: ServerContext) async throws
        -> StreamingServerResponse<Containerd_Services_Snapshots_V1_ListSnapshotsResponse>
    {
        let records = try await snapshots.list(
            namespace: try RequestContext.namespace(request.metadata),
            snapshotter: request.message.snapshotter, filters: request.message.filters)
        return StreamingServerResponse { writer in
            // Batches keep each message far below the 16 MiB limit, as containerd's service does.
            for start in stride(from: 0, to: records.count, by: 100) {
                try await writer.write(.with { $0.info = records[start..<min(start + 100, records.count)].map(Self.info) })
            }
            return [:]
        }
    }

    func usage(request: Request<Containerd_Services_Snapshots_V1_UsageRequest>, context: ServerContext) async throws
        -> ServerResponse<Containerd_Services_Snapshots_V1_UsageResponse>
    {
        let usage = try await snapshots.usage(
            namespace: try RequestContext.namespace(request.metadata),
            snapshotter: request.message.snapshotter, key: request.message.key)
        return ServerResponse(
            message: .with {
                $0.size = usage.size
                $0.inodes = usage.inodes
            })
    }

    func cleanup(request: Request<Containerd_Services_Snapshots_V1_CleanupRequest>, context: ServerContext) async throws
        -> ServerResponse<Google_Protobuf_Empty>
    {
        _ = try RequestContext.namespace(request.metadata)
        _ = try await snapshots.cleanup(snapshotter: request.message.snapshotter)
        return ServerResponse(message: Google_Protobuf_Empty())
    }

    static func info(_ record: SnapshotRecord) -> Containerd_Services_Snapshots_V1_Info {
        .with {
            $0.name = record.key
            $0.parent = record.parent
            $0.kind = Containerd_Services_Snapshots_V1_Kind(rawValue: record.kind.rawValue) ?? .unknown
            $0.createdAt = Google_Protobuf_Timestamp(date: record.created)
            $0.updatedAt = Google_Protobuf_Timestamp(date: record.updated)
            $0.labels = record.labels
        }
    }
}
