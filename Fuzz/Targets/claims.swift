// Fuzz target "claims": PATClaims(json:) on untrusted message bytes.
// Invariants: parsed claims re-encode and re-parse to the same claims (stable bytes), every
// registered claim is of its type and range, and parsing accepts only what issuing accepts:
// parsed claims can be issued again and the token validates back to them.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = input(data, size)
    let claims: PATClaims
    do { claims = try PATClaims(json: bytes) } catch {
        invariant(error.code == .malformed, "claims refused as \(error.code), not malformed")
        return 0
    }
    checkClaimsRoundTrip(claims)

    // The registered claims are exactly what the JSON says.
    guard case .object(let o)? = try? JSONParser.parse(bytes, limits: JSONLimits(maxBytes: 8 * 1024, maxDepth: 8, maxMembers: 128, maxStringBytes: 4096)) else {
        fail("claims parsed but the JSON does not")
    }
    invariant(o["jti"].flatMap(\.stringValue).map { sameBytes($0, claims.id) } == true, "jti")
    invariant(o["sub"].flatMap(\.stringValue).map { sameBytes($0, claims.subject) } == true, "sub")
    invariant(o["gen"]?.integer == Int64(claims.generation), "gen")
    invariant(sameBytes(o["iat"]?.stringValue, claims.issuedAt.rfc3339), "iat")
    invariant(sameBytes(o["exp"]?.stringValue, claims.expiresAt.rfc3339), "exp")
    invariant(sameBytes(o["nbf"]?.stringValue, claims.notBefore?.rfc3339), "nbf")
    invariant(sameBytes(o["iss"]?.stringValue, claims.issuer), "iss")
    invariant(sameBytes(o["aud"]?.stringValue, claims.audience), "aud")
    invariant(sameBytes(o["dom"]?.stringValue, claims.domain), "dom")
    // par: what parses is exactly the JSON's strings, in order (so it re-encodes identically).
    if case .array(let items)? = o["par"] {
        invariant(items.count == claims.lineage.count, "par entries lost or added")
        for (item, ancestor) in zip(items, claims.lineage) {
            invariant(sameBytes(item.stringValue, ancestor.description), "par entry \(ancestor) is not its string")
        }
    } else {
        invariant(claims.lineage.isEmpty, "lineage without par")
    }
    invariant(claims.extra.count + o.keys.filter(PATClaims.isRegistered).count == o.count, "extra claims lost or added")

    // Parsing applies the issuing rules: what parses can be issued (unless the token would
    // exceed the verifiers' size limit), and validates back.
    let message = JSONWriter.encode(.object(claims.json))
    let fits = 10 + (message.count + 64 + 2) / 3 * 4 + 1 + 92 <= PASETOv4Public.defaultMaxTokenBytes
    if fits {
        let token: String
        do { token = try Issuer(key: FuzzFixture.signer).issue(claims) } catch {
            fail("claims parse but cannot be issued: \(error)")
        }
        let outcome = validateEverywhere(token)
        switch outcome {
        case .accepted(let pat):
            invariant(pat.claims == claims, "issued claims validate to different claims")
            checkAccepted(token, pat)
        case .rejected(let code):
            invariant(expectedOutcome(of: claims) == code, "rejected as \(code); the model says \(String(describing: expectedOutcome(of: claims)))")
        }
    }
    return 0
}
