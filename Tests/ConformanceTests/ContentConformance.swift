import BerthProto
import Crypto
import Foundation
import Kernel
import Storage

/// A kernel running one content store plugin from a shared object, on a private root.
public final class ContentHarness: Sendable {
    public let content: ContentService
    public let directory: String

    init(content: ContentService, directory: String) {
        self.content = content
        self.directory = directory
    }

    /// Loads `plugin` as content store `id`, runs `body`, then stops everything.
    public static func with(
        plugin: String, id: String = "content",
        _ body: @Sendable (ContentHarness) async throws -> Void
    ) async throws {
        try await KernelHarness.run(
            plugin: plugin, name: PluginName(type: .content, id: id), schemas: [.content, .leases],
            label: "contentkit"
        ) { directory, metadata, plugins, events in
            try await body(
                ContentHarness(
                    content: ContentService(metadata: metadata, plugins: plugins, events: events),
                    directory: directory))
        }
    }

    /// Writes `data` under `ref` in one go and commits it.
    func put(_ data: Data, ref: String, namespace: String = ContentConformance.ns, labels: [String: String] = [:]) async throws -> ContentRecord {
        let writer = try await content.openWriter(namespace: namespace, ref: ref, total: 0, expected: "")
        do {
            _ = try await writer.write(offset: 0, data: data, total: 0, expected: "")
            let record = try await writer.commit(size: Int64(data.count), expected: ContentConformance.digest(data), labels: labels)
            await writer.close()
            return record
        } catch {
            await writer.close()
            throw error
        }
    }
}

/// The content store contract as runnable cases, for any content plugin.
public enum ContentConformance {
    public struct Case: Sendable, CustomStringConvertible {
        public let name: String
        public let run: @Sendable (ContentHarness) async throws -> Void
        public var description: String { name }
    }

    static let ns = "conformance"

    static func digest(_ data: Data) -> String {
        "sha256:" + SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    public static let cases: [Case] = [
        Case(name: "ingest_commit_thenInfoReadListAgree") { h in
            let data = Data((0..<100_000).map { UInt8($0 % 251) })
            let record = try await h.put(data, ref: "r", labels: ["a": "1"])
            try expectEqual(record.digest, digest(data), "committed digest")
            try expectEqual(try await h.content.info(namespace: ns, digest: record.digest).size, 100_000, "info size")
            try expectEqual(
                try await h.content.read(namespace: ns, digest: record.digest, offset: 99_990, size: 32_768),
                data.suffix(10), "read at an offset, short at the end")
            try expectEqual(try await h.content.list(namespace: ns, filters: ["labels.a==1"]).map(\.digest), [record.digest], "list with a filter")
            try expectEqual(try await h.content.listStatuses(namespace: ns, filters: []).count, 0, "ingests left after commit")
        },
        Case(name: "ingest_reopened_reportsBytesAndDigestSoFar") { h in
            let writer = try await h.content.openWriter(namespace: ns, ref: "resume", total: 0, expected: "")
            _ = try await writer.write(offset: 0, data: Data("hello ".utf8), total: 0, expected: "")
            await writer.close()
            let again = try await h.content.openWriter(namespace: ns, ref: "resume", total: 0, expected: "")
            try expectEqual(again.opened.offset, 6, "offset of a reopened ingest")
            try expectEqual(again.opened.digest, digest(Data("hello ".utf8)), "digest so far of a reopened ingest")
            _ = try await again.write(offset: 6, data: Data("world".utf8), total: 0, expected: "")
            let record = try await again.commit(size: 11, expected: digest(Data("hello world".utf8)), labels: [:])
            await again.close()
            try expectEqual(record.size, 11, "size after resuming")
        },
        Case(name: "ingest_secondWriterOnBusyRef_isUnavailable") { h in
            let first = try await h.content.openWriter(namespace: ns, ref: "busy", total: 0, expected: "")
            try await expectError(.unavailable, "second writer on a held ref") {
                _ = try await h.content.openWriter(namespace: ns, ref: "busy", total: 0, expected: "")
            }
            await first.close()
            let second = try await h.content.openWriter(namespace: ns, ref: "busy", total: 0, expected: "")
            await second.close()
        },
        Case(name: "ingest_writeAtZero_truncates_writeElsewhere_isOutOfRange") { h in
            let writer = try await h.content.openWriter(namespace: ns, ref: "t", total: 0, expected: "")
            _ = try await writer.write(offset: 0, data: Data("garbage".utf8), total: 0, expected: "")
            try await expectError(.outOfRange, "write past the end") {
                _ = try await writer.write(offset: 100, data: Data("x".utf8), total: 0, expected: "")
            }
            let state = try await writer.write(offset: 0, data: Data("ok".utf8), total: 0, expected: "")
            try expectEqual(state.offset, 2, "offset after starting over")
            let record = try await writer.commit(size: 0, expected: "", labels: [:])
            await writer.close()
            try expectEqual(record.digest, digest(Data("ok".utf8)), "digest after starting over")
        },
        Case(name: "commit_mismatch_isFailedPrecondition_writerStaysUsable") { h in
            let writer = try await h.content.openWriter(namespace: ns, ref: "m", total: 0, expected: "")
            _ = try await writer.write(offset: 0, data: Data("abc".utf8), total: 0, expected: "")
            try await expectError(.failedPrecondition, "commit with a wrong size") { _ = try await writer.commit(size: 4, expected: "", labels: [:]) }
            try await expectError(.failedPrecondition, "commit with a wrong digest") {
                _ = try await writer.commit(size: 3, expected: digest(Data("abd".utf8)), labels: [:])
            }
            _ = try await writer.commit(size: 3, expected: digest(Data("abc".utf8)), labels: [:])
            await writer.close()
        },
        Case(name: "commit_existingContent_isAlreadyExists") { h in
            _ = try await h.put(Data("same".utf8), ref: "one")
            try await expectError(.alreadyExists, "writing content the namespace has") { _ = try await h.put(Data("same".utf8), ref: "two") }
            _ = try await h.put(Data("same".utf8), ref: "three", namespace: "other")  // another namespace may record it
        },
        Case(name: "commit_withoutExpectedDigest_ofBytesAnotherNamespaceHas_isRecordedHere") { h in
            // ctr images import commits some blobs without an expected digest.
            let record = try await h.put(Data("shared".utf8), ref: "first")
            let writer = try await h.content.openWriter(namespace: "elsewhere", ref: "second", total: 0, expected: "")
            _ = try await writer.write(offset: 0, data: Data("shared".utf8), total: 0, expected: "")
            let again = try await writer.commit(size: 6, expected: "", labels: [:])
            await writer.close()
            try expectEqual(again.digest, record.digest, "digest recorded in the second namespace")
            try expectEqual(try await h.content.info(namespace: "elsewhere", digest: record.digest).size, 6, "info in the second namespace")
        },
        Case(name: "digests_malformedOrOtherAlgorithms_areInvalidArgument") { h in
            for bad in ["", "sha256:abc", "md5:" + String(repeating: "0", count: 32), "sha256:" + String(repeating: "G", count: 64)] {
                try await expectError(.invalidArgument, "info of \"\(bad)\"") { _ = try await h.content.info(namespace: ns, digest: bad) }
            }
            try await expectError(.notFound, "info of an absent digest") {
                _ = try await h.content.info(namespace: ns, digest: "sha256:" + String(repeating: "0", count: 64))
            }
        },
        Case(name: "update_labels_delete_abort_status") { h in
            let record = try await h.put(Data("labelled".utf8), ref: "l", labels: ["a": "1"])
            let updated = try await h.content.update(namespace: ns, digest: record.digest, labels: ["b": "2"], paths: ["labels.b"])
            try expectEqual(updated.labels, ["a": "1", "b": "2"], "labels after update")
            try await expectError(.invalidArgument, "update of size") {
                _ = try await h.content.update(namespace: ns, digest: record.digest, labels: [:], paths: ["size"])
            }
            try await h.content.delete(namespace: ns, digest: record.digest)
            try await expectError(.notFound, "info after delete") { _ = try await h.content.info(namespace: ns, digest: record.digest) }
            let writer = try await h.content.openWriter(namespace: ns, ref: "ab", total: 10, expected: "")
            _ = try await writer.write(offset: 0, data: Data("12345".utf8), total: 0, expected: "")
            await writer.close()
            let status = try await h.content.status(namespace: ns, ref: "ab")
            try expectEqual([status.offset, status.total], [5, 10], "status offset and total")
            try expectEqual(try await h.content.listStatuses(namespace: ns, filters: []).map(\.ref), ["ab"], "ingests listed")
            try expectEqual(try await h.content.listStatuses(namespace: "other", filters: []).count, 0, "ingests of another namespace")
            try await h.content.abort(namespace: ns, ref: "ab")
            try await expectError(.notFound, "status after abort") { _ = try await h.content.status(namespace: ns, ref: "ab") }
        },
    ]
}
