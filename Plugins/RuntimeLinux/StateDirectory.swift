import BerthPluginSDK
import FoundationEssentials
import Glibc

/// What the runtime keeps on disk for one container, in `STATE/containers/HASH`, so that a
/// new plugin instance (after a daemon restart) finds it again: the keeper's own files
/// (keeper_protocol.h section 1: plan, control.sock, keeper.pid, init.pid, exits/) and
/// `container.json` (this record).
///
/// The directory's name is a hash of namespace and id: short whatever the ids, and the path
/// stays within the keeper's limit (512 bytes; the control socket is reached through an fd on
/// DIR, so it need not fit sockaddr_un.sun_path).
struct ContainerRecord: Codable, Sendable {
    var namespace: String
    var id: String
    /// "native" or "oci".
    var mode: String
    /// The cgroup path relative to each hierarchy, without a leading slash.
    var cgroupPath: String
    /// Mode oci: the rootfs mounts this plugin made on DIR/rootfs in the host's namespace.
    var mountedRootfs: Bool
}

/// The per-container directory: its path and the files in it.
struct StateDirectory: Sendable {
    /// The longest DIR the keeper accepts (keeper_protocol.h, KEEPER_MAX_STATE_DIR).
    static let maximumPathLength = 512
    static let recordName = "container.json"

    let path: String

    /// The directory of (namespace, id) under `root`: 16 hex digits of FNV-1a over both.
    static func of(namespace: String, id: String, under root: String) -> StateDirectory {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in Array(namespace.utf8) + [0] + Array(id.utf8) {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return StateDirectory(path: root + "/" + String(repeating: "0", count: 16 - hex.count) + hex)
    }

    var rootfs: String { path + "/rootfs" }
    var plan: String { path + "/plan" }
    var controlSocket: String { path + "/control.sock" }
    var runcRoot: String { path + "/runc" }

    func execPlan(_ execID: String) -> String { path + "/exec-\(execID).plan" }
    func execProcess(_ execID: String) -> String { path + "/exec-\(execID).json" }
    func exitFile(_ execID: String) -> String { path + "/exits/" + (execID.isEmpty ? "init" : "exec-\(execID)") }

    /// The keeper's pid, if it wrote one and that process still runs.
    var liveKeeperPID: pid_t? {
        guard let text = try? String(contentsOfFile: path + "/keeper.pid", encoding: .utf8),
            let pid = pid_t(text.trimmed), pid > 0
        else { return nil }
        return processRuns(pid) ? pid : nil
    }

    func readRecord() throws -> ContainerRecord {
        try JSONDecoder().decode(ContainerRecord.self, from: Data(contentsOf: URL(fileURLWithPath: path + "/" + Self.recordName)))
    }

    func writeRecord(_ record: ContainerRecord) throws {
        try Self.writePrivate(try JSONEncoder().encode(record), to: path + "/" + Self.recordName)
    }

    /// Writes `data` to a new file at `path` readable by root alone (0600): DIR must stay
    /// searchable by a user-namespaced root, and a spec may hold secrets in its environment.
    static func writePrivate(_ data: Data, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == data.count else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }

    /// The first folder above DIR (or DIR) that others cannot search, if any: a container
    /// whose root is mapped to another host uid must be able to reach DIR/rootfs.
    func unsearchableAncestor() -> String? {
        var folder = URL(fileURLWithPath: path)
        while folder.path != "/" {
            var info = stat()
            if stat(folder.path, &info) != 0 || info.st_mode & 0o001 == 0 { return folder.path }
            folder.deleteLastPathComponent()
        }
        return nil
    }

    /// A recorded exit (keeper_protocol.h section 4: "pid N\nstatus N\nexited_at SEC.NSEC\n").
    func recordedExit(_ execID: String) -> (pid: UInt32, status: UInt32, exitedAt: String)? {
        guard let text = try? String(contentsOfFile: exitFile(execID), encoding: .utf8) else { return nil }
        var fields = [String: String]()
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
        }
        guard let pid = fields["pid"].flatMap(UInt32.init), let status = fields["status"].flatMap(UInt32.init) else { return nil }
        return (pid, status, fields["exited_at"] ?? "")
    }

    /// The init's exit when its keeper died without recording one: status 255 (as containerd
    /// records a task whose shim is gone), the pid from init.pid, the time now.
    func lostExit() -> (pid: UInt32, status: UInt32, exitedAt: String) {
        let text = (try? String(contentsOfFile: path + "/init.pid", encoding: .utf8)) ?? ""
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let pid = UInt32(text.trimmed) ?? 0
        return (pid, 255, "\(now.tv_sec).\(now.tv_nsec)")
    }

    /// Removes the directory and everything in it.
    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
