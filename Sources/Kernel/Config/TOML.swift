/// A TOML 1.0 reader (https://toml.io/en/v1.0.0) that needs nothing beyond the standard library,
/// so that reading plugin.conf does not pull Foundation, ICU and their locale data into berthd.
///
/// Terms: a *document* is the text; parsing it gives its root `TOML.Table`, whose values are
/// `TOML.Value`s. A table keeps its keys in the order the document wrote them.
///
/// Example:
///
///     let root = try TOML.parse("[plugins.\"io.example.v1.x\"]\npath = \"x.so\"\n")
///     root["plugins"]?.table?["io.example.v1.x"]?.table?["path"]   // .string("x.so")
///
/// Repeats and absences: parsing is a pure function of the text. A document that breaks any
/// rule of the specification (a duplicate key, a table defined twice, a bad escape, an integer
/// beyond Int64, an impossible date...) is refused as a whole with a `TOML.ParseError` that names
/// the line and column; nothing partial is returned. Containers nested deeper than
/// `maximumDepth` are refused too, so a hostile file cannot exhaust the stack.
///
/// Deliberate choices where the specification leaves room:
/// - Date-times stay text (`Value.dateTime`), as written except that the date/time delimiter
///   (space or `t`) becomes `T` and a `z` offset becomes `Z`, so the text is RFC 3339 as most
///   readers expect it. Fractional seconds keep every digit written.
/// - Seconds may be 60 (a leap second, which RFC 3339 section 5.6 allows); Python's tomllib
///   refuses that.
/// - Floats too large for a Double become infinities, as strtod makes them; the specification
///   demands an error only for integers that cannot be kept losslessly.
/// - A UTF-8 byte order mark at the very start is skipped.
public enum TOML {
    /// The deepest nesting of tables and arrays accepted; the root table is depth 0.
    public static let maximumDepth = 128

    /// Parses a whole document and returns its root table.
    public static func parse(_ text: String) throws(ParseError) -> Table {
        var parser = Parser(bytes: Array(text.utf8))
        return try parser.parseDocument()
    }

    /// One TOML value; which case says which TOML type the document wrote.
    public enum Value: Equatable, Sendable {
        case string(String)
        case integer(Int64)
        case float(Double)
        case boolean(Bool)
        /// An offset or local date-time, local date or local time, in RFC 3339 text.
        case dateTime(String)
        case array([Value])
        case table(Table)

        /// The string, if this is one.
        public var string: String? { if case .string(let value) = self { value } else { nil } }
        /// The integer, if this is one.
        public var integer: Int64? { if case .integer(let value) = self { value } else { nil } }
        /// The float, if this is one (integers are not converted).
        public var float: Double? { if case .float(let value) = self { value } else { nil } }
        /// The boolean, if this is one.
        public var boolean: Bool? { if case .boolean(let value) = self { value } else { nil } }
        /// The date-time text, if this is one.
        public var dateTime: String? { if case .dateTime(let value) = self { value } else { nil } }
        /// The elements, if this is an array.
        public var array: [Value]? { if case .array(let value) = self { value } else { nil } }
        /// The table, if this is one.
        public var table: Table? { if case .table(let value) = self { value } else { nil } }

        /// The TOML name of this value's type, for messages such as "must be a string, found integer".
        public var typeName: String {
            switch self {
            case .string: "string"
            case .integer: "integer"
            case .float: "float"
            case .boolean: "boolean"
            case .dateTime: "date-time"
            case .array: "array"
            case .table: "table"
            }
        }

        /// Equal when of the same case with equal contents; unlike Double's `==`, a nan equals a
        /// nan, so that parsing one document twice gives equal trees.
        public static func == (lhs: Value, rhs: Value) -> Bool {
            switch (lhs, rhs) {
            case (.string(let a), .string(let b)): a == b
            case (.integer(let a), .integer(let b)): a == b
            case (.float(let a), .float(let b)): a == b || (a.isNaN && b.isNaN)
            case (.boolean(let a), .boolean(let b)): a == b
            case (.dateTime(let a), .dateTime(let b)): a == b
            case (.array(let a), .array(let b)): a == b
            case (.table(let a), .table(let b)): a == b
            default: false
            }
        }
    }

    /// A table: unique keys, each with a value, iterated in the order they were added.
    ///
    /// Two tables are equal when they hold the same keys with equal values, whatever the order.
    public struct Table: Equatable, Sendable, Sequence, ExpressibleByDictionaryLiteral {
        /// The keys, in document order.
        public private(set) var keys: [String] = []
        private var values: [String: Value] = [:]

        /// Makes an empty table.
        public init() {}

        /// Makes a table from key-value pairs in order; a repeated key keeps its last value.
        public init(dictionaryLiteral elements: (String, Value)...) {
            for (key, value) in elements { self[key] = value }
        }

        /// The number of keys.
        public var count: Int { keys.count }

        /// The value under `key`; setting a new key appends it, setting nil removes the key.
        public subscript(key: String) -> Value? {
            get { values[key] }
            set {
                switch (values[key] != nil, newValue != nil) {
                case (false, true): keys.append(key)
                case (true, false): keys.removeAll { $0 == key }
                default: break
                }
                values[key] = newValue
            }
        }

        /// Walks the key-value pairs in document order.
        public func makeIterator() -> Iterator { Iterator(table: self) }

        /// The iterator of a table, in document order.
        public struct Iterator: IteratorProtocol {
            let table: Table
            var position = 0

            /// The next key and its value, nil after the last.
            public mutating func next() -> (key: String, value: Value)? {
                guard position < table.keys.count else { return nil }
                let key = table.keys[position]
                position += 1
                return (key, table.values[key]!)
            }
        }

        /// Equal when both hold the same keys with equal values, in whatever order.
        public static func == (lhs: Table, rhs: Table) -> Bool { lhs.values == rhs.values }
    }

    /// Why a document was refused, and where: 1-based line and column (in characters).
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        /// The 1-based line of the offending character.
        public var line: Int
        /// The 1-based column of the offending character, counted in Unicode scalars.
        public var column: Int
        /// A short reason; it quotes at most a few dozen characters of the document.
        public var message: String

        /// Makes an error at a position.
        public init(line: Int, column: Int, message: String) {
            self.line = line
            self.column = column
            self.message = message
        }

        /// "line L, column C: message".
        public var description: String { "line \(line), column \(column): \(message)" }
    }
}
