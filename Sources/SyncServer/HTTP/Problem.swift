import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// An RFC 9457 problem document: every error a client can cause answers with one, as
/// `application/problem+json`, with a 4xx status. `type` names the kind of problem (documented in
/// docs/api/openapi.yaml); `errors` lists per-field reasons where there are several.
public struct Problem: Error, Codable, Sendable, Equatable {
    public struct FieldError: Codable, Sendable, Equatable {
        public let field: String
        public let reason: String
    }

    public let type: String
    public let title: String
    public let status: Int
    public let detail: String
    public var errors: [FieldError]?
    /// Set on 429 and 503: seconds to wait.
    public var retryAfter: Int?
    /// The request ID, so a user's report can be found in the logs.
    public var instance: String?

    public init(
        _ status: HTTPResponse.Status, _ slug: String, _ title: String, _ detail: String, errors: [FieldError]? = nil,
        retryAfter: Int? = nil
    ) {
        self.type = "https://kraliki.cz/problems/\(slug)"
        self.title = title
        self.status = status.code
        self.detail = detail
        self.errors = errors
        self.retryAfter = retryAfter
    }

    public var slug: String { String(type.split(separator: "/").last ?? "") }

    public var httpStatus: HTTPResponse.Status { HTTPResponse.Status(code: status) }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var problem = self
        problem.instance = problem.instance ?? context.id
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body = (try? encoder.encode(problem)) ?? Data("{\"title\":\"error\"}".utf8)
        var headers = HTTPFields()
        headers[.contentType] = "application/problem+json"
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        return Response(status: httpStatus, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }

    // MARK: The problems clients can cause

    public static func badRequest(_ slug: String, _ detail: String, field: String? = nil) -> Problem {
        Problem(
            .badRequest, slug, "The request is not valid", detail,
            errors: field.map { [FieldError(field: $0, reason: detail)] })
    }

    public static func unauthorized(_ detail: String) -> Problem {
        Problem(.unauthorized, "unauthorized", "Authentication is required", detail)
    }

    public static func revoked(_ device: String) -> Problem {
        Problem(
            .unauthorized, "device-revoked", "This device was revoked",
            "device \(device) was revoked by an admin; its local data is kept — enrol it again to sync")
    }

    public static func forbidden(_ detail: String) -> Problem {
        Problem(.forbidden, "forbidden", "Not permitted", detail)
    }

    public static func notFound(_ detail: String) -> Problem {
        Problem(.notFound, "not-found", "Not found", detail)
    }

    public static func tooLarge(_ detail: String) -> Problem {
        Problem(.contentTooLarge, "too-large", "The request is too large", detail)
    }

    public static func unsupportedMediaType(_ detail: String) -> Problem {
        Problem(.unsupportedMediaType, "unsupported-media-type", "Unsupported content type", detail)
    }

    public static func tooManyRequests(retryAfter: Int) -> Problem {
        Problem(
            .tooManyRequests, "rate-limited", "Too many requests",
            "this device sends more requests than its rate limit allows; retry after \(retryAfter) s",
            retryAfter: retryAfter)
    }

    public static func methodNotAllowed(_ detail: String) -> Problem {
        Problem(.methodNotAllowed, "method-not-allowed", "Method not allowed", detail)
    }

    public static func unavailable(_ detail: String) -> Problem {
        var problem = Problem(.serviceUnavailable, "unavailable", "The server cannot serve this now", detail)
        problem.retryAfter = 1
        return problem
    }

    /// The server is at a capacity limit (not the client's fault); retry shortly.
    public static func busy(_ detail: String) -> Problem {
        var problem = Problem(.serviceUnavailable, "busy", "The server is busy", detail)
        problem.retryAfter = 1
        return problem
    }

    public static func internalError(_ detail: String) -> Problem {
        Problem(.internalServerError, "internal", "The server failed", detail)
    }
}
