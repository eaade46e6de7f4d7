import Domain

/// What a push changed: its acknowledgement and the tenant's last sequence after it (for
/// the live stream).
public struct PushReceipt: Sendable {
    public let ack: PushAck
    public let sequence: UInt64
}
