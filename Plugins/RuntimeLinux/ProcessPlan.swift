import BerthPluginSDK
import BerthProto
import FoundationEssentials
import Glibc

/// Process records of a keeper plan (keeper_protocol.h section 2, "Process records") from an
/// OCI `process` object: the init's part of the container plan, and the whole of an exec plan.
struct ProcessPlan {
    let container: String

    /// Decodes an exec's process document (ExecRequest.spec).
    func decodeExec(_ data: Data) throws -> OCIProcess {
        do {
            return try JSONDecoder().decode(OCIProcess.self, from: data)
        } catch {
            throw SpecError.invalid(container, "process", "not a JSON OCI process object: \(SpecText.describe(error))")
        }
    }

    /// Refuses what is malformed in any mode; `field` is "process" for the init and "exec
    /// process" for an exec.
    func validate(_ process: OCIProcess, field: String) throws {
        guard let args = process.args, !args.isEmpty, !args[0].isEmpty else {
            throw SpecError.invalid(container, "\(field).args", "missing or empty: a process needs its argv")
        }
        if let cwd = process.cwd, !cwd.isEmpty, !cwd.hasPrefix("/") {
            throw SpecError.invalid(container, "\(field).cwd", "\(cwd.debugDescription) is not an absolute path")
        }
    }

    /// Refuses what the keeper cannot do itself (native mode; an OCI runtime may).
    func refuseUnsupported(_ process: OCIProcess, field: String) throws {
        let unsupported: [(String, Bool)] = [
            ("commandLine", process.commandLine.isGiven), ("apparmorProfile", process.apparmorProfile.isGiven),
            ("selinuxLabel", process.selinuxLabel.isGiven), ("ioPriority", process.ioPriority.isGiven),
            ("scheduler", process.scheduler.isGiven), ("execCPUAffinity", process.execCPUAffinity.isGiven),
            ("user.username", process.user?.username.isGiven ?? false),
        ]
        if let (name, _) = unsupported.first(where: { $0.1 }) {
            throw SpecError.unsupported(container, "\(field).\(name)")
        }
    }

    /// Appends the process records for `process` with its stdio.
    func add(_ process: OCIProcess, stdio: Berth_Runtime_V1_Stdio, field: String, to plan: inout PlanRecords) throws {
        for arg in process.args ?? [] { try plan.add("arg", arg, from: "\(field).args") }
        for variable in process.env ?? [] { try plan.add("env", variable, from: "\(field).env") }
        if let cwd = process.cwd, !cwd.isEmpty { try plan.add("cwd", cwd, from: "\(field).cwd") }
        try addUser(process.user, field: field, to: &plan)
        if process.terminal == true || stdio.terminal {
            try plan.add("terminal", "1", from: "\(field).terminal")
            if let size = process.consoleSize {
                try plan.add("console_width", String(size.width), from: "\(field).consoleSize")
                try plan.add("console_height", String(size.height), from: "\(field).consoleSize")
            }
        }
        try addStdio(stdio, field: field, to: &plan)
        if process.noNewPrivileges == true { try plan.add("no_new_privileges", "1", from: "\(field).noNewPrivileges") }
        try addCapabilities(process.capabilities, field: field, to: &plan)
        for limit in process.rlimits ?? [] {
            guard limit.type.hasPrefix("RLIMIT_") else {
                throw SpecError.invalid(container, "\(field).rlimits", "\(limit.type.debugDescription) is not an RLIMIT_ name")
            }
            try plan.add("rlimit", limit.type, String(limit.soft), String(limit.hard), from: "\(field).rlimits")
        }
    }

    private func addUser(_ user: OCIUser?, field: String, to plan: inout PlanRecords) throws {
        guard let user else { return }
        if let uid = user.uid { try plan.add("uid", String(uid), from: "\(field).user.uid") }
        if let gid = user.gid { try plan.add("gid", String(gid), from: "\(field).user.gid") }
        for gid in user.additionalGids ?? [] {
            try plan.add("additional_gid", String(gid), from: "\(field).user.additionalGids")
        }
        if let umask = user.umask {
            guard umask <= 0o777 else { throw SpecError.invalid(container, "\(field).user.umask", "\(umask) is above 0777") }
            try plan.add("umask", String(umask, radix: 8), from: "\(field).user.umask")
        }
    }

    private func addStdio(_ stdio: Berth_Runtime_V1_Stdio, field: String, to plan: inout PlanRecords) throws {
        for (key, path) in [("stdin", stdio.stdin), ("stdout", stdio.stdout), ("stderr", stdio.stderr)] where !path.isEmpty {
            guard path.hasPrefix("/") else {
                throw PluginError(.invalidArgument, "container \(container): stdio \(key) \(path.debugDescription) is not an absolute path")
            }
            try plan.add(key, path, from: "stdio.\(key)")
        }
    }

    /// A set the spec leaves out is empty (keeper_protocol.h: "a set with no records is empty").
    private func addCapabilities(_ sets: OCICapabilities?, field: String, to plan: inout PlanRecords) throws {
        guard let sets else { return }
        let named: [(String, [String]?)] = [
            ("bounding", sets.bounding), ("effective", sets.effective), ("permitted", sets.permitted),
            ("inheritable", sets.inheritable), ("ambient", sets.ambient),
        ]
        for (set, names) in named {
            for name in names ?? [] {
                guard name.hasPrefix("CAP_") else {
                    throw SpecError.invalid(container, "\(field).capabilities.\(set)", "\(name.debugDescription) is not a CAP_ name")
                }
                try plan.add("cap_\(set)", name, from: "\(field).capabilities.\(set)")
            }
        }
    }
}

/// Short descriptions of decoding errors, for messages a client reads.
enum SpecText {
    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let context):
            return context.debugDescription + path(context.codingPath)
        case DecodingError.keyNotFound(let key, let context):
            return "missing \(key.stringValue)" + path(context.codingPath)
        case DecodingError.typeMismatch(let type, let context):
            return "expected \(type)" + path(context.codingPath)
        case DecodingError.valueNotFound(let type, let context):
            return "missing \(type)" + path(context.codingPath)
        default:
            return String(describing: error)
        }
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.isEmpty ? "" : " at " + keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }
}
