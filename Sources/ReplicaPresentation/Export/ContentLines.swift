import Foundation
import LocalStorage
import Replica
import StoreSupport

/// The content lines vCard (RFC 6350) and iCalendar (RFC 5545) share: `NAME;PARAM=x:value`,
/// text escaped, lines folded at 75 octets, CRLF line ends.
struct ContentLines {
    private(set) var text = ""

    /// Escapes a TEXT value: backslash, comma, semicolon and line breaks.
    static func escape(_ value: String) -> String {
        var result = ""
        for character in value {
            switch character {
            case "\\": result += "\\\\"
            case ",": result += "\\,"
            case ";": result += "\\;"
            case "\n", "\r\n", "\r": result += "\\n"
            default: result.append(character)
            }
        }
        return result
    }

    /// A parameter value, quoted when it holds `:`, `;` or `,` (quotes themselves are dropped).
    static func parameter(_ value: String) -> String {
        let clean = value.filter { $0 != "\"" && !$0.isNewline }
        return clean.contains(where: { ":;,".contains($0) }) ? "\"\(clean)\"" : clean
    }

    /// Appends one line, `value` written as is (escape TEXT values first).
    mutating func add(_ name: String, _ value: String, parameters: [(String, String)] = []) {
        var line = name
        for (key, parameterValue) in parameters { line += ";\(key)=\(Self.parameter(parameterValue))" }
        line += ":" + value
        text += Self.fold(line)
    }

    /// Folds at 75 octets without splitting a UTF-8 sequence: CRLF and one space continue a line.
    static func fold(_ line: String) -> String {
        var result = ""
        var octets = 0
        var limit = 75
        for character in line {
            let size = String(character).utf8.count
            if octets + size > limit {
                result += "\r\n "
                octets = 0
                limit = 74  // the leading space counts
            }
            result.append(character)
            octets += size
        }
        return result + "\r\n"
    }

    /// `20260302T083000Z`.
    static func utcStamp(_ milliseconds: Int64) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return formatter.string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
    }
}
