import FoundationEssentials
import Glibc
import Kernel
import Logging
import ServiceLifecycle

/// Removes what nothing holds any more (rules in `MetadataStore.collectGarbage`).
///
/// Lifecycle: as a plugin starting after the storage services (`recoverAndCollect`, before the
/// API accepts a client), the collector repairs what a crash may have left (layers no record
/// names, records whose layer was never made, blobs no namespace records) and runs one
/// collection; then, as a long-lived plugin (`run`), it runs again whenever a service asks
/// (`CollectionTrigger`) and when a lease expires. A run that took `d` is followed by a pause of `d × (1 − t) / t`
/// (t = `pauseThreshold`, `[gc] pause_threshold`, 5% by default: `19 d`), so that collection
/// takes at most that share of the daemon's time however often it is asked for (containerd's
/// scheduler has the same kind of bound, 2% by default). Each run also removes ingests that no
/// writer holds, no lease names, and nobody wrote to for `ingestExpiry` (`[gc]
/// ingest_expiry_seconds`, 24 hours by default, containerd's default lease lifetime): an
/// interrupted transfer that nobody resumes. An ingest opened under a lease goes as soon as no
/// lease holds it.
public actor GarbageCollector: Service, PluginInstance {
    let metadata: MetadataStore
    let plugins: PluginDirectory
    let trigger: CollectionTrigger
    let snapshots: SnapshotService
    let content: ContentService
    let logger: Logger
    let ingestExpiry: TimeInterval
    /// How many times a run's length the collector pauses after it.
    let pauseFactor: Double

    public init(
        metadata: MetadataStore, plugins: PluginDirectory, trigger: CollectionTrigger, snapshots: SnapshotService,
        content: ContentService, logger: Logger, ingestExpiry: TimeInterval = 24 * 3600, pauseThreshold: Double = 0.05
    ) {
        self.ingestExpiry = ingestExpiry
        pauseFactor = (1 - pauseThreshold) / pauseThreshold
        self.metadata = metadata
        self.plugins = plugins
        self.trigger = trigger
        self.snapshots = snapshots
        self.content = content
        self.logger = logger
    }

    /// The start-up repair and a first collection: clients must not see what a crash half-made.
    public func recoverAndCollect() async {
        await recover()
        await collect()
    }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.watchExpiries() }
            await cancelWhenGracefulShutdown { await self.serveRequests() }
            group.cancelAll()
        }
        trigger.finish()
    }

    /// Runs one collection now: expired leases go, then unreachable records, then the
    /// layers and blobs behind them.
    public func collect() async {
        let now = Date()
        do {
            let result = try await content.gate.withLock {
                let roots = self.plugins.startedInOrder.compactMap { ($0.1 as? any CollectionRoots)?.collectionRootQuery }
                let result = try await self.metadata.collectGarbage(now: now, rootQueries: roots)
                for digest in result.unrecordedDigests { try await self.content.deleteBlob(digest) }
                return result
            }
            trigger.replaceExpiry(result.nextExpiry, now: now)
            let expired = (try? await content.expireIngests(before: now.addingTimeInterval(-ingestExpiry), keep: result.leasedIngests)) ?? []
            if !expired.isEmpty { logger.info("expired abandoned ingests", metadata: ["refs": "\(expired)"]) }
            // As in containerd, an ingest made under a lease goes with the last lease holding it
            // (an import that failed half-way leaves none behind).
            let released = await content.abortReleasedIngests(result.releasedIngests)
            if !released.isEmpty { logger.info("removed ingests no lease holds", metadata: ["refs": "\(released)"]) }
            for (snapshotter, id) in result.snapshots {
                do { try await snapshots.removeLayer(snapshotter: snapshotter, id: id) } catch {
                    // The record is gone; the next start's cleanup removes the layer.
                    logger.warning("removing a collected layer failed", metadata: ["snapshotter": "\(snapshotter)", "id": "\(id)", "error": "\(error)"])
                }
            }
            guard !result.removedNothing else { return }
            logger.info(
                "garbage collected",
                metadata: [
                    "leases": "\(result.expiredLeases.count)", "snapshots": "\(result.snapshots.count)",
                    "content": "\(result.contents.count)", "blobs": "\(result.unrecordedDigests.count)",
                ])
        } catch {
            logger.error("garbage collection failed", metadata: ["error": "\(error)"])
        }
    }

    private func serveRequests() async {
        var answered = 0
        var lastDuration = Duration.zero
        for await request in trigger.requests {
            if request.sequence > answered {
                if lastDuration > .milliseconds(1) { try? await Task.sleep(for: lastDuration * pauseFactor) }
                answered = trigger.latest
                let start = ContinuousClock.now
                await collect()
                lastDuration = start.duration(to: .now)
            }
            request.done?.resume()
        }
    }

    /// Checks every second whether a lease has expired.
    private nonisolated func watchExpiries() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            if trigger.expiryPassed(Date()) { trigger.schedule() }
        }
    }

    /// Repairs what a crash can leave between the metadata store and the plugins' files.
    private func recover() async {
        for snapshotter in plugins.instances(of: .snapshotter).keys.sorted() {
            do {
                let report = try await snapshots.cleanup(snapshotter: snapshotter)
                if !report.isEmpty {
                    logger.notice(
                        "repaired snapshots after an unclean stop",
                        metadata: [
                            "snapshotter": "\(snapshotter)", "orphan_layers": "\(report.removedLayers.count)",
                            "dropped_records": "\(report.droppedKeys)",
                        ])
                }
                for key in report.brokenKeys {
                    logger.error("committed snapshot has no layer on disk", metadata: ["snapshotter": "\(snapshotter)", "key": "\(key)"])
                }
            } catch {
                logger.error("snapshot cleanup failed", metadata: ["snapshotter": "\(snapshotter)", "error": "\(error)"])
            }
        }
        do {
            let removed = try await content.removeUnrecordedBlobs()
            if !removed.isEmpty { logger.notice("removed blobs no namespace records", metadata: ["count": "\(removed.count)"]) }
        } catch {
            logger.error("content cleanup failed", metadata: ["error": "\(error)"])
        }
    }
}
