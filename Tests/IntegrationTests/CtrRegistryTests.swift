import Foundation
import Testing

/// `ctr content fetch`, `fetch-object`, `push-object` and `ctr images pull`, `push`, `export`
/// between berthd and a local registry
/// (Debian's docker-registry, seeded with skopeo; no network). containerd 1.6.20 printed the
/// same results for the same steps on this machine.
@Suite(.serialized) struct CtrRegistryTests {
    /// A registry on a free local port, serving from a folder under `directory`.
    final class Registry {
        let process = Process()
        let address: String

        init(in directory: String) throws {
            let port = Int.random(in: 20000..<60000)
            address = "127.0.0.1:\(port)"
            let config = directory + "/registry.yml"
            try """
            version: 0.1
            storage:
              filesystem:
                rootdirectory: \(directory)/registry
            http:
              addr: \(address)
            """.write(toFile: config, atomically: true, encoding: .utf8)
            process.executableURL = URL(fileURLWithPath: "/usr/bin/docker-registry")
            process.arguments = ["serve", config]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            for _ in 0..<200 where !reachable() { usleep(25_000) }
            guard reachable() else { throw Failure("docker-registry did not start on \(address)") }
        }

        func reachable() -> Bool {
            (try? run("/usr/bin/python3", ["-c", "import urllib.request; urllib.request.urlopen('http://\(address)/v2/')"]))?.status == 0
        }

        /// Whether `repository` holds blob `digest`.
        func hasBlob(_ repository: String, _ digest: String) -> Bool {
            let check =
                "import urllib.request; urllib.request.urlopen(urllib.request.Request('http://\(address)/v2/\(repository)/blobs/\(digest)', method='HEAD'))"
            return (try? run("/usr/bin/python3", ["-c", check]))?.status == 0
        }

        deinit {
            process.terminate()
            process.waitUntilExit()
        }
    }

    @Test func ctrContent_fetchFetchObjectPushObject_withALocalRegistry() throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        let registry = try Registry(in: daemon.directory)
        _ = try CtrImagesTests.buildImage(in: daemon.directory)
        let copied = try run(
            "/usr/bin/skopeo",
            [
                "copy", "--dest-tls-verify=false", "oci:\(daemon.directory)/oci:latest",
                "docker://\(registry.address)/test/bb:latest",
            ])
        #expect(copied.status == 0, "\(copied.stderr)")
        let manifest = try run("/usr/bin/skopeo", ["inspect", "--tls-verify=false", "--raw", "docker://\(registry.address)/test/bb:latest"]).stdout
        let manifestObject = try JSONSerialization.jsonObject(with: Data(manifest.utf8)) as? [String: Any]
        let layer = ((manifestObject?["layers"] as? [[String: Any]])?.first?["digest"] as? String) ?? ""
        func ctr(_ arguments: String...) throws -> RunResult { try daemon.ctr(arguments, namespace: "fetch") }

        let fetched = try ctr("content", "fetch", "--plain-http", "\(registry.address)/test/bb:latest")
        #expect(fetched.status == 0, "\(fetched.stderr)")
        #expect(try ctr("content", "ls", "-q").stdout.split(separator: "\n").count == 3, "manifest, config and layer")
        #expect(try ctr("images", "ls", "-q").stdout == "\(registry.address)/test/bb:latest\n")

        let object = try ctr("content", "fetch-object", "--plain-http", "\(registry.address)/test/bb:latest")
        #expect(object.status == 0 && object.stdout == manifest)

        let pushed = try ctr(
            "content", "push-object", "--plain-http", "\(registry.address)/test/copy:latest", layer,
            "application/vnd.oci.image.layer.v1.tar+gzip")
        #expect(pushed.stdout == "Pushed \(layer) application/vnd.oci.image.layer.v1.tar+gzip\n", "\(pushed.stderr)")
        #expect(registry.hasBlob("test/copy", layer))
        let absent = try ctr(
            "content", "push-object", "--plain-http", "\(registry.address)/test/copy:latest",
            "sha256:" + String(repeating: "0", count: 64), "application/octet-stream")
        #expect(absent.status == 1 && absent.stderr.contains("not found"))

        // Images: pull unpacks, push copies to another repository, export writes an archive that
        // imports again.
        func images(_ arguments: String...) throws -> RunResult { try daemon.ctr(["images"] + arguments, namespace: "pull") }
        let pulled = try images("pull", "--plain-http", "\(registry.address)/test/bb:latest")
        #expect(pulled.status == 0 && pulled.stdout.contains("unpacking linux/amd64 "), "\(pulled.stderr)")
        #expect(try daemon.ctr(["snapshots", "ls"], namespace: "pull").stdout.contains("Committed"))
        let pushed2 = try images("push", "--plain-http", "\(registry.address)/test/pushed:latest", "\(registry.address)/test/bb:latest")
        #expect(pushed2.status == 0, "\(pushed2.stderr)")
        let pushedManifest = try run("/usr/bin/skopeo", ["inspect", "--tls-verify=false", "--raw", "docker://\(registry.address)/test/pushed:latest"])
        #expect(pushedManifest.stdout == manifest)
        let archive = daemon.directory + "/export.tar"
        #expect(try images("export", archive, "\(registry.address)/test/bb:latest").status == 0)
        let reimported = try daemon.ctr(["images", "import", "--no-unpack", archive], namespace: "again")
        #expect(reimported.status == 0, "\(reimported.stderr)")
        #expect(try daemon.ctr(["images", "ls", "-q"], namespace: "again").stdout == "\(registry.address)/test/bb:latest\n")
    }
}
