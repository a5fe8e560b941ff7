import FoundationEssentials
import Glibc
import Kernel

/// One image as a namespace sees it: a name, the root descriptor it points at, labels, times.
public struct ImageRecord: Sendable, Equatable {
    public struct Target: Sendable, Equatable {
        public var mediaType: String
        public var digest: String
        public var size: Int64
        public var annotations: [String: String]

        public init(mediaType: String, digest: String, size: Int64, annotations: [String: String] = [:]) {
            self.mediaType = mediaType
            self.digest = digest
            self.size = size
            self.annotations = annotations
        }
    }

    public var name: String
    public var labels: [String: String]
    public var target: Target
    public var created: Date
    public var updated: Date

    public init(name: String, labels: [String: String], target: Target, created: Date = Date(), updated: Date = Date()) {
        self.name = name
        self.labels = labels
        self.target = target
        self.created = created
        self.updated = updated
    }

    /// Field lookup for containerd filters: name, target.digest, target.mediatype, labels.KEY.
    public func field(_ path: [String]) -> String? {
        switch (path.first, path.count) {
        case ("name", 1): name
        case ("target", 2) where path[1] == "digest": target.digest
        case ("target", 2) where path[1] == "mediatype": target.mediaType
        case ("labels", 2): labels[path[1]]
        default: nil
        }
    }

    /// containerd's rules for a storable image: a name, and a target with a media type and a
    /// valid digest.
    func validate() throws(BerthError) {
        guard !name.isEmpty else { throw .invalidArgument("image name must not be empty") }
        guard name.utf8.count <= 4096 else { throw .invalidArgument("image name \"\(name.prefix(64))...\" is longer than 4096 bytes") }
        guard !target.mediaType.isEmpty else { throw .invalidArgument("image \"\(name)\": target media type must be set") }
        try ContentDigest.validate(target.digest)
        try Validation.labels(labels)
        try Validation.labels(target.annotations)
    }
}

extension MetadataSchema {
    /// Images per namespace: name → root descriptor.
    public static let images = MetadataSchema(
        statements: [
            """
            CREATE TABLE IF NOT EXISTS images (
                namespace TEXT NOT NULL,
                name TEXT NOT NULL,
                media_type TEXT NOT NULL,
                digest TEXT NOT NULL,
                size INTEGER NOT NULL,
                annotations TEXT NOT NULL,
                labels TEXT NOT NULL,
                created INTEGER NOT NULL,
                updated INTEGER NOT NULL,
                PRIMARY KEY (namespace, name))
            """
        ], namespacedTables: [("images", "images")])
}

/// Image records in the metadata store; each method is one transaction.
extension MetadataStore {
    private static let imageColumns = "name, media_type, digest, size, annotations, labels, created, updated"

    /// Stores a new image (creating the namespace); `.alreadyExists` when the name is taken.
    public func createImage(namespace: String, _ image: ImageRecord) throws(BerthError) -> ImageRecord {
        try image.validate()
        return try withDatabase { (db) throws(BerthError) in
            try ensureNamespace(namespace, db)
            if try findImage(namespace, image.name, db) != nil { throw .alreadyExists("image \"\(image.name)\": already exists") }
            let now = Self.now()
            try db.query(
                "INSERT INTO images (namespace, \(Self.imageColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    .text(namespace), .text(image.name), .text(image.target.mediaType), .text(image.target.digest),
                    .integer(image.target.size), .text(try encodeLabels(image.target.annotations)),
                    .text(try encodeLabels(image.labels)), .integer(now), .integer(now),
                ])
            return try findImage(namespace, image.name, db)!
        }
    }

    public nonisolated func image(namespace: String, name: String) async throws(BerthError) -> ImageRecord {
        try read { (db) throws(BerthError) in
            guard let image = try findImage(namespace, name, db) else { throw .notFound("image \"\(name)\": not found") }
            return image
        }
    }

    /// Every image of `namespace`, by name.
    public nonisolated func images(namespace: String) async throws(BerthError) -> [ImageRecord] {
        try read { (db) throws(BerthError) in
            try db.query("SELECT \(Self.imageColumns) FROM images WHERE namespace=? ORDER BY name", [.text(namespace)])
                .map { (row) throws(BerthError) in try imageRecord(row) }
        }
    }

    /// Changes the fields `paths` name (labels, labels.KEY, target, annotations,
    /// annotations.KEY; none means labels and target) of image `update.name`.
    public func updateImage(namespace: String, _ update: ImageRecord, paths: [String]) throws(BerthError) -> ImageRecord {
        try withDatabase { (db) throws(BerthError) in
            guard var image = try findImage(namespace, update.name, db) else { throw .notFound("image \"\(update.name)\": not found") }
            let object = "image \"\(update.name)\""
            if paths.isEmpty {
                image.labels = update.labels.filter { !$0.value.isEmpty }
                image.target = update.target
            }
            for path in paths {
                if path == "labels" || path.hasPrefix("labels.") {
                    image.labels = try LabelUpdate.apply(update.labels, to: image.labels, paths: [path], object: object)
                } else if path == "target" {
                    image.target = update.target
                } else if path == "annotations" || path.hasPrefix("annotations.") {
                    let relabelled = path == "annotations" ? "labels" : "labels." + path.dropFirst("annotations.".count)
                    image.target.annotations = try LabelUpdate.apply(
                        update.target.annotations, to: image.target.annotations,
                        paths: [relabelled], object: object)
                } else {
                    throw .invalidArgument("cannot update field \"\(path)\" of \(object)")
                }
            }
            try image.validate()
            try db.query(
                """
                UPDATE images SET media_type=?, digest=?, size=?, annotations=?, labels=?, updated=? WHERE namespace=? AND name=?
                """,
                [
                    .text(image.target.mediaType), .text(image.target.digest), .integer(image.target.size),
                    .text(try encodeLabels(image.target.annotations)), .text(try encodeLabels(image.labels)),
                    .integer(Self.now()), .text(namespace), .text(image.name),
                ])
            return try findImage(namespace, image.name, db)!
        }
    }

    public func deleteImage(namespace: String, name: String) throws(BerthError) {
        try withDatabase { (db) throws(BerthError) in
            guard try findImage(namespace, name, db) != nil else { throw .notFound("image \"\(name)\": not found") }
            try db.query("DELETE FROM images WHERE namespace=? AND name=?", [.text(namespace), .text(name)])
        }
    }

    private nonisolated func findImage(_ namespace: String, _ name: String, _ db: SQLiteDatabase) throws(BerthError) -> ImageRecord? {
        let rows = try db.query("SELECT \(Self.imageColumns) FROM images WHERE namespace=? AND name=?", [.text(namespace), .text(name)])
        return try rows.first.map { (row) throws(BerthError) in try imageRecord(row) }
    }

    private nonisolated func imageRecord(_ row: [SQLiteValue]) throws(BerthError) -> ImageRecord {
        guard let name = row[0].text, let mediaType = row[1].text, let digest = row[2].text, let size = row[3].integer,
            let annotations = decodeLabels(row[4].text), let labels = decodeLabels(row[5].text),
            let created = row[6].integer, let updated = row[7].integer
        else {
            throw .dataLoss("metadata database: unreadable image row")
        }
        return ImageRecord(
            name: name, labels: labels,
            target: .init(mediaType: mediaType, digest: digest, size: size, annotations: annotations),
            created: Self.date(created), updated: Self.date(updated))
    }
}
