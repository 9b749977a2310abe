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
    public static let environmentVariable = RegistryLocation.environmentVariable

    /// - Parameters:
    ///   - option: the `--database` value, if given.
    public init(option: String?, home: PATHome,
                environment: [String: String] = ProcessInfo.processInfo.environment) throws(RegistryError) {
        switch try RegistryLocation(option: option, home: home, environment: environment) {
        case .sqlite(let path): self = .sqlite(path: path)
        case .postgres(let url): self = .postgres(try PostgresConfiguration(url: url, environment: environment))
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
        case .sqlite(let path):
            return try SQLiteRegistry.open(path, home: home, readingOnly: readingOnly)
        case .postgres(let configuration):
            return try await PostgresRegistry.open(configuration, logger: logger)
        }
    }
}
