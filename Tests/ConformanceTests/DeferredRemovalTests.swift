import BerthPluginSDK
import Foundation
import Testing

/// `DeferredRemoval`, which the content store and the snapshotter delete through: the object
/// leaves its path at once, its files go in the background, and a new instance finishes what
/// an earlier one left in the trash.
@Suite struct DeferredRemovalTests {
    let root = NSTemporaryDirectory() + "removal-\(UUID().uuidString.prefix(8))"

    init() throws {
        try FileManager.default.createDirectory(atPath: root + "/data", withIntermediateDirectories: true)
    }

    func entries(_ folder: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
    }

    @Test func remove_fileAndTree_goneAtOnceThenDeleted() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let removal = DeferredRemoval(trash: root + "/trash")
        try removal.open()
        try Data(repeating: 7, count: 1 << 20).write(to: URL(fileURLWithPath: root + "/data/blob"))
        try FileManager.default.createDirectory(atPath: root + "/data/layer/fs/a/b", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/data/layer/fs/a/b/file"))

        #expect(try removal.remove(root + "/data/blob"))
        #expect(try removal.remove(root + "/data/layer"))
        #expect(entries(root + "/data").isEmpty, "both left their paths before remove returned")
        removal.waitUntilEmpty()
        #expect(entries(root + "/trash").isEmpty)
    }

    @Test func remove_missingPath_answersFalse() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let removal = DeferredRemoval(trash: root + "/trash")
        try removal.open()
        #expect(try removal.remove(root + "/data/none") == false)
    }

    @Test func open_leftoversOfAnEarlierInstance_deleted() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        // What a stop between the rename and the deletion leaves.
        try FileManager.default.createDirectory(atPath: root + "/trash/123-1/fs", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/trash/123-2"))
        let removal = DeferredRemoval(trash: root + "/trash")
        try removal.open()
        removal.waitUntilEmpty()
        #expect(entries(root + "/trash").isEmpty)
    }

    @Test func remove_sameNameTwice_bothDeleted() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let removal = DeferredRemoval(trash: root + "/trash")
        try removal.open()
        for _ in 0..<2 {
            try FileManager.default.createDirectory(atPath: root + "/data/7/fs", withIntermediateDirectories: true)
            #expect(try removal.remove(root + "/data/7"))
        }
        removal.waitUntilEmpty()
        #expect(entries(root + "/trash").isEmpty)
        #expect(entries(root + "/data").isEmpty)
    }
}
