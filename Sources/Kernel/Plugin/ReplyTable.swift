import CBerthPlugin
import Synchronization

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
enum ReplyTable {
    private static let pending = Mutex<(next: UInt, waiting: [UInt: CheckedContinuation<PluginReply, Never>])>((1, [:]))

    /// Runs `start` with a fresh reply context and reply function, then waits for the answer.
    static func await(_ start: (UnsafeMutableRawPointer, berth_reply_fn) -> Void) async -> PluginReply {
        await withCheckedContinuation { continuation in
            let token = pending.withLock { state in
                let token = state.next
                state.next += 1
                state.waiting[token] = continuation
                return token
            }
            start(UnsafeMutableRawPointer(bitPattern: token)!, replyTrampoline)
        }
    }

    fileprivate static func resolve(_ context: UnsafeMutableRawPointer?, _ reply: PluginReply) {
        let token = UInt(bitPattern: context)
        let continuation = pending.withLock { $0.waiting.removeValue(forKey: token) }
        continuation?.resume(returning: reply)
    }
}

/// The one reply function handed to every plugin; copies the borrowed bytes before returning.
private let replyTrampoline: berth_reply_fn = { context, code, data, length in
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: length)) } ?? []
    ReplyTable.resolve(context, PluginReply(code: code, bytes: bytes))
}
