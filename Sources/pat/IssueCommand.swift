import ArgumentParser
import PATStore
import PATKit
import PATManagement

struct IssueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "issue",
        abstract: "Sign a PAT with the newest key and print only the token (stateless; nothing is recorded).",
        discussion: """
            Scopes are ENTITY:OPERATION[:ID] (ID defaults to *), checked against the scope catalog: \
            --catalog magistrala|generic|FILE, else HOME/catalog.json, else magistrala.
            `pats` scopes (the management API's) are refused: they belong to PATs the registry \
            records, made with `pat create --catalog management`.
            --claim KEY=VALUE adds a claim; VALUE is taken as JSON when it parses (true, 42, {"a":1}), \
            else as a string.
            """)

    @OptionGroup var home: HomeOption
    @Option(help: "The owner (sub).") var subject: String
    @Option(name: .customLong("scope"), help: "A scope ENTITY:OPERATION[:ID]; repeat for more.", transform: parseScope)
    var scopes: [Scope] = []
    @Option(name: .customLong("expires-in"), parsing: .unconditional,
            help: ArgumentHelp("Lifetime: 45s, 90m, 12h, 30d, 2w, 1y.", valueName: "DURATION")) var expiresIn: String
    @Option(help: "The domain the PAT acts in (dom).") var domain: String?
    @Option(help: "The PAT id (jti): 22–128 URL-safe characters. Default: 128 random bits.") var id: String?
    @Option(help: "The generation (gen), 1 to 2^53−1.") var generation: UInt64 = 1
    @Option(name: .customLong("claim"), help: "An extra claim KEY=VALUE; repeat for more.") var claims: [String] = []
    @Option(help: "Scope catalog: magistrala, generic, or a JSON file.", transform: parseCatalogName) var catalog: String?
    @Flag(help: "Print {\"accessToken\": TOKEN, \"id\": ID, \"expiresAt\": DATE} on standard output.") var json = false

    func validate() throws {
        guard !subject.isEmpty else { throw ValidationError("--subject must not be empty") }
        _ = try parseSpan(expiresIn, option: "--expires-in")
        guard (1...PATClaims.maxGeneration).contains(generation) else {
            throw ValidationError("--generation must be from 1 to 2^53−1")
        }
        // A token from `pat issue` is recorded nowhere: the management API could neither list nor
        // revoke what it minted, nor bound it (lineage needs a registry record). Refused by entity.
        for scope in scopes {
            guard scope.entity.utf8.elementsEqual(ManagementPermission.entity.utf8) else { continue }
            throw ValidationError("--scope \(scope): `\(ManagementPermission.entity)` scopes grant the management API's rights and belong "
                                  + "to PATs the registry records; create one with `pat create --catalog management` instead")
        }
    }

    func run() throws {
        let home = self.home.resolved
        let lifetime = try parseSpan(expiresIn, option: "--expires-in")
        let scopeSet = ScopeSet(scopes)
        let scopeCatalog = try home.catalog(named: catalog)
        do { try scopeCatalog.check(scopeSet) } catch {
            throw CLIFailure(message: "--scope: \(error)", status: 2, code: "invalid_input")
        }
        var extra = JSONObject()
        for item in claims {
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw CLIFailure(message: "--claim \"\(item)\" must be KEY=VALUE", status: 2)
            }
            let key = String(item[..<eq])
            let text = String(item[item.index(after: eq)...])
            let value = (try? JSONParser.parse(text, limits: JSONLimits(maxBytes: 4096, maxDepth: 4))) ?? .string(text)
            extra.set(key, value)
        }
        let now = try currentTime() // $PAT_NOW (a testing aid) or the system clock
        let claims = PATClaims(id: id ?? PATClaims.newID(), subject: subject, generation: generation,
                               issuedAt: now, expiresAt: now.adding(seconds: lifetime.seconds),
                               domain: domain, scopes: scopeSet, extra: extra)
        let key = try home.keyStore.signingKey()
        let token = try Issuer(key: key).issue(claims)
        if json {
            var out = JSONObject()
            out.set("accessToken", .string(token))
            out.set("id", .string(claims.id))
            out.set("expiresAt", .string(claims.expiresAt.rfc3339))
            emit(JSONValue.object(out).description)
        } else {
            emit(token)
        }
    }
}
