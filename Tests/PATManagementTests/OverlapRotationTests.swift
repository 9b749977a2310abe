import Foundation
import PATManagement
import PATRegistry
import PATRegistryTestSupport
import PATTestSupport
import Testing

/// `regenerate --overlap` (issue 11 §4): the replaced generation keeps validating offline, at
/// every edge, until the overlap ends; a regenerate during an overlap ends it at once for the
/// older generation (rotating a rotated token never revokes the new one); a revoke ends it.
@Suite("Rotation without downtime", .timeLimit(.minutes(3)))
struct OverlapRotationTests {
    static func passes(_ validator: Validator, _ token: String) -> Bool { (try? validator.validate(token)) != nil }

    @Test("the previous generation validates until the overlap ends; a new rotation or a revoke ends it", arguments: RegistryBackend.allCases)
    func overlapSemantics(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let service = t.service(at: clock)
        let day = Expiry.after(TimeSpan(seconds: 86_400))
        let created = try await service.create(CreateRequest(owner: "alice", name: "ci", scopes: [try Scope(parsing: "clients:view")],
                                                             expiry: day), by: .localOperator)
        let id = created.record.id
        let second = try await service.regenerate(id: id, expiry: day, overlap: TimeSpan(seconds: 3600), by: .localOperator)
        #expect(second.record.overlap == PATRecord.Overlap(generation: 1, until: clock.now.adding(seconds: 3600)))
        try await t.publisher(at: clock).publish()
        var validator = try t.validator(at: clock)
        #expect(Self.passes(validator, created.bearer), "generation 1 overlaps")
        #expect(Self.passes(validator, second.bearer))

        // Rotating the rotated token: generation 2 overlaps now, generation 1 dies at once.
        clock.advance(600)
        let third = try await service.regenerate(id: id, expiry: day, overlap: TimeSpan(seconds: 1800), by: .localOperator)
        try await t.publisher(at: clock).publish()
        validator = try t.validator(at: clock)
        #expect(!Self.passes(validator, created.bearer), "a second rotation ends the first overlap")
        #expect(Self.passes(validator, second.bearer), "the token just replaced keeps working")
        #expect(Self.passes(validator, third.bearer))

        // The overlap ends: the same list, a later clock.
        clock.advance(1801)
        #expect(!Self.passes(try t.validator(at: clock), second.bearer), "after the overlap, generation 2 is refused offline")
        #expect(Self.passes(try t.validator(at: clock), third.bearer))

        // A revoke ends an overlap at once.
        let fourth = try await service.regenerate(id: id, expiry: day, overlap: TimeSpan(seconds: 3600), by: .localOperator)
        _ = try await service.revoke(id: id, by: .localOperator)
        try await t.publisher(at: clock).publish()
        validator = try t.validator(at: clock)
        #expect(!Self.passes(validator, third.bearer) && !Self.passes(validator, fourth.bearer))

        // Bounds: the policy's maximum, and a revoked PAT has nothing to keep.
        let tooLong = await managementError {
            _ = try await service.regenerate(id: id, expiry: day, overlap: TimeSpan(seconds: 8 * 86_400), by: .localOperator)
        }
        #expect(tooLong?.field == "overlap")
        let revoked = await managementError {
            _ = try await service.regenerate(id: id, expiry: day, overlap: TimeSpan(seconds: 60), by: .localOperator)
        }
        #expect(revoked?.field == "overlap")
        #expect(try OverlapSpan.parse("0") == nil && OverlapSpan.parse("0s") == nil)
        #expect(throws: (any Error).self) { try OverlapSpan.parse("soon") }
    }
}
