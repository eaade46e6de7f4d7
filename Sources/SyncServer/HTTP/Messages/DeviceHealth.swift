/// A device and how healthy its sync is (`GET /v1/admin/devices`, a revoke's answer).
struct DeviceHealth: Codable {
    let device: DeviceRecord
    /// Changes of its tenant it has not pulled yet.
    let lagChanges: UInt64

    init(_ device: DeviceRecord, tenantSequence: UInt64) {
        self.device = device
        self.lagChanges = tenantSequence - min(tenantSequence, device.cursor)
    }
}
