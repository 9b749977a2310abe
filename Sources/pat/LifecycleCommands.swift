import ArgumentParser
import PATKit
import PATManagement
import PATRegistry
import PATStore

// The registry-backed PAT lifecycle: create, scope add/remove/clear, revoke, regenerate,
// delete — each a thin adapter over the management service (`PATManagement`) acting as the
// local operator. Changes are recorded in HOME/pat.db; verifiers learn of them from the next
// `pat publish`.

struct CreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a named PAT, record it in the registry and print its token once.",
        discussion: """
            Prints the token alone on the first line of standard output, so TOKEN=$(pat create …) works; \
            the PAT id and a reminder go to standard error. With --json, prints the PAT as one JSON object \
            instead, the token as "accessToken" (the shape of the management API and webhooks). The token is never stored: it cannot be shown again (`pat regenerate` \
            issues a new one).

            Scopes are ENTITY:OPERATION[:ID] (ID defaults to *), checked against the scope catalog: \
            --catalog magistrala|generic|management|FILE, else HOME/catalog.json, else magistrala \
            (management: the home's catalog plus pats:*, the scopes of `pat serve`'s management API). \
            Names are unique per owner. Owners, names and domains are compared byte for byte and must be \
            in Unicode NFC. The expiry may be at most --max-lifetime (default 1y) away.
            """)

    @OptionGroup var home: HomeOption
    @OptionGroup var database: DatabaseOption
    @Option(help: "The owner (sub).") var owner: String
    @Option(help: "A name, 1–256 characters, unique among the owner's PATs.") var name: String
    @Option(help: "A description.") var description: String?
    @Option(name: .customLong("scope"), help: "A scope ENTITY:OPERATION[:ID]; repeat for more (at least one).",
            transform: parseScope) var scopes: [Scope] = []
    @OptionGroup var expiry: ExpiryOptions
    @Option(help: "The domain the PAT acts in (dom).") var domain: String?
    @Option(help: "Scope catalog: magistrala, generic, management (adds pats:* for the management API), or a JSON file.",
                transform: parseCatalogName) var catalog: String?
    @OptionGroup var policy: LifetimePolicyOption
    @Flag(help: "Print the PAT as one JSON object (the token as \"accessToken\") on standard output.") var json = false

    func validate() throws {
        guard !scopes.isEmpty else {
            throw ValidationError("pass at least one --scope ENTITY:OPERATION[:ID] (e.g. --scope clients:view)")
        }
    }

    func run() async throws {
        let home = self.home.resolved
        let service = try await openService(home, database, catalog: home.catalog(named: catalog), maxLifetime: policy.span)
        let request = CreateRequest(owner: owner, name: name, description: description, scopes: scopes,
                                    expiry: try expiry.expiry, domain: domain)
        let issued = try await operatorCall { try await service.create(request, by: .localOperator) }
        emitIssued(issued, json: json, verb: "created PAT", now: service.clock())
    }
}

struct ScopeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scope",
        abstract: "Change a PAT's scopes; each change re-issues it and prints the new token once.",
        discussion: """
            The PAT keeps its id, name, description and expiry and gets a new generation; tokens of \
            earlier generations stop validating once `pat publish` runs. Only an active PAT can change: \
            regenerate a revoked or expired one first. Output as for `pat create`.
            """,
        subcommands: [Add.self, Remove.self, Clear.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add scopes (checked against the scope catalog) and re-issue.")
        @OptionGroup var home: HomeOption
        @OptionGroup var database: DatabaseOption
        @Argument(help: "The PAT id.", completion: .custom(completePATIDs)) var id: String
        @Argument(help: "Scopes ENTITY:OPERATION[:ID] to add.", transform: parseScope) var scopes: [Scope] = []
        @Option(help: "Scope catalog: magistrala, generic, management (adds pats:* for the management API), or a JSON file.",
                transform: parseCatalogName) var catalog: String?
        @Flag(help: "Print the re-issued PAT as JSON.") var json = false

        func validate() throws {
            guard !scopes.isEmpty else { throw ValidationError("name at least one scope to add after the PAT id") }
        }

        func run() async throws {
            let home = self.home.resolved
            let service = try await openService(home, database, catalog: home.catalog(named: catalog))
            let issued: IssuedPAT
            do { issued = try await service.addScopes(id: id, scopes, by: .localOperator) } catch where error.kind == .conflict && error.field == "scopes" {
                // Already held: like revoking or deleting twice, nothing to do is not a failure.
                if json {
                    var o = try await operatorCall { try await service.record(id: id, by: .localOperator) }.json(at: service.clock())
                    o.set("changed", .bool(false))
                    emit(JSONValue.object(o).description)
                } else {
                    emit("PAT \(Printable.escaped(id)) already has \(ScopeSet(scopes).claim); nothing changed and no token was issued")
                }
                return
            } catch {
                throw CLIFailure(message: cliMessage(error, options: ["scopes": "SCOPE"]), status: error.kind == .invalidInput ? 2 : 1,
                                 code: error.kind.name)
            }
            emitIssued(issued, json: json, verb: "re-issued PAT", now: service.clock())
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove scopes and re-issue.")
        @OptionGroup var home: HomeOption
        @OptionGroup var database: DatabaseOption
        @Argument(help: "The PAT id.", completion: .custom(completePATIDs)) var id: String
        @Argument(help: "Scopes ENTITY:OPERATION[:ID] to remove.", transform: parseScope) var scopes: [Scope] = []
        @Flag(help: "Print the re-issued PAT as JSON.") var json = false

        func validate() throws {
            guard !scopes.isEmpty else { throw ValidationError("name at least one scope to remove after the PAT id") }
        }

        func run() async throws {
            let service = try await openService(home.resolved, database)
            let issued = try await operatorCall(options: ["scopes": "SCOPE"]) { try await service.removeScopes(id: id, scopes, by: .localOperator) }
            emitIssued(issued, json: json, verb: "re-issued PAT", now: service.clock())
        }
    }

    struct Clear: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove every scope and re-issue (the new token grants nothing).")
        @OptionGroup var home: HomeOption
        @OptionGroup var database: DatabaseOption
        @Argument(help: "The PAT id.", completion: .custom(completePATIDs)) var id: String
        @Flag(help: "Print the re-issued PAT as JSON.") var json = false

        func run() async throws {
            let service = try await openService(home.resolved, database)
            let issued = try await operatorCall { try await service.clearScopes(id: id, by: .localOperator) }
            emitIssued(issued, json: json, verb: "re-issued PAT", now: service.clock())
        }
    }
}

struct RevokeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Revoke a PAT, or every PAT of an owner (--owner U --all).",
        discussion: """
            Revoking raises the PAT's lowest valid generation above its current one, which also kills \
            every token the PAT issued through the management API (its lineage); `pat regenerate` \
            can bring it back with a new token. A PAT revoked here can be brought back only by the \
            operator or pats:admin, not by its owner. --owner U --all marks every PAT of U revoked and also \
            refuses every token of U issued up to now, including tokens made by `pat issue`; it asks for \
            confirmation on a terminal and needs --yes otherwise. Verifiers refuse the tokens once \
            `pat publish` runs.
            """)

    @OptionGroup var home: HomeOption
    @OptionGroup var database: DatabaseOption
    @Argument(help: "The PAT id.", completion: .custom(completePATIDs)) var id: String?
    @Option(help: "Revoke every PAT of this owner (with --all).") var owner: String?
    @Flag(help: "With --owner: revoke every PAT of the owner.") var all = false
    @Flag(help: "Do not ask for confirmation.") var yes = false
    @Flag(help: "Print the result as one JSON object: the PAT (with \"changed\"), or for --owner --all the counts.") var json = false

    func validate() throws { _ = try target(id: id, owner: owner, all: all, command: "revoke") }

    func run() async throws {
        let service = try await openService(home.resolved, database)
        switch try target(id: id, owner: owner, all: all, command: "revoke") {
        case .one(let id):
            let result = try await operatorCall { try await service.revoke(id: id, by: .localOperator) }
            let r = result.record, shown = "\"\(Printable.escaped(r.name))\" of \(Printable.escaped(r.owner))"
            if json {
                var o = r.json(at: service.clock())
                o.set("changed", .bool(!result.wasAlreadyRevoked))
                emit(JSONValue.object(o).description)
            } else if result.wasAlreadyRevoked {
                emit("PAT \(r.id) (\(shown)) was already revoked at \(r.revokedAt?.rfc3339 ?? "an earlier time"); nothing changed")
            } else {
                emit("revoked PAT \(r.id) (\(shown)); its tokens, and every token it issued, are refused once `pat publish` runs")
            }
        case .owner(let owner):
            let count = try await operatorCall { try await service.list(owner: owner, by: .localOperator).count }
            let shown = Printable.escaped(owner)
            try confirm("Revoke all \(count) PAT\(count == 1 ? "" : "s") of owner \(shown), and every other token issued to them until now",
                        yes: yes)
            let result = try await operatorCall { try await service.revokeAll(owner: owner, by: .localOperator) }
            if json {
                var o = JSONObject()
                o.set("owner", .string(owner))
                o.set("revoked", .array(result.revoked.map { .string($0.id) }))
                o.set("alreadyRevoked", .number(String(result.alreadyRevoked)))
                o.set("issuedBefore", .string("\(result.ownerRevocation.issuedBefore)"))
                emit(JSONValue.object(o).description)
                return
            }
            if result.revoked.isEmpty && result.alreadyRevoked == 0 {
                emit("owner \(shown) has no PATs in the registry; recorded an owner revocation anyway: every token of \(shown) "
                     + "issued before \(result.ownerRevocation.issuedBefore) (e.g. by `pat issue`) is refused once `pat publish` runs")
                return
            }
            emit("revoked \(result.revoked.count) PAT\(result.revoked.count == 1 ? "" : "s") of owner \(shown)"
                 + (result.alreadyRevoked > 0 ? " (\(result.alreadyRevoked) already revoked)" : "")
                 + "; every token of \(shown) issued before \(result.ownerRevocation.issuedBefore) is refused once `pat publish` runs")
        }
    }
}

struct RegenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "regenerate",
        abstract: "Issue a new token for a PAT (active, revoked or expired) with a new expiry; print it once.",
        discussion: """
            Keeps the id, name, description and scopes; the new generation becomes the lowest valid one, \
            so every earlier token — and every token those issued — stops validating once `pat publish` \
            runs. A revoked PAT becomes active again. Output as for `pat create`.

            --overlap 1h rotates without downtime: the token being replaced (of an active PAT) keeps \
            validating for that long (at most 7d, never past its own expiry), then dies; the published \
            list says until when, and edges check it offline. Regenerating again during an overlap ends \
            it at once (the token just replaced may overlap; older ones never do). Default: 0, no overlap.
            """)

    @OptionGroup var home: HomeOption
    @OptionGroup var database: DatabaseOption
    @Argument(help: "The PAT id.", completion: .custom(completePATIDs)) var id: String
    @OptionGroup var expiry: ExpiryOptions
    @OptionGroup var policy: LifetimePolicyOption
    @Option(parsing: .unconditional, help: ArgumentHelp("Keep the token being replaced valid this long, e.g. 1h (default 0: it dies at once).",
                               valueName: "DURATION"))
    var overlap: String?
    @Flag(help: "Print the re-issued PAT as JSON.") var json = false

    func validate() throws {
        if let overlap { do { _ = try OverlapSpan.parse(overlap) } catch { throw ValidationError("--overlap: \(error)") } }
    }

    func run() async throws {
        let service = try await openService(home.resolved, database, maxLifetime: policy.span)
        let expiry = try self.expiry.expiry
        let overlap = try self.overlap.flatMap { try OverlapSpan.parse($0) }
        let issued = try await operatorCall { try await service.regenerate(id: id, expiry: expiry, overlap: overlap, by: .localOperator) }
        emitIssued(issued, json: json, verb: "regenerated PAT", now: service.clock())
    }
}

struct DeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Delete a PAT, or every PAT of an owner (--owner U --all).",
        discussion: """
            The record is removed (its name becomes free); a tombstone keeps every generation refused \
            in the published list until the latest expiry ever issued has passed. A deleted PAT cannot \
            be restored. --owner U --all asks for confirmation on a terminal and needs --yes otherwise.
            """)

    @OptionGroup var home: HomeOption
    @OptionGroup var database: DatabaseOption
    @Argument(help: "The PAT id.", completion: .custom(completePATIDs)) var id: String?
    @Option(help: "Delete every PAT of this owner (with --all).") var owner: String?
    @Flag(help: "With --owner: delete every PAT of the owner.") var all = false
    @Flag(help: "Do not ask for confirmation.") var yes = false
    @Flag(help: "Print the result as one JSON object: {\"deleted\": [ID …], \"changed\": BOOL}.") var json = false

    func validate() throws { _ = try target(id: id, owner: owner, all: all, command: "delete") }

    private func emitJSON(_ ids: [String], owner: String? = nil) {
        var o = JSONObject()
        if let owner { o.set("owner", .string(owner)) }
        o.set("deleted", .array(ids.map { .string($0) }))
        o.set("changed", .bool(!ids.isEmpty))
        emit(JSONValue.object(o).description)
    }

    func run() async throws {
        let service = try await openService(home.resolved, database)
        switch try target(id: id, owner: owner, all: all, command: "delete") {
        case .one(let id):
            let deletedID: String?
            let owner: String
            do {
                let deleted = try await service.delete(id: id, by: .localOperator)
                (deletedID, owner) = (deleted.record.id, deleted.record.owner)
            } catch where error.kind == .deleted {
                (deletedID, owner) = (nil, "") // deleting twice changes nothing
            } catch {
                throw CLIFailure.describing(error)
            }
            if json {
                emitJSON(deletedID.map { [$0] } ?? [])
            } else if let deletedID {
                emit("deleted PAT \(deletedID) of \(Printable.escaped(owner)); its tokens, and every token it "
                     + "issued, are refused once `pat publish` runs")
            } else {
                emit("PAT \(Printable.escaped(id)) was already deleted; nothing changed")
            }
        case .owner(let owner):
            let shown = Printable.escaped(owner)
            let count = try await operatorCall { try await service.list(owner: owner, by: .localOperator).count }
            guard count > 0 else {
                if json { return emitJSON([], owner: owner) }
                emit("owner \(shown) has no PATs; nothing changed")
                return
            }
            try confirm("Delete all \(count) PAT\(count == 1 ? "" : "s") of owner \(shown)", yes: yes)
            let deleted = try await operatorCall { try await service.deleteAll(owner: owner, by: .localOperator) }
            if json { return emitJSON(deleted.map(\.record.id), owner: owner) }
            emit("deleted \(deleted.count) PAT\(deleted.count == 1 ? "" : "s") of owner \(shown); "
                 + "their tokens are refused once `pat publish` runs")
        }
    }
}
