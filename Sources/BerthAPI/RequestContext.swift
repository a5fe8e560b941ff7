import GRPCCore
import Kernel

/// The request facts containerd clients send in gRPC metadata, made available to the unary
/// handlers of the request through a task-local value.
public enum RequestContext {
    /// containerd's metadata key for the namespace of a request.
    public static let namespaceHeader = "containerd-namespace"
    /// containerd's metadata key for the lease a request runs under.
    public static let leaseHeader = "containerd-lease"

    @TaskLocal static var current = CallContext()

    /// The namespace of the current request; `.failedPrecondition` when the client sent none,
    /// as containerd answers ("namespace is required").
    static func requiredNamespace() throws(BerthError) -> String {
        guard !current.namespace.isEmpty else {
            throw .failedPrecondition("namespace is required: send it in the \(namespaceHeader) header")
        }
        return current.namespace
    }
}

/// Reads the containerd headers into `RequestContext.current` for the handler's duration.
struct RequestContextInterceptor: ServerInterceptor {
    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let values = CallContext(
            namespace: request.metadata[stringValues: RequestContext.namespaceHeader].first(where: { _ in true }) ?? "",
            lease: request.metadata[stringValues: RequestContext.leaseHeader].first(where: { _ in true }) ?? "")
        return try await RequestContext.$current.withValue(values) {
            try await next(request, context)
        }
    }
}
