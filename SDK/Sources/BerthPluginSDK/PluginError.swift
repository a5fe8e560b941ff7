/// An error a plugin returns to the host; codes are gRPC's, so clients see them unchanged.
public struct PluginError: Error, Sendable, CustomStringConvertible {
    /// gRPC status codes, by number.
    public enum Code: Int32, Sendable {
        case cancelled = 1
        case unknown, invalidArgument, deadlineExceeded, notFound, alreadyExists
        case permissionDenied, resourceExhausted, failedPrecondition, aborted, outOfRange
        case unimplemented, `internal`, unavailable, dataLoss, unauthenticated
    }

    public var code: Code
    /// A sentence naming the object concerned.
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

/// Thrown from `start()` when the plugin cannot run on this host; the daemon records "skip"
/// with the reason and carries on. The reason should say what is missing.
public struct PluginSkip: Error, Sendable {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
}
