import CBerthPlugin
import FoundationEssentials
import Glibc

/// A plugin shared object that passed the loader's checks, with its registrations read out.
/// Immutable after load, hence Sendable; the pointers it keeps are the module's static data.
///
/// Modules are never unloaded: a Swift image registers type metadata with the runtime that
/// cannot be taken back, and dlclose of such an image is unsafe.
public final class LoadedModule: Sendable {
    /// One registration as the module declared it.
    public struct Entry: @unchecked Sendable {  // ops and registrationData point into the module's static storage
        public var name: PluginName
        public var requires: [PluginType]
        public var platforms: [Platform]
        public var capabilities: [String]
        /// gRPC paths the plugin serves to clients (ABI 1.1; none for 1.0 modules).
        public var apiMethods: [String]
        /// The module's ops table, copied up to the module's own size; later fields are zero.
        let ops: berth_plugin_ops
        let registrationData: UnsafeMutableRawPointer?
    }

    /// The file as plugin.conf named it, resolved to an absolute path.
    public let path: String
    /// The module's own words on how it was built, for diagnostics.
    public let buildInfo: String
    /// The ABI version the module was compiled against.
    public let abiMajor: Int, abiMinor: Int
    public let entries: [Entry]

    init(path: String, buildInfo: String, abiMajor: Int, abiMinor: Int, entries: [Entry]) {
        self.path = path
        self.buildInfo = buildInfo
        self.abiMajor = abiMajor
        self.abiMinor = abiMinor
        self.entries = entries
    }
}

/// Opens plugin shared objects and checks them against the C contract in `berth_plugin.h`.
///
/// The checks run in this order and stop at the first refusal; every refusal names the file,
/// what was expected and what was found: the file exists; dlopen succeeds; the entry symbol
/// exists; the descriptor's signature, ABI major and struct sizes match. Only then is any
/// other field read or any plugin function called. Every struct is read through
/// `readPrefix`: only the bytes its writer's size covers, the rest zero, so a module built for
/// any 1.x minor loads and nothing past a short struct is touched.
public enum SharedObjectLoader {
    /// Loads and checks the shared object at `path`.
    public static func load(path: String) throws(BerthError) -> LoadedModule {
        guard FileManager.default.fileExists(atPath: path) else {
            throw .notFound("plugin file \(path) does not exist")
        }
        // RTLD_LOCAL|RTLD_DEEPBIND: a plugin binds to its own copies of libraries it linked
        // statically (SwiftProtobuf, its SDK) before the host's, so versions never mix.
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND) else {
            throw .failedPrecondition("plugin file \(path) cannot be loaded: \(dlErrorText())")
        }
        guard let symbol = dlsym(handle, BERTH_PLUGIN_ENTRY_SYMBOL) else {
            throw .failedPrecondition(
                "plugin file \(path) does not export the entry symbol \(BERTH_PLUGIN_ENTRY_SYMBOL): \(dlErrorText())")
        }
        let entry = unsafeBitCast(symbol, to: berth_plugin_entry_fn.self)
        guard let descriptor = entry() else {
            throw .failedPrecondition("plugin file \(path): \(BERTH_PLUGIN_ENTRY_SYMBOL) returned no module")
        }
        let module = try readHeader(UnsafeRawPointer(descriptor), path: path)
        return LoadedModule(
            path: path,
            buildInfo: module.build_info.map { String(cString: $0) } ?? "",
            abiMajor: Int(module.abi_major), abiMinor: Int(module.abi_minor),
            entries: try readEntries(module, path: path))
    }

    /// `value` as 0x and sixteen hexadecimal digits.
    private static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// Checks the descriptor field by field, trusting each only once the ones before it passed.
    private static func readHeader(_ raw: UnsafeRawPointer, path: String) throws(BerthError) -> berth_module {
        let signature = raw.loadUnaligned(as: UInt64.self)
        guard signature == BERTH_MODULE_SIGNATURE else {
            throw .failedPrecondition(
                "plugin file \(path) is not a Berth plugin module: expected signature \(hex(BERTH_MODULE_SIGNATURE)), found \(hex(signature))")
        }
        let major = raw.loadUnaligned(fromByteOffset: 8, as: UInt16.self)
        let minor = raw.loadUnaligned(fromByteOffset: 10, as: UInt16.self)
        guard major == BERTH_ABI_MAJOR else {
            throw .failedPrecondition(
                "plugin file \(path) was built for plugin ABI \(major).\(minor); this berthd speaks ABI \(BERTH_ABI_MAJOR).x (\(BERTH_ABI_MAJOR).\(BERTH_ABI_MINOR))"
            )
        }
        let size = raw.loadUnaligned(fromByteOffset: 12, as: UInt32.self)
        try requireSize("module descriptor", size, BERTH_MODULE_SIZE_1_0, path: path)
        let module = readPrefix(raw, size: size, as: berth_module.self)
        try requireSize("registration", module.registration_size, BERTH_REGISTRATION_SIZE_1_0, path: path)
        try requireSize("ops table", module.ops_size, BERTH_OPS_SIZE_1_0, path: path)
        return module
    }

    private static func requireSize(_ what: String, _ found: UInt32, _ minimum: UInt32, path: String) throws(BerthError) {
        guard found < minimum else { return }
        throw .failedPrecondition("plugin file \(path): \(what) is \(found) bytes, expected at least \(minimum) for ABI \(BERTH_ABI_MAJOR).0")
    }

    /// A copy of the `size` bytes the writer declared, zero beyond them and never read past them.
    /// (The module descriptor's size is not its first field, so this cannot be `berth_read_struct`.)
    static func readPrefix<T>(_ raw: UnsafeRawPointer, size: UInt32, as type: T.Type) -> T {
        let copied = min(Int(size), MemoryLayout<T>.size)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<T>.size, alignment: MemoryLayout<T>.alignment)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<T>.size)
        buffer.copyMemory(from: raw, byteCount: copied)
        return buffer.load(as: T.self)
    }

    private static func readEntries(_ m: berth_module, path: String) throws(BerthError) -> [LoadedModule.Entry] {
        guard m.registrations_count > 0, let base = m.registrations else {
            throw .failedPrecondition("plugin file \(path) declares no plugins")
        }
        var entries = [LoadedModule.Entry]()
        for index in 0..<m.registrations_count {
            // Step by the module's own struct size: a newer module's registrations may be larger.
            let raw = UnsafeRawPointer(base) + index * Int(m.registration_size)
            let registration = readPrefix(raw, size: m.registration_size, as: berth_registration.self)
            entries.append(try readEntry(registration, opsSize: m.ops_size, path: path, index: index))
        }
        return entries
    }

    private static func readEntry(_ r: berth_registration, opsSize: UInt32, path: String, index: Int) throws(BerthError) -> LoadedModule.Entry {
        guard let type = r.type.map({ String(cString: $0) }), !type.isEmpty,
            let id = r.id.map({ String(cString: $0) }), !id.isEmpty
        else {
            throw .failedPrecondition("plugin file \(path): registration \(index) has no type or id")
        }
        let name = PluginName(type: PluginType(type), id: id)
        guard let table = r.ops else {
            throw .failedPrecondition("plugin file \(path): plugin \(name) has no ops table")
        }
        // The table's own size first: nothing past it is read.
        let tableSize = UnsafeRawPointer(table).loadUnaligned(as: UInt32.self)
        guard tableSize >= BERTH_OPS_SIZE_1_0 else {
            throw .failedPrecondition(
                "plugin file \(path): plugin \(name) ops table is \(tableSize) bytes, expected at least \(BERTH_OPS_SIZE_1_0) for ABI \(BERTH_ABI_MAJOR).0")
        }
        let ops = readPrefix(UnsafeRawPointer(table), size: min(tableSize, opsSize), as: berth_plugin_ops.self)
        guard ops.create != nil, ops.start != nil, ops.call != nil, ops.stop != nil, ops.destroy != nil else {
            throw .failedPrecondition("plugin file \(path): plugin \(name) has a missing function in its ops table")
        }
        return LoadedModule.Entry(
            name: name,
            requires: strings(r.requires, r.requires_count).map { PluginType($0) },
            platforms: strings(r.platforms, r.platforms_count).map { Platform($0) },
            capabilities: strings(r.capabilities, r.capabilities_count),
            apiMethods: strings(r.api_methods, r.api_methods_count),
            ops: ops, registrationData: r.registration_data)
    }

    private static func strings(_ array: UnsafePointer<UnsafePointer<CChar>?>?, _ count: Int) -> [String] {
        guard let array else { return [] }
        return (0..<count).compactMap { array[$0].map { String(cString: $0) } }
    }

    private static func dlErrorText() -> String {
        dlerror().map { String(cString: $0) } ?? "unknown dynamic loader error"
    }
}
