import BerthPluginSDK
import Dispatch
import FoundationEssentials
import Glibc

/// Runs `berth-keeper create --state DIR` with posix_spawn (the daemon is multithreaded:
/// never fork(2), FIELD-NOTES.md) and reads its report: exit 0 and "PID\n" on stdout, or exit
/// 1 and one line "STEP: PATH: REASON" on stderr (keeper_protocol.h section 1).
///
/// Blocks the calling thread until the spawned process exits; the keeper bounds its own
/// setup to 30 s, and this waits at most `timeout` seconds before killing it.
struct KeeperLauncher {
    let keeper: String
    let container: String
    var timeout: Int32 = 60

    /// Outcome of one create.
    enum Report {
        case created(pid: UInt32)
        case failed(line: String)
    }

    func create(state: String) throws -> Report {
        var stdout: [Int32] = [-1, -1]
        var stderr: [Int32] = [-1, -1]
        // Socket pairs, not pipes: SOCK_CLOEXEC is importable where pipe2 is not, and no end
        // may leak into a process another thread spawns at the same moment.
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        guard socketpair(AF_UNIX, type, 0, &stdout) == 0 else { throw failure("socketpair", errno) }
        guard socketpair(AF_UNIX, type, 0, &stderr) == 0 else {
            let saved = errno
            close(stdout[0])
            close(stdout[1])
            throw failure("socketpair", saved)
        }
        let pid: pid_t
        do {
            pid = try spawn(state: state, stdout: stdout[1], stderr: stderr[1])
        } catch {
            for fd in stdout + stderr { close(fd) }
            throw error
        }
        close(stdout[1])
        close(stderr[1])
        defer {
            close(stdout[0])
            close(stderr[0])
        }
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeout) * 1_000_000_000
        let out = readAll(stdout[0], deadline: deadline)
        let err = readAll(stderr[0], deadline: deadline)
        if DispatchTime.now().uptimeNanoseconds >= deadline { kill(pid, SIGKILL) }
        let status = waitExit(pid)
        // nil: the host reaps children itself (SIGCHLD ignored); the report alone decides then.
        if status == 0 || status == nil, let initPID = UInt32(out.trimmed) {
            return .created(pid: initPID)
        }
        let line = err.split(separator: "\n").first.map(String.init) ?? ""
        return .failed(line: line.isEmpty ? "\(keeper) exited with status \(status.map(String.init) ?? "unknown") and no error line" : line)
    }

    private func spawn(state: String, stdout: Int32, stderr: Int32) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The daemon's threads may block signals; the keeper starts with none blocked and
        // default dispositions for those it relies on.
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGCHLD, SIGHUP, SIGINT, SIGTERM, SIGQUIT] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = [keeper, "create", "--state", state]
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for arg in cArgs { free(arg) } }
        var cEnv: [UnsafeMutablePointer<CChar>?] = [strdup("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"), nil]
        defer { for entry in cEnv { free(entry) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, keeper, &actions, &attributes, &cArgs, &cEnv)
        guard result == 0 else { throw failure("spawn \(keeper)", result) }
        return pid
    }

    /// Everything from `fd` until end of file or `deadline`, at most 64 KiB kept.
    private func readAll(_ fd: Int32, deadline: UInt64) -> String {
        var kept = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < deadline else { break }
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&entry, 1, Int32(min((deadline - now) / 1_000_000, 1000)))
            if ready < 0, errno == EINTR { continue }
            if ready <= 0 { continue }
            let count = read(fd, &buffer, buffer.count)
            if count < 0, errno == EINTR { continue }
            if count <= 0 { break }
            if kept.count < 65536 { kept += buffer[0..<count] }
        }
        return String(decoding: kept, as: UTF8.self)
    }

    /// The exit status of `pid` (128+N when killed by signal N), nil when it cannot be waited for.
    private func waitExit(_ pid: pid_t) -> Int32? {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { return nil }
        }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    private func failure(_ step: String, _ code: Int32) -> PluginError {
        PluginError(.internal, "container \(container): create: \(step): \(String(cString: strerror(code)))")
    }
}
