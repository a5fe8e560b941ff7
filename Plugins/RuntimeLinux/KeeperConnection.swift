import BerthPluginSDK
import Dispatch
import FoundationEssentials
import Glibc
import Synchronization

/// Requests of the keeper's control protocol (keeper_protocol.h section 3, enum keeper_msg_type).
enum KeeperRequest: UInt32, Sendable {
    case start = 1
    case kill, exec, resize, closeStdin, pause, resume, state, pids, subscribe, ackExit, delete
}

/// Events the keeper sends to a subscribed connection.
enum KeeperEvent: Sendable {
    /// A process ended: its exec id ("" for the init), pid, status and "SEC.NSEC" time.
    case exit(execID: String, pid: UInt32, status: UInt32, exitedAt: String)
    case outOfMemory
}

/// One connection to a keeper's DIR/control.sock (AF_UNIX, SOCK_SEQPACKET): requests are
/// sent with a tag and awaited without holding a thread; the runtime's `KeeperPoller` thread
/// reads replies and events, so no blocking read runs on Swift's cooperative pool.
///
/// Lifecycle: `open` connects and starts the reader; the connection ends when the keeper
/// closes it (after DELETE, or when it dies) or on `close()`. Then every waiting request fails
/// with UNAVAILABLE and `onClose` runs once. A request waits at most `timeout` seconds: the
/// keeper bounds its own work (runc commands 60 s), so a longer silence means it is stuck.
final class KeeperConnection: Sendable {
    private struct Pending {
        var continuation: CheckedContinuation<[String], any Error>
        var deadline: UInt64
        var request: KeeperRequest
    }

    private struct State {
        var nextTag: UInt32 = 1
        var pending = [UInt32: Pending]()
        var closed = false
    }

    private static let replyOK: UInt32 = 100
    private static let replyError: UInt32 = 101
    private static let eventExit: UInt32 = 200
    private static let eventOOM: UInt32 = 201
    /// Largest reply or event (KEEPER_MAX_MESSAGE), and largest request (KEEPER_MAX_REQUEST).
    static let maximumMessage = 65536
    private static let maximumRequest = 4096

    /// The socket; the poller reads it, and closes it through `finish()`.
    let fd: Int32
    private let container: String
    private let timeout: UInt64
    private let state = Mutex(State())
    private let onEvent: @Sendable (KeeperEvent) -> Void
    private let onClose: @Sendable () -> Void

    private init(
        fd: Int32, container: String, timeout: UInt64,
        onEvent: @escaping @Sendable (KeeperEvent) -> Void, onClose: @escaping @Sendable () -> Void
    ) {
        self.fd = fd
        self.container = container
        self.timeout = timeout
        self.onEvent = onEvent
        self.onClose = onClose
    }

    /// Connects to `socketPath` and starts reading; throws UNAVAILABLE when nobody listens.
    static func open(
        socketPath: String, container: String, poller: KeeperPoller, timeoutSeconds: UInt64 = 90,
        onEvent: @escaping @Sendable (KeeperEvent) -> Void, onClose: @escaping @Sendable () -> Void = {}
    ) throws -> KeeperConnection {
        let fd = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw PluginError(.internal, "container \(container): socket: \(String(cString: strerror(errno)))") }
        // Through /proc/self/fd/N of the socket's folder: the full path may not fit the 108
        // bytes of a sockaddr_un when the daemon's state folder is deep.
        let folder = Glibc.open(String(socketPath[..<(socketPath.lastIndex(of: "/") ?? socketPath.endIndex)]), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard folder >= 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw PluginError(.unavailable, "container \(container): open the folder of \(socketPath): \(reason)")
        }
        defer { Glibc.close(folder) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array("/proc/self/fd/\(folder)/\(socketPath.split(separator: "/").last ?? "")".utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw PluginError(.unavailable, "container \(container): connect \(socketPath): \(reason)")
        }
        let connection = KeeperConnection(
            fd: fd, container: container, timeout: timeoutSeconds * 1_000_000_000, onEvent: onEvent, onClose: onClose)
        do {
            try poller.add(connection)
        } catch {
            Glibc.close(fd)
            throw error
        }
        return connection
    }

    /// Sends `request` with `fields` and waits for its reply's fields; an ERROR reply becomes
    /// a PluginError with the keeper's code (containerd errdefs names) and message.
    func request(_ request: KeeperRequest, _ fields: [String] = []) async throws -> [String] {
        var packet = [UInt8](repeating: 0, count: 8)
        for field in fields { packet += Array(field.utf8) + [0] }
        guard packet.count <= Self.maximumRequest else {
            throw PluginError(.invalidArgument, "container \(container): request \(request) is longer than \(Self.maximumRequest) bytes")
        }
        return try await withCheckedThrowingContinuation { continuation in
            let failure: PluginError? = state.withLock { state in
                guard !state.closed else { return PluginError(.unavailable, "container \(container): the keeper connection is closed") }
                let tag = state.nextTag
                state.nextTag = state.nextTag == UInt32.max ? 1 : state.nextTag + 1
                withUnsafeBytes(of: request.rawValue.littleEndian) { packet.replaceSubrange(0..<4, with: $0) }
                withUnsafeBytes(of: tag.littleEndian) { packet.replaceSubrange(4..<8, with: $0) }
                // Sent under the lock: `finish()` closes the fd under it too, so it is never reused here.
                let sent = send(fd, packet, packet.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
                guard sent == packet.count else {
                    return PluginError(.unavailable, "container \(container): send \(request) to the keeper: \(String(cString: strerror(errno)))")
                }
                let deadline = DispatchTime.now().uptimeNanoseconds + timeout
                state.pending[tag] = Pending(continuation: continuation, deadline: deadline, request: request)
                return nil
            }
            if let failure { continuation.resume(throwing: failure) }
        }
    }

    /// True once the poller has seen the end of the connection.
    var isClosed: Bool { state.withLock { $0.closed } }

    /// Ends the connection; shutdown(2) wakes the poller at once.
    func close() {
        // Under the lock: once `finish()` closed the fd, its number may belong to another file.
        state.withLock { state in
            if !state.closed { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    /// Reads every packet waiting (the poller saw the socket readable); false once the keeper
    /// closed the connection or it failed, after which the poller calls `finish()`.
    func readAvailable(into buffer: inout [UInt8]) -> Bool {
        while true {
            let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if count > 0 {
                handle(Array(buffer[0..<count]))
                continue
            }
            if count < 0, errno == EINTR { continue }
            return count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
        }
    }

    /// Closes the socket, fails the requests still waiting with UNAVAILABLE, runs `onClose`.
    func finish() {
        let waiting = state.withLock { state in
            state.closed = true
            Glibc.close(fd)
            defer { state.pending.removeAll() }
            return Array(state.pending.values)
        }
        for pending in waiting {
            pending.continuation.resume(
                throwing: PluginError(.unavailable, "container \(container): the keeper closed the connection before answering \(pending.request)"))
        }
        onClose()
    }

    private func handle(_ packet: [UInt8]) {
        guard packet.count >= 8 else { return }
        let type = packet[0..<4].withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
        let tag = packet[4..<8].withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
        var fields = packet[8...].split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        if fields.last == "" { fields.removeLast() }
        switch type {
        case Self.eventExit where fields.count >= 4:
            onEvent(.exit(execID: fields[0], pid: UInt32(fields[1]) ?? 0, status: UInt32(fields[2]) ?? 0, exitedAt: fields[3]))
        case Self.eventOOM:
            onEvent(.outOfMemory)
        case Self.replyOK, Self.replyError:
            guard let pending = state.withLock({ $0.pending.removeValue(forKey: tag) }) else { return }
            if type == Self.replyOK {
                pending.continuation.resume(returning: fields)
            } else {
                pending.continuation.resume(
                    throwing: KeeperErrors.error(code: fields.first ?? "", message: fields.dropFirst().first ?? "", container: container))
            }
        default:
            break
        }
    }

    /// Fails the requests whose deadline passed with DEADLINE_EXCEEDED.
    func expireRequests() {
        let now = DispatchTime.now().uptimeNanoseconds
        let expired = state.withLock { state in
            let tags = state.pending.filter { $0.value.deadline <= now }.map(\.key)
            return tags.compactMap { state.pending.removeValue(forKey: $0) }
        }
        for pending in expired {
            pending.continuation.resume(
                throwing: PluginError(.deadlineExceeded, "container \(container): the keeper did not answer \(pending.request) in \(timeout / 1_000_000_000) s")
            )
        }
    }
}

/// The keeper's error codes (containerd errdefs names) as the SDK's gRPC codes.
enum KeeperErrors {
    static func code(_ name: String) -> PluginError.Code {
        switch name {
        case "invalid_argument": .invalidArgument
        case "not_found": .notFound
        case "already_exists": .alreadyExists
        case "failed_precondition": .failedPrecondition
        case "unavailable": .unavailable
        default: .internal
        }
    }

    static func error(code: String, message: String, container: String) -> PluginError {
        PluginError(self.code(code), "container \(container): \(message)")
    }

    /// The code for a create that failed with the keeper's line "STEP: PATH: REASON".
    static func createCode(_ line: String) -> PluginError.Code {
        if line.hasPrefix("plan:") { return .invalidArgument }
        if line.contains("executable file not found") { return .notFound }
        // The keeper spells errno as Go does ("no such file or directory"), as runc's errors read.
        if line.hasSuffix("no such file or directory") { return .notFound }
        if line.hasSuffix("permission denied") || line.hasSuffix("operation not permitted") { return .permissionDenied }
        return .internal
    }
}
