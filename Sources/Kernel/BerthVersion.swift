/// Berth's release, reported by the Version service and `berthd --version`.
public enum BerthVersion {
    /// Semantic version of this source tree.
    public static let version = "0.1.0"
    /// The source revision; release builds replace it, development builds say so.
    public static let revision = "development"
}
