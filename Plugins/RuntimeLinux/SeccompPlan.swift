import BerthPluginSDK
import FoundationEssentials
import Glibc

/// The seccomp records of a keeper plan from `linux.seccomp` (config-linux.md "Seccomp"),
/// such as containerd's default profile that `ctr run --seccomp` sends: one `seccomp_rule`
/// record per syscall name.
struct SeccompPlan {
    let container: String
    /// The keeper refuses plans with more rules than this (keeper_protocol.h).
    static let maximumRules = 512

    private static let operators: Set = [
        "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ",
    ]

    func add(_ seccomp: OCISeccomp?, to plan: inout PlanRecords) throws {
        guard let seccomp else { return }
        if seccomp.flags.isGiven { throw SpecError.unsupported(container, "linux.seccomp.flags") }
        if seccomp.listenerPath.isGiven || seccomp.listenerMetadata.isGiven {
            throw SpecError.unsupported(container, "linux.seccomp.listenerPath", "seccomp notify")
        }
        let rules = (seccomp.syscalls ?? []).reduce(0) { $0 + $1.names.count }
        guard rules <= Self.maximumRules else {
            throw SpecError.unsupported(container, "linux.seccomp.syscalls", "\(rules) syscall rules, the keeper takes at most \(Self.maximumRules)")
        }
        var fields = [seccomp.defaultAction]
        if let errno = seccomp.defaultErrnoRet { fields.append(String(errno)) }
        try plan.add("seccomp_default", fields, from: "linux.seccomp.defaultAction")
        for arch in seccomp.architectures ?? [] { try plan.add("seccomp_arch", arch, from: "linux.seccomp.architectures") }
        for (index, syscall) in (seccomp.syscalls ?? []).enumerated() {
            let field = "linux.seccomp.syscalls[\(index)]"
            var arguments = [String]()
            for argument in syscall.args ?? [] {
                guard Self.operators.contains(argument.op) else {
                    throw SpecError.invalid(container, field, "argument operator \(argument.op.debugDescription) is unknown")
                }
                arguments.append("\(argument.index) \(argument.op) \(argument.value) \(argument.valueTwo ?? 0)")
            }
            for name in syscall.names {
                try plan.add("seccomp_rule", [name, syscall.action, syscall.errnoRet.map(String.init) ?? ""] + arguments, from: field)
            }
        }
    }
}
