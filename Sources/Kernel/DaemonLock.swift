import FoundationEssentials
import Glibc

/// An exclusive lock on a root directory, held for the daemon's life, so that a second berthd
/// on the same root refuses to start instead of corrupting the first one's data.
/// flock(2) locks vanish with the process, so a crashed daemon never leaves a stale lock.
public final class DaemonLock: Sendable {
    private let fd: Int32
    public let path: String

    /// Takes the lock at `<root>/berthd.lock`; `.unavailable` naming the holder when taken.
    public init(root: String) throws(BerthError) {
        path = root + "/berthd.lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .internal("cannot open lock file \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmed ?? ""
            close(fd)
            throw .unavailable("another berthd (pid \(holder.isEmpty ? "unknown" : holder)) is already using root \(root); stop it or choose another --root")
        }
        ftruncate(fd, 0)
        let pid = "\(getpid())\n"
        _ = pid.withCString { write(fd, $0, strlen($0)) }
    }

    deinit { close(fd) }
}
