import Foundation

/// A fresh directory under the system's temporary directory, removed when the test ends.
public final class TempDirectory: @unchecked Sendable {
    public let path: String

    public init(_ name: String = "replica") {
        path = NSTemporaryDirectory() + "kraliki-\(name)-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    public func sub(_ name: String) -> String { path + "/" + name }
}
