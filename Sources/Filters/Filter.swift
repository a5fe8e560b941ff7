import FoundationEssentials
import Glibc
import Kernel

/// containerd's filter language, used by Introspection.Plugins, event subscriptions and lists.
///
/// Grammar (containerd `filters` package):
///
///     filter   := selector ("," selector)*        every selector must match (AND)
///     selector := fieldpath [operator value]      a bare fieldpath tests presence
///     fieldpath:= field ("." field)*              field: [A-Za-z0-9_]+ or a "quoted string"
///     operator := "==" | "!=" | "~="              "~=" is a regular expression match
///     value    := [^,]+ (trimmed) | "quoted string"
///
/// Several filter strings given together are OR-ed. Example: `labels."a.b"==c,kind==active`.
public struct Filter: Sendable, Equatable {
    /// One comparison of a field against a value.
    public struct Selector: Sendable, Equatable {
        public enum Operator: Sendable, Equatable { case present, equal, notEqual, matches }
        public var fieldPath: [String]
        public var op: Operator
        public var value: String
    }

    public var selectors: [Selector]

    /// Parses one filter string; malformed text is `.invalidArgument` naming the position.
    public init(parsing text: String) throws(BerthError) {
        var parser = FilterParser(text)
        selectors = try parser.parseFilter()
    }

    /// True when every selector matches `lookup`, which answers a field path's value or nil.
    public func matches(_ lookup: (_ fieldPath: [String]) -> String?) -> Bool {
        selectors.allSatisfy { selector in
            let value = lookup(selector.fieldPath)
            switch selector.op {
            case .present: return value != nil
            case .equal: return value == selector.value
            case .notEqual: return value != selector.value
            case .matches:
                guard let value else { return false }
                return (try? Regex(selector.value).firstMatch(in: value)) != nil
            }
        }
    }
}

/// An OR of filters: matches everything when empty, as containerd's list calls do.
public struct FilterSet: Sendable {
    public var filters: [Filter]

    /// Parses each string; empty strings are ignored.
    public init(_ texts: [String]) throws(BerthError) {
        var filters = [Filter]()
        for text in texts where !text.trimmed.isEmpty {
            filters.append(try Filter(parsing: text))
        }
        self.filters = filters
    }

    public func matches(_ lookup: (_ fieldPath: [String]) -> String?) -> Bool {
        filters.isEmpty || filters.contains { $0.matches(lookup) }
    }
}

private struct FilterParser {
    private let scalars: [Character]
    private let text: String
    private var position = 0

    init(_ text: String) {
        self.text = text
        scalars = Array(text)
    }

    mutating func parseFilter() throws(BerthError) -> [Filter.Selector] {
        var selectors = [try parseSelector()]
        while skipSpaces(), position < scalars.count {
            try expect(",")
            selectors.append(try parseSelector())
        }
        return selectors
    }

    private mutating func parseSelector() throws(BerthError) -> Filter.Selector {
        skipSpaces()
        var path = [try parseField()]
        while peek() == "." {
            position += 1
            path.append(try parseField())
        }
        skipSpaces()
        guard let op = try parseOperator() else {
            return .init(fieldPath: path, op: .present, value: "")
        }
        skipSpaces()
        // containerd's scanner reads an operator character here as another operator, not a value.
        if let c = peek(), Self.operatorCharacters.contains(c) { throw error("expected a value") }
        return .init(fieldPath: path, op: op, value: try parseValue())
    }

    private mutating func parseField() throws(BerthError) -> String {
        if peek() == "\"" { return try parseQuoted() }
        let start = position
        while let c = peek(), c.isLetter || c.isNumber || c == "_" { position += 1 }
        guard position > start else { throw error("expected a field name") }
        return String(scalars[start..<position])
    }

    /// The characters containerd's scanner reads as one operator token, however many there are.
    private static let operatorCharacters: Set<Character> = ["=", "!", "~"]

    /// The operator at the position, nil when there is none. As in containerd, the longest run of
    /// operator characters is the token, so `labels.x===y` is an unsupported operator "===".
    private mutating func parseOperator() throws(BerthError) -> Filter.Selector.Operator? {
        let start = position
        while let c = peek(), Self.operatorCharacters.contains(c) { position += 1 }
        switch String(scalars[start..<position]) {
        case "": return nil
        case "==": return .equal
        case "!=": return .notEqual
        case "~=": return .matches
        case let token:
            position = start
            throw error("unsupported operator \"\(token)\"")
        }
    }

    private mutating func parseValue() throws(BerthError) -> String {
        if peek() == "\"" { return try parseQuoted() }
        let start = position
        while let c = peek(), c != "," { position += 1 }
        let value = String(scalars[start..<position]).trimmed
        guard !value.isEmpty else { throw error("expected a value") }
        return value
    }

    private mutating func parseQuoted() throws(BerthError) -> String {
        position += 1
        var result = ""
        while let c = peek() {
            position += 1
            switch c {
            case "\"": return result
            case "\\":
                guard let escaped = peek() else { break }
                position += 1
                result.append(escaped == "n" ? "\n" : escaped == "t" ? "\t" : escaped)
            default: result.append(c)
            }
        }
        throw error("unterminated quoted string")
    }

    private mutating func expect(_ c: Character) throws(BerthError) {
        guard peek() == c else { throw error("expected '\(c)'") }
        position += 1
    }

    @discardableResult
    private mutating func skipSpaces() -> Bool {
        while let c = peek(), c == " " || c == "\t" { position += 1 }
        return true
    }

    private func peek() -> Character? { position < scalars.count ? scalars[position] : nil }

    private func error(_ what: String) -> BerthError {
        .invalidArgument("filter \"\(text)\": \(what) at offset \(position)")
    }
}

extension EventBus {
    /// Starts a subscription that receives events matching any of `filters` (fields `topic`
    /// and `namespace`) from now on.
    public func subscribe(filters: FilterSet, bufferSize: Int = EventBus.defaultBufferSize)
        -> AsyncThrowingStream<EventEnvelope, any Error>
    {
        subscribe(bufferSize: bufferSize) { filters.matches($0.field) }
    }
}
