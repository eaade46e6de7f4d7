/// Phone numbers normalized to E.164 (`+420601234567`), so the same number typed as
/// `601 234 567`, `+420 601-234-567` or `00420601234567` is one set element and one duplicate
/// key everywhere.
public enum PhoneNumber {
    /// What the normalizer needs to know about a country's numbering plan.
    public struct Country: Hashable, Sendable, Codable {
        /// ISO 3166-1 alpha-2 code, upper case.
        public let code: String
        public let callingCode: String
        /// The national trunk prefix dialled before a national number ("0" in Germany), if any.
        public let trunkPrefix: String?
        /// Allowed lengths of the national significant number.
        public let nationalLengths: ClosedRange<Int>

        public init(code: String, callingCode: String, trunkPrefix: String?, nationalLengths: ClosedRange<Int>) {
            self.code = code
            self.callingCode = callingCode
            self.trunkPrefix = trunkPrefix
            self.nationalLengths = nationalLengths
        }
    }

    /// The countries whose numbering plans are checked in detail. Numbers of other countries
    /// are accepted in international form (`+…`) when they have 8 to 15 digits.
    public static let countries: [Country] = [
        Country(code: "CZ", callingCode: "420", trunkPrefix: nil, nationalLengths: 9...9),
        Country(code: "SK", callingCode: "421", trunkPrefix: "0", nationalLengths: 9...9),
        Country(code: "PL", callingCode: "48", trunkPrefix: nil, nationalLengths: 9...9),
        Country(code: "DE", callingCode: "49", trunkPrefix: "0", nationalLengths: 6...13),
        Country(code: "AT", callingCode: "43", trunkPrefix: "0", nationalLengths: 4...13),
        Country(code: "HU", callingCode: "36", trunkPrefix: "06", nationalLengths: 8...9),
        Country(code: "GB", callingCode: "44", trunkPrefix: "0", nationalLengths: 9...10),
        Country(code: "FR", callingCode: "33", trunkPrefix: "0", nationalLengths: 9...9),
        Country(code: "US", callingCode: "1", trunkPrefix: "1", nationalLengths: 10...10),
        Country(code: "UA", callingCode: "380", trunkPrefix: "0", nationalLengths: 9...9),
    ]

    public static func country(_ code: String) -> Country? {
        countries.first { $0.code == code.uppercased() }
    }

    /// The E.164 form of `input`.
    ///
    /// Accepts spaces, dashes, dots, slashes and parentheses as separators, `+` or `00` for
    /// international numbers, and national numbers of `defaultCountry` (with or without its trunk
    /// prefix).
    ///
    /// - Throws: ``ValidationError`` `invalid-phone`, saying what is wrong.
    public static func normalize(_ input: String, defaultCountry: Country) throws(ValidationError) -> String {
        func invalid(_ reason: String) -> ValidationError {
            ValidationError(field: "phone", code: .invalidPhone, message: "phone \"\(input)\" \(reason)")
        }
        let trimmed = input.trimmingWhitespace()
        var digits = ""
        var international = false
        if let ascii = asciiDigits(trimmed) {
            (digits, international) = ascii
        } else {
            for (index, character) in trimmed.enumerated() {
                if character == "+" && index == 0 {
                    international = true
                } else if character.isASCII, let digit = character.wholeNumberValue {
                    digits.append(String(digit))
                } else if " -./()\u{00A0}".contains(character) {
                    continue
                } else {
                    throw invalid("contains \"\(character)\"; use digits, spaces, dashes and a leading +")
                }
            }
        }
        if digits.isEmpty { throw invalid("has no digits") }
        if !international && digits.hasPrefix("00") {
            international = true
            digits.removeFirst(2)
        }
        if international {
            guard (8...15).contains(digits.count) else {
                throw invalid("has \(digits.count) digits after the country code prefix; E.164 numbers have 8 to 15")
            }
            guard digits.first != "0" else { throw invalid("has a country code starting with 0") }
            // Where the plan is known, check the national part too.
            if let plan = countries.filter({ digits.hasPrefix($0.callingCode) }).max(by: {
                $0.callingCode.count < $1.callingCode.count
            }) {
                let national = digits.count - plan.callingCode.count
                guard plan.nationalLengths.contains(national) else {
                    throw invalid(
                        "is not a valid \(plan.code) number: expected \(lengths(plan)) digits after +\(plan.callingCode), found \(national)"
                    )
                }
            }
            return "+" + digits
        }
        var national = digits
        if let trunk = defaultCountry.trunkPrefix, national.hasPrefix(trunk),
            defaultCountry.nationalLengths.contains(national.count - trunk.count)
        {
            national.removeFirst(trunk.count)
        }
        guard defaultCountry.nationalLengths.contains(national.count) else {
            throw invalid(
                "is not a valid \(defaultCountry.code) number: expected \(lengths(defaultCountry)) digits, found \(national.count); "
                    + "write numbers of other countries with + and the country code")
        }
        return "+" + defaultCountry.callingCode + national
    }

    /// The digits of `text` and whether it starts with `+`, read byte by byte, when it holds only
    /// ASCII digits and separators (the usual input: a `Character` loop costs grapheme breaking
    /// and Unicode property lookups per digit); `nil` otherwise, for the character loop, which
    /// also words the errors.
    static func asciiDigits(_ text: String) -> (digits: String, international: Bool)? {
        var digits = [UInt8]()
        digits.reserveCapacity(text.utf8.count)
        var international = false
        for (index, byte) in text.utf8.enumerated() {
            switch byte {
            case UInt8(ascii: "+") where index == 0: international = true
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digits.append(byte)
            case UInt8(ascii: " "), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "/"), UInt8(ascii: "("),
                UInt8(ascii: ")"):
                continue
            default: return nil
            }
        }
        return (String(decoding: digits, as: UTF8.self), international)
    }

    private static func lengths(_ country: Country) -> String {
        country.nationalLengths.count == 1
            ? "\(country.nationalLengths.lowerBound)"
            : "\(country.nationalLengths.lowerBound) to \(country.nationalLengths.upperBound)"
    }
}

/// E-mail addresses normalized for comparison: trimmed and lower-cased, checked for the shape
/// `local@domain.tld`.
public enum EmailAddress {
    /// - Throws: ``ValidationError`` `invalid-email`, saying what is wrong.
    public static func normalize(_ input: String) throws(ValidationError) -> String {
        if let address = asciiAddress(input) { return address }
        return try checkedAddress(input)
    }

    /// The general check of any input, which also words the errors.
    static func checkedAddress(_ input: String) throws(ValidationError) -> String {
        func invalid(_ reason: String) -> ValidationError {
            ValidationError(field: "email", code: .invalidEmail, message: "e-mail \"\(input)\" \(reason)")
        }
        let address = input.trimmingWhitespace().lowercased()
        guard let at = address.lastIndex(of: "@") else { throw invalid("has no @") }
        let local = address[..<at]
        let domain = address[address.index(after: at)...]
        guard !local.isEmpty, local.utf8.count <= 64 else { throw invalid("needs 1 to 64 bytes before the @") }
        guard address.utf8.count <= 254 else { throw invalid("is longer than 254 bytes") }
        guard
            !local.contains(where: { $0.isWhitespace || $0 == "@" || $0 == "," || $0 == ";" || $0 == "<" || $0 == ">" })
        else { throw invalid("has a space or one of @ , ; < > before the @") }
        guard !local.hasPrefix("."), !local.hasSuffix("."), !local.contains("..") else {
            throw invalid("has a misplaced dot before the @")
        }
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2 else { throw invalid("needs a domain with a dot, like example.cz") }
        for label in labels {
            guard !label.isEmpty, label.count <= 63 else {
                throw invalid("has an empty or over-long part in its domain")
            }
            guard label.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }), !label.hasPrefix("-"),
                !label.hasSuffix("-")
            else { throw invalid("has a domain with characters other than letters, digits and inner dashes") }
        }
        guard labels.last!.contains(where: \.isLetter) else { throw invalid("has a domain ending in a number") }
        return address
    }

    /// `input` lower-cased when it is visible ASCII (no spaces) and a valid address by the rules
    /// above, checked byte by byte; `nil` otherwise, for the general check, which also words the
    /// errors. (`Character` tests cost grapheme breaking and Unicode property lookups per
    /// character; for visible ASCII a character is a byte, a letter is A–Z or a–z and a number
    /// is 0–9, so both checks agree: see `ValidationTests`.)
    static func asciiAddress(_ input: String) -> String? {
        let bytes = Array(input.utf8)
        guard bytes.count <= 254, bytes.allSatisfy({ (0x21...0x7E).contains($0) }),
            let at = bytes.lastIndex(of: UInt8(ascii: "@")), at > 0, at <= 64
        else { return nil }
        let local = bytes[..<at]
        guard !local.contains(where: { "@,;<>".utf8.contains($0) }),
            local.first != UInt8(ascii: "."), local.last != UInt8(ascii: "."),
            !zip(local, local.dropFirst()).contains(where: { $0 == UInt8(ascii: ".") && $1 == UInt8(ascii: ".") })
        else { return nil }
        let labels = bytes[(at + 1)...].split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard labels.count >= 2 else { return nil }
        func isLetter(_ byte: UInt8) -> Bool { (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) }
        for label in labels {
            guard !label.isEmpty, label.count <= 63, label.first != UInt8(ascii: "-"), label.last != UInt8(ascii: "-"),
                label.allSatisfy({ isLetter($0) || (0x30...0x39).contains($0) || $0 == UInt8(ascii: "-") })
            else { return nil }
        }
        guard labels.last!.contains(where: isLetter) else { return nil }
        return input.lowercased()
    }
}
