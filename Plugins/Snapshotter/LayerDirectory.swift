import BerthPluginSDK
import BerthProto
import FoundationEssentials
import Glibc

/// Layers on disk: `<root>/<id>/fs` holds the files (overlay: this layer's changes; native: the
/// whole tree), `<root>/<id>/work` is overlayfs's scratch space, made only for a writable layer
/// with parents (one without parents is mounted as a bind mount). A layer is built under
/// `new-<id>` and renamed into place, and removed by a rename into the trash (`removal`), so a
/// crash never leaves a half-made layer under a live id.
struct LayerDirectory: Sendable {
    let root: String
    let driver: SnapshotterPlugin.Driver
    /// Removed layers go there: `remove` answers without waiting for their files to be deleted.
    let removal: DeferredRemoval

    func path(_ id: UInt64) -> String { "\(root)/\(id)" }

    /// Makes layer `id` on `parents`; only a writable overlay layer with parents gets a work
    /// directory, the one kind that is mounted as an overlay with an upper directory.
    func create(id: UInt64, parents: [UInt64], readonly: Bool = false) throws {
        let final = path(id)
        guard !Self.exists(final) else {
            throw PluginError(.alreadyExists, "layer \(id) already exists on disk")
        }
        for parent in parents { try requireExisting(parent) }
        let staging = "\(root)/new-\(id)"
        if mkdir(staging, 0o700) != 0 {
            // Left by a build that stopped half-way (start-up cleanup normally removes it).
            guard errno == EEXIST else { throw PluginError(.internal, "cannot create \(staging): \(String(cString: strerror(errno)))") }
            try? FileManager.default.removeItem(atPath: staging)
            try makeDirectory(staging, mode: 0o700)
        }
        do {
            if driver == .native, let parent = parents.first {
                try copyTree(from: path(parent) + "/fs", to: staging + "/fs")
            } else {
                // The root of a new, empty snapshot is 0755, as containerd's snapshotters make it.
                try makeDirectory(staging + "/fs", mode: 0o755)
            }
            if driver == .overlay, !readonly, !parents.isEmpty { try makeDirectory(staging + "/work", mode: 0o700) }
            guard rename(staging, final) == 0 else {
                throw PluginError(.internal, "cannot move layer \(id) into place: \(String(cString: strerror(errno)))")
            }
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
    }

    /// How a client mounts layer `id` over `parents` (nearest first).
    func mounts(id: UInt64, parents: [UInt64], readonly: Bool) throws -> [Containerd_Types_Mount] {
        try requireExisting(id)
        let own = path(id) + "/fs"
        let access = readonly ? "ro" : "rw"
        if driver == .native || parents.isEmpty {
            return [bind(own, access)]
        }
        let lower = parents.map { path($0) + "/fs" }
        if readonly {
            // A view changes nothing: the parents alone, a bind when there is only one.
            return lower.count == 1
                ? [bind(lower[0], "ro")]
                : [overlay(["lowerdir=" + lower.joined(separator: ":")])]
        }
        return [overlay(["workdir=\(path(id))/work", "upperdir=\(own)", "lowerdir=" + lower.joined(separator: ":")])]
    }

    func requireExisting(_ id: UInt64) throws {
        guard Self.exists(path(id)) else {
            throw PluginError(.notFound, "layer \(id) does not exist on disk")
        }
    }

    /// Removes layer `id`; a layer already gone is not an error.
    func remove(id: UInt64) throws {
        do {
            try removal.remove(path(id))
        } catch let error as PluginError {
            throw PluginError(error.code, "cannot remove layer \(id): \(error.message)")
        }
    }

    /// Bytes (allocated blocks) and inodes of the layer's own files.
    func usage(id: UInt64) throws -> (Int64, Int64) {
        try requireExisting(id)
        var seen = Set<UInt64>()
        var size: Int64 = 0
        let top = path(id) + "/fs"
        let below = (try? FileManager.default.subpathsOfDirectory(atPath: top)) ?? []
        let paths = [top] + below.map { top + "/" + $0 }
        for item in paths {
            var info = stat()
            guard lstat(item, &info) == 0, seen.insert(UInt64(info.st_ino)).inserted else { continue }
            size += Int64(info.st_blocks) * 512
        }
        return (size, Int64(seen.count))
    }

    /// Removes every layer whose id is not in `keep`; returns the removed ids and the kept
    /// ids that have no layer on disk.
    func cleanup(keeping keep: Set<UInt64>) -> (removed: [UInt64], missing: [UInt64]) {
        removeLeftovers()
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        var removed = [UInt64]()
        var present = Set<UInt64>()
        for name in names {
            guard let id = UInt64(name) else { continue }
            guard !keep.contains(id) else {
                present.insert(id)
                continue
            }
            if (try? remove(id: id)) != nil { removed.append(id) }
        }
        return (removed.sorted(), keep.subtracting(present).sorted())
    }

    /// Deletes `new-*` entries and `old-*` ones (removals of earlier versions), which no record
    /// can refer to.
    func removeLeftovers() {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        where name.hasPrefix("new-") || name.hasPrefix("old-") {
            try? FileManager.default.removeItem(atPath: "\(root)/\(name)")
        }
    }

    private func bind(_ source: String, _ access: String) -> Containerd_Types_Mount {
        .with {
            $0.type = "bind"
            $0.source = source
            $0.options = [access, "rbind"]
        }
    }

    private func overlay(_ options: [String]) -> Containerd_Types_Mount {
        .with {
            $0.type = "overlay"
            $0.source = "overlay"
            $0.options = options
        }
    }

    private static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    private func makeDirectory(_ path: String, mode: mode_t) throws {
        guard mkdir(path, mode) == 0, chmod(path, mode) == 0 else {
            throw PluginError(.internal, "cannot create \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// A full copy keeping owners, modes, times, links, devices and xattrs (cp -a), sharing
    /// blocks where the filesystem can (--reflink=auto). posix_spawn, never fork: the daemon
    /// is multithreaded.
    private func copyTree(from source: String, to destination: String) throws {
        var errors: [Int32] = [-1, -1]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        guard socketpair(AF_UNIX, type, 0, &errors) == 0 else {
            throw PluginError(.internal, "copying \(source): socketpair: \(String(cString: strerror(errno)))")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, errors[1], 2)
        let words = ["/bin/cp", "-a", "--reflink=auto", source, destination]
        var argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { for arg in argv { free(arg) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, "/bin/cp", &actions, nil, &argv, environ)
        close(errors[1])
        defer { close(errors[0]) }
        guard spawned == 0 else {
            throw PluginError(.internal, "copying \(source): cannot run /bin/cp: \(String(cString: strerror(spawned)))")
        }
        let message = Self.readBounded(errors[0], limit: 4096)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        guard status == 0 else {
            throw PluginError(.internal, "copying \(source) failed (wait status \(status)): \(message)")
        }
    }

    /// What `fd` gives until end of file, keeping the first `limit` bytes.
    private static func readBounded(_ fd: Int32, limit: Int) -> String {
        var kept = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count < 0, errno == EINTR { continue }
            if count <= 0 { break }
            if kept.count < limit { kept += buffer[0..<min(count, limit - kept.count)] }
        }
        return String(decoding: kept, as: UTF8.self)
    }
}
