import Foundation

/// A small file system that really fills up (ENOSPC from the kernel): a tmpfs mounted in a
/// temporary directory. Mounting needs root; CI runs as root. Tests that use it are enabled
/// only where `canMount`.
public final class SmallDisk: @unchecked Sendable {
    public let path: String
    private let directory: TempDirectory

    /// True where this process may mount a tmpfs (root, and mounting allowed).
    public static let canMount: Bool = {
        guard getuid() == 0 else { return false }
        let probe = TempDirectory("tmpfs-probe")
        guard (try? run("/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", probe.path])) != nil else {
            return false
        }
        try? run("/bin/umount", [probe.path])
        return true
    }()

    /// Mounts a tmpfs of `size` (`"32m"`).
    public init(size: String) throws {
        directory = TempDirectory("small-disk")
        path = directory.sub("disk")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try Self.run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(size)", "tmpfs", path])
    }

    /// Unmounts it (before the temporary directory is removed).
    deinit { try? Self.run("/bin/umount", ["-l", path]) }

    /// Writes `name`, a file that takes all but `leaving` bytes of the free space — or all of
    /// it, if less is left by the time it is written. Written in chunks until it is that large
    /// or the disk is full: a process writing to the same disk (the server, its WAL) can take
    /// some space between measuring and writing, and one write of the size measured up front
    /// then failed with ENOSPC (a flaky DiskFullServerTests run in CI).
    public func fill(_ name: String = "filler", leaving: Int) throws {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { throw POSIXError(.EIO) }
        var remaining = max(0, Int(stats.f_bavail) * Int(stats.f_frsize) - leaving)
        let file = open(path + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard file >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(file) }
        let zeros = [UInt8](repeating: 0, count: 64 * 1024)
        var chunk = zeros.count
        while remaining > 0 {
            let wrote = zeros.withUnsafeBytes { write(file, $0.baseAddress, min(chunk, remaining)) }
            if wrote > 0 {
                remaining -= wrote
            } else if wrote < 0 && errno == EINTR {
                continue
            } else if wrote < 0 && errno == ENOSPC && chunk > 512 {
                chunk /= 2  // the last scraps of space
            } else if wrote < 0 && errno == ENOSPC || wrote == 0 {
                return  // full
            } else {
                throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
            }
        }
    }

    /// Remounts it read-only (a disk the kernel remounted after errors) or read-write again.
    public func remount(readOnly: Bool) throws {
        try Self.run("/bin/mount", ["-o", readOnly ? "remount,ro" : "remount,rw", path])
    }

    /// Removes the file `fill` wrote.
    public func free(_ name: String = "filler") throws {
        try FileManager.default.removeItem(atPath: path + "/" + name)
    }

    private static func run(_ tool: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw POSIXError(.EPERM) }
    }
}
