import BerthPluginSDK
import BerthProto
import FoundationEssentials
import Glibc

extension LinuxRuntime {
    /// Delete: DELETE "" force=1 (the keeper kills what is left, removes its cgroups, replies
    /// and exits), then the rootfs mounts of mode oci and DIR. A container whose keeper is
    /// gone is cleaned up here instead: its cgroups (processes killed), mounts and DIR.
    /// Repeating it after success answers NOT_FOUND.
    func delete(_ request: Berth_Runtime_V1_ProcessRequest) async throws {
        let container = try container(request.namespace, request.id)
        guard request.execID.isEmpty else {
            try await deleteProcess(request)
            return
        }
        if container.abandonedExit == nil, let keeperPID = container.directory.liveKeeperPID {
            container.markDeleting(true)
            do {
                _ = try await keeper(container, .delete, ["", "1"])
            } catch let error as PluginError where error.code == .unavailable && !processRuns(keeperPID) {
                host.log(.warning, "container \(container.label): the keeper went during delete; cleaning up after it")
            } catch {
                // The keeper refused (a cgroup still busy, say) and lives on: the container is as before.
                container.markDeleting(false)
                throw error
            }
            try await waitGone(keeperPID, container: container)
        }
        container.markDeleted()
        let left = cgroups.removeAbandoned(container.record.cgroupPath)
        if container.record.mountedRootfs { RootfsMounts(container: container.label).unmountAll(container.directory.rootfs) }
        container.directory.remove()
        release(namespace: request.namespace, id: request.id)
        if !left.isEmpty {
            host.log(.warning, "container \(container.label): cgroups that could not be removed: \(left.joined(separator: ", "))")
        }
    }

    /// Waits up to 5 s for the keeper to exit after its DELETE reply. It exits right after
    /// replying, so the first looks come soon (0.25 ms, doubling up to 10 ms between looks): a
    /// fixed 10 ms sleep was most of a `ctr run --rm`'s Tasks.Delete.
    private func waitGone(_ pid: pid_t, container: LiveContainer) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        var pause = Duration.microseconds(250)
        while processRuns(pid) {
            guard ContinuousClock.now < deadline else {
                throw PluginError(.deadlineExceeded, "container \(container.label): delete: keeper \(pid) still runs 5 s after DELETE")
            }
            try await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(10))
        }
    }
}
