import CRDT
import Domain
import Foundation
import LocalStorage
import StoreSupport

/// When to try a failed sync again: exponential backoff with full jitter, and a verdict on
/// which failures can heal.
///
/// Network cuts, timeouts, truncated or garbled answers and busy servers heal: try again. A
/// protocol version the server does not speak, a revoked device, a damaged local store do not:
/// retrying would only hide them, so the caller stops and tells the user what to do.
public struct RetryPolicy: Sendable {
    public var initialDelay: Duration = .milliseconds(200)
    public var maximumDelay: Duration = .seconds(60)
    public var maximumAttempts: Int = .max

    public init(
        initialDelay: Duration = .milliseconds(200), maximumDelay: Duration = .seconds(60), maximumAttempts: Int = .max
    ) {
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.maximumAttempts = maximumAttempts
    }

    /// The wait before attempt `attempt + 1` (attempt counts from 1): a uniformly random
    /// duration up to `min(maximumDelay, initialDelay × 2^(attempt-1))` ("full jitter"), so
    /// many replicas coming back after an outage do not retry in step.
    public func delay(after attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let exponent = min(max(attempt - 1, 0), 30)
        let ceiling = min(maximumDelay, initialDelay * (1 << exponent))
        let milliseconds = max(
            1, ceiling.components.seconds * 1_000 + ceiling.components.attoseconds / 1_000_000_000_000_000)
        return .milliseconds(Int64.random(in: 0...milliseconds, using: &generator))
    }

    /// Whether `error` can heal by trying again.
    public static func canHeal(_ error: any Error) -> Bool {
        switch error {
        case let error as SyncFailure: return error.canHeal
        case let error as StoreError: return error.code == .diskFull || error.code == .io  // damage does not heal
        case let error as BinaryDecodingError:
            // A garbled or cut answer heals; a server speaking another protocol version does not.
            return error.code != .unsupportedVersion && error.code != .wrongType
        default: return true  // transport errors: refused, reset, timed out
        }
    }
}

/// A failure a transport reports with its meaning (the HTTP transport maps status codes to these).
public struct SyncFailure: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case unreachable
            case busy
            case revokedDevice = "revoked-device"
            case incompatibleVersion = "incompatible-version"
            case rejectedRequest = "rejected-request"
            case untrustedServer = "untrusted-server"
            case staleCursor = "stale-cursor"
            case notEnrolled = "not-enrolled"
            case notPermitted = "not-permitted"
            case notFound = "not-found"
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The server could not be reached. Heals.
        public static let unreachable = Code(.unreachable)
        /// The server asked to slow down (429/503). Heals.
        public static let busy = Code(.busy)
        /// This device was revoked (401). Does not heal: enrol again.
        public static let revokedDevice = Code(.revokedDevice)
        /// The server speaks another protocol version. Does not heal: upgrade.
        public static let incompatibleVersion = Code(.incompatibleVersion)
        /// The server refused the request as malformed (4xx). Does not heal.
        public static let rejectedRequest = Code(.rejectedRequest)
        /// The server's certificate is not the one pinned at enrolment. Does not heal.
        public static let untrustedServer = Code(.untrustedServer)
        /// This replica was offline past the server's retention. Does not heal by retrying.
        public static let staleCursor = Code(.staleCursor)
        /// This replica has no enrolment. Does not heal: run `replica-cli init`.
        public static let notEnrolled = Code(.notEnrolled)
        /// The device's role does not allow this (403). Does not heal.
        public static let notPermitted = Code(.notPermitted)
        /// The object does not exist in this tenant (404). Does not heal.
        public static let notFound = Code(.notFound)

        public var description: String { base.rawValue }
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var canHeal: Bool { code == .unreachable || code == .busy }

    public var description: String { message }
}

extension SyncEngine {
    /// Syncs, retrying failures that can heal with ``RetryPolicy`` backoff; rethrows the first
    /// failure that cannot heal, or the last one when the attempts run out. Local work is safe
    /// throughout: every step that committed stays committed.
    public nonisolated(nonsending) func syncRetrying(
        policy: RetryPolicy = RetryPolicy(), sleep: (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
        onRetry: (Int, any Error, Duration) -> Void = { _, _, _ in }
    ) async throws -> SyncReport {
        var generator = SystemRandomNumberGenerator()
        var attempt = 1
        while true {
            do {
                return try await sync()
            } catch {
                guard RetryPolicy.canHeal(error), attempt < policy.maximumAttempts else { throw error }
                let delay = policy.delay(after: attempt, using: &generator)
                onRetry(attempt, error, delay)
                try await sleep(delay)
                attempt += 1
            }
        }
    }
}
