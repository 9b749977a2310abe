import Foundation
import GRDB
import PATStore

// The SQLite rows, mapped by GRDB's Codable record protocols. Each converts to and from the
// back-end-neutral value the store protocol speaks (PATRecord, Tombstone, …).

/// A row of `pats`.
struct PATRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "pats"

    var id: String
    var owner: String
    var domain: String?
    var name: String
    var description: String?
    /// The `scope` claim form.
    var scopes: String
    var generation: UInt64
    var floor: UInt64
    var createdAt: Int64
    var updatedAt: Int64
    var expiresAt: Int64
    var maxExpiresAt: Int64
    var lastRotatedAt: Int64?
    var revokedAt: Int64?
    /// JSON (GRDB encodes nested Codable values as JSON text).
    var revokedBy: Principal?
    /// The lineage, `"<id>.<gen>"` entries space-separated.
    var lineage: String

    enum CodingKeys: String, CodingKey, ColumnExpression {
        case id, owner, domain, name, description, scopes, generation, floor, lineage
        case createdAt = "created_at", updatedAt = "updated_at", expiresAt = "expires_at", maxExpiresAt = "max_expires_at"
        case lastRotatedAt = "last_rotated_at", revokedAt = "revoked_at", revokedBy = "revoked_by"
    }

    typealias Columns = CodingKeys

    init(_ r: PATRecord) {
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
    }

    func record() throws -> PATRecord {
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
                         revokedAt: revokedAt.map(Timestamp.init(seconds:)), revokedBy: revokedBy, lineage: ancestors)
    }
}

/// The three columns of `pats` a revocation-list entry needs.
struct SupersededRow: Decodable, FetchableRecord {
    var id: String
    var floor: UInt64
    var maxExpiresAt: Int64

    enum CodingKeys: String, CodingKey { case id, floor, maxExpiresAt = "max_expires_at" }

    func entry() throws -> SupersededEntry {
        SupersededEntry(id: id, floor: floor, horizon: Timestamp(seconds: maxExpiresAt))
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

    enum CodingKeys: String, CodingKey, ColumnExpression {
        case id, delivery, name, payload
        case createdAt = "created_at"
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
