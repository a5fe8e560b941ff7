import Foundation
import Testing

/// `ctr images` and `ctr snapshots unpack` against berthd with an OCI image built offline
/// (umoci, busybox-static). Outputs match what containerd 1.6.20 printed for the same image
/// and commands on this machine, down to the unpacked snapshot's chain id and the blob count.
@Suite(.serialized) struct CtrImagesTests {
    /// An OCI layout tarball holding busybox and a greeting, and its manifest digest.
    static func buildImage(in directory: String) throws -> (tarball: String, manifest: String) {
        try TestImage.build(in: directory, applets: "sh", files: ["greeting": "hello"])
    }

    @Test(arguments: ["overlayfs", "native"])
    func ctrImages_importUnpackCheckLabelTagRemove_behaveAsContainerd(snapshotter: String) throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        let (tarball, manifest) = try Self.buildImage(in: daemon.directory)
        func ctr(_ arguments: String...) throws -> RunResult {
            // The snapshotter flag of `snapshots` is the group's, of the others the command's.
            let flagged =
                arguments.first == "snapshots"
                ? ["snapshots", "--snapshotter", snapshotter] + arguments.dropFirst()
                : arguments.count > 1 && ["import", "check"].contains(arguments[1])
                    ? arguments.prefix(2) + ["--snapshotter", snapshotter] + arguments.dropFirst(2)
                    : arguments[...]
            return try daemon.ctr(Array(flagged), namespace: "img")
        }

        let imported = try ctr("images", "import", "--base-name", "docker.io/library/bb", tarball)
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(imported.stdout == "unpacking docker.io/library/bb:latest (\(manifest))...done\n")
        let snapshots = try ctr("snapshots", "ls").stdout.split(separator: "\n")
        #expect(snapshots.count == 2)
        let chainID = String(snapshots.last?.split(separator: " ").first ?? "")
        #expect(chainID.hasPrefix("sha256:") && snapshots.last?.hasSuffix("Committed ") == true)

        #expect(try ctr("images", "import", "--no-unpack", "--base-name", "docker.io/library/bb2", tarball).status == 0)
        #expect(
            try ctr("snapshots", "unpack", manifest).stdout
                == "unpacking \(manifest) (application/vnd.oci.image.manifest.v1+json)...done\n")
        let check = try ctr("images", "check").stdout.split(separator: "\n").dropFirst()
        #expect(check.count == 2 && check.allSatisfy { $0.contains("complete (2/2)") && $0.hasSuffix("true") })

        // The unpacked tree holds the image's files.
        #expect(try ctr("snapshots", "view", "look", chainID).status == 0)
        let inside = try daemon.inSnapshot("look", snapshotter: snapshotter, namespace: "img", "cat greeting; ./bin/busybox true && echo runs")
        #expect(inside.stdout == "hello\nruns\n", "\(inside.stderr)")
        #expect(try ctr("snapshots", "rm", "look").status == 0)

        #expect(try ctr("images", "label", "docker.io/library/bb:latest", "a=b").stdout == "a=b\n")
        #expect(try ctr("images", "tag", "docker.io/library/bb:latest", "bb:copy").stdout == "bb:copy\n")
        #expect(try ctr("images", "ls", "-q").stdout == "bb:copy\ndocker.io/library/bb2:latest\ndocker.io/library/bb:latest\n")
        #expect(try ctr("images", "rm", "bb:copy").stdout == "bb:copy\n")
        let missing = try ctr("images", "rm", "nope")
        #expect(missing.status == 0 && missing.stderr.contains("nope: image not found"), "ctr only warns, as with containerd")

        // With the images gone, their blobs and the unpacked snapshot go too.
        #expect(try ctr("images", "rm", "--sync", "docker.io/library/bb:latest", "docker.io/library/bb2:latest").status == 0)
        #expect(try ctr("content", "ls", "-q").stdout == "")
        #expect(try ctr("snapshots", "ls").stdout == "KEY PARENT KIND \n")
    }

    /// `ctr images mount` unpacks into a view (or, with --rw, an active snapshot) held by a lease
    /// named after the target; `unmount` keeps both, `unmount --rm` removes both. Outputs and
    /// leftovers recorded from containerd 1.6.20 on this machine.
    @Test(arguments: ["overlayfs", "native"])
    func ctrImages_mountUnmount_behaveAsContainerd(snapshotter: String) throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        let (tarball, _) = try Self.buildImage(in: daemon.directory)
        func ctr(_ arguments: String...) throws -> RunResult {
            try daemon.ctr(Array(arguments), namespace: "img")
        }
        #expect(try ctr("images", "import", "--snapshotter", snapshotter, "--index-name", "img:1", tarball).status == 0)
        let listed = try ctr("snapshots", "--snapshotter", snapshotter, "ls").stdout.split(separator: "\n")
        let chainID = String(listed.last?.split(separator: " ").first ?? "")
        let seen = daemon.directory + "/seen", changed = daemon.directory + "/changed"
        for target in [seen, changed] { try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true) }

        let mounted = try ctr("images", "mount", "--snapshotter", snapshotter, "img:1", seen)
        #expect(mounted.stdout == "\(chainID)\n\(seen)\n", "\(mounted.stderr)")
        #expect(try String(contentsOfFile: seen + "/greeting", encoding: .utf8) == "hello\n")
        #expect(!FileManager.default.createFile(atPath: seen + "/new", contents: nil), "a read-only mount")
        #expect(try ctr("images", "unmount", seen).stdout == "\(seen)\n")
        #expect(!FileManager.default.fileExists(atPath: seen + "/greeting"))

        let writable = try ctr("images", "mount", "--rw", "--snapshotter", snapshotter, "img:1", changed)
        #expect(writable.status == 0, "\(writable.stderr)")
        #expect(FileManager.default.createFile(atPath: changed + "/new", contents: Data("x".utf8)))
        #expect(try ctr("images", "unmount", "--rm", changed).stdout == "\(changed)\n")

        // The plain unmount left its lease, and its view where the lease's reference label names
        // it: ctr 1.6 writes containerd.io/gc.ref.snapshot.overlayfs whatever the snapshotter,
        // so containerd collects the native view, and so does Berth. --rm left nothing.
        let left = try ctr("snapshots", "--snapshotter", snapshotter, "ls").stdout.split(separator: "\n").dropFirst()
        let kept = snapshotter == "overlayfs" ? [seen, chainID] : [chainID]
        #expect(left.map { String($0.split(separator: " ")[0]) } == kept)
        #expect(snapshotter != "overlayfs" || left.first?.contains(" View") == true)
        #expect(try ctr("leases", "ls", "-q").stdout == "\(seen)\n")
    }
}
