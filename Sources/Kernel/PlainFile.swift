import FoundationEssentials
import Glibc

/// A file read or written a buffer at a time through its descriptor, EINTR retried and short
/// writes continued. The daemon links FoundationEssentials only, which has no `FileHandle`.
/// Closed when the value goes away.
public final class PlainFile {
    public let path: String
    private let fd: Int32

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    deinit { close(fd) }

    /// Creates `path` for writing with `mode`; fails if something is there already.
    public static func create(_ path: String, mode: mode_t) throws(SyscallError) -> PlainFile {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw SyscallError("create \(path)", errno: errno) }
        return PlainFile(path: path, fd: fd)
    }

    /// Opens `path` for reading.
    public static func open(_ path: String) throws(SyscallError) -> PlainFile {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SyscallError("open \(path)", errno: errno) }
        return PlainFile(path: path, fd: fd)
    }

    /// Appends all of `data`.
    public func write(_ data: Data) throws(SyscallError) {
        if let failure = data.withUnsafeBytes({ writeAll(fd, $0) }) { throw SyscallError("write \(path)", errno: failure) }
    }

    /// The next at most `count` bytes; empty at the end of the file.
    public func read(upTo count: Int) throws(SyscallError) -> Data {
        var data = Data(count: count)
        let result: Int = data.withUnsafeMutableBytes { bytes in
            while true {
                let got = Glibc.read(fd, bytes.baseAddress, count)
                if got < 0, errno == EINTR { continue }
                return got
            }
        }
        guard result >= 0 else { throw SyscallError("read \(path)", errno: errno) }
        data.count = result
        return data
    }
}

/// Writes `text` to standard error in one write(2) where it fits (lines up to PIPE_BUF stay
/// whole between threads); errors are dropped, there is nowhere left to report them.
public func writeToStandardError(_ text: String) {
    var text = text
    _ = text.withUTF8 { writeAll(2, UnsafeRawBufferPointer($0)) }
}

/// Writes all of `bytes` to `fd`; the errno that stopped it, or nil.
private func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32? {
    var offset = 0
    while offset < bytes.count {
        let written = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
        if written < 0, errno == EINTR { continue }
        guard written > 0 else { return written < 0 ? errno : EIO }
        offset += written
    }
    return nil
}
