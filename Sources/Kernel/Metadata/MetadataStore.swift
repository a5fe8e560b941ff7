import Dispatch
import FoundationEssentials
import Glibc
import Synchronization

/// Tables that one part of Berth keeps in the metadata store.
///
/// Parts register their schema when the store opens; the store creates missing tables and
/// learns which tables hold namespaced objects, so that deleting a namespace can refuse while
/// any of them still has a row in it.
public struct MetadataSchema: Sendable {
    /// `CREATE TABLE IF NOT EXISTS ...` and index statements; run on every open.
    public var statements: [String]
    /// Tables with a `namespace` column, with the plural noun used in errors ("snapshots").
    public var namespacedTables: [(table: String, noun: String)]
    /// Columns added after a table first shipped: added on open to databases that lack them.
    public var addedColumns: [(table: String, column: String, definition: String)]

    public init(
        statements: [String], namespacedTables: [(table: String, noun: String)] = [],
        addedColumns: [(table: String, column: String, definition: String)] = []
    ) {
        self.statements = statements
        self.namespacedTables = namespacedTables
        self.addedColumns = addedColumns
    }
}

/// One namespace: a name and free-form labels.
public struct NamespaceRecord: Sendable, Equatable {
    public var name: String
    public var labels: [String: String]

    public init(name: String, labels: [String: String] = [:]) {
        self.name = name
        self.labels = labels
    }
}

/// Berth's crash-safe, transactional metadata: namespaces, the daemon's identity, and the
/// tables other parts register. Every method is one SQLite transaction, so a crash leaves
/// either all of a change or none of it (containerd keeps the same facts in bbolt).
///
/// Writes run on the store's own thread (`unownedExecutor`): a transaction ends in fsync, and
/// that wait must not hold the event-loop thread that serves other clients. Reads (`read`) run
/// on the caller's thread through a second connection, without that hop: WAL lets them see the
/// last commit while a write is under way.
public actor MetadataStore {
    private nonisolated let executor = StoreExecutor()
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    private let database: SQLiteDatabase
    private let namespacedTables: [(table: String, noun: String)]
    /// The identity never changes once made; `ctr` asks for it on every `version`, so once
    /// known it is answered without a hop to the store's thread (a hop cost ~15% of berthd's
    /// CPU per `ctr version`, measured 2026-12-01).
    private nonisolated let cachedUUID = Mutex<String?>(nil)
    private nonisolated let reader: ReadConnection

    /// The store's own tables.
    static let coreSchema = MetadataSchema(statements: [
        """
        CREATE TABLE IF NOT EXISTS namespaces (
            name TEXT PRIMARY KEY NOT NULL,
            labels TEXT NOT NULL,
            created INTEGER NOT NULL,
            updated INTEGER NOT NULL)
        """,
        "CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)",
    ])

    /// Opens (creating if needed) the database at `path` with the core tables and `schemas`.
    public init(path: String, schemas: [MetadataSchema] = []) throws(BerthError) {
        database = try SQLiteDatabase(path: path)
        let all = [Self.coreSchema] + schemas
        let database = database
        try database.transaction { () throws(BerthError) in
            for statement in all.flatMap(\.statements) { try database.execute(statement) }
            for (table, column, definition) in all.flatMap(\.addedColumns)
            where !(try database.query("SELECT name FROM pragma_table_info(?)", [.text(table)]).contains { $0[0].text == column }) {
                try database.execute("ALTER TABLE \(table) ADD COLUMN \(column) \(definition)")
            }
        }
        namespacedTables = all.flatMap(\.namespacedTables)
        reader = ReadConnection(try SQLiteDatabase(path: path, reader: true))
    }

    /// The daemon's stable identity (`ctr version` shows it), made on first use.
    public nonisolated func serverUUID() async throws(BerthError) -> String {
        if let uuid = cachedUUID.withLock({ $0 }) { return uuid }
        let uuid = try await loadServerUUID()
        cachedUUID.withLock { $0 = uuid }
        return uuid
    }

    private func loadServerUUID() throws(BerthError) -> String {
        try database.transaction { () throws(BerthError) in
            if let row = try database.query("SELECT value FROM settings WHERE key='uuid'").first,
                let uuid = row[0].text
            {
                return uuid
            }
            let uuid = UUID().uuidString.lowercased()
            try database.query("INSERT INTO settings (key, value) VALUES ('uuid', ?)", [.text(uuid)])
            return uuid
        }
    }

    /// Creates a namespace; `.alreadyExists` when the name is taken.
    public func createNamespace(_ record: NamespaceRecord) throws(BerthError) -> NamespaceRecord {
        try Validation.namespaceName(record.name)
        try Validation.labels(record.labels)
        let now = Self.now()
        return try database.transaction { () throws(BerthError) in
            if try exists(record.name) { throw .alreadyExists("namespace \"\(record.name)\": already exists") }
            try database.query(
                "INSERT INTO namespaces (name, labels, created, updated) VALUES (?, ?, ?, ?)",
                [.text(record.name), .text(try encode(record.labels)), .integer(now), .integer(now)])
            return record
        }
    }

    /// The namespace called `name`; `.notFound` when there is none.
    public nonisolated func namespace(_ name: String) async throws(BerthError) -> NamespaceRecord {
        try read { (db) throws(BerthError) in try namespace(name, db) }
    }

    /// Every namespace, sorted by name.
    public nonisolated func namespaces() async throws(BerthError) -> [NamespaceRecord] {
        try read { (db) throws(BerthError) in
            var records = [NamespaceRecord]()
            for row in try db.query("SELECT name, labels FROM namespaces ORDER BY name") {
                records.append(try record(row))
            }
            return records
        }
    }

    /// Replaces the labels named by `paths` ("labels" or "labels.KEY"); no paths replaces all.
    /// A label path whose new value is absent removes that label.
    public func updateNamespace(_ update: NamespaceRecord, paths: [String]) throws(BerthError) -> NamespaceRecord {
        try database.transaction { () throws(BerthError) in
            var current = try namespace(update.name, database)
            current.labels = try LabelUpdate.apply(update.labels, to: current.labels, paths: paths, object: "namespace \"\(update.name)\"")
            try Validation.labels(current.labels)
            let now = Self.now()
            try database.query(
                "UPDATE namespaces SET labels=?, updated=? WHERE name=?",
                [.text(try encode(current.labels)), .integer(now), .text(update.name)])
            return current
        }
    }

    /// Deletes an empty namespace; `.failedPrecondition` while any object still lives in it.
    public func deleteNamespace(_ name: String) throws(BerthError) {
        try database.transaction { () throws(BerthError) in
            guard try exists(name) else { throw .notFound("namespace \"\(name)\": not found") }
            var holding = [String]()
            for (table, noun) in namespacedTables
            where !(try database.query("SELECT 1 FROM \(table) WHERE namespace=? LIMIT 1", [.text(name)]).isEmpty) {
                holding.append(noun)
            }
            guard holding.isEmpty else {
                throw .failedPrecondition("namespace \"\(name)\" must be empty, but it still has \(holding.joined(separator: ", "))")
            }
            try database.query("DELETE FROM namespaces WHERE name=?", [.text(name)])
        }
    }

    /// Runs raw SQL inside one read transaction, on the caller's thread; for parts that
    /// registered their own tables. `body` must only read (the connection refuses writes).
    public nonisolated func read<T>(_ body: (SQLiteDatabase) throws(BerthError) -> T) throws(BerthError) -> T {
        try reader.withDatabase { (db) throws(BerthError) in try db.snapshot { () throws(BerthError) in try body(db) } }
    }

    /// Runs raw SQL inside one write transaction, on the store's thread; for parts that
    /// registered their own tables.
    public func withDatabase<T>(_ body: (SQLiteDatabase) throws(BerthError) -> T) throws(BerthError) -> T {
        try database.transaction { () throws(BerthError) in try body(database) }
    }

    /// Creates namespace `name` with no labels if it does not exist: containerd makes a
    /// namespace implicitly when the first object is created in it.
    public func ensureNamespace(_ name: String, _ db: SQLiteDatabase) throws(BerthError) {
        try Validation.namespaceName(name)
        let now = Self.now()
        try db.query(
            "INSERT OR IGNORE INTO namespaces (name, labels, created, updated) VALUES (?, '{}', ?, ?)",
            [.text(name), .integer(now), .integer(now)])
    }

    /// Nanoseconds since 1970, the unit of every time column.
    public static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1e9) }
    public static func date(_ nanoseconds: Int64) -> Date { Date(timeIntervalSince1970: Double(nanoseconds) / 1e9) }

    private func exists(_ name: String) throws(BerthError) -> Bool {
        !(try database.query("SELECT 1 FROM namespaces WHERE name=?", [.text(name)]).isEmpty)
    }

    private nonisolated func namespace(_ name: String, _ db: SQLiteDatabase) throws(BerthError) -> NamespaceRecord {
        let rows = try db.query("SELECT name, labels FROM namespaces WHERE name=?", [.text(name)])
        guard let row = rows.first else { throw .notFound("namespace \"\(name)\": not found") }
        return try record(row)
    }

    private nonisolated func record(_ row: [SQLiteValue]) throws(BerthError) -> NamespaceRecord {
        let labels = decodeLabels(row[1].text)
        guard let name = row[0].text, let labels else { throw .dataLoss("metadata database: unreadable namespace row") }
        return NamespaceRecord(name: name, labels: labels)
    }

    public func encodeLabels(_ labels: [String: String]) throws(BerthError) -> String { try encode(labels) }

    /// The labels stored as JSON in a row; nil when the text is missing or not a JSON object.
    public nonisolated func decodeLabels(_ text: String?) -> [String: String]? {
        text.flatMap(LabelCoding.decode)
    }

    private func encode(_ labels: [String: String]) throws(BerthError) -> String {
        LabelCoding.encode(labels)
    }
}

extension BerthError {
    public static func dataLoss(_ message: String) -> BerthError { .init(.dataLoss, message) }
}

/// The store's read connection and the lock that gives it to one reader at a time (a read is
/// a few indexed lookups; readers do not wait for the writer).
final class ReadConnection: Sendable {
    private let lock = Mutex<Void>(())
    /// Touched only inside `lock`, which is what makes sharing this class safe.
    private nonisolated(unsafe) let database: SQLiteDatabase

    init(_ database: SQLiteDatabase) { self.database = database }

    func withDatabase<T>(_ body: (SQLiteDatabase) throws(BerthError) -> T) throws(BerthError) -> T {
        try lock.withLock { (_) throws(BerthError) in try body(database) }
    }
}

/// A serial executor on a dispatch queue of its own, for the metadata store's blocking work.
final class StoreExecutor: SerialExecutor {
    private let queue = DispatchQueue(label: "berth.metadata", qos: .userInitiated)

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedSerialExecutor()) }
    }
}
