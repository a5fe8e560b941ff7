import FoundationEssentials
import Glibc
import Kernel

/// A blob as one namespace sees it: what content Info and List return.
public struct ContentRecord: Sendable, Equatable {
    public var digest: String
    public var size: Int64
    public var labels: [String: String]
    public var created: Date
    public var updated: Date

    /// Field lookup for containerd filters: digest, size, labels.KEY.
    public func field(_ path: [String]) -> String? {
        switch path.first {
        case "digest": digest
        case "size": String(size)
        case "labels" where path.count == 2: labels[path[1]]
        default: nil
        }
    }
}

extension MetadataSchema {
    /// Which namespace sees which blob; the bytes live once in the content plugin.
    public static let content = MetadataSchema(
        statements: [
            """
            CREATE TABLE IF NOT EXISTS content (
                namespace TEXT NOT NULL,
                digest TEXT NOT NULL,
                size INTEGER NOT NULL,
                labels TEXT NOT NULL,
                created INTEGER NOT NULL,
                updated INTEGER NOT NULL,
                PRIMARY KEY (namespace, digest))
            """,
            "CREATE INDEX IF NOT EXISTS content_digest ON content(digest)",
        ], namespacedTables: [("content", "content")])
}

/// `sha256:` and 64 lowercase hex digits: the only digest form Berth accepts.
public enum ContentDigest {
    public static func validate(_ digest: String) throws(BerthError) {
        let hex = digest.utf8.dropFirst(7)
        guard digest.hasPrefix("sha256:"), hex.count == 64,
            hex.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
        else {
            throw .invalidArgument("digest \"\(digest.prefix(80))\" is not a valid sha256 digest (\"sha256:\" and 64 lowercase hex digits)")
        }
    }
}

extension MetadataStore {
    private static let contentColumns = "digest, size, labels, created, updated"

    /// Records `digest` in `namespace` (creating the namespace); `.alreadyExists` if recorded.
    /// A non-empty `lease` must exist and then holds the content.
    public func insertContent(
        namespace: String, digest: String, size: Int64,
        labels: [String: String], lease: String = ""
    ) throws(BerthError) -> ContentRecord {
        try Validation.labels(labels)
        return try withDatabase { (db) throws(BerthError) in
            try ensureNamespace(namespace, db)
            if !lease.isEmpty { try attach(.content(digest), lease: lease, namespace: namespace, db) }
            let now = Self.now()
            if try findContent(namespace, digest, db) != nil { throw .alreadyExists("content \(digest): already exists") }
            try db.query(
                "INSERT INTO content (namespace, digest, size, labels, created, updated) VALUES (?, ?, ?, ?, ?, ?)",
                [.text(namespace), .text(digest), .integer(size), .text(try encodeLabels(labels)), .integer(now), .integer(now)])
            return try findContent(namespace, digest, db)!
        }
    }

    /// The record of `digest` in `namespace`; `.notFound` naming it when absent.
    public nonisolated func content(namespace: String, digest: String) async throws(BerthError) -> ContentRecord {
        try read { (db) throws(BerthError) in
            guard let record = try findContent(namespace, digest, db) else { throw .notFound("content \(digest): not found") }
            return record
        }
    }

    public nonisolated func contents(namespace: String) async throws(BerthError) -> [ContentRecord] {
        try read { (db) throws(BerthError) in
            var records = [ContentRecord]()
            for row in try db.query("SELECT \(Self.contentColumns) FROM content WHERE namespace=? ORDER BY digest", [.text(namespace)]) {
                records.append(try contentRecord(row))
            }
            return records
        }
    }

    public func updateContentLabels(
        namespace: String, digest: String, labels: [String: String],
        paths: [String]
    ) throws(BerthError) -> ContentRecord {
        try withDatabase { (db) throws(BerthError) in
            guard var record = try findContent(namespace, digest, db) else { throw .notFound("content \(digest): not found") }
            let fixed = paths.filter { ["digest", "size", "created_at", "updated_at"].contains($0) }
            guard fixed.isEmpty else { throw .invalidArgument("cannot update field \"\(fixed[0])\" of content \(digest): only labels change") }
            record.labels = try LabelUpdate.apply(labels, to: record.labels, paths: paths, object: "content \(digest)")
            try Validation.labels(record.labels)
            try db.query(
                "UPDATE content SET labels=?, updated=? WHERE namespace=? AND digest=?",
                [.text(try encodeLabels(record.labels)), .integer(Self.now()), .text(namespace), .text(digest)])
            return try findContent(namespace, digest, db)!
        }
    }

    /// Deletes the record; answers whether any namespace still records the digest.
    public func deleteContent(namespace: String, digest: String) throws(BerthError) -> Bool {
        try withDatabase { (db) throws(BerthError) in
            guard try findContent(namespace, digest, db) != nil else { throw .notFound("content \(digest): not found") }
            try db.query("DELETE FROM content WHERE namespace=? AND digest=?", [.text(namespace), .text(digest)])
            return !(try db.query("SELECT 1 FROM content WHERE digest=? LIMIT 1", [.text(digest)]).isEmpty)
        }
    }

    /// Every digest some namespace records.
    public func recordedDigests() throws(BerthError) -> Set<String> {
        try withDatabase { (db) throws(BerthError) in
            Set(try db.query("SELECT DISTINCT digest FROM content").compactMap { $0[0].text })
        }
    }

    private nonisolated func findContent(_ namespace: String, _ digest: String, _ db: SQLiteDatabase) throws(BerthError) -> ContentRecord? {
        let rows = try db.query("SELECT \(Self.contentColumns) FROM content WHERE namespace=? AND digest=?", [.text(namespace), .text(digest)])
        return try rows.first.map { (row) throws(BerthError) in try contentRecord(row) }
    }

    private nonisolated func contentRecord(_ row: [SQLiteValue]) throws(BerthError) -> ContentRecord {
        guard let digest = row[0].text, let size = row[1].integer, let labels = decodeLabels(row[2].text),
            let created = row[3].integer, let updated = row[4].integer
        else {
            throw .dataLoss("metadata database: unreadable content row")
        }
        return ContentRecord(digest: digest, size: size, labels: labels, created: Self.date(created), updated: Self.date(updated))
    }
}
