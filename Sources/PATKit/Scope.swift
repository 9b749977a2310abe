/// One permission in the Magistrala model: entity type × operation × entity id.
/// String form `ENTITY:OPERATION[:ID]`; an omitted ID or `*` means any entity of that type.
public struct Scope: Sendable, Hashable, CustomStringConvertible {
    public let entity: String
    public let operation: String
    /// One entity id, or nil for any (`*`).
    public let id: String?

    public static let maxLength = 256

    public init(entity: String, operation: String, id: String? = nil) throws(PATKitError) {
        guard Scope.isName(entity) else {
            throw .invalidScope("entity type \"\(entity.prefix(64))\" must be 1–64 of a–z, 0–9, '_' or '-'")
        }
        guard Scope.isName(operation) else {
            throw .invalidScope("operation \"\(operation.prefix(64))\" must be 1–64 of a–z, 0–9, '_' or '-'")
        }
        if let id, id != "*", !Scope.isEntityID(id) {
            throw .invalidScope("entity id \"\(id.prefix(64))\" must be \"*\" or 1–128 of A–Z, a–z, 0–9, '.', '_', '~' or '-'")
        }
        self.entity = entity
        self.operation = operation
        self.id = id == "*" ? nil : id
    }

    /// Parses `ENTITY:OPERATION[:ID]`.
    public init(parsing text: some StringProtocol) throws(PATKitError) {
        var copy = String(text)
        let result = copy.withUTF8 { bytes in
            Result { () throws(PATKitError) -> Scope in try Scope(bytes: bytes) }
        }
        self = try result.get()
    }

    /// Parses one scope from UTF-8 bytes in a single pass, without intermediate strings.
    init(bytes: UnsafeBufferPointer<UInt8>) throws(PATKitError) {
        guard !bytes.isEmpty, bytes.count <= Scope.maxLength else {
            throw .invalidScope("a scope is 1–\(Scope.maxLength) characters, written ENTITY:OPERATION[:ID]")
        }
        var first = -1, second = -1
        for i in 0..<bytes.count where bytes[i] == UInt8(ascii: ":") {
            if first < 0 { first = i } else if second < 0 { second = i } else { first = -2; break }
        }
        guard first >= 0 else {
            let shown = String(decoding: UnsafeBufferPointer(rebasing: bytes.prefix(64)), as: UTF8.self)
            throw .invalidScope("\"\(shown)\" is not ENTITY:OPERATION[:ID] (e.g. clients:view:*, channels:connect_client:ch-42)")
        }
        let end2 = second >= 0 ? second : bytes.count
        let entity = UnsafeBufferPointer(rebasing: bytes[0..<first])
        let operation = UnsafeBufferPointer(rebasing: bytes[(first + 1)..<end2])
        guard Scope.isName(entity) else {
            throw .invalidScope("entity type \"\(String(decoding: entity.prefix(64), as: UTF8.self))\" must be 1–64 of a–z, 0–9, '_' or '-'")
        }
        guard Scope.isName(operation) else {
            throw .invalidScope("operation \"\(String(decoding: operation.prefix(64), as: UTF8.self))\" must be 1–64 of a–z, 0–9, '_' or '-'")
        }
        var id: String? = nil
        if second >= 0 {
            let idBytes = UnsafeBufferPointer(rebasing: bytes[(second + 1)...])
            if !(idBytes.count == 1 && idBytes[0] == UInt8(ascii: "*")) {
                guard Scope.isEntityID(idBytes) else {
                    throw .invalidScope("entity id \"\(String(decoding: idBytes.prefix(64), as: UTF8.self))\" must be \"*\" or 1–128 of A–Z, a–z, 0–9, '.', '_', '~' or '-'")
                }
                id = String(decoding: idBytes, as: UTF8.self)
            }
        }
        self.entity = String(decoding: entity, as: UTF8.self)
        self.operation = String(decoding: operation, as: UTF8.self)
        self.id = id
    }

    /// True when this scope grants `operation` on the entity `id` of type `entity`.
    /// Matching is exact on entity type and operation; a wildcard id matches any id.
    public func allows(entity: String, operation: String, id: String?) -> Bool {
        guard self.entity == entity, self.operation == operation else { return false }
        guard let own = self.id else { return true }
        return own == id
    }

    /// True when everything `other` grants, this grants too.
    public func covers(_ other: Scope) -> Bool { allows(entity: other.entity, operation: other.operation, id: other.id) }

    public var description: String { "\(entity):\(operation):\(id ?? "*")" }

    static func isName(_ s: String) -> Bool { isName(s.utf8) }

    static func isName<C: Collection>(_ u: C) -> Bool where C.Element == UInt8 {
        !u.isEmpty && u.count <= 64 && u.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F || $0 == 0x2D }
    }

    static func isEntityID(_ s: String) -> Bool { isEntityID(s.utf8) }

    static func isEntityID<C: Collection>(_ u: C) -> Bool where C.Element == UInt8 {
        !u.isEmpty && u.count <= 128 && u.allSatisfy {
            ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39)
                || $0 == 0x5F || $0 == 0x2D || $0 == 0x2E || $0 == 0x7E
        }
    }
}

/// The scopes of one PAT, in issue order, without duplicates. Carried in the `scope`
/// claim as one space-separated string (the OAuth convention).
public struct ScopeSet: Sendable, Hashable, CustomStringConvertible, Sequence {
    public private(set) var scopes: [Scope]

    public static let maxCount = 256

    public init(_ scopes: [Scope] = []) {
        if scopes.count <= 16 {
            // Keep the array as it is unless it holds a duplicate (the usual case: none).
            let hasDuplicate = scopes.indices.contains { i in scopes[..<i].contains(scopes[i]) }
            guard hasDuplicate else { self.scopes = scopes; return }
            var unique: [Scope] = []
            unique.reserveCapacity(scopes.count)
            for scope in scopes where !unique.contains(scope) { unique.append(scope) }
            self.scopes = unique
        } else {
            var seen = Set<Scope>()
            self.scopes = scopes.filter { seen.insert($0).inserted }
        }
    }

    /// Parses strings such as `["clients:view", "channels:publish:ch-42"]`.
    public init(parsing list: [String]) throws(PATKitError) {
        guard list.count <= ScopeSet.maxCount else { throw .invalidScope("more than \(ScopeSet.maxCount) scopes") }
        var parsed: [Scope] = []
        for item in list { parsed.append(try Scope(parsing: item)) }
        self.init(parsed)
    }

    /// Parses the `scope` claim: scopes separated by single spaces.
    public init(claim: String) throws(PATKitError) {
        var text = claim
        let result = text.withUTF8 { bytes in
            Result { () throws(PATKitError) -> ScopeSet in try ScopeSet(claimBytes: bytes) }
        }
        self = try result.get()
    }

    /// The same over the claim's UTF-8 bytes, in one pass.
    init(claimBytes bytes: UnsafeBufferPointer<UInt8>) throws(PATKitError) {
        if bytes.isEmpty { self.init(); return }
        var parsed: [Scope] = []
        parsed.reserveCapacity(Swift.min(ScopeSet.maxCount, bytes.reduce(1) { $1 == UInt8(ascii: " ") ? $0 + 1 : $0 }))
        var start = 0
        for i in 0...bytes.count where i == bytes.count || bytes[i] == UInt8(ascii: " ") {
            guard i > start else { throw .invalidScope("scopes must be separated by single spaces") }
            guard parsed.count < ScopeSet.maxCount else { throw .invalidScope("more than \(ScopeSet.maxCount) scopes") }
            parsed.append(try Scope(bytes: UnsafeBufferPointer(rebasing: bytes[start..<i])))
            start = i + 1
        }
        self.init(parsed)
    }

    /// The `scope` claim form.
    public var claim: String { scopes.map(\.description).joined(separator: " ") }
    public var description: String { claim }
    public var count: Int { scopes.count }
    public var isEmpty: Bool { scopes.isEmpty }
    public func makeIterator() -> IndexingIterator<[Scope]> { scopes.makeIterator() }

    public func allows(entity: String, operation: String, id: String?) -> Bool {
        scopes.contains { $0.allows(entity: entity, operation: operation, id: id) }
    }

    public func allows(_ required: Scope) -> Bool { scopes.contains { $0.covers(required) } }

    public func adding(_ more: [Scope]) -> ScopeSet { ScopeSet(scopes + more) }
    public func removing(_ gone: [Scope]) -> ScopeSet { ScopeSet(scopes.filter { !gone.contains($0) }) }
}
