/// The two encodings of the sync protocol's messages: JSON, and the binary `BinaryBlob`
/// encoding of Domain's messages (smaller and faster; what replicas send). A response answers
/// in the format of its request.
public enum MessageFormat: Sendable {
    case json
    case binary

    /// The binary protocol's content type.
    public static let binaryContentType = "application/vnd.kraliki.sync"
}
