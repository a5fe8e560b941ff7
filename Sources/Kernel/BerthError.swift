/// The one error type of Berth. Its codes mirror gRPC's status codes one-to-one, so the API
/// edge translates without a table of special cases (containerd's errdefs follows the same idea).
public struct BerthError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, in gRPC's vocabulary; raw values are the gRPC code numbers.
    public enum Code: Int32, Sendable, CaseIterable {
        case cancelled = 1
        case unknown = 2
        case invalidArgument = 3
        case deadlineExceeded = 4
        case notFound = 5
        case alreadyExists = 6
        case permissionDenied = 7
        case resourceExhausted = 8
        case failedPrecondition = 9
        case aborted = 10
        case outOfRange = 11
        case unimplemented = 12
        case `internal` = 13
        case unavailable = 14
        case dataLoss = 15
        case unauthenticated = 16
    }

    /// The category of the failure.
    public var code: Code
    /// A sentence that names the object concerned.
    public var message: String

    /// Makes an error with a code and a message naming the object concerned.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// Prefixes the message with context gathered on the way up, keeping the code.
    public func wrapped(_ context: String) -> BerthError {
        BerthError(code, "\(context): \(message)")
    }

    public var description: String { "\(code): \(message)" }

    /// Turns any error into a BerthError; foreign errors become `.unknown`.
    public static func from(_ error: any Error) -> BerthError {
        if let error = error as? BerthError { return error }
        if error is CancellationError { return BerthError(.cancelled, "operation cancelled") }
        return BerthError(.unknown, String(describing: error))
    }
}

extension BerthError {
    public static func notFound(_ message: String) -> BerthError { .init(.notFound, message) }
    public static func alreadyExists(_ message: String) -> BerthError { .init(.alreadyExists, message) }
    public static func invalidArgument(_ message: String) -> BerthError { .init(.invalidArgument, message) }
    public static func failedPrecondition(_ message: String) -> BerthError { .init(.failedPrecondition, message) }
    public static func unimplemented(_ message: String) -> BerthError { .init(.unimplemented, message) }
    public static func unavailable(_ message: String) -> BerthError { .init(.unavailable, message) }
    public static func `internal`(_ message: String) -> BerthError { .init(.internal, message) }
}

/// A failed system call: the call's name and errno, as swift-nio's `IOError` reports them.
public struct SyscallError: Error, Sendable, CustomStringConvertible {
    /// The name of the call that failed, with its main argument when that helps.
    public var call: String
    /// The errno the call left.
    public var errno: Int32

    public init(_ call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public var description: String { "\(call): \(String(cString: strerror(errno)))" }
}

#if canImport(Glibc)
    import Glibc
#endif
