import Foundation
import PATManagement
import PATRegistry
import Testing
import PATRegistryTestSupport

extension TestHome {
    /// The management service on this home, acting as the operator.
    func lifecycle(at clock: TestClock, maxLifetime: TimeSpan = ManagementPolicy.defaultMaxLifetime) -> OperatorOps {
        OperatorOps(service: service(at: clock, maxLifetime: maxLifetime))
    }

    func service(at clock: TestClock, maxLifetime: TimeSpan = ManagementPolicy.defaultMaxLifetime,
                 catalog: ScopeCatalog = .magistrala) -> PATManagement {
        PATManagement(store: registry, keyStore: keyStore, policy: ManagementPolicy(catalog: catalog, maxLifetime: maxLifetime),
                      clock: { clock.now })
    }
}

/// The service's operations as the operator (`pat` CLI) calls them.
struct OperatorOps: Sendable {
    let service: PATManagement

    func create(owner: String, name: String, description: String? = nil, scopes: ScopeSet, expiry: Expiry,
                domain: String? = nil) async throws -> IssuedPAT {
        try await service.create(CreateRequest(owner: owner, name: name, description: description, scopes: Array(scopes),
                                               expiry: expiry, domain: domain), by: .localOperator)
    }
    func addScopes(id: String, _ scopes: [Scope]) async throws -> IssuedPAT { try await service.addScopes(id: id, scopes, by: .localOperator) }
    func removeScopes(id: String, _ scopes: [Scope]) async throws -> IssuedPAT {
        try await service.removeScopes(id: id, scopes, by: .localOperator)
    }
    func clearScopes(id: String) async throws -> IssuedPAT { try await service.clearScopes(id: id, by: .localOperator) }
    func revoke(id: String) async throws -> RevokeResult { try await service.revoke(id: id, by: .localOperator) }
    func revokeAll(owner: String) async throws -> RevokeAllResult { try await service.revokeAll(owner: owner, by: .localOperator) }
    func regenerate(id: String, expiry: Expiry) async throws -> IssuedPAT {
        try await service.regenerate(id: id, expiry: expiry, by: .localOperator)
    }
    @discardableResult
    func delete(id: String) async throws -> DeletedPAT { try await service.delete(id: id, by: .localOperator) }
}

extension IssuedPAT {
    /// The token (tests only create PATs that get one).
    var bearer: String { token ?? "(no token)" }
}

/// The error `body` throws, when it is a `ManagementError`.
func managementError(_ body: () async throws -> Void) async -> ManagementError? {
    do {
        try await body()
        return nil
    } catch let error as ManagementError {
        return error
    } catch {
        Issue.record("expected a ManagementError, got \(error)")
        return nil
    }
}
