import CRDT

/// A small record CRDT for tests: two registers and a set, the shape of a contact in miniature.
/// It also shows how a product of CRDTs is built: merge field by field, encode a field bitmap.
public struct TestRecord: Mergeable, ObservedRemovable, Codable, Sendable {
    public var name = MVRegister<String>()
    public var score = MVRegister<UInt64>()
    public var tags = ORSet<UInt8>()

    public init() {}

    public mutating func merge(_ other: TestRecord) {
        name.merge(other.name)
        score.merge(other.score)
        tags.merge(other.tags)
    }

    @discardableResult
    public mutating func removeAll() -> TestRecord {
        var delta = TestRecord()
        delta.name = name.removeAll()
        delta.score = score.removeAll()
        delta.tags = tags.removeAll()
        return delta
    }
}

extension TestRecord: BinaryBlob {
    public static var blobType: BlobType { BlobType(rawValue: 0x7F) }

    public func encode(to writer: inout BinaryWriter) {
        let present: UInt64 = (name.isBottom ? 0 : 1) | (score.isBottom ? 0 : 2) | (tags.isBottom ? 0 : 4)
        writer.writeVarint(present)
        if present & 1 != 0 { name.encode(to: &writer) }
        if present & 2 != 0 { score.encode(to: &writer) }
        if present & 4 != 0 { tags.encode(to: &writer) }
    }

    public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        let present = try reader.readVarint("a field bitmap")
        guard present < 8 else {
            throw reader.error(.invalidValue, "expected a field bitmap below 8, found \(present)")
        }
        self.init()
        if present & 1 != 0 { name = try MVRegister(from: &reader) }
        if present & 2 != 0 { score = try MVRegister(from: &reader) }
        if present & 4 != 0 { tags = try ORSet(from: &reader) }
    }
}
