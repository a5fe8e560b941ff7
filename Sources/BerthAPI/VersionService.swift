import BerthProto
import GRPCCore
import Kernel
import SwiftProtobuf

/// containerd.services.version.v1.Version: Berth's release.
struct VersionService: Containerd_Services_Version_V1_Version.SimpleServiceProtocol {
    func version(request: Google_Protobuf_Empty, context: ServerContext) async throws
        -> Containerd_Services_Version_V1_VersionResponse
    {
        .with {
            $0.version = BerthVersion.version
            $0.revision = BerthVersion.revision
        }
    }
}

/// grpc.health.v1.Health: SERVING while the server runs.
struct HealthService: Grpc_Health_V1_Health.SimpleServiceProtocol {
    func check(request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext) async throws
        -> Grpc_Health_V1_HealthCheckResponse
    {
        .with { $0.status = .serving }
    }

    /// Not served: Berth's health never changes while the server runs, so a stream would only
    /// hold shutdown open. Check answers the same question.
    func watch(
        request: Grpc_Health_V1_HealthCheckRequest,
        response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>,
        context: ServerContext
    ) async throws {
        throw RPCError(code: .unimplemented, message: "grpc.health.v1.Health/Watch is not served by berthd; call Check")
    }
}
