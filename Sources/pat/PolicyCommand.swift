import ArgumentParser
import PATKit
import PATManagement
import PATRegistry
import PATStore

// `pat policy`: the lifetime policy per domain, data in the registry that every `pat create`,
// `pat regenerate` and `pat serve` node reads.

struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Set the longest lifetime PATs of a domain may be issued with (stored in the registry).",
        discussion: """
            A domain's policy bounds every create and regenerate of a token in that domain, through the CLI and \
            every pat serve node on the registry: the stricter of it and the global --max-lifetime (1y by default) \
            applies, and a default lifetime longer than it is cut to it. Tokens already issued keep their expiry. \
            Domains are compared byte for byte.
            """,
        subcommands: [ListPolicies.self, SetPolicy.self, UnsetPolicy.self])

    struct ListPolicies: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the domains' lifetime policies.")
        @OptionGroup var home: HomeOption
        @OptionGroup var database: DatabaseOption
        @Flag(help: "Print a JSON array.") var json = false

        func run() async throws {
            let service = try await openService(home.resolved, database, readingOnly: true)
            let policies = try await operatorCall { try await service.lifetimePolicies(by: .localOperator) }
            if json {
                emit(JSONValue.array(policies.map { policy in
                    var o = JSONObject()
                    o.set("domain", .string(policy.domain))
                    o.set("maxLifetime", .string(formatDuration(policy.maxLifetime.seconds)))
                    o.set("maxLifetimeSeconds", .number(String(policy.maxLifetime.seconds)))
                    o.set("updatedAt", .string(policy.updatedAt.rfc3339))
                    return .object(o)
                }).description)
                return
            }
            guard !policies.isEmpty else {
                printError("no lifetime policies: every domain has the global maximum (--max-lifetime, 1y by default)")
                return
            }
            emit(table([["DOMAIN", "MAX LIFETIME", "UPDATED"]] + policies.map {
                [Printable.clip($0.domain, 64), formatDuration($0.maxLifetime.seconds), $0.updatedAt.rfc3339]
            }))
        }
    }

    struct SetPolicy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set", abstract: "Set a domain's maximum lifetime.")
        @OptionGroup var home: HomeOption
        @OptionGroup var database: DatabaseOption
        @Argument(help: "The domain (dom).") var domain: String
        @Option(name: .customLong("max-lifetime"), parsing: .unconditional, help: ArgumentHelp("The longest lifetime: 45s, 90m, 12h, 30d, 2w, 1y.", valueName: "DURATION"))
        var maxLifetime: String
        @Flag(help: "Print the policy as one JSON object.") var json = false

        func validate() throws { _ = try parseSpan(maxLifetime, option: "--max-lifetime") }

        func run() async throws {
            let service = try await openService(home.resolved, database)
            let span = try parseSpan(maxLifetime, option: "--max-lifetime")
            let policy = try await operatorCall(options: ["maxLifetime": "--max-lifetime"]) {
                try await service.setLifetimePolicy(domain: domain, maxLifetime: span, by: .localOperator)
            }
            if json {
                var o = JSONObject()
                o.set("domain", .string(policy.domain))
                o.set("maxLifetime", .string(formatDuration(policy.maxLifetime.seconds)))
                o.set("maxLifetimeSeconds", .number(String(policy.maxLifetime.seconds)))
                o.set("updatedAt", .string(policy.updatedAt.rfc3339))
                return emit(JSONValue.object(o).description)
            }
            emit("PATs of domain \(Printable.escaped(policy.domain)) are now issued for at most \(formatDuration(policy.maxLifetime.seconds)) "
                 + "(tokens already issued keep their expiry)")
        }
    }

    struct UnsetPolicy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "unset", abstract: "Remove a domain's policy (the global maximum applies again).")
        @OptionGroup var home: HomeOption
        @OptionGroup var database: DatabaseOption
        @Argument(help: "The domain (dom).") var domain: String
        @Flag(help: "Print {\"domain\": DOMAIN, \"changed\": BOOL}.") var json = false

        func run() async throws {
            let service = try await openService(home.resolved, database)
            let removed = try await operatorCall { try await service.removeLifetimePolicy(domain: domain, by: .localOperator) }
            if json {
                var o = JSONObject()
                o.set("domain", .string(domain))
                o.set("changed", .bool(removed))
                return emit(JSONValue.object(o).description)
            }
            emit(removed ? "removed the lifetime policy of domain \(Printable.escaped(domain))"
                 : "domain \(Printable.escaped(domain)) had no lifetime policy; nothing changed")
        }
    }
}
