// The `Server` package trait (Package.swift): on by default; the quick start builds `pat`
// without it. Every command and option exists either way; what needs the server side fails
// here, the same way everywhere, rather than behave differently.

/// What this `pat` was built with.
enum ServerTrait {
    #if Server
    static let isEnabled = true
    #else
    static let isEnabled = false
    #endif

    /// What a `pat` built without the trait says of `feature`, and how to build the one that has it.
    static func message(_ feature: String) -> String {
        "\(feature) needs the server side, which this pat was built without (the quick start's light build, "
            + "`swift build --product pat --disable-default-traits`): build the full pat with `swift build --product pat`"
    }

    /// The failure of `feature` in a `pat` built without the trait: a usage error (exit 2, JSON
    /// code `invalid_input`), as `--database postgres://…` is one there (`DatabaseOption.validate`).
    static func missing(_ feature: String) -> CLIFailure {
        CLIFailure(message: message(feature), status: 2)
    }
}
