// berth-bench: drives the snapshot API of any containerd-compatible daemon over ONE gRPC
// connection, so that Benchmarks/storage.py can measure the daemon's CPU per operation without
// the cost of a new connection per `ctr` process. Prints one line of JSON.
//
//   berth-bench ADDRESS sequential OPS        OPS x (prepare, commit, stat), one at a time
//   berth-bench ADDRESS parallel COUNT CALLERS  COUNT prepares from CALLERS concurrent callers
//
// Everything happens in namespace "bench-<pid>" of the overlayfs snapshotter (containerd
// requires the snapshotter to be named, and an :authority without the socket path, as ctr sends).
import BerthAPI
import BerthProto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import NIOCore

typealias Snapshots = Containerd_Services_Snapshots_V1_Snapshots.Client<HTTP2ClientTransport.Posix>

let arguments = CommandLine.arguments
let usage = "usage: berth-bench ADDRESS sequential OPS | berth-bench ADDRESS parallel COUNT CALLERS\n"
guard arguments.count >= 4, let count = Int(arguments[3]) else {
    FileHandle.standardError.write(Data(usage.utf8))
    exit(2)
}
let callers = arguments.count == 5 ? Int(arguments[4]) ?? 0 : 0
var metadata = Metadata()
metadata.addString("bench-\(getpid())", forKey: "containerd-namespace")
let namespace = metadata
let snapshotter = "overlayfs"
/// As ctr does: without it containerd's collector may take an active snapshot between its
/// prepare and its commit.
let root = ["containerd.io/gc.root": "bench"]

/// Runs the chosen workload and returns the operations done.
func workload(_ snapshots: Snapshots) async throws -> Int {
    switch arguments[2] {
    case "sequential":
        for i in 0..<count {
            _ = try await snapshots.prepare(
                .with {
                    $0.key = "k\(i)"
                    $0.snapshotter = snapshotter
                    $0.labels = root
                }, metadata: namespace)
            _ = try await snapshots.commit(
                .with {
                    $0.key = "k\(i)"
                    $0.name = "c\(i)"
                    $0.snapshotter = snapshotter
                    $0.labels = root
                }, metadata: namespace)
            _ = try await snapshots.stat(
                .with {
                    $0.key = "c\(i)"
                    $0.snapshotter = snapshotter
                }, metadata: namespace)
        }
        return count * 3
    case "parallel" where callers > 0:
        try await withThrowingTaskGroup { group in
            for caller in 0..<callers {
                group.addTask {
                    for i in stride(from: caller, to: count, by: callers) {
                        _ = try await snapshots.prepare(
                            .with {
                                $0.key = "p\(i)"
                                $0.snapshotter = snapshotter
                                $0.labels = root
                            }, metadata: namespace)
                    }
                }
            }
            try await group.waitForAll()
        }
        return count
    default:
        FileHandle.standardError.write(Data(usage.utf8))
        exit(2)
    }
}

do {
    // containerd pings after the DATA it receives; answered below swift-nio-http2, which
    // would otherwise close the connection after 200 of them (see PingResponder).
    let client = GRPCClient(
        transport: try .http2NIOPosix(
            target: .unixDomainSocket(path: arguments[1], authority: "localhost"), transportSecurity: .plaintext,
            config: .defaults {
                $0.channelDebuggingCallbacks.onCreateTCPConnection = { channel in
                    channel.eventLoop.submit { try channel.pipeline.syncOperations.addHandler(PingResponder(side: .client), position: .first) }
                }
            }))
    try await withThrowingDiscardingTaskGroup { group in
        group.addTask { try await client.runConnections() }
        defer { client.beginGracefulShutdown() }
        let snapshots = Snapshots(wrapping: client)
        // A warm-up call opens the connection outside the timed part.
        _ = try? await snapshots.stat(
            .with {
                $0.key = "warm-up"
                $0.snapshotter = snapshotter
            }, metadata: namespace)
        let start = ContinuousClock.now
        let operations = try await workload(snapshots)
        let elapsed = start.duration(to: .now)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print("{\"operations\": \(operations), \"seconds\": \(seconds)}")
    }
} catch {
    FileHandle.standardError.write(Data("berth-bench: \(error)\n".utf8))
    exit(1)
}
