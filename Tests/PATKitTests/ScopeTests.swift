import Testing
@testable import PATKit

@Suite("Scopes and catalogs")
struct ScopeTests {
    @Test("parse ENTITY:OPERATION[:ID]", arguments: [
        ("channels:publish:ch-42", "channels", "publish", "ch-42"),
        ("clients:view:*", "clients", "view", nil),
        ("domain:create_clients", "domain", "create_clients", nil),
        ("groups:view:A.b_c~d-9", "groups", "view", "A.b_c~d-9"),
    ] as [(String, String, String, String?)])
    func parse(_ text: String, _ entity: String, _ operation: String, _ id: String?) throws {
        let scope = try Scope(parsing: text)
        #expect(scope.entity == entity)
        #expect(scope.operation == operation)
        #expect(scope.id == id)
        #expect(scope.description == "\(entity):\(operation):\(id ?? "*")")
        #expect(try Scope(parsing: scope.description) == scope)
    }

    @Test("`ENTITY:OP` and `ENTITY:OP:*` are the same scope")
    func wildcardForms() throws {
        #expect(try Scope(parsing: "clients:view") == Scope(parsing: "clients:view:*"))
        #expect(try Scope(entity: "clients", operation: "view", id: "*") == Scope(entity: "clients", operation: "view"))
    }

    @Test("invalid grammar is rejected", arguments: [
        "", "clients", "clients:", ":view", "clients::x", "clients:view:", "clients:view:a:b", "Clients:view",
        "clients:View", "clients:vi ew", "clients:view:a b", "clients:view:a/b", "clients:view:é", "clients :view",
        "cl*ents:view", "clients:*", "*:view", "clients:view:**",
        String(repeating: "e", count: 65) + ":view",
        "clients:" + String(repeating: "o", count: 65),
        "clients:view:" + String(repeating: "i", count: 129),
    ])
    func invalid(_ text: String) {
        #expect(patError { try Scope(parsing: text) }?.isInvalidScope == true, "\(text)")
    }

    @Test("boundary lengths are accepted")
    func boundaryLengths() throws {
        let text = String(repeating: "e", count: 64) + ":" + String(repeating: "o", count: 64) + ":" + String(repeating: "i", count: 126)
        #expect(text.utf8.count == 256)
        #expect(try Scope(parsing: text).id?.count == 126)
        #expect(patError { try Scope(parsing: text + "i") }?.isInvalidScope == true) // 257 characters
    }

    @Test("wildcard matches any id; a specific id only itself")
    func matching() throws {
        let any = try Scope(parsing: "clients:view:*")
        #expect(any.allows(entity: "clients", operation: "view", id: "c-1"))
        #expect(any.allows(entity: "clients", operation: "view", id: nil))
        #expect(any.allows(entity: "clients", operation: "view", id: "anything.else"))

        let one = try Scope(parsing: "channels:publish:ch-42")
        #expect(one.allows(entity: "channels", operation: "publish", id: "ch-42"))
        #expect(!one.allows(entity: "channels", operation: "publish", id: "ch-43"))
        #expect(!one.allows(entity: "channels", operation: "publish", id: "ch-4"))
        #expect(!one.allows(entity: "channels", operation: "publish", id: nil))
        #expect(!one.allows(entity: "channels", operation: "publish", id: "CH-42"))

        #expect(any.covers(try Scope(parsing: "clients:view:c-9")))
        #expect(!one.covers(try Scope(parsing: "channels:publish:*")))
    }

    @Test("another operation or entity type never matches", arguments: [
        ("clients", "update", "c-1"), ("channels", "view", "c-1"), ("client", "view", "c-1"),
        ("clients", "views", "c-1"), ("Clients", "view", "c-1"), ("clients", "*", "c-1"), ("*", "view", "c-1"),
    ])
    func noCrossMatch(_ entity: String, _ operation: String, _ id: String) throws {
        let scope = try Scope(parsing: "clients:view:*")
        #expect(!scope.allows(entity: entity, operation: operation, id: id))
        #expect(!ScopeSet([scope]).allows(entity: entity, operation: operation, id: id))
    }

    @Test("ScopeSet claim round-trip, order and duplicates")
    func scopeSetClaim() throws {
        let set = try ScopeSet(parsing: ["clients:view", "channels:publish:ch-42", "clients:view:*", "domain:list"])
        #expect(set.count == 3) // clients:view and clients:view:* are the same scope
        #expect(set.claim == "clients:view:* channels:publish:ch-42 domain:list:*")
        let parsed = try ScopeSet(claim: set.claim)
        #expect(parsed == set)
        #expect(parsed.map(\.description) == set.scopes.map(\.description))
        #expect(try ScopeSet(claim: "") == ScopeSet())
        #expect(ScopeSet().claim == "")
        #expect(set.allows(try Scope(parsing: "channels:publish:ch-42")))
        #expect(!set.allows(try Scope(parsing: "channels:publish:ch-1")))

        let more = set.adding([try Scope(parsing: "groups:view"), try Scope(parsing: "domain:list")])
        #expect(more.count == 4)
        let less = more.removing([try Scope(parsing: "clients:view")])
        #expect(less.claim == "channels:publish:ch-42 domain:list:* groups:view:*")
    }

    @Test("scope claims need single spaces", arguments: [
        "clients:view  channels:view", " clients:view", "clients:view ", " ", "clients:view\tchannels:view",
        "clients:view\nchannels:view", "clients:view,channels:view",
    ])
    func claimSpacing(_ claim: String) {
        #expect(patError { try ScopeSet(claim: claim) }?.isInvalidScope == true, "\(claim.debugDescription)")
    }

    @Test("at most 256 scopes")
    func scopeCount() throws {
        let list = (0..<257).map { "clients:view:c\($0)" }
        #expect(patError { try ScopeSet(parsing: list) }?.isInvalidScope == true)
        #expect(patError { try ScopeSet(claim: list.joined(separator: " ")) }?.isInvalidScope == true)
        #expect(try ScopeSet(parsing: Array(list.prefix(256))).count == 256)
    }

    // MARK: catalogs

    @Test("the Magistrala catalog lists the valid operations when refusing one")
    func magistralaCatalog() throws {
        let catalog = ScopeCatalog.magistrala
        let error = patError { try catalog.check(try Scope(parsing: "channels:publish")) }
        #expect(error?.isInvalidScope == true)
        let message = error?.message ?? ""
        #expect(message.contains("connect_client"))
        #expect(message.contains("disconnect_client"))
        #expect(message.contains("\"publish\""))
        #expect(!message.contains("connect_to_channel")) // that one belongs to clients

        #expect(patError { try catalog.check(try Scope(parsing: "clients:view")) } == nil)
        #expect(patError { try catalog.check(try Scope(parsing: "clients:connect_to_channel:c-1")) } == nil)
        #expect(patError { try catalog.check(try Scope(parsing: "domain:create_clients")) } == nil)
        #expect(patError { try catalog.check(try ScopeSet(parsing: ["clients:view", "groups:view:g-1"])) } == nil)
        #expect(patError { try catalog.check(try ScopeSet(parsing: ["clients:view", "groups:publish"])) }?.isInvalidScope == true)

        let unknown = patError { try catalog.check(try Scope(parsing: "widgets:view")) }
        #expect(unknown?.message.contains("channels, clients, domain, groups") == true)
    }

    @Test("the generic catalog accepts its operations on any entity")
    func genericCatalog() throws {
        #expect(patError { try ScopeCatalog.generic.check(try Scope(parsing: "anything:publish")) } == nil)
        #expect(patError { try ScopeCatalog.generic.check(try Scope(parsing: "reports:read:r-1")) } == nil)
        let error = patError { try ScopeCatalog.generic.check(try Scope(parsing: "anything:launch")) }
        #expect(error?.isInvalidScope == true)
        #expect(error?.message.contains("subscribe") == true)
        #expect(ScopeCatalog.builtIn.keys.sorted() == ["generic", "magistrala"])
    }

    @Test("catalog loaded from JSON")
    func jsonCatalog() throws {
        let json = #"{"entities": {"things": ["read", "write"], "*": ["list", "read"]}}"#
        let catalog = try ScopeCatalog(json: Array(json.utf8), name: "custom")
        #expect(catalog.name == "custom")
        #expect(catalog.operations(for: "things") == ["read", "write", "list"])
        #expect(catalog.operations(for: "other") == ["list", "read"])
        #expect(patError { try catalog.check(try Scope(parsing: "things:write")) } == nil)
        #expect(patError { try catalog.check(try Scope(parsing: "things:list")) } == nil)
        #expect(patError { try catalog.check(try Scope(parsing: "other:read")) } == nil)
        let error = patError { try catalog.check(try Scope(parsing: "other:write")) }
        #expect(error?.message.contains("valid operations: list, read") == true)

        let strict = try ScopeCatalog(json: Array(#"{"entities":{"things":["read"]}}"#.utf8), name: "strict")
        #expect(patError { try strict.check(try Scope(parsing: "other:read")) }?.isInvalidScope == true)
    }

    @Test("bad catalog documents are refused", arguments: [
        "", "[]", "{}", #"{"entities":[]}"#, #"{"entities":{"things":"read"}}"#, #"{"entities":{"things":[1]}}"#,
        #"{"entities":{"things":[]}}"#, #"{"entities":{"Things":["read"]}}"#, #"{"entities":{"things":["Read"]}}"#,
        #"{"entities":{"things":["read"],"things":["write"]}}"#, #"{"entities":{"things":["read"]}} x"#,
    ])
    func badCatalogs(_ json: String) {
        #expect(patError { try ScopeCatalog(json: Array(json.utf8), name: "bad") }?.isInvalidScope == true, "\(json)")
    }
}
