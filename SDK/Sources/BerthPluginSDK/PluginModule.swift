import CBerthPlugin
import FoundationEssentials
import Glibc

/// One plugin inside a module, as data: what the host reads before it runs any code.
public struct PluginRegistration: Sendable {
    public var type: String
    public var id: String
    public var requires: [String]
    public var platforms: [String]
    public var capabilities: [String]
    /// gRPC paths this plugin serves to clients through berthd (its own API); each must also
    /// be in its `MethodTable`.
    public var apiMethods: [String]
    public var make: @Sendable (PluginHost) throws -> any BerthPlugin

    /// Declares a plugin: its versioned type URI, its id, the types it needs started first,
    /// the platforms it runs on ("linux", "linux/amd64"; none means all), the gRPC methods it
    /// offers to clients, and how to make it.
    public init(
        type: String, id: String, requires: [String] = [], platforms: [String] = [],
        capabilities: [String] = [], apiMethods: [String] = [],
        make: @escaping @Sendable (PluginHost) throws -> any BerthPlugin
    ) {
        self.type = type
        self.id = id
        self.requires = requires
        self.platforms = platforms
        self.capabilities = capabilities
        self.apiMethods = apiMethods
        self.make = make
    }
}

/// Builds the C module descriptor for a set of registrations. Keep one in a global `let` and
/// return `descriptor` from the `@_cdecl("berth_plugin_entry")` function:
///
///     private let module = PluginModule([PluginRegistration(type: "io.example.v1", id: "hello") { HelloPlugin(host: $0) }])
///     @_cdecl("berth_plugin_entry")
///     public func berthPluginEntry() -> UnsafeRawPointer? { module.descriptor }
///
/// The descriptor and everything it points to live as long as the process.
// @unchecked: `descriptor` is written once in init and only read afterwards (by the host).
public final class PluginModule: @unchecked Sendable {
    /// The `berth_module` the entry symbol returns.
    public let descriptor: UnsafeRawPointer

    public init(_ registrations: [PluginRegistration]) {
        let array = UnsafeMutablePointer<berth_registration>.allocate(capacity: registrations.count)
        for (index, registration) in registrations.enumerated() {
            array.advanced(by: index).initialize(to: Self.cRegistration(registration))
        }
        let module = UnsafeMutablePointer<berth_module>.allocate(capacity: 1)
        module.initialize(
            to: berth_module(
                signature: BERTH_MODULE_SIGNATURE,
                abi_major: UInt16(BERTH_ABI_MAJOR), abi_minor: UInt16(BERTH_ABI_MINOR),
                struct_size: UInt32(MemoryLayout<berth_module>.size),
                registration_size: UInt32(MemoryLayout<berth_registration>.size),
                ops_size: UInt32(MemoryLayout<berth_plugin_ops>.size),
                build_info: strdup(Self.buildInfo),
                registrations: UnsafePointer(array), registrations_count: registrations.count))
        descriptor = UnsafeRawPointer(module)
    }

    /// How this module was built, for the host's diagnostics.
    static var buildInfo: String {
        #if compiler(>=6.3)
            let swift = "swift >= 6.3"
        #elseif compiler(>=6.0)
            let swift = "swift 6.0-6.2"
        #else
            let swift = "swift < 6"
        #endif
        return "BerthPluginSDK ABI \(BERTH_ABI_MAJOR).\(BERTH_ABI_MINOR); \(swift); \(String(cString: berth_c_compiler_info()))"
    }

    private static func cRegistration(_ registration: PluginRegistration) -> berth_registration {
        let box = Unmanaged.passRetained(RegistrationBox(registration)).toOpaque()
        return berth_registration(
            struct_size: UInt32(MemoryLayout<berth_registration>.size),
            type: strdup(registration.type), id: strdup(registration.id),
            requires: cStrings(registration.requires), requires_count: registration.requires.count,
            platforms: cStrings(registration.platforms), platforms_count: registration.platforms.count,
            capabilities: cStrings(registration.capabilities), capabilities_count: registration.capabilities.count,
            ops: UnsafePointer(sharedOps), registration_data: box,
            api_methods: cStrings(registration.apiMethods), api_methods_count: registration.apiMethods.count)
    }

    private static func cStrings(_ strings: [String]) -> UnsafePointer<UnsafePointer<CChar>?>? {
        guard !strings.isEmpty else { return nil }
        let array = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: strings.count)
        for (index, string) in strings.enumerated() { array[index] = UnsafePointer(strdup(string)) }
        return UnsafePointer(array)
    }
}

/// Keeps a registration reachable from its C `registration_data`.
final class RegistrationBox: Sendable {
    let registration: PluginRegistration
    init(_ registration: PluginRegistration) { self.registration = registration }
}
