import Foundation
import NIOCore
import NIOPosix
import PATKit
import PATServer
import PATStore
import PATTestSupport
import Synchronization
import Testing

/// A raw TCP client connection that sends nothing (or what it is told) and records what the
/// server sends until the server closes it.
struct IdleConnection: Sendable {
    let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>

    static func open(_ port: Int) async throws -> IdleConnection {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return IdleConnection(channel: channel)
    }

    /// Everything the server sends until it closes the connection (awaits that event).
    func receiveUntilClosed() async throws -> String {
        try await channel.executeThenClose { inbound, _ in
            var text = ""
            do {
                for try await chunk in inbound { text += String(buffer: chunk) }
            } catch let error as ChannelError where error == .inputClosed || error == .eof {
                // closed by the server
            }
            return text
        }
    }
}

/// Security review M3: connection cap, header timeout, descriptors.
@Suite("server limits", .serialized, .timeLimit(.minutes(3)))
struct ServerLimitsTests {

    @Test("beyond the cap a connection gets 503 at once; idle ones are closed after the header timeout")
    func capAndHeaderTimeout() async throws {
        let setup = try GateTests.Setup()
        var configuration = setup.gate()
        configuration.limits.maxConnections = 4
        configuration.limits.headerTimeout = .seconds(1)
        let token = try setup.issuing.token()
        try await withPATServer(configuration) { port, _ in
            // Five connections that send nothing, one over the cap. Which one is over depends on the
            // order the server's event loops accept them in.
            var connections: [IdleConnection] = []
            for _ in 0..<5 { connections.append(try await IdleConnection.open(port)) }
            let received = try await withThrowingTaskGroup(of: String.self) { group in
                for connection in connections { group.addTask { try await connection.receiveUntilClosed() } }
                return try await group.reduce(into: [String]()) { $0.append($1) }
            }
            // One was answered 503 and closed without sending anything…
            let refused = received.filter { $0.hasPrefix("HTTP/1.1 503") }
            #expect(refused.count == 1, "\(received.map { $0.prefix(40) })")
            #expect(refused.first?.contains("\"code\":\"unavailable\"") == true)
            #expect(refused.first?.lowercased().contains("retry-after: 1") == true)
            // …and the four within the cap were closed by the server at the header timeout, unanswered.
            #expect(received.filter(\.isEmpty).count == 4)
            // Then a real request is served.
            let ok = try await http("http://127.0.0.1:\(port)/verify", headers: [("Authorization", "Bearer \(token)")])
            #expect(ok.status == 204)
            // And keep-alive keeps working for a client that sends requests in time.
            for _ in 0..<3 { #expect(try await http("http://127.0.0.1:\(port)/healthz").status == 200) }
        }
    }

    @Test("300 idle connections neither exhaust descriptors nor keep a valid request from an answer (prlimit --nofile=256)")
    func idleFloodUnderAFileLimit() async throws {
        let prlimit = try await Self.prlimitPrerequisite.require()
        let binary = try await Prerequisite.patBinary.require()
        let setup = try GateTests.Setup()
        try setup.dir.pin(setup.issuing.anchors)
        let token = try setup.issuing.token()
        let arguments = ["--nofile=256", binary, "serve", "--verify-only", "--home", setup.dir.path,
                         "--listen", "127.0.0.1:0", "--header-timeout", "2s"]
        let (_, result) = try await ChildProcess.withRunning(prlimit, arguments) { child in
            let marker = "started and listening on 127.0.0.1:"
            let line = try await awaitEvent("pat serve logs the port it listens on") { await child.stderrLine(containing: marker) }
            guard let line, let range = line.range(of: marker), let port = Int(line[range.upperBound...].prefix { $0.isNumber }) else {
                throw TestFailure("pat serve ended before listening:\n\(child.stderr.suffix(3000))")
            }
            var idle: [IdleConnection] = []
            for _ in 0..<300 { idle.append(try await IdleConnection.open(port)) }
            // While they are held, a valid request gets an answer (503: at the cap; or 204), never a hang.
            let during = try await http("http://127.0.0.1:\(port)/verify", headers: [("Authorization", "Bearer \(token)")])
            #expect(during.status == 503 || during.status == 204, "\(during.status)")
            #expect(try Self.openDescriptors(child.pid) < 256)

            // Every idle connection ends: refused at the cap at once, or closed at the header timeout.
            var refused = 0
            for connection in idle where try await connection.receiveUntilClosed().hasPrefix("HTTP/1.1 503") { refused += 1 }
            // How many are over the cap depends on how many the header timeout closed while the
            // rest were still connecting; on an unbounded server none is refused and none ends.
            #expect(refused > 0, "some connections over the cap (\(256 - ServerLimits.reservedDescriptors)) were refused with 503")
            let after = try await http("http://127.0.0.1:\(port)/verify", headers: [("Authorization", "Bearer \(token)")])
            #expect(after.status == 204)
            try child.signal(SIGTERM)
        }
        #expect(result.exitStatus == 0, "pat serve stops cleanly on SIGTERM: \(result)")
    }

    static let prlimitPrerequisite = Prerequisite(name: "prlimit", hint: "apt-get install util-linux") {
        ["/usr/bin/prlimit", "/bin/prlimit"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static func openDescriptors(_ pid: Int32) throws -> Int {
        // Read while the child runs; /proc lists one entry per open descriptor.
        try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
    }
}
