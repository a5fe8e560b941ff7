extension StringProtocol {
    /// The text without leading and trailing whitespace (newlines and "\r" included). The
    /// daemon links FoundationEssentials only, which has no `trimmingCharacters(in:)`; plugins
    /// have the same helper from their SDK (they do not see the kernel).
    public var trimmed: String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}
