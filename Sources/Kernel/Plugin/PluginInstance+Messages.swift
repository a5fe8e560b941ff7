import BerthProto
import SwiftProtobuf

extension PluginInstance {
    /// Calls one method of a plugin contract (`BerthContracts`): the path and both message
    /// types come from the contract's one generated definition.
    public func call<Request, Response>(
        _ method: ContractMethod<Request, Response>, _ request: Request,
        context: CallContext = CallContext()
    ) async throws -> Response {
        try await call(method.path, request, as: Response.self, context: context)
    }

    /// Calls `method` with a typed request and decodes the typed reply: the one place where
    /// kernel services turn messages into the bytes that cross the plugin boundary.
    public func call<Response: SwiftProtobuf.Message>(
        _ method: String, _ request: some SwiftProtobuf.Message,
        as response: Response.Type,
        context: CallContext = CallContext()
    ) async throws -> Response {
        let bytes = try await call(method, request: try request.serializedBytes(), context: context)
        do {
            return try Response(serializedBytes: bytes)
        } catch {
            throw BerthError.internal("reply to \(method) is not a valid \(Response.protoMessageName)")
        }
    }
}
