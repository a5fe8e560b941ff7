import BerthPluginSDK
import Dispatch
import FoundationEssentials
import Glibc
import Synchronization

/// One thread that reads every keeper connection of a runtime instance: poll(2) over their
/// sockets and a wake-up socket, so a thousand containers cost one thread, not a thousand,
/// and no blocking read runs on Swift's cooperative pool. Replies resume their waiting
/// requests and events reach their handlers on this thread, so handlers must not block.
///
/// Lifecycle: the thread starts with the first connection and ends after `stop()` once every
/// connection has closed. Pending requests are checked against their deadlines every second.
final class KeeperPoller: Sendable {
    private struct State {
        var connections = [Int32: KeeperConnection]()
        var running = false
        var stopped = false
    }

    private let state = Mutex(State())
    /// [read end, write end] of the wake-up socket pair.
    private let wake: [Int32]

    init() {
        var pair: [Int32] = [-1, -1]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        if socketpair(AF_UNIX, type, 0, &pair) != 0 { pair = [-1, -1] }
        wake = pair
    }

    /// Reads `connection` from now on; refused once stopped.
    func add(_ connection: KeeperConnection) throws {
        let start = try state.withLock { state in
            guard !state.stopped, wake[0] >= 0 else { throw PluginError(.unavailable, "the keeper connections are shut down") }
            state.connections[connection.fd] = connection
            defer { state.running = true }
            return !state.running
        }
        if start {
            do {
                try startDetachedThread(name: "berth-keepers") { self.run() }
            } catch {
                state.withLock { $0.running = false }
                throw error
            }
        } else {
            wakeUp()
        }
    }

    /// Ends the thread once the connections (closed by the caller) are gone.
    func stop() {
        state.withLock { $0.stopped = true }
        wakeUp()
    }

    private func wakeUp() {
        var byte: UInt8 = 1
        _ = send(wake[1], &byte, 1, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
    }

    private func run() {
        var buffer = [UInt8](repeating: 0, count: KeeperConnection.maximumMessage)
        var lastCheck = DispatchTime.now().uptimeNanoseconds
        while true {
            let (connections, done) = state.withLock { state in
                (Array(state.connections.values), state.stopped && state.connections.isEmpty)
            }
            if done { break }
            var entries = [pollfd(fd: wake[0], events: Int16(POLLIN), revents: 0)]
            entries += connections.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&entries, nfds_t(entries.count), 1000)
            if ready > 0, entries[0].revents != 0 {
                while recv(wake[0], &buffer, buffer.count, Int32(MSG_DONTWAIT)) > 0 {}
            }
            for (index, connection) in connections.enumerated() where ready > 0 && entries[index + 1].revents != 0 {
                guard !connection.readAvailable(into: &buffer) else { continue }
                _ = state.withLock { $0.connections.removeValue(forKey: connection.fd) }
                connection.finish()
            }
            let now = DispatchTime.now().uptimeNanoseconds
            if now - lastCheck >= 1_000_000_000 {
                lastCheck = now
                for connection in connections { connection.expireRequests() }
            }
        }
        state.withLock { $0.running = false }
    }
}
