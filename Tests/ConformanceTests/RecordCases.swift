import BerthProto
import Foundation
import Kernel
import Storage

/// One keyspace, parents, and the records a client reads back.
extension SnapshotterConformance {
    static let keyspaceCases: [Case] = [
        Case(name: "keyspace_keyUsedByAnyKind_cannotBeReused") { h in
            _ = try await h.prepare("a")
            try await expectError(.alreadyExists, "prepare onto an active key") { _ = try await h.prepare("a") }
            try await h.commit("c", "a")
            try await expectError(.alreadyExists, "prepare onto a committed name") { _ = try await h.prepare("c") }
            _ = try await h.snapshots.view(namespace: ns, snapshotter: h.snapshotter, key: "v", parent: "c", labels: [:])
            try await expectError(.alreadyExists, "prepare onto a view key") { _ = try await h.prepare("v") }
            _ = try await h.prepare("b")
            try await expectError(.alreadyExists, "commit onto a used name") { try await h.commit("v", "b") }
            _ = try await h.prepare("a")  // the committed key "a" was retired: it is free again
        },
        Case(name: "keyspace_concurrentPreparesOfOneKey_exactlyOneWins") { h in
            let outcomes = await withTaskGroup(of: Bool.self) { group in
                for _ in 0..<16 { group.addTask { (try? await h.prepare("contended")) != nil } }
                return await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            try expectEqual(outcomes.filter { $0 }.count, 1, "winners among 16 concurrent prepares of one key")
        },
        Case(name: "parents_activeOrViewOrMissing_areRefused") { h in
            _ = try await h.prepare("active")
            try await expectError(.invalidArgument, "prepare on an active parent") { _ = try await h.prepare("x", "active") }
            try await expectError(.invalidArgument, "view on an active parent") {
                _ = try await h.snapshots.view(namespace: ns, snapshotter: h.snapshotter, key: "y", parent: "active", labels: [:])
            }
            try await expectError(.notFound, "prepare on a missing parent") { _ = try await h.prepare("z", "missing") }
            try await expectError(.notFound, "stat of a refused key") {
                _ = try await h.snapshots.stat(namespace: ns, snapshotter: h.snapshotter, key: "x")
            }
        },
        Case(name: "remove_bothKinds_committedWithChildrenRefused") { h in
            try await h.layer("base") { _ in }
            _ = try await h.prepare("child", "base")
            try await expectError(.failedPrecondition, "remove of a committed snapshot with a child") {
                try await h.snapshots.remove(namespace: ns, snapshotter: h.snapshotter, key: "base")
            }
            try await h.snapshots.remove(namespace: ns, snapshotter: h.snapshotter, key: "child")
            try await h.snapshots.remove(namespace: ns, snapshotter: h.snapshotter, key: "base")
            try await expectError(.notFound, "remove of a removed key") {
                try await h.snapshots.remove(namespace: ns, snapshotter: h.snapshotter, key: "base")
            }
            try expectEqual(try await h.snapshots.list(namespace: ns, snapshotter: h.snapshotter, filters: []).count, 0, "snapshots left")
        },
    ]

    static let recordCases: [Case] = [
        Case(name: "stat_returnsKindNameParentLabelsAndTimes") { h in
            try await h.layer("base") { _ in }
            _ = try await h.snapshots.prepare(namespace: ns, snapshotter: h.snapshotter, key: "k", parent: "base", labels: ["a": "1"])
            let info = try await h.snapshots.stat(namespace: ns, snapshotter: h.snapshotter, key: "k")
            try expectEqual(info.kind, .active, "kind")
            try expectEqual(info.key, "k", "name")
            try expectEqual(info.parent, "base", "parent")
            try expectEqual(info.labels, ["a": "1"], "labels")
            try expect(abs(info.created.timeIntervalSinceNow) < 60 && info.updated >= info.created, "created and updated times")
            try expectEqual(try await h.snapshots.stat(namespace: ns, snapshotter: h.snapshotter, key: "base").kind, .committed, "committed kind")
        },
        Case(name: "walk_filters_kindParentLabelsName_areOred") { h in
            try await h.layer("base") { _ in }
            _ = try await h.snapshots.prepare(namespace: ns, snapshotter: h.snapshotter, key: "a", parent: "base", labels: ["t": "x"])
            _ = try await h.snapshots.view(namespace: ns, snapshotter: h.snapshotter, key: "v", parent: "base", labels: [:])
            func names(_ filters: [String]) async throws -> [String] {
                try await h.snapshots.list(namespace: ns, snapshotter: h.snapshotter, filters: filters).map(\.key).sorted()
            }
            try expectEqual(try await names([]), ["a", "base", "v"], "all")
            try expectEqual(try await names(["kind==active"]), ["a"], "kind==active")
            try expectEqual(try await names(["kind==view"]), ["v"], "kind==view")
            try expectEqual(try await names(["parent==base"]), ["a", "v"], "parent==base")
            try expectEqual(try await names(["labels.t==x"]), ["a"], "labels.t==x")
            try expectEqual(try await names(["name==base", "kind==view"]), ["base", "v"], "two filters OR-ed")
            try expectEqual(try await names(["kind==active,labels.t==y"]), [], "selectors AND-ed")
        },
        Case(name: "update_changesLabelsOnly_neverParent") { h in
            try await h.layer("base") { _ in }
            _ = try await h.snapshots.prepare(namespace: ns, snapshotter: h.snapshotter, key: "k", parent: "base", labels: ["a": "1", "b": "2"])
            let one = try await h.snapshots.update(
                namespace: ns, snapshotter: h.snapshotter, key: "k", labels: ["a": "9", "c": "3"], paths: ["labels.a", "labels.c"])
            try expectEqual(one.labels, ["a": "9", "b": "2", "c": "3"], "labels after a field-path update")
            let all = try await h.snapshots.update(namespace: ns, snapshotter: h.snapshotter, key: "k", labels: ["z": "0"], paths: [])
            try expectEqual(all.labels, ["z": "0"], "labels after a full update")
            try await expectError(.invalidArgument, "update of parent") {
                _ = try await h.snapshots.update(namespace: ns, snapshotter: h.snapshotter, key: "k", labels: [:], paths: ["parent"])
            }
            try expectEqual(try await h.snapshots.stat(namespace: ns, snapshotter: h.snapshotter, key: "k").parent, "base", "parent after updates")
        },
        Case(name: "usage_reportsSizeAndInodes") { h in
            let mounts = try await h.prepare("u")
            try h.withMounted(mounts) { root in
                try Data(count: 64 * 1024).write(to: URL(fileURLWithPath: root + "/blob"))
                try FileManager.default.createDirectory(atPath: root + "/d", withIntermediateDirectories: false)
            }
            let usage = try await h.snapshots.usage(namespace: ns, snapshotter: h.snapshotter, key: "u")
            try expect(usage.size >= 64 * 1024, "usage size \(usage.size) covers a 64 KiB file")
            try expectEqual(usage.inodes, 3, "inodes (root, file, directory)")
        },
        Case(name: "namespaces_eachSeesOnlyItsOwnSnapshots") { h in
            _ = try await h.prepare("same", namespace: "ns-a")
            _ = try await h.prepare("same", namespace: "ns-b")
            try expectEqual(try await h.snapshots.list(namespace: "ns-a", snapshotter: h.snapshotter, filters: []).map(\.key), ["same"], "ns-a")
            try await h.snapshots.remove(namespace: "ns-a", snapshotter: h.snapshotter, key: "same")
            try expectEqual(
                try await h.snapshots.list(namespace: "ns-b", snapshotter: h.snapshotter, filters: []).map(\.key), ["same"], "ns-b after removal in ns-a")
        },
        Case(name: "cleanup_removesLayersWithoutRecords_keepsRecorded") { h in
            _ = try await h.prepare("kept")
            // A layer no record names, as a crash after the driver's Create can leave one.
            _ = try await h.driver.call(BerthContracts.SnapshotDriver.create, .with { $0.id = 999999 })
            let report = try await h.snapshots.cleanup(snapshotter: h.snapshotter)
            try expectEqual(report.removedLayers, [999999], "layers removed by cleanup")
            try expectEqual(report.droppedKeys, [], "records dropped by cleanup")
            try await expectError(.notFound, "mounts of the orphan layer after cleanup") {
                _ = try await h.driver.call(BerthContracts.SnapshotDriver.mounts, .with { $0.id = 999999 })
            }
            _ = try await h.snapshots.mounts(namespace: ns, snapshotter: h.snapshotter, key: "kept")
        },
        Case(name: "cleanup_dropsUnfinishedRecordsWhoseLayerIsMissing") { h in
            // A crash between the metadata insert and the driver's Create leaves such a record.
            _ = try await h.prepare("half")
            let id = try await h.snapshots.stat(namespace: ns, snapshotter: h.snapshotter, key: "half").id
            _ = try await h.driver.call(BerthContracts.SnapshotDriver.remove, .with { $0.id = UInt64(id) })
            let report = try await h.snapshots.cleanup(snapshotter: h.snapshotter)
            try expectEqual(report.droppedKeys, ["\(ns)/half"], "records dropped by cleanup")
            try await expectError(.notFound, "stat after the record was dropped") {
                _ = try await h.snapshots.stat(namespace: ns, snapshotter: h.snapshotter, key: "half")
            }
        },
    ]
}
