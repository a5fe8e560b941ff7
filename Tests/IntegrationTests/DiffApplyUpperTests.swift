import BerthAPI
import BerthProto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Testing

/// Diff.Apply onto an overlayfs snapshot writes into the snapshot's upper directory without
/// mounting the overlay: whiteouts as 0/0 devices, opaque folders as trusted.overlay.opaque,
/// parents the layer lacks with the lower layer's attributes. A layer that needs the merged
/// view falls back to the mounted overlay, which leaves its own marks in the upper directory
/// (an emptied folder gets one whiteout per lower entry instead of the opaque xattr), so each
/// test can tell which way it went.
@Suite(.serialized) struct DiffApplyUpperTests {
    typealias Diff = Containerd_Services_Diff_V1_Diff.Client<HTTP2ClientTransport.Posix>
    typealias Snapshots = Containerd_Services_Snapshots_V1_Snapshots.Client<HTTP2ClientTransport.Posix>
    typealias Content = Containerd_Services_Content_V1_Content.Client<HTTP2ClientTransport.Posix>
    typealias Leases = Containerd_Services_Leases_V1_Leases.Client<HTTP2ClientTransport.Posix>

    /// The committed parent every test applies onto.
    static let base = """
        mkdir -p gone/sub keep opq low/deep; echo x > gone/sub/f; echo k > keep/k; echo o > opq/old
        chown 1000:1001 low; chmod 750 low; touch -d @1400000000 low; ln -s /keep linkdir; echo f > file
        """

    /// A daemon with snapshot "base" (the tree above) committed in namespace "upper".
    struct Fixture {
        let daemon: Daemon
        let plain: Metadata
        let leased: Metadata

        /// `settings`: plugin.conf lines; by default unpacking ahead is off, so that these tests
        /// see the Apply path alone (UnpackAheadTests turn it on).
        init(settings: String = "[unpack]\nahead = false", directory: String? = nil) throws {
            daemon = try Daemon(directory: directory, settings: settings)
            try daemon.waitReady()
            var metadata = Metadata()
            metadata.addString("upper", forKey: "containerd-namespace")
            plain = metadata
            metadata.addString("keep", forKey: "containerd-lease")
            leased = metadata
            #expect(try ctr("prepare", "a").status == 0)
            try inside("a", DiffApplyUpperTests.base)
            #expect(try ctr("commit", "base", "a").status == 0)
        }

        func ctr(_ arguments: String...) throws -> RunResult {
            try daemon.ctr(["snapshots", "--snapshotter", "overlayfs"] + arguments, namespace: "upper")
        }

        /// Runs `script` in snapshot `key`'s mounted tree; returns its output.
        @discardableResult
        func inside(_ key: String, _ script: String) throws -> String {
            let result = try daemon.inSnapshot(key, snapshotter: "overlayfs", namespace: "upper", script)
            #expect(result.status == 0, "\(script): \(result.stderr)")
            return result.stdout
        }

        /// The upper directory of `mounts`.
        static func upper(_ mounts: [Containerd_Types_Mount]) -> String {
            mounts.first?.options.first { $0.hasPrefix("upperdir=") }.map { String($0.dropFirst("upperdir=".count)) } ?? "/nonexistent"
        }

        /// Runs `script` in the upper directory of `mounts` (not mounted); returns its output.
        func inUpper(_ mounts: [Containerd_Types_Mount], _ script: String) throws -> String {
            let upper = Self.upper(mounts)
            let result = try run("/bin/sh", ["-ec", "cd \(upper); \(script)"])
            #expect(result.status == 0, "\(script): \(result.stderr)")
            return result.stdout
        }

        /// A tar layer of `entries`, Python lines calling add(t, name, kind, data, mode, uid,
        /// gid, link, mtime, xattrs); gzip-compressed when `gzip`.
        func layer(_ name: String, _ entries: [String], gzip: Bool = false) throws -> Data {
            let path = daemon.directory + "/\(name).tar"
            let script = """
                import tarfile, io
                def add(t, name, kind='file', data=b'', mode=0o644, uid=0, gid=0, link='', mtime=1600000000, xattrs={}):
                    i = tarfile.TarInfo(name); i.mode = mode; i.uid = uid; i.gid = gid; i.mtime = mtime
                    i.pax_headers = {'SCHILY.xattr.' + k: v for k, v in xattrs.items()}
                    if kind == 'file': i.size = len(data); t.addfile(i, io.BytesIO(data))
                    else: i.type = kind; i.linkname = link; t.addfile(i)
                with tarfile.open('\(path)', '\(gzip ? "w:gz" : "w")', format=tarfile.PAX_FORMAT) as t:
                \(entries.map { "    " + $0 }.joined(separator: "\n"))
                """
            let made = try run("/usr/bin/env", ["python3", "-c", script])
            #expect(made.status == 0, "\(made.stderr)")
            return try Data(contentsOf: URL(fileURLWithPath: path))
        }

        /// Commits `bytes` as a blob (under lease "keep"); answers its digest.
        @discardableResult
        func commit(_ bytes: Data, ref: String) async throws -> String {
            let digest = try BadInputTests.sha256(bytes)
            try await withClient(daemon) { client in
                _ = try? await Leases(wrapping: client).create(.with { $0.id = "keep" }, metadata: plain)
                try await CollectionRaceTests.commit(Content(wrapping: client), bytes, digest: digest, ref: ref, metadata: leased)
            }
            return digest
        }

        /// Prepares `key` on "base", applies `bytes` to it; answers its mounts and the failure, if any.
        /// `prepared` runs between the Prepare and the Apply.
        func apply(
            _ bytes: Data, to key: String, committed: Bool = false, mediaType: String = "application/vnd.oci.image.layer.v1.tar",
            prepared: ([Containerd_Types_Mount]) throws -> Void = { _ in }
        ) async throws -> ([Containerd_Types_Mount], (RPCError.Code, String)?) {
            var result: ([Containerd_Types_Mount], (RPCError.Code, String)?) = ([], nil)
            let digest = committed ? try BadInputTests.sha256(bytes) : try await commit(bytes, ref: key)
            try await withClient(daemon) { client in
                let diff = Diff(wrapping: client), snapshots = Snapshots(wrapping: client)
                let mounts = try await snapshots.prepare(
                    .with {
                        $0.key = key
                        $0.parent = "base"
                        $0.snapshotter = "overlayfs"
                    }, metadata: plain
                ).mounts
                try prepared(mounts)
                let failure = await rpcFailure {
                    _ = try await diff.apply(
                        .with {
                            $0.diff = .with {
                                $0.digest = digest
                                $0.mediaType = mediaType
                                $0.size = Int64(bytes.count)
                            }
                            $0.mounts = mounts
                        }, metadata: plain)
                }
                result = (mounts, failure)
            }
            return result
        }
    }

    @Test func apply_overlayLayer_writesWhiteoutsOpaqueAndParentsIntoTheUpperDirectory() async throws {
        let fixture = try Fixture()
        defer { _ = fixture.daemon.stop() }
        let bytes = try fixture.layer(
            "direct",
            [
                "add(t, '.wh.gone')",
                "add(t, 'keep/.wh.k')",
                "add(t, 'opq/.wh..wh..opq')",
                "add(t, 'opq/new', data=b'n')",
                "add(t, 'low/deep/child', data=b'c', uid=1000, gid=1001, mode=0o600)",
                "add(t, 'x', data=b'x', xattrs={'user.berth': 'file', 'trusted.overlay.opaque': 'y'})",
                "add(t, 'xd', tarfile.DIRTYPE, mode=0o755, xattrs={'user.berth': 'dir'})",
                "add(t, 'sg', tarfile.DIRTYPE, mode=0o2775, gid=1000)",
                "add(t, 'sg/f', data=b'f')",
                "add(t, 'sg/d', tarfile.DIRTYPE, mode=0o755, gid=1000)",
            ])
        let (mounts, failure) = try await fixture.apply(bytes, to: "t")
        #expect(failure == nil, "\(String(describing: failure))")
        // The upper directory holds overlayfs' own forms, and no whiteout per emptied file; the
        // parents made for low/deep/child carry the lower ones' owner, mode and times (the access
        // time shows it: creating the child changed the modification time, as a copy-up would).
        let upper = try fixture.inUpper(
            mounts,
            """
            stat -c '%n %F %t:%T' gone keep/k; ls -A opq
            python3 -c "import os; print(os.getxattr('opq', 'trusted.overlay.opaque'), os.listxattr('x'))"
            stat -c '%n %u %g %a %X' low; stat -c '%n %u %g %a' low/deep
            """)
        #expect(
            upper == """
                gone character special file 0:0
                keep/k character special file 0:0
                new
                b'y' ['user.berth']
                low 1000 1001 750 1400000000
                low/deep 0 0 755

                """)
        // Through the overlay, the layer's view.
        let merged = try fixture.inside(
            "t",
            """
            if test -e gone; then echo kept; fi; ls -A keep; ls -A opq; cat low/deep/child; echo
            stat -c '%n %u %g %a' low low/deep/child
            python3 -c "import os; print(os.getxattr('x', 'user.berth'), os.getxattr('xd', 'user.berth'))"
            stat -c '%n %u %g %a' sg sg/f sg/d
            """)
        #expect(merged == "new\nc\nlow 1000 1001 750\nlow/deep/child 1000 1001 600\nb'file' b'dir'\nsg 0 1000 2775\nsg/f 0 0 644\nsg/d 0 1000 755\n")
    }

    /// Each layer also makes "opq" opaque: unpacked through the mounted overlay, the upper
    /// directory then holds a whiteout for opq/old and no opaque xattr.
    @Test(arguments: [
        ("symlinkParent", "add(t, 'linkdir/through', data=b'via')", "cat keep/through"),
        ("hardLinkToLower", "add(t, 'hard', tarfile.LNKTYPE, link='keep/k')", "cat hard; stat -c %h hard"),
    ])
    func apply_layerNeedingTheMergedView_fallsBackToTheMountedOverlay(name: String, entry: String, check: String) async throws {
        let fixture = try Fixture()
        defer { _ = fixture.daemon.stop() }
        let bytes = try fixture.layer(name, ["add(t, 'opq/.wh..wh..opq')", "add(t, 'opq/new', data=b'n')", entry])
        let (mounts, failure) = try await fixture.apply(bytes, to: "t")
        #expect(failure == nil, "\(String(describing: failure))")
        let upper = try fixture.inUpper(mounts, "stat -c '%n %F %t:%T' opq/old")
        #expect(upper == "opq/old character special file 0:0\n", "went through the overlay")
        let expected = name == "symlinkParent" ? "via" : "k\n2\n"
        #expect(try fixture.inside("t", "ls -A opq; " + check) == "new\n" + expected)
    }

    /// A layer that fails half-way in the upper directory leaves it empty, and the error is the
    /// same as through a mount.
    @Test func apply_failingLayer_leavesTheUpperDirectoryEmpty() async throws {
        let fixture = try Fixture()
        defer { _ = fixture.daemon.stop() }
        let bytes = try fixture.layer("bad", ["add(t, 'made/first', data=b'1')", "add(t, '.wh.keep')", "add(t, '../../escape', data=b'x')"])
        let (mounts, failure) = try await fixture.apply(bytes, to: "t")
        #expect(failure?.0 == .invalidArgument, "\(String(describing: failure))")
        #expect(try fixture.inUpper(mounts, "ls -A") == "")
        #expect(!FileManager.default.fileExists(atPath: fixture.daemon.directory + "/escape"))
    }
}
