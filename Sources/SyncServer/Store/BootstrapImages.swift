import CRDT
import Crypto
import Domain
import Foundation
import LocalStorage
import StoreSupport
import Synchronization

/// Bootstrap images: for each tenant, a replica file holding the tenant's whole state, which a
/// fresh replica downloads (`GET /v1/sync/image`) and takes instead of pulling and
/// materializing every change (then it pulls only what came after the image).
///
/// Each tenant's image is written by a *builder*: a replica store on the server's disk
/// (`<data>/images/<tenant key>/builder/`) that only ever pulls from this server's store, in
/// process, exactly as a replica pulls over the network. It never writes and never pushes: on a
/// new epoch (a restore) or a cursor older than the retention it is thrown away and built again
/// from cursor 0. A refresh pulls what the builder lacks and writes a compact copy of it
/// (`VACUUM INTO`), named by epoch and cursor, with its SHA-256 (sent as `Repr-Digest`).
///
/// Every device of a tenant pulls the same data (the server keeps no per-role projection), so
/// one image per tenant serves all of them; an image holds nothing a pull would not give the
/// same device.
public final class BootstrapImages: Sendable {
    public struct Image: Sendable, Equatable {
        public let path: String
        public let epoch: ServerEpoch
        /// The tenant sequence the image holds everything up to.
        public let cursor: UInt64
        public let bytes: Int
        /// SHA-256 of the file, base64.
        public let digest: String
    }

    public let directory: String
    let store: ServerDatabase
    private let newest = Mutex<[String: Image]>([:])
    /// Held while a refresh runs: one at a time.
    private let refreshing = Mutex(())
    public init(directory: String, store: ServerDatabase) {
        self.directory = directory
        self.store = store
    }

    /// The newest image of `tenant`: the last one written, or after a restart the newest on disk
    /// (with its digest beside it).
    public func image(of tenant: String) -> Image? {
        if let image = newest.withLock({ $0[tenant] }) { return image }
        guard let image = onDisk(tenant) else { return nil }
        return newest.withLock { images in
            if let written = images[tenant] { return written }  // a refresh finished meanwhile
            images[tenant] = image
            return image
        }
    }

    /// The newest `image-<epoch>-<cursor>.sqlite` in the tenant's folder that has its digest.
    private func onDisk(_ tenant: String) -> Image? {
        let folder = (directory as NSString).appendingPathComponent(Self.key(tenant))
        var best: Image?
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        where name.hasPrefix("image-") && name.hasSuffix(".sqlite") {
            let parts = name.dropFirst("image-".count).dropLast(".sqlite".count).split(separator: "-")
            let path = (folder as NSString).appendingPathComponent(name)
            guard parts.count == 2, let epoch = UInt64(parts[0], radix: 16), let cursor = UInt64(parts[1]),
                let digest = try? String(contentsOfFile: path + Self.digestSuffix, encoding: .utf8),
                let bytes = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int
            else { continue }
            if best.map({ cursor > $0.cursor }) ?? true {
                best = Image(
                    path: path, epoch: ServerEpoch(rawValue: epoch), cursor: cursor, bytes: bytes,
                    digest: digest.trimmingCharacters(in: .whitespacesAndNewlines))
            }
        }
        return best
    }

    /// Beside each image: its SHA-256 (base64), so an image outlives a restart.
    static let digestSuffix = ".sha256"

    /// The image to give a replica of `tenant` now: one of the tenant's current epoch that a
    /// pull can continue from (not older than collected tombstones); nil otherwise.
    public func servable(of tenant: String) throws(StoreError) -> Image? {
        guard let image = image(of: tenant), let head = try store.ledgerHead(of: tenant),
            image.epoch == head.epoch, image.cursor >= head.collectedThrough
        else { return nil }
        return image
    }

    /// Tenants whose image is missing or at least `minChanges` sequences behind (or of an old
    /// epoch), and that have at least `minChanges` sequences at all.
    public func tenantsDue(minChanges: UInt64) throws(StoreError) -> [String] {
        guard minChanges > 0 else { return [] }
        return try store.ledgerHeads().filter { head in
            guard head.sequence >= minChanges else { return false }
            guard let image = image(of: head.tenant), image.epoch == head.epoch else { return true }
            return head.sequence - min(head.sequence, image.cursor) >= minChanges
        }.map(\.tenant)
    }

    /// Brings the tenant's builder up to the ledger's head and writes a new image of it (or
    /// returns the newest one when nothing changed since).
    @discardableResult
    public func refresh(tenant: String, wall: UInt64) throws(StoreError) -> Image {
        let folder = (directory as NSString).appendingPathComponent(Self.key(tenant))
        let result: Result<Image, StoreError> = refreshing.withLock { _ in
            let built: Result<Image, StoreError>
            do throws(StoreError) {
                built = .success(try build(tenant, in: folder, wall: wall))
            } catch {
                built = .failure(error)
            }
            _ = trimHeap(0)  // give the builder's memory back to the system
            return built
        }
        return try result.get()
    }

    /// The builder is opened for each refresh and dropped after it: it holds the tenant's whole
    /// state in memory (about 1 KB per contact), which the server should not carry between
    /// refreshes.
    private func build(_ tenant: String, in folder: String, wall: UInt64) throws(StoreError) -> Image {
        var builder = try openBuilder(tenant, in: folder)
        try catchUp(&builder, tenant: tenant, folder: folder, wall: wall)
        let epoch = builder.session.epoch ?? ServerEpoch(rawValue: 0)
        let cursor = builder.session.pullCursor
        if let current = image(of: tenant), current.epoch == epoch, current.cursor == cursor { return current }
        let image = try write(builder, epoch: epoch, cursor: cursor, in: folder)
        newest.withLock { $0[tenant] = image }
        removeImages(in: folder, keeping: image.path)
        return image
    }

    /// Pulls until the builder has everything; starts it over on a new epoch or a stale cursor.
    private func catchUp(_ builder: inout LocalStore, tenant: String, folder: String, wall: UInt64) throws(StoreError) {
        while true {
            let session = builder.session
            let request = PullRequest(
                epoch: session.epoch, cursor: session.pullCursor, maxChanges: 1_000, maxBytes: 8 * 1024 * 1024)
            let response: PullResponse
            do {
                response = try store.respond(to: request, tenant: tenant, wall: wall)
            } catch {
                switch error {
                case .staleCursor:
                    builder = try startOver(tenant, in: folder)
                    continue
                case .store(let failure):
                    throw failure
                }
            }
            var next = session
            let actions = next.receive(response, for: request, sentAt: wall, receivedAt: wall)
            if actions.contains(.repushEverything) {
                // The server was restored: a builder never pushes, it starts again.
                builder = try startOver(tenant, in: folder)
                continue
            }
            try builder.commit(session: next, actions: actions, wall: wall)
            if !actions.contains(.pullAgain) { return }
        }
    }

    private func builderDirectory(_ folder: String) -> String {
        (folder as NSString).appendingPathComponent("builder")
    }

    /// The builder fsyncs nothing (`NORMAL`) and keeps no audit trail: it is rebuilt from the
    /// server's store whenever it is lost or damaged.
    static let builderOptions = StoreOptions(durability: .normal, auditsPulls: false)

    private func openBuilder(_ tenant: String, in folder: String) throws(StoreError) -> LocalStore {
        let builderPath = builderDirectory(folder)
        if FileManager.default.fileExists(
            atPath: (builderPath as NSString).appendingPathComponent(LocalStore.fileName)),
            let builder = try? LocalStore.open(in: builderPath, options: Self.builderOptions),
            builder.identity.tenant == tenant
        {
            return builder
        }
        return try startOver(tenant, in: folder)
    }

    private func startOver(_ tenant: String, in folder: String) throws(StoreError) -> LocalStore {
        let builderPath = builderDirectory(folder)
        try? FileManager.default.removeItem(atPath: builderPath)
        var generator = SystemRandomNumberGenerator()
        let identity = ReplicaIdentity(
            replica: ReplicaID(UInt64.random(in: 1...UInt64.max, using: &generator)), user: "(image builder)",
            tenant: tenant)
        return try LocalStore.create(in: builderPath, identity: identity, options: Self.builderOptions)
    }

    private func write(
        _ builder: LocalStore, epoch: ServerEpoch, cursor: UInt64, in folder: String
    ) throws(StoreError)
        -> Image
    {
        let path = (folder as NSString).appendingPathComponent("image-\(epoch)-\(cursor).sqlite")
        let temporary = path + ".part"
        try builder.writeImage(to: temporary)
        // Checked before its digest is taken: the digest then vouches for a sound file, so a
        // replica that received exactly these bytes received a sound database.
        let check = try SQLiteFile.wrap("checking \(temporary)", recovery: "the next refresh writes it again") {
            try SQLiteFile.check(temporary)
        }
        guard check == ["ok"] else {
            unlink(temporary)
            throw StoreError(.corrupt, "the image written to \(temporary) fails its check: \(check.prefix(2))")
        }
        let (bytes, digest) = try Self.sha256(of: temporary)
        do {
            try Data(digest.utf8).write(to: URL(fileURLWithPath: path + Self.digestSuffix), options: .atomic)
        } catch {
            unlink(temporary)
            throw StoreError(.io, "cannot write the digest of \(path)", underlying: error)
        }
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw StoreError(.io, "cannot move \(temporary) into place (errno \(errno))")
        }
        return Image(path: path, epoch: epoch, cursor: cursor, bytes: bytes, digest: digest)
    }

    /// Removes older images with their digests, keeping `path` and the one before it (a
    /// download of the previous image may still be reading it; an unlinked open file stays
    /// readable anyway), and anything a failed refresh left.
    private func removeImages(in folder: String, keeping path: String) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        let images = names.filter { $0.hasPrefix("image-") && $0.hasSuffix(".sqlite") }
            .map { (folder as NSString).appendingPathComponent($0) }
            .filter { $0 != path }
            .map { ($0, (try? FileManager.default.attributesOfItem(atPath: $0)[.modificationDate]) as? Date) }
            .sorted { ($0.1 ?? .distantPast) > ($1.1 ?? .distantPast) }
            .map(\.0)
        let kept = Set([path] + images.prefix(1))
        for name in names where name.hasPrefix("image-") {
            let file = (folder as NSString).appendingPathComponent(name)
            let image = file.hasSuffix(Self.digestSuffix) ? String(file.dropLast(Self.digestSuffix.count)) : file
            if !kept.contains(image) { try? FileManager.default.removeItem(atPath: file) }
        }
    }

    /// A directory name for a tenant (tenant names are user input).
    static func key(_ tenant: String) -> String {
        SHA256.hash(data: Data(tenant.utf8)).prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    static func sha256(of path: String) throws(StoreError) -> (bytes: Int, digest: String) {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw StoreError(.io, "cannot read \(path)")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        var bytes = 0
        while true {
            let chunk: Data
            do { chunk = try handle.read(upToCount: 1 << 20) ?? Data() } catch {
                throw StoreError(.io, "cannot read \(path)", underlying: error)
            }
            if chunk.isEmpty { break }
            hasher.update(data: chunk)
            bytes += chunk.count
        }
        return (bytes, Data(hasher.finalize()).base64EncodedString())
    }
}

/// glibc's `malloc_trim` (malloc.h is not in Swift's Glibc module): returns freed heap memory
/// to the system, so a refresh's peak does not stay in the server's resident size.
@_silgen_name("malloc_trim")
private func trimHeap(_ pad: Int) -> Int32
