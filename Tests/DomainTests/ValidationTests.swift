import CRDT
import Domain
import DomainTestSupport
import Testing

/// Every validation error names the field and the reason, and leaves the state unchanged.
@Suite("Validation")
struct ValidationTests {
    static let wall: UInt64 = 1_764_000_000_000

    /// A replica with one active contact and one deleted contact.
    static func replica() -> (SimulatedReplica, EntityID, EntityID) {
        var replica = SimulatedReplica(replica: ReplicaID(1), user: "jana")
        try! replica.write(wall: wall) { state, context throws(ValidationError) in
            try state.createContact(ContactDraft(name: "Jana Nováková", phones: ["601 234 567"]), context)
        }
        let active = replica.state.contacts.sortedKeys[0]
        try! replica.write(wall: wall + 1) { state, context throws(ValidationError) in
            try state.createContact(ContactDraft(name: "Gone"), context)
        }
        let deleted = replica.state.contacts.sortedKeys[1]
        try! replica.write(wall: wall + 2) { state, context throws(ValidationError) in
            try state.delete(.contact, deleted, context)
        }
        return (replica, active, deleted)
    }

    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let field: String
        let code: ValidationError.Code
        let messageContains: String
        let command:
            @Sendable (inout TenantState, WriteContext, EntityID, EntityID) throws(ValidationError) -> TenantState
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "invalid phone", field: "phone", code: .invalidPhone, messageContains: "12345") {
            s, c, _, _ throws(ValidationError) in
            try s.createContact(ContactDraft(name: "A", phones: ["12345"]), c)
        },
        Case(name: "phone with letters", field: "phone", code: .invalidPhone, messageContains: "\"x\"") {
            s, c, _, _ throws(ValidationError) in
            try s.createContact(ContactDraft(name: "A", phones: ["601x234567"]), c)
        },
        Case(name: "invalid e-mail", field: "email", code: .invalidEmail, messageContains: "no @") {
            s, c, _, _ throws(ValidationError) in
            try s.createContact(ContactDraft(name: "A", emails: ["jana.example.cz"]), c)
        },
        Case(name: "empty required name", field: "name", code: .required, messageContains: "required") {
            s, c, _, _ throws(ValidationError) in
            try s.createContact(ContactDraft(name: "   "), c)
        },
        Case(name: "name over its limit", field: "name", code: .tooLong, messageContains: "201 characters") {
            s, c, _, _ throws(ValidationError) in
            try s.createContact(ContactDraft(name: String(repeating: "a", count: 201)), c)
        },
        Case(name: "unknown status", field: "status", code: .unknownValue, messageContains: "lead, active") {
            s, c, _, _ throws(ValidationError) in
            try s.createContact(ContactDraft(name: "A", status: "vip"), c)
        },
        Case(name: "bad custom field name", field: "field.Bad Key", code: .invalidFormat, messageContains: "a-z") {
            s, c, _, _ throws(ValidationError) in
            try s.createContact(ContactDraft(name: "A", customFields: ["Bad Key": "x"]), c)
        },
        Case(name: "too many tags", field: "tag", code: .tooMany, messageContains: "at most 50") {
            s, c, _, _ throws(ValidationError) in
            try s.createContact(ContactDraft(name: "A", tags: (0..<51).map { "t\($0)" }), c)
        },
        Case(name: "edit of an unknown contact", field: "id", code: .unknownReference, messageContains: "no contact") {
            s, c, _, _ throws(ValidationError) in
            try s.editContact(EntityID(time: 1, replica: ReplicaID(99)), ContactEdit(), c)
        },
        Case(name: "edit with an invalid phone", field: "phone", code: .invalidPhone, messageContains: "+4206") {
            s, c, active, _ throws(ValidationError) in
            var edit = ContactEdit()
            edit.name = "Renamed"  // valid, and must not be applied either
            edit.addPhones = ["+4206"]
            return try s.editContact(active, edit, c)
        },
        Case(
            name: "note on an unknown contact", field: "contact", code: .unknownReference, messageContains: "no contact"
        ) { s, c, _, _ throws(ValidationError) in
            try s.addNote(NoteDraft(contact: EntityID(time: 1, replica: ReplicaID(99)), text: "hi"), c)
        },
        Case(
            name: "note on a deleted contact", field: "contact", code: .deletedReference,
            messageContains: "restore it first"
        ) { s, c, _, deleted throws(ValidationError) in
            try s.addNote(NoteDraft(contact: deleted, text: "hi"), c)
        },
        Case(name: "note without text", field: "text", code: .required, messageContains: "required") {
            s, c, active, _ throws(ValidationError) in
            try s.addNote(NoteDraft(contact: active, text: ""), c)
        },
        Case(name: "note over its limit", field: "text", code: .tooLong, messageContains: "100001 characters") {
            s, c, active, _ throws(ValidationError) in
            try s.addNote(NoteDraft(contact: active, text: String(repeating: "x", count: 100_001)), c)
        },
        Case(name: "unknown outcome", field: "outcome", code: .unknownValue, messageContains: "no-answer") {
            s, c, active, _ throws(ValidationError) in
            try s.addNote(NoteDraft(contact: active, text: "hi", outcome: "maybe"), c)
        },
        Case(name: "unknown direction", field: "direction", code: .unknownValue, messageContains: "in, out") {
            s, c, active, _ throws(ValidationError) in
            try s.addNote(NoteDraft(contact: active, text: "hi", direction: "sideways"), c)
        },
        Case(name: "end not after start", field: "end", code: .endNotAfterStart, messageContains: "must be after start")
        { s, c, _, _ throws(ValidationError) in
            try s.addScheduleEntry(ScheduleDraft(title: "Call", start: 2_000, end: 1_000), c)
        },
        Case(name: "end equal to start", field: "end", code: .endNotAfterStart, messageContains: "must be after start")
        { s, c, _, _ throws(ValidationError) in
            try s.addScheduleEntry(ScheduleDraft(title: "Call", start: 2_000, end: 2_000), c)
        },
        Case(name: "unknown time zone", field: "time-zone", code: .invalidTimeZone, messageContains: "Mars/Olympus") {
            s, c, _, _ throws(ValidationError) in
            try s.addScheduleEntry(ScheduleDraft(title: "Call", start: 1_000, end: 2_000, timeZone: "Mars/Olympus"), c)
        },
        Case(
            name: "unknown schedule kind", field: "kind", code: .unknownValue,
            messageContains: "callback, appointment, shift"
        ) { s, c, _, _ throws(ValidationError) in
            try s.addScheduleEntry(ScheduleDraft(title: "Call", start: 1_000, end: 2_000, kind: "party"), c)
        },
        Case(
            name: "schedule entry for a deleted contact", field: "contact", code: .deletedReference,
            messageContains: "deleted"
        ) { s, c, _, deleted throws(ValidationError) in
            try s.addScheduleEntry(ScheduleDraft(title: "Call", start: 1_000, end: 2_000, contact: deleted), c)
        },
        Case(name: "delete twice", field: "id", code: .notApplicable, messageContains: "already deleted") {
            s, c, _, deleted throws(ValidationError) in
            try s.delete(.contact, deleted, c)
        },
        Case(name: "restore what is not deleted", field: "id", code: .notApplicable, messageContains: "not deleted") {
            s, c, active, _ throws(ValidationError) in
            try s.restore(.contact, active, c)
        },
    ]

    @Test("a bad command names the field and the reason and changes nothing", arguments: cases)
    func refused(_ testCase: Case) {
        var (replica, active, deleted) = Self.replica()
        let before = replica.state.encodedBlob()
        let outboxBefore = replica.outbox.count
        do {
            try replica.write(wall: Self.wall + 10) { state, context throws(ValidationError) in
                try testCase.command(&state, context, active, deleted)
            }
            Issue.record("\(testCase.name) was accepted")
        } catch {
            #expect(error.field == testCase.field)
            #expect(error.code == testCase.code)
            #expect(error.message.contains(testCase.messageContains), "message: \(error.message)")
        }
        #expect(replica.state.encodedBlob() == before, "state changed")
        #expect(replica.outbox.count == outboxBefore, "outbox changed")
    }

    @Test(
        "phone numbers normalize to E.164",
        arguments: [
            ("601 234 567", "+420601234567"), ("+420 601-234-567", "+420601234567"),
            ("00420601234567", "+420601234567"),
            ("(601) 234.567", "+420601234567"), ("+49 30 1234567", "+49301234567"), ("+1 415 555 0100", "+14155550100"),
            ("+421 905 123 456", "+421905123456"), ("+385 91 234 5678", "+385912345678"),
        ])
    func phones(input: String, expected: String) throws {
        #expect(try PhoneNumber.normalize(input, defaultCountry: PhoneNumber.country("CZ")!) == expected)
    }

    @Test("national numbers use the configured default country, trunk prefix dropped")
    func defaultCountry() throws {
        #expect(try PhoneNumber.normalize("030 1234567", defaultCountry: PhoneNumber.country("DE")!) == "+49301234567")
        #expect(
            try PhoneNumber.normalize("0905 123 456", defaultCountry: PhoneNumber.country("SK")!) == "+421905123456")
        #expect(throws: ValidationError.self) {
            try PhoneNumber.normalize("+420 60123", defaultCountry: PhoneNumber.country("CZ")!)
        }
    }

    @Test(
        "e-mail addresses normalize for comparison",
        arguments: [
            (" Jana.Novakova@Example.CZ ", "jana.novakova@example.cz"), ("x+tag@sub.firma.cz", "x+tag@sub.firma.cz"),
            ("petr@příklad.cz", "petr@příklad.cz"),
        ])
    func emails(input: String, expected: String) throws {
        #expect(try EmailAddress.normalize(input) == expected)
    }

    @Test(
        "malformed e-mail addresses are refused",
        arguments: [
            "", "@example.cz", "jana@", "jana@example", "ja na@example.cz", "jana@-x.cz", "a..b@example.cz",
            "jana@example.123",
        ])
    func badEmails(input: String) {
        #expect(throws: ValidationError.self) { try EmailAddress.normalize(input) }
    }
}
