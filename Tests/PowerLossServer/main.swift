// power-loss-server: the real server library behind the PowerLossVFS shim, for the power-loss
// drill (docs/reliability.md, section 4). A test program: it is not part of `sync-server`.
//
//   power-loss-server serve DATA PORT [--checkpoint-every PAGES] [--keep-full-sync]
//                                       serve DATA exactly as `sync-server serve --data DATA
//                                       --port PORT` does, every SQLite file through the shim;
//                                       options: checkpoint the WAL every PAGES pages; refuse
//                                       `PRAGMA synchronous = NORMAL` (see powerloss_keep_full_sync)
//   power-loss-server replica DIR [--keep-full-sync]
//                                       open the replica store in DIR and write contacts until
//                                       killed, printing "committed NAME" after each write
//   power-loss-server probe DIR         commit one row with fsync and one without (in
//                                       DIR/probe.sqlite), print "ready", wait to be killed
//
// Killed with SIGKILL, then `powerloss_revert` on the data directory: the files are what a
// power cut at that moment would have left.
import Domain
import Foundation
import GRDB
import LocalStorage
import Logging
import PowerLossVFS
import StoreSupport
import SyncServer

func die(_ message: String) -> Never {
    FileHandle.standardError.write(Data("power-loss-server: \(message)\n".utf8))
    exit(1)
}

// Before anything opens a database: every connection of this process goes through the shim.
let registered = powerloss_register()
guard registered == 0 else { die("cannot register the VFS shim (SQLite result \(registered))") }

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "serve" where arguments.count >= 3:
    guard let port = Int(arguments[2]) else { die("PORT must be a number") }
    var options = arguments.dropFirst(3).makeIterator()
    while let option = options.next() {
        switch option {
        case "--checkpoint-every":
            guard let pages = options.next().flatMap({ Int32($0) }), pages > 0, powerloss_checkpoint_every(pages) == 0
            else { die("--checkpoint-every takes a positive number of pages") }
        case "--keep-full-sync":
            powerloss_keep_full_sync()
        default:
            die("unknown option \(option)")
        }
    }
    do {
        let config = try ServerConfig.resolve(file: nil, environment: [:]) { resolved in
            resolved.dataDirectory = arguments[1]
            resolved.host = "127.0.0.1"
            resolved.port = port
            resolved.logLevel = "error"
        }
        LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: .error) }
        let launcher = try ServerLauncher(config: config)
        try await launcher.serve { port in
            // The same first line as `sync-server`, so the drill reads the port the same way.
            print("Kraliki Sync server listening on https://127.0.0.1:\(port) (HTTP/2)")
            fflush(nil)
        }
    } catch {
        die("\(error)")
    }

case "probe" where arguments.count == 2:
    do {
        var configuration = Configuration()
        configuration.journalMode = .wal
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        let database = try DatabaseQueue(path: arguments[1] + "/probe.sqlite", configuration: configuration)
        try database.write { db in
            try db.execute(sql: "CREATE TABLE probe (label TEXT NOT NULL)")
            try db.execute(sql: "INSERT INTO probe (label) VALUES ('synced')")
        }
        // Into the main file and synced there, so the database file itself is durable (SQLite
        // would not fsync a new file's directory entry for us). PASSIVE leaves the WAL's frames
        // in place, so the next commit restarts the WAL over them: the revert must put back
        // overwritten bytes, not only cut appended ones.
        try database.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(PASSIVE)") }
        try database.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = OFF")  // commits without any fsync
            try db.execute(sql: "INSERT INTO probe (label) VALUES ('unsynced')")
        }
        print("ready")
        fflush(nil)
        while true { sleep(60) }
    } catch {
        die("\(error)")
    }

case "replica" where arguments.count >= 2:
    // The replica's store behind the shim: writes contacts until killed, printing
    // "committed NAME" after each write returns (LocalStore: "a write returns only after its
    // commit is durable").
    if arguments.dropFirst(2).contains("--keep-full-sync") { powerloss_keep_full_sync() }
    do {
        let store = try LocalStore.open(in: arguments[1])
        // Names unique to this process: after a cut, a later run must not write a lost name again.
        let run = getpid()
        var counter = 0
        while true {
            counter += 1
            let name = "Replica write p\(run) n\(counter)"
            try store.write(wall: UInt64(Date().timeIntervalSince1970 * 1000)) {
                state, context throws(ValidationError) in
                try state.createContact(ContactDraft(name: name), context)
            }
            FileHandle.standardOutput.write(Data("committed \(name)\n".utf8))
        }
    } catch {
        die("\(error)")
    }

default:
    die(
        "usage: power-loss-server serve DATA PORT [--checkpoint-every PAGES] [--keep-full-sync] | replica DIR [--keep-full-sync] | probe DIR"
    )
}
