import PATStore

/// One change as announced to webhooks, kept in the registry's outbox: written in the same
/// transaction as the change itself (so no change is committed without its event, whichever
/// process made it), drained by the webhook dispatcher of `pat serve`, removed once every
/// endpoint had it. The payload is the exact body sent, so a delivery repeated after a
/// restart is byte for byte the same, under the same delivery id.
public struct ChangeEvent: Sendable, Equatable {
    /// Assigned by the store, increasing; 0 before the event is stored.
    public var id: Int64
    /// A random id, the same on every attempt (`X-PAT-Delivery`), for receivers to de-duplicate.
    public var delivery: String
    /// The event name, e.g. `personalAccessToken.created`.
    public var name: String
    /// The JSON body sent to endpoints.
    public var payload: [UInt8]
    public var createdAt: Timestamp

    public init(id: Int64 = 0, delivery: String, name: String, payload: [UInt8], createdAt: Timestamp) {
        self.id = id
        self.delivery = delivery
        self.name = name
        self.payload = payload
        self.createdAt = createdAt
    }

    /// Events kept at most; when the outbox is full (no dispatcher drains it), the oldest go.
    public static let outboxCapacity = 10_000
}
