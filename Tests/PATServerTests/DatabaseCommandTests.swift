import Foundation
import PATKit
import PATRegistry
import PATRegistryPostgres
import PATRegistryTestSupport
import PATServer
import PATStore
import PATTestSupport
import Testing

/// The CLI on a PostgreSQL registry: `PAT_DATABASE_URL` (or `--database`) on every registry
/// command, and what the operator is told when the database cannot be used — never its password.
@Suite("pat with a PostgreSQL registry", .serialized, .timeLimit(.minutes(5)))
struct DatabaseCommandTests {
    static func pat(_ arguments: [String], database: String? = nil) async throws -> ProcessResult {
        var environment = ProcessInfo.processInfo.environment
        environment["PAT_DATABASE_URL"] = database
        return try await ChildProcess.run(try await Prerequisite.patBinary.require(), arguments, environment: environment,
                                          timeLimit: .seconds(60))
    }

    @Test("create, list, revoke and publish on PostgreSQL through PAT_DATABASE_URL; SQLite untouched")
    func lifecycleOnPostgres() async throws {
        let configuration = try await PostgresTestDatabase.create()
        let url = configuration.testURL
        let dir = try TempDir()
        #expect(try await Self.pat(["keys", "generate", "--home", dir.path]).status == 0)
        let created = try await Self.pat(["create", "--home", dir.path, "--owner", "alice", "--name", "ci", "--scope", "clients:view",
                                          "--expires-in", "1d", "--json"], database: url)
        #expect(created.status == 0, "\(created.stderr)")
        let id = try #require(try JSONSerialization.jsonObject(with: Data(created.stdout.utf8)) as? [String: Any])["id"] as? String
        let revoked = try await Self.pat(["revoke", "--home", dir.path, try #require(id)], database: url)
        #expect(revoked.status == 0, "\(revoked.stderr)")
        let listed = try await Self.pat(["list", "--home", dir.path, "--status", "revoked", "--database", url])
        #expect(listed.status == 0 && listed.stdout.contains(id ?? "-"), "\(listed)")
        let published = try await Self.pat(["publish", "--home", dir.path], database: url)
        #expect(published.status == 0 && published.stdout.contains("1 PAT entry"), "\(published)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/pat.db"), "the SQLite registry was never created")
        for result in [created, revoked, listed, published] {
            #expect(!result.stderr.contains(configuration.password ?? "-"), "the password is never printed")
        }
        let store = try await PostgresRegistry.open(configuration, logger: quietRegistryLogger)
        #expect(try await store.get(id: id ?? "-")?.isRevoked == true)
        await store.close()
    }

    @Test("a database that cannot be used: exit 1 with the reason and what to do, never the password; a bad URL: exit 2")
    func failuresSayWhatToDo() async throws {
        let server = try await PostgresTestDatabase.serverURL()
        let dir = try TempDir()
        var wrongPassword = server
        wrongPassword.password = "not-the-password-\(UUID().uuidString.prefix(8))"
        var missing = server
        missing.database = "patkit_no_such_database"
        var closedPort = server
        closedPort.port = 1
        let cases: [(PostgresConfiguration, String)] = [
            (wrongPassword, "refused the login"), (missing, "does not exist"), (closedPort, "cannot connect"),
        ]
        for (configuration, reason) in cases {
            let result = try await Self.pat(["list", "--home", dir.path, "--database", configuration.testURL])
            #expect(result.status == 1, "\(result)")
            #expect(result.stderr.contains(reason), "\(result.stderr)")
            #expect(result.stderr.contains(configuration.description), "names the database (without the password)")
            #expect(!result.stderr.contains(configuration.password ?? "-"), "never the password: \(result.stderr)")
        }
        let usage = try await Self.pat(["list", "--home", dir.path, "--database", "postgres://u:pw-in-url@h/db?bogus=1"])
        #expect(usage.status == 2 && usage.stderr.contains("bogus") && !usage.stderr.contains("pw-in-url"), "\(usage.stderr)")
    }
}
