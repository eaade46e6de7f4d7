import ArgumentParser
import Domain
import Foundation
import LocalStorage
import Replica
import ReplicaPresentation
import StoreSupport

struct NoteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "note", abstract: "Call notes: add, edit, list, delete.",
        subcommands: [Add.self, Edit.self, List.self, Delete.self])

    static func printNotes(_ notes: [NoteView], _ console: Console) {
        console.table(
            ["column.id", "column.when", "column.author", "column.outcome", "column.text"],
            notes.map { note in
                let when = note.at.flatMap { try? TimeText.parse($0, field: "at") }.map { TimeText.local($0) } ?? ""
                let text = note.text.replacingOccurrences(of: "\n", with: " ")
                return [note.id, when, note.author ?? "", note.outcome ?? "", String(text.prefix(60))]
            })
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a call note to a contact.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The contact's ID.") var contact: String
        @Option var text: String
        @Option(help: "reached, voicemail, busy, no-answer, callback-requested, wrong-number.") var outcome: String?
        @Option(help: "in or out.") var direction: String?
        @Option(help: "The call's length in seconds.") var duration: UInt32?
        @Option(help: "When the call started, ISO 8601 (default: now).") var at: String?
        @Option(help: "A tag (repeatable).") var tag: [String] = []

        func run() throws {
            let console = Console(global)
            try console.run {
                let store = try console.openStore()
                let contactID = try console.id(contact, in: store.reader, [.contact], name: "contact")
                let callTime = try at.map { text throws(Domain.ValidationError) in try TimeText.parse(text, field: "at")
                }
                let draft = NoteDraft(
                    contact: contactID, text: text, callTime: callTime, durationSeconds: duration, direction: direction,
                    outcome: outcome, tags: tag)
                try console.write(store, key: "note.added") { s, c throws(Domain.ValidationError) in
                    try s.addNote(draft, c)
                }
            }
        }
    }

    struct Edit: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Replace the text of a note.")
        @OptionGroup var global: GlobalOptions
        @Argument var id: String
        @Option var text: String

        func run() throws {
            let console = Console(global)
            try console.run {
                let store = try console.openStore()
                let note = try console.id(id, in: store.reader, [.note], name: "note")
                try console.write(store, key: "note.updated", id: note) { s, c throws(Domain.ValidationError) in
                    try s.editNote(note, text: text, c)
                }
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A contact's notes, newest call first.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The contact's ID.") var contact: String

        func run() throws {
            let console = Console(global)
            try console.run {
                let reader = try console.openReader()
                let contactID = try console.id(contact, in: reader, [.contact], name: "contact")
                let ids = try reader.notes(of: contactID).compactMap { EntityID(text: $0.id) }
                let listed = try reader.state(of: ids, kinds: [.note])
                let notes = ids.compactMap { id in listed.notes[id].map { NoteView(id, $0) } }
                if console.json {
                    console.emit(["notes": notes])
                } else if notes.isEmpty {
                    console.say("note.none")
                } else {
                    NoteCommand.printNotes(notes, console)
                }
            }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a note.")
        @OptionGroup var global: GlobalOptions
        @Argument var id: String

        func run() throws {
            let console = Console(global)
            try console.run {
                let store = try console.openStore()
                let note = try console.id(id, in: store.reader, [.note], name: "note")
                try console.write(store, key: "note.deleted", id: note) { s, c throws(Domain.ValidationError) in
                    try s.delete(.note, note, c)
                }
            }
        }
    }
}
