import Crypto
import Foundation
import NIOSSL
import StoreSupport
import SwiftASN1
import X509

/// The server's TLS certificate: loaded from the configured PEM files, or generated once
/// (self-signed, P-256, for this host and loopback) into `<data>/tls/` for development.
public struct ServerCertificate: Sendable {
    public let certificatePath: String
    public let keyPath: String
    /// SHA-256 of the DER certificate, lower-case hex: what replicas pin at enrolment.
    public let fingerprint: String
    public let generated: Bool

    /// The marker put in generated certificates' subject, so production mode can recognize them.
    public static let generatedOrganization = "Kraliki Sync development (generated)"

    /// Loads the configured certificate, generating the development one on first start.
    public static func prepare(_ config: ServerConfig, wall: Date = Date()) throws -> ServerCertificate {
        let fileManager = FileManager.default
        if config.usesGeneratedCertificate && !fileManager.fileExists(atPath: config.certificatePath) {
            try generate(host: config.host, certificatePath: config.certificatePath, keyPath: config.keyPath, now: wall)
        }
        return try load(certificatePath: config.certificatePath, keyPath: config.keyPath)
    }

    public static func load(certificatePath: String, keyPath: String) throws -> ServerCertificate {
        let pem: String
        do { pem = try String(contentsOfFile: certificatePath, encoding: .utf8) } catch {
            throw ServerConfig.Problem(setting: "tlsCertificate", message: "cannot read \(certificatePath)")
        }
        guard FileManager.default.isReadableFile(atPath: keyPath) else {
            throw ServerConfig.Problem(setting: "tlsKey", message: "cannot read \(keyPath)")
        }
        // The file may hold a chain (fullchain.pem: the leaf first, then intermediates, as every
        // public CA issues it); the leaf is the server's certificate, the whole chain is served.
        let certificate: Certificate
        do {
            let chain = try PEMDocument.parseMultiple(pemString: pem).filter { $0.discriminator == "CERTIFICATE" }
                .map(Certificate.init(pemDocument:))
            guard let leaf = chain.first else {
                throw ServerConfig.Problem(
                    setting: "tlsCertificate", message: "\(certificatePath) holds no certificate")
            }
            certificate = leaf
        } catch let problem as ServerConfig.Problem {
            throw problem
        } catch {
            throw ServerConfig.Problem(
                setting: "tlsCertificate",
                message: "\(certificatePath) is not a PEM certificate or chain of certificates: \(error)")
        }
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        let generated = certificate.subject.description.contains(generatedOrganization)
        return ServerCertificate(
            certificatePath: certificatePath, keyPath: keyPath,
            fingerprint: Self.fingerprint(der: serializer.serializedBytes),
            generated: generated)
    }

    /// Lower-case hex SHA-256 of DER bytes.
    public static func fingerprint(der: [UInt8]) -> String {
        SHA256.hash(data: der).map { String(format: "%02x", $0) }.joined()
    }

    /// Writes a self-signed certificate valid for `host`, localhost, 127.0.0.1 and ::1, and its
    /// key (mode 0600).
    public static func generate(host: String, certificatePath: String, keyPath: String, now: Date) throws {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName {
            CommonName("Kraliki Sync server")
            OrganizationName(generatedOrganization)
        }
        var names: [GeneralName] = [
            .dnsName("localhost"), .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])),
            .ipAddress(ASN1OctetString(contentBytes: ArraySlice([UInt8](repeating: 0, count: 15) + [1]))),
        ]
        if let address = ipAddressBytes(host) {
            if !names.contains(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(address)))) {
                names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(address))))
            }
        } else if host != "localhost" {
            names.append(.dnsName(host))
        }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            try ExtendedKeyUsage([.serverAuth])
            SubjectAlternativeNames(names)
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3_600), notValidAfter: now.addingTimeInterval(397 * 86_400),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions,
            issuerPrivateKey: .init(key))
        let directory = (certificatePath as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try writePrivate(key.pemRepresentation, to: keyPath)
        try Data(try certificate.serializeAsPEM().pemString.utf8).write(to: URL(fileURLWithPath: certificatePath))
    }

    /// Writes `text` to a new file readable only by its owner, fsynced (Replica's `PrivateFile`).
    public static func writePrivate(_ text: String, to path: String) throws {
        try PrivateFile.write(Data(text.utf8), to: path)
    }

    static func ipAddressBytes(_ host: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    /// The server side TLS settings: TLS 1.2 and 1.3 only, ECDHE with AEAD ciphers only
    /// (Mozilla "intermediate"), ALPN h2 then http/1.1.
    public func tlsConfiguration() throws -> TLSConfiguration {
        let chain = try NIOSSLCertificate.fromPEMFile(certificatePath).map { NIOSSLCertificateSource.certificate($0) }
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain, privateKey: .privateKey(try NIOSSLPrivateKey(file: keyPath, format: .pem)))
        tls.minimumTLSVersion = .tlsv12
        tls.maximumTLSVersion = .tlsv13
        tls.cipherSuites = Self.intermediateCiphers
        return tls
    }

    public static let intermediateCiphers = [
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    ].joined(separator: ":")
}
