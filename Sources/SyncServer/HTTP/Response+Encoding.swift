import CRDT
import Domain
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

extension Response {
    /// `value` as JSON (sorted keys, so answers are stable byte for byte).
    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(
            status: status, headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }

    /// A sync protocol message in `format` (the format its request came in).
    static func message<M: BinaryBlob & Codable>(_ message: M, format: MessageFormat) throws -> Response {
        switch format {
        case .json: return try json(message)
        case .binary:
            var headers = HTTPFields()
            headers[.contentType] = MessageFormat.binaryContentType
            return Response(
                status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: message.encodedBlob())))
        }
    }
}
