import Foundation
import Logging
import NIOSSL
import PATRegistry
import PostgresNIO
import Synchronization

/// The registry in PostgreSQL, for several issuer nodes (`pat serve`) on one database. Selected
/// by `--database postgres://…` / `PAT_DATABASE_URL`.
///
/// **Concurrency.** Write transactions run at READ COMMITTED, concurrently, and take row and
/// advisory locks for what must be serial — rather than SERIALIZABLE, where every writer
/// touching the outbox, the counters or one owner's index pages would abort and retry under
/// load, and where a future query could silently widen what conflicts. The locks:
/// - *an owner* (`lockOwner`, `lockRecord`: a transaction-scoped advisory lock on the owner's
///   hash): every change to an owner's PATs — create, re-issue, revoke, delete, revoke-all —
///   holds it, so name uniqueness, generation floors (no lost update of a record) and revoke-all
///   (no PAT of the owner created or re-issued past it unseen) hold across nodes, while changes to
///   different owners run in parallel. A hash collision only makes two owners wait for each other;
///   every transaction locks one owner, so locks are never taken in two orders;
/// - *publishing* (`publishSequence` in a write transaction: `SELECT … FOR UPDATE` of the
///   sequence row, first in every publish): publishes run one at a time, each takes the next
///   sequence, and its later statements see every change committed before it;
/// - *the outbox*: events are claimed with `FOR UPDATE SKIP LOCKED` for a lease, so two
///   nodes' webhook dispatchers never deliver the same event while its holder lives;
/// - unique constraints (ids, owner + name, tombstones) as the last line.
/// A deadlock or serialization failure (none is expected) re-runs the transaction, at most 5 times.
///
/// **Change notification.** Every transaction that records a change calls
/// `pg_notify('patkit_changes', <this store's random id>)`, delivered on commit; one connection
/// outside the pool `LISTEN`s while someone iterates `externalChanges()`, and announces the
/// notifications of other stores (other processes, other nodes), re-connecting with backoff.
///
/// **Failures.** No connection within `acquireTimeout`, a statement past `statementTimeout`, a
/// lock past `lockTimeout`, a transaction past `transactionTimeout`, a lost connection: all
/// fail as `RegistryError.Kind.unavailable`, with nothing committed — except a connection lost
/// during `COMMIT`, whose outcome the message says is unknown.
///
/// Open with `PostgresRegistry.open(_:)`, which applies the migrations of `RegistrySchema` (one
/// node at a time, under an advisory lock); `close()` when done.
public final class PostgresRegistry: PATRegistryStore {
    public let configuration: PostgresConfiguration
    /// Identifies this store's own notifications (which `externalChanges()` does not announce).
    let origin: String
    let client: PostgresClient
    private let runner: Task<Void, Never>
    private let feed: ChangeFeed
    let logger: Logger

    /// The channel of change notifications.
    static let channel = "patkit_changes"
    /// The first key of every advisory lock PATKit takes ("PATK"); the second names the lock.
    static let lockNamespace: Int32 = 0x5041_544B

    private init(configuration: PostgresConfiguration, connection: PostgresConnection.Configuration, logger: Logger) throws(RegistryError) {
        self.configuration = configuration
        self.logger = logger
        let origin = Digest.randomBytes(12).map { String($0, radix: 16) }.joined()
        self.origin = origin
        let client = PostgresClient(configuration: try PostgresRegistry.clientConfiguration(configuration))
        self.client = client
        runner = Task { await client.run() }
        feed = ChangeFeed { feed in
            await PostgresRegistry.listen(connection, description: configuration.description, origin: origin, feed: feed,
                                          logger: logger)
        }
    }

    /// Connects, applies pending migrations and returns the store. The first connection is made
    /// directly (not through the pool), so that a wrong URL, password or database name, or a
    /// server that is down, fails at once with the server's reason.
    public static func open(_ configuration: PostgresConfiguration,
                            logger: Logger = Logger(label: "patkit.registry.postgres")) async throws -> PostgresRegistry {
        let direct = try connectionConfiguration(configuration)
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: direct, id: 0, logger: logger)
        } catch {
            throw PostgresErrors.describeConnect(error, database: configuration.description)
        }
        do {
            try await migrate(connection, description: configuration.description, logger: logger)
            try? await connection.close()
        } catch {
            try? await connection.close()
            throw PostgresErrors.describe(error, database: configuration.description)
        }
        return try PostgresRegistry(configuration: configuration, connection: direct, logger: logger)
    }

    public func close() async {
        feed.close()
        runner.cancel()
        await runner.value
    }

    deinit {
        feed.close()
        runner.cancel() // ends the pool and its connections
    }

    public func externalChanges() -> AsyncStream<Void> { feed.subscribe() }

    // MARK: transactions

    public func read<T: Sendable>(_ body: @Sendable (any RegistryTransaction) async throws -> T) async throws -> T {
        try await transaction(writing: false, body)
    }

    public func write<T: Sendable>(_ body: @Sendable (any RegistryTransaction) async throws -> T) async throws -> T {
        try await transaction(writing: true, body)
    }

    private func transaction<T: Sendable>(writing: Bool, _ body: @Sendable (any RegistryTransaction) async throws -> T) async throws -> T {
        var attempt = 1
        while true {
            do {
                return try await withoutActuallyEscaping(body) { body in
                    try await withDeadline { connection, held in try await self.run(on: connection, held: held, writing: writing, body) }
                }
            } catch let error as PSQLError where attempt < 5 && PostgresErrors.isRetryable(error) {
                logger.debug("retrying a registry transaction", metadata: ["sqlstate": "\(PostgresErrors.sqlState(error) ?? "-")"])
                attempt += 1
            } catch {
                throw PostgresErrors.describe(error, database: configuration.description)
            }
        }
    }

    /// One transaction on one pooled connection.
    private func run<T: Sendable>(on connection: PostgresConnection, held: HeldConnection, writing: Bool,
                                  _ body: @Sendable (any RegistryTransaction) async throws -> T) async throws -> T {
        let begin: PostgresQuery = writing ? "BEGIN ISOLATION LEVEL READ COMMITTED" : "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
        try await connection.query(begin, logger: logger)
        let tx = PostgresTransaction(connection: connection, writing: writing, origin: origin, logger: logger)
        let result: T
        do {
            result = try await body(tx)
        } catch {
            // Past its deadline the connection is closed, and the server rolls back. A query sent
            // on a connection while it closes can wait forever (postgres-nio 1.33: 1 in 2 runs of
            // PostgresDeadlineTests hung here), so none is sent.
            guard !held.isExpired, !connection.isClosed else { throw error }
            do { try await connection.query("ROLLBACK", logger: logger) } catch { try? await connection.close() }
            throw error
        }
        FaultPoint.reached("registry.uncommitted", configuration.description)
        do {
            try await connection.query("COMMIT", logger: logger)
        } catch let error as PSQLError where PostgresErrors.isConnectionLoss(error) {
            throw RegistryError(.unavailable, "the connection to \(configuration.description) was lost while committing: "
                                + "the change may or may not have been made; check before repeating it")
        }
        return result
    }

    /// Runs `body` with a pooled connection, bounded by `acquireTimeout` (getting the
    /// connection) and `transactionTimeout` (everything); past either, the connection is closed
    /// (or, not yet acquired, never used) and the transaction fails as `unavailable`.
    private func withDeadline<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection, HeldConnection) async throws -> T) async throws -> T {
        let configuration = self.configuration
        let held = HeldConnection()
        let client = self.client
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                do {
                    return try await client.withConnection { connection in
                        try held.enter(connection)
                        defer { held.leave() }
                        return try await body(connection, held)
                    }
                } catch {
                    // Failed because its deadline closed the connection: the deadline is the news.
                    throw held.verdict ?? error
                }
            }
            group.addTask {
                // Cancelled (the work finished, or the caller was cancelled): no verdict.
                do { try await Task.sleep(for: configuration.acquireTimeout) } catch { return nil }
                if let verdict = held.expireUnlessAcquired(RegistryError(
                    .unavailable, "no connection to the registry database \(configuration.description) within "
                        + "\(configuration.acquireTimeout) (is the server up and reachable? are all "
                        + "\(configuration.poolSize) connections busy?)")) {
                    throw verdict
                }
                do { try await Task.sleep(for: configuration.transactionTimeout - configuration.acquireTimeout) } catch { return nil }
                throw held.expire(RegistryError(.unavailable, "a registry transaction on \(configuration.description) took longer than "
                                                + "\(configuration.transactionTimeout); its connection was closed and nothing was changed"))
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let value = result { return value }
            }
            throw CancellationError()
        }
    }

    /// The connection a transaction holds, for its deadline to close. Once expired, it stays so:
    /// a connection acquired after the acquire deadline is not used, and the transaction on a
    /// connection closed by its deadline sends nothing more on it.
    final class HeldConnection: Sendable {
        private struct State {
            var acquired = false
            var verdict: RegistryError?
            var connection: PostgresConnection?
        }
        private let state = Mutex(State())

        func enter(_ connection: PostgresConnection) throws(RegistryError) {
            let verdict = state.withLock { s in
                if s.verdict == nil {
                    s.acquired = true
                    s.connection = connection
                }
                return s.verdict
            }
            if let verdict { throw verdict }
        }

        func leave() { state.withLock { $0.connection = nil } }

        /// Expires the transaction with `verdict` if it has no connection yet; the verdict when it did.
        func expireUnlessAcquired(_ verdict: RegistryError) -> RegistryError? {
            state.withLock { s in
                if !s.acquired { s.verdict = verdict }
                return s.verdict
            }
        }

        /// Expires the transaction with `verdict` and closes its connection; returns the verdict.
        func expire(_ verdict: RegistryError) -> RegistryError {
            let connection = state.withLock { s in
                s.verdict = verdict
                return s.connection
            }
            _ = connection?.close() as EventLoopFuture<Void>?
            return verdict
        }

        /// Why the transaction ended at its deadline; nil while it has not.
        var verdict: RegistryError? { state.withLock { $0.verdict } }
        var isExpired: Bool { verdict != nil }
    }

    // MARK: migrations

    /// Applies the migrations `patkit.migrations` does not list, in order, each in its own
    /// transaction, holding a session advisory lock so that nodes starting together take turns.
    private static func migrate(_ connection: PostgresConnection, description: String, logger: Logger) async throws {
        let encoding = try await connection.query("SHOW server_encoding", logger: logger).collect().first?.decode(String.self)
        guard encoding == "UTF8" else {
            throw RegistryError(.database, "the database \(description) uses the encoding \(encoding ?? "?"); PATKit needs "
                                + "UTF8 (CREATE DATABASE … ENCODING 'UTF8')")
        }
        let lock = PostgresRegistry.lockNamespace
        try await connection.query("SELECT pg_advisory_lock(\(lock), 0)", logger: logger)
        do {
            try await connection.query("CREATE SCHEMA IF NOT EXISTS patkit", logger: logger)
            try await connection.query("""
                CREATE TABLE IF NOT EXISTS patkit.migrations (
                    identifier TEXT NOT NULL PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())
                """, logger: logger)
            var applied = Set<String>()
            for try await identifier in try await connection.query("SELECT identifier FROM patkit.migrations", logger: logger)
                .decode(String.self) {
                applied.insert(identifier)
            }
            let known = Set(RegistrySchema.migrations.map(\.identifier))
            let unknown = applied.subtracting(known)
            guard unknown.isEmpty else {
                throw RegistryError(.database, "the registry database \(description) has schema migrations this pat does not "
                                    + "know (\(unknown.sorted().joined(separator: ", "))): it was written by a newer pat; "
                                    + "upgrade pat to use it")
            }
            for migration in RegistrySchema.migrations where !applied.contains(migration.identifier) {
                try await connection.query("BEGIN", logger: logger)
                do {
                    for statement in migration.postgres {
                        try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    try await connection.query("INSERT INTO patkit.migrations (identifier) VALUES (\(migration.identifier))",
                                               logger: logger)
                    try await connection.query("COMMIT", logger: logger)
                } catch {
                    _ = try? await connection.query("ROLLBACK", logger: logger)
                    throw error
                }
                logger.info("registry schema migrated", metadata: ["migration": "\(migration.identifier)", "database": "\(description)"])
            }
        } catch {
            _ = try? await connection.query("SELECT pg_advisory_unlock(\(lock), 0)", logger: logger)
            throw error
        }
        try await connection.query("SELECT pg_advisory_unlock(\(lock), 0)", logger: logger)
    }

    // MARK: listening

    /// Keeps one connection listening on `channel` while someone subscribes; announces other
    /// stores' notifications, and every (re)connection (notifications may have been missed).
    private static func listen(_ configuration: PostgresConnection.Configuration, description: String, origin: String,
                               feed: ChangeFeed, logger: Logger) async {
        var backoff = Duration.milliseconds(100)
        var failing = false
        var connectionID = 1
        while !Task.isCancelled {
            do {
                let connection = try await PostgresConnection.connect(configuration: configuration, id: connectionID, logger: logger)
                connectionID += 1
                // Whatever ends the listening (cancellation, a lost connection), the connection is closed.
                let outcome = await withTaskCancellationHandler {
                    await Result(catching: {
                        try await connection.listen(on: channel) { notifications in
                            if failing { logger.notice("listening for registry changes again", metadata: ["database": "\(description)"]) }
                            failing = false
                            backoff = .milliseconds(100)
                            feed.broadcast() // changes may have been made before the listener was up
                            for try await notification in notifications where notification.payload != origin {
                                feed.broadcast()
                            }
                        }
                    })
                } onCancel: {
                    _ = connection.close() as EventLoopFuture<Void>
                }
                try? await connection.close()
                try outcome.get()
            } catch {
                if !failing && !Task.isCancelled {
                    logger.warning("lost the registry's change notifications; re-connecting", metadata: [
                        "database": "\(description)", "error": "\(PostgresErrors.describe(error, database: description))",
                    ])
                }
                failing = true
            }
            do { try await Task.sleep(for: backoff) } catch { return }
            backoff = min(backoff * 2, .seconds(5))
        }
    }

    // MARK: configuration

    static func clientConfiguration(_ c: PostgresConfiguration) throws(RegistryError) -> PostgresClient.Configuration {
        let tls: PostgresClient.Configuration.TLS
        switch c.tls {
        case .disable: tls = .disable
        case .prefer: tls = .prefer(tlsConfiguration(c))
        case .require: tls = .require(tlsConfiguration(c))
        }
        var configuration = PostgresClient.Configuration(host: c.host, port: c.port, username: c.username, password: c.password,
                                                         database: c.database, tls: tls)
        configuration.options.maximumConnections = c.poolSize
        configuration.options.minimumConnections = 0
        configuration.options.connectTimeout = c.connectTimeout
        configuration.options.connectionIdleTimeout = .seconds(60)
        configuration.options.additionalStartupParameters = startupParameters(c)
        return configuration
    }

    static func connectionConfiguration(_ c: PostgresConfiguration) throws(RegistryError) -> PostgresConnection.Configuration {
        let tls: PostgresConnection.Configuration.TLS
        do {
            switch c.tls {
            case .disable: tls = .disable
            case .prefer: tls = .prefer(try NIOSSLContext(configuration: tlsConfiguration(c)))
            case .require: tls = .require(try NIOSSLContext(configuration: tlsConfiguration(c)))
            }
        } catch {
            throw RegistryError(.invalid, "cannot set up TLS for \(c.description): \(error)")
        }
        var configuration = PostgresConnection.Configuration(host: c.host, port: c.port, username: c.username, password: c.password,
                                                             database: c.database, tls: tls)
        configuration.options.connectTimeout = .nanoseconds(Int64(c.connectTimeout.milliseconds) * 1_000_000)
        configuration.options.additionalStartupParameters = startupParameters(c)
        return configuration
    }

    private static func tlsConfiguration(_ c: PostgresConfiguration) -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let path = c.rootCertificatePath { tls.trustRoots = .file(path) }
        return tls
    }

    /// Server-side bounds for every connection, and its name in `pg_stat_activity`.
    private static func startupParameters(_ c: PostgresConfiguration) -> [(String, String)] {
        [("application_name", "patkit"),
         ("statement_timeout", "\(c.statementTimeout.milliseconds)"),
         ("lock_timeout", "\(c.lockTimeout.milliseconds)"),
         // A node that dies mid-transaction must not hold its locks for long.
         ("idle_in_transaction_session_timeout", "\(c.transactionTimeout.milliseconds)")]
    }
}

extension Result where Failure == any Error {
    /// The outcome of `body`, thrown or returned.
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
