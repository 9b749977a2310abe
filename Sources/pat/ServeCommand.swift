import ArgumentParser
import Dispatch
import Logging
import PATKit
import PATServer
import PATStore
import Synchronization

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the published key set and revocation list over HTTP, or (--verify-only) a /verify gate for proxies.",
        discussion: """
            Distribution (default): GET /.well-known/pat/keys and GET /.well-known/pat/revocations serve \
            HOME/published/keys.json and HOME/published/revocations.bin (written by `pat publish`), re-read whenever \
            they change, with ETag / If-None-Match (304), gzip, and Cache-Control up to the list's next-update. \
            Everything served is public and signed; no authentication.

            Gate (--verify-only): GET /verify checks `Authorization: Bearer <PAT>`, the optional X-PAT-Require-Scope \
            (scopes that must be granted) and X-PAT-Domain headers, and answers 204 (with X-PAT-Subject, X-PAT-Id, \
            X-PAT-Scope), 401, 403 or 503, for nginx `auth_request` and similar. Keys and list come from \
            HOME/published (default) or from --keys-url and --revocations-url, refreshed every --refresh-interval; \
            GET /status tells what the gate holds and why it would refuse tokens.

            Logs go to standard error. SIGINT or SIGTERM stops the server gracefully.
            """)

    @OptionGroup var home: HomeOption
    @Option(help: ArgumentHelp("Address to listen on.", valueName: "HOST:PORT")) var listen = "127.0.0.1:8080"
    @Flag(name: .customLong("verify-only"), help: "Serve only the /verify gate for proxies (no distribution).") var verifyOnly = false
    @Option(name: .customLong("keys-url"), help: "Gate: URL of the published key set (default: HOME/published/keys.json).") var keysURL: String?
    @Option(name: .customLong("revocations-url"), help: "Gate: URL of the revocation list (default: HOME/published/revocations.bin).")
    var revocationsURL: String?
    @Option(name: .customLong("refresh-interval"), help: "Gate: how often to refresh keys and list, e.g. 5s, 1m.") var refreshInterval = "5s"
    @Option(name: .customLong("cache-dir"), help: "Gate: keep the last good keys and list here across restarts.") var cacheDirectory: String?
    @Option(help: "Gate: the domain tokens must act in when the request names none (X-PAT-Domain).") var domain: String?
    @Option(name: .customLong("stale-grace"), help: "Gate: how long past its next-update a list still counts as fresh, e.g. 10m.")
    var staleGrace: String?
    @Flag(name: .customLong("accept-stale"), help: "Gate: keep accepting tokens on a stale list (default: refuse them).") var acceptStale = false
    @Option(help: "Gate: clock-skew leeway in seconds.") var leeway: Int64 = 60
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.") var logLevel = "info"

    func validate() throws {
        _ = try listenAddress()
        if (keysURL == nil) != (revocationsURL == nil) {
            throw ArgumentParser.ValidationError("--keys-url and --revocations-url go together")
        }
        if !verifyOnly, keysURL != nil || cacheDirectory != nil || staleGrace != nil || acceptStale || domain != nil {
            throw ArgumentParser.ValidationError("--keys-url, --revocations-url, --cache-dir, --domain, --stale-grace and --accept-stale apply to --verify-only")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ArgumentParser.ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        do {
            _ = try TimeSpan(parsing: refreshInterval)
            if let staleGrace { _ = try TimeSpan(parsing: staleGrace) }
        } catch {
            throw ArgumentParser.ValidationError("\(error)")
        }
    }

    func listenAddress() throws -> (host: String, port: Int) {
        guard let colon = listen.lastIndex(of: ":") else {
            throw ArgumentParser.ValidationError("--listen must be HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080")
        }
        var host = String(listen[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw ArgumentParser.ValidationError("--listen must be HOST:PORT with a port from 0 to 65535, e.g. 127.0.0.1:8080")
        }
        return (host, port)
    }

    func run() throws {
        let (host, port) = try listenAddress()
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "patkit.serve")

        var configuration = PATServerConfiguration(host: host, port: port, home: home.resolved)
        if verifyOnly {
            var policy = Validator.Policy()
            policy.leeway = leeway
            policy.staleListPolicy = acceptStale ? .accept : .reject
            if let staleGrace { policy.staleGrace = try TimeSpan(parsing: staleGrace).seconds }
            let interval = try TimeSpan(parsing: refreshInterval)
            var gate = GateConfiguration(refreshInterval: .seconds(interval.seconds), cacheDirectory: cacheDirectory,
                                         policy: policy, domain: domain)
            if let keysURL, let revocationsURL { gate.source = .urls(keys: keysURL, revocations: revocationsURL) }
            configuration.mode = .gate(gate)
        }

        // The CLI's entry point is synchronous: run the server on the concurrency pool and wait.
        let outcome = ServeOutcome()
        let done = DispatchSemaphore(value: 0)
        let serving = configuration
        Task {
            do { try await PATServer.run(serving, logger: logger) } catch {
                let text = "\(error)"
                outcome.failure.withLock { $0 = text }
            }
            done.signal()
        }
        done.wait()
        if let failure = outcome.failure.withLock({ $0 }) {
            throw CLIFailure(message: "error: pat serve: \(failure)")
        }
    }
}

/// How the server task ended, handed back to the synchronous entry point.
final class ServeOutcome: Sendable {
    let failure = Mutex<String?>(nil)
}
