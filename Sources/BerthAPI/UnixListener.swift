import FoundationEssentials
import Glibc
import Kernel

/// Makes the listening unix socket before gRPC takes it over, so that its mode is 0660 from
/// the moment it exists (no window in which a wider umask applies). A folder berthd creates for
/// it is 0711; a folder that already exists keeps its owner's mode (`--address /tmp/x.sock` must
/// not turn /tmp from 1777 into 0711).
enum UnixListener {
    /// Binds and listens on `path`, replacing a stale socket file left by a dead daemon.
    /// The caller must hold the daemon lock, so no live daemon owns that file.
    static func listen(at path: String) throws -> Int32 {
        let folder = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        if !FileManager.default.fileExists(atPath: folder) {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            guard chmod(folder, 0o711) == 0 else { throw SyscallError("chmod \(folder)", errno: errno) }
        }
        try removeStale(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SyscallError("socket", errno: errno) }
        do {
            try bind(fd, path)
            guard chmod(path, 0o660) == 0 else { throw SyscallError("chmod \(path)", errno: errno) }
            guard Glibc.listen(fd, 128) == 0 else { throw SyscallError("listen \(path)", errno: errno) }
            return fd
        } catch {
            close(fd)
            throw error
        }
    }

    private static func bind(_ fd: Int32, _ path: String) throws {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw BerthError.invalidArgument("socket path \(path) is longer than \(MemoryLayout.size(ofValue: address.sun_path) - 1) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes + [0]) }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else { throw SyscallError("bind \(path)", errno: errno) }
    }

    private static func removeStale(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard (info.st_mode & S_IFMT) == S_IFSOCK else {
            throw BerthError.failedPrecondition("socket path \(path) exists and is not a socket; refusing to replace it")
        }
        unlink(path)
    }
}
