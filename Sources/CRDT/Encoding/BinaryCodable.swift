/// A value with a compact binary encoding.
///
/// Decoding is total: any bytes either decode or throw ``BinaryDecodingError``; it never traps.
public protocol BinaryCodable {
    func encode(to writer: inout BinaryWriter)
    init(from reader: inout BinaryReader) throws(BinaryDecodingError)
}

/// The first byte of every persisted or sent blob: what it holds.
///
/// Values are never reused. CRDT types use 0x01–0x1F; the domain starts at 0x20.
public struct BlobType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let versionVector = BlobType(rawValue: 0x01)
    public static let lwwRegister = BlobType(rawValue: 0x02)
    public static let mvRegister = BlobType(rawValue: 0x03)
    public static let orSet = BlobType(rawValue: 0x04)
    public static let orMap = BlobType(rawValue: 0x05)
    public static let hlc = BlobType(rawValue: 0x06)

    public var description: String { "0x" + String(rawValue, radix: 16) }
}

/// A value that can stand alone as a blob: `[type][format version][body]`.
///
/// The two header bytes let any reader tell what a blob is and whether it can read it before
/// touching the body (the same idea as riak_dt's `?TAG`/`?V1_VERS` and automerge's type byte).
public protocol BinaryBlob: BinaryCodable {
    static var blobType: BlobType { get }
    /// The format version this build writes.
    static var formatVersion: UInt8 { get }
    /// Every format version this build reads.
    static var readableVersions: ClosedRange<UInt8> { get }
}

extension BinaryBlob {
    public static var formatVersion: UInt8 { 1 }
    public static var readableVersions: ClosedRange<UInt8> { 1...1 }

    /// The blob: type byte, format version byte, body.
    public func encodedBlob() -> [UInt8] {
        var writer = BinaryWriter()
        writer.writeByte(Self.blobType.rawValue)
        writer.writeByte(Self.formatVersion)
        encode(to: &writer)
        return writer.bytes
    }

    /// Decodes a blob written by ``encodedBlob()``, refusing other types, unknown versions and
    /// trailing bytes.
    public init(blob: some Sequence<UInt8>) throws(BinaryDecodingError) {
        var reader = BinaryReader(bytes: blob)
        let type = try reader.readByte("a blob type byte")
        guard type == Self.blobType.rawValue else {
            throw BinaryDecodingError(
                code: .wrongType, offset: 0,
                message:
                    "expected a blob of type \(Self.blobType) (\(Self.self)), found type 0x\(String(type, radix: 16))")
        }
        let version = try reader.readByte("a format version byte")
        guard Self.readableVersions.contains(version) else {
            throw BinaryDecodingError(
                code: .unsupportedVersion, offset: 1,
                message:
                    "expected format version \(Self.readableVersions.lowerBound)...\(Self.readableVersions.upperBound) of \(Self.self), found version \(version)"
            )
        }
        try self.init(from: &reader)
        guard reader.isAtEnd else {
            throw reader.error(.trailingBytes, "expected the end of the blob, found \(reader.remaining) more bytes")
        }
    }
}

// MARK: - Scalars

extension UInt64: BinaryCodable {
    @inlinable public func encode(to writer: inout BinaryWriter) { writer.writeVarint(self) }
    @inlinable public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        self = try reader.readVarint()
    }
}

extension UInt32: BinaryCodable {
    @inlinable public func encode(to writer: inout BinaryWriter) { writer.writeVarint(UInt64(self)) }
    @inlinable public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        let value = try reader.readVarint("a 32-bit integer")
        guard let narrow = UInt32(exactly: value) else {
            throw reader.error(.invalidValue, "expected a 32-bit integer, found \(value)")
        }
        self = narrow
    }
}

extension UInt16: BinaryCodable {
    @inlinable public func encode(to writer: inout BinaryWriter) { writer.writeVarint(UInt64(self)) }
    @inlinable public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        let value = try reader.readVarint("a 16-bit integer")
        guard let narrow = UInt16(exactly: value) else {
            throw reader.error(.invalidValue, "expected a 16-bit integer, found \(value)")
        }
        self = narrow
    }
}

extension UInt8: BinaryCodable {
    @inlinable public func encode(to writer: inout BinaryWriter) { writer.writeByte(self) }
    @inlinable public init(from reader: inout BinaryReader) throws(BinaryDecodingError) { self = try reader.readByte() }
}

extension Int64: BinaryCodable {
    @inlinable public func encode(to writer: inout BinaryWriter) { writer.writeSignedVarint(self) }
    @inlinable public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        self = try reader.readSignedVarint()
    }
}

extension Int: BinaryCodable {
    @inlinable public func encode(to writer: inout BinaryWriter) { writer.writeSignedVarint(Int64(self)) }
    @inlinable public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        let value = try reader.readSignedVarint()
        guard let narrow = Int(exactly: value) else {
            throw reader.error(.invalidValue, "expected a native integer, found \(value)")
        }
        self = narrow
    }
}

extension Bool: BinaryCodable {
    @inlinable public func encode(to writer: inout BinaryWriter) { writer.writeByte(self ? 1 : 0) }
    @inlinable public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        switch try reader.readByte("a boolean") {
        case 0: self = false
        case 1: self = true
        case let other: throw reader.error(.invalidValue, "expected a boolean (0 or 1), found \(other)")
        }
    }
}

extension Double: BinaryCodable {
    @inlinable public func encode(to writer: inout BinaryWriter) { writer.writeFixed64(bitPattern) }
    @inlinable public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        self = Double(bitPattern: try reader.readFixed64("a 64-bit float"))
    }
}

extension String: BinaryCodable {
    @inlinable public func encode(to writer: inout BinaryWriter) { writer.writeString(self) }
    @inlinable public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        self = try reader.readString()
    }
}

extension Presence: BinaryCodable {
    @inlinable public func encode(to writer: inout BinaryWriter) {}
    @inlinable public init(from reader: inout BinaryReader) throws(BinaryDecodingError) { self.init() }
}

extension ReplicaID: BinaryCodable {
    @inlinable public func encode(to writer: inout BinaryWriter) { writer.writeReplica(self) }
    @inlinable public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        self = try reader.readReplica()
    }
}

extension HLC: BinaryCodable, BinaryBlob {
    public static var blobType: BlobType { .hlc }
    @inlinable public func encode(to writer: inout BinaryWriter) { writer.writeStamp(self) }
    @inlinable public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        self = try reader.readStamp()
    }
}
