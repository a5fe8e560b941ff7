import Foundation
import Kernel
import Storage

/// Mounted layers behave as one flattened filesystem.
extension SnapshotterConformance {
    static let layerCases: [Case] = [
        Case(name: "prepare_emptySnapshot_rootIsMode0755") { h in
            try h.withMounted(try await h.prepare("empty")) { root in
                try expectEqual(mode(root), 0o755, "mode of a new empty snapshot's root")
            }
        },
        Case(name: "commit_parentFiles_visibleInChild") { h in
            try await h.layer("base") { try "one".write(toFile: $0 + "/a.txt", atomically: false, encoding: .utf8) }
            try h.withMounted(try await h.prepare("child", "base")) { root in
                try expectEqual(try String(contentsOfFile: root + "/a.txt", encoding: .utf8), "one", "parent file in child")
            }
        },
        Case(name: "layers_fileDeletedInChild_isHiddenAfterCommit") { h in
            try await h.layer("base") { try "x".write(toFile: $0 + "/gone", atomically: false, encoding: .utf8) }
            try await h.layer("top", on: "base") { try FileManager.default.removeItem(atPath: $0 + "/gone") }
            try h.withMounted(try await h.prepare("check", "top")) { root in
                try expect(!FileManager.default.fileExists(atPath: root + "/gone"), "a file deleted in a layer stays deleted above it")
            }
        },
        Case(name: "layers_directoryDeletedThenRecreated_showsOnlyNewContent") { h in
            try await h.layer("base") { root in
                try FileManager.default.createDirectory(atPath: root + "/d", withIntermediateDirectories: false)
                try "old".write(toFile: root + "/d/old", atomically: false, encoding: .utf8)
            }
            try await h.layer("top", on: "base") { root in
                try FileManager.default.removeItem(atPath: root + "/d")
                try FileManager.default.createDirectory(atPath: root + "/d", withIntermediateDirectories: false)
                try "new".write(toFile: root + "/d/new", atomically: false, encoding: .utf8)
            }
            try h.withMounted(try await h.prepare("check", "top")) { root in
                try expectEqual(try FileManager.default.contentsOfDirectory(atPath: root + "/d").sorted(), ["new"],
                                "entries of a directory deleted and recreated in a layer")
            }
        },
        Case(name: "layers_renameChmodChownAndDirModes_preservedAcrossCommits") { h in
            try await h.layer("base") { root in
                try "r".write(toFile: root + "/before", atomically: false, encoding: .utf8)
                try FileManager.default.createDirectory(atPath: root + "/dir", withIntermediateDirectories: false)
            }
            try await h.layer("top", on: "base") { root in
                try expect(rename(root + "/before", root + "/after") == 0, "rename in a layer")
                try expect(chmod(root + "/after", 0o640) == 0 && chown(root + "/after", 1234, 5678) == 0, "chmod/chown in a layer")
                try expect(chmod(root + "/dir", 0o1750) == 0, "chmod of a directory in a layer")
            }
            try h.withMounted(try await h.prepare("check", "top")) { root in
                try expect(!FileManager.default.fileExists(atPath: root + "/before"), "a renamed file's old name is gone")
                try expectEqual(try String(contentsOfFile: root + "/after", encoding: .utf8), "r", "a renamed file's content")
                var info = stat()
                try expect(stat(root + "/after", &info) == 0, "stat of renamed file")
                try expectEqual([Int(info.st_mode & 0o7777), Int(info.st_uid), Int(info.st_gid)], [0o640, 1234, 5678], "mode, uid, gid")
                try expectEqual(mode(root + "/dir"), 0o1750, "directory mode with sticky bit")
            }
        },
        Case(name: "view_ofCommitted_isReadOnly") { h in
            try await h.layer("base") { try "x".write(toFile: $0 + "/f", atomically: false, encoding: .utf8) }
            let mounts = try await h.snapshots.view(namespace: ns, snapshotter: h.snapshotter, key: "v", parent: "base", labels: [:])
            try h.withMounted(mounts) { root in
                try expectEqual(try String(contentsOfFile: root + "/f", encoding: .utf8), "x", "parent file in view")
                let fd = open(root + "/new", O_CREAT | O_WRONLY, 0o644)
                let error = errno
                if fd >= 0 { close(fd) }
                try expect(fd < 0 && error == EROFS, "writing in a view fails with EROFS (got fd \(fd), errno \(error))")
            }
        },
        Case(name: "layers_128Stacked_mountAndShowEveryLayer") { h in
            var parent = ""
            for index in 0..<128 {
                let name = "layer-\(index)"
                try await h.layer(name, on: parent) { try "\(index)".write(toFile: $0 + "/f\(index)", atomically: false, encoding: .utf8) }
                parent = name
            }
            try h.withMounted(try await h.prepare("top", parent)) { root in
                try expectEqual(try FileManager.default.contentsOfDirectory(atPath: root).count, 128, "files from 128 layers")
                try expectEqual(try String(contentsOfFile: root + "/f0", encoding: .utf8), "0", "the bottom layer's file")
            }
        },
    ]
}

func mode(_ path: String) throws -> Int {
    var info = stat()
    try expect(stat(path, &info) == 0, "stat \(path): errno \(errno)")
    return Int(info.st_mode & 0o7777)
}
