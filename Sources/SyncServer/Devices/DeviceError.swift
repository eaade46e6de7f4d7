/// Why an enrolment or an admin action was refused.
public struct DeviceError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case invalidCode = "invalid-code"
        case invalidName = "invalid-name"
        case notFound = "not-found"
        case deviceTaken = "device-taken"
    }
    public let code: Code
    public let field: String
    public let message: String
    public var description: String { message }
}
