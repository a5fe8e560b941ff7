/// Orders registrations so that every plugin starts after the plugins whose types it requires.
///
/// The whole graph is checked before anything starts. A registration is rejected, with an
/// error naming it, when its `type.id` was already registered, when a type it requires has no
/// (remaining) provider, or when it sits on a dependency cycle. Rejections never abort the
/// plan: the kernel records them and decides, per plugin, whether they are fatal.
/// Worked example: [runtime requires snapshotter, snapshotter] plans to [snapshotter, runtime].
public enum DependencyGraph {
    /// A start order and the registrations that cannot be part of it.
    public struct Plan: Sendable {
        public var order: [Registration]
        public var rejected: [(registration: Registration, error: BerthError)]
    }

    /// Plans the start order; ties keep a stable, name-sorted order.
    public static func plan(_ registrations: [Registration]) -> Plan {
        var rejected = [(registration: Registration, error: BerthError)]()
        var kept = [Registration]()
        var seen = Set<PluginName>()
        for registration in registrations {
            if seen.insert(registration.name).inserted {
                kept.append(registration)
            } else {
                rejected.append((registration, .alreadyExists("plugin \(registration.name) is registered twice; the second registration was refused")))
            }
        }
        kept = dropUnprovided(kept, into: &rejected)
        return Plan(order: order(kept, into: &rejected), rejected: rejected)
    }

    /// Removes registrations that require an absent type, until none is left to remove.
    private static func dropUnprovided(
        _ registrations: [Registration],
        into rejected: inout [(registration: Registration, error: BerthError)]
    ) -> [Registration] {
        var kept = registrations
        while true {
            let provided = Set(kept.map(\.name.type))
            let missing = kept.filter { !$0.requires.allSatisfy(provided.contains) }
            guard !missing.isEmpty else { return kept }
            for registration in missing {
                let absent = registration.requires.filter { !provided.contains($0) }.map(\.rawValue)
                rejected.append(
                    (
                        registration,
                        .failedPrecondition(
                            "plugin \(registration.name) requires type \(absent.joined(separator: ", ")), which no registered plugin provides")
                    ))
            }
            let names = Set(missing.map(\.name))
            kept.removeAll { names.contains($0.name) }
        }
    }

    /// Depth-first topological sort; a node met again while on the stack closes a cycle, and
    /// every member of the cycle is rejected, as is whatever depends on it.
    private static func order(
        _ registrations: [Registration],
        into rejected: inout [(registration: Registration, error: BerthError)]
    ) -> [Registration] {
        let sortedIndices = registrations.indices.sorted { registrations[$0].name < registrations[$1].name }
        let providers = Dictionary(grouping: sortedIndices, by: { registrations[$0].name.type })
        enum Mark { case visiting, done, failed }
        var marks = [Int: Mark]()
        var result = [Registration]()
        var stack = [Int]()
        var failures = [Int: BerthError]()

        func visit(_ index: Int) -> Bool {
            switch marks[index] {
            case .done: return true
            case .failed: return false
            case .visiting:
                let cycle = stack.drop(while: { $0 != index }) + [index]
                let text = cycle.map { registrations[$0].name.description }.joined(separator: " -> ")
                for member in cycle { failures[member] = .failedPrecondition("plugin dependency cycle: \(text)") }
                return false
            case nil: break
            }
            marks[index] = .visiting
            stack.append(index)
            var ok = true
            for type in registrations[index].requires.sorted() {
                for dependency in providers[type, default: []] where dependency != index && !visit(dependency) {
                    ok = false
                    if failures[index] == nil {
                        failures[index] = .failedPrecondition(
                            "plugin \(registrations[index].name) requires \(registrations[dependency].name), which cannot start")
                    }
                }
            }
            stack.removeLast()
            marks[index] = ok && failures[index] == nil ? .done : .failed
            if marks[index] == .done { result.append(registrations[index]) }
            return marks[index] == .done
        }

        for index in sortedIndices { _ = visit(index) }
        for index in sortedIndices { if let error = failures[index] { rejected.append((registrations[index], error)) } }
        return result
    }
}
