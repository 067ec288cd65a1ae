// A small SQLite wrapper (Debian's libsqlite3): open, execute, prepared statements with bound
// values, transactions. Enough for the feature index; errors carry SQLite's message.
import AuscultTensor
import CSQLite
import Foundation

/// An SQLite failure: what was being done and SQLite's message.
public struct SQLiteError: AuscultError, Sendable {
    /// SQLite's result code (`SQLITE_BUSY`, `SQLITE_CORRUPT`, …).
    public struct Code: RawRepresentable, Sendable, Equatable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
    }
    /// SQLite's numeric result code.
    public var result: Int32
    public var message: String
    public var underlying: (any Error)? { nil }
    public var code: Code { Code(rawValue: "sqlite\(result)") }
    public init(code: Int32, message: String) { self.result = code; self.message = message }
}

/// A value bound to a statement parameter.
public enum SQLiteValue: Sendable, Equatable {
    case int(Int), double(Double), text(String), null
}

/// One open database connection.
public final class SQLiteDatabase {
    let handle: OpaquePointer
    public let path: String

    /// Opens `path` (created when `create`, otherwise it must exist).
    public init(path: String, create: Bool = true) throws {
        var h: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0)
        let rc = sqlite3_open_v2(path, &h, flags, nil)
        guard rc == SQLITE_OK, let h else {
            let msg = h.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            if let h { sqlite3_close(h) }
            throw SQLiteError(code: rc, message: "\(path): cannot open as SQLite (\(msg))")
        }
        handle = h; self.path = path
    }

    deinit { sqlite3_close(handle) }

    func fail(_ rc: Int32, _ doing: String) -> SQLiteError {
        SQLiteError(code: rc, message: "\(path): \(doing): \(String(cString: sqlite3_errmsg(handle)))")
    }

    /// Runs one or more statements without results.
    public func execute(_ sql: String) throws {
        let rc = sqlite3_exec(handle, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw fail(rc, "executing \(sql.prefix(60))") }
    }

    /// Runs `body` inside one transaction, rolled back if it throws.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do { let r = try body(); try execute("COMMIT"); return r } catch { try? execute("ROLLBACK"); throw error }
    }

    /// A prepared statement.
    public func prepare(_ sql: String) throws -> SQLiteStatement {
        var s: OpaquePointer?
        let rc = sqlite3_prepare_v2(handle, sql, -1, &s, nil)
        guard rc == SQLITE_OK, let s else { throw fail(rc, "preparing \(sql.prefix(60))") }
        return SQLiteStatement(db: self, handle: s)
    }

    /// Every row of a query, as arrays of values.
    public func rows(_ sql: String, _ values: [SQLiteValue] = []) throws -> [[SQLiteValue]] {
        let st = try prepare(sql)
        try st.bind(values)
        var out = [[SQLiteValue]]()
        while try st.step() { out.append((0..<st.columnCount).map { st.value($0) }) }
        return out
    }
}

/// A statement to bind, step and reset.
public final class SQLiteStatement {
    let db: SQLiteDatabase
    let handle: OpaquePointer
    init(db: SQLiteDatabase, handle: OpaquePointer) { self.db = db; self.handle = handle }
    deinit { sqlite3_finalize(handle) }

    /// Binds `values` to parameters 1…n (after clearing earlier bindings and resetting).
    public func bind(_ values: [SQLiteValue]) throws {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
        for (i, v) in values.enumerated() {
            let idx = Int32(i + 1)
            let rc: Int32
            switch v {
            case .int(let x): rc = sqlite3_bind_int64(handle, idx, sqlite3_int64(x))
            case .double(let x): rc = sqlite3_bind_double(handle, idx, x)
            case .text(let x): rc = sqlite3_bind_text(handle, idx, x, -1, transient)
            case .null: rc = sqlite3_bind_null(handle, idx)
            }
            guard rc == SQLITE_OK else { throw db.fail(rc, "binding parameter \(idx)") }
        }
    }

    /// Advances: true while there is a row to read.
    @discardableResult
    public func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw db.fail(rc, "stepping")
    }

    /// Binds and runs a statement without results.
    public func run(_ values: [SQLiteValue]) throws {
        try bind(values)
        while try step() {}
    }

    public var columnCount: Int { Int(sqlite3_column_count(handle)) }

    public func value(_ column: Int) -> SQLiteValue {
        let c = Int32(column)
        switch sqlite3_column_type(handle, c) {
        case SQLITE_INTEGER: return .int(Int(sqlite3_column_int64(handle, c)))
        case SQLITE_FLOAT: return .double(sqlite3_column_double(handle, c))
        case SQLITE_TEXT: return .text(String(cString: sqlite3_column_text(handle, c)))
        default: return .null
        }
    }
}

extension SQLiteValue {
    public var int: Int? {
        if case .int(let x) = self { return x }; if case .double(let x) = self { return Int(x) }; return nil
    }
    public var double: Double? {
        if case .double(let x) = self { return x }; if case .int(let x) = self { return Double(x) }; return nil
    }
    public var text: String? { if case .text(let x) = self { return x }; return nil }
}
