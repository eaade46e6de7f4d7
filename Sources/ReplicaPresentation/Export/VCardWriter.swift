import CRDT
import Domain
import LocalStorage
import Replica
import StoreSupport

/// Contacts as vCard 4.0 (RFC 6350): one `BEGIN:VCARD` … `END:VCARD` per contact.
///
/// `FN` is the name, `ORG`, `TITLE`, `TEL` (as `tel:` URIs), `EMAIL`, `ADR` (the free-text
/// address as its street part and label), `CATEGORIES` for tags, `UID` `urn:kraliki:contact:ID`;
/// owner, status and custom fields as `X-KRALIKI-…` properties so nothing is lost.
public enum VCardWriter {
    public static func write(_ contacts: [ContactView]) -> String {
        contacts.map(card).joined()
    }

    static func card(_ contact: ContactView) -> String {
        var lines = ContentLines()
        lines.add("BEGIN", "VCARD")
        lines.add("VERSION", "4.0")
        lines.add("UID", "urn:kraliki:contact:\(contact.id)")
        lines.add("FN", ContentLines.escape(contact.name))
        if let company = contact.company { lines.add("ORG", ContentLines.escape(company)) }
        if let title = contact.title { lines.add("TITLE", ContentLines.escape(title)) }
        for phone in contact.phones { lines.add("TEL", "tel:\(phone)", parameters: [("VALUE", "uri")]) }
        for email in contact.emails { lines.add("EMAIL", ContentLines.escape(email)) }
        if let address = contact.address {
            lines.add(
                "ADR", ";;" + ContentLines.escape(address) + ";;;;",
                parameters: [("LABEL", address.replacingOccurrences(of: "\n", with: " "))])
        }
        if !contact.tags.isEmpty {
            lines.add("CATEGORIES", contact.tags.map(ContentLines.escape).joined(separator: ","))
        }
        if let owner = contact.owner { lines.add("X-KRALIKI-OWNER", ContentLines.escape(owner)) }
        if let status = contact.status { lines.add("X-KRALIKI-STATUS", status) }
        for key in contact.fields.keys.sorted() {
            lines.add("X-KRALIKI-FIELD", ContentLines.escape(contact.fields[key]!), parameters: [("KEY", key)])
        }
        lines.add("END", "VCARD")
        return lines.text
    }
}

/// Schedule entries as an iCalendar (RFC 5545) `VCALENDAR` of `VEVENT`s, times in UTC.
///
/// `UID` is `ID@kraliki`, `DTSTAMP` the entry's creation time (so the same data exports to the
/// same bytes), `STATUS` `CONFIRMED` or `CANCELLED` (done entries are `CONFIRMED` with
/// `X-KRALIKI-STATUS:done`), the kind as `CATEGORIES`, assignees as `X-KRALIKI-ASSIGNEE`.
public enum ICalendarWriter {
    public static func write(_ entries: [ScheduleView]) -> String {
        var lines = ContentLines()
        lines.add("BEGIN", "VCALENDAR")
        lines.add("VERSION", "2.0")
        lines.add("PRODID", "-//Kraliki//Kraliki Sync replica-cli//EN")
        lines.add("CALSCALE", "GREGORIAN")
        var text = lines.text
        for entry in entries { text += event(entry) }
        var end = ContentLines()
        end.add("END", "VCALENDAR")
        return text + end.text
    }

    static func event(_ entry: ScheduleView) -> String {
        var lines = ContentLines()
        let id = EntityID(text: entry.id)
        lines.add("BEGIN", "VEVENT")
        lines.add("UID", "\(entry.id)@kraliki")
        lines.add("DTSTAMP", ContentLines.utcStamp(Int64((id?.time ?? 0) >> 16)))
        if let start = entry.start.flatMap(milliseconds) { lines.add("DTSTART", ContentLines.utcStamp(start)) }
        if let end = entry.end.flatMap(milliseconds) { lines.add("DTEND", ContentLines.utcStamp(end)) }
        lines.add("SUMMARY", ContentLines.escape(entry.title))
        if let location = entry.location { lines.add("LOCATION", ContentLines.escape(location)) }
        lines.add("STATUS", entry.status == "cancelled" ? "CANCELLED" : "CONFIRMED")
        if let status = entry.status { lines.add("X-KRALIKI-STATUS", status) }
        if let kind = entry.kind { lines.add("CATEGORIES", kind.uppercased()) }
        if !entry.assignees.isEmpty {
            lines.add("DESCRIPTION", ContentLines.escape("Assignees: " + entry.assignees.joined(separator: ", ")))
        }
        for assignee in entry.assignees { lines.add("X-KRALIKI-ASSIGNEE", ContentLines.escape(assignee)) }
        if let contact = entry.contact { lines.add("X-KRALIKI-CONTACT", contact) }
        if let zone = entry.timeZone { lines.add("X-KRALIKI-TIME-ZONE", ContentLines.escape(zone)) }
        lines.add("END", "VEVENT")
        return lines.text
    }

    private static func milliseconds(_ iso: String) -> Int64? { try? TimeText.parse(iso, field: "time") }
}
