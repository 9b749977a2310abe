import ArgumentParser
import PATKit
import PATStore

// What `pat scan` trusts: the key set whose tokens count as ours and the revocation list.
// Loaded here and only here, so that a later change (the signed key set with trust anchors,
// `--keys URL`) replaces one place.

/// Where a document comes from: a file, or (once signed key sets can be fetched and checked
/// against a trust anchor) an http(s) URL.
enum DocumentLocation: ExpressibleByArgument, Equatable {
    case file(String)
    case url(String)

    init?(argument: String) {
        guard !argument.isEmpty else { return nil }
        let lower = argument.lowercased()
        self = lower.hasPrefix("https://") || lower.hasPrefix("http://") ? .url(argument) : .file(argument)
    }
}

/// The keys and list a scan checks tokens against, with what to tell the user about them.
struct ScanTrust {
    let keys: KeySet
    let revocations: RevocationList?
    /// Where the keys came from, for messages.
    let keysOrigin: String
    /// Where the list came from, for messages; nil when no list was found.
    let revocationsOrigin: String?

    /// Loads the keys and the list. Keys: `--keys FILE`, else the home's keystore (every key
    /// the issuer made, retired ones included, as `pat verify` reads it), else the home's
    /// published `keys.json`; a signed key set must verify with the trust anchors
    /// (`--trust-anchor FILE`, else the home's). List: `--revocations FILE`, else the home's
    /// published list when present; it must verify with those keys. Every failure says what to
    /// pass instead.
    static func load(keys keysOption: DocumentLocation?, revocations listOption: DocumentLocation?, trustAnchors anchorsPath: String? = nil,
                     home: PATHome) throws -> ScanTrust {
        // A key set document: plain (the user vouches for it) or signed (checked against the anchors).
        let parseKeys = { (bytes: [UInt8]) throws(PATKitError) -> KeySet in
            guard SignedKeySet.looksSigned(bytes) else { return try KeySet(json: bytes) }
            var anchors: TrustAnchors? = nil
            if let anchorsPath { anchors = try TrustAnchors(contentsOfFile: anchorsPath) } else { anchors = try home.keyStore.trustAnchors() }
            guard let anchors else {
                throw .invalidArgument("it is a signed key set: pass --trust-anchor FILE (the issuer's `pat keys export --anchors`)")
            }
            return try SignedKeySet(verifying: bytes, anchors: anchors).keys
        }
        let keySet: KeySet
        let keysOrigin: String
        switch keysOption {
        case .url(let url):
            throw CLIFailure(message: "error: --keys \(url.prefix(200)): fetching keys over HTTP needs the signed key set, which this "
                             + "version cannot check yet; download the issuer's keys.json and pass --keys FILE", status: 2)
        case .file(let path):
            keySet = try loadDocument("--keys", path, maxBytes: SignedKeySet.maxDocumentBytes, parseKeys)
            keysOrigin = path
        case nil:
            let stored = try usable("keystore", home.keyStore.manifestPath) { () throws(PATKitError) in try home.keyStore.keySet() }
            if !stored.isEmpty {
                keySet = stored
                keysOrigin = home.keyStore.manifestPath
            } else if SecureFile.exists(home.publishedKeysPath) {
                keySet = try loadDocument("published keys", home.publishedKeysPath, maxBytes: SignedKeySet.maxDocumentBytes, parseKeys)
                keysOrigin = home.publishedKeysPath
            } else {
                throw CLIFailure(message: "error: no keys to check tokens against in \(home.path) (neither \(home.keyStore.manifestPath) "
                                 + "nor \(home.publishedKeysPath)): pass --keys FILE, the issuer's published keys.json", status: 2)
            }
        }
        guard !keySet.isEmpty else {
            throw CLIFailure(message: "error: the key set \(keysOrigin) holds no keys; every token would be foreign", status: 2)
        }

        var listPath: String?
        switch listOption {
        case .url(let url):
            throw CLIFailure(message: "error: --revocations \(url.prefix(200)): fetching the list over HTTP is not supported yet; "
                             + "download it and pass --revocations FILE", status: 2)
        case .file(let path):
            listPath = path
        case nil:
            listPath = SecureFile.exists(home.publishedRevocationsPath) ? home.publishedRevocationsPath : nil
        }
        var list: RevocationList?
        if let listPath {
            list = try loadDocument(listOption == nil ? "published revocation list" : "--revocations", listPath, maxBytes: RevocationList.defaultMaxBytes) { bytes throws(PATKitError) in
                try RevocationList(verifying: bytes, keys: keySet)
            }
        }
        return ScanTrust(keys: keySet, revocations: list, keysOrigin: keysOrigin, revocationsOrigin: listPath)
    }

    /// Reads and parses one document; a failure is a usage error (exit 2) naming the file.
    private static func loadDocument<T>(_ what: String, _ path: String, maxBytes: Int = KeySet.maxDocumentBytes,
                                        _ parse: ([UInt8]) throws(PATKitError) -> T) throws -> T {
        try usable(what, path) { () throws(PATKitError) in try parse(SecureFile.read(path, maxBytes: maxBytes)) }
    }

    /// `body`'s result; its failure becomes a usage error (exit 2, never 1: that means "live PAT found").
    private static func usable<T>(_ what: String, _ path: String, _ body: () throws(PATKitError) -> T) throws -> T {
        do {
            return try body()
        } catch .io(_, let reason) {
            throw CLIFailure(message: "error: \(what) \(path): \(reason)", status: 2)
        } catch {
            throw CLIFailure(message: "error: \(what) \(path): \(error)", status: 2)
        }
    }
}
