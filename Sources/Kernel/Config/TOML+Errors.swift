// Positions and wording of parse errors, and the byte classes the parser tests.
extension TOML.Parser {
    /// An error at byte `offset` (default: here). Line and column are counted only now, so
    /// the parser needs no bookkeeping on the happy path.
    func error(_ message: String, at offset: Int? = nil) -> TOML.ParseError {
        let offset = min(offset ?? position, bytes.count)
        var line = 1
        var lineStart = 0
        for index in 0..<offset where bytes[index] == .lineFeed {
            line += 1
            lineStart = index + 1
        }
        // Count scalars, not bytes: UTF-8 continuation bytes look like 0b10xxxxxx.
        let column = 1 + bytes[lineStart..<offset].count { $0 & 0xC0 != 0x80 }
        return TOML.ParseError(line: line, column: column, message: message)
    }

    /// The character at the current position, for "expected X, found Y".
    func describeHere() -> String {
        guard let byte = peek() else { return "the end of the document" }
        if byte == .lineFeed || byte == .carriageReturn { return "a newline" }
        let end = min(position + 4, bytes.count)
        let character = String(decoding: bytes[position..<end], as: UTF8.self).unicodeScalars.first!
        guard character.value >= 0x80 else { return "'\(printable(byte))'" }
        let digits = String(character.value, radix: 16, uppercase: true)
        return "U+" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    /// A key as a reader would write it: bare parts as they are, others quoted, cut to `limit`
    /// characters (two keys in one message get 30 each, to stay within about 60).
    func describe(_ key: [String], limit: Int = 60) -> String {
        let parts = key.map { part in
            if !part.isEmpty, part.utf8.allSatisfy(\.isBareKeyByte) { return part }
            var quoted = "\""
            for scalar in part.unicodeScalars {
                switch scalar {
                case "\"", "\\": quoted += "\\\(scalar)"
                case _ where scalar.value < 0x20 || scalar.value == 0x7F: quoted += "\\u\(hex(UInt8(scalar.value)))"
                default: quoted.unicodeScalars.append(scalar)
                }
            }
            return quoted + "\""
        }
        return TOML.excerpt(parts.joined(separator: "."), limit: limit)
    }

    /// What a value is, for "goes through x, an inline table": the tables and arrays a
    /// document wrote as values are closed to headers and dotted keys.
    func kind(of value: TOML.Value) -> String {
        switch value {
        case .table: "an inline table"
        case .array: "an array value"
        case .integer: "an integer"
        default: "a \(value.typeName)"
        }
    }

    /// A byte shown in a message: printable ASCII as itself, anything else as U+XXXX.
    func printable(_ byte: UInt8) -> String {
        byte >= 0x20 && byte < 0x7F ? String(Character(Unicode.Scalar(byte))) : "U+\(hex(byte))"
    }

    func hex(_ byte: UInt8) -> String {
        let digits = String(byte, radix: 16, uppercase: true)
        return String(repeating: "0", count: 4 - digits.count) + digits
    }
}

extension TOML {
    /// At most `limit` characters of `text`, so that an error never repeats a long line of input.
    static func excerpt(_ text: String, limit: Int = 60) -> String {
        guard text.unicodeScalars.count > limit else { return text }
        return String(String.UnicodeScalarView(text.unicodeScalars.prefix(limit - 3))) + "..."
    }

    /// Digits of `radix` with single underscores only between digits (toml.io v1.0.0, "Integer").
    static func isDigitRun(_ run: ArraySlice<UInt8>, radix: UInt64) -> Bool {
        let isDigit = { (byte: UInt8) in byte.hexValue.map { UInt64($0) < radix } ?? false }
        guard let first = run.first, let last = run.last, isDigit(first), isDigit(last) else { return false }
        var previousWasUnderscore = false
        for byte in run {
            if byte == .underscore {
                if previousWasUnderscore { return false }
                previousWasUnderscore = true
            } else {
                guard isDigit(byte) else { return false }
                previousWasUnderscore = false
            }
        }
        return true
    }
}

extension UInt8 {
    static let tab = UInt8(ascii: "\t")
    static let lineFeed = UInt8(ascii: "\n")
    static let carriageReturn = UInt8(ascii: "\r")
    static let space = UInt8(ascii: " ")
    static let quote = UInt8(ascii: "\"")
    static let apostrophe = UInt8(ascii: "'")
    static let backslash = UInt8(ascii: "\\")
    static let hash = UInt8(ascii: "#")
    static let equals = UInt8(ascii: "=")
    static let dot = UInt8(ascii: ".")
    static let comma = UInt8(ascii: ",")
    static let colon = UInt8(ascii: ":")
    static let plus = UInt8(ascii: "+")
    static let minus = UInt8(ascii: "-")
    static let underscore = UInt8(ascii: "_")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")
    static let openBrace = UInt8(ascii: "{")
    static let closeBrace = UInt8(ascii: "}")

    var isDigit: Bool { self >= UInt8(ascii: "0") && self <= UInt8(ascii: "9") }

    /// A-Z a-z 0-9 _ -, the characters of a bare key.
    var isBareKeyByte: Bool {
        isDigit || (self | 0x20 >= UInt8(ascii: "a") && self | 0x20 <= UInt8(ascii: "z")) || self == .underscore || self == .minus
    }

    /// U+0000 to U+001F and U+007F, which TOML allows raw nowhere but as tab and newlines.
    var isControl: Bool { self < 0x20 || self == 0x7F }

    /// The value of a hexadecimal digit (either case), nil for anything else.
    var hexValue: UInt8? {
        switch self {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): self - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): self - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): self - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
