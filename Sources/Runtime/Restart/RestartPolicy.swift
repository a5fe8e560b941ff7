/// containerd's restart labels, which clients put on a container (`ctr run --label`), and what
/// they ask for.
///
/// - `containerd.io/restart.status`: `running` asks Berth to keep the container's task running;
///   anything else (or no label) leaves the container alone.
/// - `containerd.io/restart.policy`: `always` (the default when the status label asks for
///   running), `on-failure` or `on-failure:N` (only after a non-zero exit, at most N times; N = 0 means no maximum, as in containerd),
///   `unless-stopped`, or `no`.
/// - `containerd.io/restart.count`: how many times Berth restarted it, written after each restart.
/// - `containerd.io/restart.explicitly-stopped`: `true` once a client stopped the task through the
///   API (Kill with a terminating signal); cleared when a client creates the task again.
///
/// An explicit stop is honoured as Docker users expect: `unless-stopped` and `on-failure` stay
/// stopped for good, `always` stays stopped until the daemon restarts.
public enum RestartLabels {
    public static let status = "containerd.io/restart.status"
    public static let policy = "containerd.io/restart.policy"
    public static let count = "containerd.io/restart.count"
    public static let explicitlyStopped = "containerd.io/restart.explicitly-stopped"
}

public enum RestartPolicy: Equatable, Sendable {
    case always
    case onFailure(limit: Int?)
    case unlessStopped
    case never

    /// The policy a label value names; nil when it names none (the container is then left alone).
    public init?(label: String?) {
        switch label ?? "always" {
        case "always", "": self = .always
        case "unless-stopped": self = .unlessStopped
        case "no": self = .never
        case "on-failure": self = .onFailure(limit: nil)
        case let text where text.hasPrefix("on-failure:"):
            guard let limit = Int(text.dropFirst("on-failure:".count)), limit >= 0 else { return nil }
            // containerd reads a maximum of 0 as no maximum (runtime/restart, Policy.Reconcile).
            self = .onFailure(limit: limit == 0 ? nil : limit)
        default: return nil
        }
    }

    /// Whether a task that ended with `exitStatus` (nil: there is no task) is started again.
    /// `restarts` counts the restarts so far; `atDaemonStart` is true for the check the monitor
    /// makes once after the daemon started.
    public func restarts(
        exitStatus: UInt32?, restarts: Int, explicitlyStopped: Bool, atDaemonStart: Bool
    ) -> Bool {
        switch self {
        case .never: return false
        case .always: return !explicitlyStopped || atDaemonStart
        case .unlessStopped: return !explicitlyStopped
        case .onFailure(let limit):
            guard !explicitlyStopped, exitStatus.map({ $0 != 0 }) ?? true else { return false }
            return limit.map { restarts < $0 } ?? true
        }
    }
}
