import BerthPluginSDK
import BerthProto
import Foundation
import SwiftProtobuf
import Synchronization

/// The kernel's Supervisor service as a test plays it: records every Exited and
/// OutOfMemoryKilled call a runtime makes through the host table, and answers OK, or
/// UNAVAILABLE for as many calls as `failNext` asked (a daemon still starting).
public final class SupervisorRecorder: Sendable {
    private struct State {
        var exits = [Berth_Runtime_V1_Exit]()
        var refused = [Berth_Runtime_V1_Exit]()
        var outOfMemory = [Berth_Runtime_V1_OutOfMemory]()
        var failuresLeft = 0
    }

    private let state = Mutex(State())

    /// A supervisor that has recorded nothing and answers OK.
    public init() {}

    /// Exits answered OK, in order.
    public var exits: [Berth_Runtime_V1_Exit] { state.withLock { $0.exits } }
    /// Exits answered UNAVAILABLE, in order.
    public var refused: [Berth_Runtime_V1_Exit] { state.withLock { $0.refused } }
    /// OOM kills reported, in order.
    public var outOfMemory: [Berth_Runtime_V1_OutOfMemory] { state.withLock { $0.outOfMemory } }

    /// The next `count` calls answer UNAVAILABLE.
    public func failNext(_ count: Int) {
        state.withLock { $0.failuresLeft = count }
    }

    /// The host-call handler to give `PluginUnderTest.start`.
    public var handler: HostCallHandler {
        { [self] target, method, request in answer(target: target, method: method, request: request) }
    }

    private func answer(target: String, method: String, request: [UInt8]) -> (code: Int32, reply: [UInt8]) {
        guard target == "io.containerd.service.v1.tasks-service" else {
            return (12, Array("the test host has no plugin \(target)".utf8))
        }
        let empty: [UInt8] = (try? Google_Protobuf_Empty().serializedBytes()) ?? []
        switch method {
        case BerthContracts.SupervisorContract.exited.path:
            guard let exit = try? Berth_Runtime_V1_Exit(serializedBytes: request) else { return (3, Array("not an Exit".utf8)) }
            let refuse = state.withLock { state in
                guard state.failuresLeft > 0 else {
                    state.exits.append(exit)
                    return false
                }
                state.failuresLeft -= 1
                state.refused.append(exit)
                return true
            }
            return refuse ? (14, Array("the supervisor is not started yet".utf8)) : (0, empty)
        case BerthContracts.SupervisorContract.outOfMemoryKilled.path:
            guard let oom = try? Berth_Runtime_V1_OutOfMemory(serializedBytes: request) else { return (3, Array("not an OutOfMemory".utf8)) }
            state.withLock { $0.outOfMemory.append(oom) }
            return (0, empty)
        default:
            return (12, Array("the supervisor has no method \(method)".utf8))
        }
    }

    /// Waits up to `seconds` for the recorded exit of (id, execID).
    public func exit(of id: String, execID: String = "", within seconds: Double = 10) async throws -> Berth_Runtime_V1_Exit {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if let exit = exits.first(where: { $0.id == id && $0.execID == execID }) { return exit }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        throw ConformanceFailure(description: "no Exited report for \(id) exec \(execID.debugDescription) within \(seconds) s")
    }
}

/// Reading FIFOs and waiting for processes without holding a thread of Swift's pool.
public enum Blocking {
    /// Runs `body` on a thread of its own and returns its result.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
        }
    }

    /// Everything from the FIFO `fd` until end of file (the writer closed it), within `seconds`.
    public static func readToEnd(_ fd: Int32, within seconds: Double = 10) async throws -> String {
        try await run {
            var data = [UInt8]()
            var buffer = [UInt8](repeating: 0, count: 65536)
            let end = Date().addingTimeInterval(seconds)
            while Date() < end {
                var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&entry, 1, 100) > 0 else { continue }
                let count = read(fd, &buffer, buffer.count)
                if count == 0 { return String(decoding: data, as: UTF8.self) }
                if count > 0 { data += buffer[0..<count] }
            }
            throw ConformanceFailure(
                description: "no end of file on the FIFO within \(seconds) s (read \(String(decoding: data, as: UTF8.self).debugDescription))")
        }
    }
}

/// Whether `pid` runs (a zombie counts as gone).
func processRuns(_ pid: UInt32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let end = stat.lastIndex(of: ")") else { return false }
    return stat[stat.index(after: end)...].split(separator: " ").first != "Z"
}

/// Waits up to `seconds` for `pid` to end.
func waitGone(_ pid: UInt32, within seconds: Double = 5) async throws -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
        if !processRuns(pid) { return true }
        try await Task.sleep(nanoseconds: 20_000_000)
    }
    return false
}

/// A root filesystem for the cases: a statically linked busybox with its applets as links.
public enum BusyboxRootfs {
    /// Makes `directory` a busybox rootfs from `busybox` (a static binary); throws if missing.
    public static func make(at directory: String, busybox: String = "/bin/busybox") throws {
        let manager = FileManager.default
        guard manager.isExecutableFile(atPath: busybox) else {
            throw ConformanceFailure(description: "\(busybox) is missing: install busybox-static")
        }
        for folder in ["bin", "proc", "sys", "dev", "tmp", "etc", "root"] {
            try manager.createDirectory(atPath: directory + "/" + folder, withIntermediateDirectories: true)
        }
        try? manager.removeItem(atPath: directory + "/bin/busybox")
        try manager.copyItem(atPath: busybox, toPath: directory + "/bin/busybox")
        for applet in [
            "sh", "echo", "sleep", "cat", "true", "false", "ls", "hostname", "id", "wc", "head", "tty", "dd", "tr", "mkdir",
            "grep", "stat", "readlink", "stty",
        ] {
            try? manager.createSymbolicLink(atPath: directory + "/bin/" + applet, withDestinationPath: "busybox")
        }
    }
}
