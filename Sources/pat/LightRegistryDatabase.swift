#if !Server
import Logging
import PATRegistry

/// The registries of a `pat` built without the `Server` trait (Package.swift): SQLite only, in
/// place of `PATRegistryPostgres.RegistryDatabase`. A `postgres://` URL is refused, as a usage
/// error that says to build the full `pat`, never taken for a file name.
enum RegistryDatabase: CustomStringConvertible {
    case sqlite(path: String)

    init(option: String?, home: PATHome) throws(RegistryError) {
        switch try RegistryLocation(option: option, home: home) {
        case .sqlite(let path): self = .sqlite(path: path)
        case .postgres: throw RegistryError(.invalid, ServerTrait.message("a PostgreSQL registry (postgres://)"))
        }
    }

    var description: String {
        switch self {
        case .sqlite(let path): return path
        }
    }

    func open(home: PATHome, readingOnly: Bool, logger: Logger) async throws -> any PATRegistryStore {
        switch self {
        case .sqlite(let path): return try SQLiteRegistry.open(path, home: home, readingOnly: readingOnly)
        }
    }
}
#endif
