import Foundation
import PATKit
import PATServer
import PATStore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The nginx binary: `$PATKIT_NGINX`, else the first `nginx` in the usual places.
let nginxBinary: String? = {
    if let path = ProcessInfo.processInfo.environment["PATKIT_NGINX"], FileManager.default.isExecutableFile(atPath: path) {
        return path
    }
    return ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx", "/usr/local/bin/nginx", "/opt/homebrew/bin/nginx"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }
}()

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

/// A real nginx on loopback, run in the foreground as the current user with everything
/// (config, pid, logs, temp files) under one temporary prefix. Stopped by `stop()`.
final class Nginx: @unchecked Sendable {
    let prefix: TempDir
    let process = Process()
    let port: Int
    let upstreamPort: Int

    /// `auth_request` in front of a dummy upstream: `/channels/{id}/messages` needs
    /// `channels:publish:{id}`, checked by the gate at `gatePort`.
    init(binary: String, gatePort: Int) throws {
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
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["-p", root, "-c", root + "/nginx.conf", "-e", root + "/error.log", "-g", "daemon off;"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    var errorLog: String { (try? String(contentsOfFile: prefix.path + "/error.log", encoding: .utf8)) ?? "" }

    /// Waits until nginx answers on its upstream port.
    func waitUntilReady() async throws {
        let ready = try await eventually(within: 10) {
            guard process.isRunning else { return false }
            return (try? await http("http://127.0.0.1:\(upstreamPort)/")) != nil
        }
        guard ready else { throw TestFailure("nginx did not start: \(errorLog.suffix(2000))") }
    }

    /// Fast shutdown (SIGTERM), waiting for the master to exit.
    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }
}

@Suite("nginx auth_request in front of the gate", .serialized)
struct NginxTests {
    @Test(.enabled(if: nginxBinary != nil, "nginx is not installed (Debian: apt-get install nginx); skipping the nginx test"))
    func nginxAuthRequestUsesTheGate() async throws {
        let binary = try #require(nginxBinary)
        let dir = try TempDir()
        let issuing = try Issuing()
        try dir.publish(keys: try issuing.signedKeys(), list: try issuing.list(sequence: 1))
        let valid = try issuing.token(subject: "carol", scopes: ["channels:publish:ch-1"])
        let doomedID = PATClaims.newID()
        let doomed = try issuing.token(id: doomedID, subject: "dave", scopes: ["channels:publish:ch-1"])

        let interval: Duration = .seconds(1)
        let gate = PATServerConfiguration(home: dir.home, mode: .gate(GateConfiguration(trustAnchors: issuing.anchors, refreshInterval: interval)))
        try await withPATServer(gate) { gatePort, _ in
            let nginx = try Nginx(binary: binary, gatePort: gatePort)
            defer { nginx.stop() }
            try await nginx.waitUntilReady()
            let base = "http://127.0.0.1:\(nginx.port)"

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

            // Revoke: publish a new list; the gate must refuse within one refresh interval
            // (plus the time of one round and one request).
            try dir.publish(list: try issuing.list(sequence: 2, revoked: [doomedID]))
            let published = ContinuousClock.now
            let refused = try await eventually(within: 5) {
                try await http("\(base)/channels/ch-1/messages", headers: [("Authorization", "Bearer \(doomed)")]).status == 401
            }
            let took = ContinuousClock.now - published
            #expect(refused, "the revoked PAT is refused after a new list is published")
            #expect(took <= interval + .milliseconds(1500), "refused after \(took), refresh interval \(interval)")

            let stillValid = try await http("\(base)/channels/ch-1/messages", headers: [("Authorization", "Bearer \(valid)")])
            #expect(stillValid.status == 200)
        }
    }
}
