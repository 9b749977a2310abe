import Foundation
import PATRegistry

/// Where the PostgreSQL registry is and how to talk to it: parsed from a URL
/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?PARAMETERS]` (also `postgresql://`).
///
/// Parameters (all optional): `sslmode` = `disable`, `prefer` (default: TLS when the server
/// offers it) or `require`; `sslrootcert` = a PEM file of the CAs to trust (default: the
/// system's). Unlike libpq, `prefer` and `require` verify the server's certificate and host
/// name whenever TLS is used. `connect_timeout` (seconds, default 5), `pool_size` (connections
/// per process, default 10). Without a password in the URL, `$PGPASSWORD` is used; prefer
/// `PAT_DATABASE_URL` or `PGPASSWORD` to `--database` for a URL with a password, since command
/// lines are visible to other users of the machine.
public struct PostgresConfiguration: Sendable, CustomStringConvertible {
    public enum TLSMode: String, Sendable { case disable, prefer, require }

    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var tls: TLSMode
    /// A PEM file of trusted CA certificates (nil: the system's).
    public var rootCertificatePath: String?
    /// Connections per process (the pool's maximum).
    public var poolSize: Int
    /// Establishing one connection.
    public var connectTimeout: Duration
    /// Waiting for a connection from the pool (the database down or every connection busy):
    /// past it a transaction fails as `unavailable`, which the API answers with 503.
    public var acquireTimeout: Duration
    /// One statement (PostgreSQL's `statement_timeout`).
    public var statementTimeout: Duration
    /// Waiting for a lock, e.g. an owner another node is changing (`lock_timeout`).
    public var lockTimeout: Duration
    /// One whole transaction, from asking for a connection to its commit; past it the
    /// connection is closed (a hung network) and the transaction fails as `unavailable`.
    public var transactionTimeout: Duration

    public static let defaultPort = 5432

    public init(host: String, port: Int = PostgresConfiguration.defaultPort, username: String, password: String? = nil,
                database: String, tls: TLSMode = .prefer) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.tls = tls
        self.rootCertificatePath = nil
        self.poolSize = 10
        self.connectTimeout = .seconds(5)
        self.acquireTimeout = .seconds(5)
        self.statementTimeout = .seconds(30)
        self.lockTimeout = .seconds(15)
        self.transactionTimeout = .seconds(60)
    }

    /// Parses a `postgres://` URL; the error says what is wrong without repeating a password.
    public init(url text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(RegistryError) {
        guard RegistryLocation.isPostgresURL(text), text.utf8.count <= 4096 else {
            throw Self.invalid("must look like postgres://USER:PASSWORD@HOST:PORT/DATABASE")
        }
        guard let components = URLComponents(string: text) else {
            throw Self.invalid("is not a valid URL (percent-encode special characters in the user name and password)")
        }
        guard let host = components.host, !host.isEmpty else { throw Self.invalid("names no host") }
        guard let username = components.user, !username.isEmpty else {
            throw Self.invalid("names no user (postgres://USER@HOST/DATABASE)")
        }
        let path = components.path
        let database = path.hasPrefix("/") ? String(path.dropFirst()) : path
        guard !database.isEmpty, !database.contains("/") else {
            throw Self.invalid("names no database (postgres://USER@HOST/DATABASE)")
        }
        self.init(host: host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host,
                  port: components.port ?? Self.defaultPort, username: username,
                  password: components.password ?? environment["PGPASSWORD"].flatMap { $0.isEmpty ? nil : $0 },
                  database: database)
        guard (1...65535).contains(port) else { throw Self.invalid("has port \(port), outside 1–65535") }
        for item in components.queryItems ?? [] {
            let value = item.value ?? ""
            switch item.name {
            case "sslmode":
                guard let mode = TLSMode(rawValue: value) else {
                    throw Self.invalid("sslmode=\(value.prefix(32)) is not one of disable, prefer, require")
                }
                tls = mode
            case "sslrootcert":
                guard !value.isEmpty else { throw Self.invalid("sslrootcert needs a file") }
                rootCertificatePath = value
            case "connect_timeout":
                guard let seconds = Int(value), (1...600).contains(seconds) else {
                    throw Self.invalid("connect_timeout=\(value.prefix(32)) must be a whole number of seconds from 1 to 600")
                }
                connectTimeout = .seconds(seconds)
            case "pool_size":
                guard let size = Int(value), (1...1000).contains(size) else {
                    throw Self.invalid("pool_size=\(value.prefix(32)) must be from 1 to 1000")
                }
                poolSize = size
            default:
                throw Self.invalid("has the unknown parameter \"\(item.name.prefix(32))\"; known: sslmode, sslrootcert, connect_timeout, pool_size")
            }
        }
    }

    /// The URL without its password, for messages and logs.
    public var description: String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "postgres://\(username)@\(shownHost):\(port)/\(database)"
    }

    private static func invalid(_ reason: String) -> RegistryError {
        RegistryError(.invalid, "the database URL \(reason)")
    }
}
