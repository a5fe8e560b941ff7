import ArgumentParser
import BerthAPI
import BerthProto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwiftProtobuf

/// berth: a small client for berthd. For everything else, point containerd's `ctr` at the socket.
@main
struct Berth: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "berth",
        abstract: "Talk to berthd.",
        subcommands: [Version.self, Plugins.self])

    struct Options: ParsableArguments {
        @Option(name: .shortAndLong, help: "berthd's gRPC socket.")
        var address: String = "/run/berth/berth.sock"
    }

    struct Version: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the server's version.")
        @OptionGroup var options: Options

        func run() async throws {
            try await withClient(options.address) { client in
                let version = try await Containerd_Services_Version_V1_Version.Client(wrapping: client).version(Google_Protobuf_Empty())
                print("server: \(version.version) (\(version.revision))")
            }
        }
    }

    struct Plugins: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List plugins and their status.")
        @OptionGroup var options: Options

        func run() async throws {
            try await withClient(options.address) { client in
                let reply = try await Containerd_Services_Introspection_V1_Introspection.Client(wrapping: client).plugins(.init())
                for plugin in reply.plugins {
                    let status = plugin.hasInitErr ? plugin.initErr.message : "ok"
                    print("\(plugin.type).\(plugin.id)\t\(status)")
                }
            }
        }
    }
}

/// Runs `body` with a client connected to `path`, closing it afterwards.
func withClient(_ path: String, _ body: (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Void) async throws {
    let client = GRPCClient(transport: try .http2NIOPosix(target: .unixDomainSocket(path: path), transportSecurity: .plaintext))
    try await withThrowingDiscardingTaskGroup { group in
        group.addTask { try await client.runConnections() }
        defer { client.beginGracefulShutdown() }
        try await body(client)
    }
}
