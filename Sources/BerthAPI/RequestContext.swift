import GRPCCore
import Kernel

/// The request facts containerd clients send in gRPC metadata.
enum RequestContext {
    /// containerd's metadata key for the namespace of a request.
    static let namespaceHeader = "containerd-namespace"
    /// containerd's metadata key for the lease a request runs under.
    static let leaseHeader = "containerd-lease"

    /// The namespace and lease of a request.
    static func of(_ metadata: Metadata) -> CallContext {
        CallContext(
            namespace: metadata[stringValues: namespaceHeader].first(where: { _ in true }) ?? "",
            lease: metadata[stringValues: leaseHeader].first(where: { _ in true }) ?? "")
    }

    /// The namespace of a request; `.failedPrecondition` when the client sent none, as containerd
    /// answers for namespaced services.
    static func namespace(_ metadata: Metadata) throws(BerthError) -> String {
        let namespace = of(metadata).namespace
        guard !namespace.isEmpty else {
            throw .failedPrecondition("namespace is required: send it in the \(namespaceHeader) header")
        }
        try Validation.namespaceName(namespace)
        return namespace
    }
}
