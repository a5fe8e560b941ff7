import BerthProto
import GRPCCore
import Kernel
import Storage

/// containerd.services.diff.v1.Diff: a thin forwarder to the kernel's DiffService.
struct DiffGRPCService: Containerd_Services_Diff_V1_Diff.ServiceProtocol {
    let diff: DiffService

    func diff(request: ServerRequest<Containerd_Services_Diff_V1_DiffRequest>, context: ServerContext) async throws
        -> ServerResponse<Containerd_Services_Diff_V1_DiffResponse>
    {
        let m = request.message
        let descriptor = try await diff.compare(
            namespace: try RequestContext.namespace(request.metadata), lower: m.left, upper: m.right,
            mediaType: m.mediaType, ref: m.ref, labels: m.labels,
            lease: RequestContext.of(request.metadata).lease)
        return ServerResponse(message: .with { $0.diff = descriptor })
    }

    func apply(request: ServerRequest<Containerd_Services_Diff_V1_ApplyRequest>, context: ServerContext) async throws
        -> ServerResponse<Containerd_Services_Diff_V1_ApplyResponse>
    {
        let applied = try await diff.apply(
            namespace: try RequestContext.namespace(request.metadata), diff: request.message.diff,
            mounts: request.message.mounts)
        return ServerResponse(message: .with { $0.applied = applied })
    }
}
