import BerthPluginSDK
import BerthProto
import FoundationEssentials
import Glibc
import Synchronization

/// Committed blobs, one file per digest under `<root>/<hex>`, written once by a rename.
///
/// Reads keep a small cache of open descriptors: `ctr content get` reads 32 KiB per RPC, and
/// reopening the file for each piece is what makes containerd 1.6's reads slow.
final class BlobStore: Sendable {
    let root: String
    /// Open descriptors by hex digest, and the digests oldest first for eviction.
    private let cache = Mutex<(open: [String: Int32], order: [String])>(([:], []))
    private static let cachedDescriptors = 64

    /// Deleted blobs go there: `delete` answers without waiting for their blocks to be freed.
    let removal: DeferredRemoval

    init(root: String, removal: DeferredRemoval) {
        self.root = root
        self.removal = removal
    }

    func path(hex: String) -> String { "\(root)/\(hex)" }

    func info(_ digest: String) throws -> Berth_Content_V1_BlobInfo {
        let hex = try Digest.hex(digest)
        var info = stat()
        guard stat(path(hex: hex), &info) == 0 else { throw PluginError(.notFound, "content \(digest) not found") }
        return .with {
            $0.digest = digest
            $0.size = Int64(info.st_size)
        }
    }

    func exists(hex: String) -> Bool { access(path(hex: hex), F_OK) == 0 }

    /// Up to `size` bytes from `offset` (fewer at the end of the blob; `size` 0 means to the end).
    func read(_ digest: String, offset: Int64, size: Int64) throws -> Data {
        let hex = try Digest.hex(digest)
        let fd = try descriptor(hex, digest)
        var wanted = Int(size)
        if wanted <= 0 {
            var info = stat()
            fstat(fd, &info)
            wanted = max(0, Int(info.st_size) - Int(offset))
        }
        var data = Data(count: wanted)
        let count = data.withUnsafeMutableBytes { pread(fd, $0.baseAddress, wanted, off_t(max(0, offset))) }
        guard count >= 0 else { throw PluginError(.internal, "reading \(digest): \(String(cString: strerror(errno)))") }
        data.count = count
        return data
    }

    /// A new read-only descriptor of the blob, for the caller to close.
    func openForReading(_ digest: String) throws -> Berth_Content_V1_OpenedBlob {
        let fd = try openFile(try Digest.hex(digest), digest)
        var info = stat()
        fstat(fd, &info)
        return .with {
            $0.descriptor = fd
            $0.size = Int64(info.st_size)
        }
    }

    func delete(_ digest: String) throws {
        let hex = try Digest.hex(digest)
        forget(hex)
        guard try removal.remove(path(hex: hex)) else { throw PluginError(.notFound, "content \(digest) not found") }
    }

    func walk() throws -> [Berth_Content_V1_BlobInfo] {
        try FileManager.default.contentsOfDirectory(atPath: root).sorted().compactMap { hex in
            var info = stat()
            guard hex.utf8.count == 64, stat(path(hex: hex), &info) == 0 else { return nil }
            return .with {
                $0.digest = "sha256:" + hex
                $0.size = Int64(info.st_size)
            }
        }
    }

    func closeAll() {
        cache.withLock { cache in
            for fd in cache.open.values { close(fd) }
            cache = ([:], [])
        }
    }

    private func descriptor(_ hex: String, _ digest: String) throws -> Int32 {
        if let fd = cache.withLock({ $0.open[hex] }) { return fd }
        let fd = try openFile(hex, digest)
        return cache.withLock { cache in
            if let existing = cache.open[hex] {
                close(fd)
                return existing
            }
            if cache.order.count >= Self.cachedDescriptors {
                let evicted = cache.order.removeFirst()
                if let old = cache.open.removeValue(forKey: evicted) { close(old) }
            }
            cache.open[hex] = fd
            cache.order.append(hex)
            return fd
        }
    }

    /// A new read-only descriptor of blob `hex`; errors name `digest`.
    private func openFile(_ hex: String, _ digest: String) throws -> Int32 {
        let fd = Glibc.open(path(hex: hex), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { throw PluginError(.notFound, "content \(digest) not found") }
            throw PluginError(.internal, "opening \(digest): \(String(cString: strerror(errno)))")
        }
        return fd
    }

    private func forget(_ hex: String) {
        cache.withLock { cache in
            if let fd = cache.open.removeValue(forKey: hex) { close(fd) }
            cache.order.removeAll { $0 == hex }
        }
    }
}
