import Foundation
import Testing

/// The container keeper (Helpers/keeper) through its own end-to-end suite: real containers from
/// a busybox rootfs in both modes (native and runc), driven over the keeper's control socket.
///
/// The keeper is compiled here with gcc, as Helpers/keeper/README.md builds it: SwiftPM links
/// its `berth-keeper` product through swiftc, which adds the Swift runtime (libswiftCore,
/// libstdc++) to a C program and raises each keeper's PSS from about 200 KiB to about 500 KiB,
/// over the suite's 300 KiB bound (measured with 20 keepers).
@Suite struct KeeperTests {
    @Test func keeper_endToEndSuite_passesEveryCase() async throws {
        let directory = NSTemporaryDirectory() + "keeper-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let keeper = directory + "/berth-keeper"
        let sources = try FileManager.default.contentsOfDirectory(atPath: Tree.root + "/Helpers/keeper")
            .filter { $0.hasSuffix(".c") }.map { Tree.root + "/Helpers/keeper/" + $0 }
        let build = try run(
            "/usr/bin/gcc",
            [
                "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE",
                "-I", Tree.root + "/Helpers/keeper/include",
            ] + sources + ["-lseccomp", "-lcap", "-o", keeper])
        #expect(build.status == 0, "gcc: \(build.stderr)")
        let script = Tree.root + "/Tests/Keeper/test_keeper.py"
        // On a thread of its own: the suite runs for a while and the test pool has few threads.
        let result = try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try run("/usr/bin/python3", [script, keeper]) }) }
        }
        let last = result.stdout.split(separator: "\n").last.map(String.init) ?? ""
        #expect(result.status == 0, "keeper suite failed:\n\(result.stdout.suffix(6000))\n\(result.stderr.suffix(3000))")
        #expect(last.hasSuffix("passed, 0 failed"), "last line: \(last)")
        // The suite really ran (it has dozens of cases).
        let passed = Int(last.split(separator: " ").first ?? "") ?? 0
        #expect(passed >= 50, "last line: \(last)")
    }
}
