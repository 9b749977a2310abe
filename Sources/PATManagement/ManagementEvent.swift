import PATKit
import PATRegistry

/// The events every change produces, recorded in the registry's outbox with the change and
/// delivered to webhook endpoints by `pat serve`.
public enum ManagementEvent: String, Sendable, CaseIterable {
    case created = "personalAccessToken.created"
    case revoked = "personalAccessToken.revoked"
    case regenerated = "personalAccessToken.regenerated"
    case scopesChanged = "personalAccessToken.scopesChanged"
    case deleted = "personalAccessToken.deleted"
    /// A live PAT was reported leaked (`pat scan --revoke`, a secret scanner): `data` is the
    /// record (or, for a token issued outside the registry, what its claims say) with `leak`:
    /// where it was found (`url`, `source`), never the token, and what was done.
    case leaked = "personalAccessToken.leaked"
    /// An edge reported a use from a client address not seen before for this PAT (off unless
    /// `ManagementPolicy.notifyNewAddresses`): `data` is the record with `address`.
    case usedFromNewAddress = "personalAccessToken.usedFromNewAddress"
    /// The PAT expires within a configured lead time (`expiryNotice` in `data`): sent once per
    /// PAT, expiry and lead time.
    case expiring = "personalAccessToken.expiring"

    /// The event's body: `{"event": …, "data": {…the PAT record, never the token…},
    /// "actor": {"type": "cli"} or {"type": "pat", "id", "generation", "subject", "admin"},
    /// "triggeredAt": …}`.
    public static func payload(_ event: ManagementEvent, data: JSONObject, actor: Principal, at time: Timestamp) -> [UInt8] {
        var o = JSONObject()
        o.set("event", .string(event.rawValue))
        o.set("data", .object(data))
        o.set("actor", .object(actor.json))
        o.set("triggeredAt", .string(time.rfc3339))
        return JSONWriter.encode(.object(o))
    }

    /// The outbox entry for this event, with a fresh delivery id.
    func change(data: JSONObject, actor: Principal, at time: Timestamp) -> ChangeEvent {
        ChangeEvent(delivery: Base64URL.encode(Digest.randomBytes(16)), name: rawValue,
                    payload: ManagementEvent.payload(self, data: data, actor: actor, at: time), createdAt: time)
    }
}
