// swift-tools-version:6.1
// Benchmarks live in their own package so they stay out of the default build and the test
// run. Run them in release mode only (debug is 8–10× slower):
//   swift run -c release --package-path Benchmarks crdt-bench
import PackageDescription

let package = Package(
    name: "kraliki-sync-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "kraliki-sync", path: ".."),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
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
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
    ]
)
