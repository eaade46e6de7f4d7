/// What one collection run did.
public struct GarbageCollection: Sendable, Equatable, CustomStringConvertible {
    public var tenants = 0
    /// Superseded log entries removed.
    public var logEntries = 0
    /// Tombstones removed.
    public var tombstones = 0
    /// Tombstones old enough but not yet pulled by every active device, or still referred to.
    public var tombstonesWaiting = 0

    public init() {}

    public var description: String {
        "\(tenants) tenants: \(tombstones) tombstones and \(logEntries) superseded log entries collected, "
            + "\(tombstonesWaiting) tombstones waiting for devices or references"
    }
}
