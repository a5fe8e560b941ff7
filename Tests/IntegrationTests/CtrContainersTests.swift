import BerthAPI
import BerthProto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwiftProtobuf
import Testing

/// `ctr containers` against berthd: records of what to run (no task yet), with containerd's
/// rules for ids, runtimes, specs, updates and namespaces.
@Suite(.serialized) struct CtrContainersTests {
    /// Whether `ctr snapshots ls` lists a snapshot whose key is `key` (a chain id may end in "c1").
    private static func lists(_ listing: String, key: String) -> Bool {
        listing.split(separator: "\n").contains { $0.split(separator: " ").first.map(String.init) == key }
    }

    @Test func ctrContainers_createListInfoLabelDelete_behaveAsContainerd() throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        let (tarball, _) = try CtrImagesTests.buildImage(in: daemon.directory)
        func ctr(_ arguments: String...) throws -> RunResult { try daemon.ctr(arguments, namespace: "run") }
        #expect(try ctr("images", "import", "--base-name", "docker.io/library/bb", tarball).status == 0)

        // (ctr 1.6 refuses a command after the id in `containers create`, whatever the daemon.)
        let created = try ctr("containers", "create", "--label", "tier=web", "docker.io/library/bb:latest", "c1")
        #expect(created.status == 0, "\(created.stderr)")
        let listing = try ctr("containers", "ls").stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(listing.count == 2)
        #expect(listing.last == ["c1", "docker.io/library/bb:latest", "io.containerd.runc.v2"])

        let info = try ctr("containers", "info", "c1")
        let record = try #require(try JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as? [String: Any])
        #expect(record["ID"] as? String == "c1")
        #expect(record["Image"] as? String == "docker.io/library/bb:latest")
        #expect(record["Snapshotter"] as? String == "overlayfs")
        #expect(record["SnapshotKey"] as? String == "c1")
        // ctr adds the image's stop signal as a label.
        #expect(record["Labels"] as? [String: String] == ["tier": "web", "io.containerd.image.config.stop-signal": "SIGTERM"])
        #expect((record["Runtime"] as? [String: Any])?["Name"] as? String == "io.containerd.runc.v2")
        let spec = try #require(record["Spec"] as? [String: Any])
        #expect(spec["ociVersion"] as? String == "1.0.2-dev")
        #expect(((spec["process"] as? [String: Any])?["env"] as? [String])?.first?.hasPrefix("PATH=") == true)
        // ctr prepared the container's snapshot from the image under a lease it then deleted: the
        // container holds it through a collection (one runs before `leases rm --sync` returns).
        #expect(try ctr("leases", "create", "--id", "tmp").status == 0)
        #expect(try ctr("leases", "rm", "--sync", "tmp").status == 0)
        #expect(Self.lists(try ctr("snapshots", "ls").stdout, key: "c1"))

        #expect(try ctr("containers", "label", "c1", "owner=me").status == 0)
        let labels = try #require(try JSONSerialization.jsonObject(with: Data(try ctr("containers", "info", "c1").stdout.utf8)) as? [String: Any])
        #expect(labels["Labels"] as? [String: String] == ["tier": "web", "owner": "me", "io.containerd.image.config.stop-signal": "SIGTERM"])
        #expect(try ctr("containers", "ls", "labels.owner==me").stdout.split(separator: "\n").count == 2)
        #expect(try ctr("containers", "ls", "labels.owner==you").stdout.split(separator: "\n").count == 1)

        let again = try ctr("containers", "create", "docker.io/library/bb:latest", "c1")
        #expect(again.status != 0)
        #expect(again.stderr.contains("already exists"))
        // The namespace cannot go while it holds a container.
        let dropNamespace = try daemon.ctr(["namespaces", "rm", "run"])
        #expect(dropNamespace.status != 0 && dropNamespace.stderr.contains("containers"))

        #expect(try ctr("containers", "delete", "c1").status == 0)
        #expect(try ctr("containers", "ls").stdout.split(separator: "\n").count == 1)
        #expect(!Self.lists(try ctr("snapshots", "ls").stdout, key: "c1"))
        let gone = try ctr("containers", "info", "c1")
        #expect(gone.status != 0 && gone.stderr.contains("not found"))
    }

    private typealias Containers = Containerd_Services_Containers_V1_Containers.Client<HTTP2ClientTransport.Posix>
    private typealias Container = Containerd_Services_Containers_V1_Container

    private func create(_ client: Containers, _ container: Container) async throws {
        _ = try await client.create(.with { $0.container = container }, metadata: ["containerd-namespace": "bad"])
    }

    private static let spec = Google_Protobuf_Any.with {
        $0.typeURL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
        $0.value = Data(#"{"ociVersion":"1.0.2","process":{"args":["true"]}}"#.utf8)
    }

    @Test func containers_badInput_isRefusedNamingTheObject() async throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        try await withClient(daemon) { grpc in
            let client = Containers(wrapping: grpc)
            let good = Container.with {
                $0.id = "ok-1"
                $0.runtime.name = "io.containerd.runc.v2"
                $0.spec = Self.spec
            }
            let cases: [(Container, String)] = [
                (
                    .with {
                        $0 = good
                        $0.id = "bad id!"
                    }, "container id \"bad id!\" must be letters and digits joined by single '.', '_' or '-'"
                ),
                (
                    .with {
                        $0 = good
                        $0.id = String(repeating: "a", count: 100)
                    },
                    "container id \"\(String(repeating: "a", count: 32))...\" is 100 characters long; the limit is 76"
                ),
                (
                    .with {
                        $0 = good
                        $0.runtime.name = ""
                    }, "container \"ok-1\": runtime name must be set"
                ),
                (
                    .with {
                        $0 = good
                        $0.clearSpec()
                    }, "container \"ok-1\": spec must be set"
                ),
                (
                    .with {
                        $0 = good
                        $0.snapshotKey = "k"
                    }, "container \"ok-1\": snapshotter must be set when snapshot key \"k\" is"
                ),
            ]
            for (container, message) in cases {
                let failure = await rpcFailure { try await create(client, container) }
                #expect(failure?.0 == .invalidArgument)
                #expect(failure?.1 == message)
            }
            let huge = await rpcFailure {
                try await create(
                    client,
                    .with {
                        $0 = good
                        $0.labels = ["k": String(repeating: "v", count: 8192)]
                    })
            }
            #expect(huge?.0 == .invalidArgument)
            #expect((huge?.1.count ?? 0) < 400)
            try await create(client, good)
            let update = await rpcFailure {
                _ = try await client.update(
                    .with {
                        $0.container = good
                        $0.container.snapshotter = "native"
                    }, metadata: ["containerd-namespace": "bad"])
            }
            #expect(update?.0 == .invalidArgument)
            #expect(update?.1 == "container \"ok-1\": the snapshotter cannot be changed")
            let path = await rpcFailure {
                _ = try await client.update(
                    .with {
                        $0.container = good
                        $0.updateMask.paths = ["runtime"]
                    }, metadata: ["containerd-namespace": "bad"])
            }
            #expect(path?.1 == "container \"ok-1\": cannot update field \"runtime\"")
            let missing = await rpcFailure { _ = try await client.get(.with { $0.id = "nope" }, metadata: ["containerd-namespace": "bad"]) }
            #expect(missing?.0 == .notFound)
            #expect(missing?.1 == "container \"nope\" in namespace \"bad\": not found")
        }
    }
}
