import Domain
import Foundation
import LocalStorage
import NIOHTTP1
import StoreSupport

/// The server's admin routes, for `replica-cli admin`: devices, revocation, enrolment codes and
/// the whole tenant's conflicts. The server checks the role; ``permits(_:role:)`` lets the CLI
/// refuse early, offline, with the same answer.
public struct AdminClient: Sendable {
    /// A device as the server lists it (times in ms since 1970).
    public struct Device: Codable, Equatable, Sendable {
        public let id: String
        public let tenant: String
        public let user: String
        public let role: String
        public let createdMs: UInt64
        public let revokedMs: UInt64?
        public let lastSeenMs: UInt64?
        public let lastPushMs: UInt64?
        public let lastPullMs: UInt64?
        public let cursor: UInt64
    }

    /// A device and how many of the tenant's changes it has not pulled.
    public struct DeviceHealth: Codable, Equatable, Sendable {
        public let device: Device
        public let lagChanges: UInt64
    }

    /// A fresh enrolment code and the string to give the new device.
    public struct Enrolment: Codable, Equatable, Sendable {
        public let code: String
        public let tenant: String
        public let user: String
        public let role: String
        public let expiresMs: UInt64
        public let enrolment: String
    }

    public enum Need: String, Sendable {
        case admin, supervisor
    }

    public let client: HTTPSyncClient

    public init(client: HTTPSyncClient) { self.client = client }

    /// Whether `role` may use a route that needs `need` (admins may do what supervisors may).
    public static func permits(_ need: Need, role: String) -> Bool {
        switch need {
        case .admin: role == "admin"
        case .supervisor: role == "admin" || role == "supervisor"
        }
    }

    public func devices() async throws -> [DeviceHealth] {
        struct List: Decodable { let devices: [DeviceHealth] }
        return try await client.json(.GET, "/v1/admin/devices", as: List.self).devices
    }

    public func revoke(_ device: String) async throws -> DeviceHealth {
        let id = device.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? device
        return try await client.json(.POST, "/v1/admin/devices/\(id)/revoke", as: DeviceHealth.self)
    }

    /// A one-time enrolment string for `user`; with `rejoin`, one that only that replica may use
    /// to rejoin a server that lost it.
    public func enrol(user: String, role: String, rejoin: String? = nil) async throws -> Enrolment {
        var body = ["user": user, "role": role]
        if let rejoin { body["rejoinReplica"] = rejoin }
        return try await client.json(.POST, "/v1/admin/enrolments", body: body, as: Enrolment.self)
    }

    public func conflicts() async throws -> [Conflict] {
        struct List: Decodable { let conflicts: [Conflict] }
        return try await client.json(.GET, "/v1/admin/conflicts", as: List.self).conflicts
    }
}
