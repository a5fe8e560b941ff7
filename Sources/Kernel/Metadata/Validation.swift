/// Input rules shared by every service, with containerd's limits so clients see the same refusals.
public enum Validation {
    /// containerd's bound on an identifier: namespace names, container and exec ids.
    public static let maxNameLength = 76
    /// containerd's bound on a label's key plus value (labels package).
    public static let maxLabelSize = 4096

    /// A namespace name: an identifier.
    public static func namespaceName(_ name: String) throws(BerthError) {
        try identifier(name, what: "namespace name")
    }

    /// containerd's identifier rule, for namespace names and container ids: `[A-Za-z0-9]+`
    /// runs joined by single `.`, `_` or `-`, at most 76 characters. `what` names the field in
    /// the error ("container id").
    public static func identifier(_ id: String, what: String) throws(BerthError) {
        guard !id.isEmpty else { throw .invalidArgument("\(what) must not be empty") }
        guard id.utf8.count <= maxNameLength else {
            throw .invalidArgument("\(what) \"\(id.prefix(32))...\" is \(id.utf8.count) characters long; the limit is \(maxNameLength)")
        }
        var previousWasSeparator = true
        for byte in id.utf8 {
            guard isAlphanumeric(byte) || (isSeparator(byte) && !previousWasSeparator) else {
                throw .invalidArgument("\(what) \"\(id)\" must be letters and digits joined by single '.', '_' or '-'")
            }
            previousWasSeparator = isSeparator(byte)
        }
        guard !previousWasSeparator else {
            throw .invalidArgument("\(what) \"\(id)\" must not end with '.', '_' or '-'")
        }
    }

    /// An exec process id: 1 to 76 letters, digits, `.`, `_` or `-` in any order (ctr makes
    /// them from random hex; containerd 1.6 accepted "a..b" here too).
    public static func execID(_ execID: String, task containerID: String) throws(BerthError) {
        guard !execID.isEmpty, execID.utf8.count <= maxNameLength, execID.utf8.allSatisfy({ isAlphanumeric($0) || isSeparator($0) }) else {
            throw .invalidArgument("task \"\(containerID)\": exec id \"\(execID.prefix(80))\" must be 1-76 letters, digits, '.', '_' or '-'")
        }
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
    }

    private static func isSeparator(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
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
