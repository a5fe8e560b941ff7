import SwiftProtobuf

extension PluginInstance {
    /// Calls `method` with a typed request and decodes the typed reply: the one place where
    /// kernel services turn messages into the bytes that cross the plugin boundary.
    public func call<Response: SwiftProtobuf.Message>(_ method: String, _ request: some SwiftProtobuf.Message,
                                                      as response: Response.Type,
                                                      context: CallContext = CallContext()) async throws -> Response {
        let bytes = try await call(method, request: try request.serializedBytes(), context: context)
        do {
            return try Response(serializedBytes: bytes)
        } catch {
            throw BerthError.internal("reply to \(method) is not a valid \(Response.protoMessageName)")
        }
    }
}
