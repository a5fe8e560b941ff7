import BerthPluginSDK
import FoundationEssentials
import Glibc

/// A keeper plan file being written (keeper_protocol.h section 2): `key value\0` records whose
/// compound values separate fields with ASCII US (0x1f). Starts with `version 1`.
struct PlanRecords {
    /// The keeper refuses plans larger than this (KEEPER_MAX_PLAN).
    static let maximumSize = 1 << 20
    /// The keeper refuses more entries than this for one list key.
    static let maximumEntries = 4096

    private(set) var bytes: [UInt8] = Array("version 1\u{0}".utf8)
    private var counts = [String: Int]()
    /// Names the container in error messages.
    let container: String

    init(container: String) {
        self.container = container
    }

    /// Appends one record; a field holding NUL or US, or a list past the keeper's bound, is
    /// refused with the spec field (`origin`) that produced it.
    mutating func add(_ key: String, _ fields: String..., from origin: String) throws {
        try add(key, fields, from: origin)
    }

    mutating func add(_ key: String, _ fields: [String], from origin: String) throws {
        for field in fields where field.utf8.contains(0) || field.utf8.contains(0x1f) {
            throw SpecError.invalid(container, origin, "value \(field.debugDescription) holds a NUL or US (0x1f) byte")
        }
        counts[key, default: 0] += 1
        guard counts[key]! <= Self.maximumEntries else {
            throw SpecError.invalid(container, origin, "more than \(Self.maximumEntries) entries")
        }
        bytes += Array(key.utf8) + [0x20] + Array(fields.joined(separator: "\u{1f}").utf8) + [0]
        guard bytes.count <= Self.maximumSize else {
            throw SpecError.invalid(container, origin, "the plan grows past \(Self.maximumSize) bytes")
        }
    }

    /// Writes the plan to `path` (mode 0600), replacing what was there.
    func write(to path: String) throws {
        do {
            try StateDirectory.writePrivate(Data(bytes), to: path)
        } catch {
            throw PluginError(.internal, "container \(container): write plan \(path): \(error)")
        }
    }
}

/// Errors about a client's spec: always INVALID_ARGUMENT, naming the container and the field.
enum SpecError {
    static func invalid(_ container: String, _ field: String, _ reason: String) -> PluginError {
        PluginError(.invalidArgument, "container \(container): spec \(field): \(reason)")
    }

    /// A field the Linux runtime cannot honour (Helpers/keeper/README.md "Not done").
    static func unsupported(_ container: String, _ field: String, _ detail: String = "") -> PluginError {
        let tail = detail.isEmpty ? "" : " (\(detail))"
        return PluginError(
            .invalidArgument, "container \(container): spec \(field) is not supported by the Linux runtime in native mode\(tail)")
    }
}
