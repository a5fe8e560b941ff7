import Foundation
import Testing

/// Paths of the built tree, found from this file's location.
enum Tree {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path
    static let products = root + "/.build/debug"
    static let berthd = products + "/berthd"

    /// Where scripts/build-example.sh builds the Swift example: a copy outside the tree, as a
    /// third party starts from it, reaching the SDK through BERTH_SDK.
    static let helloPackage = ProcessInfo.processInfo.environment["BERTH_EXAMPLE_DIR"] ?? "/tmp/berth-example-hello"

    /// Builds the out-of-tree Swift example once per test run (scripts/test.sh has built it
    /// already, so this is quick there).
    static let helloPlugin: Result<String, Error> = Result {
        let result = try run(root + "/scripts/build-example.sh", [])
        guard result.status == 0 else { throw Failure("building Examples/HelloPlugin out of the tree failed:\n\(result.stderr)\(result.stdout)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs `swift ARGS` in the out-of-tree copy of the example, with BERTH_SDK set, on a thread
    /// of its own: a build holds it for minutes, and the test pool has only as many threads as cores.
    static func swiftInExample(_ arguments: [String]) async throws -> RunResult {
        let command = ["BERTH_SDK=\(root)/SDK", "swift"] + arguments + ["--package-path", helloPackage]
        return try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try run("/usr/bin/env", command) }) }
        }
    }

    /// Compiles the C example and fixtures into `directory`.
    static func cPlugin(_ source: String, flags: [String] = [], into directory: String, name: String) throws -> String {
        let output = "\(directory)/\(name).so"
        let result = try run(
            "/usr/bin/gcc",
            [
                "-shared", "-fPIC", "-I", root + "/SDK/Sources/CBerthPlugin/include",
                "-o", output, root + "/" + source,
            ] + flags)
        guard result.status == 0 else { throw Failure("gcc \(source): \(result.stderr)") }
        return output
    }
}

struct Failure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a program to completion, capturing both outputs through files (no pipe can fill up).
/// `started` is told the process once it runs (to stop one that hangs).
@discardableResult
func run(_ executable: String, _ arguments: [String], started: ((Process) -> Void)? = nil) throws -> RunResult {
    let base = NSTemporaryDirectory() + "run-\(UUID().uuidString)"
    FileManager.default.createFile(atPath: base + ".out", contents: nil)
    FileManager.default.createFile(atPath: base + ".err", contents: nil)
    defer {
        try? FileManager.default.removeItem(atPath: base + ".out")
        try? FileManager.default.removeItem(atPath: base + ".err")
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = FileHandle(forWritingAtPath: base + ".out")
    process.standardError = FileHandle(forWritingAtPath: base + ".err")
    try process.run()
    started?(process)
    process.waitUntilExit()
    return RunResult(
        status: process.terminationStatus,
        stdout: (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? "")
}

/// A berthd process on a private root, state and socket under one temporary directory.
final class Daemon: @unchecked Sendable {
    let directory: String
    let socket: String
    let logPath: String
    let configPath: String
    /// Whether the directory was made for this daemon, and goes with it.
    private let ownsDirectory: Bool
    let process = Process()

    /// Plugin tables for the in-tree plugins, as the default plugin.conf has them.
    static let inTreePlugins = """
        [plugins."io.containerd.snapshotter.v1.overlayfs"]
        path = "libBerthSnapshotter.so"
        required = true
        [plugins."io.containerd.snapshotter.v1.native"]
        path = "libBerthSnapshotter.so"
        [plugins."io.containerd.content.v1.content"]
        path = "libBerthContent.so"
        required = true
        [plugins."io.containerd.differ.v1.walking"]
        path = "libBerthDiffer.so"
        [plugins."io.containerd.runtime.v2.linux"]
        path = "libBerthRuntimeLinux.so"
        required = true
        [plugins."io.containerd.runtime.v2.windows"]
        path = "libBerthRuntimeWindowsStub.so"

        """

    /// Writes a config with `plugins` (TOML tables) and starts berthd on it; waits for the socket
    /// unless `expectFailure`.
    /// `settings` are top-level plugin.conf keys (`plugin_call_timeout_seconds = 1`).
    init(plugins: String = Daemon.inTreePlugins, directory: String? = nil, settings: String = "") throws {
        self.directory = directory ?? NSTemporaryDirectory() + "berthd-\(UUID().uuidString.prefix(8))"
        ownsDirectory = directory == nil
        socket = self.directory + "/berth.sock"
        logPath = self.directory + "/berthd.log"
        configPath = self.directory + "/plugin.conf"
        try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
        let config = """
            version = 1
            root = "\(self.directory)/root"
            state = "\(self.directory)/state"
            plugin_dir = "\(Tree.products)"
            \(settings)
            [grpc]
            address = "\(socket)"
            [runtime_aliases]
            "io.containerd.runc.v2" = "io.containerd.runtime.v2.linux"

            """ + plugins
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: Tree.berthd)
        process.arguments = ["--config", configPath]
        process.standardError = FileHandle(forWritingAtPath: logPath)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
    }

    /// Waits until the socket accepts `ctr version`, or the daemon exits.
    func waitReady() throws {
        for _ in 0..<400 {
            guard process.isRunning else { throw Failure("berthd exited with \(process.terminationStatus):\n\(log)") }
            if FileManager.default.fileExists(atPath: socket), (try? ctr(["version"]))?.status == 0 { return }
            usleep(25_000)
        }
        throw Failure("berthd did not become ready:\n\(log)")
    }

    /// Waits for the daemon to exit on its own and returns its status.
    func waitExit() -> Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Sends SIGTERM and waits for the exit status.
    func stop() -> Int32 {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        return waitExit()
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Mounts snapshot `key` as `ctr snapshots mounts` prints it, runs `script` with `sh -e` in
    /// the mounted tree, and unmounts; the result is the script's.
    func inSnapshot(_ key: String, snapshotter: String, namespace: String, _ script: String) throws -> RunResult {
        let target = directory + "/mnt"
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        let mount = try ctr(["snapshots", "--snapshotter", snapshotter, "mounts", target, key], namespace: namespace)
            .stdout.trimmingCharacters(in: .newlines)
        return try run("/bin/sh", ["-ec", "\(mount); cd \(target); \(script); cd /; umount \(target)"])
    }

    /// Runs containerd's ctr against this daemon.
    func ctr(_ arguments: [String], namespace: String = "default", started: ((Process) -> Void)? = nil) throws -> RunResult {
        try run("/usr/bin/ctr", ["--address", socket, "--namespace", namespace] + arguments, started: started)
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        // A test that named the directory (to restart on it) removes it itself.
        // BERTH_KEEP_TEST_DIRS=1 keeps every daemon's folder (its berthd.log) for a post-mortem.
        if ownsDirectory, ProcessInfo.processInfo.environment["BERTH_KEEP_TEST_DIRS"] == nil {
            try? FileManager.default.removeItem(atPath: directory)
        }
    }
}
