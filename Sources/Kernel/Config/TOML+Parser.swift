extension TOML {
    /// The table tree while a document is read. Tables are classes here so that filling a deep
    /// table or appending the ten-thousandth `[[x]]` does not copy what is already there.
    final class TableNode {
        /// How the table came to exist; it decides whether a later header or dotted key may
        /// add to it (toml.io v1.0.0, "Table" and "Array of Tables").
        enum Origin {
            /// Created as a parent by a header such as `[a.b.c]`; a later `[a]` may define it.
            case implicit
            /// Defined by its own header, or the root; no second header may define it again.
            case header
            /// Created by a dotted key; no header may define it, though `[a.b.sub]` may pass through.
            case dotted
        }

        enum Slot {
            case value(Value)
            case table(TableNode)
            case tables(TableArrayNode)
        }

        var origin: Origin
        var keys: [String] = []
        var slots: [String: Slot] = [:]

        init(origin: Origin) { self.origin = origin }

        func add(_ key: String, _ slot: Slot) {
            keys.append(key)
            slots[key] = slot
        }

        /// The finished value tree; depth is bounded by `maximumDepth`, so recursion is safe.
        func table() -> Table {
            var table = Table()
            for key in keys {
                switch slots[key]! {
                case .value(let value): table[key] = value
                case .table(let node): table[key] = .table(node.table())
                case .tables(let array): table[key] = .array(array.elements.map { .table($0.table()) })
                }
            }
            return table
        }
    }

    /// An array of tables, `[[name]]`, which later headers append to.
    final class TableArrayNode {
        var elements: [TableNode] = []
    }

    /// A recursive-descent reader over the document's UTF-8 bytes.
    struct Parser {
        let bytes: [UInt8]
        var position = 0
        let root = TableNode(origin: .header)
        /// The table that key-value lines go to: the last header's, or the root.
        var current: TableNode
        /// The nesting depth of `current`.
        var currentDepth = 0

        init(bytes: [UInt8]) {
            self.bytes = bytes
            current = root
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { position = 3 }
        }

        mutating func parseDocument() throws(ParseError) -> Table {
            while true {
                skipWhitespace()
                guard let byte = peek() else { break }
                switch byte {
                case .hash, .lineFeed, .carriageReturn: break
                case .openBracket: try parseHeader()
                default: try parseKeyValue(into: current, depth: currentDepth)
                }
                try expectLineEnd()
            }
            return root.table()
        }

        // MARK: Lines and headers

        /// Consumes optional whitespace, an optional comment and one newline (or the end).
        mutating func expectLineEnd() throws(ParseError) {
            skipWhitespace()
            try skipComment()
            guard position < bytes.count else { return }
            guard try skipNewline() else { throw error("expected a newline, found \(describeHere())") }
        }

        mutating func parseHeader() throws(ParseError) {
            let start = position
            position += 1
            let isArray = peek() == .openBracket
            if isArray { position += 1 }
            skipWhitespace()
            let key = try parseKey()
            try expect(.closeBracket, "to close the table header")
            if isArray { try expect(.closeBracket, "to close the array-of-tables header") }
            var table = root
            var depth = 0
            for part in key.dropLast() {
                (table, depth) = try descendForHeader(table, part, depth: depth, key: key, at: start)
            }
            let last = key[key.count - 1]
            depth += isArray ? 2 : 1
            guard depth <= maximumDepth else { throw error("tables nested deeper than \(maximumDepth) levels", at: start) }
            current = try isArray ? appendTable(to: table, last, key: key, at: start) : defineTable(in: table, last, key: key, at: start)
            currentDepth = depth
        }

        /// Steps into (or creates) the parent table `part` of a header's key.
        func descendForHeader(_ table: TableNode, _ part: String, depth: Int, key: [String], at start: Int) throws(ParseError) -> (TableNode, Int) {
            switch table.slots[part] {
            case nil:
                let child = TableNode(origin: .implicit)
                table.add(part, .table(child))
                return (child, depth + 1)
            case .table(let child):
                return (child, depth + 1)
            case .tables(let array):
                return (array.elements[array.elements.count - 1], depth + 2)
            case .value(let value):
                throw error("header [\(describe(key, limit: 30))] goes through \(describe([part], limit: 30)), \(kind(of: value))", at: start)
            }
        }

        func defineTable(in table: TableNode, _ name: String, key: [String], at start: Int) throws(ParseError) -> TableNode {
            switch table.slots[name] {
            case nil:
                let child = TableNode(origin: .header)
                table.add(name, .table(child))
                return child
            case .table(let child) where child.origin == .implicit:
                child.origin = .header
                return child
            case .table(let child):
                let how = child.origin == .dotted ? "by dotted keys" : "already"
                throw error("table [\(describe(key))] is defined \(how)", at: start)
            case .tables:
                throw error("[\(describe(key))] is an array of tables, not a table", at: start)
            case .value(let value):
                throw error("header [\(describe(key))] names a key already set to \(kind(of: value))", at: start)
            }
        }

        func appendTable(to table: TableNode, _ name: String, key: [String], at start: Int) throws(ParseError) -> TableNode {
            let element = TableNode(origin: .header)
            switch table.slots[name] {
            case nil:
                let array = TableArrayNode()
                array.elements.append(element)
                table.add(name, .tables(array))
            case .tables(let array):
                array.elements.append(element)
            case .table:
                throw error("[[\(describe(key))]] names a table, not an array of tables", at: start)
            case .value(let value):
                throw error("header [[\(describe(key))]] names a key already set to \(kind(of: value))", at: start)
            }
            return element
        }

        // MARK: Keys and key-value pairs

        /// Reads `key = value` and stores it under `table`, creating the tables of a dotted key.
        mutating func parseKeyValue(into table: TableNode, depth: Int) throws(ParseError) {
            let start = position
            let key = try parseKey()
            try expect(.equals, "after a key")
            skipWhitespace()
            let valueDepth = depth + key.count - 1
            guard valueDepth <= maximumDepth else { throw error("tables nested deeper than \(maximumDepth) levels", at: start) }
            let value = try parseValue(depth: valueDepth)
            var target = table
            for part in key.dropLast() {
                target = try descendForDottedKey(target, part, key: key, at: start)
            }
            let last = key[key.count - 1]
            guard target.slots[last] == nil else { throw error("duplicate key \(describe(key))", at: start) }
            target.add(last, .value(value))
        }

        /// Steps into (or creates) the table `part` of a dotted key; tables made by headers are
        /// closed to dotted keys (toml-test's table/append-with-dotted-keys cases).
        func descendForDottedKey(_ table: TableNode, _ part: String, key: [String], at start: Int) throws(ParseError) -> TableNode {
            switch table.slots[part] {
            case nil:
                let child = TableNode(origin: .dotted)
                table.add(part, .table(child))
                return child
            case .table(let child) where child.origin != .header:
                child.origin = .dotted
                return child
            case .table:
                throw error("dotted key \(describe(key)) adds to a table defined by a header", at: start)
            case .tables:
                throw error("dotted key \(describe(key)) adds to an array of tables", at: start)
            case .value(let value):
                throw error("dotted key \(describe(key, limit: 30)) goes through \(describe([part], limit: 30)), \(kind(of: value))", at: start)
            }
        }

        /// Reads a possibly dotted key and the whitespace after it.
        mutating func parseKey() throws(ParseError) -> [String] {
            var parts = [try parseSimpleKey()]
            skipWhitespace()
            while peek() == .dot {
                position += 1
                skipWhitespace()
                parts.append(try parseSimpleKey())
                skipWhitespace()
                guard parts.count <= maximumDepth else { throw error("key has more than \(maximumDepth) parts") }
            }
            return parts
        }

        mutating func parseSimpleKey() throws(ParseError) -> String {
            switch peek() {
            case .quote: return try parseBasicString()
            case .apostrophe: return try parseLiteralString()
            case let byte? where byte.isBareKeyByte:
                let start = position
                while let byte = peek(), byte.isBareKeyByte { position += 1 }
                return String(decoding: bytes[start..<position], as: UTF8.self)
            default: throw error("expected a key, found \(describeHere())")
            }
        }

        // MARK: Values

        mutating func parseValue(depth: Int) throws(ParseError) -> Value {
            switch peek() {
            case .quote: return .string(try startsTriple(.quote) ? parseMultilineBasicString() : parseBasicString())
            case .apostrophe: return .string(try startsTriple(.apostrophe) ? parseMultilineLiteralString() : parseLiteralString())
            case .openBracket: return try parseArray(depth: depth + 1)
            case .openBrace: return try parseInlineTable(depth: depth + 1)
            case let byte? where byte.isDigit && looksLikeDateOrTime(): return .dateTime(try parseDateTime())
            case let byte? where byte.isBareKeyByte || byte == .plus: return try parseWord()
            default: throw error("expected a value, found \(describeHere())")
            }
        }

        mutating func parseArray(depth: Int) throws(ParseError) -> Value {
            guard depth <= maximumDepth else { throw error("arrays and tables nested deeper than \(maximumDepth) levels") }
            position += 1
            var elements = [Value]()
            while true {
                try skipBlankSpace()
                if peek() == .closeBracket { break }
                elements.append(try parseValue(depth: depth))
                try skipBlankSpace()
                guard peek() == .comma else { break }
                position += 1
            }
            try expect(.closeBracket, "to close the array")
            return .array(elements)
        }

        /// Reads `{ k = v, ... }`: on one line, no trailing comma, closed to later additions
        /// (toml.io v1.0.0, "Inline Table").
        mutating func parseInlineTable(depth: Int) throws(ParseError) -> Value {
            guard depth <= maximumDepth else { throw error("arrays and tables nested deeper than \(maximumDepth) levels") }
            position += 1
            let table = TableNode(origin: .header)
            skipWhitespace()
            if peek() == .closeBrace {
                position += 1
                return .table(table.table())
            }
            while true {
                skipWhitespace()
                try parseKeyValue(into: table, depth: depth)
                skipWhitespace()
                guard peek() == .comma else { break }
                position += 1
            }
            try expect(.closeBrace, "to close the inline table")
            return .table(table.table())
        }

        // MARK: Whitespace, comments, newlines

        mutating func skipWhitespace() {
            while let byte = peek(), byte == .space || byte == .tab { position += 1 }
        }

        /// Skips whitespace, comments and newlines, as allowed between array elements.
        mutating func skipBlankSpace() throws(ParseError) {
            while true {
                skipWhitespace()
                try skipComment()
                guard try skipNewline() else { return }
            }
        }

        /// Skips a comment up to (not including) its newline, refusing control characters in it.
        mutating func skipComment() throws(ParseError) {
            guard peek() == .hash else { return }
            while let byte = peek(), byte != .lineFeed {
                if byte.isControl && byte != .tab && !(byte == .carriageReturn && peek(1) == .lineFeed) {
                    throw error("control character U+\(hex(byte)) in a comment")
                }
                if byte == .carriageReturn { return }
                position += 1
            }
        }

        /// Consumes LF or CRLF if it comes next; a lone CR is an error.
        mutating func skipNewline() throws(ParseError) -> Bool {
            switch peek() {
            case .lineFeed:
                position += 1
                return true
            case .carriageReturn:
                guard peek(1) == .lineFeed else { throw error("carriage return not followed by a line feed") }
                position += 2
                return true
            default:
                return false
            }
        }

        // MARK: Helpers

        func peek(_ offset: Int = 0) -> UInt8? {
            position + offset < bytes.count ? bytes[position + offset] : nil
        }

        mutating func expect(_ byte: UInt8, _ purpose: String) throws(ParseError) {
            guard peek() == byte else {
                throw error("expected '\(Character(Unicode.Scalar(byte)))' \(purpose), found \(describeHere())")
            }
            position += 1
        }

        func startsTriple(_ byte: UInt8) -> Bool { peek(1) == byte && peek(2) == byte }
    }
}
