import CRDTTestSupport
import Testing

@testable import Domain

/// Phone numbers and e-mail addresses are read byte by byte when they are plain ASCII, and by
/// `Character` otherwise (which also words the errors). Over seeded random inputs, both ways
/// must give the same result. KRALIKI_SEED=N replays one seed.
@Suite("Normalization fast paths")
struct NormalizationFastPathTests {
    static let seeds = FuzzSettings.seeds(count: 300, longCount: 10_000, base: 0xFA57)
    static let emailPieces = [
        "a", "Z", "0", "9", "-", ".", "..", "@", ",", ";", "<", ">", "x@y", "é", " ", "\t", "\r\n", "_", "+",
        "example", "CZ", "com", "c1", String(repeating: "a", count: 63), String(repeating: "b", count: 64),
    ]
    static let phonePieces = [
        "+", "00", "0", "1", "4", "6", "9", "420", "601", "234", "567", " ", "-", ".", "/", "(", ")", "\u{00A0}",
        "\r\n", "a", "é", "++",
    ]

    @Test func emailFastPathAgreesWithTheGeneralCheck() {
        var accepted = 0
        for seed in Self.seeds {
            var rng = SeededRandom(seed: seed)
            for _ in 0..<50 {
                let input: String
                if rng.chance(0.5) {
                    input = (0..<rng.int(1...8)).map { _ in rng.pick(Self.emailPieces) }.joined()
                } else {
                    // Shaped like an address, so that many are valid.
                    let local = (0..<rng.int(1...3)).map { _ in rng.pick(["c1", "Jana", ".", "-", "a", "é"]) }.joined()
                    let labels = (0..<rng.int(1...3)).map { _ in rng.pick(["example", "Firma-1", "-x", "", "cz", "7"]) }
                    input = local + "@" + labels.joined(separator: ".")
                }
                guard let fast = EmailAddress.asciiAddress(input) else { continue }
                accepted += 1
                #expect(
                    (try? EmailAddress.checkedAddress(input)) == fast,
                    "\"\(input)\", seed \(seed) (replay with KRALIKI_SEED=\(seed))")
            }
        }
        #expect(EmailAddress.asciiAddress("Jana.Novakova@Firma-1.CZ") == "jana.novakova@firma-1.cz")
        if FuzzSettings.replaySeed == nil { #expect(accepted > 100, "the generator made too few valid addresses") }
    }

    @Test func phoneFastPathAgreesWithTheCharacterLoop() {
        let country = PhoneNumber.country("CZ")!
        for seed in Self.seeds {
            var rng = SeededRandom(seed: seed)
            for _ in 0..<50 {
                let input = (0..<rng.int(1...8)).map { _ in rng.pick(Self.phonePieces) }.joined()
                // A no-break space (a separator) after the first character sends the same number
                // through the character loop.
                guard let first = input.first, first != "\u{00A0}" else { continue }
                let slow = String(first) + "\u{00A0}" + input.dropFirst()
                let context = "\"\(input)\", seed \(seed) (replay with KRALIKI_SEED=\(seed))"
                switch (
                    Result { () throws(ValidationError) in try PhoneNumber.normalize(input, defaultCountry: country) },
                    Result { () throws(ValidationError) in try PhoneNumber.normalize(slow, defaultCountry: country) }
                ) {
                case (.success(let a), .success(let b)): #expect(a == b, "\(context)")
                case (.failure(let a), .failure(let b)): #expect(a.code == b.code, "\(context)")
                default: Issue.record("only one way accepts \(context)")
                }
            }
        }
        let digits = PhoneNumber.asciiDigits("+420 601-234-567")
        #expect(digits?.digits == "420601234567" && digits?.international == true)
    }
}
