/// A device's latest activity, gathered in memory and written in batches (pulls do not write).
public struct DeviceActivity: Sendable {
    public var lastSeenMs: UInt64
    public var lastPullMs: UInt64?
    public var cursor: UInt64?

    public init(lastSeenMs: UInt64, lastPullMs: UInt64? = nil, cursor: UInt64? = nil) {
        self.lastSeenMs = lastSeenMs
        self.lastPullMs = lastPullMs
        self.cursor = cursor
    }
}
