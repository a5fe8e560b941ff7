import Foundation

/// Paths shared by the storage tests.
enum TestSupport {
    /// A fresh empty directory under /tmp.
    static func temporaryDirectory(_ label: String = "berth-test") -> String {
        let path = NSTemporaryDirectory() + "\(label)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
