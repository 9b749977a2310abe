/// Text from users (names, descriptions, owners, ids) made safe to show on a terminal or in a
/// message: control characters (C0, DEL, C1) and the invisible bidirectional-text controls
/// are written as `\u001b`-style escapes, so that a name cannot clear the screen, move the
/// cursor, set the window title, fake a line of output or reorder what is shown. JSON output
/// stays exact: JSON escapes what it must by itself.
package enum Printable {
    /// `text` with every unsafe character escaped.
    package static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isUnsafe) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            guard isUnsafe(scalar) else {
                out.append(scalar)
                continue
            }
            let hex = String(scalar.value, radix: 16)
            for character in "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex {
                out.append(contentsOf: character.unicodeScalars)
            }
        }
        return String(out)
    }

    /// `escaped(text)`, at most `limit` characters (then ending in `…`).
    package static func clip(_ text: String, _ limit: Int) -> String {
        let safe = escaped(text)
        return safe.count <= limit ? safe : String(safe.prefix(max(0, limit - 1))) + "…"
    }

    static func isUnsafe(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: return true // C0, DEL, C1 (ESC, CR, BEL, CSI…)
        case 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: return true // bidirectional controls
        default: return false
        }
    }
}
