import BerthPluginSDK

/// A porting template for a Windows runtime. It builds and loads on every platform so that
/// porting teams start from a plugin that already passes the loader, and it says plainly why
/// it does not run: on Linux there is no Host Compute Service, and on Windows nobody has
/// written the HCS calls yet. Porting means replacing `start()` and filling `methods`.
final class RuntimeWindowsStub: BerthPlugin {
    let methods = MethodTable()

    init(host: PluginHost) {}

    func start() async throws {
        #if os(Windows)
            throw PluginSkip("skip plugin: the Windows runtime is a template; its Host Compute Service calls are not written yet")
        #else
            throw PluginSkip("skip plugin: the Windows runtime needs the Host Compute Service, which this platform does not have")
        #endif
    }
}
