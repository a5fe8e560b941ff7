import BerthProto
import GRPCCore
import Kernel
import Storage
import SwiftProtobuf

/// containerd.services.images.v1.Images: a thin forwarder to the kernel's ImageService.
struct ImagesService: Containerd_Services_Images_V1_Images.ServiceProtocol {
    let images: ImageService

    typealias Request<T> = ServerRequest<T>

    func get(request: Request<Containerd_Services_Images_V1_GetImageRequest>, context: ServerContext) async throws
        -> ServerResponse<Containerd_Services_Images_V1_GetImageResponse>
    {
        let image = try await images.get(namespace: try RequestContext.namespace(request.metadata), name: request.message.name)
        return ServerResponse(message: .with { $0.image = Self.message(image) })
    }

    func list(request: Request<Containerd_Services_Images_V1_ListImagesRequest>, context: ServerContext) async throws
        -> ServerResponse<Containerd_Services_Images_V1_ListImagesResponse>
    {
        let list = try await images.list(namespace: try RequestContext.namespace(request.metadata), filters: request.message.filters)
        return ServerResponse(message: .with { $0.images = list.map(Self.message) })
    }

    func create(request: Request<Containerd_Services_Images_V1_CreateImageRequest>, context: ServerContext) async throws
        -> ServerResponse<Containerd_Services_Images_V1_CreateImageResponse>
    {
        let image = try await images.create(namespace: try RequestContext.namespace(request.metadata), Self.record(request.message.image))
        return ServerResponse(message: .with { $0.image = Self.message(image) })
    }

    func update(request: Request<Containerd_Services_Images_V1_UpdateImageRequest>, context: ServerContext) async throws
        -> ServerResponse<Containerd_Services_Images_V1_UpdateImageResponse>
    {
        let image = try await images.update(
            namespace: try RequestContext.namespace(request.metadata), Self.record(request.message.image),
            paths: request.message.updateMask.paths)
        return ServerResponse(message: .with { $0.image = Self.message(image) })
    }

    func delete(request: Request<Containerd_Services_Images_V1_DeleteImageRequest>, context: ServerContext) async throws
        -> ServerResponse<Google_Protobuf_Empty>
    {
        try await images.delete(
            namespace: try RequestContext.namespace(request.metadata), name: request.message.name,
            sync: request.message.sync)
        return ServerResponse(message: Google_Protobuf_Empty())
    }

    private static func record(_ image: Containerd_Services_Images_V1_Image) -> ImageRecord {
        ImageRecord(
            name: image.name, labels: image.labels,
            target: .init(
                mediaType: image.target.mediaType, digest: image.target.digest, size: image.target.size,
                annotations: image.target.annotations))
    }

    private static func message(_ image: ImageRecord) -> Containerd_Services_Images_V1_Image {
        .with {
            $0.name = image.name
            $0.labels = image.labels
            $0.target = .with {
                $0.mediaType = image.target.mediaType
                $0.digest = image.target.digest
                $0.size = image.target.size
                $0.annotations = image.target.annotations
            }
            $0.createdAt = Google_Protobuf_Timestamp(date: image.created)
            $0.updatedAt = Google_Protobuf_Timestamp(date: image.updated)
        }
    }
}
