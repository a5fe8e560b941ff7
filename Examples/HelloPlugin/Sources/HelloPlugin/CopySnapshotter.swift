import BerthPluginSDK
import BerthProto
import Foundation
import SwiftProtobuf

/// The smallest useful snapshotter: every layer is a full copy of its parent's tree, mounted
/// as a bind. It implements the snapshot driver contract (`BerthContracts.SnapshotDriver`) and
/// nothing else: berthd keeps keys, kinds, parents and labels; the driver keeps layers by id.
/// `Tests/HelloPluginTests` runs the SDK's conformance kit against it.
final class CopySnapshotter: BerthPlugin {
    let methods: MethodTable
    private let layers: String

    init(host: PluginHost) {
        let layers = host.rootDirectory + "/layers"
        self.layers = layers
        @Sendable func path(_ id: UInt64) -> String { "\(layers)/\(id)" }
        @Sendable func existing(_ id: UInt64) throws -> String {
            guard FileManager.default.fileExists(atPath: path(id)) else {
                throw PluginError(.notFound, "layer \(id) does not exist")
            }
            return path(id)
        }
        var methods = MethodTable()
        // Copying a tree holds the thread for long: blocking.
        methods.serve(BerthContracts.SnapshotDriver.create, blocking: true) { request, _ in
            guard !FileManager.default.fileExists(atPath: path(request.id)) else {
                throw PluginError(.alreadyExists, "layer \(request.id) already exists")
            }
            let staging = "\(layers)/new-\(request.id)"
            try? FileManager.default.removeItem(atPath: staging)
            if let parent = request.parents.first, !request.readonly {
                try Self.copy(try existing(parent), to: staging)
            } else {
                try FileManager.default.createDirectory(
                    atPath: staging, withIntermediateDirectories: false,
                    attributes: [.posixPermissions: 0o755])
            }
            try FileManager.default.moveItem(atPath: staging, toPath: path(request.id))
            return Google_Protobuf_Empty()
        }
        methods.serve(BerthContracts.SnapshotDriver.mounts) { request, _ in
            let own = try existing(request.id)
            // A read-only layer changes nothing: it shows its nearest parent as it is.
            let source = request.readonly ? try request.parents.first.map(existing) ?? own : own
            return Containerd_Services_Snapshots_V1_MountsResponse.with {
                $0.mounts = [
                    .with {
                        $0.type = "bind"
                        $0.source = source
                        $0.options = [request.readonly ? "ro" : "rw", "rbind"]
                    }
                ]
            }
        }
        methods.serve(BerthContracts.SnapshotDriver.commit) { request, _ in
            _ = try existing(request.id)
            return Google_Protobuf_Empty()
        }
        methods.serve(BerthContracts.SnapshotDriver.remove, blocking: true) { request, _ in
            try? FileManager.default.removeItem(atPath: path(request.id))
            return Google_Protobuf_Empty()
        }
        methods.serve(BerthContracts.SnapshotDriver.usage, blocking: true) { request, _ in
            let (size, inodes) = Self.usage(of: try existing(request.id))
            return Containerd_Services_Snapshots_V1_UsageResponse.with {
                $0.size = size
                $0.inodes = inodes
            }
        }
        methods.serve(BerthContracts.SnapshotDriver.cleanup, blocking: true) { request, _ in
            let keep = Set(request.keep)
            var present = Set<UInt64>()
            var removed = [UInt64]()
            for name in (try? FileManager.default.contentsOfDirectory(atPath: layers)) ?? [] {
                guard let id = UInt64(name) else {
                    try? FileManager.default.removeItem(atPath: "\(layers)/\(name)")  // a half-made copy
                    continue
                }
                if keep.contains(id) {
                    present.insert(id)
                } else if (try? FileManager.default.removeItem(atPath: path(id))) != nil {
                    removed.append(id)
                }
            }
            return Berth_Snapshots_V1_CleanupLayersResponse.with {
                $0.removed = removed.sorted()
                $0.missing = keep.subtracting(present).sorted()
            }
        }
        self.methods = methods
    }

    func start() async throws {
        try FileManager.default.createDirectory(
            atPath: layers, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
    }

    /// cp -a keeps owners, modes, times, links and xattrs.
    private static func copy(_ source: String, to destination: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/cp")
        process.arguments = ["-a", source, destination]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw PluginError(.internal, "copying \(source) failed") }
    }

    /// Allocated bytes and inodes under `root`, hard links counted once.
    private static func usage(of root: String) -> (Int64, Int64) {
        var seen = Set<UInt64>()
        var size: Int64 = 0
        let walker = FileManager.default.enumerator(atPath: root)
        var paths = [root]
        while let next = walker?.nextObject() as? String { paths.append(root + "/" + next) }
        for item in paths {
            var info = stat()
            guard lstat(item, &info) == 0, seen.insert(UInt64(info.st_ino)).inserted else { continue }
            size += Int64(info.st_blocks) * 512
        }
        return (size, Int64(seen.count))
    }
}
