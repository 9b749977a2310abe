import ArgumentParser
#if Server
import PATEdge
#endif
import PATKit
import PATStore

// What `pat scan` trusts: the key set whose tokens count as ours and the revocation list.
// Loaded here and only here.

/// Where a document comes from: a file, or an http(s) URL (the issuer's distribution endpoints).
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
    /// (`--trust-anchor FILE`, else the home's). `--keys URL` fetches the issuer's signed key set
    /// and fails closed: it must be signed, verify with the trust anchors and be current (not past
    /// its next-update: a stale set may still list keys retired since). List: `--revocations
    /// FILE|URL`, else the home's published list when present; it must verify with those keys.
    /// Every failure is a usage error (exit 2) that says what to pass instead.
    static func load(keys keysOption: DocumentLocation?, revocations listOption: DocumentLocation?, trustAnchors anchorsPath: String? = nil,
                     home: PATHome, now: Timestamp = Timestamp.now()) async throws -> ScanTrust {
        let anchors = { () throws(PATKitError) -> TrustAnchors? in
            if let anchorsPath { return try TrustAnchors(contentsOfFile: anchorsPath) }
            return try home.keyStore.trustAnchors()
        }
        // A key set document: plain (the user vouches for it) or signed (checked against the anchors).
        let parseKeys = { (bytes: [UInt8]) throws(PATKitError) -> KeySet in
            guard SignedKeySet.looksSigned(bytes) else { return try KeySet(json: bytes) }
            guard let anchors = try anchors() else {
                throw .invalidArgument("it is a signed key set: pass --trust-anchor FILE (the issuer's `pat keys export --anchors`)")
            }
            return try SignedKeySet(verifying: bytes, anchors: anchors).keys
        }
        let keySet: KeySet
        let keysOrigin: String
        switch keysOption {
        case .url(let url):
            let bytes = try await fetch("--keys", url, maxBytes: SignedKeySet.maxDocumentBytes)
            keySet = try usable("--keys", url) { () throws(PATKitError) -> KeySet in
                guard SignedKeySet.looksSigned(bytes) else {
                    throw .invalidArgument("the document is not a signed key set; a key set fetched over the network is trusted only "
                                           + "when a trust anchor signed it (serve the issuer's published keys.json)")
                }
                guard let anchors = try anchors() else {
                    throw .invalidArgument("no trust anchors to check it with: pass --trust-anchor FILE (the issuer's "
                                           + "`pat keys export --anchors`)")
                }
                let signed = try SignedKeySet(verifying: bytes, anchors: anchors)
                guard !signed.isStale(at: now, grace: 0) else {
                    throw .invalidArgument("key set \(signed.sequence) was due for update at \(signed.nextUpdate.rfc3339): keys retired "
                                           + "since would still count as active; fetch a current one from the issuer")
                }
                return signed.keys
            }
            keysOrigin = url
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
                throw CLIFailure(message: "no keys to check tokens against in \(home.path) (neither \(home.keyStore.manifestPath) "
                                 + "nor \(home.publishedKeysPath)): pass --keys FILE, the issuer's published keys.json", status: 2)
            }
        }
        guard !keySet.isEmpty else {
            throw CLIFailure(message: "the key set \(keysOrigin) holds no keys; every token would be foreign", status: 2)
        }

        var listPath: String?
        var list: RevocationList?
        switch listOption {
        case .url(let url):
            let bytes = try await fetch("--revocations", url, maxBytes: RevocationList.defaultMaxBytes)
            list = try usable("--revocations", url) { () throws(PATKitError) in try RevocationList(verifying: bytes, keys: keySet) }
            return ScanTrust(keys: keySet, revocations: list, keysOrigin: keysOrigin, revocationsOrigin: url)
        case .file(let path):
            listPath = path
        case nil:
            listPath = SecureFile.exists(home.publishedRevocationsPath) ? home.publishedRevocationsPath : nil
        }
        if let listPath {
            list = try loadDocument(listOption == nil ? "published revocation list" : "--revocations", listPath, maxBytes: RevocationList.defaultMaxBytes) { bytes throws(PATKitError) in
                try RevocationList(verifying: bytes, keys: keySet)
            }
        }
        return ScanTrust(keys: keySet, revocations: list, keysOrigin: keysOrigin, revocationsOrigin: listPath)
    }

    /// GETs a document (bounded, with a deadline); any failure is a usage error (exit 2): the
    /// scan fails closed rather than judge tokens without the issuer's keys.
    private static func fetch(_ what: String, _ url: String, maxBytes: Int) async throws -> [UInt8] {
        #if !Server
        throw ServerTrait.missing("\(what) URL (fetching over http)")
        #else
        let source = HTTPDocumentSource(keysURL: url, revocationsURL: url, timeout: .seconds(30))
        do {
            switch try await source.fetch(.keys, ifNoneMatch: nil, maxBytes: maxBytes) {
            case .modified(let bytes, _): return bytes
            case .notModified: throw PATEdgeError("GET \(url): 304 without a conditional request")
            }
        } catch {
            throw CLIFailure(message: "\(what) \(url.prefix(200)): \(error); nothing was scanned", status: 2)
        }
        #endif
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
            throw CLIFailure(message: "\(what) \(path): \(reason)", status: 2)
        } catch {
            throw CLIFailure(message: "\(what) \(path): \(error)", status: 2)
        }
    }
}
