import GRPCCore
import Kernel

/// The gRPC methods shared-object plugins offer to clients (`berth_registration.api_methods`),
/// served beside the built-in services: each forwards the request bytes to the plugin's
/// `call` under the same path and answers its reply bytes, so a third party can ship a plugin
/// of a new type with an API of its own. Unary methods only.
struct PluginAPIService: RegistrableRPCService {
    /// One offered method and the plugin that serves it.
    struct Route: Sendable {
        var path: String
        var method: MethodDescriptor
        var plugin: PluginName
        var instance: any PluginInstance
    }

    let routes: [Route]

    /// The routes of every started plugin, minus paths that a built-in service (`taken`) or an
    /// earlier plugin already serves; each refusal is returned as a sentence naming both.
    static func routes(
        from plugins: [(PluginName, any PluginInstance)],
        taken: (MethodDescriptor) -> Bool
    ) -> (routes: [Route], refused: [String]) {
        var routes = [Route]()
        var refused = [String]()
        for (name, instance) in plugins {
            for path in instance.apiMethods {
                guard let method = MethodDescriptor(path: path) else {
                    refused.append("plugin \(name) offers \"\(path.prefix(200))\", which is not a gRPC path /package.Service/Method")
                    continue
                }
                if taken(method) {
                    refused.append("plugin \(name) offers \(path), which a built-in service already serves")
                } else if let owner = routes.first(where: { $0.path == path }) {
                    refused.append("plugin \(name) offers \(path), which plugin \(owner.plugin) already serves")
                } else {
                    routes.append(Route(path: path, method: method, plugin: name, instance: instance))
                }
            }
        }
        return (routes, refused)
    }

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        for route in routes {
            router.registerHandler(forMethod: route.method, deserializer: RawBytes(), serializer: RawBytes()) { request, _ in
                var message: [UInt8]?
                for try await part in request.messages {
                    guard message == nil else { throw RPCError(code: .invalidArgument, message: "\(route.path) takes one request message") }
                    message = part
                }
                guard let message else { throw RPCError(code: .invalidArgument, message: "\(route.path): no request message") }
                let reply = try await route.instance.call(route.path, request: message, context: RequestContext.of(request.metadata))
                return StreamingServerResponse(single: ServerResponse(message: reply))
            }
        }
    }
}

/// Messages as the bytes on the wire: the plugin decodes and encodes them itself.
struct RawBytes: MessageSerializer, MessageDeserializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
    func deserialize<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) throws -> [UInt8] { bytes.withUnsafeBytes { Array($0) } }
}

extension MethodDescriptor {
    /// Parses "/package.Service/Method".
    init?(path: String) {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].isEmpty, !parts[1].isEmpty, !parts[2].isEmpty else { return nil }
        self.init(fullyQualifiedService: String(parts[1]), method: String(parts[2]))
    }
}
