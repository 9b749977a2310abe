internal import CSodium

/// Which PATKit this is, and which libsodium it runs on (for `pat --version`, bug reports and
/// a service's own version endpoint).
public enum PATKitVersion {
    /// PATKit's version (semantic versioning).
    public static let string = "0.1.0"
    /// The libsodium loaded by this process, as it reports itself (e.g. "1.0.18").
    public static var libsodium: String { String(cString: sodium_version_string()) }
}
