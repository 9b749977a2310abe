import ArgumentParser
import PATStore

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Manage the issuer's Ed25519 signing keys (PASERK k4) in HOME/keys.",
        subcommands: [Generate.self, List.self, Export.self]
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
