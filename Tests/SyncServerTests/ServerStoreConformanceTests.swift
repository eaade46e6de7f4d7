import DomainTestSupport
import ServerStoreConformance
import SyncServer
import SystemTestSupport
import Testing

/// The embedded SQLite store passes every `ServerStore` conformance check, each on a fresh file.
@Suite("Server store conformance")
struct ServerStoreConformanceTests {
    @Test("the SQLite store", arguments: ServerStoreConformance.all)
    func sqlite(_ check: ServerStoreConformance) async throws {
        let directory = TempDirectory("conformance")
        let store = SQLiteServerStore(try ServerDatabase.open(in: directory.path))
        await #expect(throws: Never.self, "\(check) does not hold for the SQLite store") {
            try await check.check(store)
        }
    }
}
