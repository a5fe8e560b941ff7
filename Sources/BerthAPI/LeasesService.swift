import BerthProto
import GRPCCore
import Kernel
import Storage
import SwiftProtobuf

/// containerd.services.leases.v1.Leases: a thin forwarder to the kernel's LeaseService.
struct LeasesService: Containerd_Services_Leases_V1_Leases.ServiceProtocol {
    let leases: LeaseService

    typealias Request<T> = ServerRequest<T>

    func create(request: Request<Containerd_Services_Leases_V1_CreateRequest>, context: ServerContext) async throws
        -> ServerResponse<Containerd_Services_Leases_V1_CreateResponse>
    {
        let record = try await leases.create(
            namespace: try RequestContext.namespace(request.metadata),
            id: request.message.id, labels: request.message.labels)
        return ServerResponse(message: .with { $0.lease = Self.lease(record) })
    }

    func delete(request: Request<Containerd_Services_Leases_V1_DeleteRequest>, context: ServerContext) async throws
        -> ServerResponse<Google_Protobuf_Empty>
    {
        try await leases.delete(
            namespace: try RequestContext.namespace(request.metadata), id: request.message.id,
            sync: request.message.sync)
        return ServerResponse(message: Google_Protobuf_Empty())
    }

    func list(request: Request<Containerd_Services_Leases_V1_ListRequest>, context: ServerContext) async throws
        -> ServerResponse<Containerd_Services_Leases_V1_ListResponse>
    {
        let records = try await leases.list(namespace: try RequestContext.namespace(request.metadata), filters: request.message.filters)
        return ServerResponse(message: .with { $0.leases = records.map(Self.lease) })
    }

    func addResource(request: Request<Containerd_Services_Leases_V1_AddResourceRequest>, context: ServerContext) async throws
        -> ServerResponse<Google_Protobuf_Empty>
    {
        try await leases.addResource(
            namespace: try RequestContext.namespace(request.metadata), id: request.message.id,
            Self.resource(request.message.resource))
        return ServerResponse(message: Google_Protobuf_Empty())
    }

    func deleteResource(request: Request<Containerd_Services_Leases_V1_DeleteResourceRequest>, context: ServerContext) async throws
        -> ServerResponse<Google_Protobuf_Empty>
    {
        try await leases.deleteResource(
            namespace: try RequestContext.namespace(request.metadata), id: request.message.id,
            Self.resource(request.message.resource))
        return ServerResponse(message: Google_Protobuf_Empty())
    }

    func listResources(request: Request<Containerd_Services_Leases_V1_ListResourcesRequest>, context: ServerContext) async throws
        -> ServerResponse<Containerd_Services_Leases_V1_ListResourcesResponse>
    {
        let resources = try await leases.resources(namespace: try RequestContext.namespace(request.metadata), id: request.message.id)
        return ServerResponse(
            message: .with {
                $0.resources = resources.map { resource in
                    .with {
                        $0.id = resource.id
                        $0.type = resource.type
                    }
                }
            })
    }

    private static func resource(_ message: Containerd_Services_Leases_V1_Resource) -> LeaseResource {
        LeaseResource(type: message.type, id: message.id)
    }

    private static func lease(_ record: LeaseRecord) -> Containerd_Services_Leases_V1_Lease {
        .with {
            $0.id = record.id
            $0.createdAt = Google_Protobuf_Timestamp(date: record.created)
            $0.labels = record.labels
        }
    }
}
