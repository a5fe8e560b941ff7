import BerthPluginSDK
import BerthProto
import FoundationEssentials
import Glibc

/// The container records of a keeper plan (native mode) from a client's OCI spec, with the
/// checks that make a spec the keeper cannot honour fail by field name.
///
/// Worked example: ctr's default spec for `ctr run busybox c1` in namespace `default` becomes
/// `id c1`, `rootfs DIR/rootfs` with one `rootfs_mount overlay…` from CreateRequest.rootfs, the
/// five namespaces, its /proc, /dev, /dev/pts, /dev/shm, /dev/mqueue and /sys mounts, the
/// masked and read-only paths, `device_rule deny|a|||rwm`, `cgroup_path default/c1`, and the
/// process records of ProcessPlan.
struct ContainerPlan {
    let container: String
    /// Where the rootfs is assembled (keeper record `rootfs`).
    let rootfsDirectory: String
    /// The cgroup layout of this host.
    let cgroups: CgroupLayout

    /// Parses the spec bytes and checks the version and the process.
    static func decode(_ data: Data, container: String) throws -> OCISpec {
        let spec: OCISpec
        do {
            spec = try JSONDecoder().decode(OCISpec.self, from: data)
        } catch {
            throw SpecError.invalid(container, "document", "not a JSON OCI runtime spec: \(SpecText.describe(error))")
        }
        guard let version = spec.ociVersion, !version.isEmpty else {
            throw SpecError.invalid(container, "ociVersion", "missing")
        }
        guard version.split(separator: ".").first == "1" else {
            throw SpecError.invalid(container, "ociVersion", "\(version.debugDescription) is not a 1.x runtime spec")
        }
        guard let process = spec.process else { throw SpecError.invalid(container, "process", "missing") }
        try ProcessPlan(container: container).validate(process, field: "process")
        return spec
    }

    /// The whole native-mode plan for `spec` as created by `request`.
    func plan(_ spec: OCISpec, id: String, cgroupPath: String, request: Berth_Runtime_V1_CreateRequest) throws -> PlanRecords {
        try refuseUnsupported(spec)
        var plan = PlanRecords(container: container)
        try plan.add("id", id, from: "id")
        try addRoot(spec, rootfs: request.rootfs, to: &plan)
        try addNamespaces(spec.linux, hostname: spec.hostname, to: &plan)
        try addMounts(spec.mounts ?? [], to: &plan)
        try addDevices(spec.linux?.devices ?? [], to: &plan)
        try plan.add("cgroup_path", cgroupPath, from: "linux.cgroupsPath")
        try cgroups.addRecords(to: &plan)
        let resources = ResourcePlan(container: container)
        try resources.addDeviceRules(spec.linux?.resources, devices: spec.linux?.devices ?? [], to: &plan)
        try resources.add(spec.linux?.resources, to: &plan)
        for (name, value) in (spec.linux?.sysctl ?? [:]).sorted(by: { $0.key < $1.key }) {
            try plan.add("sysctl", name, value, from: "linux.sysctl")
        }
        for path in spec.linux?.maskedPaths ?? [] { try plan.add("masked_path", path, from: "linux.maskedPaths") }
        for path in spec.linux?.readonlyPaths ?? [] { try plan.add("readonly_path", path, from: "linux.readonlyPaths") }
        try SeccompPlan(container: container).add(spec.linux?.seccomp, to: &plan)
        if let adjust = spec.process?.oomScoreAdj {
            guard (-1000...1000).contains(adjust) else {
                throw SpecError.invalid(container, "process.oomScoreAdj", "\(adjust) is outside -1000...1000")
            }
            try plan.add("oom_score_adj", String(adjust), from: "process.oomScoreAdj")
        }
        try ProcessPlan(container: container).add(spec.process!, stdio: request.stdio, field: "process", to: &plan)
        return plan
    }

    private func refuseUnsupported(_ spec: OCISpec) throws {
        if let process = spec.process { try ProcessPlan(container: container).refuseUnsupported(process, field: "process") }
        let linux = spec.linux
        let fields: [(String, Bool)] = [
            ("hooks", spec.hooks.isGiven), ("domainname", !(spec.domainname ?? "").isEmpty),
            ("solaris", spec.solaris.isGiven), ("windows", spec.windows.isGiven), ("vm", spec.vm.isGiven),
            ("linux.mountLabel", linux?.mountLabel.isGiven ?? false), ("linux.intelRdt", linux?.intelRdt.isGiven ?? false),
            ("linux.personality", linux?.personality.isGiven ?? false),
            ("linux.timeOffsets", linux?.timeOffsets.isGiven ?? false),
        ]
        if let (name, _) = fields.first(where: { $0.1 }) { throw SpecError.unsupported(container, name) }
        let propagation = linux?.rootfsPropagation ?? ""
        guard ["", "private", "rprivate"].contains(propagation) else {
            throw SpecError.unsupported(container, "linux.rootfsPropagation", "\(propagation.debugDescription); the root is always made private")
        }
    }

    /// The root: the client's rootfs mounts on our directory, or an absolute root.path as is.
    private func addRoot(_ spec: OCISpec, rootfs: [Containerd_Types_Mount], to plan: inout PlanRecords) throws {
        if rootfs.isEmpty {
            guard let path = spec.root?.path, path.hasPrefix("/") else {
                throw SpecError.invalid(
                    container, "root.path",
                    "with no rootfs mounts in the request the root must be an absolute path, not \((spec.root?.path ?? "").debugDescription)")
            }
            try plan.add("rootfs", path, from: "root.path")
        } else {
            try plan.add("rootfs", rootfsDirectory, from: "root.path")
            for mount in rootfs {
                let type = mount.type.isEmpty ? "bind" : mount.type
                try plan.add("rootfs_mount", [type, mount.source] + mount.options, from: "rootfs mount \(mount.source)")
            }
        }
        if spec.root?.readonly == true { try plan.add("readonly_rootfs", "1", from: "root.readonly") }
    }

    private static let namespaceKinds = ["pid": "pid", "network": "network", "mount": "mount", "ipc": "ipc", "uts": "uts", "user": "user", "cgroup": "cgroup"]
    /// Kinds the keeper can join by path (keeper_protocol.h, record `namespace`).
    private static let joinable: Set = ["network", "ipc", "uts", "pid"]

    private func addNamespaces(_ linux: OCILinux?, hostname: String?, to plan: inout PlanRecords) throws {
        var kinds = Set<String>()
        for namespace in linux?.namespaces ?? [] {
            guard let kind = Self.namespaceKinds[namespace.type] else {
                throw SpecError.unsupported(container, "linux.namespaces type \(namespace.type.debugDescription)")
            }
            guard kinds.insert(kind).inserted else {
                throw SpecError.invalid(container, "linux.namespaces", "\(kind) is listed twice")
            }
            if let path = namespace.path, !path.isEmpty {
                guard Self.joinable.contains(kind) else {
                    throw SpecError.unsupported(container, "linux.namespaces \(kind) path", "only network, ipc, uts and pid can be joined")
                }
                try plan.add("namespace", kind, path, from: "linux.namespaces")
            } else {
                try plan.add("namespace", kind, from: "linux.namespaces")
            }
        }
        for map in linux?.uidMappings ?? [] {
            try plan.add("uid_map", String(map.containerID), String(map.hostID), String(map.size), from: "linux.uidMappings")
        }
        for map in linux?.gidMappings ?? [] {
            try plan.add("gid_map", String(map.containerID), String(map.hostID), String(map.size), from: "linux.gidMappings")
        }
        if let hostname, !hostname.isEmpty {
            guard kinds.contains("uts") else {
                throw SpecError.invalid(container, "hostname", "setting a hostname needs a new uts namespace")
            }
            try plan.add("hostname", hostname, from: "hostname")
        }
    }

    private func addMounts(_ mounts: [OCIMount], to plan: inout PlanRecords) throws {
        for (index, mount) in mounts.enumerated() {
            let field = "mounts[\(index)]"
            guard mount.destination.hasPrefix("/") else {
                throw SpecError.invalid(container, field, "destination \(mount.destination.debugDescription) is not an absolute path")
            }
            if mount.uidMappings.isGiven || mount.gidMappings.isGiven {
                throw SpecError.unsupported(container, "\(field).uidMappings/gidMappings", "id-mapped mounts")
            }
            let options = mount.options ?? []
            let isBind = options.contains("bind") || options.contains("rbind")
            var type = mount.type ?? ""
            if type.isEmpty || type == "none" { type = isBind ? "bind" : "" }
            guard !type.isEmpty else {
                throw SpecError.invalid(container, field, "no type and no bind option for \(mount.destination)")
            }
            let source = mount.source ?? type
            try plan.add("mount", [mount.destination, type, source.isEmpty ? type : source] + options, from: field)
        }
    }

    private func addDevices(_ devices: [OCIDevice], to plan: inout PlanRecords) throws {
        for device in devices {
            let field = "linux.devices \(device.path)"
            guard ["c", "b", "p", "u"].contains(device.type) else {
                throw SpecError.invalid(container, field, "type \(device.type.debugDescription) is not c, b, u or p")
            }
            let type = device.type == "u" ? "c" : device.type
            try plan.add(
                "device", device.path, type, String(device.major ?? 0), String(device.minor ?? 0),
                String((device.fileMode ?? 0o666) & 0o7777), String(device.uid ?? 0), String(device.gid ?? 0), from: field)
        }
    }
}
