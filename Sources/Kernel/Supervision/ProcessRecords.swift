/// Where one supervised process is in its life: the supervisor's state machine, as stored.
///
/// `creating` is written before the runtime is asked to create anything, so a daemon that dies
/// mid-create finds the intent after a restart and undoes it (the client never got an answer).
/// Every later phase is written after the runtime confirmed it, and an exit is written before
/// anyone hears of it.
public enum ProcessPhase: Sendable, Equatable {
    case creating
    case created(pid: UInt32)
    case running(pid: UInt32)
    case paused(pid: UInt32)
    case stopped(pid: UInt32, exit: ExitFact)

    public var pid: UInt32 {
        switch self {
        case .creating: 0
        case .created(let pid), .running(let pid), .paused(let pid), .stopped(let pid, _): pid
        }
    }

    /// The word used in errors and in the store.
    public var name: String {
        switch self {
        case .creating: "creating"
        case .created: "created"
        case .running: "running"
        case .paused: "paused"
        case .stopped: "stopped"
        }
    }
}

/// How a process ended: its wait status as a shell reports it (128 + signal when killed) and
/// when, in nanoseconds since 1970.
public struct ExitFact: Sendable, Equatable {
    public var status: UInt32
    public var at: Int64

    public init(status: UInt32, at: Int64) {
        self.status = status
        self.at = at
    }
}

/// Paths of a process's standard streams as the client gave them.
public struct ProcessStdio: Sendable, Equatable {
    public var stdin = ""
    public var stdout = ""
    public var stderr = ""
    public var terminal = false

    public init(stdin: String = "", stdout: String = "", stderr: String = "", terminal: Bool = false) {
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.terminal = terminal
    }
}

/// One supervised process: a task's init (empty `execID`) or one of its exec processes.
public struct ProcessRecord: Sendable, Equatable {
    public var namespace: String
    public var containerID: String
    public var execID: String
    /// The runtime plugin that made it ("io.containerd.runtime.v2.linux").
    public var runtime: String
    public var phase: ProcessPhase
    public var stdio: ProcessStdio

    public var isInit: Bool { execID.isEmpty }

    /// "task c1" or "process e1 of task c1", for messages.
    public var noun: String {
        execID.isEmpty ? "task \"\(containerID)\"" : "process \"\(execID)\" of task \"\(containerID)\""
    }
}

/// The supervisor's table: one row per process, written in the same transaction as each phase
/// change, so the store always holds the last confirmed phase of every process.
extension MetadataSchema {
    public static let processes = MetadataSchema(
        statements: [
            """
            CREATE TABLE IF NOT EXISTS processes (
                namespace TEXT NOT NULL,
                container_id TEXT NOT NULL,
                exec_id TEXT NOT NULL,
                runtime TEXT NOT NULL,
                phase TEXT NOT NULL,
                pid INTEGER NOT NULL,
                exit_status INTEGER NOT NULL,
                exited_at INTEGER NOT NULL,
                stdin TEXT NOT NULL,
                stdout TEXT NOT NULL,
                stderr TEXT NOT NULL,
                terminal INTEGER NOT NULL,
                PRIMARY KEY (namespace, container_id, exec_id))
            """
        ],
        namespacedTables: [("processes", "tasks")])
}

extension MetadataStore {
    /// Records a new process in phase `creating`; `.alreadyExists` when it is already known.
    func insertProcess(_ record: ProcessRecord) throws(BerthError) {
        try withDatabase { (db) throws(BerthError) in
            try ensureNamespace(record.namespace, db)
            guard try Self.findProcess(record.namespace, record.containerID, record.execID, db) == nil else {
                throw .alreadyExists("\(record.noun) in namespace \"\(record.namespace)\": already exists")
            }
            try db.query(
                """
                INSERT INTO processes (namespace, container_id, exec_id, runtime, phase, pid, exit_status, exited_at,
                    stdin, stdout, stderr, terminal) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [.text(record.namespace), .text(record.containerID), .text(record.execID), .text(record.runtime)]
                    + Self.phaseColumns(record.phase)
                    + [.text(record.stdio.stdin), .text(record.stdio.stdout), .text(record.stdio.stderr), .integer(record.stdio.terminal ? 1 : 0)])
        }
    }

    /// Moves a process to the phase `change` returns for its current one (nil: leave it), in one
    /// transaction; returns the record as stored afterwards and whether it changed, or nil when
    /// there is no such process.
    func updateProcess(
        namespace: String, containerID: String, execID: String,
        _ change: @Sendable (ProcessPhase) -> ProcessPhase?
    ) throws(BerthError) -> (record: ProcessRecord, changed: Bool)? {
        try withDatabase { (db) throws(BerthError) in
            guard var record = try Self.findProcess(namespace, containerID, execID, db) else { return nil }
            guard let next = change(record.phase) else { return (record, false) }
            record.phase = next
            try db.query(
                "UPDATE processes SET phase=?, pid=?, exit_status=?, exited_at=? WHERE namespace=? AND container_id=? AND exec_id=?",
                Self.phaseColumns(next) + [.text(namespace), .text(containerID), .text(execID)])
            return (record, true)
        }
    }

    /// One process, or nil; public so that the containers service can refuse to delete a
    /// container that still has a task.
    public nonisolated func process(namespace: String, containerID: String, execID: String) async throws(BerthError) -> ProcessRecord? {
        try read { (db) throws(BerthError) in try Self.findProcess(namespace, containerID, execID, db) }
    }

    /// Every process of a container, the init first.
    nonisolated func processes(namespace: String, containerID: String) async throws(BerthError) -> [ProcessRecord] {
        try selectProcesses("WHERE namespace=? AND container_id=? ORDER BY exec_id", [.text(namespace), .text(containerID)])
    }

    /// The init processes (tasks) of `namespace`, or of every namespace when nil.
    nonisolated func tasks(namespace: String?) async throws(BerthError) -> [ProcessRecord] {
        guard let namespace else { return try selectProcesses("WHERE exec_id='' ORDER BY namespace, container_id", []) }
        return try selectProcesses("WHERE namespace=? AND exec_id='' ORDER BY container_id", [.text(namespace)])
    }

    /// Every process made by runtime plugin `runtime`.
    nonisolated func processes(runtime: String) async throws(BerthError) -> [ProcessRecord] {
        try selectProcesses("WHERE runtime=? ORDER BY namespace, container_id, exec_id", [.text(runtime)])
    }

    /// Deletes one process, or with `execID` nil a container's every process.
    func deleteProcesses(namespace: String, containerID: String, execID: String?) throws(BerthError) {
        try withDatabase { (db) throws(BerthError) in
            if let execID {
                try db.query(
                    "DELETE FROM processes WHERE namespace=? AND container_id=? AND exec_id=?",
                    [.text(namespace), .text(containerID), .text(execID)])
            } else {
                try db.query("DELETE FROM processes WHERE namespace=? AND container_id=?", [.text(namespace), .text(containerID)])
            }
        }
    }

    private nonisolated func selectProcesses(_ clause: String, _ values: [SQLiteValue]) throws(BerthError) -> [ProcessRecord] {
        try read { (db) throws(BerthError) in
            try db.query("SELECT \(Self.processColumns) FROM processes \(clause)", values).map { row throws(BerthError) in
                try Self.processRecord(row)
            }
        }
    }

    private static let processColumns =
        "namespace, container_id, exec_id, runtime, phase, pid, exit_status, exited_at, stdin, stdout, stderr, terminal"

    private static func findProcess(_ namespace: String, _ containerID: String, _ execID: String, _ db: SQLiteDatabase) throws(BerthError)
        -> ProcessRecord?
    {
        try db.query(
            "SELECT \(processColumns) FROM processes WHERE namespace=? AND container_id=? AND exec_id=?",
            [.text(namespace), .text(containerID), .text(execID)]
        ).first.map { row throws(BerthError) in try processRecord(row) }
    }

    private static func phaseColumns(_ phase: ProcessPhase) -> [SQLiteValue] {
        let exit: ExitFact? = if case .stopped(_, let exit) = phase { exit } else { nil }
        return [.text(phase.name), .integer(Int64(phase.pid)), .integer(Int64(exit?.status ?? 0)), .integer(exit?.at ?? 0)]
    }

    private static func processRecord(_ row: [SQLiteValue]) throws(BerthError) -> ProcessRecord {
        guard row.count == 12, let namespace = row[0].text, let containerID = row[1].text, let execID = row[2].text,
            let runtime = row[3].text, let phaseName = row[4].text, let pid = row[5].integer.map(UInt32.init),
            let status = row[6].integer.map(UInt32.init), let exitedAt = row[7].integer
        else { throw .dataLoss("metadata database: unreadable process row") }
        let phase: ProcessPhase
        switch phaseName {
        case "creating": phase = .creating
        case "created": phase = .created(pid: pid)
        case "running": phase = .running(pid: pid)
        case "paused": phase = .paused(pid: pid)
        case "stopped": phase = .stopped(pid: pid, exit: ExitFact(status: status, at: exitedAt))
        default: throw .dataLoss("metadata database: process \"\(execID)\" of \"\(containerID)\" has unknown phase \"\(phaseName)\"")
        }
        let stdio = ProcessStdio(
            stdin: row[8].text ?? "", stdout: row[9].text ?? "", stderr: row[10].text ?? "", terminal: row[11].integer == 1)
        return ProcessRecord(
            namespace: namespace, containerID: containerID, execID: execID, runtime: runtime, phase: phase, stdio: stdio)
    }
}
