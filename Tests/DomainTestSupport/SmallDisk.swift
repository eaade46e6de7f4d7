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

    /// Writes `name`, a file that takes all but `leaving` bytes of the free space.
    public func fill(_ name: String = "filler", leaving: Int) throws {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { throw POSIXError(.EIO) }
        let size = max(0, Int(stats.f_bavail) * Int(stats.f_frsize) - leaving)
        guard FileManager.default.createFile(atPath: path + "/" + name, contents: Data(count: size)) else {
            throw POSIXError(.ENOSPC)
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
