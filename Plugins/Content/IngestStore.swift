import BerthPluginSDK
import BerthProto
import Crypto
import Dispatch
import FoundationEssentials
import Glibc
import SwiftProtobuf
import Synchronization

/// Ingests in progress, one folder per namespace and ref under `<root>/<sha256(namespace/ref)>`:
/// `ref` (the key), `data`, `meta`. Messages and errors name the ref alone.
///
/// A ref is held by at most one writer (Open to Close, Commit or Abort). Reopening a ref resumes
/// it: the bytes on disk are re-hashed, so offset and digest-so-far are exact. Commit fsyncs the
/// data, renames it under its digest and fsyncs the folder, so after a crash there is either the
/// whole verified blob or none.
final class IngestStore: Sendable {
    /// The state of one held ingest: one client's session, from Open to Close, Commit or Abort.
    ///
    /// Hashing runs on the writer's own serial queue, behind the write that appended the bytes:
    /// a client waits for each write's reply before it sends the next chunk, so hashing chunk n
    /// overlaps the transfer of chunk n+1 instead of delaying the reply (containerd's writes do
    /// not report a digest either). Reading the digest waits for the queue.
    ///
    /// The rest of the state is behind a lock: the session's writes change it while Status and
    /// ListStatuses, from any client, read it.
    final class Writer: Sendable {
        /// What the session's writes change.
        struct Progress {
            var offset: Int64
            /// The size reported by status: the last one any session gave.
            var total: Int64
            /// The size this session's client declared (0: none): what a commit without a size checks.
            var sessionTotal: Int64
            /// The digest this session's client declared ("": none).
            var expected: String
            /// When bytes were last written; the start until then.
            var updated: Date
        }

        let ref: String
        let folder: String
        let fd: Int32
        let started: Date
        private let progress: Mutex<Progress>
        private let hasher: Mutex<SHA256>
        private let hashing = DispatchQueue(label: "berth.content.ingest-hash")

        init(ref: String, folder: String, fd: Int32, hasher: SHA256, started: Date, progress: Progress) {
            self.ref = ref
            self.folder = folder
            self.fd = fd
            self.hasher = Mutex(hasher)
            self.started = started
            self.progress = Mutex(progress)
        }

        /// A consistent copy of the progress.
        var current: Progress { progress.withLock { $0 } }

        /// Changes the progress under the lock.
        func update(_ change: (inout Progress) -> Void) {
            progress.withLock { change(&$0) }
        }

        /// The state, with the digest of the bytes so far unless `withDigest` is false.
        func state(withDigest: Bool = true) -> Berth_Content_V1_IngestState {
            let progress = current
            return .with {
                $0.ref = ref
                $0.offset = progress.offset
                $0.total = progress.total
                $0.expected = progress.expected
                if withDigest { $0.digest = digest() }
                $0.startedAt = Google_Protobuf_Timestamp(date: started)
                $0.updatedAt = Google_Protobuf_Timestamp(date: progress.updated)
            }
        }

        /// Adds `data`, the bytes just written at the end, to the digest.
        func hash(_ data: Data) {
            hashing.async { self.hasher.withLock { $0.update(data: data) } }
        }

        /// The digest of every byte written so far.
        func digest() -> String {
            hashing.sync { Digest.string(hasher.withLock { $0.finalize() }) }
        }

        /// Starts the digest over, after a truncation.
        func resetDigest() {
            hashing.sync { hasher.withLock { $0 = SHA256() } }
        }

        /// Sets the data file's modification time to the last write's: once no session holds
        /// the ingest, that time is its `updated_at` (Linux stamps a write with a coarse clock
        /// that can lag it by milliseconds; containerd's TestContent/Resume checks
        /// the time a resumed writer reports).
        func stampUpdated() {
            let updated = current.updated.timeIntervalSince1970
            let seconds = floor(updated)
            var times = [
                timespec(tv_sec: 0, tv_nsec: Self.omitTime),
                timespec(tv_sec: Int(seconds), tv_nsec: Int((updated - seconds) * 1e9)),
            ]
            _ = futimens(fd, &times)
        }

        /// `UTIME_OMIT` (utimensat(2)): leave that time as it is.
        private static let omitTime = (1 << 30) - 2
    }

    let root: String
    private let blobs: BlobStore
    /// The ingests open for writing, by ref: also the lock under which refs are taken and let go.
    private let held = Mutex<[String: Writer]>([:])

    init(root: String, blobs: BlobStore) {
        self.root = root
        self.blobs = blobs
    }

    /// The kernel sends refs as "namespace/ref"; messages name the ref as the client knows it.
    private static func shown(_ key: String) -> String {
        key.firstIndex(of: "/").map { String(key[key.index(after: $0)...]) } ?? key
    }

    private func folder(_ ref: String) -> String {
        root + "/" + hexDigits(SHA256.hash(data: Data(ref.utf8)))
    }

    func open(ref: String, total: Int64, expected: String) throws -> Berth_Content_V1_IngestState {
        guard !ref.isEmpty else { throw PluginError(.invalidArgument, "ingest ref must not be empty") }
        if !expected.isEmpty { _ = try Digest.hex(expected) }
        let writer = try held.withLock { held throws -> Writer in
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
        if !request.expected.isEmpty { _ = try Digest.hex(request.expected) }
        writer.update {
            if request.total > 0 {
                $0.total = request.total
                $0.sessionTotal = request.total
            }
            if !request.expected.isEmpty { $0.expected = request.expected }
        }
        var offset = writer.current.offset
        if request.offset == 0, offset > 0 {
            guard ftruncate(writer.fd, 0) == 0 else { throw syscall("truncating", writer.ref) }
            offset = 0
            writer.update { $0.offset = 0 }
            writer.resetDigest()
        }
        guard request.offset == offset else {
            throw PluginError(
                .outOfRange, "write to ref \"\(Self.shown(writer.ref))\" at offset \(request.offset), but \(offset) bytes are written; write at \(offset) or 0")
        }
        try request.data.withUnsafeBytes { bytes in
            var done = 0
            while done < bytes.count {
                let n = pwrite(writer.fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw syscall("writing", writer.ref)
                }
                done += n
            }
            // Start writing these pages to disk now: with a large page cache nothing else would
            // before the commit's fsync, which then waited for the whole blob at once.
            _ = startWriteback(writer.fd, off_t(offset), off_t(bytes.count), Self.syncFileRangeWrite)
        }
        writer.hash(request.data)
        let now = Date()
        writer.update {
            $0.offset = offset + Int64(request.data.count)
            $0.updated = now
        }
        if request.total > 0 || !request.expected.isEmpty { try saveMeta(writer) }
        return writer.state(withDigest: false)
    }

    func commit(ref: String, size: Int64, expected: String) throws -> Berth_Content_V1_BlobInfo {
        let writer = try holder(ref)
        let digest = writer.digest()
        let progress = writer.current
        // Only this session's expectations count, as in containerd: a size or digest an earlier
        // client declared (and failed to meet) does not bind the next one.
        let wantedSize = size > 0 ? size : progress.sessionTotal
        guard wantedSize <= 0 || wantedSize == progress.offset else {
            throw PluginError(.failedPrecondition, "commit of ref \"\(Self.shown(ref))\": expected size \(wantedSize), wrote \(progress.offset) bytes")
        }
        let wantedDigest = expected.isEmpty ? progress.expected : expected
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
            return .with {
                $0.digest = digest
                $0.size = progress.offset
            }
        }
        guard fsync(writer.fd) == 0 else { throw syscall("syncing", ref) }
        guard rename(writer.folder + "/data", blobs.path(hex: hex)) == 0 else { throw syscall("storing", ref) }
        syncDirectory(blobs.root)
        try abort(ref: ref)
        return .with {
            $0.digest = digest
            $0.size = progress.offset
        }
    }

    func close(ref: String) {
        held.withLock { held in
            if let writer = held.removeValue(forKey: ref) {
                writer.stampUpdated()
                Glibc.close(writer.fd)
            }
        }
    }

    func abort(ref: String) throws {
        let folder = folder(ref)
        held.withLock { held in
            if let writer = held.removeValue(forKey: ref) { Glibc.close(writer.fd) }
        }
        guard FileManager.default.fileExists(atPath: folder) else { throw PluginError(.notFound, "ingest ref \"\(Self.shown(ref))\" not found") }
        do {
            try FileManager.default.removeItem(atPath: folder)
        } catch let error as CocoaError where error.code == .fileNoSuchFile {
            // Removed meanwhile (a collection expiring it, seen once under a loaded churn
            // test): gone either way, which is what the abort asks for.
        }
    }

    func status(ref: String) throws -> Berth_Content_V1_IngestState {
        if let writer = held.withLock({ $0[ref] }) { return writer.state() }
        return try diskState(folder(ref), ref: ref)
    }

    func list(prefix: String) -> [Berth_Content_V1_IngestState] {
        refs(prefix: prefix).compactMap { try? status(ref: $0) }
    }

    /// Removes ingests no writer holds, last written before `cutoff`, not named in `keep`;
    /// returns their last states.
    func expire(before cutoff: Date, keep: Set<String>) -> [Berth_Content_V1_IngestState] {
        refs(prefix: "").filter { !keep.contains($0) }.compactMap { ref in
            held.withLock { held -> Berth_Content_V1_IngestState? in
                guard held[ref] == nil, let state = try? diskState(folder(ref), ref: ref),
                    state.updatedAt.date < cutoff
                else { return nil }
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
        guard let writer = held.withLock({ $0[ref] }) else {
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
        let started = meta?.started ?? Date()
        let writer = Writer(
            ref: ref, folder: folder, fd: fd, hasher: hasher, started: started,
            progress: .init(
                offset: offset, total: total > 0 ? total : meta?.total ?? 0,
                // Expectations hold for one session only (containerd's rule): a writer resuming
                // without them commits whatever size and digest the bytes have.
                sessionTotal: total, expected: expected,
                updated: fresh ? started : Self.modified(fd) ?? started))
        try saveMeta(writer)
        return writer
    }

    private struct Meta: Codable {
        var total: Int64
        var expected: String
        var started: Date
    }

    private func saveMeta(_ writer: Writer) throws {
        let progress = writer.current
        let data = try JSONEncoder().encode(Meta(total: progress.total, expected: progress.expected, started: writer.started))
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
            $0.updatedAt = Google_Protobuf_Timestamp(date: Self.date(size.st_mtim))
        }
    }

    /// The modification time of the open file `fd`: when it was last written (see `stampUpdated`).
    private static func modified(_ fd: Int32) -> Date? {
        var info = stat()
        return fstat(fd, &info) == 0 ? date(info.st_mtim) : nil
    }

    private static func date(_ time: timespec) -> Date {
        Date(timeIntervalSince1970: Double(time.tv_sec) + Double(time.tv_nsec) / 1e9)
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
