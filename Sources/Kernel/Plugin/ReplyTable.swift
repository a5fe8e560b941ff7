import CBerthPlugin
import Synchronization

/// Names a call in errors and logs ("plugin P method M"). Kept in two parts and joined only
/// when a call is cut short, so that a call that is answered builds no string.
struct CallLabel: Sendable {
    let prefix: String
    let method: String

    init(_ prefix: String, method: String = "") {
        self.prefix = prefix
        self.method = method
    }

    var text: String { prefix + method }
}

/// What a plugin answered to one asynchronous operation.
enum PluginReply: Sendable {
    case ok([UInt8])
    case skip(String)
    case failure(BerthError)

    init(code: Int32, bytes: [UInt8]) {
        switch code {
        case Int32(BERTH_CODE_OK.rawValue): self = .ok(bytes)
        case Int32(BERTH_CODE_SKIP.rawValue): self = .skip(String(decoding: bytes, as: UTF8.self))
        default:
            let code = BerthError.Code(rawValue: code) ?? .unknown
            self = .failure(BerthError(code, String(decoding: bytes, as: UTF8.self)))
        }
    }
}

/// Pending replies by token. The C reply context is the token, not a retained object, so a
/// plugin that answers twice, or answers a token it was never given, cannot crash the host:
/// the second answer finds nothing and is dropped.
///
/// A wait ends in one of three ways, whichever comes first: the plugin replies; the waiting
/// task is cancelled (client gone, daemon stopping); or the call's deadline passes
/// (`expireOverdue`, driven by the kernel). The last two answer the caller at once, remove the
/// token (so a late reply is dropped like a second one) and tell the plugin through
/// `onAbandon` (its `ops->cancel`), so neither the caller nor the table waits on a plugin that
/// never answers.
enum ReplyTable {
    /// One call being waited for.
    private struct Pending {
        var continuation: CheckedContinuation<PluginReply, Never>?
        /// Set when the call was given up before its continuation was stored.
        var abandonedWith: PluginReply?
        /// CLOCK_MONOTONIC nanoseconds, or 0 for none.
        var deadline: Int64
        /// "plugin P method M", for the log line when the call is cut short.
        var label: CallLabel
        var onAbandon: (@Sendable (UInt) -> Void)?
    }

    private struct State {
        var next: UInt = 1
        var waiting = [UInt: Pending]()
    }

    private static let state = Mutex(State())

    /// Runs `start` with a fresh reply context and reply function, then waits for the answer,
    /// for cancellation, or for `deadline` (CLOCK_MONOTONIC ns, 0 = none). `onAbandon` gets the
    /// token of a call given up after `start` ran.
    static func await(
        label: CallLabel = CallLabel(""), deadline: Int64 = 0, onAbandon: (@Sendable (UInt) -> Void)? = nil,
        _ start: (UnsafeMutableRawPointer, berth_reply_fn) -> Void
    ) async -> PluginReply {
        let token = state.withLock { state in
            let token = state.next
            state.next += 1
            state.waiting[token] = Pending(deadline: deadline, label: label, onAbandon: onAbandon)
            return token
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let abandoned: PluginReply? = state.withLock { state in
                    guard let pending = state.waiting[token] else { return .failure(BerthError(.cancelled, "\(label.text): cancelled")) }
                    if let reply = pending.abandonedWith {
                        state.waiting[token] = nil
                        return reply
                    }
                    state.waiting[token]!.continuation = continuation
                    return nil
                }
                // A call made by a task that is already cancelled still goes out (cancellation
                // means its caller stops waiting, not that the request is lost: a writer's Close
                // on the way out of a cancelled RPC must reach the store); only its answer is
                // dropped, and the plugin is told at once.
                start(UnsafeMutableRawPointer(bitPattern: token)!, replyTrampoline)
                if let abandoned {
                    onAbandon?(token)
                    continuation.resume(returning: abandoned)
                }
            }
        } onCancel: {
            abandon(token, with: BerthError(.cancelled, "the caller went away before the plugin answered"))
        }
    }

    /// Answers every call whose deadline is at or before `now`; returns the labels of those cut
    /// short and the earliest deadline still pending (0 when none).
    static func expireOverdue(now: Int64) -> (expired: [String], nextDeadline: Int64) {
        let (overdue, next) = state.withLock { state -> ([UInt], Int64) in
            var overdue = [UInt]()
            var next: Int64 = 0
            for (token, pending) in state.waiting where pending.deadline != 0 && pending.abandonedWith == nil {
                if pending.deadline <= now { overdue.append(token) } else if next == 0 || pending.deadline < next { next = pending.deadline }
            }
            return (overdue, next)
        }
        let expired = overdue.compactMap { token in
            abandon(token, with: BerthError(.deadlineExceeded, "the plugin did not answer before the call's deadline"))
        }
        return (expired, next)
    }

    /// Gives up on `token`: answers its waiter with `error` (prefixed by the call's label) and
    /// tells the plugin. Returns the label when there was a call to give up.
    @discardableResult
    private static func abandon(_ token: UInt, with error: BerthError) -> String? {
        let found = state.withLock { state -> (Pending, started: Bool)? in
            guard var pending = state.waiting[token], pending.abandonedWith == nil else { return nil }
            guard pending.continuation != nil else {
                // Not started yet: the waiter finds the answer when it stores its continuation.
                pending.abandonedWith = .failure(error.wrapped(pending.label.text))
                state.waiting[token] = pending
                return (pending, false)
            }
            state.waiting[token] = nil
            return (pending, true)
        }
        guard let (pending, started) = found else { return nil }
        if started {
            pending.continuation?.resume(returning: .failure(error.wrapped(pending.label.text)))
            pending.onAbandon?(token)
        }
        return pending.label.text
    }

    fileprivate static func resolve(_ context: UnsafeMutableRawPointer?, _ reply: PluginReply) {
        let token = UInt(bitPattern: context)
        let continuation = state.withLock { state -> CheckedContinuation<PluginReply, Never>? in
            guard let continuation = state.waiting[token]?.continuation else { return nil }
            state.waiting[token] = nil
            return continuation
        }
        continuation?.resume(returning: reply)
    }
}

/// The one reply function handed to every plugin; copies the borrowed bytes before returning.
private let replyTrampoline: berth_reply_fn = { context, code, data, length in
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: length)) } ?? []
    ReplyTable.resolve(context, PluginReply(code: code, bytes: bytes))
}
