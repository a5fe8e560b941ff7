extension StringProtocol {
    /// The text without leading and trailing whitespace (newlines included). FoundationEssentials,
    /// all a plugin links, has no `trimmingCharacters(in:)`.
    public var trimmed: String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}
