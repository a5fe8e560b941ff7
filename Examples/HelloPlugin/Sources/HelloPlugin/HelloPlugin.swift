import BerthPluginSDK
import SwiftProtobuf

/// Greets by name: `/berth.example.v1.Hello/Greet` takes a StringValue and answers one, to
/// other plugins and, through berthd's socket, to any gRPC client (it is in the registration's
/// `apiMethods`). Its greeting comes from plugin.conf (`config.greeting`), and each greeting
/// is published as a `/example/greeted` event, so the example touches config, methods, events
/// and a plugin's own API.
final class HelloPlugin: BerthPlugin {
    static let greet = "/berth.example.v1.Hello/Greet"

    struct Config: Decodable {
        var greeting: String?
    }

    private let host: PluginHost
    let methods: MethodTable

    init(host: PluginHost) {
        self.host = host
        let greeting = (try? host.config(as: Config.self))?.greeting ?? "hello"
        var methods = MethodTable()
        methods.unary(Self.greet, Google_Protobuf_StringValue.self) { name, info in
            guard !name.value.isEmpty else { throw PluginError(.invalidArgument, "Greet needs a name") }
            let answer = Google_Protobuf_StringValue(stringLiteral: "\(greeting), \(name.value)")
            host.publish(topic: "/example/greeted", namespace: info.namespace, answer)
            return answer
        }
        self.methods = methods
    }

    func start() async throws {
        host.log(.info, "hello plugin ready")
    }
}
