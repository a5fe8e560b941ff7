import CBerthPlugin
import Foundation

/// A plugin shared object that passed the loader's checks, with its registrations read out.
///
/// Modules are never unloaded: a Swift image registers type metadata with the runtime that
/// cannot be taken back, and dlclose of such an image is unsafe.
public final class LoadedModule: @unchecked Sendable {
    /// One registration as the module declared it.
    public struct Entry: @unchecked Sendable {
        public var name: PluginName
        public var requires: [PluginType]
        public var platforms: [Platform]
        public var capabilities: [String]
        let ops: UnsafePointer<berth_plugin_ops>
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
/// other field read or any plugin function called.
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
        guard let module = entry() else {
            throw .failedPrecondition("plugin file \(path): \(BERTH_PLUGIN_ENTRY_SYMBOL) returned no module")
        }
        try checkHeader(module, path: path)
        return LoadedModule(
            path: path,
            buildInfo: module.pointee.build_info.map { String(cString: $0) } ?? "",
            abiMajor: Int(module.pointee.abi_major), abiMinor: Int(module.pointee.abi_minor),
            entries: try readEntries(module, path: path))
    }

    private static func checkHeader(_ module: UnsafePointer<berth_module>, path: String) throws(BerthError) {
        // The signature is read alone first: until it matches, no other field is trusted.
        let signature = UnsafeRawPointer(module).load(as: UInt64.self)
        guard signature == BERTH_MODULE_SIGNATURE else {
            throw .failedPrecondition(String(format: "plugin file %@ is not a Berth plugin module: expected signature 0x%016llx, found 0x%016llx",
                                             path, BERTH_MODULE_SIGNATURE, signature))
        }
        let m = module.pointee
        guard m.abi_major == BERTH_ABI_MAJOR else {
            throw .failedPrecondition("plugin file \(path) was built for plugin ABI \(m.abi_major).\(m.abi_minor); this berthd speaks ABI \(BERTH_ABI_MAJOR).x (\(BERTH_ABI_MAJOR).\(BERTH_ABI_MINOR))")
        }
        let sizes: [(String, UInt32, Int)] = [
            ("module descriptor", m.struct_size, MemoryLayout<berth_module>.size),
            ("registration", m.registration_size, MemoryLayout<berth_registration>.size),
            ("ops table", m.ops_size, MemoryLayout<berth_plugin_ops>.size),
        ]
        for (what, found, expected) in sizes where Int(found) < expected {
            throw .failedPrecondition("plugin file \(path): \(what) is \(found) bytes, expected at least \(expected) for ABI \(BERTH_ABI_MAJOR).0")
        }
    }

    private static func readEntries(_ module: UnsafePointer<berth_module>, path: String) throws(BerthError) -> [LoadedModule.Entry] {
        let m = module.pointee
        guard m.registrations_count > 0, let base = m.registrations else {
            throw .failedPrecondition("plugin file \(path) declares no plugins")
        }
        var entries = [LoadedModule.Entry]()
        for index in 0..<m.registrations_count {
            // Step by the module's own struct size: a newer module's registrations may be larger.
            let raw = UnsafeRawPointer(base) + index * Int(m.registration_size)
            entries.append(try readEntry(raw.assumingMemoryBound(to: berth_registration.self).pointee, path: path, index: index))
        }
        return entries
    }

    private static func readEntry(_ r: berth_registration, path: String, index: Int) throws(BerthError) -> LoadedModule.Entry {
        guard let type = r.type.map({ String(cString: $0) }), !type.isEmpty,
              let id = r.id.map({ String(cString: $0) }), !id.isEmpty else {
            throw .failedPrecondition("plugin file \(path): registration \(index) has no type or id")
        }
        let name = PluginName(type: PluginType(type), id: id)
        guard let ops = r.ops, ops.pointee.create != nil, ops.pointee.start != nil, ops.pointee.call != nil,
              ops.pointee.stop != nil, ops.pointee.destroy != nil else {
            throw .failedPrecondition("plugin file \(path): plugin \(name) has a missing function in its ops table")
        }
        guard Int(ops.pointee.struct_size) >= MemoryLayout<berth_plugin_ops>.size else {
            throw .failedPrecondition("plugin file \(path): plugin \(name) ops table is \(ops.pointee.struct_size) bytes, expected at least \(MemoryLayout<berth_plugin_ops>.size)")
        }
        return LoadedModule.Entry(
            name: name,
            requires: strings(r.requires, r.requires_count).map { PluginType($0) },
            platforms: strings(r.platforms, r.platforms_count).map { Platform($0) },
            capabilities: strings(r.capabilities, r.capabilities_count),
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
