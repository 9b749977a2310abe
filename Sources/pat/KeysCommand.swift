import ArgumentParser
import PATStore

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Manage the issuer's Ed25519 signing keys (PASERK k4) in HOME/keys.",
        subcommands: [Generate.self, List.self, Export.self, Rotate.self, Retire.self]
    )

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a new signing key; it becomes the key new tokens are signed with.",
            discussion: "Writes k4.pid.<id>.secret (mode 0600), k4.pid.<id>.public and keyset.json in HOME/keys and prints the new key id.")
        @OptionGroup var home: HomeOption

        func run() throws {
            let key = try home.resolved.keyStore.generate()
            emit(key.id.rawValue)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the keys: id, status, creation time, and whether the secret key is here.")
        @OptionGroup var home: HomeOption

        func run() throws {
            let store = home.resolved.keyStore
            let set = try store.keySet()
            guard !set.isEmpty else {
                throw CLIFailure(message: "no keys in \(store.directory): run `pat keys generate`")
            }
            let signing = set.newest?.id
            emit("KID                                                  STATUS   CREATED               SECRET  SIGNING")
            for entry in set.entries {
                let created = entry.created?.rfc3339 ?? "-"
                emit("\(entry.id.rawValue)  \(entry.status.rawValue.padding(8))  \(created.padding(20))  \((store.hasSecret(entry.id) ? "yes" : "no").padding(6))  \(entry.id == signing ? "yes" : "")")
            }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the public key set as JSON (what verifiers need; no secret material).")
        @OptionGroup var home: HomeOption

        func run() throws {
            let set = try home.resolved.keyStore.keySet()
            guard !set.isEmpty else { throw CLIFailure(message: "no keys to export: run `pat keys generate` first") }
            emit(String(decoding: set.encoded().dropLast(), as: UTF8.self))
        }
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}

extension KeysCommand {
    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a new active signing key; the old keys stay active and keep verifying their tokens.",
            discussion: """
                New tokens and revocation lists are signed with the new key. Run `pat publish` so verifiers \
                learn it before they see its tokens. Retire an old key with `pat keys retire KID` once its \
                tokens should stop validating. Prints the new key id.
                """)
        @OptionGroup var home: HomeOption

        func run() throws {
            let store = home.resolved.keyStore
            let previous = try store.keySet().activeKeys.map(\.id)
            let key = try store.generate(now: try currentTime())
            emit(key.id.rawValue)
            printError(previous.isEmpty
                       ? "note: this is the first key; run `pat publish` to publish it"
                       : "note: \(previous.count) older key\(previous.count == 1 ? " stays" : "s stay") active; run `pat publish` so verifiers learn the new key")
        }
    }

    struct Retire: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Retire a key: it stays listed as retired and verifies nothing (every token it signed stops validating).",
            discussion: """
                Use it for a compromised or outgoing key. The published key set lists it as retired once \
                `pat publish` runs; `pat verify` on this machine refuses its tokens at once. The last active \
                key cannot be retired: run `pat keys rotate` first.
                """)
        @OptionGroup var home: HomeOption
        @Argument(help: "The key id (k4.pid.…), as shown by `pat keys list`.") var kid: String

        func run() throws {
            let store = home.resolved.keyStore
            let id = try KeyID(kid)
            let set = try store.keySet()
            guard let entry = set.entries.first(where: { $0.id == id }) else {
                throw CLIFailure(message: "error: no key \(id) in \(store.directory): `pat keys list` shows the known keys")
            }
            guard entry.status == .active else {
                emit("key \(id) is already retired; nothing changed")
                return
            }
            guard set.activeKeys.contains(where: { $0.id != id }) else {
                throw CLIFailure(message: "error: \(id) is the only active key; retiring it would leave nothing to sign tokens "
                                 + "and revocation lists: run `pat keys rotate` first, then retire it")
            }
            try store.retire(id)
            emit("retired key \(id): tokens it signed stop validating once `pat publish` runs")
            if set.newest?.id == id, let next = try store.keySet().newest {
                printError("note: new tokens and lists are now signed with \(next.id)")
            }
        }
    }
}
