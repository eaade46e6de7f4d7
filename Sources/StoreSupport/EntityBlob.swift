import CRDT
import Domain
import Foundation

/// An entity's state blob: `[0x30 + kind][version 1][entity]` (the replica and the server store
/// entities this way). The encoder's bytes as they are: bound to a statement directly, with no
/// copy into a `Data` (an allocation and a memcpy per entity a pull brings).
@inlinable
public func entityBlob<E: Entity>(_ entity: E) -> [UInt8] {
    var writer = BinaryWriter(capacity: 256)
    writer.writeByte(entityBlobType(E.kind))
    writer.writeByte(1)
    entity.encode(to: &writer)
    return writer.bytes
}

@inlinable
public func entityBlobType(_ kind: EntityKind) -> UInt8 {
    switch kind {
    case .contact: 0x30
    case .note: 0x31
    case .schedule: 0x32
    }
}

@inlinable
public func decodeEntity<E: Entity>(_ type: E.Type, _ data: Data) throws(BinaryDecodingError) -> E {
    var reader = BinaryReader(bytes: data)
    let tag = try reader.readByte("an entity type")
    guard tag == entityBlobType(E.kind) else {
        throw reader.error(.wrongType, "expected a \(E.kind) blob, found type 0x\(String(tag, radix: 16))")
    }
    let version = try reader.readByte("a format version")
    guard version == 1 else { throw reader.error(.unsupportedVersion, "expected entity format 1, found \(version)") }
    let entity = try E(from: &reader)
    guard reader.isAtEnd else { throw reader.error(.trailingBytes, "expected the end of the entity") }
    return entity
}
