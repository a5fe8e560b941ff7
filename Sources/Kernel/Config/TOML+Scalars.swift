// Strings, numbers and date-times (toml.io v1.0.0, "String", "Integer", "Float",
// "Offset Date-Time" to "Local Time").
extension TOML.Parser {
    // MARK: Strings

    mutating func parseBasicString() throws(TOML.ParseError) -> String {
        position += 1
        var text = [UInt8]()
        while true {
            guard let byte = peek() else { throw error("unterminated string") }
            switch byte {
            case .quote:
                position += 1
                return String(decoding: text, as: UTF8.self)
            case .backslash: try parseEscape(into: &text)
            case .lineFeed, .carriageReturn: throw error("newline in a single-line string")
            default: try appendStringByte(byte, to: &text)
            }
        }
    }

    mutating func parseLiteralString() throws(TOML.ParseError) -> String {
        position += 1
        var text = [UInt8]()
        while true {
            guard let byte = peek() else { throw error("unterminated string") }
            switch byte {
            case .apostrophe:
                position += 1
                return String(decoding: text, as: UTF8.self)
            case .lineFeed, .carriageReturn: throw error("newline in a single-line string")
            default: try appendStringByte(byte, to: &text)
            }
        }
    }

    /// Reads `"""..."""`. A newline right after the opening quotes is dropped, a backslash at
    /// the end of a line drops the line break and the whitespace after it, CRLF becomes LF.
    mutating func parseMultilineBasicString() throws(TOML.ParseError) -> String {
        position += 3
        _ = try skipNewline()
        var text = [UInt8]()
        while true {
            guard let byte = peek() else { throw error("unterminated multi-line string") }
            switch byte {
            case .quote:
                if try closeMultiline(.quote, into: &text) { return String(decoding: text, as: UTF8.self) }
            case .backslash:
                if try !skipLineEndingBackslash() { try parseEscape(into: &text) }
            case .lineFeed, .carriageReturn:
                _ = try skipNewline()
                text.append(.lineFeed)
            default: try appendStringByte(byte, to: &text)
            }
        }
    }

    mutating func parseMultilineLiteralString() throws(TOML.ParseError) -> String {
        position += 3
        _ = try skipNewline()
        var text = [UInt8]()
        while true {
            guard let byte = peek() else { throw error("unterminated multi-line string") }
            switch byte {
            case .apostrophe:
                if try closeMultiline(.apostrophe, into: &text) { return String(decoding: text, as: UTF8.self) }
            case .lineFeed, .carriageReturn:
                _ = try skipNewline()
                text.append(.lineFeed)
            default: try appendStringByte(byte, to: &text)
            }
        }
    }

    /// At a run of quote characters inside a multi-line string: three close it, and up to two
    /// more just before them belong to the content; a shorter run is content.
    mutating func closeMultiline(_ quote: UInt8, into text: inout [UInt8]) throws(TOML.ParseError) -> Bool {
        var run = 0
        while peek(run) == quote { run += 1 }
        guard run <= 5 else { throw error("too many quotes at the end of a multi-line string") }
        text.append(contentsOf: repeatElement(quote, count: run < 3 ? run : run - 3))
        position += run
        return run >= 3
    }

    /// Skips `\`, optional whitespace, a newline and all whitespace and newlines after it;
    /// returns false, moving nothing, when the backslash starts an ordinary escape.
    mutating func skipLineEndingBackslash() throws(TOML.ParseError) -> Bool {
        var look = position + 1
        while look < bytes.count, bytes[look] == .space || bytes[look] == .tab { look += 1 }
        guard look < bytes.count, bytes[look] == .lineFeed || bytes[look] == .carriageReturn else { return false }
        position = look
        while try skipNewline() { skipWhitespace() }
        return true
    }

    mutating func parseEscape(into text: inout [UInt8]) throws(TOML.ParseError) {
        let start = position
        guard let byte = peek(1) else { throw error("unterminated string") }
        position += 2
        switch byte {
        case UInt8(ascii: "b"): text.append(0x08)
        case UInt8(ascii: "t"): text.append(.tab)
        case UInt8(ascii: "n"): text.append(.lineFeed)
        case UInt8(ascii: "f"): text.append(0x0C)
        case UInt8(ascii: "r"): text.append(.carriageReturn)
        case .quote, .backslash: text.append(byte)
        case UInt8(ascii: "u"): try appendEscapedScalar(digits: 4, to: &text, at: start)
        case UInt8(ascii: "U"): try appendEscapedScalar(digits: 8, to: &text, at: start)
        default: throw error("invalid escape sequence '\\\(printable(byte))'", at: start)
        }
    }

    mutating func appendEscapedScalar(digits: Int, to text: inout [UInt8], at start: Int) throws(TOML.ParseError) {
        var value: UInt32 = 0
        for _ in 0..<digits {
            guard let digit = peek().flatMap(\.hexValue) else {
                throw error("\\\(digits == 4 ? "u" : "U") needs \(digits) hexadecimal digits", at: start)
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        guard let scalar = Unicode.Scalar(value) else {
            throw error("escape U+\(String(value, radix: 16, uppercase: true)) is not a Unicode scalar value", at: start)
        }
        text.append(contentsOf: scalar.utf8)
    }

    /// Appends a byte of string content, refusing the control characters TOML forbids in
    /// strings (all but tab; they must be written as escapes).
    mutating func appendStringByte(_ byte: UInt8, to text: inout [UInt8]) throws(TOML.ParseError) {
        guard !byte.isControl || byte == .tab else {
            throw error("control character U+\(hex(byte)) in a string; write it as an escape")
        }
        text.append(byte)
        position += 1
    }

    // MARK: Booleans and numbers

    /// Reads `true`, `false`, an integer or a float: one run of number-like bytes, then checked.
    mutating func parseWord() throws(TOML.ParseError) -> TOML.Value {
        let start = position
        while let byte = peek(), byte.isBareKeyByte || byte == .plus || byte == .dot { position += 1 }
        let word = bytes[start..<position]
        if word.elementsEqual("true".utf8) { return .boolean(true) }
        if word.elementsEqual("false".utf8) { return .boolean(false) }
        guard let value = try number(word, at: start) else {
            throw error("invalid value '\(TOML.excerpt(String(decoding: word, as: UTF8.self)))'", at: start)
        }
        return value
    }

    /// The integer or float that `word` spells, nil if it spells none.
    func number(_ word: ArraySlice<UInt8>, at start: Int) throws(TOML.ParseError) -> TOML.Value? {
        let signed = word.first == .plus || word.first == .minus
        let negative = word.first == .minus
        let body = signed ? word.dropFirst() : word
        if body.elementsEqual("inf".utf8) { return .float(negative ? -.infinity : .infinity) }
        if body.elementsEqual("nan".utf8) { return .float(negative ? -.nan : .nan) }
        let radixes: [(prefix: String, radix: UInt64)] = [("0x", 16), ("0o", 8), ("0b", 2)]
        if let (_, radix) = radixes.first(where: { body.starts(with: $0.prefix.utf8) }) {
            guard !signed else { throw error("a sign is not allowed on a prefixed integer", at: start) }
            return try integer(body.dropFirst(2), radix: radix, negative: false, at: start)
        }
        if body.contains(where: { $0 == .dot || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }) {
            return try float(word, body: body, at: start)
        }
        guard TOML.isDigitRun(body, radix: 10) else { return nil }
        guard body.first != UInt8(ascii: "0") || body.count == 1 else { throw error("leading zeros are not allowed", at: start) }
        return try integer(body, radix: 10, negative: negative, at: start)
    }

    func integer(_ digits: ArraySlice<UInt8>, radix: UInt64, negative: Bool, at start: Int) throws(TOML.ParseError) -> TOML.Value? {
        guard TOML.isDigitRun(digits, radix: radix) else { return nil }
        var magnitude: UInt64 = 0
        for byte in digits where byte != .underscore {
            let (shifted, overflowA) = magnitude.multipliedReportingOverflow(by: radix)
            let (sum, overflowB) = shifted.addingReportingOverflow(UInt64(byte.hexValue!))
            guard !overflowA && !overflowB else { throw error("integer does not fit in 64 bits", at: start) }
            magnitude = sum
        }
        let limit = negative ? UInt64(Int64.max) + 1 : UInt64(Int64.max)
        guard magnitude <= limit else { throw error("integer does not fit in 64 bits", at: start) }
        return .integer(negative ? Int64(truncatingIfNeeded: 0 &- magnitude) : Int64(magnitude))
    }

    /// Checks `body` against the float grammar: an integer part without leading zeros, then a
    /// fraction, an exponent or both, every digit run with underscores only between digits.
    func float(_ word: ArraySlice<UInt8>, body: ArraySlice<UInt8>, at start: Int) throws(TOML.ParseError) -> TOML.Value? {
        let isExponentMark = { (byte: UInt8) in byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") }
        let integerEnd = body.firstIndex { $0 == .dot || isExponentMark($0) }!
        let integerPart = body[..<integerEnd]
        guard TOML.isDigitRun(integerPart, radix: 10) else { return nil }
        guard integerPart.first != UInt8(ascii: "0") || integerPart.count == 1 else {
            throw error("leading zeros are not allowed", at: start)
        }
        var rest = body[integerEnd...]
        if rest.first == .dot {
            let fractionEnd = rest.firstIndex(where: isExponentMark) ?? rest.endIndex
            guard TOML.isDigitRun(rest[rest.index(after: rest.startIndex)..<fractionEnd], radix: 10) else { return nil }
            rest = rest[fractionEnd...]
        }
        if let mark = rest.first, isExponentMark(mark) {
            var exponent = rest.dropFirst()
            if exponent.first == .plus || exponent.first == .minus { exponent = exponent.dropFirst() }
            guard TOML.isDigitRun(exponent, radix: 10) else { return nil }
        } else if !rest.isEmpty {
            return nil
        }
        return Double(String(decoding: word.filter { $0 != .underscore }, as: UTF8.self)).map { .float($0) }
    }

    // MARK: Date-times

    /// Whether the digits here start a date (`dddd-`) or a time (`dd:`) rather than a number.
    func looksLikeDateOrTime() -> Bool {
        let isDigit = { (offset: Int) in peek(offset)?.isDigit == true }
        return (isDigit(1) && peek(2) == .colon) || (isDigit(1) && isDigit(2) && isDigit(3) && peek(4) == .minus)
    }

    /// Reads a local time, a local date, or a date-time with or without an offset, validating
    /// each field's range (RFC 3339 section 5.6).
    mutating func parseDateTime() throws(TOML.ParseError) -> String {
        var text = ""
        if peek(2) == .colon {
            try parseTime(into: &text)
            return text
        }
        try parseDate(into: &text)
        let startsTime = peek(1)?.isDigit == true && peek(2)?.isDigit == true && peek(3) == .colon
        guard peek() == UInt8(ascii: "T") || peek() == UInt8(ascii: "t") || (peek() == .space && startsTime) else { return text }
        position += 1
        text += "T"
        try parseTime(into: &text)
        try parseOffset(into: &text)
        return text
    }

    /// Reads an optional `Z` or `+hh:mm` / `-hh:mm` after a date-time's time.
    mutating func parseOffset(into text: inout String) throws(TOML.ParseError) {
        switch peek() {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            position += 1
            text += "Z"
        case .plus, .minus:
            text.append(Character(Unicode.Scalar(bytes[position])))
            position += 1
            _ = try field(2, in: 0...23, "offset hour", into: &text)
            try expectDateSeparator(.colon, into: &text)
            _ = try field(2, in: 0...59, "offset minute", into: &text)
        default:
            break
        }
    }

    mutating func parseDate(into text: inout String) throws(TOML.ParseError) {
        let year = try field(4, in: 0...9999, "year", into: &text)
        try expectDateSeparator(.minus, into: &text)
        let month = try field(2, in: 1...12, "month", into: &text)
        try expectDateSeparator(.minus, into: &text)
        let isLeap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, isLeap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        _ = try field(2, in: 1...days, "day", into: &text)
    }

    mutating func parseTime(into text: inout String) throws(TOML.ParseError) {
        _ = try field(2, in: 0...23, "hour", into: &text)
        try expectDateSeparator(.colon, into: &text)
        _ = try field(2, in: 0...59, "minute", into: &text)
        try expectDateSeparator(.colon, into: &text)
        _ = try field(2, in: 0...60, "second", into: &text)
        guard peek() == .dot else { return }
        position += 1
        text += "."
        guard peek()?.isDigit == true else { throw error("fractional seconds need a digit after '.'") }
        while let byte = peek(), byte.isDigit {
            text.append(Character(Unicode.Scalar(byte)))
            position += 1
        }
    }

    /// Reads exactly `count` digits whose value must lie in `range`.
    mutating func field(_ count: Int, in range: ClosedRange<Int>, _ name: String, into text: inout String) throws(TOML.ParseError) -> Int {
        let start = position
        var value = 0
        for _ in 0..<count {
            guard let byte = peek(), byte.isDigit else { throw error("the \(name) needs \(count) digits", at: start) }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
            position += 1
        }
        guard range.contains(value) else { throw error("\(name) \(value) is out of range", at: start) }
        text += String(decoding: bytes[start..<position], as: UTF8.self)
        return value
    }

    mutating func expectDateSeparator(_ byte: UInt8, into text: inout String) throws(TOML.ParseError) {
        guard peek() == byte else { throw error("malformed date or time: expected '\(Character(Unicode.Scalar(byte)))'") }
        position += 1
        text.append(Character(Unicode.Scalar(byte)))
    }
}
