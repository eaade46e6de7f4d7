// swift-tools-version:6.1
// Benchmarks live in their own package so they stay out of the default build and the test
// run. Run them in release mode only (debug is 8–10× slower):
//   swift run -c release --package-path Benchmarks crdt-bench
import Foundation
import PackageDescription

/// store-bench measures the replica's store in the process the replica runs in: with tcmalloc
/// when the machine has it, as `replica-cli` (see ../Package.swift). It prints which allocator.
let tcmallocFile = "libtcmalloc_minimal.so.4"
let libraryDirectories =
    ((try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib")) ?? [])
    .filter { $0.hasSuffix("-linux-gnu") }.map { "/usr/lib/" + $0 } + ["/usr/lib64", "/usr/lib"]
let replicaAllocator: [LinkerSetting] =
    libraryDirectories.contains { FileManager.default.fileExists(atPath: $0 + "/" + tcmallocFile) }
    ? [.linkedLibrary(":" + tcmallocFile)] : []

let package = Package(
    name: "kraliki-sync-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "kraliki-sync", path: ".."),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // glibc's heap statistics (malloc.h is not in Swift's Glibc module).
        .target(name: "CHeapStats"),
        .executableTarget(
            name: "crdt-bench",
            dependencies: [.product(name: "CRDT", package: "kraliki-sync"), "CHeapStats"]
        ),
        .executableTarget(
            name: "store-bench",
            dependencies: [
                .product(name: "Replica", package: "kraliki-sync"), .product(name: "SyncServer", package: "kraliki-sync"),
                .product(name: "LocalStorage", package: "kraliki-sync"),
                .product(name: "StoreSupport", package: "kraliki-sync"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            linkerSettings: replicaAllocator
        ),
        // The real release server process, loaded over loopback HTTP/2 + TLS.
        .executableTarget(
            name: "server-bench",
            dependencies: [
                .product(name: "Replica", package: "kraliki-sync"), .product(name: "SyncServer", package: "kraliki-sync"),
                .product(name: "LocalStorage", package: "kraliki-sync"),
                .product(name: "StoreSupport", package: "kraliki-sync"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"), .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
    ]
)
