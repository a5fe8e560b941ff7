import Kernel

/// The registrations compiled into berthd, listed by introspection like any other plugin so
/// that clients see containerd's familiar types.
public enum BuiltinPlugins {
    struct Marker: PluginInstance {
        var exports: [String: String] = [:]
    }

    /// The event bus, the metadata store and the gRPC services of this stage.
    public static func registrations(metadataPath: String) -> [Registration] {
        let core: [Registration] = [
            Registration(name: PluginName(type: .event, id: "exchange"), origin: .builtin { _ in Marker() }),
            Registration(name: PluginName(type: .metadata, id: "sqlite"), origin: .builtin { _ in
                Marker(exports: ["path": metadataPath])
            }),
        ]
        let services = ["version", "introspection", "namespaces", "healthcheck", "events"].map { id in
            Registration(name: PluginName(type: .grpcService, id: id), requires: [.metadata, .event],
                         origin: .builtin { _ in Marker() })
        }
        let snapshots = Registration(name: PluginName(type: .grpcService, id: "snapshots"),
                                     requires: [.metadata, .event, .snapshotter], origin: .builtin { _ in Marker() })
        let content = Registration(name: PluginName(type: .grpcService, id: "content"),
                                   requires: [.metadata, .event, .content], origin: .builtin { _ in Marker() })
        let collector = Registration(name: PluginName(type: .garbageCollector, id: "scheduler"), requires: [.metadata],
                                     origin: .builtin { _ in Marker() })
        let leases = Registration(name: PluginName(type: .grpcService, id: "leases"), requires: [.metadata],
                                  origin: .builtin { _ in Marker() })
        let diff = Registration(name: PluginName(type: .grpcService, id: "diff"), requires: [.metadata, .content],
                                origin: .builtin { _ in Marker() })
        let images = Registration(name: PluginName(type: .grpcService, id: "images"), requires: [.metadata],
                                  origin: .builtin { _ in Marker() })
        return core + [collector] + services + [snapshots, content, leases, diff, images]
    }
}
