import Foundation
import Logging
import PATRegistry

/// Which registry the `pat` commands and `pat serve` use: `--database URL`, else
/// `$PAT_DATABASE_URL`, else `HOME/pat.db`. A `postgres://` (or `postgresql://`) URL selects
/// PostgreSQL (`PostgresRegistry`); anything else is the path of an SQLite database.
public enum RegistryDatabase: Sendable, CustomStringConvertible {
    case sqlite(path: String)
    case postgres(PostgresConfiguration)

    /// The environment variable naming the database when `--database` is not given.
    public static let environmentVariable = "PAT_DATABASE_URL"

    /// - Parameters:
    ///   - option: the `--database` value, if given.
    public init(option: String?, home: PATHome,
                environment: [String: String] = ProcessInfo.processInfo.environment) throws(RegistryError) {
        let given = option ?? environment[RegistryDatabase.environmentVariable]
        guard let text = given, !text.isEmpty else {
            self = .sqlite(path: SQLiteRegistry.defaultPath(in: home))
            return
        }
        if PostgresConfiguration.isPostgresURL(text) {
            self = .postgres(try PostgresConfiguration(url: text, environment: environment))
        } else if text.contains("://") {
            throw RegistryError(.invalid, "the database \"\(text.prefix(16))…\" is neither a postgres:// URL nor a file path")
        } else {
            self = .sqlite(path: text)
        }
    }

    public var isPostgres: Bool {
        if case .postgres = self { return true }
        return false
    }

    /// The SQLite path, or the URL without its password.
    public var description: String {
        switch self {
        case .sqlite(let path): return path
        case .postgres(let configuration): return configuration.description
        }
    }

    /// Opens (creating and migrating when needed) the registry. Close it when done. With
    /// `readingOnly`, an SQLite registry must exist and is opened read-only (nothing created).
    public func open(home: PATHome, readingOnly: Bool = false, logger: Logger = Logger(label: "patkit.registry")) async throws -> any PATRegistryStore {
        switch self {
        case .sqlite(let path) where readingOnly:
            return try SQLiteRegistry(readingOnly: path)
        case .sqlite(let path) where path == SQLiteRegistry.defaultPath(in: home):
            return try SQLiteRegistry(home: home)
        case .sqlite(let path):
            return try SQLiteRegistry(path: path)
        case .postgres(let configuration):
            return try await PostgresRegistry.open(configuration, logger: logger)
        }
    }
}
