import BerthAPI
import BerthProto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwiftProtobuf
import Testing

/// Leases over gRPC with a Swift client: the containerd-lease header, resources, and what the
/// garbage collector does when a lease ends.
@Suite(.serialized) struct LeasesGRPCTests {
    typealias Leases = Containerd_Services_Leases_V1_Leases.Client<HTTP2ClientTransport.Posix>
    typealias Snapshots = Containerd_Services_Snapshots_V1_Snapshots.Client<HTTP2ClientTransport.Posix>
    typealias Content = Containerd_Services_Content_V1_Content.Client<HTTP2ClientTransport.Posix>

    struct Clients {
        let leases: Leases
        let snapshots: Snapshots
        let content: Content
    }

    private func withClients(_ body: (Clients) async throws -> Void) async throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        try await withClient(daemon) { client in
            try await body(Clients(leases: Leases(wrapping: client), snapshots: Snapshots(wrapping: client), content: Content(wrapping: client)))
        }
    }

    static let namespace: Metadata = ["containerd-namespace": "leasing"]
    static func under(_ lease: String) -> Metadata {
        var metadata = namespace
        metadata.addString(lease, forKey: "containerd-lease")
        return metadata
    }

    /// Writes `data` through a Write stream and commits it.
    private func write(_ content: Content, ref: String, _ data: Data, metadata: Metadata) async throws -> String {
        let digest = "sha256:" + (try run("/bin/sh", ["-c", "printf '%s' '\(String(decoding: data, as: UTF8.self))' | sha256sum"]).stdout.prefix(64))
        try await content.write(
            metadata: metadata,
            requestProducer: { writer in
                try await writer.write(
                    .with {
                        $0.action = .commit
                        $0.ref = ref
                        $0.total = Int64(data.count)
                        $0.expected = digest
                        $0.data = data
                    })
            },
            onResponse: { response in
                for try await _ in response.messages {}
            })
        return digest
    }

    @Test func lease_header_attachesNewObjects_andDeletingTheLeaseCollectsThem() async throws {
        try await withClients { c in
            _ = try await c.leases.create(
                .with {
                    $0.id = "pull"
                    $0.labels = ["purpose": "test"]
                }, metadata: Self.namespace)
            _ = try await c.snapshots.prepare(
                .with {
                    $0.key = "extract"
                    $0.snapshotter = "overlayfs"
                }, metadata: Self.under("pull"))
            _ = try await c.snapshots.commit(
                .with {
                    $0.key = "extract"
                    $0.name = "layer"
                    $0.snapshotter = "overlayfs"
                },
                metadata: Self.under("pull"))
            _ = try await c.snapshots.prepare(
                .with {
                    $0.key = "mine"
                    $0.parent = "layer"
                    $0.snapshotter = "overlayfs"
                },
                metadata: Self.namespace)
            let digest = try await write(c.content, ref: "blob", Data("leased bytes".utf8), metadata: Self.under("pull"))
            let resources = try await c.leases.listResources(.with { $0.id = "pull" }, metadata: Self.namespace).resources
            #expect(resources.map { "\($0.type) \($0.id)" } == ["content \(digest)", "ingests blob", "snapshots/overlayfs layer"])

            // A mistyped lease is refused and nothing is made.
            let ghost = await rpcFailure {
                _ = try await c.snapshots.prepare(
                    .with {
                        $0.key = "orphan"
                        $0.snapshotter = "overlayfs"
                    }, metadata: Self.under("ghost"))
            }
            #expect(ghost?.0 == .notFound && ghost?.1 == "lease \"ghost\": not found")
            let orphan = await rpcFailure {
                _ = try await c.snapshots.stat(
                    .with {
                        $0.key = "orphan"
                        $0.snapshotter = "overlayfs"
                    }, metadata: Self.namespace)
            }
            #expect(orphan?.0 == .notFound)

            // Sync delete: the content goes; "layer" stays because active "mine" is built on it.
            try await c.leases.delete(
                .with {
                    $0.id = "pull"
                    $0.sync = true
                }, metadata: Self.namespace)
            let info = await rpcFailure { _ = try await c.content.info(.with { $0.digest = digest }, metadata: Self.namespace) }
            #expect(info?.0 == .notFound)
            _ = try await c.snapshots.stat(
                .with {
                    $0.key = "layer"
                    $0.snapshotter = "overlayfs"
                }, metadata: Self.namespace)
            _ = try await c.snapshots.remove(
                .with {
                    $0.key = "mine"
                    $0.snapshotter = "overlayfs"
                }, metadata: Self.namespace)
            _ = try await c.leases.create(.with { $0.id = "sync" }, metadata: Self.namespace)
            try await c.leases.delete(
                .with {
                    $0.id = "sync"
                    $0.sync = true
                }, metadata: Self.namespace)
            let layer = await rpcFailure {
                _ = try await c.snapshots.stat(
                    .with {
                        $0.key = "layer"
                        $0.snapshotter = "overlayfs"
                    }, metadata: Self.namespace)
            }
            #expect(layer?.0 == .notFound)
        }
    }

    @Test func lease_resources_addListDelete_andRefusals() async throws {
        try await withClients { c in
            let created = try await c.leases.create(.with { $0.labels = ["a": "b", "empty": ""] }, metadata: Self.namespace).lease
            #expect(!created.id.isEmpty, "an empty id gets a generated one")
            #expect(created.labels == ["a": "b"], "labels with empty values are dropped, as containerd does")
            let id = created.id
            let digest = "sha256:" + String(repeating: "a", count: 64)
            for resource in [("content", digest), ("snapshots/native", "k"), ("ingests", "ref")] {
                try await c.leases.addResource(
                    .with {
                        $0.id = id
                        $0.resource = .with {
                            $0.type = resource.0
                            $0.id = resource.1
                        }
                    },
                    metadata: Self.namespace)
            }
            try await c.leases.deleteResource(
                .with {
                    $0.id = id
                    $0.resource = .with {
                        $0.type = "ingests"
                        $0.id = "ref"
                    }
                },
                metadata: Self.namespace)
            let listed = try await c.leases.listResources(.with { $0.id = id }, metadata: Self.namespace).resources
            #expect(listed.map { "\($0.type) \($0.id)" } == ["content \(digest)", "snapshots/native k"])

            let badType = await rpcFailure {
                try await c.leases.addResource(
                    .with {
                        $0.id = id
                        $0.resource = .with {
                            $0.type = "images"
                            $0.id = "x"
                        }
                    }, metadata: Self.namespace)
            }
            #expect(badType?.0 == .unimplemented)
            let badDigest = await rpcFailure {
                try await c.leases.addResource(
                    .with {
                        $0.id = id
                        $0.resource = .with {
                            $0.type = "content"
                            $0.id = "md5:x"
                        }
                    }, metadata: Self.namespace)
            }
            #expect(badDigest?.0 == .invalidArgument)
            let missing = await rpcFailure { _ = try await c.leases.listResources(.with { $0.id = "ghost" }, metadata: Self.namespace) }
            #expect(missing?.0 == .notFound && missing?.1 == "lease \"ghost\": not found")
            let badExpiry = await rpcFailure {
                _ = try await c.leases.create(
                    .with {
                        $0.id = "x"
                        $0.labels = ["containerd.io/gc.expire": "tomorrow"]
                    }, metadata: Self.namespace)
            }
            #expect(badExpiry?.0 == .invalidArgument)
            #expect(badExpiry?.1 == "lease \"x\": label containerd.io/gc.expire=\"tomorrow\" is not an RFC 3339 time")
            let noNamespace = await rpcFailure { _ = try await c.leases.list(.with { _ in }) }
            #expect(noNamespace?.0 == .failedPrecondition)
        }
    }

    @Test func lease_expiry_deletesTheLeaseAndWhatOnlyItHeld() async throws {
        try await withClients { c in
            // Eight seconds ahead: the label has second resolution, and under a full test run
            // each fsync'd write below has taken more than a second on this 2-core machine.
            let soon = ISO8601DateFormatter().string(from: Date().addingTimeInterval(8))
            _ = try await c.leases.create(
                .with {
                    $0.id = "brief"
                    $0.labels = ["containerd.io/gc.expire": soon]
                }, metadata: Self.namespace)
            let digest = try await write(c.content, ref: "brief-blob", Data("short-lived".utf8), metadata: Self.under("brief"))
            _ = try await c.content.info(.with { $0.digest = digest }, metadata: Self.namespace)
            // The expiry has second resolution and the collector checks every second.
            var gone = false
            for _ in 0..<200 where !gone {
                try await Task.sleep(for: .milliseconds(100))
                gone = try await c.leases.list(.with { _ in }, metadata: Self.namespace).leases.isEmpty
            }
            #expect(gone, "the lease expired")
            let info = await rpcFailure { _ = try await c.content.info(.with { $0.digest = digest }, metadata: Self.namespace) }
            #expect(info?.0 == .notFound)
        }
    }

    @Test func ingest_abandonedForADay_isExpired_unlessALeaseHoldsIt() async throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        try await withClient(daemon) { client in
            let content = Content(wrapping: client), leases = Leases(wrapping: client)
            _ = try await leases.create(.with { $0.id = "hold" }, metadata: Self.namespace)
            for (ref, metadata) in [("stale", Self.namespace), ("kept", Self.under("hold"))] {
                try await content.write(
                    metadata: metadata,
                    requestProducer: { writer in
                        try await writer.write(
                            .with {
                                $0.action = .write
                                $0.ref = ref
                                $0.data = Data("half a blob".utf8)
                            })
                    }, onResponse: { response in for try await _ in response.messages {} })
            }
            // Both were last written two days ago, as if their clients had gone away then.
            let ingests = daemon.directory + "/root/io.containerd.content.v1.content/ingest"
            #expect(try run("/bin/sh", ["-c", "touch -d '2 days ago' \(ingests)/*/data"]).status == 0)
            _ = try await leases.create(.with { $0.id = "tick" }, metadata: Self.namespace)
            try await leases.delete(
                .with {
                    $0.id = "tick"
                    $0.sync = true
                }, metadata: Self.namespace)
            let left = try await content.listStatuses(.with { _ in }, metadata: Self.namespace).statuses.map(\.ref)
            #expect(left == ["kept"])
        }
        #expect(daemon.log.contains("expired abandoned ingests"))
    }
}
