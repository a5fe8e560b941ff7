import CSQLite
import FoundationEssentials
import Glibc

/// A thin, synchronous handle on one SQLite database file.
///
/// SQLite is the embedded database under Berth's metadata: a committed transaction survives a
/// crash or power loss (WAL journal with `synchronous=FULL`), and an interrupted one leaves no
/// trace. Not thread-safe by itself: `MetadataStore` owns its writer on the store's thread and its
/// reader behind a lock.
public final class SQLiteDatabase {
    private var handle: OpaquePointer?
    let path: String
    /// Prepared statements by SQL text: Berth runs a small fixed set of statements, and parsing
    /// one costs more than running it.
    private var statements = [String: OpaquePointer]()

    /// Opens or creates the database at `path`. A `reader` connection opens a database a
    /// writer already made and refuses to change it: WAL lets it read the last committed state
    /// while the writer's transaction (and its fsync) is still running.
    public init(path: String, reader: Bool = false) throws(BerthError) {
        self.path = path
        let flags = SQLITE_OPEN_READWRITE | (reader ? 0 : SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(handle)
            throw .internal("cannot open metadata database \(path): \(message)")
        }
        sqlite3_busy_timeout(handle, 5000)
        if reader {
            try execute("PRAGMA query_only=1")
            return
        }
        // Not locking_mode=EXCLUSIVE: that would keep WAL's index in this connection's memory
        // and lock the reader out (4 fcntl calls per transaction are the price, ~1 µs each).
        try execute("PRAGMA journal_mode=WAL")
        try execute("PRAGMA synchronous=FULL")
        try execute("PRAGMA foreign_keys=ON")
    }

    deinit {
        for statement in statements.values { sqlite3_finalize(statement) }
        sqlite3_close_v2(handle)
    }

    /// Runs statements that return no rows.
    public func execute(_ sql: String) throws(BerthError) {
        var error: UnsafeMutablePointer<CChar>?
        guard sqlite3_exec(handle, sql, nil, nil, &error) == SQLITE_OK else {
            let message = error.map { String(cString: $0) } ?? "unknown error"
            sqlite3_free(error)
            throw .internal("metadata database \(path): \(message) (in: \(sql.prefix(80)))")
        }
    }

    /// Runs one statement with bound values and returns every row as an array of columns.
    @discardableResult
    public func query(_ sql: String, _ values: [SQLiteValue] = []) throws(BerthError) -> [[SQLiteValue]] {
        let statement = try prepared(sql)
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        for (offset, value) in values.enumerated() {
            value.bind(to: statement, at: Int32(offset + 1))
        }
        var rows = [[SQLiteValue]]()
        while true {
            switch sqlite3_step(statement) {
            case SQLITE_ROW: rows.append(Self.row(statement))
            case SQLITE_DONE: return rows
            case SQLITE_CONSTRAINT:
                throw .alreadyExists("metadata database \(path): \(lastError)")
            default:
                throw .internal("metadata database \(path): \(lastError) (in: \(sql.prefix(80)))")
            }
        }
    }

    /// Runs `body` inside one read transaction: every statement sees the same committed state.
    public func snapshot<T>(_ body: () throws(BerthError) -> T) throws(BerthError) -> T {
        try query("BEGIN")
        defer { _ = try? query("COMMIT") }
        return try body()
    }

    /// Runs `body` inside one write transaction: all of it commits, or none of it does.
    public func transaction<T>(_ body: () throws(BerthError) -> T) throws(BerthError) -> T {
        try query("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try query("COMMIT")
            return result
        } catch {
            _ = try? query("ROLLBACK")
            throw error
        }
    }

    private func prepared(_ sql: String) throws(BerthError) -> OpaquePointer {
        if let statement = statements[sql] { return statement }
        var statement: OpaquePointer?
        guard sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil) == SQLITE_OK,
            let statement
        else {
            throw .internal("metadata database \(path): \(lastError) (in: \(sql.prefix(80)))")
        }
        statements[sql] = statement
        return statement
    }

    private var lastError: String { String(cString: sqlite3_errmsg(handle)) }

    private static func row(_ statement: OpaquePointer?) -> [SQLiteValue] {
        (0..<sqlite3_column_count(statement)).map { column in
            switch sqlite3_column_type(statement, column) {
            case SQLITE_INTEGER: return .integer(sqlite3_column_int64(statement, column))
            case SQLITE_NULL: return .null
            case SQLITE_BLOB:
                let count = Int(sqlite3_column_bytes(statement, column))
                guard let bytes = sqlite3_column_blob(statement, column), count > 0 else { return .blob([]) }
                return .blob(Array(UnsafeRawBufferPointer(start: bytes, count: count)))
            default: return .text(String(cString: sqlite3_column_text(statement, column)))
            }
        }
    }
}

/// A value bound into or read from a SQLite statement.
public enum SQLiteValue: Equatable, Sendable {
    case integer(Int64)
    case text(String)
    case blob([UInt8])
    case null

    public var text: String? { if case .text(let value) = self { value } else { nil } }
    public var integer: Int64? { if case .integer(let value) = self { value } else { nil } }

    /// SQLITE_TRANSIENT: SQLite copies the bytes before the bind call returns.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    fileprivate func bind(to statement: OpaquePointer?, at index: Int32) {
        switch self {
        case .integer(let value): sqlite3_bind_int64(statement, index, value)
        case .text(let value): sqlite3_bind_text(statement, index, value, -1, Self.transient)
        case .blob(let value):
            value.withUnsafeBytes { sqlite3_bind_blob(statement, index, $0.baseAddress, Int32($0.count), Self.transient) }
        case .null: sqlite3_bind_null(statement, index)
        }
    }
}
