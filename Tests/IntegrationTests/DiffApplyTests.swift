import BerthAPI
import BerthProto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Testing

/// Diff.Apply over gRPC: a layer made by Diff unpacks onto a fresh snapshot and reproduces the
/// tree; layers that try to leave the tree are refused ("..") or kept inside it (symlinks).
@Suite(.serialized) struct DiffApplyTests {
    typealias Diff = Containerd_Services_Diff_V1_Diff.Client<HTTP2ClientTransport.Posix>
    typealias Snapshots = Containerd_Services_Snapshots_V1_Snapshots.Client<HTTP2ClientTransport.Posix>
    typealias Content = Containerd_Services_Content_V1_Content.Client<HTTP2ClientTransport.Posix>
    typealias Leases = Containerd_Services_Leases_V1_Leases.Client<HTTP2ClientTransport.Posix>

    @Test(arguments: ["overlayfs", "native"])
    func apply_layerFromDiff_reproducesTheTree_andHostileLayersStayInside(snapshotter: String) async throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        func ctr(_ arguments: String...) throws -> RunResult {
            try daemon.ctr(["snapshots", "--snapshotter", snapshotter] + arguments, namespace: "apply")
        }
        func sh(_ script: String) throws -> String {
            let result = try run("/bin/sh", ["-ec", script])
            #expect(result.status == 0, "\(script): \(result.stderr)")
            return result.stdout
        }
        /// Runs `script` in snapshot `key`'s mounted tree; returns its output.
        @discardableResult
        func inside(_ key: String, _ script: String) throws -> String {
            let result = try daemon.inSnapshot(key, snapshotter: snapshotter, namespace: "apply", script)
            #expect(result.status == 0, "\(script): \(result.stderr)")
            return result.stdout
        }
        #expect(try ctr("prepare", "a").status == 0)
        try inside("a", "mkdir dir keep; echo one > file1; echo two > dir/file2; ln -s file1 link; echo k > keep/k; chmod 4755 file1")
        #expect(try ctr("commit", "base", "a").status == 0)
        #expect(try ctr("prepare", "b", "base").status == 0)
        try inside(
            "b", "echo one-changed > file1; rm dir/file2; echo three > file3; mkdir newdir; rm -rf keep; mkdir keep; echo again > keep/again; mkfifo pipe")
        #expect(try ctr("prepare", "c", "base").status == 0)
        #expect(try ctr("prepare", "hostile", "base").status == 0)

        var metadata = Metadata()
        metadata.addString("apply", forKey: "containerd-namespace")
        let plain = metadata
        metadata.addString("keep", forKey: "containerd-lease")
        let leased = metadata
        let tree = "find . -printf '%p %y %m %s %l\\n' | sort"

        try await withClient(daemon) { client in
            let diff = Diff(wrapping: client), snapshots = Snapshots(wrapping: client), content = Content(wrapping: client)
            _ = try await Leases(wrapping: client).create(.with { $0.id = "keep" }, metadata: plain)
            let lower = try await snapshots.view(
                .with {
                    $0.key = "base-view"
                    $0.parent = "base"
                    $0.snapshotter = snapshotter
                }, metadata: plain
            ).mounts
            let upper = try await snapshots.mounts(
                .with {
                    $0.key = "b"
                    $0.snapshotter = snapshotter
                }, metadata: plain
            ).mounts
            let layer = try await diff.diff(
                .with {
                    $0.left = lower
                    $0.right = upper
                }, metadata: leased
            ).diff
            let info = try await content.info(.with { $0.digest = layer.digest }, metadata: plain).info

            let cMounts = try await snapshots.mounts(
                .with {
                    $0.key = "c"
                    $0.snapshotter = snapshotter
                }, metadata: plain
            ).mounts
            let applied = try await diff.apply(
                .with {
                    $0.diff = layer
                    $0.mounts = cMounts
                }, metadata: plain
            ).applied
            #expect(applied.digest == info.labels["containerd.io/uncompressed"])
            #expect(applied.mediaType == "application/vnd.oci.image.layer.v1.tar")

            // c now holds what b holds.
            #expect(try inside("c", tree) == (try inside("b", tree)))
            let facts = try inside("c", "cat file1 keep/again; readlink link; stat -c %a file1; test -p pipe && echo fifo")
            #expect(facts == "one-changed\nagain\nfile1\n4755\nfifo\n", "setuid survives (root's write keeps it)")

            // Hostile layers: a path with "..", refused; files written through symlinks that point
            // out of the tree, which land inside it (as if the tree were "/").
            let outside = daemon.directory + "/outside"
            try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
            let hMounts = try await snapshots.mounts(
                .with {
                    $0.key = "hostile"
                    $0.snapshotter = snapshotter
                }, metadata: plain
            ).mounts
            for (name, members, refused) in [
                ("dotdot", "[('../../escape', 'file', '')]", true),
                ("symlink", "[('evil', 'link', '\(outside)'), ('evil/pwned', 'file', ''), ('up', 'link', '../../../..'), ('up/top', 'file', '')]", false),
            ] {
                let path = daemon.directory + "/\(name).tar.gz"
                _ = try sh(
                    """
                    python3 -c "
                    import tarfile, io
                    with tarfile.open('\(path)', 'w:gz') as t:
                        for name, kind, target in \(members):
                            i = tarfile.TarInfo(name)
                            if kind == 'link':
                                i.type = tarfile.SYMTYPE; i.linkname = target; t.addfile(i)
                            else:
                                data = b'x'; i.size = 1; t.addfile(i, io.BytesIO(data))
                    "
                    """)
                let digest = try BadInputTests.sha256(try Data(contentsOf: URL(fileURLWithPath: path)))
                let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
                try await CollectionRaceTests.commit(content, bytes, digest: digest, ref: name, metadata: leased)
                let failure = await rpcFailure {
                    _ = try await diff.apply(
                        .with {
                            $0.diff = .with {
                                $0.digest = digest
                                $0.mediaType = "application/vnd.oci.image.layer.v1.tar+gzip"
                                $0.size = Int64(bytes.count)
                            }
                            $0.mounts = hMounts
                        }, metadata: plain)
                }
                #expect(refused ? failure?.0 == .invalidArgument : failure == nil, "\(name): \(String(describing: failure))")
            }
            #expect(!FileManager.default.fileExists(atPath: daemon.directory + "/escape"))
            #expect(!FileManager.default.fileExists(atPath: outside + "/pwned"))
            #expect(!FileManager.default.fileExists(atPath: "/top"))
            #expect(try inside("hostile", "cat .\(outside)/pwned top") == "xx", "both files are inside the tree")

            let missing = try? await diff.apply(
                .with {
                    $0.diff = .with { $0.digest = "sha256:" + String(repeating: "e", count: 64) }
                    $0.mounts = hMounts
                }, metadata: plain)
            #expect(missing == nil)
        }
    }

    /// A layer written by hand unpacks as image-spec layer.md says: whiteouts remove a file
    /// and a whole folder of the parent, an opaque folder hides the parent's entries but keeps
    /// its own, an entry replaces a folder, a hard link shares its target's inode, owners,
    /// modes (set-user-ID too) and times are the entries', and an entry under a symlinked
    /// folder of the parent lands where the symlink points, inside the tree.
    @Test(arguments: ["overlayfs", "native"])
    func apply_handWrittenLayer_followsTheLayerSpec(snapshotter: String) async throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        func ctr(_ arguments: String...) throws -> RunResult {
            try daemon.ctr(["snapshots", "--snapshotter", snapshotter] + arguments, namespace: "spec")
        }
        @discardableResult
        func inside(_ key: String, _ script: String) throws -> String {
            let result = try daemon.inSnapshot(key, snapshotter: snapshotter, namespace: "spec", script)
            #expect(result.status == 0, "\(script): \(result.stderr)")
            return result.stdout
        }
        #expect(try ctr("prepare", "a").status == 0)
        try inside("a", "mkdir -p gone/sub keep opq wasdir; echo x > gone/sub/f; echo k > keep/k; echo o > opq/old; echo w > wasdir/w; ln -s /keep linkdir")
        #expect(try ctr("commit", "base", "a").status == 0)
        #expect(try ctr("prepare", "t", "base").status == 0)

        let path = daemon.directory + "/spec.tar"
        let script = """
            import tarfile, io
            def add(t, name, kind='file', data=b'', mode=0o644, uid=0, gid=0, link='', mtime=1600000000, xattrs={}):
                i = tarfile.TarInfo(name); i.mode = mode; i.uid = uid; i.gid = gid; i.mtime = mtime
                i.pax_headers = {'SCHILY.xattr.' + k: v for k, v in xattrs.items()}
                if kind == 'file': i.size = len(data); t.addfile(i, io.BytesIO(data))
                else: i.type = kind; i.linkname = link; t.addfile(i)
            with tarfile.open('\(path)', 'w', format=tarfile.PAX_FORMAT) as t:
                add(t, '.wh.gone')
                add(t, 'keep/.wh.k')
                add(t, 'opq/.wh..wh..opq')
                add(t, 'opq/new', data=b'n')
                add(t, 'wasdir', data=b'now a file')
                add(t, 'file2', data=b'two', mode=0o640, uid=1000, gid=1001)
                add(t, 'hard', tarfile.LNKTYPE, link='file2')
                add(t, 'linkdir/through', data=b'via')
                add(t, 'd', tarfile.DIRTYPE, mode=0o750, uid=1000, gid=1000, mtime=1500000000)
                add(t, 'd/x', data=b'x')
                add(t, 'setuid', data=b's', mode=0o4755, uid=1000, gid=1000)
                add(t, 'sg', tarfile.DIRTYPE, mode=0o2775, gid=1000)
                add(t, 'sg/f', data=b'f', xattrs={'user.berth': 'in sg'})
                add(t, 'sg/d', tarfile.DIRTYPE, mode=0o755, gid=1000)
                add(t, 'sg/d2', tarfile.DIRTYPE, mode=0o2755, gid=1000)
                add(t, 'plain', data=b'p', mode=0o600)
                add(t, 'plain-link', tarfile.SYMTYPE, link='plain', uid=1000, gid=1000)
            """
        let made = try run("/usr/bin/env", ["python3", "-c", script])
        #expect(made.status == 0, "\(made.stderr)")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let digest = try BadInputTests.sha256(bytes)

        var metadata = Metadata()
        metadata.addString("spec", forKey: "containerd-namespace")
        let plain = metadata
        metadata.addString("keep", forKey: "containerd-lease")
        let leased = metadata
        try await withClient(daemon) { client in
            let diff = Diff(wrapping: client), snapshots = Snapshots(wrapping: client), content = Content(wrapping: client)
            _ = try await Leases(wrapping: client).create(.with { $0.id = "keep" }, metadata: plain)
            try await CollectionRaceTests.commit(content, bytes, digest: digest, ref: "spec", metadata: leased)
            let mounts = try await snapshots.mounts(
                .with {
                    $0.key = "t"
                    $0.snapshotter = snapshotter
                }, metadata: plain
            ).mounts
            _ = try await diff.apply(
                .with {
                    $0.diff = .with {
                        $0.digest = digest
                        $0.mediaType = "application/vnd.oci.image.layer.v1.tar"
                        $0.size = Int64(bytes.count)
                    }
                    $0.mounts = mounts
                }, metadata: plain)
        }
        #expect(try inside("t", "if test -e gone; then echo kept; fi; ls -A keep; ls -A opq") == "through\nnew\n")
        #expect(try inside("t", "cat wasdir keep/through; echo; readlink linkdir") == "now a filevia\n/keep\n")
        let stats = [
            "file2 1000 1001 640 1600000000 2", "hard 1000 1001 640 1600000000 2", "d 1000 1000 750 1500000000 2",
            "setuid 1000 1000 4755 1600000000 1",
        ]
        #expect(try inside("t", "stat -c '%n %u %g %a %Y %h' file2 hard d setuid") == stats.map { $0 + "\n" }.joined())
        #expect(try inside("t", "test $(stat -c %i file2) = $(stat -c %i hard) && echo same") == "same\n")
        // Owners and modes the creation alone would get wrong: the set-group-ID folder's group on
        // a file asked as 0:0, its bit on a sub-folder asked without it.
        let created = ["sg 0 1000 2775", "sg/f 0 0 644", "sg/d 0 1000 755", "sg/d2 0 1000 2755", "plain 0 0 600", "plain-link 1000 1000 777"]
        #expect(try inside("t", "stat -c '%n %u %g %a' sg sg/f sg/d sg/d2 plain plain-link") == created.map { $0 + "\n" }.joined())
        #expect(try inside("t", "python3 -c \"import os; print(os.getxattr('sg/f', 'user.berth'))\"") == "b'in sg'\n")
    }

    /// Overlays of ~100 layers pass the one page mount(2) takes for options: the differ must
    /// still mount them to compare and to unpack.
    @Test(arguments: ["overlayfs", "native"])
    func diffAndApply_onAHundredLayerChain_work(snapshotter: String) async throws {
        let daemon = try Daemon()
        try daemon.waitReady()
        defer { _ = daemon.stop() }
        var metadata = Metadata()
        metadata.addString("deep", forKey: "containerd-namespace")
        let plain = metadata
        metadata.addString("keep", forKey: "containerd-lease")
        let leased = metadata
        /// Where files of an active snapshot can be written without mounting it.
        func writable(_ mounts: [Containerd_Types_Mount]) -> String {
            mounts.first.flatMap { mount in
                mount.options.first { $0.hasPrefix("upperdir=") }.map { String($0.dropFirst("upperdir=".count)) } ?? mount.source
            } ?? ""
        }
        try await withClient(daemon) { client in
            let snapshots = Snapshots(wrapping: client), diff = Diff(wrapping: client)
            _ = try await Leases(wrapping: client).create(.with { $0.id = "keep" }, metadata: plain)
            let depth = 100
            for i in 0..<depth {
                let mounts = try await snapshots.prepare(
                    .with {
                        $0.key = "l\(i)"
                        $0.parent = i == 0 ? "" : "c\(i - 1)"
                        $0.snapshotter = snapshotter
                    }, metadata: leased
                ).mounts
                try "\(i)\n".write(toFile: writable(mounts) + "/f\(i)", atomically: false, encoding: .utf8)
                _ = try await snapshots.commit(
                    .with {
                        $0.key = "l\(i)"
                        $0.name = "c\(i)"
                        $0.snapshotter = snapshotter
                    }, metadata: leased)
            }
            let lower = try await snapshots.view(
                .with {
                    $0.key = "v-lower"
                    $0.parent = "c\(depth - 2)"
                    $0.snapshotter = snapshotter
                },
                metadata: leased
            ).mounts
            let upper = try await snapshots.view(
                .with {
                    $0.key = "v-upper"
                    $0.parent = "c\(depth - 1)"
                    $0.snapshotter = snapshotter
                },
                metadata: leased
            ).mounts
            if snapshotter == "overlayfs" {
                #expect(lower.flatMap(\.options).joined(separator: ",").utf8.count > 4096, "the options pass one page")
            }
            let layer = try await diff.diff(
                .with {
                    $0.left = lower
                    $0.right = upper
                }, metadata: leased
            ).diff

            let top = try await snapshots.prepare(
                .with {
                    $0.key = "top"
                    $0.parent = "c\(depth - 2)"
                    $0.snapshotter = snapshotter
                },
                metadata: leased
            ).mounts
            _ = try await diff.apply(
                .with {
                    $0.diff = layer
                    $0.mounts = top
                }, metadata: plain)
            let added = try String(contentsOfFile: writable(top) + "/f\(depth - 1)", encoding: .utf8)
            #expect(added == "\(depth - 1)\n")
            // Only the newest file was in the layer: nothing else was copied up.
            let copied = try FileManager.default.contentsOfDirectory(atPath: writable(top)).filter { $0.hasPrefix("f") }
            #expect(snapshotter == "native" || copied == ["f\(depth - 1)"])
        }
    }
}
