import Hummingbird
import NIOCore
import PATKit

/// A request context that carries the PAT verified for the request, set by `PATAuthenticator`.
///
/// ```swift
/// struct AppContext: PATRequestContext {
///     var coreContext: CoreRequestContextStorage
///     var pat: VerifiedPAT?
///     init(source: ApplicationRequestContextSource) {
///         coreContext = .init(source: source)
///     }
/// }
/// ```
public protocol PATRequestContext: RequestContext {
    /// The verified PAT, or nil before authentication (or for an anonymous request, when allowed).
    var pat: VerifiedPAT? { get set }
}

extension PATRequestContext {
    /// The verified PAT, or a 401 when the request carries none.
    public func requirePAT() throws(PATHTTPError) -> VerifiedPAT {
        guard let pat else { throw PATHTTPError.missingToken() }
        return pat
    }
}

/// The plain context for PAT-protected routes. Request bodies are bounded to 64 KiB. Knows the
/// connection's peer address (read only when asked, e.g. for usage counting).
public struct BasicPATRequestContext: PATRequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public var pat: VerifiedPAT?
    private let channel: (any Channel)?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.pat = nil
        self.channel = source.channel
    }

    public var maxUploadSize: Int { 64 * 1024 }

    public var remoteAddress: SocketAddress? { channel?.remoteAddress }
}
