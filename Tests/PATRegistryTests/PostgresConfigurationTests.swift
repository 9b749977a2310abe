import Foundation
import PATRegistry
import PATRegistryPostgres
import Testing

/// `--database` / `PAT_DATABASE_URL`: which back end, and a PostgreSQL URL read strictly, its
/// password never repeated.
@Suite("the registry's database URL")
struct PostgresConfigurationTests {
    let home = PATHome(path: "/srv/pat")

    @Test("nothing, a path or a postgres:// URL selects the back end; the option wins over the environment")
    func selection() throws {
        #expect(try RegistryDatabase(option: nil, home: home, environment: [:]).description == "/srv/pat/pat.db")
        #expect(try RegistryDatabase(option: "", home: home, environment: [:]).description == "/srv/pat/pat.db")
        #expect(try RegistryDatabase(option: "/var/lib/pat/registry.db", home: home, environment: [:]).description == "/var/lib/pat/registry.db")
        let fromEnvironment = try RegistryDatabase(option: nil, home: home,
                                                   environment: ["PAT_DATABASE_URL": "postgresql://pat:s3cret@db.internal/registry"])
        #expect(fromEnvironment.isPostgres)
        #expect(fromEnvironment.description == "postgres://pat@db.internal:5432/registry", "no password in what is shown")
        let option = try RegistryDatabase(option: "./local.db", home: home, environment: ["PAT_DATABASE_URL": "postgres://u@h/d"])
        #expect(!option.isPostgres)
        #expect(throws: RegistryError.self) { try RegistryDatabase(option: "mysql://u@h/d", home: home, environment: [:]) }
    }

    @Test("user, password (percent-decoded), host, port, database and parameters")
    func parsing() throws {
        let c = try PostgresConfiguration(url: "postgres://pat%40ops:p%3Aw%2Fd@[::1]:6543/reg?sslmode=require&connect_timeout=3&pool_size=4",
                                          environment: [:])
        #expect(c.username == "pat@ops" && c.password == "p:w/d")
        #expect(c.host == "::1" && c.port == 6543 && c.database == "reg")
        #expect(c.tls == .require && c.connectTimeout == .seconds(3) && c.poolSize == 4)
        #expect(c.description == "postgres://pat@ops@[::1]:6543/reg")
        #expect(!c.description.contains("p:w/d"))
        let defaults = try PostgresConfiguration(url: "postgres://pat@localhost/reg", environment: ["PGPASSWORD": "from-env"])
        #expect(defaults.port == 5432 && defaults.tls == .prefer && defaults.poolSize == 10 && defaults.password == "from-env")
    }

    @Test("malformed URLs are refused with the reason, never echoing the password")
    func refusals() {
        let cases = ["postgres://localhost/reg", "postgres://pat:secret@/reg", "postgres://pat:secret@h", "postgres://pat:secret@h/a/b",
                     "postgres://pat:secret@h/reg?sslmode=allow", "postgres://pat:secret@h/reg?pool_size=0",
                     "postgres://pat:secret@h/reg?connect_timeout=soon", "postgres://pat:secret@h/reg?application_name=x",
                     "postgres://pat:secret@h:0/reg"]
        for url in cases {
            do {
                _ = try PostgresConfiguration(url: url, environment: [:])
                Issue.record("\(url) was accepted")
            } catch {
                #expect(!error.description.contains("secret"), "\(error)")
                #expect(error.kind == .invalid)
            }
        }
    }
}
