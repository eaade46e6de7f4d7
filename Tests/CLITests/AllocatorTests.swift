import CLITestSupport
import DomainTestSupport
import Foundation
import SystemTestSupport
import Testing

/// The replica's process allocates with tcmalloc when the machine has it: Package.swift links
/// Debian's `libtcmalloc-minimal4` into `replica-cli` by file name (the store's apply, import and
/// edits are 10-20 % faster with it, docs/performance.md, replica store), and `scripts/test` installs it.
@Suite("replica-cli's allocator")
struct AllocatorTests {
    /// Where Package.swift looks for it: the multiarch directories of any architecture,
    /// `/usr/lib64` and `/usr/lib`.
    static var tcmalloc: String? {
        let directories =
            ((try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib")) ?? [])
            .filter { $0.hasSuffix("-linux-gnu") }.map { "/usr/lib/" + $0 } + ["/usr/lib64", "/usr/lib"]
        return directories.map { $0 + "/libtcmalloc_minimal.so.4" }.first { FileManager.default.fileExists(atPath: $0) }
    }

    @Test func cliLoadsTcmallocExactlyWhenTheMachineHasIt() async throws {
        let installed = Self.tcmalloc != nil
        // With LD_TRACE_LOADED_OBJECTS the dynamic loader lists the objects the binary loads and
        // runs none of its code (ld.so(8)); the binary is the one the other CLI tests run.
        let output = try await ChildProcess.run(CLI.binary, [], environment: ["LD_TRACE_LOADED_OBJECTS": "1"])
        #expect(output.status == 0, "\(output)")
        #expect(output.stdout.contains("libswiftCore.so"), "no list of loaded objects: \(output)")
        let state = installed ? "is installed but replica-cli does not load it" : "is missing but replica-cli loads it"
        #expect(
            output.stdout.contains("libtcmalloc_minimal.so.4") == installed,
            """
            \(Self.tcmalloc ?? "libtcmalloc_minimal.so.4") \(state): SwiftPM cached the manifest from before; `touch Package.swift` and \
            build again.
            \(output.stdout)
            """)
    }
}
