/// Labels as stored in a metadata row: a JSON object of strings with sorted keys, readable with
/// the sqlite3 shell. Written and read by hand because Foundation's JSON coders cost more than
/// the rest of a `Stat` together; anything this parser does not accept reads as unreadable.
public enum LabelCoding {
    public static func encode(_ labels: [String: String]) -> String {
        if labels.isEmpty { return "{}" }
        var text = "{"
        for (index, key) in labels.keys.sorted().enumerated() {
            if index > 0 { text += "," }
            appendJSONString(key, to: &text)
            text += ":"
            appendJSONString(labels[key]!, to: &text)
        }
        return text + "}"
    }

    public static func decode(_ text: String) -> [String: String]? {
        if text == "{}" { return [:] }
        var parser = Parser(bytes: Array(text.utf8))
        return parser.object()
    }

    /// A parser for exactly one JSON object whose values are strings.
    private struct Parser {
        let bytes: [UInt8]
        var at = 0

        mutating func object() -> [String: String]? {
            var labels = [String: String]()
            guard take(UInt8(ascii: "{")) else { return nil }
            if take(UInt8(ascii: "}")) { return at == bytes.count ? labels : nil }
            repeat {
                guard let key = string(), take(UInt8(ascii: ":")), let value = string() else { return nil }
                labels[key] = value
            } while take(UInt8(ascii: ","))
            guard take(UInt8(ascii: "}")), at == bytes.count else { return nil }
            return labels
        }

        private mutating func take(_ byte: UInt8) -> Bool {
            while at < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[at]) { at += 1 }
            guard at < bytes.count, bytes[at] == byte else { return false }
            at += 1
            return true
        }

        private mutating func string() -> String? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            var utf8 = [UInt8]()
            while at < bytes.count {
                let byte = bytes[at]
                at += 1
                switch byte {
                case UInt8(ascii: "\""): return String(decoding: utf8, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard let scalar = escape() else { return nil }
                    utf8.append(contentsOf: String(scalar).utf8)
                default: utf8.append(byte)
                }
            }
            return nil
        }

        private mutating func escape() -> Unicode.Scalar? {
            guard at < bytes.count else { return nil }
            let byte = bytes[at]
            at += 1
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): return Unicode.Scalar(byte)
            case UInt8(ascii: "b"): return "\u{8}"
            case UInt8(ascii: "f"): return "\u{C}"
            case UInt8(ascii: "n"): return "\n"
            case UInt8(ascii: "r"): return "\r"
            case UInt8(ascii: "t"): return "\t"
            case UInt8(ascii: "u"):
                guard let high = hex4() else { return nil }
                guard (0xD800..<0xDC00).contains(high) else { return Unicode.Scalar(high) }
                // A surrogate pair, as Foundation's encoder writes characters beyond the BMP.
                guard take(UInt8(ascii: "\\")), take(UInt8(ascii: "u")), let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                return Unicode.Scalar(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
            default: return nil
            }
        }

        private mutating func hex4() -> UInt32? {
            guard at + 4 <= bytes.count, let value = UInt32(String(decoding: bytes[at..<at + 4], as: UTF8.self), radix: 16) else { return nil }
            at += 4
            return value
        }
    }
}
