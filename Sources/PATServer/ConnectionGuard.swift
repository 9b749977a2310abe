import Hummingbird
import NIOCore
import NIOHTTPTypes
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// How much of the machine `pat serve` lets its clients hold: connections and time. Defaults
/// (documented in the README): at most 512 connections (and never more than the process's
/// open-file limit minus 64, kept for files and outgoing connections), a request head must
/// arrive within 10 s of connecting or of the previous response (this also closes keep-alive
/// connections idle for 10 s), and a connection with nothing read or written for 30 s while
/// a request is being received is closed.
public struct ServerLimits: Sendable, Equatable {
    /// Connections held at once; one more is answered 503 and closed.
    public var maxConnections = 512
    /// Time to receive a complete request head, from connecting or from the previous response.
    public var headerTimeout: Duration = .seconds(10)
    /// Time without any request part read (Hummingbird's idle timeout).
    public var idleTimeout: Duration = .seconds(30)

    public init() {}

    /// Descriptors kept free for files, the registry and outgoing connections.
    public static let reservedDescriptors = 64

    /// Raises the process's soft open-file limit to its hard limit (as Go programs do at start):
    /// every long-polling edge holds a connection, and the usual soft limit of 1,024 would cap a
    /// server far below what the machine allows. Never lowers it.
    public static func raiseOpenFileLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    /// `maxConnections`, lowered to fit the process's open-file limit (`RLIMIT_NOFILE`).
    public var effectiveMaxConnections: Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return maxConnections }
        let available = Int(clamping: limit.rlim_cur) - ServerLimits.reservedDescriptors
        return max(1, min(maxConnections, available))
    }
}

/// Counts the server's open connections (shared by every connection's `ConnectionGuard`).
final class ConnectionCounter: Sendable {
    let open = Atomic<Int>(0)
    let maximum: Int

    init(maximum: Int) { self.maximum = maximum }
}

/// Sits after HTTP decoding on every connection: refuses a connection over the cap with a 503,
/// and closes one whose request head does not arrive within the header timeout.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let counter: ConnectionCounter
    private let headerTimeout: TimeAmount
    private var counted = false
    private var refused = false
    private var requestsInFlight = 0
    /// When the next request head is due, while no request is in flight.
    private var headDeadline = NIODeadline.distantFuture
    /// The header timer. It is not cancelled and re-made for every request (that cost more than a
    /// cached validation, issue 15): a request in flight only moves `headDeadline`, and the timer
    /// checks it when it fires, then lapses (a request is in flight), closes, or waits on.
    private var timer: Scheduled<Void>?

    init(counter: ConnectionCounter, headerTimeout: Duration) {
        self.counter = counter
        let (seconds, attoseconds) = headerTimeout.components
        self.headerTimeout = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { activate(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        activate(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        release()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) { release() }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        if case .head = unwrapInboundIn(data) { requestsInFlight += 1 }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), !refused {
            requestsInFlight -= 1
            if requestsInFlight <= 0 {
                requestsInFlight = 0
                armTimer(context)
            }
        }
        context.write(data, promise: promise)
    }

    private func activate(_ context: ChannelHandlerContext) {
        guard !counted else { return }
        counted = true
        let open = counter.open.wrappingAdd(1, ordering: .relaxed).newValue
        if open > counter.maximum {
            refuse(context)
        } else {
            armTimer(context)
        }
    }

    private func release() {
        timer?.cancel()
        timer = nil
        if counted {
            counted = false
            counter.open.wrappingSubtract(1, ordering: .relaxed)
        }
    }

    /// The next request head is due within the header timeout from now.
    private func armTimer(_ context: ChannelHandlerContext) {
        headDeadline = .now() + headerTimeout
        if timer == nil { schedule(context) }
    }

    private func schedule(_ context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: headDeadline) {
            let (handler, context) = loopBound.value
            handler.timerFired(context)
        }
    }

    private func timerFired(_ context: ChannelHandlerContext) {
        timer = nil
        // A request is in flight: its response arms the timer again.
        guard requestsInFlight == 0, !refused else { return }
        if NIODeadline.now() >= headDeadline {
            context.close(promise: nil)
        } else {
            schedule(context)
        }
    }

    /// Answers 503 without reading a request, then closes.
    private func refuse(_ context: ChannelHandlerContext) {
        refused = true
        let body = #"{"error":{"code":"unavailable","message":"the server is at its connection limit; retry shortly"}}"# + "\n"
        var head = HTTPResponse(status: .serviceUnavailable)
        head.headerFields[.contentType] = "application/json; charset=utf-8"
        head.headerFields[.contentLength] = String(body.utf8.count)
        head.headerFields[.retryAfter] = "1"
        head.headerFields[.connection] = "close"
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(context.channel.allocator.buffer(string: body))), promise: nil)
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in loopBound.value.close(promise: nil) }
    }
}
