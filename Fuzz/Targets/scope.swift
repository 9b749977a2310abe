// Fuzz target "scope": Scope(parsing:), ScopeSet(claim:), ScopeSet(parsing:) and
// ScopeCatalog(json:) on untrusted text.
// Invariants: a parsed scope's string form re-parses to it and matches the checked
// initialiser; a parsed ScopeSet's claim re-parses equal, has no duplicates and at most 256
// scopes, and grants each of its scopes; splitting the claim by hand gives the same set;
// a parsed catalog only holds valid names and accepts exactly its operations.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = input(data, size)
    let text = String(decoding: bytes, as: UTF8.self)

    if let scope = try? Scope(parsing: text) {
        checkScope(scope)
        invariant(bytes.count <= Scope.maxLength, "accepted a scope of \(bytes.count) bytes")
    }

    let set = try? ScopeSet(claim: text)
    if let set {
        invariant(set.count <= ScopeSet.maxCount, "\(set.count) scopes")
        invariant(Set(set.scopes).count == set.count, "duplicates in a ScopeSet")
        let again = try? ScopeSet(claim: set.claim)
        invariant(again == set && again.map { sameBytes($0.claim, set.claim) } == true, "claim \(set.claim) does not round-trip")
        for scope in set {
            checkScope(scope)
            invariant(set.allows(scope), "a set does not grant its own scope \(scope)")
            invariant(set.allows(entity: scope.entity, operation: scope.operation, id: scope.id ?? "any-id"), "wildcard or id match")
        }
    }
    // The byte-wise split the claim parser does, done by hand on single spaces.
    if !bytes.isEmpty {
        let pieces = bytes.split(separator: 0x20, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        let byHand = pieces.count <= ScopeSet.maxCount ? try? ScopeSet(parsing: pieces) : nil
        invariant(byHand == set, "claim parser and list parser disagree: \(String(describing: set)) vs \(String(describing: byHand))")
    }

    if let catalog = try? ScopeCatalog(json: bytes, name: "fuzz") {
        for (entity, operations) in catalog.entities {
            invariant(entity == "*" || Scope.isName(entity), "catalog entity \(entity)")
            invariant(!operations.isEmpty && operations.allSatisfy(Scope.isName), "catalog operations of \(entity)")
            guard entity != "*" else { continue }
            for op in operations {
                guard let scope = try? Scope(entity: entity, operation: op) else { fail("catalog names an invalid scope") }
                invariant((try? catalog.check(scope)) != nil, "catalog refuses its own \(entity):\(op)")
            }
            let bogus = try? Scope(entity: entity, operation: "zz-not-an-operation-" + String(operations.count))
            if let bogus, !catalog.operations(for: entity).contains(bogus.operation) {
                invariant((try? catalog.check(bogus)) == nil, "catalog accepts an unknown operation")
            }
        }
        if let set { _ = try? catalog.check(set) }
    }
    return 0
}

private func checkScope(_ scope: Scope) {
    invariant(Scope.isName(scope.entity) && Scope.isName(scope.operation), "scope names \(scope)")
    if let id = scope.id { invariant(Scope.isEntityID(id), "scope id \(id)") }
    let again = try? Scope(parsing: scope.description)
    invariant(again == scope, "\(scope) does not re-parse to itself")
    invariant((try? Scope(entity: scope.entity, operation: scope.operation, id: scope.id)) == scope, "checked initialiser disagrees")
    invariant(scope.covers(scope), "a scope does not cover itself")
}
