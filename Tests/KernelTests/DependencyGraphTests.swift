import Testing

@testable import Kernel

@Suite struct DependencyGraphTests {
    @Test func plan_requirementsFirst_ordersDependenciesBeforeDependents() {
        let plan = DependencyGraph.plan([
            builtin("t.runtime", "linux", requires: ["t.snapshotter", "t.content"]),
            builtin("t.content", "content"),
            builtin("t.snapshotter", "overlayfs", requires: ["t.content"]),
        ])
        #expect(plan.order.map(\.name.description) == ["t.content.content", "t.snapshotter.overlayfs", "t.runtime.linux"])
        #expect(plan.rejected.isEmpty)
    }

    @Test func plan_duplicateName_rejectsSecondWithAlreadyExists() {
        let plan = DependencyGraph.plan([builtin("t.a", "x"), builtin("t.a", "x"), builtin("t.a", "y")])
        #expect(plan.order.map(\.name.description) == ["t.a.x", "t.a.y"])
        #expect(plan.rejected.count == 1)
        #expect(plan.rejected.first?.error.code == .alreadyExists)
        #expect(plan.rejected.first?.error.message == "plugin t.a.x is registered twice; the second registration was refused")
    }

    @Test func plan_missingType_rejectsPluginAndItsDependents() {
        let plan = DependencyGraph.plan([
            builtin("t.a", "needs-ghost", requires: ["t.ghost"]),
            builtin("t.b", "needs-a", requires: ["t.a"]),
            builtin("t.c", "free"),
        ])
        #expect(plan.order.map(\.name.description) == ["t.c.free"])
        let messages = plan.rejected.map(\.error.message).sorted()
        #expect(
            messages == [
                "plugin t.a.needs-ghost requires type t.ghost, which no registered plugin provides",
                "plugin t.b.needs-a requires type t.a, which no registered plugin provides",
            ])
    }

    @Test func plan_cycle_rejectsEveryMemberNamingTheCycle() {
        let plan = DependencyGraph.plan([
            builtin("t.a", "1", requires: ["t.b"]),
            builtin("t.b", "2", requires: ["t.a"]),
            builtin("t.c", "3"),
        ])
        #expect(plan.order.map(\.name.description) == ["t.c.3"])
        #expect(Set(plan.rejected.map(\.registration.name.description)) == ["t.a.1", "t.b.2"])
        #expect(plan.rejected.allSatisfy { $0.error.message == "plugin dependency cycle: t.a.1 -> t.b.2 -> t.a.1" })
    }

    @Test func plan_dependentOfCycle_isRejectedToo() {
        let plan = DependencyGraph.plan([
            builtin("t.a", "1", requires: ["t.b"]),
            builtin("t.b", "2", requires: ["t.a"]),
            builtin("t.d", "4", requires: ["t.a"]),
        ])
        #expect(plan.order.isEmpty)
        #expect(plan.rejected.count == 3)
    }
}
