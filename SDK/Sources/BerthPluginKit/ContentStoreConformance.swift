import BerthProto
import Foundation
import SwiftProtobuf

/// The content store contract (`BerthContracts.ContentStore`, Protos/berth/content/v1/store.proto)
/// as runnable cases, exercising a content plugin through that contract alone, as berthd calls
/// it: blobs by digest, ingests by "namespace/ref". Run from the plugin's own package:
///
///     for rule in ContentStoreConformance.cases {
///         try await ContentStoreConformance.run(rule, plugin: "/path/libX.so", id: "content")
///     }
public enum ContentStoreConformance {
    /// One rule and its check.
    public struct Case: Sendable, CustomStringConvertible {
        public let name: String
        public let run: @Sendable (PluginUnderTest) async throws -> Void
        public var description: String { name }
    }

    /// Runs `rule` against a fresh instance of content store `id` from `plugin`, in a temporary
    /// folder that is removed afterwards.
    public static func run(_ rule: Case, plugin: String, id: String, type: String = "io.containerd.content.v1") async throws {
        try await PluginUnderTest.with(path: plugin, type: type, id: id) { instance, _ in try await rule.run(instance) }
    }

    /// 100,000 bytes (i % 251) and their digest, computed once elsewhere: the kit needs no hash.
    static let blob = Data((0..<100_000).map { UInt8($0 % 251) })
    static let blobDigest = "sha256:cd2df694e424bc7968cc37f47751019e5ca0cd1bdf2e479ea537c3a1c32ee1aa"
    static let helloDigest = "sha256:5e3235a8346e5a4585f8c58562f5052b8fe26a3bb122e1e96c76784964dfc461"  // "hello "
    static let helloWorldDigest = "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"

    public static let cases: [Case] = [
        Case(name: "ingest_writeAndCommit_thenInfoReadWalkAgree") { s in
            let info = try await s.put(blob, ref: "ns/r", expected: blobDigest)
            try expectEqual(info.digest, blobDigest, "digest of the committed blob")
            try expectEqual(info.size, 100_000, "size of the committed blob")
            try expectEqual(try await s.call(BerthContracts.ContentStore.info, .with { $0.digest = blobDigest }).size, 100_000, "info size")
            let tail = try await s.call(
                BerthContracts.ContentStore.readAt,
                .with {
                    $0.digest = blobDigest
                    $0.offset = 99_990
                    $0.size = 32_768
                })
            try expectEqual(tail.data, blob.suffix(10), "read at an offset, short at the end")
            let walked = try await s.call(BerthContracts.ContentStore.walk, Google_Protobuf_Empty()).blobs.map(\.digest)
            try expectEqual(walked, [blobDigest], "walk after one commit")
            try expectEqual(try await s.call(BerthContracts.ContentStore.ingests, .with { $0.ref = "ns/" }).ingests.count, 0, "ingests left")
        },
        Case(name: "ingest_reopened_reportsOffsetAndDigestSoFar") { s in
            _ = try await s.call(BerthContracts.ContentStore.open, .with { $0.ref = "ns/resume" })
            _ = try await s.call(
                BerthContracts.ContentStore.write,
                .with {
                    $0.ref = "ns/resume"
                    $0.offset = 0
                    $0.data = Data("hello ".utf8)
                })
            _ = try await s.call(BerthContracts.ContentStore.close, .with { $0.ref = "ns/resume" })
            let state = try await s.call(BerthContracts.ContentStore.open, .with { $0.ref = "ns/resume" })
            try expectEqual(state.offset, 6, "offset of a reopened ingest")
            try expectEqual(state.digest, helloDigest, "digest so far of a reopened ingest")
            _ = try await s.call(
                BerthContracts.ContentStore.write,
                .with {
                    $0.ref = "ns/resume"
                    $0.offset = 6
                    $0.data = Data("world".utf8)
                })
            let info = try await s.call(
                BerthContracts.ContentStore.commit,
                .with {
                    $0.ref = "ns/resume"
                    $0.size = 11
                    $0.expected = helloWorldDigest
                })
            try expectEqual(info.digest, helloWorldDigest, "digest after resuming")
        },
        Case(name: "ingest_heldRef_isUnavailableToASecondWriter") { s in
            _ = try await s.call(BerthContracts.ContentStore.open, .with { $0.ref = "ns/busy" })
            try await expectCode(14, "a second open of a held ref") {
                _ = try await s.call(BerthContracts.ContentStore.open, .with { $0.ref = "ns/busy" })
            }
            _ = try await s.call(BerthContracts.ContentStore.close, .with { $0.ref = "ns/busy" })
            _ = try await s.call(BerthContracts.ContentStore.open, .with { $0.ref = "ns/busy" })
        },
        Case(name: "write_atAnOffsetThatIsNotTheEnd_isRefused") { s in
            _ = try await s.call(BerthContracts.ContentStore.open, .with { $0.ref = "ns/gap" })
            _ = try await s.call(
                BerthContracts.ContentStore.write,
                .with {
                    $0.ref = "ns/gap"
                    $0.offset = 0
                    $0.data = Data("abc".utf8)
                })
            try await expectCode(11, "a write leaving a gap") {
                _ = try await s.call(
                    BerthContracts.ContentStore.write,
                    .with {
                        $0.ref = "ns/gap"
                        $0.offset = 7
                        $0.data = Data("x".utf8)
                    })
            }
            let state = try await s.call(BerthContracts.ContentStore.status, .with { $0.ref = "ns/gap" })
            try expectEqual(state.offset, 3, "bytes written after a refused write")
        },
        Case(name: "commit_wrongSizeOrDigest_failsAndKeepsTheIngest") { s in
            _ = try await s.call(BerthContracts.ContentStore.open, .with { $0.ref = "ns/bad" })
            _ = try await s.call(
                BerthContracts.ContentStore.write,
                .with {
                    $0.ref = "ns/bad"
                    $0.offset = 0
                    $0.data = Data("hello ".utf8)
                })
            try await expectCode(9, "commit with a wrong size") {
                _ = try await s.call(
                    BerthContracts.ContentStore.commit,
                    .with {
                        $0.ref = "ns/bad"
                        $0.size = 5
                    })
            }
            try await expectCode(9, "commit with a wrong digest") {
                _ = try await s.call(
                    BerthContracts.ContentStore.commit,
                    .with {
                        $0.ref = "ns/bad"
                        $0.expected = helloWorldDigest
                    })
            }
            try expectEqual(try await s.call(BerthContracts.ContentStore.status, .with { $0.ref = "ns/bad" }).offset, 6, "ingest after failed commits")
            let info = try await s.call(
                BerthContracts.ContentStore.commit,
                .with {
                    $0.ref = "ns/bad"
                    $0.size = 6
                    $0.expected = helloDigest
                })
            try expectEqual(info.digest, helloDigest, "a later commit with right expectations")
        },
        Case(name: "commit_ofABlobAlreadyStored_answersItsInfo") { s in
            _ = try await s.put(blob, ref: "ns/first", expected: blobDigest)
            let again = try await s.put(blob, ref: "other/second", expected: blobDigest)
            try expectEqual(again.digest, blobDigest, "digest when the blob was stored already")
            try expectEqual(try await s.call(BerthContracts.ContentStore.walk, Google_Protobuf_Empty()).blobs.count, 1, "blobs stored once")
        },
        Case(name: "abort_dropsTheIngest") { s in
            _ = try await s.call(BerthContracts.ContentStore.open, .with { $0.ref = "ns/gone" })
            _ = try await s.call(
                BerthContracts.ContentStore.write,
                .with {
                    $0.ref = "ns/gone"
                    $0.offset = 0
                    $0.data = Data("x".utf8)
                })
            _ = try await s.call(BerthContracts.ContentStore.abort, .with { $0.ref = "ns/gone" })
            try await expectCode(5, "status of an aborted ingest") {
                _ = try await s.call(BerthContracts.ContentStore.status, .with { $0.ref = "ns/gone" })
            }
        },
        Case(name: "delete_blobIsGone_andAgainIsNotFound") { s in
            _ = try await s.put(blob, ref: "ns/doomed", expected: blobDigest)
            _ = try await s.call(BerthContracts.ContentStore.delete, .with { $0.digest = blobDigest })
            try await expectCode(5, "info of a deleted blob") { _ = try await s.call(BerthContracts.ContentStore.info, .with { $0.digest = blobDigest }) }
            try await expectCode(5, "delete of a deleted blob") { _ = try await s.call(BerthContracts.ContentStore.delete, .with { $0.digest = blobDigest }) }
        },
        Case(name: "ingests_listedByPrefix") { s in
            for ref in ["a/one", "a/two", "b/three"] {
                _ = try await s.call(BerthContracts.ContentStore.open, .with { $0.ref = ref })
                _ = try await s.call(BerthContracts.ContentStore.close, .with { $0.ref = ref })
            }
            let listed = try await s.call(BerthContracts.ContentStore.ingests, .with { $0.ref = "a/" }).ingests.map(\.ref).sorted()
            try expectEqual(listed, ["a/one", "a/two"], "ingests under a/")
        },
        Case(name: "expire_removesOldUnheldIngests_keepsHeldAndKept") { s in
            for ref in ["ns/old", "ns/kept", "ns/held"] {
                _ = try await s.call(BerthContracts.ContentStore.open, .with { $0.ref = ref })
                if ref != "ns/held" { _ = try await s.call(BerthContracts.ContentStore.close, .with { $0.ref = ref }) }
            }
            let later = Google_Protobuf_Timestamp(date: Date().addingTimeInterval(60))
            let removed = try await s.call(
                BerthContracts.ContentStore.expire,
                .with {
                    $0.updatedBefore = later
                    $0.keep = ["ns/kept"]
                })
            try expectEqual(removed.ingests.map(\.ref), ["ns/old"], "ingests expired")
            let left = try await s.call(BerthContracts.ContentStore.ingests, .with { $0.ref = "ns/" }).ingests.map(\.ref).sorted()
            try expectEqual(left, ["ns/held", "ns/kept"], "ingests left")
        },
        Case(name: "openRead_whenOffered_givesAReadableDescriptorOfTheBlob") { s in
            _ = try await s.put(blob, ref: "ns/r", expected: blobDigest)
            let opened: Berth_Content_V1_OpenedBlob
            do {
                opened = try await s.call(BerthContracts.ContentStore.openRead, .with { $0.digest = blobDigest })
            } catch let error as PluginCallError where error.code == 12 {
                return  // optional in the contract
            }
            defer { close(opened.descriptor) }
            try expectEqual(opened.size, 100_000, "size of the opened blob")
            let handle = FileHandle(fileDescriptor: opened.descriptor, closeOnDealloc: false)
            try expectEqual(try handle.readToEnd(), blob, "bytes read through the descriptor")
        },
    ]
}

extension PluginUnderTest {
    /// Writes `data` under `ref` in one go and commits it.
    func put(_ data: Data, ref: String, expected: String) async throws -> Berth_Content_V1_BlobInfo {
        _ = try await call(BerthContracts.ContentStore.open, .with { $0.ref = ref })
        _ = try await call(
            BerthContracts.ContentStore.write,
            .with {
                $0.ref = ref
                $0.offset = 0
                $0.data = data
            })
        return try await call(
            BerthContracts.ContentStore.commit,
            .with {
                $0.ref = ref
                $0.size = Int64(data.count)
                $0.expected = expected
            })
    }
}
