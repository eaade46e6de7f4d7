// swift-tools-version:6.1
// Kraliki Sync: an offline-first sync backend (CRDT domain model, HTTP/2 server, SQLite replicas).
//
// Dependencies point one way: CRDT ← Domain ← Replica / SyncServer ← executables.
// CRDT depends on nothing outside the Swift toolchain. External packages come only from the
// machine's local mirror (see DEVELOPERS.md); later issues add Hummingbird, GRDB and friends.
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "kraliki-sync",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "CRDT", targets: ["CRDT"]),
        .library(name: "Domain", targets: ["Domain"]),
        .library(name: "Replica", targets: ["Replica"]),
        .library(name: "SyncServer", targets: ["SyncServer"]),
        .executable(name: "sync-server", targets: ["sync-server"]),
        .executable(name: "replica-cli", targets: ["replica-cli"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0")
    ],
    targets: [
        .target(name: "CRDT", swiftSettings: swiftSettings),
        .target(name: "Domain", dependencies: ["CRDT"], swiftSettings: swiftSettings),
        .target(
            name: "Replica", dependencies: ["Domain", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: swiftSettings),
        .target(
            name: "SyncServer",
            dependencies: ["Domain", "Replica", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: swiftSettings),
        .executableTarget(name: "sync-server", dependencies: ["SyncServer"], swiftSettings: swiftSettings),
        .executableTarget(name: "replica-cli", dependencies: ["Replica"], swiftSettings: swiftSettings),

        // Test support is its own target: seeded generators, the lattice-law checker and the
        // naive reference model used by the convergence fuzzer.
        .target(
            name: "CRDTTestSupport", dependencies: ["CRDT"], path: "Tests/CRDTTestSupport",
            swiftSettings: swiftSettings),
        .testTarget(name: "CRDTTests", dependencies: ["CRDT", "CRDTTestSupport"], swiftSettings: swiftSettings),
        .target(
            name: "DomainTestSupport", dependencies: ["Domain", "CRDTTestSupport"], path: "Tests/DomainTestSupport",
            swiftSettings: swiftSettings),
        .testTarget(
            name: "DomainTests", dependencies: ["Domain", "DomainTestSupport", "CRDTTestSupport"],
            swiftSettings: swiftSettings),
        // A child process for the crash tests: writes to a store until it is killed.
        .executableTarget(
            name: "store-torture", dependencies: ["Replica"], path: "Tests/StoreTorture", swiftSettings: swiftSettings),
        .testTarget(
            name: "SyncServerTests", dependencies: ["SyncServer", "Replica", "DomainTestSupport", "CRDTTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "ReplicaTests", dependencies: ["Replica", "DomainTestSupport", "CRDTTestSupport", "store-torture"],
            swiftSettings: swiftSettings),
    ]
)
