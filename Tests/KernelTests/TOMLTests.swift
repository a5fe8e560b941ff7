import Foundation
import Testing

@testable import Kernel

/// One document of the oracle test; `refusedAt` is the (line, column) our error must name.
struct TOMLCase: Sendable, CustomTestStringConvertible {
    let name: String
    let text: String
    let line: Int?
    let column: Int?

    init(_ name: String, _ text: String, refusedAt position: (Int, Int)? = nil) {
        self.name = name
        self.text = text
        line = position?.0
        column = position?.1
    }

    var testDescription: String { name }
}

@Suite struct TOMLTests {
    // MARK: Python's tomllib as the oracle

    @Test(arguments: validDocuments)
    func parse_validDocument_equalsTomllibsTree(_ document: TOMLCase) throws {
        let verdict = try TOMLOracle.verdicts.get()[document.name]
        let expected = try #require(verdict ?? nil, "tomllib refused \(document.name)")
        let table = try TOML.parse(document.text)
        #expect(Self.pythonForm(.table(table)) == expected)
        #expect(Self.keyPaths(.table(table)) == Self.keyPaths(expected))
    }

    @Test(arguments: invalidDocuments)
    func parse_invalidDocument_refusedLikeTomllibAtItsPosition(_ document: TOMLCase) throws {
        let verdict = try #require(try TOMLOracle.verdicts.get()[document.name], "no verdict for \(document.name)")
        #expect(verdict == nil, "tomllib accepted \(document.name)")
        let error = try #require(throws: TOML.ParseError.self) { try TOML.parse(document.text) }
        #expect(error.line == document.line && error.column == document.column, "\(error)")
    }

    @Test(arguments: validDocuments)
    func json_validDocument_readsBackAsTheSameTree(_ document: TOMLCase) throws {
        let table = try TOML.parse(document.text)
        guard !Self.holdsNonFiniteFloat(.table(table)) else {
            #expect(throws: BerthError.self) { try table.json() }
            return
        }
        let object = try JSONSerialization.jsonObject(with: Data(try table.json().utf8))
        #expect(Self.matches(object, .table(table)))
    }

    // MARK: Positions and messages

    @Test func parse_errorOnSixthLine_namesLineAndColumn() {
        let text = "a = 1\n\nb = \"\"\"\nx\n\"\"\"\nc = @\n"
        #expect(throws: TOML.ParseError(line: 6, column: 5, message: "expected a value, found '@'")) {
            try TOML.parse(text)
        }
    }

    @Test func parse_errorAfterMultibyteCharacters_countsColumnsInCharacters() {
        #expect(throws: TOML.ParseError(line: 1, column: 11, message: "expected a newline, found 'x'")) {
            try TOML.parse("\"ééé\" = 1 x")
        }
    }

    @Test func parse_longDuplicateKey_messageQuotesAtMostSixtyCharacters() throws {
        let key = String(repeating: "k", count: 5000)
        let error = try #require(throws: TOML.ParseError.self) { try TOML.parse("\(key) = 1\n\(key) = 2\n") }
        #expect(error.line == 2 && error.column == 1)
        #expect(error.message == "duplicate key " + String(repeating: "k", count: 57) + "...")
    }

    // MARK: Bounds

    @Test func parse_arraysNested128Deep_accepted() throws {
        let table = try TOML.parse("a = " + String(repeating: "[", count: 128) + String(repeating: "]", count: 128))
        var value = try #require(table["a"])
        var depth = 0
        while let inner = value.array {
            depth += 1
            guard let first = inner.first else { break }
            value = first
        }
        #expect(depth == 128)
    }

    @Test func parse_arraysNested129Deep_refused() {
        #expect(throws: TOML.ParseError(line: 1, column: 133, message: "arrays and tables nested deeper than 128 levels")) {
            try TOML.parse("a = " + String(repeating: "[", count: 129) + String(repeating: "]", count: 129))
        }
    }

    @Test func parse_hundredThousandOpenBrackets_refusedWithoutCrashing() {
        #expect(throws: TOML.ParseError(line: 1, column: 133, message: "arrays and tables nested deeper than 128 levels")) {
            try TOML.parse("a = " + String(repeating: "[", count: 100_000))
        }
        #expect(throws: TOML.ParseError(line: 1, column: 389, message: "arrays and tables nested deeper than 128 levels")) {
            try TOML.parse("a = " + String(repeating: "{b=", count: 100_000))
        }
    }

    @Test func parse_keysWithManyParts_boundedByDepth() throws {
        let deepest = Array(repeating: "a", count: 128).joined(separator: ".")
        #expect(try TOML.parse("[\(deepest)]\n").count == 1)
        #expect(throws: TOML.ParseError(line: 2, column: 1, message: "tables nested deeper than 128 levels")) {
            try TOML.parse("[\(deepest)]\nb.c = 1\n")
        }
        #expect(throws: TOML.ParseError(line: 1, column: 258, message: "key has more than 128 parts")) {
            try TOML.parse(Array(repeating: "a", count: 200).joined(separator: ".") + " = 1\n")
        }
    }

    @Test func parse_hundredThousandArrayTables_linearTime() throws {
        let text = String(repeating: "[[item]]\nx = 1\n", count: 100_000) + "[other]\n"
        let clock = ContinuousClock()
        var items: [TOML.Value]?
        let elapsed = try clock.measure { items = try TOML.parse(text)["item"]?.array }
        #expect(items?.count == 100_000)
        // Quadratic copying would take minutes here; linear work takes well under a second.
        #expect(elapsed < .seconds(15))
    }

    // MARK: Values our parser and tomllib treat differently, by design or by range

    @Test func parse_int64Limits_acceptedAndOverflowRefused() throws {
        let table = try TOML.parse("max = 9223372036854775807\nmin = -9223372036854775808\n")
        #expect(table["max"] == .integer(.max) && table["min"] == .integer(.min))
        for text in ["a = 9223372036854775808", "a = -9223372036854775809", "a = 0x8000000000000000", "a = 0b" + String(repeating: "1", count: 65)] {
            #expect(throws: TOML.ParseError(line: 1, column: 5, message: "integer does not fit in 64 bits")) { try TOML.parse(text) }
        }
    }

    @Test func parse_dateTimes_keepDigitsAndNormaliseDelimiters() throws {
        let table = try TOML.parse("a = 1979-05-27 07:32:00.123456789z\nb = 1979-05-27t00:32:00-07:00\nc = 23:59:60\nd = 2000-02-29\n")
        #expect(table["a"] == .dateTime("1979-05-27T07:32:00.123456789Z"))
        #expect(table["b"] == .dateTime("1979-05-27T00:32:00-07:00"))
        #expect(table["c"] == .dateTime("23:59:60"))  // a leap second, which RFC 3339 allows
        #expect(table["d"] == .dateTime("2000-02-29"))
    }

    @Test func parse_byteOrderMark_skipped() throws {
        #expect(try TOML.parse("\u{FEFF}a = 1\n") == ["a": .integer(1)])
    }

    // MARK: JSON

    @Test func json_everyKind_exactText() throws {
        let table: TOML.Table = [
            "s": .string("q\"\\ \n\t\u{1}é😀"), "i": .integer(-42), "f": .float(1.5), "e": .float(1e100),
            "b": .boolean(true), "d": .dateTime("1979-05-27T07:32:00Z"),
            "a": .array([.integer(1), .string("x"), .array([])]), "t": .table(["z": .boolean(false), "y": .table([:])]),
        ]
        #expect(
            try table.json()
                == #"{"s":"q\"\\ \n\t\u0001é😀","i":-42,"f":1.5,"e":1e+100,"b":true,"d":"1979-05-27T07:32:00Z","a":[1,"x",[]],"t":{"z":false,"y":{}}}"#
        )
    }

    @Test func json_nanOrInfinity_refusedNamingTheKey() {
        let table: TOML.Table = ["config": .table(["ratios": .array([.float(1), .float(.infinity)])])]
        #expect(throws: BerthError(.invalidArgument, "config.ratios.1: inf has no JSON representation")) { try table.json() }
        let nan: TOML.Table = ["x": .float(.nan)]
        #expect(throws: BerthError(.invalidArgument, "x: nan has no JSON representation")) { try nan.json() }
    }

    // MARK: The value types

    @Test func table_setAndRemove_keepInsertionOrderAndCompareWithoutIt() {
        var table: TOML.Table = ["b": .integer(1), "a": .integer(2)]
        table["c"] = .integer(3)
        table["b"] = .integer(4)
        table["a"] = nil
        #expect(table.keys == ["b", "c"])
        #expect(table.map(\.key) == ["b", "c"])
        #expect(table == ["c": .integer(3), "b": .integer(4)])
        #expect(table != ["c": .integer(3), "b": .integer(1)])
    }

    @Test func value_accessorsAndNaN_matchTheirCase() {
        #expect(TOML.Value.string("x").string == "x" && TOML.Value.string("x").integer == nil)
        #expect(TOML.Value.integer(1).float == nil && TOML.Value.float(1).float == 1)
        #expect(TOML.Value.dateTime("07:32:00").typeName == "date-time")
        #expect(TOML.Value.float(.nan) == .float(-.nan))
    }
}

// MARK: - Oracle plumbing

/// Runs every document through Python's tomllib once, in one process.
enum TOMLOracle {
    /// tomllib's tree for each document in `TOMLTests`' lists, by name; nil where it refused.
    static let verdicts: Result<[String: TOML.Value?], any Error> = Result { try run() }

    /// Prints, per document, null or its tree with every value tagged by type, tables as
    /// [key, value] lists to keep their order, date-times in isoformat.
    static let script = """
        import datetime, json, sys, tomllib
        def tag(v):
            if isinstance(v, bool): return ["bool", v]
            if isinstance(v, int): return ["int", str(v)]
            if isinstance(v, float): return ["float", repr(v)]
            if isinstance(v, str): return ["str", v]
            if isinstance(v, (datetime.datetime, datetime.date, datetime.time)): return ["dt", v.isoformat()]
            if isinstance(v, list): return ["array", [tag(x) for x in v]]
            return ["table", [[k, tag(x)] for k, x in v.items()]]
        def load(text):
            try: return tag(tomllib.loads(text))
            except tomllib.TOMLDecodeError: return None
        with open(sys.argv[1], encoding="utf-8") as f: documents = json.load(f)
        sys.stdout.write(json.dumps([load(d) for d in documents]))
        """

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func run() throws -> [String: TOML.Value?] {
        let documents = TOMLTests.validDocuments + TOMLTests.invalidDocuments
        let input = FileManager.default.temporaryDirectory.appendingPathComponent("berth-toml-oracle-\(getpid()).json")
        try JSONSerialization.data(withJSONObject: documents.map(\.text)).write(to: input)
        defer { try? FileManager.default.removeItem(at: input) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, input.path]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let results = try JSONSerialization.jsonObject(with: data) as? [Any] else {
            throw Failure(description: "python3 with tomllib (Python 3.11 or later) failed: \(process.terminationStatus)")
        }
        var verdicts = [String: TOML.Value?]()
        for (document, result) in zip(documents, results) {
            verdicts[document.name] = result is NSNull ? .some(nil) : try value(tagged: result)
        }
        return verdicts
    }

    static func value(tagged json: Any) throws -> TOML.Value {
        guard let pair = json as? [Any], pair.count == 2, let tag = pair[0] as? String else {
            throw Failure(description: "malformed oracle output \(json)")
        }
        switch (tag, pair[1]) {
        case ("str", let text as String): return .string(text)
        case ("int", let text as String): return .integer(Int64(text)!)
        case ("float", let text as String): return .float(Double(text)!)
        case ("bool", let flag as Bool): return .boolean(flag)
        case ("dt", let text as String): return .dateTime(text)
        case ("array", let elements as [Any]): return .array(try elements.map(value(tagged:)))
        case ("table", let entries as [[Any]]):
            var table = TOML.Table()
            for entry in entries { table[entry[0] as! String] = try value(tagged: entry[1]) }
            return .table(table)
        default: throw Failure(description: "unknown oracle tag \(tag)")
        }
    }
}

extension TOMLTests {
    /// Our tree with date-times spelled as Python's isoformat spells them: a Z or -00:00 offset
    /// as +00:00, fractional seconds cut to microseconds and dropped when zero.
    static func pythonForm(_ value: TOML.Value) -> TOML.Value {
        switch value {
        case .dateTime(let text): .dateTime(isoformat(text))
        case .array(let elements): .array(elements.map(pythonForm))
        case .table(let table):
            .table(table.reduce(into: TOML.Table()) { result, entry in result[entry.key] = pythonForm(entry.value) })
        default: value
        }
    }

    static func isoformat(_ text: String) -> String {
        var text = text
        if text.contains("T"), text.hasSuffix("Z") { text = String(text.dropLast()) + "+00:00" }
        if text.contains("T"), text.hasSuffix("-00:00") { text = String(text.dropLast(6)) + "+00:00" }
        guard let dot = text.firstIndex(of: ".") else { return text }
        let digits = text[text.index(after: dot)...].prefix { $0.isNumber }
        let micro = String((String(digits.prefix(6)) + "000000").prefix(6))
        return String(text[..<dot]) + (micro == "000000" ? "" : "." + micro) + String(text[digits.endIndex...])
    }

    /// Every key path in document order, so that order is compared too (`==` ignores it).
    static func keyPaths(_ value: TOML.Value, _ prefix: String = "") -> [String] {
        switch value {
        case .array(let elements):
            elements.enumerated().flatMap { keyPaths($0.element, prefix + "[\($0.offset)]") }
        case .table(let table):
            table.flatMap { [prefix + "." + $0.key] + keyPaths($0.value, prefix + "." + $0.key) }
        default: []
        }
    }

    static func holdsNonFiniteFloat(_ value: TOML.Value) -> Bool {
        switch value {
        case .float(let number): !number.isFinite
        case .array(let elements): elements.contains(where: holdsNonFiniteFloat)
        case .table(let table): table.contains { holdsNonFiniteFloat($0.value) }
        default: false
        }
    }

    /// Whether what JSONSerialization read from our JSON is the tree it was rendered from.
    static func matches(_ object: Any, _ value: TOML.Value) -> Bool {
        switch value {
        case .string(let text), .dateTime(let text): object as? String == text
        case .integer(let number): (object as? NSNumber)?.int64Value == number
        case .float(let number): (object as? NSNumber)?.doubleValue == number
        case .boolean(let flag): object as? Bool == flag
        case .array(let elements):
            (object as? [Any]).map { $0.count == elements.count && zip($0, elements).allSatisfy(matches) } ?? false
        case .table(let table):
            (object as? [String: Any]).map { json in
                json.count == table.count && table.allSatisfy { entry in json[entry.key].map { matches($0, entry.value) } ?? false }
            } ?? false
        }
    }
}
