/// The public keys a verifier trusts, by PASERK id, so keys can rotate: new tokens are
/// signed with the newest key, old tokens verify until their key is retired or removed.
///
/// JSON form (the published `keys.json`):
/// `{"keys":[{"kid":"k4.pid…","key":"k4.public…","status":"active","created":"2026-…Z"}]}`
public struct KeySet: Sendable, Equatable {
    public enum Status: String, Sendable, Equatable {
        /// Verifies tokens and lists.
        case active
        /// Published so edges learn it is gone; verifies nothing.
        case retired
    }

    public struct Entry: Sendable, Equatable {
        public let key: PublicKey
        public var status: Status
        public var created: Timestamp?
        public var id: KeyID { key.id }

        public init(key: PublicKey, status: Status = .active, created: Timestamp? = nil) {
            self.key = key
            self.status = status
            self.created = created
        }
    }

    /// Entries in order of creation, oldest first.
    public private(set) var entries: [Entry]
    private var active: [KeyID: PublicKey]

    public static let maxKeys = 256
    public static let maxDocumentBytes = 256 * 1024

    public init(_ entries: [Entry] = []) {
        var seen = Set<KeyID>()
        self.entries = entries.filter { seen.insert($0.id).inserted }
        self.active = [:]
        for entry in self.entries where entry.status == .active { active[entry.id] = entry.key }
    }

    public init(keys: [PublicKey]) { self.init(keys.map { Entry(key: $0) }) }

    /// The key with this id if it may verify (active).
    public func verificationKey(for id: KeyID) -> PublicKey? { active[id] }


    /// The newest active key: the one new tokens should be signed with.
    public var newest: PublicKey? { entries.last { $0.status == .active }?.key }
    public var activeKeys: [PublicKey] { entries.filter { $0.status == .active }.map(\.key) }
    public var isEmpty: Bool { entries.isEmpty }

    public mutating func add(_ key: PublicKey, created: Timestamp? = nil) {
        guard !entries.contains(where: { $0.id == key.id }) else { return }
        entries.append(Entry(key: key, status: .active, created: created))
        active[key.id] = key
    }

    /// Marks a key retired: it stays listed but verifies nothing.
    public mutating func retire(_ id: KeyID) throws(PATKitError) {
        guard let index = entries.firstIndex(where: { $0.id == id }) else {
            throw .invalidArgument("no key \(id) in the key set; `pat keys list` shows the known keys")
        }
        entries[index].status = .retired
        active[id] = nil
    }

    public var json: JSONObject {
        var root = JSONObject()
        root.set("keys", .array(entries.map { e in
            var o = JSONObject()
            o.set("kid", .string(e.id.rawValue))
            o.set("key", .string(e.key.paserk))
            o.set("status", .string(e.status.rawValue))
            if let created = e.created { o.set("created", .string(created.rfc3339)) }
            return .object(o)
        }))
        return root
    }

    public func encoded() -> [UInt8] { JSONWriter.encode(.object(json)) + [0x0A] }

    /// Parses the JSON form strictly; each `kid` must be the id of its `key`.
    public init(json bytes: [UInt8]) throws(PATKitError) {
        guard bytes.count <= KeySet.maxDocumentBytes else {
            throw .invalidDocument("key set of \(bytes.count) bytes exceeds \(KeySet.maxDocumentBytes) bytes")
        }
        let value: JSONValue
        do { value = try JSONParser.parse(bytes, limits: JSONLimits(maxBytes: KeySet.maxDocumentBytes, maxDepth: 4)) } catch {
            throw .invalidDocument("key set is not valid JSON: \(error)")
        }
        guard case .object(let root) = value, case .array(let items)? = root["keys"] else {
            throw .invalidDocument("key set must be {\"keys\": [...]}")
        }
        self.init(try KeySet.parseEntries(items))
    }

    /// The members of a `"keys"` array, strictly: each `kid` must be the id of its `key`.
    static func parseEntries(_ items: [JSONValue]) throws(PATKitError) -> [Entry] {
        guard items.count <= KeySet.maxKeys else { throw .invalidDocument("key set holds more than \(KeySet.maxKeys) keys") }
        var entries: [Entry] = []
        for (i, item) in items.enumerated() {
            guard case .object(let o) = item, let kid = o["kid"]?.stringValue, let paserk = o["key"]?.stringValue else {
                throw .invalidDocument("key \(i) must have string \"kid\" and \"key\"")
            }
            let key = try PublicKey(paserk: paserk)
            guard key.id.rawValue == kid else { throw .invalidDocument("key \(i): kid \(kid) is not the id of its key (\(key.id))") }
            var status = Status.active
            if let s = o["status"] {
                guard let text = s.stringValue, let parsed = Status(rawValue: text) else {
                    throw .invalidDocument("key \(i): status must be \"active\" or \"retired\"")
                }
                status = parsed
            }
            var created: Timestamp? = nil
            if let c = o["created"] {
                guard let text = c.stringValue, let t = Timestamp(rfc3339: text) else {
                    throw .invalidDocument("key \(i): created must be an RFC 3339 UTC time")
                }
                created = t
            }
            guard !entries.contains(where: { $0.id == key.id }) else { throw .invalidDocument("key \(kid) is listed twice") }
            entries.append(Entry(key: key, status: status, created: created))
        }
        return entries
    }
}

/// The footer of a PATKit token: `{"kid":"k4.pid.…"}`.
enum Footer {
    static let maxBytes = 512

    /// Returns the `kid` bytes of an untrusted footer after bounding and screening it.
    static func keyID(from footer: [UInt8]) throws(PATValidationError) -> ArraySlice<UInt8> {
        guard !footer.isEmpty else { throw .malformed("token has no footer; PATKit tokens name their key as {\"kid\":\"k4.pid…\"}") }
        guard footer.count <= maxBytes else {
            throw PATValidationError(.tooLarge, "footer of \(footer.count) bytes exceeds \(maxBytes) bytes")
        }
        if let kid = canonicalKeyID(footer) { return kid }
        if containsKeyMaterial(footer) {
            throw .malformed("footer carries key material (a PASERK key); only key ids (k4.pid) are allowed")
        }
        let value: JSONValue
        do { value = try JSONParser.parse(footer, limits: JSONLimits(maxBytes: maxBytes, maxDepth: 2, maxMembers: 8, maxStringBytes: 256)) } catch {
            throw .malformed("footer is not valid JSON: \(error)")
        }
        guard case .object(let o) = value, let kidValue = o["kid"] else { throw .malformed("footer has no \"kid\"") }
        // Escapes (e.g. "k4\u002esecret") can hide key material from the raw screen above.
        // Re-encoding writes every key and string unescaped, so the screen sees them as decoded.
        if containsKeyMaterial(JSONWriter.encode(value)) {
            throw .malformed("footer carries key material (a PASERK key); only key ids (k4.pid) are allowed")
        }
        guard case .string(let kid) = kidValue else { throw .malformed("footer \"kid\" must be a string") }
        guard kid.hasPrefix(KeyID.prefix) else { throw .malformed("footer \"kid\" must be a k4.pid key id") }
        return Array(kid.utf8)[...]
    }

    /// The kid of a footer written exactly as PATKit writes it, `{"kid":"k4.pid.<44 base64url>"}`,
    /// recognised without a JSON parse; nil for anything else (which then takes the full path).
    static func canonicalKeyID(_ footer: [UInt8]) -> ArraySlice<UInt8>? {
        let head = canonicalHead, tail: [UInt8] = [0x22, 0x7D] // "}
        guard footer.count == head.count + 51 + tail.count, footer.starts(with: head), footer.suffix(2).elementsEqual(tail) else { return nil }
        let kid = footer[head.count..<(head.count + 51)]
        guard kid.starts(with: KeyID.prefixBytes),
              kid.dropFirst(KeyID.prefixBytes.count).allSatisfy({
                  ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x5F
              }) else { return nil }
        return kid
    }

    static let canonicalHead: [UInt8] = Array(#"{"kid":""#.utf8)

    /// True when the bytes contain a PASERK key type other than an id:
    /// `kN.local`, `kN.public`, `kN.secret`, `kN.seal` (and their wrapped forms).
    static func containsKeyMaterial(_ bytes: [UInt8]) -> Bool {
        let types: [[UInt8]] = [".local", ".public", ".secret", ".seal"].map { Array($0.utf8) }
        var i = 0
        while i + 2 < bytes.count {
            if bytes[i] == UInt8(ascii: "k"), (0x31...0x39).contains(bytes[i + 1]) {
                let rest = bytes[(i + 2)...]
                if types.contains(where: { rest.starts(with: $0) }) { return true }
            }
            i += 1
        }
        return false
    }

    static func encode(_ id: KeyID) -> [UInt8] {
        var o = JSONObject()
        o.set("kid", .string(id.rawValue))
        return JSONWriter.encode(.object(o))
    }
}
