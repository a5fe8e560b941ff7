import BerthProto
import FoundationEssentials
import Glibc
import Kernel
import Logging
import ServiceLifecycle
import SwiftProtobuf

/// Unpacking ahead of Diff.Apply: a layer blob is unpacked while the client still sends the
/// next blobs, and its Apply then only moves the result into place.
///
/// Terms: when a blob is committed to content (the `/content/create` event, in the daemon) and
/// its first bytes are a tar (`ustar` at offset 257) or gzip (1f 8b), a worker asks the differ
/// plugin to *stage* it: unpack it into a folder of the plugin's, as an overlay upper directory
/// whose lower layers are not known yet. `take` hands a finished staging to Diff.Apply (waiting
/// for one still under way), which asks the plugin to *adopt* it into the snapshot's directory;
/// a staging that cannot be used (failed, not adoptable, adoption refused) leaves the ordinary
/// Apply to do the work and to report any error. The file work is the plugin's; this actor
/// only decides what to stage, when, and for how long to keep it.
///
/// Bounds: at most `Limits.layers` stagings and `Limits.bytes` of blob (or, once known,
/// uncompressed) bytes are held at once; blobs beyond either are not staged. `Limits.workers`
/// stagings run at a time. A staging nobody took within `Limits.ttl` is discarded, as is one
/// whose blob a namespace deletes. Leftovers of a stop are the plugin's to sweep at start.
///
/// Worked example: `ctr images import` commits layer blobs L1..L7, then unpacks L1..L7 one
/// after another; L1 is staged while L2.. arrive, Apply(L1) adopts L1's staging with a rename,
/// Apply(L2) waits for L2's staging to finish, and so on.
public actor LayerStaging: Service, PluginInstance {
    /// How much it may hold and do at once.
    public struct Limits: Sendable {
        public var layers: Int
        public var bytes: Int64
        public var ttl: Duration
        public var workers: Int

        public init(layers: Int = 16, bytes: Int64 = 4 << 30, ttl: Duration = .seconds(600), workers: Int = 1) {
            self.layers = layers
            self.bytes = bytes
            self.ttl = ttl
            self.workers = workers
        }
    }

    /// A staging that finished and may be adopted.
    public struct Staged: Sendable {
        public let name: String
        public let gzip: Bool
        public let reply: Berth_Diff_V1_StageLayerReply
    }

    private enum State {
        case queued
        case running
        case staged(Staged)
        /// Not a layer, failed, or not adoptable: Apply does the work.
        case unusable
    }

    private struct Entry {
        let name: String
        let namespace: String
        var bytes: Int64
        var state: State
        var since: ContinuousClock.Instant
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    let plugins: PluginDirectory
    let events: EventBus
    let limits: Limits
    let logger: Logger
    private let resolveContent: @Sendable () throws -> ContentService
    private var entries = [String: Entry]()
    private var counter = 0
    private let work: AsyncStream<String>
    private let workInput: AsyncStream<String>.Continuation

    public init(
        plugins: PluginDirectory, events: EventBus, limits: Limits, logger: Logger,
        content: @escaping @Sendable () throws -> ContentService
    ) {
        self.plugins = plugins
        self.events = events
        self.limits = limits
        self.logger = logger
        self.resolveContent = content
        // Bounded by the table: a digest is queued only when it was admitted to `entries`.
        (work, workInput) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .unbounded)
    }

    /// Stagings held now (queued, running, finished or unusable), for tests and introspection.
    public var count: Int { entries.count }
    /// Bytes the held stagings count against `Limits.bytes`.
    public var heldBytes: Int64 { entries.values.reduce(0) { $0 + $1.bytes } }

    public func run() async throws {
        let stream = await events.subscribe { $0.topic == "/content/create" || $0.topic == "/content/delete" }
        await withDiscardingTaskGroup { group in
            for _ in 0..<max(1, limits.workers) {
                group.addTask { for await digest in self.work { await self.stage(digest) } }
            }
            group.addTask { await self.expireUntilCancelled() }
            await cancelWhenGracefulShutdown {
                do {
                    for try await envelope in stream { await self.handle(envelope) }
                } catch {
                    self.logger.warning("unpacking ahead stopped: \(error)")
                }
            }
            self.workInput.finish()
            group.cancelAll()
        }
        // An Apply still waiting does the work itself.
        for entry in entries.values { entry.waiters.forEach { $0.resume() } }
        entries.removeAll()
    }

    /// The finished staging of `digest`, removed from the table (the caller adopts or discards
    /// it); waits for one queued or under way; nil when there is none or it is unusable.
    public func take(_ digest: String) async -> Staged? {
        while let entry = entries[digest] {
            switch entry.state {
            case .queued, .running:
                await withCheckedContinuation { entries[digest]?.waiters.append($0) }
            case .staged(let staged):
                entries[digest] = nil
                return staged
            case .unusable:
                entries[digest] = nil
                return nil
            }
        }
        return nil
    }

    /// Asks the differ to remove the staging `name` (taken and not adopted, expired, deleted).
    public func discard(_ name: String) async {
        do {
            _ = try await differ()?.call(BerthContracts.Differ.discard, Berth_Diff_V1_DiscardLayerRequest.with { $0.name = name })
        } catch {
            logger.warning("could not discard a layer unpacked ahead: \(error)", metadata: ["staging": "\(name)"])
        }
    }

    // MARK: - Events

    private func handle(_ envelope: EventEnvelope) async {
        switch envelope.topic {
        case "/content/create":
            guard let event = try? Containerd_Events_ContentCreate(serializedBytes: envelope.event.value) else { return }
            admit(event.digest, size: event.size, namespace: envelope.namespace)
        case "/content/delete":
            guard let event = try? Containerd_Events_ContentDelete(serializedBytes: envelope.event.value) else { return }
            await drop(event.digest)
        default:
            break
        }
    }

    /// Queues `digest` for staging when the bounds allow it.
    private func admit(_ digest: String, size: Int64, namespace: String) {
        // Smaller than one tar header and its end blocks: not a layer worth a worker.
        guard size >= 1024, entries[digest] == nil, entries.count < limits.layers, heldBytes + size <= limits.bytes else { return }
        counter += 1
        let name = "layer-\(counter)-\(digest.split(separator: ":").last.map { String($0.prefix(16)) } ?? "")"
        entries[digest] = Entry(name: name, namespace: namespace, bytes: size, state: .queued, since: .now)
        workInput.yield(digest)
    }

    /// Forgets `digest`'s staging and removes its tree; one under way is removed when it ends.
    private func drop(_ digest: String) async {
        guard let entry = entries.removeValue(forKey: digest) else { return }
        entry.waiters.forEach { $0.resume() }
        if case .staged(let staged) = entry.state { await discard(staged.name) }
    }

    // MARK: - Staging

    private func stage(_ digest: String) async {
        guard var entry = entries[digest], case .queued = entry.state else { return }
        entry.state = .running
        entries[digest] = entry
        let result = await unpack(digest, entry)
        guard var current = entries[digest], current.name == entry.name else {
            // Dropped (deleted, expired) while it ran.
            if case .staged(let staged) = result { await discard(staged.name) }
            return
        }
        guard case .staged = result else {
            // Not a layer, failed or not adoptable: Apply does the work (and words any error).
            entries[digest] = nil
            current.waiters.forEach { $0.resume() }
            return
        }
        current.state = result
        current.since = .now
        if case .staged(let staged) = result { current.bytes = max(current.bytes, staged.reply.uncompressedSize) }
        let waiters = current.waiters
        current.waiters = []
        entries[digest] = current
        waiters.forEach { $0.resume() }
    }

    /// Sniffs the blob and has the differ stage it.
    private func unpack(_ digest: String, _ entry: Entry) async -> State {
        // What the byte bound leaves this staging, beyond the others held.
        let budget = max(1, limits.bytes - (heldBytes - entry.bytes))
        do {
            guard let differ = differ() else { return .unusable }
            let content = try resolveContent()
            let head = try await content.read(namespace: entry.namespace, digest: digest, offset: 0, size: 512)
            let gzip: Bool
            if head.count >= 2, head[head.startIndex] == 0x1f, head[head.startIndex + 1] == 0x8b {
                gzip = true
            } else if head.count == 512, head[head.startIndex + 257..<head.startIndex + 262].elementsEqual("ustar".utf8) {
                gzip = false
            } else {
                return .unusable
            }
            let blob = try await content.open(namespace: entry.namespace, digest: digest)
            guard let fd = try await blob.descriptor() else { return .unusable }
            defer { close(fd) }
            let reply = try await differ.call(
                BerthContracts.Differ.stage,
                Berth_Diff_V1_StageLayerRequest.with {
                    $0.path = "/proc/self/fd/\(fd)"
                    $0.mediaType = gzip ? "application/vnd.oci.image.layer.v1.tar+gzip" : "application/vnd.oci.image.layer.v1.tar"
                    $0.name = entry.name
                    $0.maxUncompressedBytes = budget
                })
            guard reply.adoptable else {
                logger.debug("layer unpacked ahead is not adoptable: \(reply.reason)", metadata: ["digest": "\(digest)"])
                return .unusable
            }
            return .staged(Staged(name: entry.name, gzip: gzip, reply: reply))
        } catch {
            // Rare (a blob that looks like a layer and is not one, or one past the byte bound): worth a line.
            logger.info("unpacking ahead failed, Apply will unpack: \(error)", metadata: ["digest": "\(digest)"])
            return .unusable
        }
    }

    private func differ() -> (any PluginInstance)? {
        plugins.instance(of: .differ)
    }

    // MARK: - Expiry

    private func expireUntilCancelled() async {
        let period = min(limits.ttl / 4, .seconds(30))
        while !Task.isCancelled {
            try? await Task.sleep(for: max(period, .milliseconds(100)))
            await expire()
        }
    }

    /// Discards finished stagings older than the TTL, and forgets unusable ones as old.
    func expire() async {
        let now = ContinuousClock.now
        for (digest, entry) in entries where now - entry.since >= limits.ttl {
            switch entry.state {
            case .queued, .running: continue
            case .staged, .unusable: await drop(digest)
            }
        }
    }
}
