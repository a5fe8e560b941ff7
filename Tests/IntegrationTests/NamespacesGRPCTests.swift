import BerthAPI
import BerthProto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwiftProtobuf
import Testing

/// The Namespaces service over gRPC with a Swift client: exact status codes and messages.
@Suite(.serialized) struct NamespacesGRPCTests {
    typealias Service = Containerd_Services_Namespaces_V1_Namespaces

    private func withNamespaces(_ body: (Service.Client<HTTP2ClientTransport.Posix>) async throws -> Void) async throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        try await withClient(daemon) { client in try await body(Service.Client(wrapping: client)) }
    }

    @Test func namespaces_overGRPC_answerContainerdStatusCodes() async throws {
        try await withNamespaces { ns in
            let created = try await ns.create(
                .with {
                    $0.namespace = .with {
                        $0.name = "alpha"
                        $0.labels = ["k": "v"]
                    }
                })
            #expect(created.namespace.labels == ["k": "v"])
            let got = try await ns.get(.with { $0.name = "alpha" })
            #expect(got.namespace.name == "alpha")

            let duplicate = await rpcFailure { _ = try await ns.create(.with { $0.namespace.name = "alpha" }) }
            #expect(duplicate?.0 == .alreadyExists)
            #expect(duplicate?.1 == "namespace \"alpha\": already exists")
            let missing = await rpcFailure { _ = try await ns.get(.with { $0.name = "ghost" }) }
            #expect(missing?.0 == .notFound)
            #expect(missing?.1 == "namespace \"ghost\": not found")
            let empty = await rpcFailure { _ = try await ns.create(.with { $0.namespace.name = "" }) }
            #expect(empty?.0 == .invalidArgument)
            let badMask = await rpcFailure {
                _ = try await ns.update(
                    .with {
                        $0.namespace.name = "alpha"
                        $0.updateMask.paths = ["name"]
                    })
            }
            #expect(badMask?.0 == .invalidArgument)

            let replaced = try await ns.update(
                .with {
                    $0.namespace = .with {
                        $0.name = "alpha"
                        $0.labels = ["n": "1"]
                    }
                })
            #expect(replaced.namespace.labels == ["n": "1"])
            let filtered = try await ns.list(.with { $0.filter = "labels.n==1" })
            #expect(filtered.namespaces.map(\.name) == ["alpha"])
            _ = try await ns.delete(.with { $0.name = "alpha" })
            let gone = await rpcFailure { _ = try await ns.delete(.with { $0.name = "alpha" }) }
            #expect(gone?.0 == .notFound)
        }
    }
}
