import Foundation

/// The server's secrets, in a JSON file readable only by its owner (`sync-server secrets
/// generate` writes it). Today one: the bearer token Prometheus sends for `/metrics` when
/// metrics are not public.
public struct ServerSecrets: Codable, Sendable, Equatable {
    public var metricsToken: String

    public init(metricsToken: String) { self.metricsToken = metricsToken }

    /// Values shipped in examples; production refuses them.
    public static let placeholders: Set<String> = ["", "change-me", "changeme", "secret", "example", "REPLACE_ME"]

    public static func generate() -> ServerSecrets {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return ServerSecrets(metricsToken: bytes.map { String(format: "%02x", $0) }.joined())
    }

    public static func load(_ path: String) throws(ServerConfig.Problem) -> ServerSecrets? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        do {
            return try JSONDecoder().decode(ServerSecrets.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw ServerConfig.Problem(setting: "secretsFile", message: "\(path) is not a valid secrets file: \(error)")
        }
    }

    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try ServerCertificate.writePrivate(String(decoding: try encoder.encode(self), as: UTF8.self) + "\n", to: path)
    }
}

extension ServerConfig {
    /// Production refuses development settings and says which one to fix.
    public func productionProblems(certificate: ServerCertificate?, secrets: ServerSecrets?) -> [Problem] {
        var problems = [Problem]()
        if cleartextHTTP2 {
            problems.append(Problem(setting: "cleartextHTTP2", message: "cleartext HTTP/2 is for local tools only"))
        }
        if usesGeneratedCertificate || certificate?.generated == true {
            problems.append(
                Problem(
                    setting: "tlsCertificate",
                    message: "production needs a real certificate and key (tlsCertificate, tlsKey), not a generated one"
                ))
        }
        if let mode = Self.mode(of: dataDirectory), mode & 0o077 != 0 {
            problems.append(
                Problem(
                    setting: "dataDirectory",
                    message:
                        "\(dataDirectory) is open to others (mode \(String(mode & 0o777, radix: 8))); chmod 700 it"))
        }
        for file in [ServerDatabase.fileName, ServerDatabase.fileName + "-wal"] {
            let path = dataURL.appendingPathComponent(file).path
            if let mode = Self.mode(of: path), mode & 0o077 != 0 {
                problems.append(
                    Problem(setting: "dataDirectory", message: "\(path) is readable by others; chmod 600 it"))
            }
        }
        if let mode = Self.mode(of: keyPath), mode & 0o077 != 0 {
            problems.append(
                Problem(
                    setting: "tlsKey",
                    message: "\(keyPath) is readable by others (mode \(String(mode & 0o777, radix: 8))); chmod 600 it"))
        }
        if let secrets {
            if ServerSecrets.placeholders.contains(secrets.metricsToken) || secrets.metricsToken.count < 32 {
                problems.append(
                    Problem(
                        setting: "secretsFile",
                        message: "metricsToken is a placeholder or too short; run `sync-server secrets generate`"))
            }
            if let mode = Self.mode(of: secretsPath), mode & 0o077 != 0 {
                problems.append(
                    Problem(setting: "secretsFile", message: "\(secretsPath) is readable by others; chmod 600 it"))
            }
        } else {
            problems.append(
                Problem(
                    setting: "secretsFile", message: "\(secretsPath) is missing; run `sync-server secrets generate`"))
        }
        return problems
    }

    static func mode(of path: String) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? nil
    }
}
