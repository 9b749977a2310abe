import Foundation
import PATKit
import PATServer
import PATStore
import PATTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A port that was free a moment ago on 127.0.0.1 (bound to port 0, read back, released).
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket() failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw TestFailure("bind() failed") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard named == 0 else { throw TestFailure("getsockname() failed") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A real nginx configuration on loopback, to be run in the foreground as the current user with
/// everything (config, pid, logs, temp files) under one temporary prefix.
struct NginxConfig: Sendable {
    let prefix: TempDir
    let port: Int
    let upstreamPort: Int

    /// `auth_request` in front of a dummy upstream: `/channels/{id}/messages` needs
    /// `channels:publish:{id}`, checked by the gate at `gatePort`.
    init(gatePort: Int) throws {
        prefix = try TempDir("patkit-nginx")
        port = try freeLoopbackPort()
        upstreamPort = try freeLoopbackPort()
        let root = prefix.path
        try FileManager.default.createDirectory(atPath: root + "/tmp", withIntermediateDirectories: true)
        var user = ""
        if geteuid() == 0, let pw = getpwuid(geteuid()), let gr = getgrgid(getegid()) {
            // As root, nginx would switch its workers to `nobody`; keep them as the current user.
            user = "user \(String(cString: pw.pointee.pw_name)) \(String(cString: gr.pointee.gr_name));"
        }
        let config = """
            \(user)
            worker_processes 1;
            pid \(root)/nginx.pid;
            error_log \(root)/error.log info;
            events { worker_connections 64; }
            http {
                access_log \(root)/access.log;
                client_body_temp_path \(root)/tmp/body;
                proxy_temp_path \(root)/tmp/proxy;
                fastcgi_temp_path \(root)/tmp/fastcgi;
                uwsgi_temp_path \(root)/tmp/uwsgi;
                scgi_temp_path \(root)/tmp/scgi;

                # The dummy upstream: echoes who the gate said the caller is.
                server {
                    listen 127.0.0.1:\(upstreamPort);
                    location / { return 200 "ok $http_x_pat_subject"; }
                }

                server {
                    listen 127.0.0.1:\(port);

                    location ~ ^/channels/([A-Za-z0-9._~-]+)/messages$ {
                        set $pat_scope "channels:publish:$1";
                        auth_request /_pat_verify;
                        auth_request_set $pat_subject $upstream_http_x_pat_subject;
                        proxy_set_header X-PAT-Subject $pat_subject;
                        proxy_pass http://127.0.0.1:\(upstreamPort);
                    }

                    location = /_pat_verify {
                        internal;
                        proxy_pass http://127.0.0.1:\(gatePort)/verify;
                        proxy_pass_request_body off;
                        proxy_set_header Content-Length "";
                        proxy_set_header X-PAT-Require-Scope $pat_scope;
                    }
                }
            }
            """
        try config.write(toFile: root + "/nginx.conf", atomically: true, encoding: .utf8)
    }

    /// nginx in the foreground with this configuration.
    var arguments: [String] {
        ["-p", prefix.path, "-c", prefix.path + "/nginx.conf", "-e", prefix.path + "/error.log", "-g", "daemon off;"]
    }

    var errorLog: String { (try? String(contentsOfFile: prefix.path + "/error.log", encoding: .utf8)) ?? "" }
}

/// nginx is a prerequisite: in CI (CI=true) its absence fails this suite; elsewhere it is skipped.
@Suite("nginx auth_request in front of the gate", .serialized, .timeLimit(.minutes(5)))
struct NginxTests {
    @Test func nginxAuthRequestUsesTheGate() async throws {
        let binary = try await Prerequisite.nginx.require()
        let dir = try TempDir()
        let issuing = try Issuing()
        try dir.publish(keys: try issuing.signedKeys(), list: try issuing.list(sequence: 1))
        let valid = try issuing.token(subject: "carol", scopes: ["channels:publish:ch-1"])
        let doomedID = PATClaims.newID()
        let doomed = try issuing.token(id: doomedID, subject: "dave", scopes: ["channels:publish:ch-1"])

        let gate = PATServerConfiguration(home: dir.home, mode: .gate(GateConfiguration(trustAnchors: issuing.anchors, refreshInterval: .seconds(1))))
        try await withPATServer(gate) { gatePort, refresher in
            let refresher = try #require(refresher)
            let nginx = try NginxConfig(gatePort: gatePort)
            let (_, result) = try await ChildProcess.withRunning(binary, nginx.arguments) { child in
                let base = "http://127.0.0.1:\(nginx.port)"
                do {
                    try await awaitCondition("nginx answers on its upstream port", within: .seconds(60)) {
                        (try? await http("http://127.0.0.1:\(nginx.upstreamPort)/")) != nil
                    }
                } catch {
                    Issue.record("nginx error log: \(nginx.errorLog.suffix(2000))")
                    throw error
                }

                let passed = try await http("\(base)/channels/ch-1/messages", headers: [("Authorization", "Bearer \(valid)")])
                #expect(passed.status == 200, "\(passed.text) \(nginx.errorLog.suffix(1000))")
                #expect(passed.text == "ok carol", "the upstream sees the owner the gate reported")

                let otherChannel = try await http("\(base)/channels/ch-2/messages", headers: [("Authorization", "Bearer \(valid)")])
                #expect(otherChannel.status == 403, "a PAT without the required scope is forbidden")

                let anonymous = try await http("\(base)/channels/ch-1/messages")
                #expect(anonymous.status == 401)
                #expect(anonymous.header("WWW-Authenticate")?.hasPrefix("Bearer") == true, "nginx passes the gate's challenge on")

                let beforeRevocation = try await http("\(base)/channels/ch-1/messages", headers: [("Authorization", "Bearer \(doomed)")])
                #expect(beforeRevocation.status == 200)

                // Revoke: publish a new list. Once the gate's refresher has installed it (the
                // event, not a deadline), nginx refuses the PAT on the very next request. How
                // fast that happens is measured by scripts/propagation.sh, not here.
                try dir.publish(list: try issuing.list(sequence: 2, revoked: [doomedID]))
                try await awaitEvent("the gate installs list 2") { try await refresher.waitUntilRefreshed(toSequence: 2) }
                let refused = try await http("\(base)/channels/ch-1/messages", headers: [("Authorization", "Bearer \(doomed)")])
                #expect(refused.status == 401, "the revoked PAT is refused once the gate holds the new list")

                let stillValid = try await http("\(base)/channels/ch-1/messages", headers: [("Authorization", "Bearer \(valid)")])
                #expect(stillValid.status == 200)
                try child.signal(SIGTERM) // nginx: fast shutdown
            }
            #expect(result.exitStatus == 0, "\(result) \(nginx.errorLog.suffix(1000))")
        }
    }

    /// The issue's bar: a token revoked through the API is refused by nginx within moments, not
    /// "within one refresh interval". The gate polls only once an hour here, so the refusal can
    /// only come from the long poll the issuer answers when it publishes; how fast is measured by
    /// scripts/push-propagation.py (p99 well under a second), not asserted here.
    @Test func nginxRefusesARevokedTokenPushedToTheGate() async throws {
        let binary = try await Prerequisite.nginx.require()
        let home = try await PushTests.home()
        let victim = try await home.issue(owner: "dave", name: "doomed", scopes: ["channels:view:ch-1"])
        let doomed = try #require(victim.token)
        try await withManagementServer(home) { issuerBase, _ in
            let anchors = try #require(try home.home.keyStore.trustAnchors())
            let gateDir = try TempDir()
            var gate = GateConfiguration(source: .urls(keys: issuerBase + DistributionRoutes.keysPath,
                                                       revocations: issuerBase + DistributionRoutes.revocationsPath),
                                         trustAnchors: anchors, refreshInterval: .seconds(3600))
            gate.longPollWait = .seconds(30)
            try await withPATServer(PATServerConfiguration(home: gateDir.home, mode: .gate(gate))) { gatePort, refresher in
                let refresher = try #require(refresher)
                let nginx = try NginxConfig(gatePort: gatePort)
                let (_, result) = try await ChildProcess.withRunning(binary, nginx.arguments) { child in
                    let url = "http://127.0.0.1:\(nginx.port)/channels/ch-1/messages"
                    try await awaitCondition("nginx answers on its upstream port", within: .seconds(60)) {
                        (try? await http("http://127.0.0.1:\(nginx.upstreamPort)/")) != nil
                    }
                    let before = try await http(url, headers: [("Authorization", "Bearer \(doomed)")])
                    // The location requires channels:publish:ch-1, which the management catalog cannot grant:
                    // the PAT is valid and not revoked, only short of the scope (403); revoked, it is 401.
                    #expect(before.status == 403, "the PAT passes the list before the revocation: \(before.status) \(nginx.errorLog.suffix(1000))")
                    try await awaitCondition("the gate holds a long poll") { refresher.status.transport == "long-poll" }
                    try await PushTests.revoke(issuerBase, home, victim.record.id)
                    try await awaitCondition("nginx refuses the revoked PAT (pushed: the gate polls hourly)") {
                        try await http(url, headers: [("Authorization", "Bearer \(doomed)")]).status == 401
                    }
                    #expect(refresher.status.deltasApplied >= 1, "the revocation came as a delta")
                    try child.signal(SIGTERM)
                }
                #expect(result.exitStatus == 0, "\(result) \(nginx.errorLog.suffix(1000))")
            }
        }
    }
}
