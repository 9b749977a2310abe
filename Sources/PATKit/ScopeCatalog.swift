/// Which operations exist for which entity types. Used when scopes are issued, never when
/// they are verified (matching is structural). Loadable from JSON:
/// `{"entities": {"clients": ["view", "update"], "*": ["read"]}}` where `*` lists
/// operations valid on any entity type.
public struct ScopeCatalog: Sendable, Equatable {
    public let name: String
    public let entities: [String: [String]]

    public init(name: String, entities: [String: [String]]) throws(PATKitError) {
        for (entity, operations) in entities {
            guard entity == "*" || Scope.isName(entity) else { throw .invalidScope("catalog entity \"\(entity.prefix(64))\" is not a valid entity type") }
            guard !operations.isEmpty else { throw .invalidScope("catalog entity \"\(entity)\" lists no operations") }
            for op in operations where !Scope.isName(op) {
                throw .invalidScope("catalog operation \"\(op.prefix(64))\" of \"\(entity)\" is not a valid operation name")
            }
        }
        self.name = name
        self.entities = entities
    }

    /// Parses the JSON form (bounded: 256 KiB).
    public init(json: [UInt8], name: String) throws(PATKitError) {
        let value: JSONValue
        do { value = try JSONParser.parse(json, limits: JSONLimits(maxBytes: 256 * 1024, maxDepth: 4)) } catch {
            throw .invalidScope("catalog \(name) is not valid JSON: \(error)")
        }
        guard case .object(let root) = value, case .object(let table)? = root["entities"] else {
            throw .invalidScope("catalog \(name) must be {\"entities\": {\"ENTITY\": [\"OPERATION\", …]}}")
        }
        var entities: [String: [String]] = [:]
        for (entity, ops) in table.members {
            guard case .array(let items) = ops else { throw .invalidScope("catalog \(name): \"\(entity)\" must map to an array of operation names") }
            var names: [String] = []
            for item in items {
                guard let op = item.stringValue else { throw .invalidScope("catalog \(name): operations of \"\(entity)\" must be strings") }
                names.append(op)
            }
            entities[entity] = names
        }
        try self.init(name: name, entities: entities)
    }

    /// Operations valid for `entity`, in catalog order.
    public func operations(for entity: String) -> [String] {
        (entities[entity] ?? []) + (entities["*"] ?? []).filter { !(entities[entity] ?? []).contains($0) }
    }

    /// Throws unless the catalog knows `scope`'s entity type and operation; the error lists
    /// what would be valid.
    public func check(_ scope: Scope) throws(PATKitError) {
        let ops = operations(for: scope.entity)
        guard !ops.isEmpty else {
            let known = entities.keys.filter { $0 != "*" }.sorted().joined(separator: ", ")
            throw .invalidScope("unknown entity type \"\(scope.entity)\" in catalog \(name); valid entity types: \(known)")
        }
        guard ops.contains(scope.operation) else {
            throw .invalidScope("operation \"\(scope.operation)\" is not valid for \"\(scope.entity)\" in catalog \(name); valid operations: \(ops.joined(separator: ", "))")
        }
    }

    public func check(_ scopes: ScopeSet) throws(PATKitError) {
        for scope in scopes { try check(scope) }
    }

    /// The Magistrala entity tables (the default catalog).
    public static let magistrala: ScopeCatalog = {
        let table: [String: [String]] = [
            "clients": ["view", "update", "update_tags", "update_secret", "enable", "disable", "delete",
                        "set_parent_group", "remove_parent_group", "connect_to_channel", "disconnect_from_channel"],
            "channels": ["view", "update", "update_tags", "enable", "disable", "delete", "set_parent_group",
                         "remove_parent_group", "connect_client", "disconnect_client"],
            "groups": ["view", "update", "update_tags", "enable", "disable", "delete", "retrieve_group_hierarchy",
                       "add_parent_group", "remove_parent_group", "add_children_groups", "remove_children_groups",
                       "remove_all_children_groups", "list_children_groups", "set_child_client", "remove_child_client",
                       "set_child_channel", "remove_child_channel"],
            "domain": ["create", "update", "read", "enable", "disable", "list", "send_invitation", "list_invitation",
                       "list_domain_invitation", "delete_invitation", "create_clients", "list_clients",
                       "create_channels", "list_channels", "create_groups", "list_groups"],
        ]
        return ScopeCatalog(trusted: "magistrala", entities: table)
    }()

    /// Generic operations valid on any entity type.
    public static let generic = ScopeCatalog(
        trusted: "generic",
        entities: ["*": ["create", "read", "list", "update", "delete", "share", "unshare", "publish", "subscribe"]])

    /// Built-in catalogs by name.
    public static let builtIn: [String: ScopeCatalog] = ["magistrala": magistrala, "generic": generic]

    private init(trusted name: String, entities: [String: [String]]) {
        self.name = name
        self.entities = entities
    }
}
