import BerthPluginSDK
import Crypto
import FoundationEssentials
import Glibc

/// `sha256:<64 lowercase hex>`, the only digest form Berth stores.
enum Digest {
    /// The hex part of a valid digest; `.invalidArgument` naming it otherwise.
    static func hex(_ digest: String) throws -> String {
        guard digest.hasPrefix("sha256:") else {
            throw PluginError(.invalidArgument, "digest \"\(digest.prefix(80))\" is not a sha256 digest (\"sha256:\" and 64 hex digits)")
        }
        let hex = digest.dropFirst(7)
        guard hex.utf8.count == 64, hex.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
            throw PluginError(.invalidArgument, "digest \"\(digest.prefix(80))\" is malformed: expected 64 lowercase hex digits")
        }
        return String(hex)
    }

    static func string(_ hash: SHA256.Digest) -> String {
        "sha256:" + hexDigits(hash)
    }
}
