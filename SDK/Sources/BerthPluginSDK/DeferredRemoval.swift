import Dispatch
import FoundationEssentials
import Glibc
import Synchronization

/// Removal that answers in the time of a rename: the file or folder is moved into a trash
/// folder on the same filesystem, and one background thread deletes it from there. Freeing a
/// 1 GiB file's blocks took ~50 ms on ext4 here, and a layer of 20,000 files much longer; a
/// client waiting for `rm` need not wait for that.
///
/// Crash-safe: the rename is atomic, so the object is either still in place or in the trash,
/// and whatever a stop left in the trash is deleted when the next instance is made.
public final class DeferredRemoval: Sendable {
    public let trash: String
    private let queue = DispatchQueue(label: "berth.plugin.removal", qos: .utility)
    /// Trash names are `<start>-<n>`: unique within this instance and across restarts.
    private let start = UInt64(Date().timeIntervalSince1970 * 1e9)
    private let counter = Atomic<UInt64>(0)

    /// Removal through `trash`, which `open` makes; nothing happens before that.
    public init(trash: String) {
        self.trash = trash
    }

    /// Makes the trash folder (mode 0700) if needed and starts deleting what an earlier
    /// instance left there. Call it from the plugin's `start`.
    public func open() throws {
        guard mkdir(trash, 0o700) == 0 || errno == EEXIST else {
            throw PluginError(.internal, "cannot create \(trash): \(String(cString: strerror(errno)))")
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: trash)) ?? [] {
            schedule(trash + "/" + name)
        }
    }

    /// Takes `path` away now and deletes it later; false when there was nothing at `path`.
    /// On another filesystem than the trash (no rename possible) it is deleted before returning.
    @discardableResult
    public func remove(_ path: String) throws -> Bool {
        let target = "\(trash)/\(start)-\(counter.add(1, ordering: .relaxed).newValue)"
        if rename(path, target) == 0 {
            schedule(target)
            return true
        }
        switch errno {
        case ENOENT: return false
        case EXDEV:
            try FileManager.default.removeItem(atPath: path)
            return true
        default: throw PluginError(.internal, "cannot remove \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Returns once everything taken away so far is deleted.
    public func waitUntilEmpty() {
        queue.sync {}
    }

    private func schedule(_ path: String) {
        queue.async { try? FileManager.default.removeItem(atPath: path) }
    }
}
