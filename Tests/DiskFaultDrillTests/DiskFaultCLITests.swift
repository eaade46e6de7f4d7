import CLITestSupport
import CRDT
import DomainTestSupport
import Foundation
import LocalStorage
import Replica
import StoreSupport
import SystemTestSupport
import Testing

/// `replica-cli` on a file system that really fills up (ENOSPC from the kernel, not a page limit):
/// a 32 MiB tmpfs with a filler file that leaves 256 KiB. An import that needs more says the disk
/// is full, exits 3 and changes nothing; with no block left at all, reading says the same (not
/// "damaged"); once the filler is gone the same import goes through.
/// Mounting needs root (CI runs as root); without it the in-process `DiskFullTests` still covers
/// SQLITE_FULL through `max_page_count`.
@Suite("replica-cli on a disk that is full or read-only", .serialized)
struct DiskFaultCLITests {
    @Test(
        "an import that fills the disk exits 3, says so and changes nothing; after freeing space it goes through",
        .enabled(if: SmallDisk.canMount, "mounting a tmpfs needs root"))
    func fullFileSystem() async throws {
        let directory = TempDirectory("disk-full-cli")
        let disk = try SmallDisk(size: "32m")
        _ = try LocalStore.create(
            in: disk.path + "/replica",
            identity: ReplicaIdentity(replica: ReplicaID(0xD15C), user: "jana", tenant: "acme"))
        let cli = CLI(data: disk.path + "/replica")
        for name in ["Jana Nováková", "Petr Svoboda", "Eva Dvořáková"] {
            try await cli.ok(["contact", "add", "--name", name, "--phone", "+420601\(100_000 + name.count)"])
        }
        // 4,000 contacts: about 4 MiB in the store and as much again in the WAL.
        let csv = directory.sub("contacts.csv")
        let rows = (0..<4_000).map { "Imported \($0),Acme \($0 % 50),+420602\(100_000 + $0),c\($0)@example.cz" }
        try (["name,company,phone,email"] + rows).joined(separator: "\n").write(
            toFile: csv, atomically: true, encoding: .utf8)

        try disk.fill(leaving: 256 * 1024)
        let full = try await cli.run(["import", "csv", csv, "--json"])
        let error = full.object["error"] as? [String: Any]
        #expect(full.status == 3 && error?["code"] as? String == "disk-full", "\(full)")
        #expect(full.stderr.contains("the disk is full") && full.stderr.contains("free some space"), "\(full.stderr)")
        #expect((try await cli.json(["contact", "list"])["contacts"] as? [Any])?.count == 3)

        // Not a free block left: SQLite cannot even create the WAL index to read the file. That
        // is no damage — every command once said "damaged, run repair" here.
        try disk.free()
        try disk.fill(leaving: 0)
        let unreadable = try await cli.run(["contact", "list", "--json"])
        #expect(
            unreadable.status == 3 && (unreadable.object["error"] as? [String: Any])?["code"] as? String == "disk-full"
                && !unreadable.stderr.contains("repair"), "\(unreadable)")

        try disk.free()
        let imported = try await cli.json(["import", "csv", csv])
        #expect(imported["imported"] as? Int == 4_000, "\(imported)")
        #expect((try await cli.json(["contact", "list"])["contacts"] as? [Any])?.count == 4_003)
        let found =
            try await cli.json(["contact", "list", "--search", "+420 602 103 999"])["contacts"] as? [[String: Any]]
        #expect(found?.map { $0["name"] as? String } == ["Imported 3999"])
        #expect(try LocalStore.open(in: disk.path + "/replica").integrityCheck() == ["ok"])
    }

    /// A laptop's disk the kernel remounted read-only after errors: every command said the
    /// replica was damaged and to run repair.
    @Test(
        "on a read-only file system every command says so, not damaged; remounted read-write it works",
        .enabled(if: SmallDisk.canMount, "mounting a tmpfs needs root"))
    func readOnlyFileSystem() async throws {
        let disk = try SmallDisk(size: "16m")
        _ = try LocalStore.create(
            in: disk.path + "/replica",
            identity: ReplicaIdentity(replica: ReplicaID(0xD15D), user: "jana", tenant: "acme"))
        let cli = CLI(data: disk.path + "/replica")
        try await cli.ok(["contact", "add", "--name", "Jana Nováková"])
        try disk.remount(readOnly: true)
        for command in [["contact", "list"], ["contact", "add", "--name", "Petr"], ["status"]] {
            let answer = try await cli.run(command + ["--json"])
            let error = answer.object["error"] as? [String: Any]
            #expect(answer.status == 3 && error?["code"] as? String == "not-writable", "\(command): \(answer)")
            #expect(
                answer.stderr.contains("read-only") && answer.stderr.contains("not damaged")
                    && !answer.stderr.contains("is damaged"), "\(command): \(answer.stderr)")
        }
        try disk.remount(readOnly: false)
        try await cli.ok(["contact", "add", "--name", "Petr Svoboda"])
        #expect((try await cli.json(["contact", "list"])["contacts"] as? [Any])?.count == 2)
    }
    /// A replica this user may not write to (another user's files, a directory without write
    /// permission): every command says so and that the file is not damaged. Run as `nobody`
    /// through `setpriv`, since permission bits do not stop root.
    @Test(
        "as a user who may not write to the replica, every command says so, not damaged",
        .enabled(
            if: NobodyUser.canRun, "switching to nobody needs root, setpriv and a world-readable temporary directory"))
    func noPermission() async throws {
        let directory = TempDirectory("no-permission")
        let replica = directory.sub("replica")
        _ = try LocalStore.create(
            in: replica, identity: ReplicaIdentity(replica: ReplicaID(0xD15E), user: "jana", tenant: "acme"))
        try await CLI(data: replica).ok(["contact", "add", "--name", "Jana Nováková"])
        // Root's replica, readable by others and writable by root only; the CLI in a place
        // nobody may run it from (the build directory may sit under a private one).
        let binary = directory.sub("replica-cli")
        try FileManager.default.copyItem(atPath: CLI.binary, toPath: binary)
        for (path, mode) in [(directory.path, 0o755), (replica, 0o755), (replica + "/replica.sqlite", 0o644)] {
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        }
        let before = try Data(contentsOf: URL(fileURLWithPath: replica + "/replica.sqlite"))
        for command in [["contact", "list"], ["contact", "add", "--name", "Petr"], ["status"]] {
            let answer = try await NobodyUser.run(binary, command + ["--data", replica, "--json"])
            let error = answer.object["error"] as? [String: Any]
            #expect(answer.status == 3 && error?["code"] as? String == "not-writable", "\(command): \(answer)")
            #expect(
                answer.stderr.contains("may not write to \(replica)") && answer.stderr.contains("not damaged")
                    && !answer.stderr.contains("is damaged"), "\(command): \(answer.stderr)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: replica + "/replica.sqlite")) == before)
        // Its owner still works with it.
        #expect((try await CLI(data: replica).json(["contact", "list"])["contacts"] as? [Any])?.count == 1)
    }
}

/// Running a command as the unprivileged user `nobody` (uid 65534) from a root test process.
enum NobodyUser {
    static let setpriv = "/usr/bin/setpriv"

    /// Root, `setpriv` present, and every directory above the temporary one searchable by others.
    static var canRun: Bool {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: setpriv) else { return false }
        var path = (NSTemporaryDirectory() as NSString).standardizingPath
        while path != "/" {
            let mode = (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? 0
            if mode & 0o001 == 0 { return false }
            path = (path as NSString).deletingLastPathComponent
        }
        return true
    }

    static func run(_ executable: String, _ arguments: [String]) async throws -> ProcessOutput {
        var environment = ProcessInfo.processInfo.environment
        for key in ["LANG", "LC_ALL", "LC_MESSAGES", "KRALIKI_REPLICA_HOME"] { environment[key] = nil }
        environment["LANG"] = "C"
        return try await ChildProcess.run(
            setpriv, ["--reuid=65534", "--regid=65534", "--clear-groups", executable] + arguments,
            environment: environment)
    }
}
