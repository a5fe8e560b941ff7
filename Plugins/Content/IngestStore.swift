import BerthPluginSDK
import BerthProto
import Crypto
import Foundation
import SwiftProtobuf

/// Ingests in progress, one folder per namespace and ref under `<root>/<sha256(namespace/ref)>`:
/// `ref` (the key), `data`, `meta`. Messages and errors name the ref alone.
///
/// A ref is held by at most one writer (Open to Close, Commit or Abort). Reopening a ref resumes
/// it: the bytes on disk are re-hashed, so offset and digest-so-far are exact. Commit fsyncs the
/// data, renames it under its digest and fsyncs the folder, so after a crash there is either the
/// whole verified blob or none.
final class IngestStore: @unchecked Sendable {
    /// The state of one held ingest.
    ///
    /// Hashing runs on the writer's own serial queue, behind the write that appended the bytes:
    /// a client waits for each write's reply before it sends the next chunk, so hashing chunk n
    /// overlaps the transfer of chunk n+1 instead of delaying the reply (containerd's writes do
    /// not report a digest either). Reading the digest waits for the queue.
    final class Writer: @unchecked Sendable {
        let ref: String
        let folder: String
        let fd: Int32
        var offset: Int64
        /// Touched only on `hashing`.
        private var hasher: SHA256
        private let hashing = DispatchQueue(label: "berth.content.ingest-hash")
        var total: Int64
        var expected: String
        let started: Date
        var updated: Date

        init(ref: String, folder: String, fd: Int32, offset: Int64, hasher: SHA256, total: Int64, expected: String, started: Date) {
            self.ref = ref
            self.folder = folder
            self.fd = fd
            self.offset = offset
            self.hasher = hasher
            self.total = total
            self.expected = expected
            self.started = started
            self.updated = started
        }

        /// The state, with the digest of the bytes so far unless `withDigest` is false.
        func state(withDigest: Bool = true) -> Berth_Content_V1_IngestState {
            .with {
                $0.ref = ref
                $0.offset = offset
                $0.total = total
                $0.expected = expected
                if withDigest { $0.digest = digest() }
                $0.startedAt = Google_Protobuf_Timestamp(date: started)
                $0.updatedAt = Google_Protobuf_Timestamp(date: updated)
            }
        }

        /// Adds `data`, the bytes just written at the end, to the digest.
        func hash(_ data: Data) {
            hashing.async { self.hasher.update(data: data) }
        }

        /// The digest of every byte written so far.
        func digest() -> String {
            hashing.sync { Digest.string(hasher.finalize()) }
        }

        /// Starts the digest over, after a truncation.
        func resetDigest() {
            hashing.sync { hasher = SHA256() }
        }
    }

    let root: String
    private let blobs: BlobStore
    private let lock = NSLock()
    private var held = [String: Writer]()

    init(root: String, blobs: BlobStore) {
        self.root = root
        self.blobs = blobs
    }

    /// The kernel sends refs as "namespace/ref"; messages name the ref as the client knows it.
    private static func shown(_ key: String) -> String {
        key.firstIndex(of: "/").map { String(key[key.index(after: $0)...]) } ?? key
    }

    private func folder(_ ref: String) -> String {
        root + "/" + SHA256.hash(data: Data(ref.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    func open(ref: String, total: Int64, expected: String) throws -> Berth_Content_V1_IngestState {
        guard !ref.isEmpty else { throw PluginError(.invalidArgument, "ingest ref must not be empty") }
        if !expected.isEmpty { _ = try Digest.hex(expected) }
        let writer = try lock.withLock { () throws -> Writer in
            guard held[ref] == nil else { throw PluginError(.unavailable, "ref \"\(Self.shown(ref))\" is locked by another writer") }
            let writer = try resume(ref: ref, total: total, expected: expected)
            held[ref] = writer
            return writer
        }
        return writer.state()
    }

    /// SYNC_FILE_RANGE_WRITE: start write-out of dirty pages in the range, without waiting.
    private static let syncFileRangeWrite: UInt32 = 2

    func write(_ request: Berth_Content_V1_IngestWriteRequest) throws -> Berth_Content_V1_IngestState {
        let writer = try holder(request.ref)
        if request.total > 0 { writer.total = request.total }
        if !request.expected.isEmpty {
            _ = try Digest.hex(request.expected)
            writer.expected = request.expected
        }
        if request.offset == 0, writer.offset > 0 {
            guard ftruncate(writer.fd, 0) == 0 else { throw syscall("truncating", writer.ref) }
            writer.offset = 0
            writer.resetDigest()
        }
        guard request.offset == writer.offset else {
            throw PluginError(.outOfRange, "write to ref \"\(Self.shown(writer.ref))\" at offset \(request.offset), but \(writer.offset) bytes are written; write at \(writer.offset) or 0")
        }
        try request.data.withUnsafeBytes { bytes in
            var done = 0
            while done < bytes.count {
                let n = pwrite(writer.fd, bytes.baseAddress! + done, bytes.count - done, off_t(writer.offset) + off_t(done))
                if n < 0 { if errno == EINTR { continue }; throw syscall("writing", writer.ref) }
                done += n
            }
            // Start writing these pages to disk now: with a large page cache nothing else would
            // before the commit's fsync, which then waited for the whole blob at once.
            _ = startWriteback(writer.fd, off_t(writer.offset), off_t(bytes.count), Self.syncFileRangeWrite)
        }
        writer.hash(request.data)
        writer.offset += Int64(request.data.count)
        writer.updated = Date()
        if request.total > 0 || !request.expected.isEmpty { try saveMeta(writer) }
        return writer.state(withDigest: false)
    }

    func commit(ref: String, size: Int64, expected: String) throws -> Berth_Content_V1_BlobInfo {
        let writer = try holder(ref)
        let digest = writer.digest()
        let wantedSize = size > 0 ? size : writer.total
        guard wantedSize <= 0 || wantedSize == writer.offset else {
            throw PluginError(.failedPrecondition, "commit of ref \"\(Self.shown(ref))\": expected size \(wantedSize), wrote \(writer.offset) bytes")
        }
        let wantedDigest = expected.isEmpty ? writer.expected : expected
        if !wantedDigest.isEmpty {
            _ = try Digest.hex(wantedDigest)
            guard wantedDigest == digest else {
                throw PluginError(.failedPrecondition, "commit of ref \"\(Self.shown(ref))\": expected digest \(wantedDigest), content is \(digest)")
            }
        }
        let hex = try Digest.hex(digest)
        if blobs.exists(hex: hex) {
            // Stored already (for this or another namespace): the verified bytes are there, so
            // the commit succeeds; whether the namespace already records them is the kernel's call.
            try abort(ref: ref)
            return .with { $0.digest = digest; $0.size = writer.offset }
        }
        guard fsync(writer.fd) == 0 else { throw syscall("syncing", ref) }
        guard rename(writer.folder + "/data", blobs.path(hex: hex)) == 0 else { throw syscall("storing", ref) }
        syncDirectory(blobs.root)
        try abort(ref: ref)
        return .with { $0.digest = digest; $0.size = writer.offset }
    }

    func close(ref: String) {
        lock.withLock {
            if let writer = held.removeValue(forKey: ref) { Glibc.close(writer.fd) }
        }
    }

    func abort(ref: String) throws {
        let folder = folder(ref)
        close(ref: ref)
        guard FileManager.default.fileExists(atPath: folder) else { throw PluginError(.notFound, "ingest ref \"\(Self.shown(ref))\" not found") }
        try FileManager.default.removeItem(atPath: folder)
    }

    func status(ref: String) throws -> Berth_Content_V1_IngestState {
        if let writer = lock.withLock({ held[ref] }) { return writer.state() }
        return try diskState(folder(ref), ref: ref)
    }

    func list(prefix: String) -> [Berth_Content_V1_IngestState] {
        refs(prefix: prefix).compactMap { try? status(ref: $0) }
    }

    /// Removes ingests no writer holds, last written before `cutoff`, not named in `keep`;
    /// returns their last states.
    func expire(before cutoff: Date, keep: Set<String>) -> [Berth_Content_V1_IngestState] {
        refs(prefix: "").filter { !keep.contains($0) }.compactMap { ref in
            lock.withLock { () -> Berth_Content_V1_IngestState? in
                guard held[ref] == nil, let state = try? diskState(folder(ref), ref: ref),
                      state.updatedAt.date < cutoff else { return nil }
                try? FileManager.default.removeItem(atPath: folder(ref))
                return state
            }
        }
    }

    private func refs(prefix: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return names.compactMap { name -> String? in
            guard let ref = try? String(contentsOfFile: "\(root)/\(name)/ref", encoding: .utf8), ref.hasPrefix(prefix) else { return nil }
            return ref
        }.sorted()
    }

    // MARK: -

    private func holder(_ ref: String) throws -> Writer {
        guard let writer = lock.withLock({ held[ref] }) else {
            throw PluginError(.failedPrecondition, "ingest ref \"\(Self.shown(ref))\" is not open for writing")
        }
        return writer
    }

    /// Opens the ref's folder, creating it, and re-hashes what is already written.
    private func resume(ref: String, total: Int64, expected: String) throws -> Writer {
        let folder = folder(ref)
        let fresh = !FileManager.default.fileExists(atPath: folder)
        if fresh {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try ref.write(toFile: folder + "/ref", atomically: true, encoding: .utf8)
        }
        let fd = Glibc.open(folder + "/data", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw syscall("opening", ref) }
        var hasher = SHA256()
        var offset: Int64 = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset)) }
            if n <= 0 { break }
            buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[..<n])) }
            offset += Int64(n)
        }
        let meta = fresh ? nil : try? Self.readMeta(folder)
        let writer = Writer(ref: ref, folder: folder, fd: fd, offset: offset, hasher: hasher,
                            total: total > 0 ? total : meta?.total ?? 0,
                            // An expected digest holds for one session only (containerd's rule): a
                            // writer resuming without one commits whatever digest the bytes have.
                            expected: expected,
                            started: meta?.started ?? Date())
        try saveMeta(writer)
        return writer
    }

    private struct Meta: Codable {
        var total: Int64
        var expected: String
        var started: Date
    }

    private func saveMeta(_ writer: Writer) throws {
        let data = try JSONEncoder().encode(Meta(total: writer.total, expected: writer.expected, started: writer.started))
        try data.write(to: URL(fileURLWithPath: writer.folder + "/meta"), options: .atomic)
    }

    private static func readMeta(_ folder: String) throws -> Meta {
        try JSONDecoder().decode(Meta.self, from: Data(contentsOf: URL(fileURLWithPath: folder + "/meta")))
    }

    private func diskState(_ folder: String, ref: String) throws -> Berth_Content_V1_IngestState {
        var info = stat()
        guard stat(folder + "/data", &info) == 0 || stat(folder + "/ref", &info) == 0 else {
            throw PluginError(.notFound, "ingest ref \"\(Self.shown(ref))\" not found")
        }
        var size = stat()
        let written = stat(folder + "/data", &size) == 0 ? Int64(size.st_size) : 0
        let meta = try? Self.readMeta(folder)
        return .with {
            $0.ref = ref
            $0.offset = written
            $0.total = meta?.total ?? 0
            $0.expected = meta?.expected ?? ""
            $0.startedAt = Google_Protobuf_Timestamp(date: meta?.started ?? Date(timeIntervalSince1970: 0))
            $0.updatedAt = Google_Protobuf_Timestamp(date: Date(timeIntervalSince1970: Double(size.st_mtim.tv_sec)))
        }
    }

    private func syncDirectory(_ path: String) {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        Glibc.close(fd)
    }

    private func syscall(_ what: String, _ ref: String) -> PluginError {
        PluginError(.internal, "\(what) ingest ref \"\(Self.shown(ref))\": \(String(cString: strerror(errno)))")
    }
}

/// Linux `sync_file_range(2)`, which the Glibc module does not export.
@_silgen_name("sync_file_range")
private func startWriteback(_ fd: Int32, _ offset: off_t, _ count: off_t, _ flags: UInt32) -> Int32
