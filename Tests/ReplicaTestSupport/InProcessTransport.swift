import CRDT
import Domain
import LocalStorage
import Replica
import StoreSupport

/// A server ledger behind a transport that can fail at any phase of an exchange.
public final class InProcessTransport: SyncTransport {
    public enum Fault: Equatable, Sendable {
        /// The request never leaves (connection refused, network down).
        case beforeRequest
        /// The server processes the request, commits, and the answer is lost.
        case afterServerCommit
        /// The answer arrives cut short.
        case midResponse
    }

    public struct Cut: Error {
        public init() {}
    }

    public var ledger: TenantLedger
    public var wall: UInt64 = 1_764_000_000_000
    /// Faults to apply to the next exchanges, in order (`nil` = no fault).
    public var faults: [Fault?] = []
    public private(set) var exchanges = 0

    public init(ledger: TenantLedger) {
        self.ledger = ledger
    }

    public func push(_ batch: [UInt8]) async throws -> [UInt8] {
        try exchange(batch) { bytes in ledger.receive(try PushBatch(blob: bytes), wall: wall).encodedBlob() }
    }

    public func pull(_ request: [UInt8]) async throws -> [UInt8] {
        try exchange(request) { bytes in ledger.respond(to: try PullRequest(blob: bytes), wall: wall).encodedBlob() }
    }

    private func exchange(_ bytes: [UInt8], _ serve: ([UInt8]) throws -> [UInt8]) throws -> [UInt8] {
        exchanges += 1
        let fault = faults.isEmpty ? nil : faults.removeFirst()
        if fault == .beforeRequest { throw Cut() }
        let answer = try serve(bytes)
        switch fault {
        case .afterServerCommit: throw Cut()
        case .midResponse: return Array(answer.prefix(answer.count / 2))
        default: return answer
        }
    }
}
