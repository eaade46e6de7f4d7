import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// Bootstrap images: a fresh replica takes a prebuilt copy of a replica file holding the
/// server's state (built on the server by a replica that only pulls, see
/// `SyncServer.BootstrapImages`) instead of pulling and materializing every change, then pulls
/// only what came after the image. Copying pages is the least work that leaves every row
/// queryable; materializing 100,000 contacts row by row cannot get under ~2 s on this
/// machine's SQLite (docs/performance.md, "the floor").
extension LocalStore {
    /// Where an image is downloaded before the store takes it.
    public var imageDownloadPath: String {
        ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent("image.download")
    }

    /// True when this replica has just re-bootstrapped (`rebootstrap`: no entity, pull cursor 0
    /// of a known epoch) and its outbox holds only refused changes: it may take a bootstrap image,
    /// keeping those changes, its sequence numbers and its audit trail (``adoptImage(at:checked:)``).
    public func isRebootstrapped() throws(StoreError) -> Bool {
        guard state.isBottom, session.epoch != nil, session.pullCursor == 0 else { return false }
        return try Self.wrap("reading \(path)") {
            try database.read { db in
                try Int.fetchOne(
                    db,
                    sql:
                        "SELECT (SELECT COUNT(*) FROM outbox WHERE rejected_code IS NULL) + (SELECT COUNT(*) FROM entity_state)"
                ) == 0
            }
        }
    }

    /// Whether this replica holds nothing yet: no entity, no outbox row (pending, sent or
    /// refused), and it never pulled or pushed. Such a replica may take an image; so may one
    /// that has just re-bootstrapped (``isRebootstrapped()``).
    public func isFresh() throws(StoreError) -> Bool {
        guard state.isBottom, session.epoch == nil, session.pullCursor == 0, session.pushCheckpoint == 0 else {
            return false
        }
        return try Self.wrap("reading \(path)") {
            try database.read { db in
                try Int.fetchOne(
                    db, sql: "SELECT (SELECT COUNT(*) FROM outbox) + (SELECT COUNT(*) FROM entity_state)") == 0
            }
        }
    }

    /// Writes a consistent, compact copy of this store to `imagePath` (`VACUUM INTO`, then
    /// fsync): what the server ships as a bootstrap image. The copy is in rollback-journal mode;
    /// the replica that takes it gives it its own identity first (``adoptImage(at:)``).
    public func writeImage(to imagePath: String) throws(StoreError) {
        unlink(imagePath)  // VACUUM INTO refuses an existing file
        try Self.wrap("writing an image of \(path) to \(imagePath)") {
            try database.writeWithoutTransaction { db in
                try db.execute(sql: "VACUUM INTO ?", arguments: [imagePath])
            }
        }
        try SQLiteFile.fsync(imagePath)
    }

    /// What taking an image brought.
    public struct ImageAdoption: Sendable, Equatable {
        public let epoch: ServerEpoch
        /// The pull cursor the image was built at: the replica pulls from here.
        public let cursor: UInt64
        public let entities: Int
    }

    /// Replaces this fresh replica's file with the image at `imagePath` (a downloaded bootstrap
    /// image), keeping this replica's identity, server and clock, and loads it.
    ///
    /// The image is checked first — `PRAGMA quick_check` (unless `checked`: its bytes are proven
    /// identical to a file the server checked, by the digest), a schema this build knows, this
    /// replica's tenant, an empty outbox — and refused with ``StoreError/Code/imageRefused``
    /// (nothing changed) when it does not fit, or this replica is neither fresh nor just
    /// re-bootstrapped (then its refused changes, outbox counter and audit trail are carried
    /// into the image in one transaction before the rename).
    ///
    /// Crash safety: the image is made this replica's (identity, session at the image's cursor)
    /// in its own fsynced transaction, the current file is checkpointed into rollback mode and
    /// closed, and only then is the image renamed over it and the directory fsynced. A crash
    /// before the rename leaves the fresh replica as it was (the next sync takes an image
    /// again); after it, the replica is the image with its own identity.
    @discardableResult
    public func adoptImage(at imagePath: String, checked: Bool = false) throws(StoreError) -> ImageAdoption {
        func refuse(_ reason: String) -> StoreError {
            StoreError(.imageRefused, "the bootstrap image was not taken: \(reason); pulling instead")
        }
        let fresh = try isFresh()
        var rebootstrapped = false
        if !fresh { rebootstrapped = try isRebootstrapped() }
        guard fresh || rebootstrapped else { throw refuse("this replica already holds data") }
        let ownMeta = try Self.wrap("reading \(path)") {
            try database.read { db in
                try Row.fetchAll(db, sql: "SELECT key, value FROM store_meta").map {
                    (key: $0["key"] as String, value: $0["value"] as String)
                }
            }
        }
        var configuration = Configuration()
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        let image: DatabaseQueue
        do {
            image = try DatabaseQueue(path: imagePath, configuration: configuration)
        } catch {
            throw refuse("\(imagePath) does not open as a database (\(error))")
        }
        let adopted: ReplicaSyncSession
        let entities: Int
        do {
            defer { try? image.close() }
            let check = try image.writeWithoutTransaction { db -> [String] in
                let result = checked ? ["ok"] : try String.fetchAll(db, sql: "PRAGMA quick_check")
                if result == ["ok"] { try db.execute(sql: "PRAGMA journal_mode = DELETE") }
                return result
            }
            guard check == ["ok"] else { throw refuse("it is damaged (\(check.prefix(2).joined(separator: "; ")))") }
            let (version, meta, sessionJSON, outbox, count) = try image.read { db in
                (
                    try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0,
                    Dictionary(
                        try Row.fetchAll(db, sql: "SELECT key, value FROM store_meta").map {
                            ($0["key"] as String, $0["value"] as String)
                        }, uniquingKeysWith: { $1 }),
                    try String.fetchOne(db, sql: "SELECT session FROM sync_state WHERE id = 1"),
                    try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox") ?? 0,
                    try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM entity_state") ?? 0
                )
            }
            guard (1...schemaMigrations.count).contains(version) else {
                throw refuse("it has schema \(version) and this build knows 1 to \(schemaMigrations.count)")
            }
            guard meta["tenant"] == identity.tenant else {
                throw refuse("it is of tenant \(meta["tenant"] ?? "?"), this replica of \(identity.tenant)")
            }
            guard outbox == 0 else { throw refuse("its outbox is not empty") }
            guard let sessionJSON, let imageSession = try? decodeJSON(ReplicaSyncSession.self, sessionJSON),
                let imageLast = meta["hlc_last"].flatMap({ HLC(text: $0) })
            else { throw refuse("it lacks its sync state") }
            let taken =
                fresh
                ? self.session.adoptingImage(of: imageSession) : self.session.rebootstrappingFromImage(of: imageSession)
            guard let session = taken else {
                throw refuse("it has no server epoch or another one, or this replica synced already")
            }
            adopted = session
            entities = count
            // Never let a stamp go backwards: the image's builder observed every stamp in it.
            let last = HLC(time: max(imageLast.time, clock.last.time), replica: identity.replica)
            try image.write { db in
                try db.execute(sql: "DELETE FROM store_meta")
                for (key, value) in ownMeta {
                    try db.execute(
                        sql: "INSERT INTO store_meta (key, value) VALUES (?, ?)",
                        arguments: [key, key == "hlc_last" ? last.text : value])
                }
                try db.execute(
                    sql: "UPDATE sync_state SET server_url = ?, session = ?, last_sync_ms = NULL WHERE id = 1",
                    arguments: [serverURL, try encodeJSON(adopted)])
                // The builder's trail and derived conflicts are not this replica's.
                try db.execute(sql: "DELETE FROM audit")
                try db.execute(sql: "DELETE FROM conflicts")
            }
            if !fresh { try carryOwnRows(into: image) }
        } catch let error as StoreError {
            throw error
        } catch {
            throw refuse("reading it failed (\(error))")
        }
        try SQLiteFile.fsync(imagePath)
        try replaceFile(with: imagePath)
        return ImageAdoption(epoch: adopted.epoch!, cursor: adopted.pullCursor, entities: entities)
    }

    /// After a re-bootstrap, what is this replica's own and not the server's goes into the image
    /// too, in one transaction: its refused changes (with their reasons and sequence numbers), the
    /// outbox's counter (so no sequence number the server has seen is used again) and its audit
    /// trail.
    private func carryOwnRows(into image: DatabaseQueue) throws {
        try image.writeWithoutTransaction { db in
            try db.execute(sql: "ATTACH DATABASE ? AS own", arguments: [path])
            defer { try? db.execute(sql: "DETACH DATABASE own") }
            try db.inTransaction {
                try db.execute(
                    sql: """
                        INSERT INTO main.outbox (local_seq, change, created_hlc, rejected_code, rejected_reason)
                        SELECT local_seq, change, created_hlc, rejected_code, rejected_reason FROM own.outbox
                        """)
                try db.execute(sql: "DELETE FROM main.sqlite_sequence WHERE name = 'outbox'")
                try db.execute(
                    sql: """
                        INSERT INTO main.sqlite_sequence (name, seq)
                        SELECT name, seq FROM own.sqlite_sequence WHERE name = 'outbox'
                        """)
                // The trail's counter came with this replica's store_meta.
                try db.execute(
                    sql: """
                        INSERT INTO main.audit (entity_kind, entity_id, seq, at_hlc, user, device, action)
                        SELECT entity_kind, entity_id, seq, at_hlc, user, device, action FROM own.audit
                        """)
                return .commit
            }
        }
    }

    /// Puts the file at `imagePath` in place of this store's file and opens it.
    private func replaceFile(with imagePath: String) throws(StoreError) {
        // Rollback mode first: the WAL is checkpointed into the file and removed, so no WAL of
        // the old file can be applied to the new one. That needs this to be the file's only
        // connection: with another process on the same replica (a `sync --watch` beside a
        // `sync`), the image is not taken and this replica pulls as before.
        let mode = try? database.writeWithoutTransaction { db in
            try String.fetchOne(db, sql: "PRAGMA journal_mode = DELETE")
        }
        guard mode == "delete" else {
            if mode != nil {
                try? database.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = WAL") }
            }
            throw StoreError(
                .imageRefused,
                "the bootstrap image was not taken: \(path) is open in another process too; pulling instead")
        }
        try Self.wrap("closing \(path)") { try database.close() }
        let directory = (path as NSString).deletingLastPathComponent
        let moved =
            !FileManager.default.fileExists(atPath: path + "-wal") && rename(imagePath, path) == 0
        let renameErrno = errno
        if moved { try? SQLiteFile.fsync(directory) }
        // Open whichever file is in place now: the image, or the old one after a failed rename.
        database = try Self.connect(path: path, options: options)
        try Self.migrate(database, path: path)
        guard moved else {
            throw StoreError(.io, "cannot move the bootstrap image into place (errno \(renameErrno)); nothing changed")
        }
        let (contents, version) = try Self.wrap("loading \(path)") {
            try database.read { db in (try Self.loadContents(db, path: path), try Self.dataVersion(db)) }
        }
        dataVersion = version
        state = contents.state
        session = contents.session
        clock = contents.clock
        serverURL = contents.serverURL
    }
}
