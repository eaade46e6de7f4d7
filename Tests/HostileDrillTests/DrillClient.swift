import AsyncHTTPClient
import Domain
import DomainTestSupport
import Foundation
import LocalStorage
import NIOCore
import NIOHTTP1
import NIOSSL
import Replica
import StoreSupport
import Testing

/// A drill's own failure (setup that did not work), with what was seen.
struct DrillFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Raw requests over HTTP/2 + TLS to a server given by URL and certificate file (RawClient in
/// ServerTestSupport is bound to an in-process RunningServer).
final class DrillClient: Sendable {
    let client: HTTPClient
    let base: String

    struct Answer: Sendable {
        let status: Int
        let headers: HTTPHeaders
        let body: Data
        var text: String { String(decoding: body, as: UTF8.self) }
        var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] }
        var isProblem: Bool { headers.first(name: "content-type") == "application/problem+json" }
    }

    init(url: String, certificatePath: String) throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(certificatePath))
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.httpVersion = .automatic
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        base = url
    }

    func send(
        _ method: HTTPMethod, _ path: String, token: String? = nil, contentType: String? = "application/json",
        body: [UInt8]? = nil
    ) async throws -> Answer {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let token { request.headers.add(name: "authorization", value: "Bearer \(token)") }
        if let contentType, body != nil { request.headers.add(name: "content-type", value: contentType) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await client.execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        return Answer(status: Int(response.status.code), headers: response.headers, body: Data(bytes.readableBytesView))
    }

    func shutdown() async { try? await client.shutdown() }
}
