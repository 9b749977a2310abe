import ArgumentParser
import Logging
import PATKit
import PATManagement
#if Server
import PATServer
#endif
import PATStore

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the published key set and revocation list and the PAT management API over HTTP, or (--verify-only) a /verify gate for proxies.",
        discussion: """
            Distribution (default): GET /.well-known/pat/keys and GET /.well-known/pat/revocations serve \
            HOME/published/keys.json and HOME/published/revocations.bin (written by `pat publish`), re-read whenever \
            they change, with ETag / If-None-Match (304), gzip, and Cache-Control up to the list's next-update. \
            Everything served is public and signed; no authentication.

            Gate (--verify-only): GET /verify checks `Authorization: Bearer <PAT>`, the optional X-PAT-Require-Scope \
            (scopes that must be granted) and X-PAT-Domain headers, and answers 204 (with X-PAT-Subject, X-PAT-Id, \
            X-PAT-Scope), 401, 403 or 503, for nginx `auth_request` and similar. Keys and list come from \
            HOME/published (default) or from --keys-url and --revocations-url, refreshed every --refresh-interval; \
            the key set must be signed by a trust anchor of --trust-anchor FILE (default: HOME/keys/anchors). \
            GET /status tells what the gate holds and answers 503 with the reason while it refuses every \
            token (a readiness probe); GET /healthz answers 200 while the process serves.

            The list answers ?since=SEQ with signed deltas from list SEQ and ?since=SEQ&wait=SECONDS as a long \
            poll (answered the moment a newer list exists, else 304 after at most 60 s); every answer carries \
            X-PAT-Sequence. The gate long-polls its issuer (--long-poll 55s; 0 polls every --refresh-interval), \
            applies the deltas after verifying them, and with --relay serves the same endpoints from what it \
            verified, so relays fan one issuer out to many edges.

            Every mode bounds its clients: --max-connections (default 512, and at most the open-file limit \
            minus 64, raised to its hard limit at start; beyond it a connection is answered 503; waiting long \
            polls count), --header-timeout (10s to receive a request head after connecting or after the previous \
            response) and --idle-timeout (30s).

            Management API (default mode, when HOME/keys has a signing key; --no-management turns it off): \
            /v3/personal-access-tokens creates, lists, shows, re-scopes, revokes, regenerates and deletes PATs \
            recorded in the registry (HOME/pat.db, or --database / $PAT_DATABASE_URL: a postgres:// URL lets several \
            pat serve nodes share one PostgreSQL database), authenticated by a PAT carrying pats:* scopes (pats:create, pats:list, \
            pats:read, pats:update, pats:revoke, pats:regenerate, pats:delete; pats:admin for every owner). \
            Bootstrap: `pat create --owner admin --name bootstrap --scope pats:admin --catalog management \
            --expires-in 30d`. The server republishes HOME/published after every change and every half \
            --next-update; a failed publish is retried with backoff (1s doubling up to 60s) until one succeeds, \
            and GET /status shows unpublished changes and the last error (503 while publishing fails). \
            --webhook URL=SECRETFILE (repeatable; each endpoint its own secret file, mode 0600) sends \
            personalAccessToken.* events signed with HMAC-SHA-256 over the time and the body \
            (X-PAT-Signature: t=<unix seconds>,v1=<hex>); credentials in a URL are sent as Basic authentication \
            (https, or http to loopback, only), and logs show URLs without credentials and query. The older \
            --webhook URL --webhook-secret-file FILE still works for exactly one endpoint. With several nodes each \
            event is delivered by one node (claimed for --webhook-claim-lease, renewed while delivering). \
            Changes made by the CLI or by other nodes are published (and their events delivered) as soon as the \
            registry announces them. When the registry's database is unavailable the API answers 503 with Retry-After.

            Token hygiene (management): --scanner-key KEY_ID=PEM_FILE (repeatable) opens POST \
            /v3/personal-access-tokens/leaks, GitHub's secret-scanning partner endpoint (reports signed with ECDSA P-256; \
            each live PAT reported is revoked, or with --leak-action notify only announced, as personalAccessToken.leaked). \
            POST /v3/personal-access-tokens/usage takes edges' usage reports (pats:report_usage). With --webhook, \
            personalAccessToken.expiring is sent once per PAT and --expiry-notice lead time (default 7d and 1d); \
            --notify-new-address adds personalAccessToken.usedFromNewAddress. A gate counts uses in memory and reports \
            them in the background with --report-usage URL --usage-token-file FILE (every --usage-interval, 5s).

            Logs go to standard error. SIGINT or SIGTERM stops the server gracefully.
            """)

    @OptionGroup var home: HomeOption
    @OptionGroup var database: DatabaseOption
    @Option(help: ArgumentHelp("Address to listen on.", valueName: "HOST:PORT")) var listen = "127.0.0.1:8080"
    @Flag(name: .customLong("verify-only"), help: "Serve only the /verify gate for proxies (no distribution).") var verifyOnly = false
    @Option(name: .customLong("keys-url"), help: "Gate: URL of the published key set (default: HOME/published/keys.json).") var keysURL: String?
    @Option(name: .customLong("revocations-url"), help: "Gate: URL of the revocation list (default: HOME/published/revocations.bin).")
    var revocationsURL: String?
    @Option(name: .customLong("refresh-interval"), help: "Gate and management API: how often to re-read keys and list, e.g. 5s, 1m.")
    var refreshInterval = "5s"
    @Option(name: .customLong("long-poll"),
            help: ArgumentHelp("Gate: how long the issuer may hold each request for the next list (a long poll), e.g. 55s; "
                               + "0 polls every --refresh-interval instead.", valueName: "DURATION"))
    var longPoll = "55s"
    @Flag(name: .customLong("relay"),
          help: "Gate: also serve /.well-known/pat/keys and /.well-known/pat/revocations (deltas, long polls) from what it verified.")
    var relay = false
    @Option(name: .customLong("cache-dir"), help: "Gate: keep the last good keys and list here across restarts.") var cacheDirectory: String?
    @Option(name: .customLong("trust-anchor"),
            help: ArgumentHelp("Gate: trust anchors, one k4.public line each (the issuer's `pat keys export --anchors`); "
                               + "the key set must be signed by one (default: HOME/keys/anchors).", valueName: "FILE"))
    var trustAnchor: String?
    @Option(name: .customLong("max-connections"), help: "Connections served at once; more are answered 503 (default 512).")
    var maxConnections: Int?
    @Option(name: .customLong("header-timeout"), help: "Time to receive a request head after connecting or the previous response (default 10s).")
    var headerTimeout: String?
    @Option(name: .customLong("idle-timeout"), help: "Close a connection after this long without reading a request part (default 30s).")
    var idleTimeout: String?
    @Option(help: "Gate: the domain tokens must act in when the request names none (X-PAT-Domain).") var domain: String?
    @Option(name: .customLong("stale-grace"), help: "Gate: how long past its next-update a list still counts as fresh, e.g. 10m.")
    var staleGrace: String?
    @Flag(name: .customLong("accept-stale"), help: "Gate: keep accepting tokens on a stale list (default: refuse them).") var acceptStale = false
    @Option(help: "Gate: clock-skew leeway in seconds.") var leeway: Int64 = 60
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.") var logLevel = "info"
    @Flag(name: .customLong("no-management"), help: "Serve distribution only, without the management API.") var noManagement = false
    @Option(help: "Management: scope catalog for issued PATs (magistrala, generic or a JSON file; `pats` is always added).")
    var catalog: String?
    @Option(name: .customLong("max-lifetime"), help: "Management: the longest lifetime a PAT may be issued with (default 1y).")
    var maxLifetime: String?
    @Option(name: .customLong("default-lifetime"), help: "Management: lifetime when a request gives no expiresAt or duration (default 30d).")
    var defaultLifetime: String?
    @Option(name: .customLong("next-update"), help: "Management: next-update of published lists (default 1h); republished at half of it.")
    var nextUpdate: String?
    @Option(name: .customLong("rate-limit"), help: "Management: requests per minute per caller (sub), 0 for no limit (default 120).")
    var rateLimit: Int?
    @Option(name: .customLong("rate-burst"), help: "Management: requests a caller may make at once (default 30).") var rateBurst: Int?
    @Option(name: .customLong("webhook"),
            help: ArgumentHelp("Management: send PAT events to this http(s) URL, signed with the HMAC-SHA-256 key in SECRETFILE "
                               + "(mode 0600; one per endpoint); repeatable. URL and file are split at the last `=`.",
                               valueName: "URL=SECRETFILE"))
    var webhooks: [String] = []
    @Option(name: .customLong("webhook-secret-file"),
            help: ArgumentHelp("Management: the older form, for exactly one --webhook URL: its HMAC-SHA-256 key (mode 0600).", valueName: "FILE"))
    var webhookSecretFile: String?
    @Option(name: .customLong("webhook-timeout"), help: "Management: deadline of one webhook attempt (default 10s).") var webhookTimeout: String?
    @Option(name: .customLong("webhook-attempts"), help: "Management: attempts per webhook delivery, with exponential backoff (default 6).")
    var webhookAttempts: Int?
    @Option(name: .customLong("webhook-claim-lease"),
            help: "Management: how long another node waits before delivering the webhook events of a node that died (default 60s).")
    var webhookClaimLease: String?
    @Option(name: .customLong("expiry-notice"),
            help: ArgumentHelp("Management: send personalAccessToken.expiring this long before a PAT expires; repeatable "
                               + "(default 7d and 1d; off for none). Needs --webhook.", valueName: "DURATION"))
    var expiryNotices: [String] = []
    @Flag(name: .customLong("notify-new-address"),
          help: "Management: send personalAccessToken.usedFromNewAddress when an edge reports a PAT used from a new client address.")
    var notifyNewAddress = false
    @Option(name: .customLong("scanner-key"),
            help: ArgumentHelp("Management: accept secret-scanning reports (POST /v3/personal-access-tokens/leaks) signed with this "
                               + "ECDSA P-256 public key; repeatable.", valueName: "KEY_ID=PEM_FILE"))
    var scannerKeys: [String] = []
    @Option(name: .customLong("leak-action"), help: "Management: what a scanner's report of a live PAT does: revoke (default) or notify.")
    var leakAction: String?
    @Option(name: .customLong("report-usage"),
            help: ArgumentHelp("Gate: report the use of PATs to this issuer endpoint (…/v3/personal-access-tokens/usage).", valueName: "URL"))
    var reportUsage: String?
    @Option(name: .customLong("usage-token-file"),
            help: ArgumentHelp("Gate: the PAT (scope pats:report_usage) usage reports are sent with (mode 0600).", valueName: "FILE"))
    var usageTokenFile: String?
    @Option(name: .customLong("usage-interval"), help: "Gate: how often usage is reported (default 5s).") var usageInterval: String?

    /// Whether any management option was given.
    var managementOptionsGiven: Bool {
        catalog != nil || maxLifetime != nil || defaultLifetime != nil || nextUpdate != nil || rateLimit != nil || rateBurst != nil
            || !webhooks.isEmpty || webhookSecretFile != nil || webhookTimeout != nil || webhookAttempts != nil
            || webhookClaimLease != nil || database.database != nil || !expiryNotices.isEmpty || notifyNewAddress
            || !scannerKeys.isEmpty || leakAction != nil
    }

    /// The expiry notices' lead times; empty for none.
    func expiryLeadTimes() throws -> [TimeSpan] {
        if expiryNotices.isEmpty { return PATManagement.defaultExpiryLeadTimes }
        if expiryNotices == ["off"] { return [] }
        return try expiryNotices.map { text in
            do { return try TimeSpan(parsing: text) } catch { throw ValidationError("--expiry-notice: \(error) (or off)") }
        }
    }

    func validate() throws {
        #if Server // else run() says what is missing (a CLIFailure thrown here would reach the user wrapped)
        _ = try listenAddress()
        if (keysURL == nil) != (revocationsURL == nil) {
            throw ValidationError("--keys-url and --revocations-url go together")
        }
        if !verifyOnly, keysURL != nil || cacheDirectory != nil || staleGrace != nil || acceptStale || domain != nil || trustAnchor != nil
            || reportUsage != nil || usageTokenFile != nil || usageInterval != nil || relay || longPoll != "55s" {
            throw ValidationError("--keys-url, --revocations-url, --cache-dir, --trust-anchor, --domain, --stale-grace, --accept-stale, "
                                  + "--report-usage, --usage-token-file, --usage-interval, --long-poll and --relay apply to --verify-only")
        }
        if (reportUsage == nil) != (usageTokenFile == nil) {
            throw ValidationError("--report-usage URL and --usage-token-file FILE go together")
        }
        if usageInterval != nil, reportUsage == nil { throw ValidationError("--usage-interval needs --report-usage URL") }
        if let reportUsage {
            let lower = reportUsage.lowercased()
            guard lower.hasPrefix("http://") || lower.hasPrefix("https://") else {
                throw ValidationError("--report-usage must be an http(s) URL, e.g. https://issuer.example/v3/personal-access-tokens/usage")
            }
        }
        if let leakAction, LeakAction(rawValue: leakAction) == nil { throw ValidationError("--leak-action must be revoke or notify") }
        if leakAction != nil, scannerKeys.isEmpty { throw ValidationError("--leak-action needs --scanner-key KEY_ID=PEM_FILE") }
        if !expiryNotices.isEmpty {
            if webhooks.isEmpty { throw ValidationError("--expiry-notice needs --webhook URL (the notices are webhook events)") }
            if expiryNotices.contains("off"), expiryNotices.count > 1 { throw ValidationError("--expiry-notice off stands alone") }
            _ = try expiryLeadTimes()
        }
        if let span = try longPollSpan(), span.seconds > 60 {
            throw ValidationError("--long-poll must be at most 60s (issuers hold a request at most 60 s)")
        }
        if let maxConnections, !(1...1_000_000).contains(maxConnections) {
            throw ValidationError("--max-connections must be from 1 to 1000000")
        }
        for (name, value) in [("--header-timeout", headerTimeout), ("--idle-timeout", idleTimeout)] {
            if let value, (try? TimeSpan(parsing: value))?.seconds ?? 0 <= 0 {
                throw ValidationError("\(name) must be a positive duration, e.g. 10s")
            }
        }
        if verifyOnly || noManagement, managementOptionsGiven {
            throw ValidationError("--database, --catalog, --max-lifetime, --default-lifetime, --next-update, --rate-limit, "
                                  + "--rate-burst, --webhook*, --expiry-notice, --notify-new-address, --scanner-key and --leak-action "
                                  + "configure the management API: not with --verify-only or --no-management")
        }
        if webhooks.isEmpty, webhookSecretFile != nil || webhookTimeout != nil || webhookAttempts != nil || webhookClaimLease != nil {
            throw ValidationError("--webhook-secret-file, --webhook-timeout, --webhook-attempts and --webhook-claim-lease need --webhook URL=SECRETFILE")
        }
        for (url, _) in try webhookEndpoints() {
            do { try WebhookEndpoint.check(url) } catch { throw ValidationError("--webhook: \(error)") }
        }
        if let rateLimit, rateLimit < 0 { throw ValidationError("--rate-limit must be 0 (off) or more") }
        if let rateBurst, rateBurst < 1 { throw ValidationError("--rate-burst must be 1 or more") }
        if let webhookAttempts, !(1...100).contains(webhookAttempts) {
            throw ValidationError("--webhook-attempts must be from 1 to 100")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        // Each duration named by its option (the message says which one was wrong).
        for (option, span) in [("--refresh-interval", refreshInterval), ("--stale-grace", staleGrace), ("--max-lifetime", maxLifetime),
                               ("--default-lifetime", defaultLifetime), ("--next-update", nextUpdate),
                               ("--webhook-timeout", webhookTimeout), ("--webhook-claim-lease", webhookClaimLease),
                               ("--usage-interval", usageInterval)] {
            if let span { _ = try parseSpan(span, option: option) }
        }
        #endif
    }

    /// The `--webhook` endpoints with their secret files: `URL=SECRETFILE` each, split at the last
    /// `=` (a URL's query may hold `=`; a secret file's path may not). With the older
    /// `--webhook-secret-file FILE`, the one `--webhook` is a plain URL; several endpoints would
    /// share that secret — each receiver could forge events to the others — so they are refused.
    func webhookEndpoints() throws -> [(url: String, secretFile: String)] {
        if let webhookSecretFile {
            guard webhooks.count == 1, let url = webhooks.first else {
                throw ValidationError("--webhook-secret-file would give \(webhooks.count) endpoints one secret, and each receiver "
                                      + "could forge events to the others: give each endpoint its own, --webhook URL=SECRETFILE")
            }
            return [(url, webhookSecretFile)]
        }
        return try webhooks.map { value in
            guard let split = value.lastIndex(of: "="), value.index(after: split) != value.endIndex,
                  value[..<split].contains("://") else {
                throw ValidationError("--webhook takes URL=SECRETFILE (the endpoint, then a file holding its own HMAC key, mode 0600; "
                                      + "e.g. --webhook https://hooks.example/pat=/etc/pat/hook.key)")
            }
            return (String(value[..<split]), String(value[value.index(after: split)...]))
        }
    }

    /// `--long-poll`: nil for 0 (polling).
    func longPollSpan() throws -> TimeSpan? {
        if longPoll == "0" || longPoll == "0s" { return nil }
        do { return try TimeSpan(parsing: longPoll) } catch {
            throw ValidationError("--long-poll must be 0 (off) or a duration such as 55s")
        }
    }

    func listenAddress() throws -> (host: String, port: Int) {
        guard let colon = listen.lastIndex(of: ":") else {
            throw ValidationError("--listen must be HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080")
        }
        var host = String(listen[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("--listen must be HOST:PORT with a port from 0 to 65535, e.g. 127.0.0.1:8080")
        }
        return (host, port)
    }

    func run() async throws {
        #if !Server
        throw ServerTrait.missing("pat serve")
        #else
        let (host, port) = try listenAddress()
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "patkit.serve")

        // Every long poll holds a connection: allow as many descriptors as the system lets us.
        ServerLimits.raiseOpenFileLimit()
        var configuration = PATServerConfiguration(host: host, port: port, home: home.resolved)
        if let maxConnections { configuration.limits.maxConnections = maxConnections }
        if let headerTimeout { configuration.limits.headerTimeout = .seconds(try TimeSpan(parsing: headerTimeout).seconds) }
        if let idleTimeout { configuration.limits.idleTimeout = .seconds(try TimeSpan(parsing: idleTimeout).seconds) }
        if verifyOnly {
            var policy = Validator.Policy()
            policy.leeway = leeway
            policy.staleListPolicy = acceptStale ? .accept : .reject
            if let staleGrace { policy.staleGrace = try TimeSpan(parsing: staleGrace).seconds }
            let interval = try TimeSpan(parsing: refreshInterval)
            var gate = GateConfiguration(trustAnchors: try gateAnchors(configuration.home), refreshInterval: .seconds(interval.seconds),
                                         cacheDirectory: cacheDirectory, policy: policy, domain: domain)
            gate.longPollWait = try longPollSpan().map { .seconds($0.seconds) }
            gate.relay = relay
            if let keysURL, let revocationsURL { gate.source = .urls(keys: keysURL, revocations: revocationsURL) }
            if let reportUsage, let usageTokenFile {
                var report = UsageReportConfiguration(endpoint: reportUsage, token: try UsageReportConfiguration.readToken(usageTokenFile))
                if let usageInterval { report.interval = .seconds(try TimeSpan(parsing: usageInterval).seconds) }
                gate.usageReport = report
            }
            configuration.mode = .gate(gate)
        } else if !noManagement {
            try await addManagement(to: &configuration, logger: logger)
        }

        do { try await PATServer.run(configuration, logger: logger) } catch let error as PATServerError {
            throw CLIFailure(message: "\(error) (choose another with --listen)")
        } catch {
            throw CLIFailure(message: "pat serve: \(error)")
        }
        #endif
    }
}

#if Server
extension ServeCommand {
    /// The gate's trust anchors: --trust-anchor FILE, else the home's anchors; without either the
    /// gate would trust nothing, so it does not start.
    func gateAnchors(_ home: PATHome) throws -> TrustAnchors {
        if let trustAnchor { return try TrustAnchors(contentsOfFile: trustAnchor) }
        if let anchors = try home.keyStore.trustAnchors() { return anchors }
        throw CLIFailure(message: "the gate needs trust anchors: pass --trust-anchor FILE (the issuer's "
                         + "`pat keys export --anchors`); \(home.keyStore.anchorsPath) does not exist", status: 2)
    }

    /// Mounts the management API when the home can sign (a key in HOME/keys); without one it
    /// is left out with a notice, unless management options ask for it.
    func addManagement(to configuration: inout PATServerConfiguration, logger: Logger) async throws {
        let home = configuration.home
        guard (try? home.keyStore.keySet().newest) != nil else {
            if managementOptionsGiven {
                throw CLIFailure(message: "the management API needs a signing key in \(home.keysDirectory): run `pat keys generate`")
            }
            logger.notice("management API off: no signing key in \(home.keysDirectory) (run `pat keys generate`); serving distribution only")
            return
        }
        var settings = ManagementConfiguration()
        settings.refreshInterval = .seconds(try TimeSpan(parsing: refreshInterval).seconds)
        if let maxLifetime { settings.maxLifetime = try TimeSpan(parsing: maxLifetime) }
        if let defaultLifetime { settings.defaultLifetime = try TimeSpan(parsing: defaultLifetime) }
        if let nextUpdate { settings.nextUpdateInterval = try TimeSpan(parsing: nextUpdate) }
        let perMinute = rateLimit ?? 120
        settings.rateLimit = perMinute == 0 ? nil : .perMinute(perMinute, burst: rateBurst ?? 30)
        if let catalog { settings.issuingCatalog = try home.managementCatalog(base: home.catalog(named: catalog)) }
        if !webhooks.isEmpty {
            var endpoints: [WebhookEndpoint] = []
            for (url, secretFile) in try webhookEndpoints() {
                endpoints.append(try WebhookEndpoint(url: url, secret: try WebhookConfiguration.readSecret(secretFile)))
            }
            if webhookSecretFile != nil {
                logger.notice("--webhook-secret-file is the older form, for one endpoint; with several, give each its own: --webhook URL=SECRETFILE")
            }
            var hooks = try WebhookConfiguration(endpoints: endpoints)
            if let webhookTimeout { hooks.timeout = .seconds(try TimeSpan(parsing: webhookTimeout).seconds) }
            if let webhookAttempts { hooks.maxAttempts = webhookAttempts }
            if let webhookClaimLease { hooks.claimLease = .seconds(try TimeSpan(parsing: webhookClaimLease).seconds) }
            settings.webhooks = hooks
        }
        settings.expiryLeadTimes = try expiryLeadTimes()
        settings.notifyNewAddresses = notifyNewAddress
        if !scannerKeys.isEmpty {
            var keys: [ScannerKey] = []
            for option in scannerKeys { keys.append(try ScannerKey(option: option)) }
            settings.secretScanning = SecretScanningConfiguration(keys: keys, action: LeakAction(rawValue: leakAction ?? "revoke") ?? .revoke)
        }
        let location = try database.location(home)
        let store = try await database.open(home)
        let management = try ManagementServer(home: home, configuration: settings, store: store, logger: logger)
        management.install(into: &configuration)
        logger.info("management API on \(ManagementRoutes.basePath)", metadata: [
            "webhooks": "\(webhooks.count)", "rate_limit_per_minute": "\(perMinute)", "registry": "\(location)",
            "scanner_keys": "\(scannerKeys.count)", "expiry_notices": "\(webhooks.isEmpty ? "off" : settings.expiryLeadTimes.map { formatDuration($0.seconds) }.joined(separator: ","))",
        ])
    }
}
#endif
