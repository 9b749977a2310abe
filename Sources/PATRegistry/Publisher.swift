#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import PATStore

/// What one `publish()` wrote.
public struct PublishResult: Sendable {
    public let sequence: UInt64
    public let issuedAt: Timestamp
    public let nextUpdate: Timestamp
    public let signer: KeyID
    /// Token entries (id → floor) in the list.
    public let tokenEntries: Int
    /// Owner (revoke-all) entries in the list.
    public let ownerEntries: Int
    /// Entries left out because their horizon passed (every token they killed has expired),
    /// tombstones and owner revocations among them being removed from the registry too. An
    /// update of the cached list counts those dropped since that list; a whole rebuild counts
    /// every such entry the registry still holds.
    public let pruned: Int
    public let revocationsPath: String
    public let keysPath: String
    /// The signed list as signed.
    public let bytes: [UInt8]
    /// The same list, verified with the published key set.
    public let list: RevocationList
    /// The signed delta from the list this one replaced in `DIR` to this one
    /// (`DIR/revocations.delta`); nil when there was no verifiable previous list, or the files
    /// were left alone.
    public let delta: [UInt8]?
    /// Set when the files were left alone because a list with this higher sequence was
    /// written meanwhile (by another process or task); it holds every change this one holds.
    public let supersededBy: UInt64?
    /// The signed key set published beside it (re-signed now with an online anchor, or the
    /// offline-signed set already there); nil when the files were left alone.
    public let keySet: SignedKeySet?
    /// True when the key set was signed by this run (online anchor).
    public let keySetSignedNow: Bool
    /// The online trust anchor this run created for a home that had none.
    public let createdAnchor: KeyID?
    /// Something the operator should act on about the key set (offline anchor), or nil.
    public let keySetWarning: String?
}

/// Publishes what verifiers fetch: the signed revocation list built from the registry and the
/// public key set.
///
/// Each run reads the registry in one transaction that first takes the next sequence number
/// (strictly increasing, at most 2^53 − 1: kept in the store — on PostgreSQL under a row lock, so
/// that publishers on several nodes take turns — and also above the sequence of the list already in
/// `DIR` when that list verifies with the keystore's keys: a planted or garbled file is never
/// trusted), then prunes entries more than `leeway` past their horizon, stamps the logged list
/// changes with the sequence (`RegistryTransaction.stampListChanges`) and reads the entries — all
/// of them, or, with a `cache` holding the last list this publisher built, only those of the PAT
/// ids and owners changed since, the rest carried over from that list (`PublisherCache`,
/// `RevocationList.Builder.sign(updating:…)`: the same bytes); signs with the keystore's signing
/// key, writing `leeway` into the list as its prune margin; then, under an exclusive lock on
/// `DIR/.lock`, writes the signed key set `DIR/keys.json` (`KeyStore.publishableKeySet`: signed now
/// with an online anchor, or the offline-signed one kept), the signed delta from the list in place
/// to the new one `DIR/revocations.delta` (what distribution endpoints answer `?since=` with) and
/// `DIR/revocations.bin`, each atomically (temporary file, fsync, rename; the delta before the list
/// it leads to) — unless a list with a higher sequence was written meanwhile: it was read from the
/// registry later, so it already holds every change this one holds. A crash leaves the previous
/// files intact; running it twice without changes only publishes the same entries under a new
/// sequence.
public struct Publisher: Sendable {
    public let store: any PATRegistryStore
    public let keyStore: KeyStore
    /// Where `revocations.bin` and `keys.json` go.
    public var outputDirectory: String
    /// How long until verifiers should fetch a new list (default 1 hour).
    public var nextUpdateInterval: TimeSpan
    /// Entries stay until their horizon is this many seconds in the past, so that a verifier
    /// whose clock-skew leeway still accepts a token also still refuses it. Written into the
    /// list as its prune margin: verifiers refuse the list when their leeway is larger.
    public var leeway: Int64
    public var clock: @Sendable () -> Timestamp
    /// The last list published, for signing the next one as an update of it (`pat serve`);
    /// nil: every publish rebuilds the list whole (`pat publish`).
    public var cache: PublisherCache?
    /// Test seam: end the process with status 99 once the new list's temporary file is written
    /// and synced, just before the rename — as a crash at the worst moment would.
    public var crashBeforeRename = false

    public static let defaultNextUpdateInterval = TimeSpan(seconds: 3600)
    public static let revocationsFileName = "revocations.bin"
    public static let deltaFileName = "revocations.delta"
    public static let keysFileName = "keys.json"

    public init(store: any PATRegistryStore, keyStore: KeyStore, outputDirectory: String,
                nextUpdateInterval: TimeSpan = Publisher.defaultNextUpdateInterval, leeway: Int64 = 60,
                clock: @escaping @Sendable () -> Timestamp = { Timestamp.now() }) {
        self.store = store
        self.keyStore = keyStore
        self.outputDirectory = outputDirectory
        self.nextUpdateInterval = nextUpdateInterval
        self.leeway = leeway
        self.clock = clock
    }

    public var revocationsPath: String { outputDirectory + "/" + Publisher.revocationsFileName }
    public var keysPath: String { outputDirectory + "/" + Publisher.keysFileName }
    public var deltaPath: String { outputDirectory + "/" + Publisher.deltaFileName }

    @discardableResult
    public func publish() async throws -> PublishResult {
        let now = clock()
        let key = try keyStore.signingKey()
        let keys = try keyStore.keySet()
        let leeway = self.leeway
        let base = cache?.base(pruneMargin: leeway, now: now)
        let previous = base.flatMap { heldListIsInPlace($0) ? $0.list.sequence : nil }
            ?? Publisher.verifiedSequence(ofListAt: revocationsPath, keys: keys)

        struct Snapshot: Sendable {
            var builder: RevocationList.Builder
            var sequence: UInt64
            var pruned: Int
            /// Set when only these keys' entries were read (an update of the cached list).
            var changed: (tokens: Set<EntryKey>, owners: Set<EntryKey>)?
        }
        let snapshot = try await store.write { tx -> Snapshot in
            // The sequence first: in a write transaction it also makes this the only publisher
            // (on every node), so everything read below holds every change committed before it.
            let stored = try await tx.publishSequence()
            let cutoff = now.adding(seconds: -leeway)
            var pruned = try await tx.removeTombstones(horizonBefore: cutoff)
            pruned += try await tx.removeOwnerRevocations(horizonBefore: cutoff)
            let sequence = try SignedDocument.nextSequence(after: max(stored, previous ?? 0), "revocation list")
            // After the removals above, whose changes this stamp covers too.
            let forget = sequence > ListChanges.retainedSequences ? sequence - ListChanges.retainedSequences : 0
            try await tx.stampListChanges(sequence, forgettingThrough: forget)
            try await tx.setPublishSequence(sequence)
            var builder = RevocationList.Builder()
            if let base, base.list.sequence <= stored, base.list.sequence >= forget {
                let changes = try await tx.listChanges(after: base.list.sequence)
                Publisher.add(superseded: changes.superseded, tombstones: changes.tombstones, owners: changes.ownerRevocations,
                              to: &builder)
                return Snapshot(builder: builder, sequence: sequence, pruned: pruned,
                                changed: (Set(changes.ids.map(RevocationList.tokenKey)), Set(changes.owners.map(RevocationList.ownerKey))))
            }
            let superseded = try await tx.supersededEntries(), deleted = try await tx.tombstones()
            let owners = try await tx.ownerRevocations()
            builder.reserveCapacity(tokens: superseded.count + deleted.count, owners: owners.count)
            Publisher.add(superseded: superseded, tombstones: deleted, owners: owners, to: &builder)
            pruned += builder.prune(now: now, margin: leeway)
            return Snapshot(builder: builder, sequence: sequence, pruned: pruned, changed: nil)
        }

        let nextUpdate = now.adding(seconds: nextUpdateInterval.seconds)
        let bytes: [UInt8], pruned: Int
        if let changed = snapshot.changed, let base {
            let update = try snapshot.builder.sign(updating: base.list, changedTokens: changed.tokens, changedOwners: changed.owners,
                                                   now: now, with: key, sequence: snapshot.sequence, issuedAt: now,
                                                   nextUpdate: nextUpdate, pruneMargin: leeway)
            (bytes, pruned) = (update.bytes, snapshot.pruned + update.pruned)
        } else {
            bytes = try snapshot.builder.sign(with: key, sequence: snapshot.sequence, issuedAt: now, nextUpdate: nextUpdate,
                                              pruneMargin: leeway)
            pruned = snapshot.pruned
        }
        let written = try await offload { [self] in
            try writeFiles(list: bytes, sequence: snapshot.sequence, signer: key, keys: keys, now: now, held: base)
        }
        let list = written.list
        if written.supersededBy == nil, let cache {
            let updated = snapshot.changed != nil
            cache.keep(PublisherCache.Held(list: list, file: written.file, pruneMargin: leeway,
                                           wholeAt: updated ? base?.wholeAt ?? .now : .now), updated: updated)
        }
        return PublishResult(sequence: list.sequence, issuedAt: list.issuedAt, nextUpdate: list.nextUpdate, signer: list.signer,
                             tokenEntries: list.tokenEntryCount, ownerEntries: list.ownerEntryCount, pruned: pruned,
                             revocationsPath: revocationsPath, keysPath: keysPath, bytes: bytes, list: list, delta: written.delta,
                             supersededBy: written.supersededBy,
                             keySet: written.keySet?.keySet, keySetSignedNow: written.keySet?.signedNow ?? false,
                             createdAnchor: written.keySet?.createdAnchor, keySetWarning: written.keySet?.warning)
    }

    /// Feeds registry rows to a builder: a superseded PAT's floor and overlap, a deleted PAT, an
    /// owner's revoke-all.
    private static func add(superseded: [SupersededEntry], tombstones: [Tombstone], owners: [OwnerRevocation],
                            to builder: inout RevocationList.Builder) {
        for entry in superseded {
            builder.revoke(id: entry.id, below: entry.floor, horizon: entry.horizon)
            if let overlap = entry.overlap { builder.keep(id: entry.id, generation: overlap.generation, until: overlap.until) }
        }
        for tombstone in tombstones {
            builder.delete(id: tombstone.id, horizon: tombstone.horizon)
        }
        for revocation in owners {
            builder.revokeAll(subject: revocation.owner, issuedBefore: revocation.issuedBefore, horizon: revocation.horizon)
        }
    }

    /// Whether the list file is still the one this publisher wrote for `held` (same file, same
    /// version): its contents are then known without reading them.
    private func heldListIsInPlace(_ held: PublisherCache.Held) -> Bool {
        guard let file = held.file else { return false }
        return (try? SecureFile.identity(revocationsPath)) == file
    }

    private struct Written: Sendable {
        let list: RevocationList
        let keySet: KeySetPublication?
        let delta: [UInt8]?
        let supersededBy: UInt64?
        /// The list file as written.
        let file: SecureFile.Identity?
    }

    /// Under the directory lock: unless the list in place has a higher (verified) sequence,
    /// signs or keeps the key set (`KeyStore.publishableKeySet`), checks that verifiers holding
    /// it accept the list, signs the delta from the list in place, and writes the files.
    private func writeFiles(list bytes: [UInt8], sequence: UInt64, signer: SecretKey, keys: KeySet, now: Timestamp,
                            held: PublisherCache.Held?) throws -> Written {
        try SecureFile.createDirectory(outputDirectory, mode: 0o700)
        return try FileLock(path: outputDirectory + "/.lock").withLock { () throws -> Written in
            removeStaleTemporaryFiles()
            let previous = held.flatMap { heldListIsInPlace($0) ? $0.list : nil } ?? Publisher.verifiedList(at: revocationsPath, keys: keys)
            if let held = previous?.sequence, held > sequence {
                return Written(list: try RevocationList(verifying: bytes, keys: keys), keySet: nil, delta: nil, supersededBy: held, file: nil)
            }
            let keySet = try keyStore.publishableKeySet(publishedPath: keysPath, listSigner: signer.id, now: now,
                                                        validity: nextUpdateInterval)
            // Never publish a list that verifiers holding the published key set would refuse.
            let list = try RevocationList(verifying: bytes, keys: keySet.keySet.keys)
            // The step from the list in place: what an edge holding it fetches instead of the list.
            let delta = try previous.flatMap { previous throws -> [UInt8]? in
                previous.sequence < sequence ? try RevocationDelta.make(from: previous, to: list, signedWith: signer) : nil
            }
            if keySet.signedNow { try SecureFile.writeAtomically(keysPath, keySet.keySet.bytes, mode: 0o644) }
            if let delta {
                try SecureFile.writeAtomically(deltaPath, delta, mode: 0o644)
            } else if SecureFile.exists(deltaPath) {
                unlink(deltaPath) // a delta to an older list must not sit beside this one
            }
            let crash = crashBeforeRename
            try SecureFile.writeAtomically(revocationsPath, bytes, mode: 0o644, beforeRename: { if crash { _exit(99) } })
            return Written(list: list, keySet: keySet, delta: delta, supersededBy: nil, file: try? SecureFile.identity(revocationsPath))
        }
    }

    /// The sequence of the list at `path` when it verifies with one of `keys`' keys, retired
    /// ones included (a list signed before a rotation still counts); nil when there is no list
    /// or it does not verify. An unverified header is never trusted: a planted file with a huge
    /// sequence must neither crash nor wedge publishing.
    public static func verifiedSequence(ofListAt path: String, keys: KeySet) -> UInt64? {
        verifiedList(at: path, keys: keys)?.sequence
    }

    /// A cheap look — no registry, no signature, no lock — at whether a publish could write its
    /// files now: the output directory is a directory, each file's path is absent or a regular
    /// file, and a file can be created in the directory (the probe, `revocations.bin.tmp-probe-…`,
    /// is removed at once; a crashed probe's is swept with the other temporary files). While
    /// publishes fail, the republisher looks every quarter second and retries as soon as a broken
    /// folder is writable again, instead of at its backoff (up to a minute away).
    public func outputLooksWritable() async -> Bool {
        let directory = outputDirectory, files = [revocationsPath, keysPath]
        return (try? await offload { Publisher.probeOutput(directory: directory, files: files) }) ?? false
    }

    private static func probeOutput(directory: String, files: [String]) -> Bool {
        var info = stat()
        guard lstat(directory, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else { return false }
        for path in files {
            if lstat(path, &info) == 0 {
                guard (info.st_mode & S_IFMT) == S_IFREG else { return false }
            } else if errno != ENOENT {
                return false
            }
        }
        let probe = directory + "/" + revocationsFileName + ".tmp-probe-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        close(fd)
        unlink(probe)
        return true
    }

    /// The list at `path` when it verifies with one of `keys`' keys, retired ones included.
    static func verifiedList(at path: String, keys: KeySet) -> RevocationList? {
        guard SecureFile.exists(path), let bytes = try? SecureFile.read(path, maxBytes: RevocationList.defaultMaxBytes) else { return nil }
        let everyKey = KeySet(keys: keys.entries.map(\.key))
        return try? RevocationList(verifying: bytes, keys: everyKey)
    }

    /// Removes `revocations.bin.tmp-*`, `revocations.delta.tmp-*` and `keys.json.tmp-*` left by a crashed run. Called
    /// with the lock held, so no other publisher is writing them.
    private func removeStaleTemporaryFiles() {
        guard let dir = opendir(outputDirectory) else { return }
        defer { closedir(dir) }
        let prefixes = [Publisher.revocationsFileName + ".tmp-", Publisher.keysFileName + ".tmp-", Publisher.deltaFileName + ".tmp-"]
        var stale: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if prefixes.contains(where: { name.hasPrefix($0) }) { stale.append(name) }
        }
        for name in stale { unlink(outputDirectory + "/" + name) }
    }
}

/// Runs blocking work (file locks, fsync) on a Dispatch worker thread and awaits it, so that
/// the caller's thread (the cooperative pool) never blocks on the file system.
func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        DispatchQueue.global(qos: .userInitiated).async { continuation.resume(with: Result { try body() }) }
    }
}
