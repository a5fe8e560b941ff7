/// Input rules shared by every service, with containerd's limits so clients see the same refusals.
public enum Validation {
    /// containerd's bound on a namespace name (identifiers package).
    public static let maxNameLength = 76
    /// containerd's bound on a label's key plus value (labels package).
    public static let maxLabelSize = 4096

    /// Accepts `[A-Za-z0-9]+` runs joined by single `.`, `_` or `-`, at most 76 characters.
    public static func namespaceName(_ name: String) throws(BerthError) {
        guard !name.isEmpty else { throw .invalidArgument("namespace name must not be empty") }
        guard name.utf8.count <= maxNameLength else {
            throw .invalidArgument("namespace name \"\(name.prefix(80))\" is longer than \(maxNameLength) characters")
        }
        var previousWasSeparator = true
        for byte in name.utf8 {
            let alphanumeric = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            let separator = byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
            guard alphanumeric || (separator && !previousWasSeparator) else {
                throw .invalidArgument("namespace name \"\(name)\" must be letters and digits joined by single '.', '_' or '-'")
            }
            previousWasSeparator = separator
        }
        guard !previousWasSeparator else {
            throw .invalidArgument("namespace name \"\(name)\" must not end with a separator")
        }
    }

    /// Refuses a label whose key is empty or whose key and value exceed 4096 bytes together.
    public static func labels(_ labels: [String: String]) throws(BerthError) {
        for (key, value) in labels {
            guard !key.isEmpty else { throw .invalidArgument("label key must not be empty") }
            guard key.utf8.count + value.utf8.count <= maxLabelSize else {
                throw .invalidArgument("label \"\(key.prefix(64))\": key and value are larger than \(maxLabelSize) bytes")
            }
        }
    }
}

/// Applies a field-mask update to a label map, as containerd's services do.
public enum LabelUpdate {
    /// `paths` empty or containing "labels" replaces the map; "labels.KEY" sets one key, or
    /// removes it when the new value is absent or empty (containerd's `SetLabel` rule, which
    /// `ctr namespaces label NAME key=` relies on). Any other path is `.invalidArgument`.
    public static func apply(
        _ new: [String: String], to current: [String: String], paths: [String],
        object: String
    ) throws(BerthError) -> [String: String] {
        if paths.isEmpty || paths.contains("labels") { return new.filter { !$0.value.isEmpty } }
        var result = current
        for path in paths {
            guard path.hasPrefix("labels.") else {
                throw .invalidArgument("cannot update field \"\(path)\" of \(object)")
            }
            let key = String(path.dropFirst("labels.".count))
            let value = new[key] ?? ""
            result[key] = value.isEmpty ? nil : value
        }
        return result
    }
}
