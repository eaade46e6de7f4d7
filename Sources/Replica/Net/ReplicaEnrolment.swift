import CRDT
import Domain
import Foundation

/// Enrols a new replica: pins the server certificate (by the fingerprint in the enrolment
/// string, or a CA file), exchanges the one-time code for a device ID and token, writes
/// `device.json` (0600) and `server-cert.pem`, and creates the local store with the device ID
/// as replica ID. Nothing is written unless the server accepted the code.
public enum ReplicaEnrolment {
    public struct Result: Sendable {
        public let credentials: DeviceCredentials
        public let epoch: String
    }

    private struct EnrolRequest: Encodable { let code: String }
    private struct EnrolAnswer: Decodable {
        let deviceId: String
        let tenant: String
        let user: String
        let role: String
        let token: String
        let epoch: String
    }

    /// `caFile` replaces fingerprint pinning (a server with a certificate from an organization CA).
    public static func enrol(
        _ link: EnrolmentLink, caFile: String? = nil, directory: String, options: StoreOptions = StoreOptions()
    ) async throws -> Result {
        let storePath = (directory as NSString).appendingPathComponent(LocalStore.fileName)
        if FileManager.default.fileExists(atPath: storePath) {
            throw StoreError(
                .alreadyInitialized,
                "there already is a replica in \(directory); use it, or choose another --data directory")
        }
        guard let url = URL(string: link.server), let host = url.host else {
            throw EnrolmentLinkError("the server URL \(link.server) is not valid")
        }
        let trust: String?
        if let caFile {
            do { trust = try String(contentsOfFile: caFile, encoding: .utf8) } catch {
                throw EnrolmentLinkError("cannot read the CA file \(caFile)")
            }
        } else if let fingerprint = link.fingerprint {
            do {
                trust = try await CertificatePin.fetch(host: host, port: url.port ?? 443, fingerprint: fingerprint)
            } catch let mismatch as CertificatePin.Mismatch {
                throw SyncFailure(.untrustedServer, mismatch.description)
            } catch {
                throw SyncFailure(
                    .unreachable, "the server at \(link.server) is unreachable (\(error)); nothing was changed")
            }
        } else {
            trust = nil  // a certificate the system trusts
        }
        let client = try HTTPSyncClient(server: link.server, token: nil, trustPEM: trust)
        let answer: EnrolAnswer
        do {
            answer = try await client.json(
                .POST, "/v1/enroll", body: EnrolRequest(code: link.code), as: EnrolAnswer.self)
        } catch {
            try? await client.shutdown()
            throw error
        }
        try? await client.shutdown()
        guard let replica = ReplicaID(hex: answer.deviceId) else {
            throw SyncFailure(.incompatibleVersion, "the server gave a device ID this client does not understand")
        }
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let credentials = DeviceCredentials(
            server: link.server, deviceId: answer.deviceId, tenant: answer.tenant, user: answer.user, role: answer.role,
            token: answer.token)
        if let trust {
            try PrivateFile.write(
                Data(trust.utf8),
                to: (directory as NSString).appendingPathComponent(DeviceCredentials.certificateFileName))
        }
        try credentials.write(to: directory)
        _ = try LocalStore.create(
            in: directory, identity: ReplicaIdentity(replica: replica, user: answer.user, tenant: answer.tenant),
            serverURL: link.server, options: options)
        return Result(credentials: credentials, epoch: answer.epoch)
    }
}
