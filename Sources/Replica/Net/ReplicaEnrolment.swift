import CRDT
import Domain
import Foundation
import LocalStorage
import StoreSupport

/// Enrols a new replica: pins the server certificate (by the fingerprint in the enrolment
/// string, or a CA file), exchanges the one-time code for a device ID and token, writes
/// `device.json` (0600) and `server-cert.pem`, and creates the local store with the device ID
/// as replica ID. Nothing is written unless the server accepted the code.
public enum ReplicaEnrolment {
    public struct Result: Sendable {
        public let credentials: DeviceCredentials
        public let epoch: String
    }

    private struct EnrolRequest: Encodable {
        let code: String
        var rejoining: RejoinClaim? = nil
    }

    private struct RejoinClaim: Encodable {
        let replica: String
        let tenant: String
        let user: String
    }
    private struct EnrolAnswer: Decodable {
        let deviceId: String
        let tenant: String
        let user: String
        let role: String
        let token: String
        let epoch: String
    }

    /// Disaster recovery: this replica's server was lost without a backup and a new one runs.
    /// Enrols the EXISTING replica in `directory` with a fresh code, keeping its replica ID, store
    /// and outbox (the server refuses if the ID is taken, or if the code is for another tenant or
    /// user). Its next sync meets a new epoch and pushes everything it holds to the new server.
    public static func rejoin(_ link: EnrolmentLink, caFile: String? = nil, directory: String) async throws -> Result {
        let store = try LocalStore.open(in: directory)
        let identity = store.identity
        guard let url = URL(string: link.server), let host = url.host else {
            throw EnrolmentLinkError("the server URL \(link.server) is not valid")
        }
        let trust = try await trustedCertificate(for: link, caFile: caFile, host: host, port: url.port ?? 443)
        let request = EnrolRequest(
            code: link.code,
            rejoining: RejoinClaim(replica: identity.replica.hex, tenant: identity.tenant, user: identity.user))
        let answer: EnrolAnswer = try await exchange(request, link: link, trust: trust)
        guard answer.deviceId == identity.replica.hex else {
            throw SyncFailure(.incompatibleVersion, "the server did not keep this replica's ID; upgrade the server")
        }
        let credentials = DeviceCredentials(
            server: link.server, deviceId: answer.deviceId, tenant: answer.tenant, user: answer.user, role: answer.role,
            token: answer.token, trust: trustMode(link, caFile: caFile))
        let certificatePath = (directory as NSString).appendingPathComponent(DeviceCredentials.certificateFileName)
        if let trust { try PrivateFile.write(Data(trust.utf8), to: certificatePath) } else { unlink(certificatePath) }
        try credentials.write(to: directory)
        try store.setServer(link.server)
        return Result(credentials: credentials, epoch: answer.epoch)
    }

    /// What the replica trusts from now on (see `trustedCertificate`).
    private static func trustMode(_ link: EnrolmentLink, caFile: String?) -> DeviceCredentials.Trust {
        caFile != nil ? .ca : link.fingerprint != nil ? .pinned : .system
    }

    /// The certificate to trust: a CA file, or the server's own certificate checked against the
    /// fingerprint in the link, or nil (the system's trust store).
    private static func trustedCertificate(
        for link: EnrolmentLink, caFile: String?, host: String, port: Int
    )
        async throws -> String?
    {
        if let caFile {
            do { return try String(contentsOfFile: caFile, encoding: .utf8) } catch {
                throw EnrolmentLinkError("cannot read the CA file \(caFile)")
            }
        }
        guard let fingerprint = link.fingerprint else { return nil }
        do {
            return try await CertificatePin.fetch(host: host, port: port, fingerprint: fingerprint)
        } catch let mismatch as CertificatePin.Mismatch {
            throw SyncFailure(.untrustedServer, mismatch.description)
        } catch {
            throw SyncFailure(.unreachable, "\(link.server): \(networkReason(error))")
        }
    }

    private static func exchange(
        _ request: EnrolRequest, link: EnrolmentLink, trust: String?
    ) async throws -> EnrolAnswer {
        let client = try HTTPSyncClient(server: link.server, token: nil, trustPEM: trust)
        do {
            let answer = try await client.json(.POST, "/v1/enroll", body: request, as: EnrolAnswer.self)
            try? await client.shutdown()
            return answer
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// `caFile` replaces fingerprint pinning (a server with a certificate from an organization CA).
    public static func enrol(
        _ link: EnrolmentLink, caFile: String? = nil, directory: String, options: StoreOptions = StoreOptions()
    ) async throws -> Result {
        let storePath = (directory as NSString).appendingPathComponent(LocalStore.fileName)
        try StoreRepair.finishInterrupted(in: directory)
        if FileManager.default.fileExists(atPath: storePath) {
            throw StoreError(
                .alreadyInitialized,
                "there already is a replica in \(directory); use it, or choose another --data directory")
        }
        guard let url = URL(string: link.server), let host = url.host else {
            throw EnrolmentLinkError("the server URL \(link.server) is not valid")
        }
        let trust = try await trustedCertificate(for: link, caFile: caFile, host: host, port: url.port ?? 443)
        let answer: EnrolAnswer = try await exchange(EnrolRequest(code: link.code), link: link, trust: trust)
        guard let replica = ReplicaID(hex: answer.deviceId) else {
            throw SyncFailure(.incompatibleVersion, "the server gave a device ID this client does not understand")
        }
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let credentials = DeviceCredentials(
            server: link.server, deviceId: answer.deviceId, tenant: answer.tenant, user: answer.user, role: answer.role,
            token: answer.token, trust: trustMode(link, caFile: caFile))
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
