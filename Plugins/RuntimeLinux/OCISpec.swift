import FoundationEssentials
import Glibc

/// The part of the OCI runtime spec (runtime-spec 1.x, config.md and config-linux.md) that the
/// Linux runtime reads. Fields the keeper cannot honour are decoded as `JSONPresence`, so that
/// a spec using them is refused by name instead of being run without them.
struct OCISpec: Decodable {
    var ociVersion: String?
    var process: OCIProcess?
    var root: OCIRoot?
    var hostname: String?
    var domainname: String?
    var mounts: [OCIMount]?
    var hooks: JSONPresence?
    var linux: OCILinux?
    var solaris: JSONPresence?
    var windows: JSONPresence?
    var vm: JSONPresence?
}

/// `process` (config.md "Process"); also the whole document of an exec.
struct OCIProcess: Decodable {
    var terminal: Bool?
    var consoleSize: OCIConsoleSize?
    var user: OCIUser?
    var args: [String]?
    var commandLine: JSONPresence?
    var env: [String]?
    var cwd: String?
    var capabilities: OCICapabilities?
    var rlimits: [OCIRlimit]?
    var noNewPrivileges: Bool?
    var apparmorProfile: JSONPresence?
    var oomScoreAdj: Int?
    var selinuxLabel: JSONPresence?
    var ioPriority: JSONPresence?
    var scheduler: JSONPresence?
    var execCPUAffinity: JSONPresence?
}

struct OCIConsoleSize: Decodable {
    var height: UInt32
    var width: UInt32
}

struct OCIUser: Decodable {
    var uid: UInt32?
    var gid: UInt32?
    var umask: UInt32?
    var additionalGids: [UInt32]?
    var username: JSONPresence?
}

struct OCICapabilities: Decodable {
    var bounding: [String]?
    var effective: [String]?
    var inheritable: [String]?
    var permitted: [String]?
    var ambient: [String]?
}

struct OCIRlimit: Decodable {
    var type: String
    var soft: UInt64
    var hard: UInt64
}

struct OCIRoot: Decodable {
    var path: String
    var readonly: Bool?
}

struct OCIMount: Decodable {
    var destination: String
    var type: String?
    var source: String?
    var options: [String]?
    var uidMappings: JSONPresence?
    var gidMappings: JSONPresence?
}

struct OCILinux: Decodable {
    var namespaces: [OCINamespace]?
    var uidMappings: [OCIIDMapping]?
    var gidMappings: [OCIIDMapping]?
    var devices: [OCIDevice]?
    var cgroupsPath: String?
    var resources: OCIResources?
    var sysctl: [String: String]?
    var seccomp: OCISeccomp?
    var maskedPaths: [String]?
    var readonlyPaths: [String]?
    var rootfsPropagation: String?
    var mountLabel: JSONPresence?
    var intelRdt: JSONPresence?
    var personality: JSONPresence?
    var timeOffsets: JSONPresence?
}

struct OCINamespace: Decodable {
    var type: String
    var path: String?
}

struct OCIIDMapping: Decodable {
    var containerID: UInt32
    var hostID: UInt32
    var size: UInt32
}

struct OCIDevice: Decodable {
    var path: String
    var type: String
    var major: Int64?
    var minor: Int64?
    var fileMode: UInt32?
    var uid: UInt32?
    var gid: UInt32?
}

struct OCIResources: Decodable {
    var devices: [OCIDeviceRule]?
    var memory: OCIMemory?
    var cpu: OCICPU?
    var pids: OCIPids?
    var blockIO: JSONPresence?
    var hugepageLimits: JSONPresence?
    var network: JSONPresence?
    var rdma: JSONPresence?
    var unified: JSONPresence?
}

struct OCIDeviceRule: Decodable {
    var allow: Bool
    var type: String?
    var major: Int64?
    var minor: Int64?
    var access: String?
}

struct OCIMemory: Decodable {
    var limit: Int64?
    var swap: Int64?
    var reservation: JSONPresence?
    var kernel: JSONPresence?
    var kernelTCP: JSONPresence?
    var swappiness: JSONPresence?
    var disableOOMKiller: Bool?
    var useHierarchy: JSONPresence?
    var checkBeforeUpdate: JSONPresence?
}

struct OCICPU: Decodable {
    var shares: UInt64?
    var quota: Int64?
    var period: UInt64?
    var realtimeRuntime: JSONPresence?
    var realtimePeriod: JSONPresence?
    var cpus: String?
    var mems: String?
    var idle: JSONPresence?
}

struct OCIPids: Decodable {
    var limit: Int64
}

struct OCISeccomp: Decodable {
    var defaultAction: String
    var defaultErrnoRet: UInt32?
    var architectures: [String]?
    var flags: JSONPresence?
    var listenerPath: JSONPresence?
    var listenerMetadata: JSONPresence?
    var syscalls: [OCISyscall]?
}

struct OCISyscall: Decodable {
    var names: [String]
    var action: String
    var errnoRet: UInt32?
    var args: [OCISyscallArg]?
}

struct OCISyscallArg: Decodable {
    var index: UInt32
    var value: UInt64
    var valueTwo: UInt64?
    var op: String
}

/// Any JSON value, kept only as "was it there with content": an empty object, array or string,
/// `false` and `0` count as absent, as Go's `omitempty` writers would have left them out.
struct JSONPresence: Decodable {
    let isEmpty: Bool

    init(from decoder: any Decoder) throws {
        let value = try decoder.singleValueContainer()
        if value.decodeNil() {
            isEmpty = true
        } else if let object = try? value.decode([String: JSONPresence].self) {
            isEmpty = object.values.allSatisfy(\.isEmpty)
        } else if let array = try? value.decode([JSONPresence].self) {
            isEmpty = array.isEmpty
        } else if let text = try? value.decode(String.self) {
            isEmpty = text.isEmpty
        } else if let flag = try? value.decode(Bool.self) {
            isEmpty = !flag
        } else if let number = try? value.decode(Double.self) {
            isEmpty = number == 0
        } else {
            isEmpty = false
        }
    }
}

extension Optional where Wrapped == JSONPresence {
    /// True when the field was given with content.
    var isGiven: Bool { self.map { !$0.isEmpty } ?? false }
}
