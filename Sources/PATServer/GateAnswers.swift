import Hummingbird
import PATKit
import Synchronization

/// The headers `/verify` answers an accepted PAT with, built once per verified PAT rather than
/// once per request: the RFC 3339 expiry, the scope claim joined from every scope, the
/// percent-encoded subject and seven header fields cost more than the cached validation itself
/// (issue 15: gate / bare route 0.88 → 0.904 in requests/s, `scripts/load.sh`, README "Load").
///
/// Keyed by PAT id and generation, and used only for a PAT equal to the one they were built
/// for (the same verification from the validation cache, or the same claims and key), so a
/// token's answer never carries another token's claims. Holds at most `capacity` PATs (no
/// token, no secret) and forgets them all at once when full.
final class GateAnswers: Sendable {
    private struct Key: Hashable {
        let id: String
        let generation: UInt64
    }

    let capacity: Int
    private let entries = Mutex<[Key: (pat: VerifiedPAT, headers: HTTPFields)]>([:])

    init(capacity: Int = 4096) { self.capacity = capacity }

    /// The answer's headers for `pat`.
    func headers(for pat: VerifiedPAT) -> HTTPFields {
        let key = Key(id: pat.id, generation: pat.generation)
        if let held = entries.withLock({ $0[key] }), held.pat == pat { return held.headers }
        let made = GateAnswers.make(pat)
        entries.withLock { entries in
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = (pat, made)
        }
        return made
    }

    var count: Int { entries.withLock { $0.count } }

    private static func make(_ pat: VerifiedPAT) -> HTTPFields {
        // Appended, not set: the fields are new, and setting one searches the others first.
        var headers = HTTPFields()
        headers.reserveCapacity(7)
        headers.appendPAT(GateHeader.expires, pat.expiresAt.rfc3339)
        headers.appendPAT(GateHeader.subject, PercentEncoding.encode(pat.subject))
        headers.appendPAT(GateHeader.id, pat.id)
        headers.appendPAT(GateHeader.generation, String(pat.generation))
        headers.appendPAT(GateHeader.scope, pat.scopes.claim)
        if let domain = pat.domain { headers.appendPAT(GateHeader.domain, PercentEncoding.encode(domain)) }
        headers.append(HTTPFields.Element(name: .cacheControl, value: "no-store"))
        return headers
    }
}
