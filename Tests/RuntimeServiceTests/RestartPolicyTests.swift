import Testing

@testable import Runtime

/// The restart labels' meaning, one case per rule of `RestartPolicy`.
@Suite struct RestartPolicyTests {
    @Test func labels_eachValue_namesItsPolicyOrNone() {
        #expect(RestartPolicy(label: nil) == .always)
        #expect(RestartPolicy(label: "always") == .always)
        #expect(RestartPolicy(label: "unless-stopped") == .unlessStopped)
        #expect(RestartPolicy(label: "no") == .never)
        #expect(RestartPolicy(label: "on-failure") == .onFailure(limit: nil))
        #expect(RestartPolicy(label: "on-failure:3") == .onFailure(limit: 3))
        #expect(RestartPolicy(label: "on-failure:0") == .onFailure(limit: nil))
        #expect(RestartPolicy(label: "on-failure:x") == nil)
        #expect(RestartPolicy(label: "on-failure:-1") == nil)
        #expect(RestartPolicy(label: "sometimes") == nil)
    }

    @Test func always_restartsAfterAnyExit_anExplicitStopHoldsUntilTheDaemonRestarts() {
        let policy = RestartPolicy.always
        #expect(policy.restarts(exitStatus: 0, restarts: 50, explicitlyStopped: false, atDaemonStart: false))
        #expect(policy.restarts(exitStatus: nil, restarts: 0, explicitlyStopped: false, atDaemonStart: false))
        #expect(!policy.restarts(exitStatus: 137, restarts: 0, explicitlyStopped: true, atDaemonStart: false))
        #expect(policy.restarts(exitStatus: 137, restarts: 0, explicitlyStopped: true, atDaemonStart: true))
    }

    @Test func unlessStopped_anExplicitStopHoldsForGood() {
        let policy = RestartPolicy.unlessStopped
        #expect(policy.restarts(exitStatus: 1, restarts: 0, explicitlyStopped: false, atDaemonStart: false))
        #expect(!policy.restarts(exitStatus: 137, restarts: 0, explicitlyStopped: true, atDaemonStart: false))
        #expect(!policy.restarts(exitStatus: 137, restarts: 0, explicitlyStopped: true, atDaemonStart: true))
    }

    @Test func onFailure_onlyNonZeroExits_upToTheLimit() {
        let policy = RestartPolicy.onFailure(limit: 2)
        #expect(!policy.restarts(exitStatus: 0, restarts: 0, explicitlyStopped: false, atDaemonStart: false))
        #expect(policy.restarts(exitStatus: 3, restarts: 1, explicitlyStopped: false, atDaemonStart: false))
        #expect(!policy.restarts(exitStatus: 3, restarts: 2, explicitlyStopped: false, atDaemonStart: false))
        #expect(!policy.restarts(exitStatus: 3, restarts: 0, explicitlyStopped: true, atDaemonStart: false))
        #expect(RestartPolicy.onFailure(limit: nil).restarts(exitStatus: 3, restarts: 1000, explicitlyStopped: false, atDaemonStart: false))
        #expect(!RestartPolicy.never.restarts(exitStatus: 3, restarts: 0, explicitlyStopped: false, atDaemonStart: false))
    }
}
