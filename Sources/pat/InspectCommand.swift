import ArgumentParser
import PATKit
import PATManagement

/// `pat inspect`: what a token says about itself, without checking it. For an operator holding an
/// expired, revoked or foreign token who needs to know which PAT it is; never an access decision
/// (that is `pat verify`). Every line is labelled unverified.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Print a token's claims and footer WITHOUT verifying it (which PAT is this?).",
        discussion: """
            Nothing is checked: not the signature, not the expiry, not the revocation list. Anyone can \
            write a token that says anything; use `pat verify` to decide. Never prints the token itself, \
            only its fingerprint (the same as `pat scan` reports).
            Exit status: 0 the token could be decoded, 1 it could not, 2 usage error.
            """
    )

    @Argument(help: "The token (default: read from standard input).") var token: String?
    @Flag(help: "Print the result as JSON.") var json = false

    func run() throws {
        let text = try token.map(trimSurroundingWhitespace) ?? readTokenFromStandardInput()
        let fingerprint = TokenInspection.fingerprint(of: text)
        let parts: PASETOv4Public.Parts
        let claims: JSONValue
        do {
            parts = try PASETOv4Public.parse(text)
            claims = try JSONParser.parse(parts.message)
        } catch {
            throw CLIFailure(message: "not a decodable PASETO v4.public token (fingerprint \(fingerprint)): \(error)")
        }
        guard case .object(let claimObject) = claims else {
            throw CLIFailure(message: "the token's claims are not a JSON object (fingerprint \(fingerprint))")
        }
        // The footer is JSON for PATKit tokens ({"kid":"k4.pid…"}); anything else is shown as text.
        let footer: JSONValue = parts.footer.isEmpty ? .null
            : ((try? JSONParser.parse(parts.footer)) ?? .string(String(decoding: parts.footer, as: UTF8.self)))
        // Whether the claims have the shape of a PAT (the signature is still unknown).
        let shape: String? = {
            do throws(PATValidationError) { _ = try PATClaims(json: parts.message); return nil } catch { return error.reason }
        }()

        if json {
            var out = JSONObject()
            out.set("verified", .bool(false))
            out.set("fingerprint", .string(fingerprint))
            out.set("claims", .object(claimObject))
            out.set("footer", footer)
            out.set("patShape", shape.map { .string($0) } ?? .bool(true))
            emit(JSONValue.object(out).description)
            return
        }
        printError("UNVERIFIED: nothing below was checked (signature, expiry, revocation); `pat verify` decides.")
        emit("fingerprint: \(fingerprint)")
        emit("footer: \(Printable.escaped(footer.description))")
        if let shape { emit("not a PAT's claims: \(Printable.escaped(shape))") }
        emit("claims (unverified):")
        for line in prettyJSON(claimObject).split(separator: "\n", omittingEmptySubsequences: false) {
            emit(Printable.escaped(String(line))) // JSON escapes controls itself; bidi controls are not
        }
    }
}
