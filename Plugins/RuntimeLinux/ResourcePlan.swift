import BerthPluginSDK
import FoundationEssentials
import Glibc

/// Cgroup limits of a keeper plan from `linux.resources` (config-linux.md "Control groups").
/// Controllers the keeper does not drive (blkio, hugetlb, rdma, net, cpuset, unified) are
/// refused by name.
struct ResourcePlan {
    let container: String

    /// Device rules every container gets after the spec's own, as runc does (the nodes the
    /// keeper makes in /dev must stay usable under ctr's "deny all" rule): mknod of any
    /// device; null, zero, full, random, urandom, tty, console, ptmx and the pty slaves; tun.
    static let defaultAllowed: [[String]] = [
        ["c", "*", "*", "m"], ["b", "*", "*", "m"], ["c", "1", "3", "rwm"], ["c", "1", "5", "rwm"], ["c", "1", "7", "rwm"],
        ["c", "1", "8", "rwm"], ["c", "1", "9", "rwm"], ["c", "5", "0", "rwm"], ["c", "5", "1", "rwm"], ["c", "5", "2", "rwm"],
        ["c", "136", "*", "rwm"], ["c", "10", "200", "rwm"],
    ]

    /// The spec's device rules, then the defaults and an allow rule per `linux.devices` node.
    func addDeviceRules(_ resources: OCIResources?, devices: [OCIDevice], to plan: inout PlanRecords) throws {
        for rule in resources?.devices ?? [] { try addDeviceRule(rule, to: &plan) }
        for rule in Self.defaultAllowed { try plan.add("device_rule", ["allow"] + rule, from: "default device rules") }
        for device in devices where device.type != "p" {
            let type = device.type == "b" ? "b" : "c"
            try plan.add("device_rule", "allow", type, String(device.major ?? 0), String(device.minor ?? 0), "rwm", from: "linux.devices \(device.path)")
        }
    }

    func add(_ resources: OCIResources?, to plan: inout PlanRecords) throws {
        guard let resources else { return }
        let fields: [(String, Bool)] = [
            ("blockIO", resources.blockIO.isGiven), ("hugepageLimits", resources.hugepageLimits.isGiven),
            ("network", resources.network.isGiven), ("rdma", resources.rdma.isGiven), ("unified", resources.unified.isGiven),
        ]
        if let (name, _) = fields.first(where: { $0.1 }) {
            throw SpecError.unsupported(container, "linux.resources.\(name)")
        }
        try addMemory(resources.memory, to: &plan)
        try addCPU(resources.cpu, to: &plan)
        if let pids = resources.pids, pids.limit != 0 {
            try plan.add("pids_limit", String(max(pids.limit, -1)), from: "linux.resources.pids.limit")
        }
    }

    private func addDeviceRule(_ rule: OCIDeviceRule, to plan: inout PlanRecords) throws {
        let field = "linux.resources.devices"
        let type = rule.type ?? "a"
        guard ["a", "c", "b"].contains(type) else {
            throw SpecError.invalid(container, field, "type \(type.debugDescription) is not a, c or b")
        }
        let access = rule.access ?? "rwm"
        guard !access.isEmpty, access.allSatisfy({ "rwm".contains($0) }) else {
            throw SpecError.invalid(container, field, "access \(access.debugDescription) is not made of r, w and m")
        }
        let number = { (value: Int64?) in value.map { $0 < 0 ? "*" : String($0) } ?? "" }
        try plan.add("device_rule", rule.allow ? "allow" : "deny", type, number(rule.major), number(rule.minor), access, from: field)
    }

    private func addMemory(_ memory: OCIMemory?, to plan: inout PlanRecords) throws {
        guard let memory else { return }
        let fields: [(String, Bool)] = [
            ("reservation", memory.reservation.isGiven), ("kernel", memory.kernel.isGiven),
            ("kernelTCP", memory.kernelTCP.isGiven), ("swappiness", memory.swappiness.isGiven),
            ("disableOOMKiller", memory.disableOOMKiller == true), ("checkBeforeUpdate", memory.checkBeforeUpdate.isGiven),
        ]
        if let (name, _) = fields.first(where: { $0.1 }) {
            throw SpecError.unsupported(container, "linux.resources.memory.\(name)")
        }
        if let limit = memory.limit, limit != 0 {
            try plan.add("memory_limit", String(max(limit, -1)), from: "linux.resources.memory.limit")
        }
        if let swap = memory.swap, swap != 0 {
            try plan.add("memory_swap", String(max(swap, -1)), from: "linux.resources.memory.swap")
        }
    }

    private func addCPU(_ cpu: OCICPU?, to plan: inout PlanRecords) throws {
        guard let cpu else { return }
        let fields: [(String, Bool)] = [
            ("realtimeRuntime", cpu.realtimeRuntime.isGiven), ("realtimePeriod", cpu.realtimePeriod.isGiven),
            ("cpus", !(cpu.cpus ?? "").isEmpty), ("mems", !(cpu.mems ?? "").isEmpty), ("idle", cpu.idle.isGiven),
        ]
        if let (name, _) = fields.first(where: { $0.1 }) {
            throw SpecError.unsupported(container, "linux.resources.cpu.\(name)")
        }
        if let shares = cpu.shares, shares != 0 {
            // cpu.shares accepts 2...262144 (sched/core.c MIN_SHARES and MAX_SHARES).
            guard (2...262_144).contains(shares) else {
                throw SpecError.invalid(container, "linux.resources.cpu.shares", "\(shares) is outside 2...262144")
            }
            try plan.add("cpu_shares", String(shares), from: "linux.resources.cpu.shares")
        }
        if let quota = cpu.quota, quota != 0 {
            try plan.add("cpu_quota", String(max(quota, -1)), from: "linux.resources.cpu.quota")
        }
        if let period = cpu.period, period != 0 {
            // cfs_period_us accepts 1 ms to 1 s (sched/core.c min_cfs_quota_period, max_cfs_quota_period).
            guard (1000...1_000_000).contains(period) else {
                throw SpecError.invalid(container, "linux.resources.cpu.period", "\(period) is outside 1000...1000000")
            }
            try plan.add("cpu_period", String(period), from: "linux.resources.cpu.period")
        }
    }
}
