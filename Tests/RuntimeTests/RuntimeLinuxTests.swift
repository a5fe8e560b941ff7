import BerthPluginKit
import BerthProto
import Foundation
import Testing

/// The Linux runtime plugin through the runtime contract's kit, in both keeper modes: native
/// (the keeper sets the container up itself) and oci (the keeper drives runc). Needs root.
/// Serialized: each case runs real containers, and this machine has two cores.
@Suite(.serialized) struct RuntimeLinuxTests {
    static let build =
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path + "/.build/debug"
    static let plugin = build + "/libBerthRuntimeLinux.so"

    /// One busybox tree for every case, made on first use.
    static let rootfs: String = {
        let path = NSTemporaryDirectory() + "berth-rtkit-rootfs"
        try? BusyboxRootfs.make(at: path)
        return path
    }()

    @Test(arguments: RuntimeConformance.cases)
    func nativeMode(rule: RuntimeConformance.Case) async throws {
        try await RuntimeConformance.run(rule, plugin: Self.plugin, id: "linux", configJSON: #"{"mode":"native"}"#, rootfs: Self.rootfs)
    }

    @Test(arguments: RuntimeConformance.cases)
    func ociMode(rule: RuntimeConformance.Case) async throws {
        try await RuntimeConformance.run(rule, plugin: Self.plugin, id: "linux", configJSON: #"{"mode":"oci"}"#, rootfs: Self.rootfs)
    }
}
