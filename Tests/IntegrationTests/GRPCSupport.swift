import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2

/// Runs `body` with a gRPC client connected to `daemon`'s socket, closing it afterwards.
func withClient(_ daemon: Daemon, _ body: (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Void) async throws {
    let client = GRPCClient(transport: try .http2NIOPosix(target: .unixDomainSocket(path: daemon.socket), transportSecurity: .plaintext))
    try await withThrowingDiscardingTaskGroup { group in
        group.addTask { try await client.runConnections() }
        defer { client.beginGracefulShutdown() }
        try await body(client)
    }
}

/// The status code and message `body` failed with, or nil when it succeeded (or failed with
/// something that is not an RPC error).
func rpcFailure(_ body: () async throws -> Void) async -> (RPCError.Code, String)? {
    do {
        try await body()
        return nil
    } catch let error as RPCError {
        return (error.code, error.message)
    } catch {
        return nil
    }
}
