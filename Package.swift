// swift-tools-version:6.1
// Kraliki Sync: an offline-first sync backend (CRDT domain model, HTTP/2 server, SQLite replicas).
//
// Dependencies point one way (docs/architecture/README.md draws the graph):
//   CRDT ← Domain ← StoreSupport ← LocalStorage ← Replica ← ReplicaPresentation ← replica-cli
//                                   LocalStorage ← SyncServer ← sync-server
// CRDT depends on nothing outside the Swift toolchain; the server links the replica's store (it
// builds bootstrap images as replica files) but not its HTTP client. External packages come only
// from the machine's local package mirror: Hummingbird (HTTP/2), async-http-client, GRDB and friends.
import Foundation
import PackageDescription

/// The replica's processes allocate with tcmalloc (Debian's `libtcmalloc-minimal4`) when the
/// machine has it: the store's apply, import and edits are allocation-heavy Swift, and glibc's
/// malloc costs them 10-20 % (docs/performance.md, replica store). Linked by file name (the
/// package ships no unversioned `.so`) from whichever library directory holds it — the
/// multiarch one of any architecture (`/usr/lib/<triple>`), `/usr/lib64` or `/usr/lib`;
/// without it the processes use glibc's malloc and work the same, slower. SwiftPM caches this
/// manifest: after installing the library, `touch Package.swift`.
let tcmallocFile = "libtcmalloc_minimal.so.4"
let libraryDirectories =
    ((try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib")) ?? [])
    .filter { $0.hasSuffix("-linux-gnu") }.map { "/usr/lib/" + $0 } + ["/usr/lib64", "/usr/lib"]
let replicaAllocator: [LinkerSetting] =
    libraryDirectories.contains { FileManager.default.fileExists(atPath: $0 + "/" + tcmallocFile) }
    ? [.linkedLibrary(":" + tcmallocFile)] : []

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "kraliki-sync",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "CRDT", targets: ["CRDT"]),
        .library(name: "Domain", targets: ["Domain"]),
        .library(name: "StoreSupport", targets: ["StoreSupport"]),
        .library(name: "LocalStorage", targets: ["LocalStorage"]),
        .library(name: "Replica", targets: ["Replica"]),
        .library(name: "ReplicaPresentation", targets: ["ReplicaPresentation"]),
        .library(name: "SyncServer", targets: ["SyncServer"]),
        .executable(name: "sync-server", targets: ["sync-server"]),
        .executable(name: "replica-cli", targets: ["replica-cli"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        .target(name: "CRDT", swiftSettings: swiftSettings),
        .target(name: "Domain", dependencies: ["CRDT"], swiftSettings: swiftSettings),
        // What the replica's and the server's SQLite stores share: error wrapping, migrations,
        // statements through SQLite's C API, private files.
        .target(
            name: "StoreSupport",
            dependencies: [
                "Domain", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings),
        // The replica's SQLite file: local writes, pulled batches, images, repair, import.
        .target(
            name: "LocalStorage",
            dependencies: [
                "Domain", "StoreSupport", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings),
        // The replica's network side: the HTTP/2 client, enrolment, the sync engine, admin calls.
        .target(
            name: "Replica",
            dependencies: [
                "Domain", "StoreSupport", "LocalStorage",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings),
        // What the CLI shows: the message catalogue, failures as sentences, views for --json,
        // vCard and iCalendar, the progress line.
        .target(
            name: "ReplicaPresentation", dependencies: ["Domain", "LocalStorage", "Replica"],
            swiftSettings: swiftSettings),
        .target(
            name: "SyncServer",
            dependencies: [
                "Domain", "StoreSupport", "LocalStorage", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdHTTP2", package: "hummingbird"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "sync-server",
            dependencies: ["SyncServer", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "replica-cli",
            dependencies: [
                "Replica", "LocalStorage", "StoreSupport", "ReplicaPresentation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings, linkerSettings: replicaAllocator),

        // Test support is its own target: seeded generators, the lattice-law checker and the
        // naive reference model used by the convergence fuzzer.
        .target(
            name: "CRDTTestSupport", dependencies: ["CRDT"], path: "Tests/CRDTTestSupport",
            swiftSettings: swiftSettings),
        .testTarget(name: "CRDTTests", dependencies: ["CRDT", "CRDTTestSupport"], swiftSettings: swiftSettings),
        // Processes, temporary directories and a small disk for the tests that need the system.
        .target(name: "SystemTestSupport", path: "Tests/SystemTestSupport", swiftSettings: swiftSettings),
        .target(
            name: "DomainTestSupport", dependencies: ["Domain", "CRDTTestSupport"], path: "Tests/DomainTestSupport",
            swiftSettings: swiftSettings),
        .testTarget(
            name: "DomainTests", dependencies: ["Domain", "DomainTestSupport", "SystemTestSupport", "CRDTTestSupport"],
            swiftSettings: swiftSettings),
        // A child process for the crash tests: writes to a store until it is killed.
        .executableTarget(
            name: "store-torture", dependencies: ["LocalStorage", "StoreSupport"], path: "Tests/StoreTorture",
            swiftSettings: swiftSettings),
        // Issue #7 drill 4 (power loss): an SQLite VFS shim that makes SIGKILL lose what a power cut
        // loses (writes not yet fsynced), and the real server library behind it. Test programs only:
        // nothing of this is linked into `sync-server`.
        .target(name: "PowerLossVFS", path: "Tests/PowerLossVFS", linkerSettings: [.linkedLibrary("sqlite3")]),
        .executableTarget(
            name: "power-loss-server",
            dependencies: [
                "PowerLossVFS", "SyncServer", "StoreSupport", "LocalStorage",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/PowerLossServer", swiftSettings: swiftSettings),
        // A real server on loopback for tests: start, enrol replicas, send raw requests.
        .target(
            name: "ServerTestSupport",
            dependencies: [
                "SyncServer", "Replica", "LocalStorage", "StoreSupport", "DomainTestSupport", "SystemTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/ServerTestSupport", swiftSettings: swiftSettings),
        // What every ServerStore implementation must pass, as checks a test target runs per store.
        .target(
            name: "ServerStoreConformance",
            dependencies: [
                "SyncServer", "Domain", "CRDT", "DomainTestSupport", "SystemTestSupport", "CRDTTestSupport",
            ],
            path: "Tests/ServerStoreConformance", swiftSettings: swiftSettings),
        .testTarget(
            name: "SyncServerTests",
            dependencies: [
                "ServerStoreConformance",
                "SyncServer", "Replica", "LocalStorage", "StoreSupport", "DomainTestSupport", "SystemTestSupport",
                "CRDTTestSupport",
                "ServerTestSupport", "sync-server",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings),
        // A replica's sync against an in-memory ledger, with faults at any phase of an exchange.
        .target(
            name: "ReplicaTestSupport", dependencies: ["Replica", "LocalStorage", "StoreSupport", "Domain", "CRDT"],
            path: "Tests/ReplicaTestSupport", swiftSettings: swiftSettings),
        // The real replica-cli binary as a subprocess: `CLI` runs it with a data directory.
        .target(
            name: "CLITestSupport",
            dependencies: ["LocalStorage", "StoreSupport", "Replica", "DomainTestSupport", "SystemTestSupport"],
            path: "Tests/CLITestSupport", swiftSettings: swiftSettings),
        // Drill 11: full and read-only disks, for the replica store, the CLI and the server.
        .testTarget(
            name: "DiskFaultDrillTests",
            dependencies: [
                "CLITestSupport", "ReplicaTestSupport", "SyncServer", "Replica", "LocalStorage", "StoreSupport",
                "ReplicaPresentation",
                "ServerTestSupport", "DomainTestSupport", "SystemTestSupport", "CRDTTestSupport", "replica-cli",
                "sync-server", .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings),
        // The real replica-cli binary as a subprocess against a real server on loopback.
        .testTarget(
            name: "CLITests",
            dependencies: [
                "CLITestSupport",
                "Replica", "LocalStorage", "StoreSupport", "ReplicaPresentation", "SyncServer", "ServerTestSupport",
                "DomainTestSupport", "SystemTestSupport",
                "DrillSupport", "replica-cli",
                "sync-server",
            ],
            swiftSettings: swiftSettings),
        // Issue #7's drills: the fault proxy and the multi-process harness (real sync-server and
        // replica processes on loopback), then one test target per group of drills.
        .target(
            name: "DrillSupport",
            dependencies: [
                "SyncServer", "Replica", "LocalStorage", "StoreSupport", "DomainTestSupport", "SystemTestSupport",
                "CRDTTestSupport",
                "ServerTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            path: "Tests/DrillSupport", swiftSettings: swiftSettings),
        .testTarget(
            name: "ChaosDrillTests",
            dependencies: [
                "DrillSupport", "SyncServer", "Replica", "LocalStorage", "StoreSupport", "DomainTestSupport",
                "SystemTestSupport",
                "CRDTTestSupport", "ServerTestSupport",
                "sync-server", "replica-cli",
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "HostileDrillTests",
            dependencies: [
                "DrillSupport",
                "SyncServer", "Replica", "LocalStorage", "StoreSupport", "DomainTestSupport", "SystemTestSupport",
                "CRDTTestSupport",
                "ServerTestSupport", "sync-server",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "RecoveryDrillTests",
            dependencies: [
                "SyncServer", "Replica", "LocalStorage", "StoreSupport", "DomainTestSupport", "SystemTestSupport",
                "CRDTTestSupport",
                "ServerTestSupport", "sync-server",
                "PowerLossVFS", "power-loss-server", "replica-cli",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "ReplicaTests",
            dependencies: [
                "ReplicaTestSupport",
                "Replica", "LocalStorage", "StoreSupport", "ReplicaPresentation", "DomainTestSupport",
                "SystemTestSupport",
                "CRDTTestSupport",
                "store-torture",
                // The network stack's own error values, for the reasons a failed sync gives.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings),
    ]
)
