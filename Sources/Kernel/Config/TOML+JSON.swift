extension TOML.Table {
    /// The table as compact JSON (RFC 8259), keys in document order: strings escaped, integers
    /// as integers, floats as numbers, date-times as their RFC 3339 strings.
    ///
    /// JSON has no nan or infinity; rather than turn them into null (which a plugin would read
    /// as "not set") the rendering fails with `invalidArgument` naming the key.
    public func json() throws(BerthError) -> String {
        var output = ""
        try TOML.appendJSON(.table(self), path: [], to: &output)
        return output
    }
}

extension TOML {
    static func appendJSON(_ value: Value, path: [String], to output: inout String) throws(BerthError) {
        switch value {
        case .string(let text), .dateTime(let text): appendJSONString(text, to: &output)
        case .integer(let number): output += String(number)
        case .boolean(let flag): output += flag ? "true" : "false"
        case .float(let number):
            guard number.isFinite else {
                throw .invalidArgument("\(excerpt(path.joined(separator: "."))): \(number) has no JSON representation")
            }
            // Swift prints the shortest text that reads back to the same Double, always with a
            // '.' or an exponent, which JSON's number grammar accepts as it is.
            output += String(number)
        case .array(let elements):
            output += "["
            for (index, element) in elements.enumerated() {
                if index > 0 { output += "," }
                try appendJSON(element, path: path + ["\(index)"], to: &output)
            }
            output += "]"
        case .table(let table):
            output += "{"
            for (index, (key, element)) in table.enumerated() {
                if index > 0 { output += "," }
                appendJSONString(key, to: &output)
                output += ":"
                try appendJSON(element, path: path + [key], to: &output)
            }
            output += "}"
        }
    }
}
