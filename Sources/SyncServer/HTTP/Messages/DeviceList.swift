/// `GET /v1/admin/devices`: the tenant's devices with their sync health.
struct DeviceList: Codable {
    let devices: [DeviceHealth]
}
