import GRPCCore
import Kernel

/// The API edge is the only place where Berth errors become gRPC statuses: the codes are the
/// same numbers, so the mapping is one-to-one and loses nothing.
extension BerthError: RPCErrorConvertible {
    public var rpcErrorCode: RPCError.Code {
        RPCError.Code(Status.Code(rawValue: Int(code.rawValue)) ?? .unknown) ?? .unknown
    }

    /// The message with every long word cut: messages quote the client's keys, names and digests,
    /// and a 64 KiB key must not come back as a 64 KiB error.
    public var rpcErrorMessage: String { Self.shortened(message) }

    /// `message` with each space-separated word longer than `limit` bytes cut to `limit`, the
    /// rest counted; the words around it (what went wrong) stay.
    static func shortened(_ message: String, limit: Int = 128) -> String {
        guard message.utf8.count > limit else { return message }
        return message.split(separator: " ", omittingEmptySubsequences: false)
            .map { $0.utf8.count > limit ? echo(String($0), limit: limit) : String($0) }
            .joined(separator: " ")
    }
}
