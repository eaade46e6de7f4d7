/// `GET /v1/device`: the calling device, its tenant's epoch and the server's clock and URL.
struct DeviceInfo: Codable {
    let device: DeviceRecord
    let epoch: String
    let serverTime: UInt64
    let url: String
}
