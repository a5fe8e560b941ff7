import Glibc

/// Starts `body` on a new detached thread named `name` (at most 15 bytes show in /proc), for
/// a plugin's long-running producer that must not hold a pool thread. A plain pthread: the
/// SDK leaves Foundation's `Thread` out, so that a plugin need not load Foundation.
public func startDetachedThread(name: String, _ body: @escaping @Sendable () -> Void) throws(PluginError) {
    final class Start {
        let name: String
        let body: @Sendable () -> Void
        init(name: String, body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }
    let start = Unmanaged.passRetained(Start(name: name, body: body)).toOpaque()
    var thread = pthread_t()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    let result = pthread_create(
        &thread, &attributes,
        { argument in
            let start = Unmanaged<Start>.fromOpaque(argument!).takeRetainedValue()
            nameThisThread(start.name)
            start.body()
            return nil
        }, start)
    guard result == 0 else {
        Unmanaged<Start>.fromOpaque(start).release()
        throw PluginError(.internal, "cannot start thread \(name): \(String(cString: strerror(result)))")
    }
}

/// Names the calling thread through /proc (pthread_setname_np needs _GNU_SOURCE, which Swift's
/// Glibc module does not define); the kernel keeps the first 15 bytes.
private func nameThisThread(_ name: String) {
    let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    _ = Array(name.utf8.prefix(15)).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
}
