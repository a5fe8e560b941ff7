import GRPCCore
import Kernel

/// The API edge is the only place where Berth errors become gRPC statuses: the codes are the
/// same numbers, so the mapping is one-to-one and loses nothing.
extension BerthError: RPCErrorConvertible {
    public var rpcErrorCode: RPCError.Code {
        RPCError.Code(Status.Code(rawValue: Int(code.rawValue)) ?? .unknown) ?? .unknown
    }

    public var rpcErrorMessage: String { message }
}
