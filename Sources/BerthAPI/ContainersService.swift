import BerthProto
import GRPCCore
import Kernel
import Runtime
import SwiftProtobuf

/// containerd.services.containers.v1.Containers: a thin forwarder to the ContainerService.
struct ContainersService: Containerd_Services_Containers_V1_Containers.ServiceProtocol {
    let containers: ContainerService

    typealias Request<T> = ServerRequest<T>

    func get(request: Request<Containerd_Services_Containers_V1_GetContainerRequest>, context: ServerContext) async throws
        -> ServerResponse<Containerd_Services_Containers_V1_GetContainerResponse>
    {
        let container = try await containers.get(namespace: try RequestContext.namespace(request.metadata), id: request.message.id)
        return ServerResponse(message: .with { $0.container = container })
    }

    func list(request: Request<Containerd_Services_Containers_V1_ListContainersRequest>, context: ServerContext) async throws
        -> ServerResponse<Containerd_Services_Containers_V1_ListContainersResponse>
    {
        let found = try await containers.list(namespace: try RequestContext.namespace(request.metadata), filters: request.message.filters)
        return ServerResponse(message: .with { $0.containers = found })
    }

    func listStream(request: Request<Containerd_Services_Containers_V1_ListContainersRequest>, context: ServerContext) async throws
        -> StreamingServerResponse<Containerd_Services_Containers_V1_ListContainerMessage>
    {
        let found = try await containers.list(namespace: try RequestContext.namespace(request.metadata), filters: request.message.filters)
        return StreamingServerResponse { writer in
            for container in found { try await writer.write(.with { $0.container = container }) }
            return [:]
        }
    }

    func create(request: Request<Containerd_Services_Containers_V1_CreateContainerRequest>, context: ServerContext) async throws
        -> ServerResponse<Containerd_Services_Containers_V1_CreateContainerResponse>
    {
        let created = try await containers.create(namespace: try RequestContext.namespace(request.metadata), request.message.container)
        return ServerResponse(message: .with { $0.container = created })
    }

    func update(request: Request<Containerd_Services_Containers_V1_UpdateContainerRequest>, context: ServerContext) async throws
        -> ServerResponse<Containerd_Services_Containers_V1_UpdateContainerResponse>
    {
        let updated = try await containers.update(
            namespace: try RequestContext.namespace(request.metadata), request.message.container,
            paths: request.message.updateMask.paths)
        return ServerResponse(message: .with { $0.container = updated })
    }

    func delete(request: Request<Containerd_Services_Containers_V1_DeleteContainerRequest>, context: ServerContext) async throws
        -> ServerResponse<Google_Protobuf_Empty>
    {
        try await containers.delete(namespace: try RequestContext.namespace(request.metadata), id: request.message.id)
        return ServerResponse(message: Google_Protobuf_Empty())
    }
}
