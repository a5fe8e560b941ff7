import BerthPluginSDK
import BerthProto
import CRuntimeLinux
import FoundationEssentials
import Glibc
import SwiftProtobuf

/// Where this host keeps cgroups, and what the runtime does with a container's cgroup besides
/// the keeper: statistics, and cleaning up after a keeper that died.
///
/// Two layouts (cgroups(7)): v1, one hierarchy per controller under /sys/fs/cgroup/NAME (a
/// hybrid host also mounts cgroup2 at /sys/fs/cgroup/unified, with no controllers); or v2,
/// one unified hierarchy at /sys/fs/cgroup.
struct CgroupLayout: Sendable {
    /// 1 or 2.
    let version: Int
    /// The mount point of the hierarchies.
    let root: String

    /// The layout of the running host.
    static func detect(root: String = "/sys/fs/cgroup") -> CgroupLayout {
        CgroupLayout(version: berth_rt_is_cgroup2(root) == 1 ? 2 : 1, root: root)
    }

    /// The plan records naming this layout (keeper_protocol.h: cgroup_version, cgroup_root).
    func addRecords(to plan: inout PlanRecords) throws {
        guard version == 2 else { return }
        try plan.add("cgroup_version", "2", from: "cgroups")
        try plan.add("cgroup_root", root, from: "cgroups")
    }

    /// Every directory `relative` has on this host: one per hierarchy on v1, one on v2.
    func directories(of relative: String) -> [String] {
        guard version == 1 else { return [root + "/" + relative] }
        let hierarchies = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return hierarchies.sorted().compactMap { name in
            let hierarchy = root + "/" + name
            // cpu and cpuacct are links to cpu,cpuacct: visit each hierarchy once.
            guard (try? FileManager.default.destinationOfSymbolicLink(atPath: hierarchy)) == nil else { return nil }
            let directory = hierarchy + "/" + relative
            return FileManager.default.fileExists(atPath: directory) ? directory : nil
        }
    }

    /// Kills every process left in `relative` and removes its directories: what a keeper
    /// would have done on DELETE, for a keeper that is gone. Returns what could not be removed.
    func removeAbandoned(_ relative: String) -> [String] {
        let directories = directories(of: relative)
        for directory in directories {
            let procs = (try? String(contentsOfFile: directory + "/cgroup.procs", encoding: .utf8)) ?? ""
            for pid in procs.split(separator: "\n").compactMap({ pid_t($0) }) { kill(pid, SIGKILL) }
        }
        var left = [String]()
        for directory in directories {
            // A killed process leaves its cgroup once reaped: give the kernel up to a second.
            var removed = false
            for _ in 0..<50 where !removed {
                removed = rmdir(directory) == 0 || errno == ENOENT
                if !removed { usleep(20_000) }
            }
            if !removed { left.append(directory) }
        }
        return left
    }
}

/// Statistics of a container's cgroup in containerd's message types
/// (github.com/containerd/cgroups stats/v1 and v2), packed as clients decode them.
struct CgroupMetrics {
    let layout: CgroupLayout
    let relative: String
    let container: String

    /// The metrics packed in an Any whose type URL is the bare containerd name.
    func collect() throws -> Google_Protobuf_Any {
        var any = Google_Protobuf_Any()
        if layout.version == 2 {
            any.typeURL = "io.containerd.cgroups.v2.Metrics"
            any.value = try v2().serializedData()
        } else {
            any.typeURL = "io.containerd.cgroups.v1.Metrics"
            any.value = try v1().serializedData()
        }
        return any
    }

    private func number(_ path: String) throws -> UInt64 {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8).trimmed
        } catch {
            throw PluginError(.notFound, "container \(container): metrics: read \(path): \(error)")
        }
        // "max" means no limit; containerd reports 0 then.
        if text == "max" { return 0 }
        guard let value = UInt64(text) else {
            throw PluginError(.internal, "container \(container): metrics: \(path) holds \(text.debugDescription), not a number")
        }
        return value
    }

    /// `key value` lines such as cpu.stat and memory.stat.
    private func table(_ path: String) -> [String: UInt64] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        var values = [String: UInt64]()
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let value = UInt64(parts[1]) { values[String(parts[0])] = value }
        }
        return values
    }

    private func v1() throws -> Io_Containerd_Cgroups_V1_Metrics {
        let memory = "\(layout.root)/memory/\(relative)"
        let cpu = "\(layout.root)/cpuacct/\(relative)"
        let pids = "\(layout.root)/pids/\(relative)"
        var metrics = Io_Containerd_Cgroups_V1_Metrics()
        metrics.pids.current = try number(pids + "/pids.current")
        metrics.pids.limit = try number(pids + "/pids.max")
        metrics.cpu.usage.total = try number(cpu + "/cpuacct.usage")
        metrics.cpu.usage.user = (try? number(cpu + "/cpuacct.usage_user")) ?? 0
        metrics.cpu.usage.kernel = (try? number(cpu + "/cpuacct.usage_sys")) ?? 0
        // One figure per possible CPU, space-separated (ctr prints them as cpuacct.usage_percpu).
        let perCPU = (try? String(contentsOfFile: cpu + "/cpuacct.usage_percpu", encoding: .utf8)) ?? ""
        metrics.cpu.usage.perCpu = perCPU.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { UInt64($0) }
        let throttle = table("\(layout.root)/cpu/\(relative)/cpu.stat")
        metrics.cpu.throttling.periods = throttle["nr_periods"] ?? 0
        metrics.cpu.throttling.throttledPeriods = throttle["nr_throttled"] ?? 0
        metrics.cpu.throttling.throttledTime = throttle["throttled_time"] ?? 0
        metrics.memory.usage.usage = try number(memory + "/memory.usage_in_bytes")
        metrics.memory.usage.limit = try number(memory + "/memory.limit_in_bytes")
        metrics.memory.usage.max = (try? number(memory + "/memory.max_usage_in_bytes")) ?? 0
        metrics.memory.usage.failcnt = (try? number(memory + "/memory.failcnt")) ?? 0
        let stat = table(memory + "/memory.stat")
        metrics.memory.cache = stat["cache"] ?? 0
        metrics.memory.rss = stat["rss"] ?? 0
        metrics.memory.totalRss = stat["total_rss"] ?? 0
        metrics.memory.totalCache = stat["total_cache"] ?? 0
        return metrics
    }

    private func v2() throws -> Io_Containerd_Cgroups_V2_Metrics {
        let directory = "\(layout.root)/\(relative)"
        var metrics = Io_Containerd_Cgroups_V2_Metrics()
        metrics.pids.current = try number(directory + "/pids.current")
        metrics.pids.limit = try number(directory + "/pids.max")
        let cpu = table(directory + "/cpu.stat")
        metrics.cpu.usageUsec = cpu["usage_usec"] ?? 0
        metrics.cpu.userUsec = cpu["user_usec"] ?? 0
        metrics.cpu.systemUsec = cpu["system_usec"] ?? 0
        metrics.cpu.nrPeriods = cpu["nr_periods"] ?? 0
        metrics.cpu.nrThrottled = cpu["nr_throttled"] ?? 0
        metrics.cpu.throttledUsec = cpu["throttled_usec"] ?? 0
        metrics.memory.usage = try number(directory + "/memory.current")
        metrics.memory.usageLimit = try number(directory + "/memory.max")
        return metrics
    }
}
