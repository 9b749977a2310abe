import PATKit

/// What changed in the revocation list's rows after a published sequence
/// (`RegistryTransaction.listChanges(after:)`): the PAT ids and owners whose rows were
/// inserted, updated or deleted since, and those rows as they are now — a key listed with no
/// row lost its entry.
public struct ListChanges: Sendable, Equatable {
    /// PAT ids whose superseded entry, overlap or tombstone changed.
    public var ids: [String]
    /// Owners whose revoke-all changed.
    public var owners: [String]
    /// The superseded entries of `ids` (live records with a floor above 1).
    public var superseded: [SupersededEntry]
    /// The tombstones of `ids`.
    public var tombstones: [Tombstone]
    /// The owner revocations of `owners`.
    public var ownerRevocations: [OwnerRevocation]

    public init(ids: [String] = [], owners: [String] = [], superseded: [SupersededEntry] = [], tombstones: [Tombstone] = [],
                ownerRevocations: [OwnerRevocation] = []) {
        self.ids = ids
        self.owners = owners
        self.superseded = superseded
        self.tombstones = tombstones
        self.ownerRevocations = ownerRevocations
    }

    /// How many sequences of changes a registry keeps: a publisher holding a list older than
    /// this many sequences rebuilds it whole.
    public static let retainedSequences: UInt64 = 1000
}
