import Hummingbird
import PATKit
import PATManagement

/// `GET /status` and `GET /healthz` of an issuer (`pat serve` with the management API):
///
/// - `/status` says what the server published and whether publishing works — the republisher's
///   `PublishStatus` under `"publishing"` (last sequence, its next-update, unpublished changes,
///   the last error, failures) and the webhook backlog under `"webhooks"`. It answers **503**
///   with the reason in `"reason"` while publishing fails (changes are recorded that verifiers
///   do not see yet), 200 otherwise: a readiness probe, and what an alert watches. Its text may
///   name files and the database host (never a password or a token): keep it inside the network,
///   as any status page;
/// - `/healthz` answers 200 while the process serves (a liveness probe).
public struct IssuerStatusRoutes: PATRouteGroup {
    public let republisher: Republisher
    public let webhooks: WebhookDispatcher?

    public init(republisher: Republisher, webhooks: WebhookDispatcher?) {
        self.republisher = republisher
        self.webhooks = webhooks
    }

    public func addRoutes(to router: Router<PATServer.Context>) {
        let routes = self
        router.get("/status") { _, _ in routes.statusResponse() }
        router.get("/healthz") { _, _ in
            IssuerStatusRoutes.json(.ok, { var o = JSONObject(); o.set("alive", .bool(true)); return o }())
        }
    }

    func statusResponse() -> Response {
        let publishing = republisher.status
        var o = JSONObject()
        o.set("ready", .bool(!publishing.isFailing))
        if publishing.isFailing {
            let since = publishing.failingSince.map { " since \($0.rfc3339)" } ?? ""
            o.set("reason", .string("publishing the revocation list fails\(since): \(publishing.unpublishedChanges) change(s) "
                                    + "are recorded that verifiers do not see yet; retrying with backoff"))
        }
        o.set("publishing", .object(publishing.json))
        if let webhooks {
            var w = JSONObject()
            w.set("endpoints", .number(String(webhooks.configuration.endpoints.count)))
            w.set("queuedDeliveries", .number(String(webhooks.pending.reduce(0, +))))
            w.set("outstandingEvents", .number(String(webhooks.outstandingEvents)))
            w.set("settledDeliveries", .number(String(webhooks.settledCount)))
            o.set("webhooks", .object(w))
        } else {
            o.set("webhooks", .null)
        }
        return IssuerStatusRoutes.json(publishing.isFailing ? .serviceUnavailable : .ok, o,
                                       retryAfter: publishing.isFailing ? "5" : nil)
    }

    static func json(_ status: HTTPResponse.Status, _ object: JSONObject, retryAfter: String? = nil) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.cacheControl] = "no-store"
        if let retryAfter { headers[.retryAfter] = retryAfter }
        return Response(status: status, headers: headers,
                        body: .init(byteBuffer: ByteBuffer(bytes: JSONWriter.encode(.object(object)) + [0x0A])))
    }
}
