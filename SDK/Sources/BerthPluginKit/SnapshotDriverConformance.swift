import BerthProto
import Foundation
import SwiftProtobuf

/// The snapshot driver contract (`BerthContracts.SnapshotDriver`,
/// Protos/berth/snapshots/v1/driver.proto) as runnable cases: one named case per rule,
/// exercising a snapshotter plugin through that contract alone, as berthd calls it. Any
/// snapshotter, ours or a third party's, runs them from its own package with only the SDK:
///
///     for rule in SnapshotDriverConformance.cases {
///         try await SnapshotDriverConformance.run(rule, plugin: "/path/libX.so", id: "x")
///     }
///
/// Layers are numbered by the caller; a layer's parents are given nearest first on every
/// call. The cases mount what the driver returns (mount(8)), so they need root and Linux.
public enum SnapshotDriverConformance {
    /// One rule and its check.
    public struct Case: Sendable, CustomStringConvertible {
        public let name: String
        public let run: @Sendable (Driver) async throws -> Void
        public var description: String { name }
    }

    /// Runs `rule` against a fresh instance of snapshotter `id` from `plugin`, in a temporary
    /// folder that is removed afterwards.
    public static func run(_ rule: Case, plugin: String, id: String, type: String = "io.containerd.snapshotter.v1") async throws {
        try await PluginUnderTest.with(path: plugin, type: type, id: id) { instance, directory in
            try await rule.run(Driver(plugin: instance, directory: directory))
        }
    }

    /// The driver under test, with the calls the cases make.
    public struct Driver: Sendable {
        public let plugin: PluginUnderTest
        let directory: String

        public func create(_ id: UInt64, parents: [UInt64] = [], readonly: Bool = false) async throws {
            _ = try await plugin.call(
                BerthContracts.SnapshotDriver.create,
                .with {
                    $0.id = id
                    $0.parents = parents
                    $0.readonly = readonly
                })
        }

        public func mounts(_ id: UInt64, parents: [UInt64] = [], readonly: Bool = false) async throws -> [Containerd_Types_Mount] {
            try await plugin.call(
                BerthContracts.SnapshotDriver.mounts,
                .with {
                    $0.id = id
                    $0.parents = parents
                    $0.readonly = readonly
                }
            ).mounts
        }

        public func commit(_ id: UInt64) async throws {
            _ = try await plugin.call(BerthContracts.SnapshotDriver.commit, .with { $0.id = id })
        }

        public func remove(_ id: UInt64) async throws {
            _ = try await plugin.call(BerthContracts.SnapshotDriver.remove, .with { $0.id = id })
        }

        public func usage(_ id: UInt64) async throws -> Containerd_Services_Snapshots_V1_UsageResponse {
            try await plugin.call(BerthContracts.SnapshotDriver.usage, .with { $0.id = id })
        }

        public func cleanup(keep: [UInt64]) async throws -> Berth_Snapshots_V1_CleanupLayersResponse {
            try await plugin.call(BerthContracts.SnapshotDriver.cleanup, .with { $0.keep = keep })
        }

        /// Mounts layer `id` (writable unless `readonly`), runs `body` in it, unmounts.
        public func inLayer<T>(
            _ id: UInt64, parents: [UInt64] = [], readonly: Bool = false,
            _ body: (String) throws -> T
        ) async throws -> T {
            let mounts = try await mounts(id, parents: parents, readonly: readonly)
            return try MountTool.withMounted(mounts, under: directory, body)
        }

        /// Creates layer `id` on `parents`, lets `write` change it, and commits it.
        public func layer(_ id: UInt64, on parents: [UInt64] = [], _ write: (String) throws -> Void) async throws {
            try await create(id, parents: parents)
            try await inLayer(id, parents: parents, write)
            try await commit(id)
        }
    }

    public static let cases: [Case] = layerCases + lifecycleCases
}

func mode(_ path: String) throws -> Int {
    var info = stat()
    try expect(stat(path, &info) == 0, "stat \(path): errno \(errno)")
    return Int(info.st_mode & 0o7777)
}

func write(_ text: String, to path: String) throws {
    try text.write(toFile: path, atomically: false, encoding: .utf8)
}

func read(_ path: String) throws -> String {
    try String(contentsOfFile: path, encoding: .utf8)
}

/// Mounted layers behave as one flattened filesystem.
extension SnapshotDriverConformance {
    static let layerCases: [Case] = [
        Case(name: "create_withoutParents_rootIsEmptyAndMode0755") { d in
            try await d.create(1)
            try await d.inLayer(1) { root in
                try expectEqual(try FileManager.default.contentsOfDirectory(atPath: root), [], "entries of a new layer")
                try expectEqual(try mode(root), 0o755, "mode of a new layer's root")
            }
        },
        Case(name: "commit_parentFiles_visibleInChild") { d in
            try await d.layer(1) { try write("one", to: $0 + "/a.txt") }
            try await d.create(2, parents: [1])
            try await d.inLayer(2, parents: [1]) { try expectEqual(try read($0 + "/a.txt"), "one", "parent file in child") }
        },
        Case(name: "layers_fileDeletedInChild_isHiddenAbove") { d in
            try await d.layer(1) { try write("x", to: $0 + "/gone") }
            try await d.layer(2, on: [1]) { try FileManager.default.removeItem(atPath: $0 + "/gone") }
            try await d.create(3, parents: [2, 1])
            try await d.inLayer(3, parents: [2, 1]) { root in
                try expect(!FileManager.default.fileExists(atPath: root + "/gone"), "a file deleted in a layer stays deleted above it")
            }
        },
        Case(name: "layers_directoryDeletedThenRecreated_showsOnlyNewContent") { d in
            try await d.layer(1) { root in
                try FileManager.default.createDirectory(atPath: root + "/d", withIntermediateDirectories: false)
                try write("old", to: root + "/d/old")
            }
            try await d.layer(2, on: [1]) { root in
                try FileManager.default.removeItem(atPath: root + "/d")
                try FileManager.default.createDirectory(atPath: root + "/d", withIntermediateDirectories: false)
                try write("new", to: root + "/d/new")
            }
            try await d.create(3, parents: [2, 1])
            try await d.inLayer(3, parents: [2, 1]) { root in
                try expectEqual(
                    try FileManager.default.contentsOfDirectory(atPath: root + "/d").sorted(), ["new"],
                    "entries of a directory deleted and recreated in a layer")
            }
        },
        Case(name: "layers_renameChmodChownAndDirModes_preservedAcrossCommits") { d in
            try await d.layer(1) { root in
                try write("r", to: root + "/before")
                try FileManager.default.createDirectory(atPath: root + "/dir", withIntermediateDirectories: false)
            }
            try await d.layer(2, on: [1]) { root in
                try expect(rename(root + "/before", root + "/after") == 0, "rename in a layer")
                try expect(chmod(root + "/after", 0o640) == 0 && chown(root + "/after", 1234, 5678) == 0, "chmod/chown in a layer")
                try expect(chmod(root + "/dir", 0o1750) == 0, "chmod of a directory in a layer")
            }
            try await d.create(3, parents: [2, 1])
            try await d.inLayer(3, parents: [2, 1]) { root in
                try expect(!FileManager.default.fileExists(atPath: root + "/before"), "a renamed file's old name is gone")
                try expectEqual(try read(root + "/after"), "r", "a renamed file's content")
                var info = stat()
                try expect(stat(root + "/after", &info) == 0, "stat of the renamed file")
                try expectEqual([Int(info.st_mode & 0o7777), Int(info.st_uid), Int(info.st_gid)], [0o640, 1234, 5678], "mode, uid, gid")
                try expectEqual(try mode(root + "/dir"), 0o1750, "directory mode with the sticky bit")
            }
        },
        Case(name: "readonlyLayer_showsParentAndRefusesWrites") { d in
            try await d.layer(1) { try write("x", to: $0 + "/f") }
            try await d.create(2, parents: [1], readonly: true)
            try await d.inLayer(2, parents: [1], readonly: true) { root in
                try expectEqual(try read(root + "/f"), "x", "parent file in a read-only layer")
                let fd = open(root + "/new", O_CREAT | O_WRONLY, 0o644)
                let error = errno
                if fd >= 0 { close(fd) }
                try expect(fd < 0 && error == EROFS, "writing in a read-only layer fails with EROFS (got fd \(fd), errno \(error))")
            }
        },
        Case(name: "layers_128Stacked_mountAndShowEveryLayer") { d in
            var parents = [UInt64]()
            for id in UInt64(1)...128 {
                try await d.layer(id, on: parents) { try write("\(id)", to: $0 + "/f\(id)") }
                parents.insert(id, at: 0)
            }
            try await d.create(200, parents: parents)
            try await d.inLayer(200, parents: parents) { root in
                try expectEqual(try FileManager.default.contentsOfDirectory(atPath: root).count, 128, "files from 128 layers")
                try expectEqual(try read(root + "/f1"), "1", "the bottom layer's file")
            }
        },
    ]

    /// Repeats, absences, removal, usage and cleanup.
    static let lifecycleCases: [Case] = [
        Case(name: "create_existingId_isAlreadyExists") { d in
            try await d.create(1)
            try await expectCode(6, "creating layer 1 twice") { try await d.create(1) }
        },
        Case(name: "mountsAndCommitAndUsage_ofMissingLayer_areNotFound") { d in
            try await expectCode(5, "mounts of a missing layer") { _ = try await d.mounts(9) }
            try await expectCode(5, "commit of a missing layer") { try await d.commit(9) }
            try await expectCode(5, "usage of a missing layer") { _ = try await d.usage(9) }
        },
        Case(name: "remove_layerGoesAndRemovingAgainSucceeds") { d in
            try await d.create(1)
            try await d.remove(1)
            try await expectCode(5, "mounts of a removed layer") { _ = try await d.mounts(1) }
            try await d.remove(1)
        },
        Case(name: "usage_countsTheFilesWrittenInTheLayer") { d in
            try await d.layer(1) { root in
                for index in 0..<2 { try write(String(repeating: "c", count: 8192), to: root + "/file-\(index)") }
            }
            try await d.create(2)
            let full = try await d.usage(1)
            let empty = try await d.usage(2)
            // Two 8 KiB files and the root: at least 16 KiB and 3 inodes. (Whether a layer
            // counts what it shares with its parents is the driver's: overlay layers do not,
            // copied trees do.)
            try expect(full.size >= 16384, "usage size of a layer with two 8 KiB files: \(full.size)")
            try expect(full.inodes >= 3, "usage inodes of a layer with two files: \(full.inodes)")
            try expect(
                empty.size < full.size && empty.inodes < full.inodes,
                "an empty layer uses less than one with files: \(empty) vs \(full)")
        },
        Case(name: "cleanup_removesLayersNotKept_reportsKeptIdsWithoutLayer") { d in
            try await d.create(1)
            try await d.create(2)
            let report = try await d.cleanup(keep: [1, 77])
            try expectEqual(report.removed, [2], "layers removed by cleanup")
            try expectEqual(report.missing, [77], "kept ids without a layer")
            try await expectCode(5, "mounts of a cleaned-up layer") { _ = try await d.mounts(2) }
            _ = try await d.mounts(1)
        },
        Case(name: "cleanup_afterRestart_seesLayersOfTheEarlierInstance") { d in
            try await d.create(5)
            let report = try await d.cleanup(keep: [5])
            try expectEqual(report.removed, [], "layers removed when all are kept")
            try expectEqual(report.missing, [], "kept ids without a layer")
        },
    ]
}
