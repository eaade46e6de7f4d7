import Foundation

/// Files only their owner may read, written atomically and fsynced.
public enum PrivateFile {
    /// Creates `path` empty, readable and writable by its owner only, whatever the umask; fails
    /// when it exists (O_EXCL): a backup or restored store never lands in a file someone else
    /// made, or gets the caller's umask (a world-readable copy of every tenant's data).
    public static func create(_ path: String) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw StoreError(
                errno == EEXIST ? .alreadyInitialized : .io,
                errno == EEXIST ? "\(path) already exists" : "cannot create \(path) (errno \(errno))")
        }
        // open() applies the umask to 0600 too (it can only remove bits); set it exactly.
        fchmod(descriptor, 0o600)
        close(descriptor)
    }

    /// Copies `source` into a new private file `path` (see ``create(_:)``) and fsyncs it.
    public static func copy(_ source: String, to path: String) throws {
        try create(path)
        guard let input = FileHandle(forReadingAtPath: source), let output = FileHandle(forWritingAtPath: path) else {
            throw StoreError(.io, "cannot copy \(source) to \(path)")
        }
        defer {
            try? input.close()
            try? output.close()
        }
        while let chunk = try input.read(upToCount: 1 << 20), !chunk.isEmpty { try output.write(contentsOf: chunk) }
        try output.synchronize()
    }

    /// Creates `path` (and missing parents) with mode 0700 when it does not exist.
    public static func createDirectory(_ path: String) throws {
        try FileManager.default.createDirectory(
            atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    public static func write(_ data: Data, to path: String) throws {
        let temporary = path + ".tmp"
        unlink(temporary)
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard descriptor >= 0 else { throw StoreError(.io, "cannot create \(temporary) (errno \(errno))") }
        let written = data.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        let synced = fsync(descriptor)
        close(descriptor)
        guard written == data.count, synced == 0, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw StoreError(.io, "cannot write \(path) (errno \(errno))")
        }
    }
}
