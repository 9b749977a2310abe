import Foundation
import GRDB
import PATStore

// The SQLite rows, mapped by GRDB's Codable record protocols. Each converts to and from the
// back-end-neutral value the store protocol speaks (PATRecord, Tombstone, …).

/// A row of `pats` (also how the PostgreSQL back end stores a record: the same columns).
package struct PATRow: Codable, FetchableRecord, PersistableRecord {
    package static let databaseTableName = "pats"

    package var id: String
    package var owner: String
    package var domain: String?
    package var name: String
    package var description: String?
    /// The `scope` claim form.
    package var scopes: String
    package var generation: UInt64
    package var floor: UInt64
    package var createdAt: Int64
    package var updatedAt: Int64
    package var expiresAt: Int64
    package var maxExpiresAt: Int64
    package var lastRotatedAt: Int64?
    package var revokedAt: Int64?
    /// JSON (GRDB encodes nested Codable values as JSON text).
    package var revokedBy: Principal?
    /// The lineage, `"<id>.<gen>"` entries space-separated.
    package var lineage: String
    /// The overlap after a regenerate: the previous generation and when it stops being valid.
    package var overlapGeneration: Int64?
    package var overlapUntil: Int64?

    package enum CodingKeys: String, CodingKey, ColumnExpression {
        case id, owner, domain, name, description, scopes, generation, floor, lineage
        case createdAt = "created_at", updatedAt = "updated_at", expiresAt = "expires_at", maxExpiresAt = "max_expires_at"
        case lastRotatedAt = "last_rotated_at", revokedAt = "revoked_at", revokedBy = "revoked_by"
        case overlapGeneration = "overlap_generation", overlapUntil = "overlap_until"
    }

    package typealias Columns = CodingKeys

    package init(id: String, owner: String, domain: String?, name: String, description: String?, scopes: String,
                 generation: UInt64, floor: UInt64, createdAt: Int64, updatedAt: Int64, expiresAt: Int64, maxExpiresAt: Int64,
                 lastRotatedAt: Int64?, revokedAt: Int64?, revokedBy: Principal?, lineage: String,
                 overlapGeneration: Int64? = nil, overlapUntil: Int64? = nil) {
        self.id = id
        self.owner = owner
        self.domain = domain
        self.name = name
        self.description = description
        self.scopes = scopes
        self.generation = generation
        self.floor = floor
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.expiresAt = expiresAt
        self.maxExpiresAt = maxExpiresAt
        self.lastRotatedAt = lastRotatedAt
        self.revokedAt = revokedAt
        self.revokedBy = revokedBy
        self.lineage = lineage
        self.overlapGeneration = overlapGeneration
        self.overlapUntil = overlapUntil
    }

    package init(_ r: PATRecord) {
        id = r.id
        owner = r.owner
        domain = r.domain
        name = r.name
        description = r.description
        scopes = r.scopes.claim
        generation = r.generation
        floor = r.floor
        createdAt = r.createdAt.seconds
        updatedAt = r.updatedAt.seconds
        expiresAt = r.expiresAt.seconds
        maxExpiresAt = r.maxExpiresAt.seconds
        lastRotatedAt = r.lastRotatedAt?.seconds
        revokedAt = r.revokedAt?.seconds
        revokedBy = r.revokedBy
        lineage = r.lineage.map(\.description).joined(separator: " ")
        overlapGeneration = r.overlap.map { Int64($0.generation) }
        overlapUntil = r.overlap?.until.seconds
    }

    package func record() throws -> PATRecord {
        let scopeSet: ScopeSet
        do { scopeSet = try ScopeSet(claim: scopes) } catch {
            throw RegistryError(.database, "PAT \(id) has unreadable scopes in the registry (\(error))")
        }
        var ancestors: [PATRecord.Ancestor] = []
        for entry in lineage.split(separator: " ") {
            do { ancestors.append(try PATRecord.Ancestor(parsing: entry)) } catch {
                throw RegistryError(.database, "PAT \(id) has an unreadable lineage in the registry (\(error))")
            }
        }
        return PATRecord(id: id, owner: owner, domain: domain, name: name, description: description, scopes: scopeSet,
                         generation: generation, floor: floor, createdAt: Timestamp(seconds: createdAt),
                         updatedAt: Timestamp(seconds: updatedAt), expiresAt: Timestamp(seconds: expiresAt),
                         maxExpiresAt: Timestamp(seconds: maxExpiresAt), lastRotatedAt: lastRotatedAt.map(Timestamp.init(seconds:)),
                         revokedAt: revokedAt.map(Timestamp.init(seconds:)), revokedBy: revokedBy, lineage: ancestors,
                         overlap: try PATRow.overlap(id: id, generation: overlapGeneration, until: overlapUntil))
    }

    /// The overlap of two nullable columns, both set or both null.
    package static func overlap(id: String, generation: Int64?, until: Int64?) throws -> PATRecord.Overlap? {
        switch (generation, until) {
        case (nil, nil): return nil
        case (let generation?, let until?) where generation >= 1:
            return PATRecord.Overlap(generation: UInt64(generation), until: Timestamp(seconds: until))
        default: throw RegistryError(.database, "PAT \(id) has an unreadable overlap in the registry")
        }
    }
}

/// A row of `tombstones`.
struct TombstoneRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "tombstones"

    var jti: String
    var owner: String
    var horizon: Int64
    var deletedAt: Int64

    enum CodingKeys: String, CodingKey, ColumnExpression {
        case jti, owner, horizon
        case deletedAt = "deleted_at"
    }

    typealias Columns = CodingKeys

    init(_ t: Tombstone) {
        jti = t.id
        owner = t.owner
        horizon = t.horizon.seconds
        deletedAt = t.deletedAt.seconds
    }

    var tombstone: Tombstone {
        Tombstone(id: jti, owner: owner, horizon: Timestamp(seconds: horizon), deletedAt: Timestamp(seconds: deletedAt))
    }
}

/// A row of `owner_revocations`.
struct OwnerRevocationRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "owner_revocations"

    var owner: String
    var issuedBefore: Int64
    var horizon: Int64
    var revokedAt: Int64

    enum CodingKeys: String, CodingKey, ColumnExpression {
        case owner, horizon
        case issuedBefore = "issued_before", revokedAt = "revoked_at"
    }

    typealias Columns = CodingKeys

    init(_ r: OwnerRevocation) {
        owner = r.owner
        issuedBefore = r.issuedBefore.seconds
        horizon = r.horizon.seconds
        revokedAt = r.revokedAt.seconds
    }

    var revocation: OwnerRevocation {
        OwnerRevocation(owner: owner, issuedBefore: Timestamp(seconds: issuedBefore), horizon: Timestamp(seconds: horizon),
                        revokedAt: Timestamp(seconds: revokedAt))
    }
}

/// A row of `outbox`.
struct EventRow: Codable, FetchableRecord, MutablePersistableRecord {
    static let databaseTableName = "outbox"

    var id: Int64?
    var delivery: String
    var name: String
    var payload: Data
    var createdAt: Int64
    /// Who holds the event (a webhook dispatcher), until when (milliseconds since 1970).
    var claimedBy: String?
    var claimedUntil: Int64?

    enum CodingKeys: String, CodingKey, ColumnExpression {
        case id, delivery, name, payload
        case createdAt = "created_at", claimedBy = "claimed_by", claimedUntil = "claimed_until"
    }

    typealias Columns = CodingKeys

    init(_ e: ChangeEvent) {
        id = e.id == 0 ? nil : e.id
        delivery = e.delivery
        name = e.name
        payload = Data(e.payload)
        createdAt = e.createdAt.seconds
    }

    var event: ChangeEvent {
        ChangeEvent(id: id ?? 0, delivery: delivery, name: name, payload: [UInt8](payload), createdAt: Timestamp(seconds: createdAt))
    }
}

/// The `meta` table: named counters.
struct MetaRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "meta"
    static let publishSequence = "publish_sequence"
    static let changeCounter = "change_counter"

    var key: String
    var value: Int64

    static func value(_ db: Database, _ key: String) throws -> UInt64 {
        let value = try MetaRow.fetchOne(db, key: key)?.value ?? 0
        guard value >= 0 else { throw RegistryError(.database, "the stored \(key) \(value) is negative") }
        return UInt64(value)
    }

    static func set(_ db: Database, _ key: String, _ value: UInt64) throws {
        guard value <= UInt64(Int64.max) else { throw RegistryError(.invalid, "\(key) \(value) is too large") }
        try MetaRow(key: key, value: Int64(value)).save(db)
    }
}

/// A row of `leaks`.
struct LeakRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "leaks"

    var id: String
    var generation: Int64
    var reportedAt: Int64
    var url: String
    var source: String

    enum CodingKeys: String, CodingKey, ColumnExpression {
        case id, generation, url, source
        case reportedAt = "reported_at"
    }

    init(_ l: LeakRecord) {
        id = l.id
        generation = Int64(clamping: l.generation)
        reportedAt = l.reportedAt.seconds
        url = l.url
        source = l.source
    }

    var leak: LeakRecord {
        LeakRecord(id: id, generation: UInt64(max(0, generation)), reportedAt: Timestamp(seconds: reportedAt), url: url, source: source)
    }
}

/// A row of `pat_usage`.
struct UsageRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "pat_usage"

    var id: String
    var firstUsedAt: Int64
    var lastUsedAt: Int64
    var lastUsedFrom: String?
    var lastOutcome: String
    var uses: Int64

    enum CodingKeys: String, CodingKey, ColumnExpression {
        case id, uses
        case firstUsedAt = "first_used_at", lastUsedAt = "last_used_at", lastUsedFrom = "last_used_from", lastOutcome = "last_outcome"
    }

    typealias Columns = CodingKeys

    var usage: PATUsage {
        PATUsage(firstUsedAt: Timestamp(seconds: firstUsedAt), lastUsedAt: Timestamp(seconds: lastUsedAt), lastUsedFrom: lastUsedFrom,
                 lastOutcome: lastOutcome, uses: UInt64(max(0, uses)))
    }
}

/// A row of `pat_usage_days`.
struct UsageDayRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "pat_usage_days"

    var id: String
    var day: Int64
    var uses: Int64

    enum CodingKeys: String, CodingKey, ColumnExpression { case id, day, uses }
    typealias Columns = CodingKeys
}

/// A row of `expiry_notices`.
struct ExpiryNoticeRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "expiry_notices"

    var id: String
    var expiresAt: Int64
    var leadSeconds: Int64
    var sentAt: Int64

    enum CodingKeys: String, CodingKey, ColumnExpression {
        case id
        case expiresAt = "expires_at", leadSeconds = "lead_seconds", sentAt = "sent_at"
    }

    typealias Columns = CodingKeys
}

/// A row of `lifetime_policies`.
struct LifetimePolicyRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "lifetime_policies"

    var domain: String
    var maxLifetime: Int64
    var updatedAt: Int64

    enum CodingKeys: String, CodingKey, ColumnExpression {
        case domain
        case maxLifetime = "max_lifetime", updatedAt = "updated_at"
    }

    typealias Columns = CodingKeys

    init(_ p: LifetimePolicy) {
        domain = p.domain
        maxLifetime = p.maxLifetime.seconds
        updatedAt = p.updatedAt.seconds
    }

    var policy: LifetimePolicy {
        LifetimePolicy(domain: domain, maxLifetime: TimeSpan(seconds: maxLifetime), updatedAt: Timestamp(seconds: updatedAt))
    }
}
