import BerthProto
import Foundation
import SwiftProtobuf
import Testing

@testable import Kernel
@testable import Storage

/// Diff.Apply hands the differ a path it can read the layer from: the store's own file through
/// a descriptor when the store offers OpenRead, else a scratch copy. Both must give the differ
/// exactly the blob's bytes, and leave neither descriptor nor scratch file behind.
@Suite struct DiffApplySourceTests {
    static let blob = Array((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) })
    /// The fakes do not hash: any well-formed digest names the blob.
    static let digest = "sha256:" + String(repeating: "ab", count: 32)

    /// A content store holding `blob` in a file; `OpenRead` only when `opens`.
    struct Store: PluginInstance {
        let file: String
        let opens: Bool

        func call(_ method: String, request: [UInt8], context: CallContext) async throws -> [UInt8] {
            switch method {
            case BerthContracts.ContentStore.openRead.path where opens:
                let fd = open(file, O_RDONLY | O_CLOEXEC)
                return try Berth_Content_V1_OpenedBlob.with {
                    $0.descriptor = fd
                    $0.size = Int64(DiffApplySourceTests.blob.count)
                }
                .serializedBytes()
            case BerthContracts.ContentStore.readAt.path:
                let r = try Berth_Content_V1_ReadAtRequest(serializedBytes: request)
                let start = Int(r.offset), end = min(DiffApplySourceTests.blob.count, start + Int(r.size))
                return try Berth_Content_V1_ReadAtReply.with { $0.data = Data(DiffApplySourceTests.blob[start..<end]) }.serializedBytes()
            default:
                throw BerthError.unimplemented("method \(method) is not served by this store")
            }
        }

        func stop() async {}
    }

    /// A differ that keeps the path it was given and what it read there.
    final class Differ: PluginInstance, @unchecked Sendable {
        var paths: [String] = []
        var read: [Data] = []

        func call(_ method: String, request: [UInt8], context: CallContext) async throws -> [UInt8] {
            let r = try Berth_Diff_V1_ApplyLayerRequest(serializedBytes: request)
            paths.append(r.path)
            let bytes = try Data(contentsOf: URL(fileURLWithPath: r.path))
            read.append(bytes)
            return try Berth_Diff_V1_ApplyLayerReply.with {
                $0.uncompressedDigest = DiffApplySourceTests.digest
                $0.uncompressedSize = Int64(bytes.count)
            }.serializedBytes()
        }

        func stop() async {}
    }

    @Test(arguments: [true, false])
    func apply_givesTheDifferTheBlobsBytes(storeOpensBlobs: Bool) async throws {
        let directory = TestSupport.temporaryDirectory("apply-source")
        let file = directory + "/blob"
        FileManager.default.createFile(atPath: file, contents: Data(Self.blob))
        let metadata = try MetadataStore(path: directory + "/meta.db", schemas: [.content])
        _ = try await metadata.insertContent(namespace: "ns", digest: Self.digest, size: Int64(Self.blob.count), labels: [:])
        let plugins = PluginDirectory()
        let differ = Differ()
        plugins.add(PluginName(type: .content, id: "content"), Store(file: file, opens: storeOpensBlobs))
        plugins.add(PluginName(type: .differ, id: "walking"), differ)
        let content = ContentService(metadata: metadata, plugins: plugins, events: EventBus())
        let scratch = directory + "/scratch"
        let diff = DiffService(content: content, plugins: plugins, scratch: scratch)

        let layer = try await diff.apply(
            namespace: "ns",
            diff: .with {
                $0.digest = Self.digest
                $0.mediaType = "application/vnd.oci.image.layer.v1.tar"
            }, mounts: [])

        #expect(layer.digest == Self.digest)
        #expect(layer.size == Int64(Self.blob.count))
        #expect(differ.read == [Data(Self.blob)])
        #expect(differ.paths[0].hasPrefix(storeOpensBlobs ? "/proc/self/fd/" : scratch + "/apply-"))
        #expect((try? FileManager.default.contentsOfDirectory(atPath: scratch))?.isEmpty ?? true)
        if storeOpensBlobs {
            // The descriptor is closed: its number names nothing now, or (reused by another
            // test running meanwhile) some other file.
            let target = try? FileManager.default.destinationOfSymbolicLink(atPath: differ.paths[0])
            #expect(target != file)
        }
    }
}
