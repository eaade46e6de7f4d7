import Foundation

/// What a replica needs to enrol, in one string an admin can paste:
/// `kraliki://enrol?server=https%3A%2F%2F127.0.0.1%3A8443&code=K7QD-2M9X-…&sha256=<64 hex>`.
/// `sync-server enroll` prints it; `replica-cli init` reads it.
public struct EnrolmentLink: Equatable, Sendable, Codable, CustomStringConvertible {
    public let server: String
    public let code: String
    /// SHA-256 of the server certificate (DER), lower-case hex; nil when a CA file is used.
    public let fingerprint: String?

    public init(server: String, code: String, fingerprint: String?) {
        self.server = server
        self.code = code
        self.fingerprint = fingerprint
    }

    public var description: String {
        var components = URLComponents()
        components.scheme = "kraliki"
        components.host = "enrol"
        components.queryItems =
            [URLQueryItem(name: "server", value: server), URLQueryItem(name: "code", value: code)]
            + (fingerprint.map { [URLQueryItem(name: "sha256", value: $0)] } ?? [])
        // ":" and "/" are legal in a query, but encoding them keeps the link one opaque token.
        components.percentEncodedQueryItems = components.queryItems?.map {
            URLQueryItem(
                name: $0.name,
                value: $0.value?.addingPercentEncoding(
                    withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))))
        }
        return components.string ?? ""
    }

    /// Parses a link; the error names what is wrong.
    public init(parsing text: String) throws(EnrolmentLinkError) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let components = URLComponents(string: trimmed), components.scheme == "kraliki",
            components.host == "enrol"
        else {
            throw EnrolmentLinkError(
                "the enrolment string must start with kraliki://enrol? — copy it whole from `sync-server enroll`")
        }
        let items = components.queryItems ?? []
        func value(_ name: String) -> String? { items.first { $0.name == name }?.value }
        guard let server = value("server"), let url = URL(string: server),
            url.scheme == "https" || url.scheme == "http",
            url.host != nil
        else { throw EnrolmentLinkError("the enrolment string has no valid server URL") }
        guard let code = value("code"), !code.isEmpty else {
            throw EnrolmentLinkError("the enrolment string has no code")
        }
        let fingerprint = value("sha256")?.lowercased()
        if let fingerprint, !Self.isFingerprint(fingerprint) {
            throw EnrolmentLinkError("the certificate fingerprint must be 64 hexadecimal digits")
        }
        self.init(server: server, code: code, fingerprint: fingerprint)
    }

    /// 64 hex digits (colons allowed and removed by `normalizedFingerprint`).
    public static func isFingerprint(_ text: String) -> Bool {
        text.count == 64 && text.allSatisfy(\.isHexDigit)
    }

    public static func normalizedFingerprint(_ text: String) -> String {
        text.lowercased().filter { $0 != ":" }
    }
}

public struct EnrolmentLinkError: Error, CustomStringConvertible, Sendable {
    public let description: String
    package init(_ description: String) { self.description = description }
}
