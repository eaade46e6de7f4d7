import ArgumentParser
import Domain
import Foundation
import LocalStorage
import Replica
import ReplicaPresentation
import StoreSupport

struct ContactCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "contact", abstract: "Add, edit, show, list, delete and restore contacts.",
        subcommands: [Add.self, Edit.self, Show.self, List.self, Delete.self, Restore.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a contact; prints its ID.")
        @OptionGroup var global: GlobalOptions
        @Option var name: String
        @Option(help: "A phone number (repeatable); national numbers are Czech unless written with +.")
        var phone: [String] = []
        @Option(help: "An e-mail address (repeatable).") var email: [String] = []
        @Option var company: String?
        @Option var title: String?
        @Option(help: "A tag (repeatable).") var tag: [String] = []
        @Option(help: "The owning user (default: this replica's user).") var owner: String?
        @Option(help: "lead, active, inactive or do-not-call (default lead).") var status: String?
        @Option var address: String?
        @Option(help: "A custom field KEY=VALUE (repeatable).") var field: [String] = []

        func run() throws {
            let console = Console(global)
            try console.run {
                let store = try console.openStore()
                let draft = ContactDraft(
                    name: name, company: company, title: title, owner: owner, status: status, address: address,
                    phones: phone, emails: email, tags: tag, customFields: try console.keyValues(field))
                try console.write(store, key: "contact.added") { s, c throws(Domain.ValidationError) in
                    try s.createContact(draft, c)
                }
            }
        }
    }

    struct Edit: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change fields of a contact.")
        @OptionGroup var global: GlobalOptions
        @Argument var id: String
        @Option var name: String?
        @Option var company: String?
        @Option var title: String?
        @Option var status: String?
        @Option var owner: String?
        @Option var address: String?
        @Option(name: .customLong("add-phone")) var addPhone: [String] = []
        @Option(name: .customLong("remove-phone")) var removePhone: [String] = []
        @Option(name: .customLong("add-email")) var addEmail: [String] = []
        @Option(name: .customLong("remove-email")) var removeEmail: [String] = []
        @Option(name: .customLong("add-tag")) var addTag: [String] = []
        @Option(name: .customLong("remove-tag")) var removeTag: [String] = []
        @Option(help: "A custom field KEY=VALUE (repeatable); an empty VALUE removes it.") var field: [String] = []

        func run() throws {
            let console = Console(global)
            try console.run {
                let store = try console.openStore()
                let contact = try console.id(id, in: store.reader, [.contact], name: "contact")
                var edit = ContactEdit()
                edit.name = name
                edit.company = company
                edit.title = title
                edit.status = status
                edit.owner = owner
                edit.address = address
                edit.addPhones = addPhone
                edit.removePhones = removePhone
                edit.addEmails = addEmail
                edit.removeEmails = removeEmail
                edit.addTags = addTag
                edit.removeTags = removeTag
                edit.customFields = try console.keyValues(field)
                try console.write(store, key: "contact.updated", id: contact) { s, c throws(Domain.ValidationError) in
                    try s.editContact(contact, edit, c)
                }
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one contact with its notes.")
        @OptionGroup var global: GlobalOptions
        @Argument var id: String

        func run() throws {
            let console = Console(global)
            try console.run {
                let reader = try console.openReader()
                let contactID = try console.id(id, in: reader, [.contact], name: "contact")
                let noteIDs = try reader.notes(of: contactID).compactMap { EntityID(text: $0.id) }
                let shown = try reader.state(of: [contactID] + noteIDs)
                guard let contact = shown.contacts[contactID] else { throw console.unknown(id, name: "contact") }
                let view = ContactView(contactID, contact)
                let notes = noteIDs.compactMap { id in shown.notes[id].map { NoteView(id, $0) } }
                if console.json {
                    struct Shown: Encodable {
                        let contact: ContactView
                        let notes: [NoteView]
                    }
                    console.emit(Shown(contact: view, notes: notes))
                    return
                }
                let c = console.catalogue
                var lines = [(String, String)]()
                lines.append((c.text("label.id"), view.id))
                lines.append((c.text("label.name"), view.name))
                if let company = view.company { lines.append((c.text("label.company"), company)) }
                if let title = view.title { lines.append((c.text("label.title"), title)) }
                if let owner = view.owner { lines.append((c.text("label.owner"), owner)) }
                if let status = view.status { lines.append((c.text("label.status"), status)) }
                if let address = view.address { lines.append((c.text("label.address"), address)) }
                if !view.phones.isEmpty { lines.append((c.text("label.phones"), view.phones.joined(separator: ", "))) }
                if !view.emails.isEmpty { lines.append((c.text("label.emails"), view.emails.joined(separator: ", "))) }
                if !view.tags.isEmpty { lines.append((c.text("label.tags"), view.tags.joined(separator: ", "))) }
                for key in view.fields.keys.sorted() { lines.append((key, view.fields[key]!)) }
                lines.append((c.text("label.lifecycle"), view.lifecycle + (view.mergedInto.map { " → \($0)" } ?? "")))
                if !view.conflictingFields.isEmpty {
                    lines.append((c.text("label.conflicts"), view.conflictingFields.joined(separator: ", ")))
                }
                let width = lines.map(\.0.count).max() ?? 0
                for (label, value) in lines {
                    print(label.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + value)
                }
                if !notes.isEmpty {
                    print("")
                    print(c.text("label.notes") + ":")
                    NoteCommand.printNotes(notes, console)
                }
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List active contacts by name.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Part of the name, or a whole phone number or e-mail address.") var search: String?
        @Option var tag: String?
        @Option var owner: String?

        func run() throws {
            let console = Console(global)
            try console.run {
                let reader = try console.openReader()
                let ids = try reader.contacts(search: search, tag: tag, owner: owner).compactMap {
                    EntityID(text: $0.id)
                }
                let listed = try reader.state(of: ids, kinds: [.contact])
                let views = ids.compactMap { id in listed.contacts[id].map { ContactView(id, $0) } }
                if console.json {
                    console.emit(["contacts": views])
                } else if views.isEmpty {
                    console.say("contact.none")
                } else {
                    console.table(
                        ["column.id", "column.name", "column.company", "column.owner", "column.status"],
                        views.map { view in
                            [
                                view.id, view.name + (view.conflictingFields.isEmpty ? "" : " (!)"), view.company ?? "",
                                view.owner ?? "", view.status ?? "",
                            ]
                        })
                }
            }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a contact (it can be restored).")
        @OptionGroup var global: GlobalOptions
        @Argument var id: String

        func run() throws {
            let console = Console(global)
            try console.run {
                let store = try console.openStore()
                let contact = try console.id(id, in: store.reader, [.contact], name: "contact")
                try console.write(store, key: "contact.deleted", id: contact) { s, c throws(Domain.ValidationError) in
                    try s.delete(.contact, contact, c)
                }
            }
        }
    }

    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Restore a deleted contact.")
        @OptionGroup var global: GlobalOptions
        @Argument var id: String

        func run() throws {
            let console = Console(global)
            try console.run {
                let store = try console.openStore()
                let contact = try console.id(id, in: store.reader, [.contact], name: "contact")
                try console.write(store, key: "contact.restored", id: contact) { s, c throws(Domain.ValidationError) in
                    try s.restore(.contact, contact, c)
                }
            }
        }
    }
}
