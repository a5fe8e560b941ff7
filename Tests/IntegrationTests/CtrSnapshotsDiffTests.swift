import Foundation
import Testing

/// `ctr snapshots diff` against berthd for both snapshotters. The expected listings are what
/// `tar -tvz` showed for containerd 1.6.20's layers after the same steps on this machine
/// (modes, owners, sizes, names and link targets; times differ from run to run).
@Suite(.serialized) struct CtrSnapshotsDiffTests {
    static let changes = [
        "drwxr-xr-x 0/0 0 dir/",
        "---------- 0/0 0 dir/.wh.file2",
        "-rw-r--r-- 0/0 12 file1",
        "-rw-r--r-- 0/0 6 file3",
        "drwxr-xr-x 0/0 0 keep/",
        "-rw-r--r-- 0/0 6 keep/again",
        "---------- 0/0 0 keep/.wh.k",
        "drwxr-xr-x 0/0 0 newdir/",
    ]
    static let base = [
        "drwxr-xr-x 0/0 0 dir/",
        "-rw-r--r-- 0/0 4 dir/file2",
        "-rw-r--r-- 0/0 4 file1",
        "drwxr-xr-x 0/0 0 keep/",
        "-rw-r--r-- 0/0 2 keep/k",
        "lrwxrwxrwx 0/0 0 link -> file1",
    ]
    static let reverse = [
        "drwxr-xr-x 0/0 0 dir/",
        "-rw-r--r-- 0/0 4 dir/file2",
        "-rw-r--r-- 0/0 4 file1",
        "---------- 0/0 0 .wh.file3",
        "drwxr-xr-x 0/0 0 keep/",
        "---------- 0/0 0 keep/.wh.again",
        "-rw-r--r-- 0/0 2 keep/k",
        "---------- 0/0 0 .wh.newdir",
    ]

    @Test(arguments: ["overlayfs", "native"])
    func ctrSnapshotsDiff_layersListAsContainerdWrites(snapshotter: String) throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        func ctr(_ arguments: String...) throws -> RunResult {
            try daemon.ctr(["snapshots", "--snapshotter", snapshotter] + arguments, namespace: "diff")
        }
        func sh(_ script: String) throws {
            let result = try run("/bin/sh", ["-ec", script])
            #expect(result.status == 0, "\(script): \(result.stderr)")
        }
        func change(_ key: String, _ script: String) throws {
            let result = try daemon.inSnapshot(key, snapshotter: snapshotter, namespace: "diff", script)
            #expect(result.status == 0, "\(script): \(result.stderr)")
        }
        /// `tar -tvz` of the layer ctr prints, without the times.
        func listing(_ arguments: String...) throws -> [String] {
            let layer = daemon.directory + "/layer.tgz"
            let line =
                (["/usr/bin/ctr", "--address", daemon.socket, "--namespace", "diff", "snapshots", "--snapshotter", snapshotter, "diff"]
                + arguments).joined(separator: " ")
            try sh("\(line) > \(layer)")
            return try run("/usr/bin/tar", ["-tvzf", layer]).stdout.split(separator: "\n").map { line in
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                return ([fields[0], fields[1], fields[2]] + fields[5...]).joined(separator: " ")
            }
        }

        #expect(try ctr("prepare", "a").status == 0)
        try change("a", "mkdir dir keep; echo one > file1; echo two > dir/file2; ln -s file1 link; echo k > keep/k")
        #expect(try ctr("commit", "base", "a").status == 0)
        #expect(try ctr("prepare", "b", "base").status == 0)
        try change("b", "echo one-changed > file1; rm dir/file2; echo three > file3; mkdir newdir; rm -rf keep; mkdir keep; echo again > keep/again")

        #expect(try listing("b") == Self.changes)
        let layer = daemon.directory + "/layer.tgz"
        #expect(try run("/usr/bin/tar", ["-xzOf", layer, "file1"]).stdout == "one-changed\n")
        #expect(try run("/usr/bin/tar", ["-xzOf", layer, "keep/again"]).stdout == "again\n")
        #expect(try listing("base") == Self.base)
        #expect(try listing("b", "base") == Self.reverse)
        // The views ctr made for the comparisons are gone again.
        #expect(try ctr("ls").stdout == "KEY  PARENT KIND      \nb    base   Active    \nbase        Committed \n")

        // A media type the differ does not write is refused by name.
        let zstd = try ctr("diff", "--media-type", "application/vnd.oci.image.layer.v1.tar+zstd", "b")
        #expect(zstd.status == 1 && zstd.stderr.contains("media type \"application/vnd.oci.image.layer.v1.tar+zstd\" is not supported"))
        let uncompressed = daemon.directory + "/layer.tar"
        try sh(
            "/usr/bin/ctr --address \(daemon.socket) --namespace diff snapshots --snapshotter \(snapshotter) diff --media-type application/vnd.oci.image.layer.v1.tar b > \(uncompressed)"
        )
        #expect(try run("/usr/bin/tar", ["-tf", uncompressed]).stdout.split(separator: "\n").count == Self.changes.count)
    }
}
