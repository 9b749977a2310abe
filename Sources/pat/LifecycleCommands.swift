import ArgumentParser
import PATKit
import PATRegistry
import PATStore

// The registry-backed PAT lifecycle: create, scope add/remove/clear, revoke, regenerate,
// delete. Changes are recorded in HOME/pat.db; verifiers learn of them from the next
// `pat publish`.

struct CreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a named PAT, record it in the registry and print its token once.",
        discussion: """
            Prints the token alone on the first line of standard output, so TOKEN=$(pat create …) works; \
            the PAT id and a reminder go to standard error. With --json, prints one JSON object with "id" \
            and "token" instead. The token is never stored: it cannot be shown again (`pat regenerate` \
            issues a new one).

            Scopes are ENTITY:OPERATION[:ID] (ID defaults to *), checked against the scope catalog: \
            --catalog magistrala|generic|management|FILE, else HOME/catalog.json, else magistrala \
            (management: the home's catalog plus pats:*, the scopes of `pat serve`'s management API). \
            Names are unique per owner. The expiry may be at most --max-lifetime (default 1y) away.
            """)

    @OptionGroup var home: HomeOption
    @Option(help: "The owner (sub).") var owner: String
    @Option(help: "A name, 1–256 characters, unique among the owner's PATs.") var name: String
    @Option(help: "A description.") var description: String?
    @Option(name: .customLong("scope"), help: "A scope ENTITY:OPERATION[:ID]; repeat for more (at least one).") var scopes: [String] = []
    @OptionGroup var expiry: ExpiryOptions
    @Option(help: "The domain the PAT acts in (dom).") var domain: String?
    @Option(help: "Scope catalog: magistrala, generic, management (adds pats:* for the management API), or a JSON file.") var catalog: String?
    @OptionGroup var policy: LifetimePolicyOption
    @Flag(help: "Print {\"id\", \"token\", …} as one JSON object on standard output.") var json = false

    func validate() throws {
        guard !scopes.isEmpty else {
            throw ValidationError("pass at least one --scope ENTITY:OPERATION[:ID] (e.g. --scope clients:view)")
        }
        _ = try parseScopes(scopes)
    }

    func run() throws {
        let home = self.home.resolved
        let scopeSet = ScopeSet(try parseScopes(scopes))
        let lifecycle = try openLifecycle(home, catalog: home.catalog(named: catalog), maxLifetime: policy.span)
        let issued = try lifecycle.create(owner: owner, name: name, description: description, scopes: scopeSet,
                                          expiry: try expiry.expiry, domain: domain)
        emitIssued(issued, json: json, verb: "created PAT")
    }
}

struct ScopeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scope",
        abstract: "Change a PAT's scopes; each change re-issues it and prints the new token once.",
        discussion: """
            The PAT keeps its id, name, description and expiry and gets a new generation; tokens of \
            earlier generations stop validating once `pat publish` runs. Only an active PAT can change: \
            regenerate a revoked or expired one first. Output as for `pat create`.
            """,
        subcommands: [Add.self, Remove.self, Clear.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add scopes (checked against the scope catalog) and re-issue.")
        @OptionGroup var home: HomeOption
        @Argument(help: "The PAT id.") var id: String
        @Argument(help: "Scopes ENTITY:OPERATION[:ID] to add.") var scopes: [String] = []
        @Option(help: "Scope catalog: magistrala, generic, management (adds pats:* for the management API), or a JSON file.") var catalog: String?
        @Flag(help: "Print the new token as JSON.") var json = false

        func validate() throws {
            guard !scopes.isEmpty else { throw ValidationError("name at least one scope to add after the PAT id") }
            _ = try parseScopes(scopes)
        }

        func run() throws {
            let home = self.home.resolved
            let lifecycle = try openLifecycle(home, catalog: home.catalog(named: catalog))
            emitIssued(try lifecycle.addScopes(id: id, try parseScopes(scopes)), json: json, verb: "re-issued PAT")
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove scopes and re-issue.")
        @OptionGroup var home: HomeOption
        @Argument(help: "The PAT id.") var id: String
        @Argument(help: "Scopes ENTITY:OPERATION[:ID] to remove.") var scopes: [String] = []
        @Flag(help: "Print the new token as JSON.") var json = false

        func validate() throws {
            guard !scopes.isEmpty else { throw ValidationError("name at least one scope to remove after the PAT id") }
            _ = try parseScopes(scopes)
        }

        func run() throws {
            let lifecycle = try openLifecycle(home.resolved)
            emitIssued(try lifecycle.removeScopes(id: id, try parseScopes(scopes)), json: json, verb: "re-issued PAT")
        }
    }

    struct Clear: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove every scope and re-issue (the new token grants nothing).")
        @OptionGroup var home: HomeOption
        @Argument(help: "The PAT id.") var id: String
        @Flag(help: "Print the new token as JSON.") var json = false

        func run() throws {
            let lifecycle = try openLifecycle(home.resolved)
            emitIssued(try lifecycle.clearScopes(id: id), json: json, verb: "re-issued PAT")
        }
    }
}

struct RevokeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Revoke a PAT, or every PAT of an owner (--owner U --all).",
        discussion: """
            Revoking raises the PAT's lowest valid generation above its current one; `pat regenerate` \
            can bring it back with a new token. --owner U --all marks every PAT of U revoked and also \
            refuses every token of U issued up to now, including tokens made by `pat issue`; it asks for \
            confirmation on a terminal and needs --yes otherwise. Verifiers refuse the tokens once \
            `pat publish` runs.
            """)

    @OptionGroup var home: HomeOption
    @Argument(help: "The PAT id.") var id: String?
    @Option(help: "Revoke every PAT of this owner (with --all).") var owner: String?
    @Flag(help: "With --owner: revoke every PAT of the owner.") var all = false
    @Flag(help: "Do not ask for confirmation.") var yes = false

    func validate() throws { _ = try target(id: id, owner: owner, all: all, command: "revoke") }

    func run() throws {
        let lifecycle = try openLifecycle(home.resolved)
        switch try target(id: id, owner: owner, all: all, command: "revoke") {
        case .one(let id):
            let result = try lifecycle.revoke(id: id)
            let r = result.record
            if result.wasAlreadyRevoked {
                emit("PAT \(r.id) (\"\(r.name)\" of \(r.owner)) was already revoked at \(r.revokedAt?.rfc3339 ?? "an earlier time"); nothing changed")
            } else {
                emit("revoked PAT \(r.id) (\"\(r.name)\" of \(r.owner)); its tokens are refused once `pat publish` runs")
            }
        case .owner(let owner):
            let now = try currentTime()
            let count = try lifecycle.store.list(owner: owner, status: .all, now: now).count
            try confirm("Revoke all \(count) PAT\(count == 1 ? "" : "s") of owner \(owner), and every other token issued to them until now",
                        yes: yes)
            let result = try lifecycle.revokeAll(owner: owner)
            emit("revoked \(result.revoked.count) PAT\(result.revoked.count == 1 ? "" : "s") of owner \(owner)"
                 + (result.alreadyRevoked > 0 ? " (\(result.alreadyRevoked) already revoked)" : "")
                 + "; every token of \(owner) issued before \(result.ownerRevocation.issuedBefore) is refused once `pat publish` runs")
        }
    }
}

struct RegenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "regenerate",
        abstract: "Issue a new token for a PAT (active, revoked or expired) with a new expiry; print it once.",
        discussion: """
            Keeps the id, name, description and scopes; the new generation becomes the lowest valid one, \
            so every earlier token stops validating once `pat publish` runs. A revoked PAT becomes active \
            again. Output as for `pat create`.
            """)

    @OptionGroup var home: HomeOption
    @Argument(help: "The PAT id.") var id: String
    @OptionGroup var expiry: ExpiryOptions
    @OptionGroup var policy: LifetimePolicyOption
    @Flag(help: "Print the new token as JSON.") var json = false

    func run() throws {
        let lifecycle = try openLifecycle(home.resolved, maxLifetime: policy.span)
        emitIssued(try lifecycle.regenerate(id: id, expiry: try expiry.expiry), json: json, verb: "regenerated PAT")
    }
}

struct DeleteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Delete a PAT, or every PAT of an owner (--owner U --all).",
        discussion: """
            The record is removed (its name becomes free); a tombstone keeps every generation refused \
            in the published list until the latest expiry ever issued has passed. A deleted PAT cannot \
            be restored. --owner U --all asks for confirmation on a terminal and needs --yes otherwise.
            """)

    @OptionGroup var home: HomeOption
    @Argument(help: "The PAT id.") var id: String?
    @Option(help: "Delete every PAT of this owner (with --all).") var owner: String?
    @Flag(help: "With --owner: delete every PAT of the owner.") var all = false
    @Flag(help: "Do not ask for confirmation.") var yes = false

    func validate() throws { _ = try target(id: id, owner: owner, all: all, command: "delete") }

    func run() throws {
        let lifecycle = try openLifecycle(home.resolved)
        switch try target(id: id, owner: owner, all: all, command: "delete") {
        case .one(let id):
            do {
                let tombstone = try lifecycle.delete(id: id)
                emit("deleted PAT \(tombstone.id) of \(tombstone.owner); its tokens are refused once `pat publish` runs")
            } catch let error as RegistryError where error.kind == .deleted {
                emit("PAT \(id) was already deleted; nothing changed")
            }
        case .owner(let owner):
            let now = try currentTime()
            let count = try lifecycle.store.list(owner: owner, status: .all, now: now).count
            guard count > 0 else {
                emit("owner \(owner) has no PATs; nothing changed")
                return
            }
            try confirm("Delete all \(count) PAT\(count == 1 ? "" : "s") of owner \(owner)", yes: yes)
            let tombstones = try lifecycle.deleteAll(owner: owner)
            emit("deleted \(tombstones.count) PAT\(tombstones.count == 1 ? "" : "s") of owner \(owner); "
                 + "their tokens are refused once `pat publish` runs")
        }
    }
}
