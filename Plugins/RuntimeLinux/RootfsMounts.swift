import BerthPluginSDK
import BerthProto
import FoundationEssentials
import Glibc

/// Mode oci: runc expects the bundle's root to be a ready tree, so the plugin mounts the
/// request's rootfs mounts (usually one overlay from the snapshotter) on DIR/rootfs in the
/// host's mount namespace itself, as containerd's shim does, and unmounts them on delete.
/// In native mode the keeper mounts them inside the container's namespace instead.
struct RootfsMounts {
    let container: String

    private static let flags: [String: UInt] = [
        "ro": UInt(MS_RDONLY), "nosuid": UInt(MS_NOSUID), "nodev": UInt(MS_NODEV), "noexec": UInt(MS_NOEXEC),
        "rw": 0, "relatime": UInt(MS_RELATIME), "noatime": UInt(MS_NOATIME),
    ]

    /// Mounts `mounts` in order on `target`; on failure unmounts what it mounted and throws
    /// an error naming the mount and the target.
    func mount(_ mounts: [Containerd_Types_Mount], on target: String) throws {
        for (index, entry) in mounts.enumerated() {
            do {
                try mountOne(entry, on: target)
            } catch {
                for _ in 0..<index { umount2(target, Int32(MNT_DETACH)) }
                throw error
            }
        }
    }

    private func mountOne(_ entry: Containerd_Types_Mount, on target: String) throws {
        var flags: UInt = 0
        var data = [String]()
        for option in entry.options {
            if let flag = Self.flags[option] { flags |= flag } else if option != "bind" && option != "rbind" { data.append(option) }
        }
        let isBind = entry.type == "bind" || entry.options.contains("bind") || entry.options.contains("rbind")
        if isBind {
            let recursive = entry.options.contains("rbind") ? UInt(MS_REC) : 0
            try check(Glibc.mount(entry.source, target, nil, UInt(MS_BIND) | recursive, nil), entry, target)
            if flags & UInt(MS_RDONLY) != 0 {
                try check(Glibc.mount(nil, target, nil, UInt(MS_REMOUNT | MS_BIND) | flags, nil), entry, target)
            }
        } else {
            try check(Glibc.mount(entry.source, target, entry.type, flags, data.joined(separator: ",")), entry, target)
        }
    }

    private func check(_ result: Int32, _ entry: Containerd_Types_Mount, _ target: String) throws {
        guard result != 0 else { return }
        throw PluginError(
            .internal, "container \(container): create: mount \(entry.type) \(entry.source) on \(target): \(String(cString: strerror(errno)))")
    }

    /// Unmounts everything stacked on `target` (detached, so a busy tree does not fail delete).
    func unmountAll(_ target: String) {
        while umount2(target, Int32(MNT_DETACH)) == 0 {}
    }
}
