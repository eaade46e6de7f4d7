import Domain
import DomainTestSupport
import Foundation
import LocalStorage
import Logging
import ServerTestSupport
import StoreSupport
import SystemTestSupport
import Testing

@testable import SyncServer

/// docs/api/openapi.yaml documents exactly the routes the server registers.
@Test("every registered route is in docs/api/openapi.yaml, and every documented route is registered")
func openAPIMatchesRoutes() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let yaml = try String(contentsOf: root.appendingPathComponent("docs/api/openapi.yaml"), encoding: .utf8)
    // Paths are the two-space keys under `paths:`, methods the four-space keys under a path.
    var documented = Set<String>()
    var inPaths = false
    var path: String?
    for line in yaml.split(separator: "\n", omittingEmptySubsequences: false) {
        if line == "paths:" {
            inPaths = true
            continue
        }
        if inPaths && !line.isEmpty && !line.hasPrefix(" ") { break }
        guard inPaths else { continue }
        if line.hasPrefix("  /") && line.hasSuffix(":") && !line.hasPrefix("   ") {
            path = String(line.dropFirst(2).dropLast())
        } else if let path, line.hasPrefix("    "), !line.hasPrefix("     "), line.hasSuffix(":") {
            let method = line.trimmingCharacters(in: .whitespaces).dropLast()
            if ["get", "post", "put", "patch", "delete"].contains(String(method)) {
                documented.insert("\(method.uppercased()) \(path)")
            }
        }
    }
    var config = ServerConfig()
    config.dataDirectory = TempDirectory("openapi").sub("data")
    let store = try ServerDatabase.open(in: config.dataDirectory)
    let runtime = ServerRuntime(config: config, database: store, fingerprint: nil, logger: .init(label: "openapi"))
    // The router's own route list: what is registered is what is served.
    let registered = Set(SyncServerApp.router(runtime).routes.map { "\($0.method.rawValue) \($0.path)" })
    #expect(!documented.isEmpty)
    #expect(
        registered.subtracting(documented).isEmpty,
        "registered but not documented: \(registered.subtracting(documented))")
    #expect(
        documented.subtracting(registered).isEmpty,
        "documented but not registered: \(documented.subtracting(registered))")
}

/// A flat message's listed JSON keys are exactly the keys its encoding writes (with every
/// optional set), so a field added to the type cannot be refused as unknown.
@Test("FlatJSONMessage key lists match the types' own encodings")
func flatJSONMessageKeys() throws {
    let request = PullRequest(epoch: ServerEpoch(rawValue: 7), cursor: 1, maxChanges: 2, maxBytes: 3)
    let object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(request)) as? [String: Any]
    #expect(Set(object?.keys ?? [:].keys) == PullRequest.jsonKeys)
}
