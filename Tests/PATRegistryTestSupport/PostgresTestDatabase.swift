import Foundation
import Logging
import PATRegistry
import PATRegistryPostgres
import PATTestSupport
import PostgresNIO
import Synchronization
import Testing

/// Databases of their own for PostgreSQL tests, on the server `$PATKIT_POSTGRES_URL` names: each
/// test gets a fresh `patkit_t_<created>_<random>` (a database, not a schema: `NOTIFY` channels are per
/// database, so tests running in parallel never hear each other). Databases of earlier runs that
/// nobody uses any more are dropped the first time a process asks for one.
package enum PostgresTestDatabase {
    private static let sweptOnce = Mutex(false)

    /// The server's URL (the prerequisite: fails in CI, skips elsewhere).
    package static func serverURL(sourceLocation: SourceLocation = #_sourceLocation) async throws -> PostgresConfiguration {
        let url = try await Prerequisite.postgresServer.require(sourceLocation: sourceLocation)
        return try PostgresConfiguration(url: url)
    }

    /// A new empty database; its configuration.
    package static func create(sourceLocation: SourceLocation = #_sourceLocation) async throws -> PostgresConfiguration {
        let server = try await serverURL(sourceLocation: sourceLocation)
        // patkit_t_<seconds since 1970>_<random>: the sweep below drops only databases of runs
        // that started over two hours ago, never those of another suite running right now on the
        // same server (between its transactions a database has no connection).
        let now = Int(Date().timeIntervalSince1970)
        let name = "patkit_t_\(now)_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(20).lowercased()
        let sweep = sweptOnce.withLock { swept in defer { swept = true }; return !swept }
        try await withAdminConnection(server) { connection, logger in
            if sweep {
                let stale = try await connection.query("""
                    SELECT datname FROM pg_database WHERE datname LIKE 'patkit\\_t\\_%'
                      AND datname NOT IN (SELECT datname FROM pg_stat_activity WHERE datname IS NOT NULL)
                    """, logger: logger).collect()
                for row in stale {
                    let old = try row.decode(String.self)
                    let parts = old.split(separator: "_")
                    guard parts.count == 4, let created = Int(parts[2]), created < now - 7_200 else { continue }
                    _ = try? await connection.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(quoted(old))"), logger: logger)
                }
            }
            try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(quoted(name))"), logger: logger)
        }
        var configuration = server
        configuration.database = name
        // The whole suite runs in parallel on a small machine, in CI under a CPU-burning load too:
        // a transaction may wait for a pooled connection, a lock or the CPU far longer than a
        // production default allows. Forty re-issues of one PAT racing on two nodes queue on one
        // row lock; under `stress-ng --cpu 2` the last of them waited past the 15 s lock bound and
        // the test saw `unavailable` (2 runs of 5), and with 60 s to get a pooled connection, once more
        // at load 16 (40 transactions queued on one row lock, each holding a connection). Tests of correctness under contention must
        // not depend on those bounds, so they are wide here; the tests of the bounds themselves
        // (an unreachable database, a transaction past its deadline) set their own.
        configuration.connectTimeout = .seconds(60)
        configuration.statementTimeout = .seconds(150)
        configuration.acquireTimeout = .seconds(150)
        configuration.lockTimeout = .seconds(150)
        configuration.transactionTimeout = .seconds(240)
        return configuration
    }

    /// Makes `database` unreachable, as a server that went down would be for the registry:
    /// new connections are refused and existing ones are ended. `up` undoes it.
    package static func down(_ database: PostgresConfiguration) async throws {
        let server = try await serverURL()
        try await withAdminConnection(server) { connection, logger in
            try await connection.query(PostgresQuery(unsafeSQL: "ALTER DATABASE \(quoted(database.database)) ALLOW_CONNECTIONS false"),
                                       logger: logger)
            try await connection.query("""
                SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = \(database.database) AND pid <> pg_backend_pid()
                """, logger: logger)
        }
    }

    package static func up(_ database: PostgresConfiguration) async throws {
        let server = try await serverURL()
        _ = try await withAdminConnection(server) { connection, logger in
            try await connection.query(PostgresQuery(unsafeSQL: "ALTER DATABASE \(quoted(database.database)) ALLOW_CONNECTIONS true"),
                                       logger: logger)
        }
    }

    /// Runs `sql` (one statement) on `database`, returning the first column of each row as text.
    package static func query(_ database: PostgresConfiguration, _ sql: String) async throws -> [String?] {
        try await withAdminConnection(database) { connection, logger in
            var out: [String?] = []
            for try await value in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger).decode(String?.self) {
                out.append(value)
            }
            return out
        }
    }

    private static func withAdminConnection<T: Sendable>(_ configuration: PostgresConfiguration,
                                                         _ body: (PostgresConnection, Logger) async throws -> T) async throws -> T {
        var logger = Logger(label: "patkit.tests.postgres")
        logger.logLevel = .error
        var settings = PostgresConnection.Configuration(host: configuration.host, port: configuration.port,
                                                       username: configuration.username, password: configuration.password,
                                                       database: configuration.database, tls: .disable)
        // A bound for hangs: at load 27 the default 10 s to connect was not enough.
        settings.options.connectTimeout = .seconds(60)
        let connection = try await PostgresConnection.connect(configuration: settings, id: 0, logger: logger)
        do {
            let value = try await body(connection, logger)
            try? await connection.close()
            return value
        } catch {
            try? await connection.close()
            throw error
        }
    }

    private static func quoted(_ identifier: String) -> String {
        "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
