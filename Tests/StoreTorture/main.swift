// store-torture DIR SEED: opens (or creates) the replica store in DIR and writes contacts and
// notes as fast as it can, printing "committed KIND ID" after each write returns (that is,
// after its commit is durable). The crash tests kill it with SIGKILL at random moments and
// check that everything it reported is there, exactly once.
//
// store-torture adopt DIR: opens the (fresh) replica store in DIR and takes the bootstrap image
// DIR/image.download, printing "adopted N" when done; the crash tests kill it mid-way.
import CRDT
import Domain
import Foundation
import LocalStorage
import StoreSupport

/// Unbuffered: a line is out of the process as soon as the write returns.
func report(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

let arguments = CommandLine.arguments
if arguments.count == 3, arguments[1] == "adopt" {
    do {
        let store = try LocalStore.open(in: arguments[2])
        let adoption = try store.adoptImage(at: store.imageDownloadPath)
        report("adopted \(adoption.entities)")
        exit(0)
    } catch {
        FileHandle.standardError.write(Data("store-torture: \(error)\n".utf8))
        exit(1)
    }
}
guard arguments.count == 3, let seed = UInt64(arguments[2]) else {
    FileHandle.standardError.write(Data("usage: store-torture DIR SEED\n".utf8))
    exit(64)
}
let directory = arguments[1]
let store: LocalStore
do {
    if FileManager.default.fileExists(atPath: directory + "/" + LocalStore.fileName) {
        store = try LocalStore.open(in: directory)
    } else {
        store = try LocalStore.create(
            in: directory, identity: ReplicaIdentity(replica: ReplicaID(0x70_4754), user: "torture", tenant: "t"))
    }
} catch {
    FileHandle.standardError.write(Data("store-torture: \(error)\n".utf8))
    exit(1)
}
var counter = seed
while true {
    counter &+= 1
    let wall = UInt64(Date().timeIntervalSince1970 * 1000)
    do {
        let contacts = store.state.contacts.sortedKeys
        if counter % 3 != 0 || contacts.isEmpty {
            let delta = try store.write(wall: wall) { state, context throws(ValidationError) in
                try state.createContact(
                    ContactDraft(
                        name: "Torture \(counter)", phones: ["+4206\(String(10_000_000 + counter % 89_999_999))"]),
                    context)
            }
            report("committed contact \(delta.contacts.sortedKeys[0])")
        } else {
            let contact = contacts[Int(counter % UInt64(contacts.count))]
            let delta = try store.write(wall: wall) { state, context throws(ValidationError) in
                try state.addNote(NoteDraft(contact: contact, text: "Note \(counter)"), context)
            }
            report("committed note \(delta.notes.sortedKeys[0])")
        }
    } catch {
        FileHandle.standardError.write(Data("store-torture: \(error)\n".utf8))
        exit(1)
    }
}
