import Foundation
import PATStore

/// Which registry `--database` / `$PAT_DATABASE_URL` names, before anything is opened: an SQLite
/// file, or a `postgres://` (or `postgresql://`) URL. `PATRegistryPostgres.RegistryDatabase`
/// parses and opens the URL; a `pat` built without its `Server` trait has SQLite only, and this
/// choice is what lets it say so instead of mistaking the URL for a file name.
public enum RegistryLocation: Sendable, Equatable {
    case sqlite(path: String)
    case postgres(url: String)

    /// The environment variable naming the database when `--database` is not given.
    public static let environmentVariable = "PAT_DATABASE_URL"

    /// - Parameters:
    ///   - option: the `--database` value, if given; else `$PAT_DATABASE_URL`; else `HOME/pat.db`.
    public init(option: String?, home: PATHome,
                environment: [String: String] = ProcessInfo.processInfo.environment) throws(RegistryError) {
        let given = option ?? environment[RegistryLocation.environmentVariable]
        guard let text = given, !text.isEmpty else {
            self = .sqlite(path: SQLiteRegistry.defaultPath(in: home))
            return
        }
        if RegistryLocation.isPostgresURL(text) {
            self = .postgres(url: text)
        } else if text.contains("://") {
            throw RegistryError(.invalid, "the database \"\(text.prefix(16))…\" is neither a postgres:// URL nor a file path")
        } else {
            self = .sqlite(path: text)
        }
    }

    /// True for `postgres://…` and `postgresql://…`.
    public static func isPostgresURL(_ text: String) -> Bool {
        let lower = text.lowercased()
        return lower.hasPrefix("postgres://") || lower.hasPrefix("postgresql://")
    }
}

extension SQLiteRegistry {
    /// Opens the SQLite registry at `path`: with `readingOnly` an existing one, read-only
    /// (nothing created); the home's default one creating the home; any other creating the file.
    /// Migrated when needed. Close it when done.
    public static func open(_ path: String, home: PATHome, readingOnly: Bool) throws -> SQLiteRegistry {
        if readingOnly { return try SQLiteRegistry(readingOnly: path) }
        if path == SQLiteRegistry.defaultPath(in: home) { return try SQLiteRegistry(home: home) }
        return try SQLiteRegistry(path: path)
    }
}
