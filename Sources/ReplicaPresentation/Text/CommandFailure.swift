import Domain
import Foundation
import LocalStorage
import Replica
import StoreSupport

/// An error as the CLI reports it: an exit status, a stable code for `--json`, and a message
/// from the ``Catalogue``.
///
/// Exit statuses: 0 success; 1 the user's input (bad value, unknown ID, not permitted, not
/// enrolled); 2 the server is unreachable or the sync did not complete (local work is kept);
/// 3 the local store has a problem.
public struct CommandFailure: Error, Sendable, Equatable {
    public let exitCode: Int32
    /// Stable: `invalid-phone`, `unreachable`, `revoked-device`, `corrupt` …
    public let code: String
    public let field: String?
    public let key: String
    public let arguments: [String: String]

    public init(exitCode: Int32, code: String, field: String? = nil, key: String, _ arguments: [String: String] = [:]) {
        self.exitCode = exitCode
        self.code = code
        self.field = field
        self.key = key
        self.arguments = arguments
    }

    /// A user error with the catalogue message `key`.
    public static func user(
        _ key: String, code: String = "invalid-input", field: String? = nil,
        _ arguments: [String: String] = [:]
    ) -> CommandFailure {
        CommandFailure(exitCode: 1, code: code, field: field, key: key, arguments)
    }

    public func message(_ catalogue: Catalogue) -> String { catalogue.text(key, arguments) }

    /// Classifies any error a command can meet. `duringSync` makes server refusals that leave the
    /// sync incomplete exit 2 rather than 1.
    public static func classify(_ error: any Error, duringSync: Bool = false) -> CommandFailure {
        switch error {
        case let failure as CommandFailure:
            return failure
        case let error as ValidationError:
            return CommandFailure(
                exitCode: 1, code: error.code.description, field: error.field, key: "error.validation",
                ["field": error.field, "detail": error.message])
        case let error as WriteError:
            switch error {
            case .invalid(let validation): return classify(validation)
            case .storage(let storage): return classify(storage)
            }
        case let error as StoreError:
            if error.code == .notInitialized || error.code == .alreadyInitialized {
                return CommandFailure(
                    exitCode: 1, code: error.code.description, key: "error.store-missing", ["detail": error.message])
            }
            if error.code == .diskFull || error.code == .notWritable {
                return CommandFailure(
                    exitCode: 3, code: error.code.description, key: "error.\(error.code)", ["detail": error.message])
            }
            return CommandFailure(
                exitCode: 3, code: error.code.description, key: "error.store", ["detail": error.description])
        case let error as ReissueError:
            return CommandFailure(
                exitCode: 1, code: error.code.description, field: "from", key: "error.reissue.\(error.code)",
                ["directory": error.directory, "detail": error.detail])
        case let error as EnrolmentLinkError:
            return CommandFailure(
                exitCode: 1, code: "invalid-enrolment", key: "error.enrolment-link", ["detail": error.description])
        case let error as SyncFailure:
            let code = error.code.description
            let detail = ["detail": error.message]
            switch error.code {
            case .unreachable: return CommandFailure(exitCode: 2, code: code, key: "sync.unreachable", detail)
            case .busy: return CommandFailure(exitCode: 2, code: code, key: "sync.busy", detail)
            case .revokedDevice: return CommandFailure(exitCode: 2, code: code, key: "sync.revoked", detail)
            case .untrustedServer: return CommandFailure(exitCode: 2, code: code, key: "sync.untrusted", detail)
            case .incompatibleVersion: return CommandFailure(exitCode: 2, code: code, key: "sync.incompatible", detail)
            case .staleCursor: return CommandFailure(exitCode: 2, code: code, key: "sync.stale", detail)
            case .notEnrolled: return CommandFailure(exitCode: 1, code: code, key: "sync.not-enrolled", detail)
            case .notPermitted: return CommandFailure(exitCode: 1, code: code, key: "sync.not-permitted", detail)
            case .notFound: return CommandFailure(exitCode: 1, code: code, key: "sync.not-found", detail)
            default:
                return CommandFailure(exitCode: duringSync ? 2 : 1, code: code, key: "sync.rejected", detail)
            }
        case let error as CertificatePin.Mismatch:
            return CommandFailure(
                exitCode: 2, code: "untrusted-server", key: "sync.untrusted", ["detail": error.description])
        default:
            // Anything else comes from the network stack while talking to the server.
            return CommandFailure(exitCode: 2, code: "unreachable", key: "sync.unreachable", ["detail": "\(error)"])
        }
    }
}
