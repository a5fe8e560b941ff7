import BerthPluginSDK
import BerthProto
import FoundationEssentials
import Glibc
import SwiftProtobuf

/// Update: new limits for a running container, written to its cgroup files (the keeper has no
/// UPDATE request; the cgroup is the container's in both modes). Takes what containerd's
/// `ctr task update` sends: an Any of type
/// `types.containerd.io/opencontainers/runtime-spec/1/LinuxResources` holding JSON.
/// Memory, memory+swap, cpu shares/quota/period and pids are applied; anything else in the
/// document is refused by name before a file is written.
struct CgroupUpdate {
    static let typeURL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"

    let layout: CgroupLayout
    let relative: String
    let container: String

    /// The writes `resources` asks for, as (controller, file, value) for this layout.
    func writes(for any: Google_Protobuf_Any) throws -> [(controller: String, file: String, value: String)] {
        guard any.typeURL.hasSuffix("opencontainers/runtime-spec/1/LinuxResources") else {
            throw PluginError(.invalidArgument, "container \(container): update: resources of type \(any.typeURL.debugDescription) are not \(Self.typeURL)")
        }
        let resources: OCIResources
        do {
            resources = try JSONDecoder().decode(OCIResources.self, from: any.value)
        } catch {
            throw SpecError.invalid(container, "update resources", "not a JSON LinuxResources object: \(SpecText.describe(error))")
        }
        if !(resources.devices ?? []).isEmpty { throw SpecError.unsupported(container, "update resources.devices") }
        // The plan checks double as the update's: the same fields are refused, ranges checked.
        var plan = PlanRecords(container: container)
        try ResourcePlan(container: container).add(resources, to: &plan)
        return layout.version == 2 ? v2Writes(resources) : v1Writes(resources)
    }

    private func v1Writes(_ resources: OCIResources) -> [(controller: String, file: String, value: String)] {
        var writes = [(controller: String, file: String, value: String)]()
        if let limit = resources.memory?.limit, limit != 0 { writes.append(("memory", "memory.limit_in_bytes", String(max(limit, -1)))) }
        if let swap = resources.memory?.swap, swap != 0 { writes.append(("memory", "memory.memsw.limit_in_bytes", String(max(swap, -1)))) }
        if let shares = resources.cpu?.shares, shares != 0 { writes.append(("cpu", "cpu.shares", String(shares))) }
        if let period = resources.cpu?.period, period != 0 { writes.append(("cpu", "cpu.cfs_period_us", String(period))) }
        if let quota = resources.cpu?.quota, quota != 0 { writes.append(("cpu", "cpu.cfs_quota_us", String(max(quota, -1)))) }
        if let pids = resources.pids, pids.limit != 0 { writes.append(("pids", "pids.max", pids.limit < 0 ? "max" : String(pids.limit))) }
        return writes
    }

    private func v2Writes(_ resources: OCIResources) -> [(controller: String, file: String, value: String)] {
        var writes = [(controller: String, file: String, value: String)]()
        let number = { (value: Int64) in value < 0 ? "max" : String(value) }
        if let limit = resources.memory?.limit, limit != 0 { writes.append(("", "memory.max", number(limit))) }
        if let swap = resources.memory?.swap, swap != 0, let limit = resources.memory?.limit {
            // memory.swap.max counts swap alone; the OCI value is memory plus swap.
            writes.append(("", "memory.swap.max", swap < 0 ? "max" : String(max(swap - limit, 0))))
        }
        if let shares = resources.cpu?.shares, shares != 0 {
            // The cgroup v2 conversion of shares to weight (runc, kernel cgroup-v2.rst): 2..262144 to 1..10000.
            writes.append(("", "cpu.weight", String(1 + ((shares - 2) * 9999) / 262_142)))
        }
        if resources.cpu?.quota != nil || resources.cpu?.period != nil {
            let quota = resources.cpu?.quota.map { $0 < 0 ? "max" : String($0) } ?? "max"
            writes.append(("", "cpu.max", "\(quota) \(resources.cpu?.period ?? 100_000)"))
        }
        if let pids = resources.pids, pids.limit != 0 { writes.append(("", "pids.max", number(pids.limit))) }
        return writes
    }

    /// Writes them in order; a memory limit that must grow above the memory+swap limit (v1)
    /// is retried after the other memory files.
    func apply(_ writes: [(controller: String, file: String, value: String)]) throws {
        var retry = [(controller: String, file: String, value: String)]()
        for write in writes {
            if try !writeFile(write), write.controller == "memory" { retry.append(write) }
        }
        for write in retry where try !writeFile(write) {
            throw PluginError(.invalidArgument, "container \(container): update: write \(write.value) to \(path(write)): \(String(cString: strerror(errno)))")
        }
    }

    private func path(_ write: (controller: String, file: String, value: String)) -> String {
        layout.version == 2 ? "\(layout.root)/\(relative)/\(write.file)" : "\(layout.root)/\(write.controller)/\(relative)/\(write.file)"
    }

    /// False on EINVAL for a memory file (retried); throws on any other failure.
    private func writeFile(_ write: (controller: String, file: String, value: String)) throws -> Bool {
        let path = path(write)
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw PluginError(.notFound, "container \(container): update: open \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let bytes = Array(write.value.utf8)
        guard Glibc.write(fd, bytes, bytes.count) == bytes.count else {
            if errno == EINVAL, write.controller == "memory" { return false }
            throw PluginError(.invalidArgument, "container \(container): update: write \(write.value) to \(path): \(String(cString: strerror(errno)))")
        }
        return true
    }
}
