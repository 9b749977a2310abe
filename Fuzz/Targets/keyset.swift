// Fuzz target "keyset": KeySet(json:) on untrusted bytes (a published keys.json).
// Invariants: an accepted key set re-encodes and re-parses equal (stable bytes), every kid is
// its key's PASERK id, ids are unique, and exactly the active keys verify.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = input(data, size)
    let set: KeySet
    do { set = try KeySet(json: bytes) } catch {
        switch error {
        case .invalidDocument, .invalidKey: break
        default: fail("key set refused with \(error)")
        }
        return 0
    }
    invariant(set.entries.count <= KeySet.maxKeys, "\(set.entries.count) keys")
    invariant(Set(set.entries.map(\.id)).count == set.entries.count, "duplicate ids")
    for entry in set.entries {
        invariant((try? PublicKey(paserk: entry.key.paserk)) == entry.key, "key does not round-trip")
        let verifier = set.verificationKey(for: entry.id)
        invariant((verifier != nil) == (entry.status == .active), "status \(entry.status) but verifies: \(verifier != nil)")
    }
    invariant(set.activeKeys.count == set.entries.filter { $0.status == .active }.count, "active keys")
    let encoded = set.encoded()
    let again: KeySet
    do { again = try KeySet(json: encoded) } catch { fail("re-encoded key set does not parse: \(error)") }
    invariant(again == set, "key set changes in a round-trip")
    invariant(again.encoded() == encoded, "key set encoding is not stable")
    return 0
}
