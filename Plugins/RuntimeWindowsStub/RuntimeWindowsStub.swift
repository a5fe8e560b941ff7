import BerthPluginSDK
import BerthProto

/// A porting template for a Windows runtime. It builds and loads on every platform so that
/// porting teams start from a plugin that already passes the loader, and it says plainly why
/// it does not run: on Linux there is no Host Compute Service, and on Windows nobody has
/// written the HCS calls yet.
///
/// Porting means replacing `start()` and, for each method of `BerthContracts.RuntimeContract`
/// below, the one line that says what the port must do there; the Linux runtime
/// (Plugins/RuntimeLinux) is the worked example of every method.
final class RuntimeWindowsStub: BerthPlugin {
    let methods: MethodTable

    /// What a port must do in each method of the runtime contract.
    static let portingNotes: [(path: String, todo: String)] = {
        let contract = BerthContracts.RuntimeContract.self
        return [
            (
                contract.create.path,
                "create an HCS compute system from the spec's `windows` section and the layer mounts, with its init process created but not started"
            ),
            (contract.start.path, "start the named process (the init or an exec) and answer its pid"),
            (
                contract.kill.path,
                "signal the process (SIGTERM/SIGKILL map to a shutdown or terminate of the compute system or process), every process when `all`"
            ),
            (contract.exec.path, "create an extra process in the running compute system from the OCI process JSON, not started"),
            (contract.resizePty.path, "resize the process's pseudo console (ResizePseudoConsole)"),
            (contract.closeIO.path, "close the process's stdin pipe so it reads end of file"),
            (contract.pause.path, "pause the compute system (HcsPauseComputeSystem)"),
            (contract.resume.path, "resume the compute system (HcsResumeComputeSystem)"),
            (contract.pids.path, "list the compute system's processes"),
            (contract.update.path, "apply new resource limits to the running compute system"),
            (contract.metrics.path, "answer the compute system's statistics as io.containerd.windows.v1 stats in an Any"),
            (contract.deleteProcess.path, "forget an exited exec process and release its handles"),
            (contract.delete.path, "terminate what is left of the compute system and remove everything made for it"),
            (contract.restore.path, "find the compute systems a previous instance made and report them with their processes' states"),
        ]
    }()

    init(host: PluginHost) {
        var methods = MethodTable()
        for note in Self.portingNotes {
            methods.unimplemented(note.path, because: "the Windows runtime is a porting template; a port must \(note.todo)")
        }
        self.methods = methods
    }

    func start() async throws {
        #if os(Windows)
            throw PluginSkip("skip plugin: the Windows runtime is a template; its Host Compute Service calls are not written yet")
        #else
            throw PluginSkip("skip plugin: the Windows runtime needs the Host Compute Service, which this platform does not have")
        #endif
    }
}
