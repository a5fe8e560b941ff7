import BerthProto
import FoundationEssentials
import Glibc
import Kernel
import SwiftProtobuf

/// The diff contract, kept by the kernel over a differ plugin.
///
/// Terms: `compare` takes two trees as mount lists (older, newer), has the differ plugin write
/// the changes as a layer (tar, or tar+gzip, by media type), and moves the layer into the
/// content store of `namespace` through an ordinary ingest, so that labels, the request's lease
/// and `/content/create` behave as for any other blob. The committed blob carries
/// `containerd.io/uncompressed` = the sha256 of the uncompressed tar, as containerd's does.
///
/// `apply` is the reverse: it unpacks a layer blob the namespace sees onto an active snapshot's
/// mounts and answers the descriptor of the uncompressed layer (its diff id), which unpacking
/// an image checks against the image config.
///
/// Worked example: `ctr snapshots diff b` views b's parent, then compares the view with b's
/// mounts and reads the returned digest from the content store.
///
/// Repeats and absences: comparing again gives the same layer (the blob then already exists and
/// its descriptor is returned); no differ plugin is `.unavailable`; a mount type the differ
/// cannot mount is `.invalidArgument`; a media type it cannot write is `.unimplemented`.
public struct DiffService: Sendable {
    /// The content service, looked up per call: both are services of one type, so the kernel
    /// does not order their starts.
    private let resolveContent: @Sendable () throws -> ContentService
    let plugins: PluginDirectory
    /// Where a blob is copied for the differ to unpack.
    let scratch: String
    /// Layers unpacked ahead of their Apply, looked up per call (nil when turned off).
    private let resolveStaging: @Sendable () -> LayerStaging?

    public init(content: ContentService, plugins: PluginDirectory, scratch: String) {
        self.init(plugins: plugins, scratch: scratch, content: { content })
    }

    public init(
        plugins: PluginDirectory, scratch: String, content: @escaping @Sendable () throws -> ContentService,
        staging: @escaping @Sendable () -> LayerStaging? = { nil }
    ) {
        self.resolveContent = content
        self.plugins = plugins
        self.scratch = scratch
        self.resolveStaging = staging
    }

    private var content: ContentService {
        get throws { try resolveContent() }
    }

    /// What containerd writes when a request names no media type.
    public static let defaultMediaType = "application/vnd.oci.image.layer.v1.tar+gzip"
    /// The label naming a compressed blob's uncompressed digest (containerd's).
    public static let uncompressedLabel = "containerd.io/uncompressed"

    public typealias Mount = Containerd_Types_Mount

    /// Writes the changes from `lower` to `upper` into the content store; returns the blob.
    public func compare(
        namespace: String, lower: [Mount], upper: [Mount], mediaType: String, ref: String,
        labels: [String: String], lease: String
    ) async throws -> Containerd_Types_Descriptor {
        let mediaType = mediaType.isEmpty ? Self.defaultMediaType : mediaType
        let differ = try runningDiffer()
        try Validation.labels(labels)
        let layer = try await differ.call(
            BerthContracts.Differ.compare,
            Berth_Diff_V1_CompareRequest.with {
                $0.lower = lower
                $0.upper = upper
                $0.mediaType = mediaType
            })
        defer { unlink(layer.path) }
        var labels = labels
        labels[Self.uncompressedLabel] = layer.uncompressedDigest
        let (digest, size) = try await store(
            layer.path, namespace: namespace,
            ref: ref.isEmpty ? "diff-\(UUID().uuidString.lowercased())" : ref,
            labels: labels, lease: lease)
        return .with {
            $0.mediaType = mediaType
            $0.digest = digest
            $0.size = size
        }
    }

    /// Unpacks layer `diff` onto `mounts`; answers the uncompressed layer's descriptor.
    public func apply(namespace: String, diff: Containerd_Types_Descriptor, mounts: [Mount]) async throws -> Containerd_Types_Descriptor {
        let differ = try runningDiffer()
        try ContentDigest.validate(diff.digest)
        let blob = try await content.open(namespace: namespace, digest: diff.digest)
        if let adopted = await adoptStaged(diff, mounts: mounts, differ: differ) { return adopted }
        // The differ reads the blob where the store keeps it, through a descriptor the store
        // opened (/proc/self/fd/N: plugins share the daemon's process); a store without
        // OpenRead gets its blob copied to a scratch file first.
        if let fd = try await blob.descriptor() {
            defer { close(fd) }
            return try await apply(path: "/proc/self/fd/\(fd)", diff: diff, mounts: mounts, differ: differ)
        }
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = scratch + "/apply-\(UUID().uuidString)"
        defer { unlink(path) }
        try await copy(blob, to: path)
        return try await apply(path: path, diff: diff, mounts: mounts, differ: differ)
    }

    private func apply(
        path: String, diff: Containerd_Types_Descriptor, mounts: [Mount],
        differ: any PluginInstance
    ) async throws -> Containerd_Types_Descriptor {
        let mediaType = diff.mediaType.isEmpty ? Self.defaultMediaType : diff.mediaType
        let reply = try await differ.call(
            BerthContracts.Differ.apply,
            Berth_Diff_V1_ApplyLayerRequest.with {
                $0.mounts = mounts
                $0.path = path
                $0.mediaType = mediaType
            })
        return .with {
            $0.mediaType = "application/vnd.oci.image.layer.v1.tar"
            $0.digest = reply.uncompressedDigest
            $0.size = reply.uncompressedSize
        }
    }

    /// The layer unpacked ahead for `diff`, moved into `mounts`' directory; nil when there is
    /// none or it cannot be used there (then the ordinary apply does the work).
    private func adoptStaged(_ diff: Containerd_Types_Descriptor, mounts: [Mount], differ: any PluginInstance) async -> Containerd_Types_Descriptor? {
        guard let staging = resolveStaging(), let staged = await staging.take(diff.digest) else { return nil }
        let mediaType = diff.mediaType.isEmpty ? Self.defaultMediaType : diff.mediaType
        // The staging read the blob as its bytes say; the request's type must agree.
        let gzip = mediaType.hasSuffix("+gzip") || mediaType.hasSuffix(".tar.gzip")
        guard gzip == staged.gzip, gzip || mediaType.hasSuffix(".tar") else {
            await staging.discard(staged.name)
            return nil
        }
        do {
            let reply = try await differ.call(
                BerthContracts.Differ.adopt,
                Berth_Diff_V1_AdoptLayerRequest.with {
                    $0.name = staged.name
                    $0.mounts = mounts
                    $0.implicitParents = staged.reply.implicitParents
                    $0.opaque = staged.reply.opaque
                    $0.overlayMarks = staged.reply.overlayMarks
                })
            // Not adopted: the plugin removed the staging already.
            guard reply.adopted else { return nil }
        } catch {
            await staging.discard(staged.name)
            return nil
        }
        return .with {
            $0.mediaType = "application/vnd.oci.image.layer.v1.tar"
            $0.digest = staged.reply.uncompressedDigest
            $0.size = staged.reply.uncompressedSize
        }
    }

    private func copy(_ blob: ContentBlob, to path: String) async throws {
        let file: PlainFile
        do {
            file = try PlainFile.create(path, mode: 0o600)
        } catch {
            throw BerthError.internal("cannot create \(path) to unpack content \(blob.record.digest): \(error)")
        }
        var offset: Int64 = 0
        while offset < blob.record.size {
            let data = try await blob.read(offset: offset, size: min(1 << 20, blob.record.size - offset))
            guard !data.isEmpty else { break }
            try file.write(data)
            offset += Int64(data.count)
        }
    }

    private func runningDiffer() throws(BerthError) -> any PluginInstance {
        guard let differ = plugins.instance(of: .differ) else { throw .unavailable("no differ plugin is running") }
        return differ
    }

    /// Ingests the file at `path` under `ref` and commits it; content the namespace already has
    /// counts as stored.
    private func store(
        _ path: String, namespace: String, ref: String, labels: [String: String],
        lease: String
    ) async throws -> (String, Int64) {
        let file: PlainFile
        do {
            file = try PlainFile.open(path)
        } catch {
            throw BerthError.internal("the differ's layer cannot be read: \(error)")
        }
        let writer = try await content.openWriter(namespace: namespace, ref: ref, total: 0, expected: "", lease: lease)
        do {
            var offset: Int64 = 0
            while case let chunk = try file.read(upTo: 1 << 20), !chunk.isEmpty {
                _ = try await writer.write(offset: offset, data: chunk, total: 0, expected: "")
                offset += Int64(chunk.count)
            }
            let digest = try await writer.status().digest
            do {
                _ = try await writer.commit(size: offset, expected: digest, labels: labels)
            } catch let error as BerthError where error.code == .alreadyExists {
                // The namespace has the blob already; the store consumed the ingest either way.
            }
            await writer.close()
            return (digest, offset)
        } catch {
            await writer.close()
            try? await content.abort(namespace: namespace, ref: ref)
            throw error
        }
    }
}
