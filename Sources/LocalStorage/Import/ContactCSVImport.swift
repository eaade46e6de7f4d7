import CRDT
import Domain
import Foundation
import StoreSupport

/// Turns CSV records into contact drafts: maps columns to fields, validates every row on its
/// own, and reports each rejected line with its number and reason.
///
/// Columns are recognised by their header (case-insensitive): `name`, `company`, `title`,
/// `owner`, `status`, `address`, `phone`/`phones`, `email`/`emails`, `tag`/`tags` and
/// `field.KEY` for custom fields. `--map COLUMN=FIELD` maps any other header (or overrides one);
/// `FIELD` `ignore` drops a column. Unmapped columns are ignored. Several phones, e-mails or tags
/// in one cell are separated by `;`.
public struct ContactCSVImport: Sendable {
    public struct Rejection: Codable, Equatable, Sendable {
        public let line: Int
        public let field: String?
        public let reason: String
    }

    public struct Row: Sendable {
        public let line: Int
        public let draft: ContactDraft
    }

    public static let fieldNames = [
        "name", "company", "title", "owner", "status", "address", "phone", "email", "tag", "field.KEY", "ignore",
    ]

    public let rows: [Row]
    public let rejections: [Rejection]

    /// - Throws: ``ValidationError`` (field `map` or `header`) for a bad mapping or header;
    ///   rows never throw, they are rejected.
    public init(
        csv text: String, map: [String: String] = [:], settings: DomainSettings = DomainSettings()
    )
        throws(ValidationError)
    {
        let (records, malformed) = CSVReader.parse(text)
        var rejections = malformed.map { Rejection(line: $0.line, field: nil, reason: $0.description) }
        guard let header = records.first else {
            throw ValidationError(field: "header", code: .required, message: "the file has no header row")
        }
        var mapping = [String: String]()  // lower-cased header → field
        for (column, field) in map { mapping[column.lowercased()] = try Self.canonical(field) }
        let columns: [String?] = header.fields.map { title in
            let key = title.trimmingCharacters(in: .whitespaces).lowercased()
            if let mapped = mapping[key] { return mapped == "ignore" ? nil : mapped }
            return try? Self.canonical(key)
        }
        guard columns.contains("name") else {
            throw ValidationError(
                field: "header", code: .required,
                message: "no column is mapped to name; headers are \(header.fields.joined(separator: ", ")); "
                    + "use --map COLUMN=name")
        }
        var rows = [Row]()
        let author = Author(user: "import", device: ReplicaID(1))
        let context = WriteContext(author: author, stamp: HLC(time: 1 << 16, replica: ReplicaID(1)), settings: settings)
        for record in records.dropFirst() {
            guard record.fields.count == header.fields.count else {
                rejections.append(
                    Rejection(
                        line: record.line, field: nil,
                        reason: "has \(record.fields.count) fields; the header has \(header.fields.count)"))
                continue
            }
            var draft = ContactDraft(name: "")
            for (column, value) in zip(columns, record.fields) {
                guard let column else { continue }
                let list = value.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
                    !$0.isEmpty
                }
                switch column {
                case "name": draft.name = value
                case "company": draft.company = value.isEmpty ? nil : value
                case "title": draft.title = value.isEmpty ? nil : value
                case "owner": draft.owner = value.isEmpty ? nil : value
                case "status": draft.status = value.isEmpty ? nil : value
                case "address": draft.address = value.isEmpty ? nil : value
                case "phone": draft.phones += list
                case "email": draft.emails += list
                case "tag": draft.tags += list
                default:
                    if !value.isEmpty { draft.customFields[String(column.dropFirst(6))] = value }
                }
            }
            var scratch = TenantState()
            do {
                try scratch.createContact(draft, context)
                rows.append(Row(line: record.line, draft: draft))
            } catch {
                rejections.append(Rejection(line: record.line, field: error.field, reason: error.description))
            }
        }
        self.rows = rows
        self.rejections = rejections.sorted { $0.line < $1.line }
    }

    private static func canonical(_ field: String) throws(ValidationError) -> String {
        let key = field.trimmingCharacters(in: .whitespaces).lowercased()
        switch key {
        case "name", "company", "title", "owner", "status", "address", "ignore": return key
        case "phone", "phones": return "phone"
        case "email", "emails", "e-mail": return "email"
        case "tag", "tags": return "tag"
        default:
            if key.hasPrefix("field."), key.count > 6 { return key }
            throw ValidationError(
                field: "map", code: .unknownValue,
                message: "\"\(field)\" is not a contact field; use one of \(fieldNames.joined(separator: ", "))")
        }
    }
}
