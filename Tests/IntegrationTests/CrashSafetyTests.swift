import BerthAPI
import BerthProto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwiftProtobuf
import Testing

/// `kill -9` of berthd in the middle of snapshot and content work, then a restart on the same
/// root: the records, the layers on disk and the blobs must agree, and every blob must verify.
@Suite(.serialized) struct CrashSafetyTests {
    typealias Snapshots = Containerd_Services_Snapshots_V1_Snapshots.Client<HTTP2ClientTransport.Posix>
    typealias Content = Containerd_Services_Content_V1_Content.Client<HTTP2ClientTransport.Posix>
    static let metadata: Metadata = ["containerd-namespace": "crash"]

    @Test(arguments: ["overlayfs", "native"])
    func killDuringStorageWork_restart_recordsLayersAndBlobsAgree(snapshotter: String) async throws {
        let directory = NSTemporaryDirectory() + "crash-\(UUID().uuidString.prefix(8))"
        var kills = 0
        var done = (snapshots: 0, blobs: 0)
        var repairs = [String]()
        for round in 0..<6 {
            let daemon = try Daemon(directory: directory)
            try daemon.waitReady()
            repairs += daemon.log.split(separator: "\n").filter { $0.contains("level=notice") }.map(String.init)
            try await Self.verify(daemon, snapshotter: snapshotter, round: round)
            // Work from two clients at once, then kill the daemon at a point that varies per round.
            let snapshotRounds = Counter(), blobs = Counter()
            await withTaskGroup { group in
                group.addTask { await Self.snapshotWork(daemon, snapshotter: snapshotter, round: round, finished: snapshotRounds) }
                group.addTask { await Self.contentWork(daemon, round: round, finished: blobs) }
                group.addTask {
                    // Once both loops are under way (however loaded the machine), kill at a
                    // point that varies per round.
                    for _ in 0..<400 where snapshotRounds.value < 2 || blobs.value < 2 {
                        try? await Task.sleep(for: .milliseconds(25))
                    }
                    try? await Task.sleep(for: .milliseconds(37 * round))
                    kill(daemon.process.processIdentifier, SIGKILL)
                }
            }
            done = (done.snapshots + snapshotRounds.value, done.blobs + blobs.value)
            #expect(daemon.waitExit() == SIGKILL, "round \(round): berthd was killed, not stopped")
            kills += 1
        }
        let last = try Daemon(directory: directory)
        try last.waitReady()
        defer {
            _ = last.stop()
            try? FileManager.default.removeItem(atPath: directory)
        }
        try await Self.verify(last, snapshotter: snapshotter, round: kills)
        repairs += last.log.split(separator: "\n").filter { $0.contains("level=notice") }.map(String.init)
        // The kills must land mid-work, or the test shows nothing.
        #expect(done.snapshots >= 12 && done.blobs >= 12, "work finished before the kills: \(done)")
        print("crash-safety \(snapshotter): \(done.snapshots) snapshot rounds, \(done.blobs) blobs, repairs: \(repairs)")
        #expect(last.log.contains("level=error") == false, "no errors after the last restart:\n\(last.log)")
    }

    /// Loops prepare → write → commit → view → remove until the daemon dies, counting the
    /// iterations finished.
    static func snapshotWork(_ daemon: Daemon, snapshotter: String, round: Int, finished: Counter) async {
        try? await withClient(daemon) { client in
            let snapshots = Snapshots(wrapping: client)
            _ = try? await snapshots.prepare(
                .with {
                    $0.key = "base-active"
                    $0.snapshotter = snapshotter
                }, metadata: metadata)
            _ = try? await snapshots.commit(
                .with {
                    $0.key = "base-active"
                    $0.name = "base"
                    $0.snapshotter = snapshotter
                    $0.labels = ["containerd.io/gc.root": "test"]
                }, metadata: metadata)
            for i in 0..<10_000 {
                let key = "r\(round)-\(i)"
                let mounts = try await snapshots.prepare(
                    .with {
                        $0.key = key
                        $0.parent = "base"
                        $0.snapshotter = snapshotter
                    },
                    metadata: metadata
                ).mounts
                if let mount = mounts.first, mount.type == "bind" {
                    try? Data(repeating: UInt8(i & 0xff), count: 4096).write(to: URL(fileURLWithPath: mount.source + "/file"))
                }
                _ = try await snapshots.commit(
                    .with {
                        $0.key = key
                        $0.name = key + "-c"
                        $0.snapshotter = snapshotter
                        $0.labels = ["containerd.io/gc.root": "test"]
                    }, metadata: metadata)
                _ = try await snapshots.view(
                    .with {
                        $0.key = key + "-v"
                        $0.parent = key + "-c"
                        $0.snapshotter = snapshotter
                    },
                    metadata: metadata)
                if i % 2 == 1 {
                    let previous = "r\(round)-\(i - 1)"
                    _ = try await snapshots.remove(
                        .with {
                            $0.key = previous + "-v"
                            $0.snapshotter = snapshotter
                        }, metadata: metadata)
                    _ = try await snapshots.remove(
                        .with {
                            $0.key = previous + "-c"
                            $0.snapshotter = snapshotter
                        }, metadata: metadata)
                }
                finished.add()
            }
        }
    }

    /// Loops 1 MiB ingests (every third left uncommitted, every other one deleted) until the
    /// daemon dies, counting the ingests finished.
    static func contentWork(_ daemon: Daemon, round: Int, finished: Counter) async {
        try? await withClient(daemon) { client in
            let content = Content(wrapping: client)
            for i in 0..<10_000 {
                var bytes = [UInt8](repeating: 0, count: 1 << 20)
                for j in stride(from: 0, to: bytes.count, by: 4096) { bytes[j] = UInt8(truncatingIfNeeded: i &+ j &+ round) }
                bytes[0] = UInt8(round)
                bytes[1] = UInt8(i & 0xff)
                bytes[2] = UInt8(i >> 8)
                let data = Data(bytes)
                let commit = i % 3 != 2
                try await content.write(
                    metadata: metadata,
                    requestProducer: { writer in
                        try await writer.write(
                            .with {
                                $0.action = commit ? .commit : .write
                                $0.ref = "w\(round)-\(i)"
                                $0.total = Int64(data.count)
                                $0.data = data
                                if commit { $0.labels = ["containerd.io/gc.root": "test"] }
                            })
                    }, onResponse: { response in for try await _ in response.messages {} })
                if commit, i % 2 == 1 {
                    let listed = try await content.list(.with { _ in }, metadata: metadata) { response in
                        try await response.messages.reduce(into: [String]()) { $0 += $1.info.map(\.digest) }
                    }
                    if let victim = listed.first { _ = try await content.delete(.with { $0.digest = victim }, metadata: metadata) }
                }
                finished.add()
            }
        }
    }

    /// Checks that records, layers and blobs agree, then that the daemon still works.
    static func verify(_ daemon: Daemon, snapshotter: String, round: Int) async throws {
        let root = daemon.directory + "/root"
        try await withClient(daemon) { client in
            let snapshots = Snapshots(wrapping: client)
            let content = Content(wrapping: client)
            let records = try await snapshots.list(.with { $0.snapshotter = snapshotter }, metadata: metadata) { response in
                try await response.messages.reduce(into: [Containerd_Services_Snapshots_V1_Info]()) { $0 += $1.info }
            }
            let layerRoot = root + "/io.containerd.snapshotter.v1.\(snapshotter)/snapshots"
            let layers = (try? FileManager.default.contentsOfDirectory(atPath: layerRoot)) ?? []
            #expect(layers.allSatisfy { UInt64($0) != nil }, "round \(round): only finished layers on disk: \(layers)")
            #expect(layers.count == records.count, "round \(round): \(layers.count) layers for \(records.count) records")
            for record in records {
                // A committed snapshot has no mounts of its own (as in containerd): look through a view.
                let committed = record.kind == .committed
                let key = committed ? "verify-\(round)" : record.name
                let mounts =
                    committed
                    ? try await snapshots.view(
                        .with {
                            $0.key = key
                            $0.parent = record.name
                            $0.snapshotter = snapshotter
                        }, metadata: metadata
                    ).mounts
                    : try await snapshots.mounts(
                        .with {
                            $0.key = key
                            $0.snapshotter = snapshotter
                        }, metadata: metadata
                    ).mounts
                for path in mounts.flatMap(paths) {
                    #expect(FileManager.default.fileExists(atPath: path), "round \(round): \(record.name) mounts missing \(path)")
                }
                if committed {
                    _ = try await snapshots.remove(
                        .with {
                            $0.key = key
                            $0.snapshotter = snapshotter
                        }, metadata: metadata)
                }
            }

            let infos = try await content.list(.with { _ in }, metadata: metadata) { response in
                try await response.messages.reduce(into: [Containerd_Services_Content_V1_Info]()) { $0 += $1.info }
            }
            let blobRoot = root + "/io.containerd.content.v1.content/blobs/sha256"
            let blobs = Set((try? FileManager.default.contentsOfDirectory(atPath: blobRoot)) ?? [])
            #expect(blobs == Set(infos.map { String($0.digest.dropFirst(7)) }), "round \(round): blobs on disk and records differ")
            for blob in blobs {
                let sum = try run("/usr/bin/sha256sum", [blobRoot + "/" + blob]).stdout.prefix(64)
                #expect(sum == blob, "round \(round): blob \(blob) does not verify")
            }

            // Still usable: a new snapshot and a new blob.
            _ = try await snapshots.prepare(
                .with {
                    $0.key = "check-\(round)"
                    $0.snapshotter = snapshotter
                }, metadata: metadata)
            _ = try await snapshots.remove(
                .with {
                    $0.key = "check-\(round)"
                    $0.snapshotter = snapshotter
                }, metadata: metadata)
        }
    }

    /// The absolute paths a mount names: its source and the directories in its options.
    static func paths(_ mount: Containerd_Types_Mount) -> [String] {
        var paths = [mount.source]
        for option in mount.options {
            guard let equals = option.firstIndex(of: "=") else { continue }
            paths += option[option.index(after: equals)...].components(separatedBy: ":")
        }
        return paths.filter { $0.hasPrefix("/") }
    }
}

/// A count shared with a `@Sendable` closure.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
