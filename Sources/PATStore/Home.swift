@_exported import PATKit
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The PATKit home: the folder that holds an issuer's state.
///
/// ```
/// HOME/keys/           keystore: k4.pid….secret (0600), k4.pid….public, keyset.json
/// HOME/catalog.json    optional scope catalog replacing the built-in default
/// HOME/published/      what edges fetch: keys.json and revocations.bin
/// ```
/// Chosen by `--home`, else `$PAT_HOME`, else the current directory.
public struct PATHome: Sendable {
    public let path: String

    public init(path: String) { self.path = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path }

    /// `explicit`, else `$PAT_HOME`, else the current directory.
    public static func resolve(_ explicit: String?) -> PATHome {
        if let explicit, !explicit.isEmpty { return PATHome(path: explicit) }
        if let env = getenv("PAT_HOME"), let value = String(validatingCString: env), !value.isEmpty {
            return PATHome(path: value)
        }
        return PATHome(path: ".")
    }

    public var keysDirectory: String { path + "/keys" }
    public var publishedDirectory: String { path + "/published" }
    public var catalogPath: String { path + "/catalog.json" }
    public var publishedKeysPath: String { publishedDirectory + "/keys.json" }
    public var publishedRevocationsPath: String { publishedDirectory + "/revocations.bin" }

    public var keyStore: KeyStore { KeyStore(directory: keysDirectory) }

    /// The scope catalog for issuing: `name` (a built-in name or a JSON file path), else
    /// `HOME/catalog.json` when present, else the built-in Magistrala catalog.
    public func catalog(named name: String? = nil) throws(PATKitError) -> ScopeCatalog {
        if let name {
            if name == PATHome.managementCatalogName { return try managementCatalog() }
            if let builtIn = ScopeCatalog.builtIn[name] { return builtIn }
            guard SecureFile.exists(name) else {
                throw .invalidArgument("unknown scope catalog \"\(name)\": use magistrala, generic, management, or the path of a JSON catalog file")
            }
            return try ScopeCatalog(json: SecureFile.read(name, maxBytes: 256 * 1024), name: name)
        }
        if SecureFile.exists(catalogPath) {
            return try ScopeCatalog(json: SecureFile.read(catalogPath, maxBytes: 256 * 1024), name: catalogPath)
        }
        return .magistrala
    }
}

extension PATHome {
    /// `--catalog management`: the home's issuing catalog plus the management API's entity `pats`.
    public static let managementCatalogName = "management"
    /// The operations of the entity `pats` that `pat serve`'s management API checks.
    public static let managementOperations = ["create", "list", "read", "update", "revoke", "regenerate", "delete", "admin",
                                                   "rotate_self", "report_usage"]

    /// `base` (default: the home's issuing catalog) with the entity `pats` and its operations added.
    public func managementCatalog(base: ScopeCatalog? = nil) throws(PATKitError) -> ScopeCatalog {
        var entities: [String: [String]]
        if let base { entities = base.entities } else { entities = try catalog().entities }
        let held = entities["pats"] ?? []
        entities["pats"] = held + PATHome.managementOperations.filter { !held.contains($0) }
        return try ScopeCatalog(name: PATHome.managementCatalogName, entities: entities)
    }
}
