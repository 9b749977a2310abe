import Foundation
import PATKit
import PATManagement
import PATRegistry
import PATRegistryTestSupport
import PATServer
import PATStore
import PATTestSupport
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Publishing never silently stops (issue 12, item 2; the security review's M2: a failed
/// publish was never retried while the API answered "revoked").
@Suite("publishing never silently stops", .serialized, .timeLimit(.minutes(5)))
struct PublishFailureTests {
    static let path = ManagementRoutes.basePath

    /// M2: a publish fails (the registry cannot be written); nothing else happens — no API
    /// change, no CLI change, the timer a long way off (30 minutes) — and the retry alone
    /// publishes the change once the registry works again. On the old code the timer slept
    /// until its old deadline, so this wait ran out.
    @Test(arguments: RegistryBackend.allCases)
    func aFailedPublishIsRetriedUntilItSucceeds(_ backend: RegistryBackend) async throws {
        let home = try await ManagementHome(backend)
        let victim = try await home.issue(owner: "ivan", name: "victim", scopes: ["clients:view"])
        let (republisher, validator) = try await Self.republisher(home, retryInterval: .milliseconds(200))
        #expect(republisher.interval == .seconds(1800), "no timer round within the test")
        let running = Task { try await republisher.run() }
        defer { running.cancel() }
        try await awaitEvent("the start's announcement is published") { try await republisher.waitUntilExternalPublishes(1) }

        _ = try await home.service.revoke(id: victim.record.id, by: .localOperator) // committed (as `pat revoke` would)
        home.store.failWrites.store(true, ordering: .relaxed)                      // …but every publish now fails
        let publication = await republisher.publishChange(reason: "revoke")
        guard case .failed(let reason) = publication else {
            Issue.record("the publish should have failed: \(publication)")
            return
        }
        #expect(reason.contains(FlakyStore.internalDetail))
        let failing = republisher.status
        #expect(failing.isFailing && failing.unpublishedChanges >= 1 && failing.consecutiveFailures >= 1, "\(failing)")
        #expect(failing.lastError?.contains(FlakyStore.internalDetail) == true)
        #expect(failing.nextRetryIn != nil, "a retry is scheduled")
        #expect(republisher.publication == .failed(reason: failing.lastError ?? ""))

        home.store.failWrites.store(false, ordering: .relaxed)
        try await awaitEvent("a retry publishes the revocation, with no other change to trigger it") {
            try await republisher.waitUntilChangesPublished()
        }
        let recovered = republisher.status
        #expect(!recovered.isFailing && recovered.unpublishedChanges == 0 && recovered.nextRetryIn == nil)
        #expect(recovered.failures >= 1 && recovered.publishes >= 2)
        #expect(validationCode { try publishedValidator(home.home).validate(victim.bearer) } == .revoked, "the files hold it")
        #expect(validationCode { try validator.validate(victim.bearer) } == .revoked, "and the API's validator")
        running.cancel()
        try await withTimeLimit(.seconds(60), "the republisher to stop") { try await running.value }
    }

    /// The fault test's worst case: the folder stays broken long enough for the backoff to grow
    /// (here the first retry alone is ten minutes away). The republisher probes the folder while
    /// publishes fail, so restoring it publishes at once rather than at the backoff. On code
    /// without the probe this wait runs out.
    @Test(arguments: RegistryBackend.allCases)
    func aRestoredFolderIsPublishedWithoutWaitingForTheBackoff(_ backend: RegistryBackend) async throws {
        let home = try await ManagementHome(backend)
        let victim = try await home.issue(owner: "ivan", name: "victim", scopes: ["clients:view"])
        let (republisher, validator) = try await Self.republisher(home, retryInterval: .seconds(600))
        #expect(republisher.interval == .seconds(1800), "no timer round within the test")
        let running = Task { try await republisher.run() }
        defer { running.cancel() }
        try await awaitEvent("the start's announcement is published") { try await republisher.waitUntilExternalPublishes(1) }

        let fault = try PublishedFolderFault(home.home)
        try fault.breakFolder()
        _ = try await home.service.revoke(id: victim.record.id, by: .localOperator)
        #expect(await republisher.publishChange(reason: "revoke").isPublished == false)
        let failing = republisher.status
        #expect(failing.isFailing && failing.unpublishedChanges >= 1, "\(failing)")
        #expect(try #require(failing.nextRetryIn) > .seconds(500), "the backoff's retry is far away")
        try await awaitEvent("a probe finds the folder unwritable") { try await republisher.waitUntilOutputProbedUnwritable() }
        #expect(republisher.status.publishedFolderWritable == false)
        #expect(republisher.status.json["publishedFolderWritable"] == .bool(false))

        try fault.restore()
        try await awaitEvent("the restored folder is published at the next probe, not at the backoff", within: .seconds(60)) {
            try await republisher.waitUntilChangesPublished()
        }
        let recovered = republisher.status
        #expect(!recovered.isFailing && recovered.unpublishedChanges == 0 && recovered.publishedFolderWritable == nil)
        #expect(validationCode { try publishedValidator(home.home).validate(victim.bearer) } == .revoked)
        #expect(validationCode { try validator.validate(victim.bearer) } == .revoked)
        running.cancel()
        try await withTimeLimit(.seconds(60), "the republisher to stop") { try await running.value }
    }

    /// The fault test: the published folder made unwritable in the middle of API traffic, then
    /// restored. While it is broken every change is recorded and answered `"published": false`
    /// with a warning, and `/status` answers 503 with the unpublished changes and the error; the
    /// traffic stops when the folder is restored (the worst case: no later change publishes for
    /// it), and the retry enforces every change made meanwhile — the event "enforced": every
    /// token revoked meanwhile refused by the served list and by the API. How long that takes is
    /// measured by `scripts/publish-faults.py fault`, not asserted here.
    @Test(arguments: RegistryBackend.allCases)
    func theFolderUnwritableMidTrafficThenRestored(_ backend: RegistryBackend) async throws {
        let home = try await ManagementHome(backend)
        var victims: [IssuedPAT] = []
        for index in 0..<8 { victims.append(try await home.issue(owner: "olga", name: "v\(index)", scopes: ["pats:read"])) }
        let logs = LogSink()
        try await withManagementServer(home, logger: logs.logger()) { base, management in
            let api = base + Self.path
            // Background traffic: creates, until told to stop.
            let stop = Atomic<Bool>(false)
            let traffic = Task {
                var answers: [(Int, Bool?)] = []
                var index = 0
                while !stop.load(ordering: .relaxed), !Task.isCancelled {
                    let created = try await request(api, method: .POST, token: home.adminToken,
                                                    body: #"{"name": "t\#(index)", "owner": "tess", "scopes": ["clients:view"]}"#)
                    answers.append((created.status, try? created.object()["published"] as? Bool))
                    index += 1
                }
                return answers
            }
            defer { traffic.cancel() }

            // Before the fault: a revoke is published.
            let first = try await request("\(api)/\(victims[0].record.id)/revoke", method: .POST, token: home.adminToken)
            #expect(first.status == 200)
            #expect(try first.object()["published"] as? Bool == true)
            #expect(try first.object()["warning"] == nil)

            let fault = try PublishedFolderFault(home.home)
            try fault.breakFolder()
            var revokedMeanwhile: [IssuedPAT] = []
            for victim in victims[1...5] {
                let answer = try await request("\(api)/\(victim.record.id)/revoke", method: .POST, token: home.adminToken)
                #expect(answer.status == 200, "the change itself is recorded: \(answer.text)")
                let object = try answer.object()
                #expect(object["status"] as? String == "revoked")
                #expect(object["published"] as? Bool == false, "and the answer says it is not published: \(answer.text)")
                #expect((object["warning"] as? String)?.contains("verifiers do not see it") == true)
                #expect(!answer.text.contains(home.home.publishedDirectory), "the cause is not sent to API clients")
                revokedMeanwhile.append(victim)
            }
            let deleted = try await request("\(api)/\(victims[6].record.id)", method: .DELETE, token: home.adminToken)
            #expect(deleted.status == 200, "a delete answers 200 with a body when it could not be published")
            #expect(try deleted.object()["published"] as? Bool == false)
            revokedMeanwhile.append(victims[6])

            let status = try await http(base + "/status")
            #expect(status.status == 503, "\(status.text)")
            let statusObject = try status.object()
            #expect(statusObject["ready"] as? Bool == false)
            #expect((statusObject["reason"] as? String)?.contains("publishing the revocation list fails") == true)
            let publishing = try #require(statusObject["publishing"] as? [String: Any])
            #expect((publishing["unpublishedChanges"] as? Int ?? 0) >= revokedMeanwhile.count)
            #expect(publishing["failing"] as? Bool == true)
            #expect((publishing["lastError"] as? String)?.isEmpty == false)
            #expect(publishing["nextRetryInMilliseconds"] is Int)
            #expect(management.republisher.status.isFailing)
            for victim in revokedMeanwhile.dropLast() {
                let seen = try await request("\(api)/\(victim.record.id)", method: .GET, token: victim.bearer)
                #expect(seen.status == 200, "not yet enforced while the folder is broken: \(seen.status)")
            }

            // Restore; the traffic stops with it, so only the retry can publish.
            stop.store(true, ordering: .relaxed)
            let answers = try await withTimeLimit(.seconds(60), "the traffic to stop") { try await traffic.value }
            try fault.restore()
            try await awaitEvent("enforced: the retry publishes every change made meanwhile") {
                try await management.republisher.waitUntilChangesPublished()
            }
            let served = try await ManagementCommandTests.servedValidator(Int(base.split(separator: ":").last ?? "0") ?? 0,
                                                                         anchors: try #require(try home.home.keyStore.trustAnchors()))
            for victim in revokedMeanwhile {
                #expect(validationCode { try served.validate(victim.bearer) } == .revoked, "the served list refuses \(victim.record.name)")
                #expect(try await request("\(api)/\(victim.record.id)", method: .GET, token: victim.bearer).status == 401,
                        "and so does the API")
            }
            #expect(throws: Never.self, "a PAT nobody revoked still passes") { try served.validate(victims[7].bearer) }
            let after = try await http(base + "/status")
            #expect(after.status == 200, "\(after.text)")
            #expect((try after.object()["publishing"] as? [String: Any])?["unpublishedChanges"] as? Int == 0)

            // Every create of the traffic was recorded and answered; those made while the folder was
            // broken say they were not published.
            #expect(answers.allSatisfy { $0.0 == 201 }, "\(answers.map(\.0))")
            #expect(answers.allSatisfy { $0.1 != nil }, "every change's answer says whether it is published")
            // The log said it failed, at error level once, and that it works again.
            #expect(logs.all.filter { $0.hasPrefix("error publishing the revocation list failed") }.count == 1,
                    "\(logs.all.filter { $0.contains("publishing") })")
            #expect(logs.all.contains { $0.hasPrefix("notice publishing works again") })
        }
    }
    /// A republisher of `home` (the timer 30 minutes away) feeding the API's validator, its first
    /// list published. Run it, then await `waitUntilExternalPublishes(1)`: the store's first
    /// announcement (every listener gets one at the start) is published before the scenario, so
    /// that no late one is counted among its changes.
    static func republisher(_ home: ManagementHome, retryInterval: Duration) async throws -> (Republisher, Validator) {
        let publisher = Publisher(store: home.store, keyStore: home.home.keyStore, outputDirectory: home.home.publishedDirectory)
        let validator = Validator(keys: try home.home.keyStore.keySet())
        let republisher = Republisher(publisher: publisher, validator: validator, retryInterval: retryInterval, logger: quietLogger())
        try await republisher.publishNow()
        return (republisher, validator)
    }
}

/// Makes `HOME/published` unwritable for the publisher and restores it: the folder is made
/// read-only (mode 0500, which root ignores) and its `revocations.bin` is replaced by a
/// directory, so no new list can be renamed into place even for root. Restoring puts the
/// previous list back as it was.
struct PublishedFolderFault {
    let directory: String
    let list: String
    let saved: String

    init(_ home: PATHome) throws {
        directory = home.publishedDirectory
        list = home.publishedRevocationsPath
        saved = directory + "/../revocations.bin.saved-by-test"
    }

    func breakFolder() throws {
        guard rename(list, saved) == 0, mkdir(list, 0o700) == 0, chmod(directory, 0o500) == 0 else {
            throw TestFailure("cannot break \(directory): errno \(errno)")
        }
    }

    func restore() throws {
        guard chmod(directory, 0o700) == 0, rmdir(list) == 0, rename(saved, list) == 0 else {
            throw TestFailure("cannot restore \(directory): errno \(errno)")
        }
    }
}
