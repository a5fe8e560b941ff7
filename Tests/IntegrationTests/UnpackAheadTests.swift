import BerthAPI
import BerthProto
import Foundation
import GRPCCore
import Testing

/// Layers unpacked ahead of their Apply (Sources/Storage/Diff/LayerStaging.swift): a committed
/// layer blob is staged in the differ's folder, and Apply adopts the staged tree by renaming
/// it over the snapshot's upper directory, which is how a test tells it happened (the upper
/// directory's inode changes). Fallbacks, the bounds, the TTL, deletion and a restart's
/// sweep are each checked on that folder.
@Suite(.serialized) struct UnpackAheadTests {
    typealias Fixture = DiffApplyUpperTests.Fixture

    /// The differ plugin's staging folders, by name.
    static func stagings(_ daemon: Daemon) -> [String] {
        let root = daemon.directory + "/root"
        let plugins = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        for plugin in plugins where plugin.contains("differ") {
            return ((try? FileManager.default.contentsOfDirectory(atPath: root + "/" + plugin + "/staging")) ?? []).sorted()
        }
        return []
    }

    /// Waits up to `seconds` for `count` stagings; answers whether they were reached.
    static func waitForStagings(_ daemon: Daemon, _ count: Int, seconds: Double = 20) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if stagings(daemon).count == count { return true }
            usleep(20_000)
        }
        return stagings(daemon).count == count
    }

    static func inode(_ path: String) -> UInt64 {
        var status = stat()
        return stat(path, &status) == 0 ? UInt64(status.st_ino) : 0
    }

    /// Whiteouts of a file and a folder, an opaque folder, a parent only a lower layer has,
    /// owners, modes, a hard link inside the layer, xattrs.
    static let richLayer = [
        "add(t, '.wh.gone')",
        "add(t, 'keep/.wh.k')",
        "add(t, 'opq/.wh..wh..opq')",
        "add(t, 'opq/new', data=b'n')",
        "add(t, 'low/deep/child', data=b'c', uid=1000, gid=1001, mode=0o600)",
        "add(t, 'x', data=b'x' * 5000, xattrs={'user.berth': 'file'})",
        "add(t, 'hard', tarfile.LNKTYPE, link='x')",
        "add(t, 'd', tarfile.DIRTYPE, mode=0o750, uid=1000, gid=1000, mtime=1500000000)",
        "add(t, 'd/s', tarfile.SYMTYPE, link='../x')",
        "add(t, 'setuid', data=b's', mode=0o4755, uid=1000, gid=1000)",
    ]

    /// What an applied tree shows: every entry's type, mode, owner, size, link target, and
    /// non-folder times; file contents; xattrs; and the upper directory's own entries.
    static let listing = """
        find . -printf '%p %y %m %U %G %s %l %n\\n' | sort; find . ! -type d -printf '%p %T@\\n' | sort
        find . -type f -print0 | sort -z | xargs -0 md5sum
        python3 -c "import os; print(os.getxattr('x', 'user.berth'))"
        """

    @Test func stagedLayer_isAdopted_andGivesTheTreeOfAnOrdinaryApply() async throws {
        let fixture = try Fixture(settings: "")
        defer { _ = fixture.daemon.stop() }
        let bytes = try fixture.layer("rich", Self.richLayer)
        try await fixture.commit(bytes, ref: "rich")
        #expect(Self.waitForStagings(fixture.daemon, 1))
        var before: UInt64 = 0
        let (adopted, failure) = try await fixture.apply(bytes, to: "t", committed: true) { before = Self.inode(Fixture.upper($0)) }
        #expect(failure == nil, "\(String(describing: failure))")
        #expect(before != 0 && Self.inode(Fixture.upper(adopted)) != before, "the staged tree took the upper directory's place")
        #expect(Self.stagings(fixture.daemon).isEmpty)
        // The parent only a lower layer has got its owner, mode and access time (read before
        // anything lists the folder, which would update the access time).
        #expect(try fixture.inUpper(adopted, "stat -c '%n %u %g %a %X' low") == "low 1000 1001 750 1400000000\n")
        // The same blob again: its staging is used up, so this is an ordinary apply.
        let (ordinary, again) = try await fixture.apply(bytes, to: "u", committed: true) { before = Self.inode(Fixture.upper($0)) }
        #expect(again == nil, "\(String(describing: again))")
        #expect(Self.inode(Fixture.upper(ordinary)) == before)

        let merged = try fixture.inside("t", Self.listing)
        #expect(merged == (try fixture.inside("u", Self.listing)))
        #expect(merged.contains("./gone") == false && merged.contains("./opq/new f 644 0 0 1"))
        let upper = "find . -printf '%p %y %m %U %G %l\\n' | sort; stat -c '%n %t:%T' gone keep/k"
        #expect(try fixture.inUpper(adopted, upper) == (try fixture.inUpper(ordinary, upper)))
        let opaque = "python3 -c \"import os; print(os.getxattr('opq', 'trusted.overlay.opaque'))\""
        #expect(try fixture.inUpper(adopted, opaque) == "b'y'\n")
    }

    /// A layer whose entry goes through a lower layer's symlink can be staged (the staging does
    /// not know the lowers) but not adopted: the ordinary apply writes it through the link.
    @Test func stagingNeedingTheLowerLayers_isRefused_andTheOrdinaryApplyRuns() async throws {
        let fixture = try Fixture(settings: "")
        defer { _ = fixture.daemon.stop() }
        let bytes = try fixture.layer("through", ["add(t, 'linkdir/through', data=b'via')"])
        try await fixture.commit(bytes, ref: "through")
        #expect(Self.waitForStagings(fixture.daemon, 1))
        var before: UInt64 = 0
        let (mounts, failure) = try await fixture.apply(bytes, to: "t", committed: true) { before = Self.inode(Fixture.upper($0)) }
        #expect(failure == nil, "\(String(describing: failure))")
        #expect(Self.inode(Fixture.upper(mounts)) == before, "not adopted")
        #expect(try fixture.inside("t", "cat keep/through; readlink linkdir") == "via/keep\n")
        #expect(Self.waitForStagings(fixture.daemon, 0, seconds: 5), "the refused staging is removed")
    }

    /// Something written into the snapshot before its Apply: the staged tree cannot take the
    /// upper directory's place, and the ordinary apply merges the layer with it.
    @Test func stagingForANonEmptyUpperDirectory_isRefused() async throws {
        let fixture = try Fixture(settings: "")
        defer { _ = fixture.daemon.stop() }
        let bytes = try fixture.layer("busy", ["add(t, 'fromlayer', data=b'l' * 3000)"])
        try await fixture.commit(bytes, ref: "busy")
        #expect(Self.waitForStagings(fixture.daemon, 1))
        var before: UInt64 = 0
        let (mounts, failure) = try await fixture.apply(bytes, to: "t", committed: true) {
            before = Self.inode(Fixture.upper($0))
            try "mine\n".write(toFile: Fixture.upper($0) + "/mine", atomically: false, encoding: .utf8)
        }
        #expect(failure == nil, "\(String(describing: failure))")
        #expect(Self.inode(Fixture.upper(mounts)) == before, "not adopted")
        #expect(try fixture.inside("t", "cat mine; wc -c < fromlayer") == "mine\n3000\n")
        #expect(Self.waitForStagings(fixture.daemon, 0, seconds: 5))
    }

    /// A hostile layer fails to stage; its Apply reports the error as it always did.
    @Test func failedStaging_leavesTheErrorToApply() async throws {
        let fixture = try Fixture(settings: "")
        defer { _ = fixture.daemon.stop() }
        let bytes = try fixture.layer("bad", ["add(t, 'made/first', data=b'1' * 2000)", "add(t, '../../escape', data=b'x')"])
        let (mounts, failure) = try await fixture.apply(bytes, to: "t")
        #expect(failure?.0 == .invalidArgument, "\(String(describing: failure))")
        #expect(try fixture.inUpper(mounts, "ls -A") == "")
        #expect(Self.waitForStagings(fixture.daemon, 0, seconds: 5), "a failed staging leaves nothing")
        #expect(!FileManager.default.fileExists(atPath: fixture.daemon.directory + "/escape"))
    }

    @Test func deletedBlob_dropsItsStaging() async throws {
        let fixture = try Fixture(settings: "")
        defer { _ = fixture.daemon.stop() }
        let digest = try await fixture.commit(try fixture.layer("gone", Self.richLayer), ref: "gone")
        #expect(Self.waitForStagings(fixture.daemon, 1))
        #expect(try fixture.daemon.ctr(["content", "rm", digest], namespace: "upper").status == 0)
        #expect(Self.waitForStagings(fixture.daemon, 0, seconds: 10))
    }

    @Test func unadoptedStaging_isRemovedAfterItsTTL() async throws {
        let fixture = try Fixture(settings: "[unpack]\nahead_ttl_seconds = 1")
        defer { _ = fixture.daemon.stop() }
        try await fixture.commit(try fixture.layer("old", Self.richLayer), ref: "old")
        #expect(Self.waitForStagings(fixture.daemon, 1))
        #expect(Self.waitForStagings(fixture.daemon, 0, seconds: 10))
    }

    /// With room for one layer, a second blob is not staged, and applies the ordinary way.
    @Test func layerBound_keepsFurtherBlobsUnstaged() async throws {
        let fixture = try Fixture(settings: "[unpack]\nahead_layers = 1")
        defer { _ = fixture.daemon.stop() }
        try await fixture.commit(try fixture.layer("first", Self.richLayer), ref: "first")
        #expect(Self.waitForStagings(fixture.daemon, 1))
        let second = try fixture.layer("second", ["add(t, 'second', data=b'2' * 3000)"])
        try await fixture.commit(second, ref: "second")
        usleep(500_000)
        #expect(Self.stagings(fixture.daemon).count == 1)
        var before: UInt64 = 0
        let (mounts, failure) = try await fixture.apply(second, to: "t", committed: true) { before = Self.inode(Fixture.upper($0)) }
        #expect(failure == nil)
        #expect(Self.inode(Fixture.upper(mounts)) == before, "not staged, not adopted")
        #expect(Self.stagings(fixture.daemon).count == 1, "the first one is still held")
    }

    @Test func byteBound_stopsAStagingThatExpandsPastIt_andApplyStillUnpacks() async throws {
        let fixture = try Fixture(settings: "[unpack]\nahead_bytes = 1048576")
        defer { _ = fixture.daemon.stop() }
        // 8 MiB of zeros compress to a few KiB: admitted by the blob's size, stopped by what it expands to.
        let bomb = try fixture.layer("bomb", ["add(t, 'zeros', data=bytes(8 << 20))"], gzip: true)
        #expect(bomb.count < 64 << 10)
        try await fixture.commit(bomb, ref: "bomb")
        var largest: Int64 = 0
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, !fixture.daemon.log.contains("expands to more than 1048576 bytes") {
            largest = max(largest, Self.stagedBytes(fixture.daemon))
            usleep(2_000)
        }
        #expect(fixture.daemon.log.contains("expands to more than 1048576 bytes"))
        #expect(largest <= 6 << 20, "the staging stopped within the bound and the reader's few buffers ahead")
        #expect(Self.waitForStagings(fixture.daemon, 0))
        let gzip = "application/vnd.oci.image.layer.v1.tar+gzip"
        let (mounts, failure) = try await fixture.apply(bomb, to: "t", committed: true, mediaType: gzip)
        #expect(failure == nil, "\(String(describing: failure))")
        #expect(try fixture.inUpper(mounts, "stat -c %s zeros") == "\(8 << 20)\n")
    }

    /// Bytes of the files in the differ's staging folders now.
    static func stagedBytes(_ daemon: Daemon) -> Int64 {
        let root = daemon.directory + "/root"
        let plugins = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        guard let differ = plugins.first(where: { $0.contains("differ") }) else { return 0 }
        let folder = root + "/" + differ + "/staging"
        var total: Int64 = 0
        for path in (try? FileManager.default.subpathsOfDirectory(atPath: folder)) ?? [] {
            var status = stat()
            if lstat(folder + "/" + path, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG { total += Int64(status.st_size) }
        }
        return total
    }

    @Test func restart_sweepsLeftoverStagings() async throws {
        let directory = NSTemporaryDirectory() + "berthd-ahead-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let fixture = try Fixture(settings: "", directory: directory)
            try await fixture.commit(try fixture.layer("left", Self.richLayer), ref: "left")
            #expect(Self.waitForStagings(fixture.daemon, 1))
            #expect(fixture.daemon.stop() == 0)
            #expect(Self.stagings(fixture.daemon).count == 1, "a stop leaves it")
        }
        let daemon = try Daemon(directory: directory)
        defer { _ = daemon.stop() }
        try daemon.waitReady()
        #expect(Self.stagings(daemon).isEmpty)
    }
}
