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
        // 60 s to connect (NIO's default is 10 s): a bound for hangs; at load 24 a connect to a
        // server busy accepting 300 others took longer.
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(60))
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return IdleConnection(channel: channel)
    }

    func send(_ text: String) async throws {
        try await channel.channel.writeAndFlush(ByteBuffer(string: text))
    }

    /// Closes from this side (what a receive then sees as the end). The writer is finished too:
    /// NIO requires it of every async channel, also one whose receive never ran.
    func close() {
        channel.outbound.finish()
        channel.channel.close(promise: nil)
    }

    /// What the first of `connections` to be closed by the server received, and — after
    /// closing the others from this side — what the others had received.
    static func firstToEnd(_ connections: [IdleConnection]) async throws -> (String, [String]) {
        try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for (index, connection) in connections.enumerated() {
                group.addTask { (index, try await connection.receiveUntilClosed()) }
            }
            guard let (firstIndex, first) = try await group.next() else { throw TestFailure("no connection") }
            for (index, connection) in connections.enumerated() where index != firstIndex { connection.close() }
            var rest: [String] = []
            for try await (_, text) in group { rest.append(text) }
            return (first, rest)
        }
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

    @Test("beyond the cap a connection is answered 503 and closed without reading a request")
    func connectionCap() async throws {
        let setup = try GateTests.Setup()
        var configuration = setup.gate()
        configuration.limits.maxConnections = 4
        configuration.limits.headerTimeout = .seconds(600) // no connection ends on its own here
        let token = try setup.issuing.token()
        try await withPATServer(configuration) { port, _ in
            // Five connections that send nothing: one is over the cap (which one depends on the
            // order the server's event loops accept them in). It is answered and closed; the
            // others stay open until this test closes them.
            var connections: [IdleConnection] = []
            defer { for connection in connections { connection.close() } } // also when an expectation below throws
            for _ in 0..<5 { connections.append(try await IdleConnection.open(port)) }
            let open = connections
            let (first, rest) = try await awaitEvent("a connection over the cap is answered and closed") {
                try await IdleConnection.firstToEnd(open)
            }
            #expect(first.hasPrefix("HTTP/1.1 503"), "\(first.prefix(200))")
            #expect(first.contains("\"code\":\"unavailable\"") && first.lowercased().contains("retry-after: 1"))
            #expect(rest.allSatisfy { !$0.hasPrefix("HTTP/") }, "only one was refused: \(rest.map { $0.prefix(20) })")
            // Once they are gone, a real request is served, and keep-alive works for a client in time.
            try await awaitCondition("the server serves again once the idle connections are closed") {
                (try? await http("http://127.0.0.1:\(port)/verify", headers: [("Authorization", "Bearer \(token)")]))?.status == 204
            }
            for _ in 0..<3 { #expect(try await http("http://127.0.0.1:\(port)/healthz").status == 200) }
        }
    }

    @Test("a connection that sends no request head is closed at the header timeout, unanswered")
    func headerTimeout() async throws {
        let setup = try GateTests.Setup()
        var configuration = setup.gate()
        configuration.limits.headerTimeout = .seconds(1)
        try await withPATServer(configuration) { port, _ in
            let silent = try await IdleConnection.open(port)
            let partial = try await IdleConnection.open(port)
            defer { silent.close(); partial.close() }
            try await partial.send("GET /verify HTTP/1.1\r\nHost: x\r\n") // a head that never ends (slowloris)
            #expect(try await awaitEvent("the server closes a silent connection") { try await silent.receiveUntilClosed() }.isEmpty)
            #expect(try await awaitEvent("the server closes a never-ending head") { try await partial.receiveUntilClosed() }.isEmpty)
            // A prompt client is unaffected.
            #expect(try await http("http://127.0.0.1:\(port)/healthz").status == 200)
        }
    }

    @Test("a request held past the header timeout is answered; after the response the next head is due within the timeout")
    func headerTimeoutAroundARequest() async throws {
        // Issue 15: the header timer is no longer cancelled for every request; it checks, when it
        // fires, whether a request is in flight (then lapses) and when the next head is due.
        let issuer = try PushTests.FileIssuer()
        var configuration = PATServerConfiguration(home: issuer.dir.home)
        configuration.limits.headerTimeout = .seconds(1)
        try await withPATServer(configuration) { port, _ in
            let connection = try await IdleConnection.open(port)
            defer { connection.close() }
            // A long poll the server holds for 2 s, twice the header timeout, on a keep-alive connection.
            try await connection.send("GET \(DistributionRoutes.revocationsPath)?since=3&wait=2 HTTP/1.1\r\nHost: x\r\n\r\n")
            let text = try await awaitEvent("the long poll is answered, then the idle connection closed") {
                try await connection.receiveUntilClosed()
            }
            #expect(text.hasPrefix("HTTP/1.1 304"), "\(text.prefix(200))")
            #expect(text.components(separatedBy: "HTTP/1.1 ").count == 2, "one answer, then closed: \(text.prefix(400))")
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
                         "--listen", "127.0.0.1:0", "--header-timeout", "600s"]
        let (_, result) = try await ChildProcess.withRunning(prlimit, arguments) { child in
            let marker = "started and listening on 127.0.0.1:"
            let line = try await awaitEvent("pat serve logs the port it listens on") { await child.stderrLine(containing: marker) }
            guard let line, let range = line.range(of: marker), let port = Int(line[range.upperBound...].prefix { $0.isNumber }) else {
                throw TestFailure("pat serve ended before listening:\n\(child.stderr.suffix(3000))")
            }
            var idle: [IdleConnection] = []
            defer { for connection in idle { connection.close() } }
            for _ in 0..<300 { idle.append(try await IdleConnection.open(port)) }
            // Over the cap (at most 256 − 64 = 192 held), connections are answered 503 and closed
            // at once: the descriptors stay bounded and the server keeps answering.
            #expect(try Self.openDescriptors(child.pid) < 256)
            let during = try await http("http://127.0.0.1:\(port)/verify", headers: [("Authorization", "Bearer \(token)")])
            #expect(during.status == 503 || during.status == 204, "answered, not hung: \(during.status)")
            let flood = idle
            let (first, rest) = try await awaitEvent("a connection over the cap is answered and closed") {
                try await IdleConnection.firstToEnd(flood) // then closes the others
            }
            let refused = rest.filter { $0.hasPrefix("HTTP/1.1 503") }.count + (first.hasPrefix("HTTP/1.1 503") ? 1 : 0)
            // Refused at the cap: answered 503, or — on a starved machine, seen at load 18 — closed
            // before the answer was written. Either way it ended; on the old code none did.
            #expect(first.hasPrefix("HTTP/1.1 503") || first.isEmpty, "the first to end was refused at the cap: \(first.prefix(200))")
            #expect(refused > 0, "connections over the cap are answered 503 (\(refused) of 300 were)")
            try await awaitCondition("a valid request is served once the idle connections are gone") {
                (try? await http("http://127.0.0.1:\(port)/verify", headers: [("Authorization", "Bearer \(token)")]))?.status == 204
            }
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
