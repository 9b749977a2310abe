import ArgumentParser
import PATRegistry
import PATStore

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Manage the issuer's Ed25519 signing keys (PASERK k4) in HOME/keys.",
        subcommands: [Generate.self, List.self, Export.self, Rotate.self, Retire.self, Anchor.self, SignSet.self]
    )

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a new signing key; it becomes the key new tokens are signed with.",
            discussion: """
                Writes k4.pid.<id>.secret (mode 0600), k4.pid.<id>.public and keyset.json in HOME/keys and prints \
                the new key id. A home without a trust anchor also gets an online one (HOME/keys/anchor/, listed \
                in HOME/keys/anchors), which signs the published key set; edges pin it.
                """)
        @OptionGroup var home: HomeOption
        @Flag(help: "Print {\"kid\": ID} on standard output.") var json = false

        func run() throws {
            let store = home.resolved.keyStore
            let key = try store.generate()
            emit(json ? keyIDJSON(key.id) : key.id.rawValue)
            if let anchor = try store.ensureAnchor() {
                printError("note: created the online trust anchor \(anchor) (HOME/keys/anchor); edges pin it: "
                           + "`pat keys export --anchors > anchors.txt`, then `--trust-anchor anchors.txt`")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the keys: id, status, creation time, and whether the secret key is here.")
        @OptionGroup var home: HomeOption
        @Flag(help: "Print a JSON array.") var json = false

        func run() throws {
            let home = self.home.resolved
            try requireExistingHome(home)
            let store = home.keyStore
            let set = try store.keySet()
            guard !set.isEmpty else {
                throw CLIFailure(message: "no keys in \(store.directory): run `pat keys generate`", code: "not_found")
            }
            let signing = set.newest?.id
            if json {
                emit(JSONValue.array(set.entries.map { entry in
                    var o = JSONObject()
                    o.set("kid", .string(entry.id.rawValue))
                    o.set("status", .string(entry.status.rawValue))
                    o.set("created", entry.created.map { JSONValue.string($0.rfc3339) } ?? JSONValue.null)
                    o.set("secret", .bool(store.hasSecret(entry.id)))
                    o.set("signing", .bool(entry.id == signing))
                    return .object(o)
                }).description)
                return
            }
            var rows = [["KID", "STATUS", "CREATED", "SECRET", "SIGNING"]]
            for entry in set.entries {
                rows.append([entry.id.rawValue, entry.status.rawValue, entry.created?.rfc3339 ?? "-",
                             store.hasSecret(entry.id) ? "yes" : "no", entry.id == signing ? "yes" : ""])
            }
            emit(table(rows))
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the public key set as JSON, or (--anchors) the trust anchors edges pin; no secret material.")
        @OptionGroup var home: HomeOption
        @Flag(help: "Print the trust anchors, one k4.public line each: the file edges pass as --trust-anchor.") var anchors = false
        @Flag(help: "The output is JSON already (the key set); with --anchors, print {\"anchors\": [k4.public …]}.") var json = false

        func run() throws {
            let home = self.home.resolved
            try requireExistingHome(home)
            let store = home.keyStore
            if anchors {
                guard let anchors = try store.trustAnchors() else {
                    throw CLIFailure(message: "no trust anchor in \(store.anchorsPath): `pat keys generate` or `pat publish` creates "
                                     + "an online one; `pat keys anchor generate --out FILE` an offline one")
                }
                let text = String(anchors.text.dropLast())
                if json {
                    var o = JSONObject()
                    o.set("anchors", .array(text.split(separator: "\n").map { .string(String($0)) }))
                    emit(JSONValue.object(o).description)
                } else {
                    emit(text)
                }
                return
            }
            let set = try store.keySet()
            guard !set.isEmpty else { throw CLIFailure(message: "no keys to export: run `pat keys generate` first", code: "not_found") }
            emit(String(decoding: set.encoded().dropLast(), as: UTF8.self))
        }
    }
}

/// `{"kid": ID}` (and `"changed"` when given): the JSON output of the key commands.
func keyIDJSON(_ id: KeyID, changed: Bool? = nil) -> String {
    var o = JSONObject()
    o.set("kid", .string(id.rawValue))
    if let changed { o.set("changed", .bool(changed)) }
    return JSONValue.object(o).description
}

/// Shell completion of key ids: those of the home given on the command line (else $PAT_HOME,
/// else the current directory).
@Sendable func completeKeyIDs(_ words: [String], _ index: Int, _ prefix: String) -> [String] {
    var home: String?
    for (i, word) in words.enumerated() where word == "--home" && i + 1 < words.count { home = words[i + 1] }
    guard let set = try? PATHome.resolve(home).keyStore.keySet() else { return [] }
    return set.entries.map(\.id.rawValue).filter { $0.hasPrefix(prefix) }
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
        @Flag(help: "Print {\"kid\": ID} on standard output.") var json = false

        func run() throws {
            let store = home.resolved.keyStore
            let previous = try store.keySet().activeKeys.map(\.id)
            let key = try store.generate(now: try currentTime())
            emit(json ? keyIDJSON(key.id) : key.id.rawValue)
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
        @Argument(help: "The key id (k4.pid.…), as shown by `pat keys list`.", completion: .custom(completeKeyIDs), transform: parseKeyID)
        var kid: KeyID
        @Flag(help: "Print {\"kid\": ID, \"changed\": BOOL} on standard output.") var json = false

        func run() throws {
            let home = self.home.resolved
            try requireExistingHome(home)
            let store = home.keyStore
            let id = kid
            let set = try store.keySet()
            guard let entry = set.entries.first(where: { $0.id == id }) else {
                throw CLIFailure(message: "no key \(id) in \(store.directory): `pat keys list` shows the known keys", status: 2)
            }
            guard entry.status == .active else {
                emit(json ? keyIDJSON(id, changed: false) : "key \(id) is already retired; nothing changed")
                return
            }
            guard set.activeKeys.contains(where: { $0.id != id }) else {
                throw CLIFailure(message: "\(id) is the only active key; retiring it would leave nothing to sign tokens "
                                 + "and revocation lists: run `pat keys rotate` first, then retire it")
            }
            // Whether the list in HOME/published was signed by this key (verified with the set as it was).
            let signedPublishedList = (try? SecureFile.read(home.publishedRevocationsPath, maxBytes: RevocationList.defaultMaxBytes))
                .flatMap { try? RevocationList(verifying: $0, keys: KeySet(keys: set.entries.map(\.key))) }?.signer == id
            try store.retire(id)
            if json { emit(keyIDJSON(id, changed: true)) } else { emit("retired key \(id): tokens it signed stop validating once `pat publish` runs") }
            if signedPublishedList {
                printError("note: the published revocation list is signed by \(id): until `pat publish` re-signs it with an "
                           + "active key, `pat verify` here and edges that take the new key set refuse it; run `pat publish` now")
            }
            if set.newest?.id == id, let next = try store.keySet().newest {
                printError("note: new tokens and lists are now signed with \(next.id)")
            }
        }
    }
}

extension KeysCommand {
    struct Anchor: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "anchor",
            abstract: "Manage trust anchors: the keys that sign the published key set, which edges pin.",
            subcommands: [Generate.self])

        struct Generate: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Create a trust anchor and add its public key to HOME/keys/anchors.",
                discussion: """
                    Without --out the anchor is online: its secret stays in HOME/keys/anchor/ (mode 0600) and \
                    `pat publish` signs the key set with it. With --out FILE the secret is written to FILE only \
                    (a new file, mode 0600): keep it offline and sign with `pat keys sign-set --anchor-key FILE`. \
                    Edges must pin the new anchor (`pat keys export --anchors`) before they see a key set it signed. \
                    Prints the anchor's key id.
                    """)
            @OptionGroup var home: HomeOption
            @Option(help: ArgumentHelp("Write the anchor's secret key here instead of keeping it in HOME (offline anchor).", valueName: "FILE"))
            var out: String?
            @Flag(help: "Print {\"kid\": ID} on standard output.") var json = false

            func run() throws {
                let key = try home.resolved.keyStore.generateAnchor(offlinePath: out)
                emit(json ? keyIDJSON(key.id) : key.id.rawValue)
                if let out {
                    printError("note: the anchor's secret key is in \(out) only: move it offline. Sign key sets with "
                               + "`pat keys sign-set --anchor-key \(out)`; edges pin `pat keys export --anchors`")
                } else {
                    printError("note: online anchor; `pat publish` signs the key set with the newest online anchor")
                }
            }
        }
    }

    struct SignSet: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "sign-set",
            abstract: "Sign the key set with a trust anchor's secret key file and publish it (offline anchors).",
            discussion: """
                Signs HOME/keys/keyset.json with the anchor in FILE (a k4.secret PASERK, mode 0600, one of \
                HOME/keys/anchors) and writes DIR/keys.json atomically. The sequence is above the key set \
                already in DIR and at least the current Unix time. Edges refuse every token once the set is \
                past its next-update, so sign again before then (and after every `pat keys rotate` or \
                `pat keys retire`). `pat publish` keeps a set signed this way when the home has no online anchor.
                """)
        @OptionGroup var home: HomeOption
        @Option(name: .customLong("anchor-key"), help: ArgumentHelp("The anchor's secret key file.", valueName: "FILE")) var anchorKey: String
        @Option(help: ArgumentHelp("Output folder (default: HOME/published).", valueName: "DIR")) var out: String?
        @Option(name: .customLong("next-update"), parsing: .unconditional, help: ArgumentHelp("How long edges may use the set: 30d by default.", valueName: "DURATION"))
        var nextUpdate = "30d"
        @Flag(help: "Print the result as one JSON object.") var json = false

        func validate() throws {
            let span = try parseSpan(nextUpdate, option: "--next-update")
            guard span.seconds > 0, span.seconds <= 366 * 86_400 else { throw ValidationError("--next-update must be from 1s to 366d") }
        }

        func run() throws {
            let home = self.home.resolved
            let store = home.keyStore
            let directory = out ?? home.publishedDirectory
            let path = directory + "/" + Publisher.keysFileName
            let anchor = try store.anchorSecret(file: anchorKey)
            try SecureFile.createDirectory(directory, mode: 0o700)
            let signed = try FileLock(path: directory + "/.lock").withLock { () throws -> SignedKeySet in
                let previous = SecureFile.exists(path) ? try SecureFile.read(path, maxBytes: SignedKeySet.maxDocumentBytes) : nil
                let signed = try store.signKeySet(with: anchor, previous: previous, now: try currentTime(),
                                                  validity: try parseSpan(nextUpdate, option: "--next-update"))
                try SecureFile.writeAtomically(path, signed.bytes, mode: 0o644)
                return signed
            }
            if json {
                var o = JSONObject()
                o.set("sequence", .number(String(signed.sequence)))
                o.set("signer", .string("\(signed.signer)"))
                o.set("path", .string(path))
                o.set("activeKeys", .number(String(signed.keys.activeKeys.count)))
                o.set("nextUpdate", .string("\(signed.nextUpdate)"))
                emit(JSONValue.object(o).description)
                return
            }
            emit("signed key set \(signed.sequence) with trust anchor \(signed.signer) to \(path): "
                 + "\(signed.keys.activeKeys.count) active key\(signed.keys.activeKeys.count == 1 ? "" : "s"); next update due \(signed.nextUpdate)")
        }
    }
}
