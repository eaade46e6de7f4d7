/// Reads the compact binary encoding written by ``BinaryWriter``.
///
/// Every read checks the remaining input first. Counts are checked against the bytes left
/// (each element takes at least one byte), so a forged count cannot make the decoder allocate
/// more than the input's size; nesting is limited by ``maxDepth``.
public struct BinaryReader: Sendable {
    public let bytes: [UInt8]
    public var offset: Int { _offset }
    @usableFromInline var _offset: Int
    @usableFromInline var replicas: [ReplicaID] = []
    @usableFromInline var stamps: [HLC] = []
    @usableFromInline var depth = 0

    /// Deepest nesting of values accepted (maps of records of sets are 4 deep).
    public static let maxDepth = 32

    @inlinable
    public init(bytes: some Sequence<UInt8>) {
        self.bytes = Array(bytes)
        _offset = 0
    }

    @inlinable public var remaining: Int { bytes.count - _offset }
    @inlinable public var isAtEnd: Bool { _offset == bytes.count }

    @inlinable
    public func error(_ code: BinaryDecodingError.Code, _ message: String) -> BinaryDecodingError {
        BinaryDecodingError(code: code, offset: _offset, message: message)
    }

    @inlinable
    public mutating func readByte(_ what: @autoclosure () -> String = "a byte") throws(BinaryDecodingError) -> UInt8 {
        guard _offset < bytes.count else {
            throw error(.truncated, "expected \(what()), found the end of the input")
        }
        defer { _offset += 1 }
        return bytes[_offset]
    }

    @inlinable
    public mutating func readBytes(_ count: Int) throws(BinaryDecodingError) -> ArraySlice<UInt8> {
        guard count >= 0, count <= remaining else {
            throw error(.truncated, "expected \(count) bytes, found \(remaining)")
        }
        defer { _offset += count }
        return bytes[_offset..<_offset + count]
    }

    @inlinable
    public mutating func readVarint(
        _ what: @autoclosure () -> String = "an integer"
    ) throws(BinaryDecodingError) -> UInt64 {
        let start = _offset
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard _offset < bytes.count else {
                throw BinaryDecodingError(
                    code: .truncated, offset: start, message: "expected \(what()), found the end of the input")
            }
            let byte = bytes[_offset]
            _offset += 1
            if shift == 63 && byte > 1 {
                throw BinaryDecodingError(
                    code: .malformedVarint, offset: start, message: "expected \(what()), found a varint over 64 bits")
            }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 {
                throw BinaryDecodingError(
                    code: .malformedVarint, offset: start, message: "expected \(what()), found a varint over 10 bytes")
            }
        }
    }

    @inlinable
    public mutating func readSignedVarint(
        _ what: @autoclosure () -> String = "an integer"
    ) throws(BinaryDecodingError) -> Int64 {
        let raw = try readVarint(what())
        return Int64(bitPattern: raw >> 1) ^ -Int64(bitPattern: raw & 1)
    }

    @inlinable
    public mutating func readFixed64(
        _ what: @autoclosure () -> String = "8 bytes"
    ) throws(BinaryDecodingError) -> UInt64 {
        guard remaining >= 8 else { throw error(.truncated, "expected \(what()), found \(remaining) bytes") }
        var value: UInt64 = 0
        for index in 0..<8 { value |= UInt64(bytes[_offset + index]) << UInt64(index * 8) }
        _offset += 8
        return value
    }

    /// A count of elements that each take at least `minimumElementSize` bytes.
    @inlinable
    public mutating func readCount(
        _ what: @autoclosure () -> String, minimumElementSize: Int = 1
    ) throws(BinaryDecodingError) -> Int {
        let start = _offset
        let count = try readVarint("a count of \(what())")
        guard count <= UInt64(remaining / max(1, minimumElementSize)) else {
            throw BinaryDecodingError(
                code: .tooLarge, offset: start,
                message: "expected a count of \(what()) that fits in the \(remaining) bytes left, found \(count)")
        }
        return Int(count)
    }

    @inlinable
    public mutating func readString(
        _ what: @autoclosure () -> String = "a string"
    ) throws(BinaryDecodingError) -> String {
        let start = _offset
        let length = try readCount("bytes of \(what())")
        let slice = try readBytes(length)
        guard let string = String(validating: slice, as: UTF8.self) else {
            throw BinaryDecodingError(
                code: .invalidValue, offset: start, message: "expected \(what()) in UTF-8, found invalid UTF-8")
        }
        return string
    }

    @inlinable
    public mutating func readReplica() throws(BinaryDecodingError) -> ReplicaID {
        let start = _offset
        let tag = try readVarint("a replica reference")
        if tag == 0 {
            let replica = ReplicaID(try readFixed64("a replica ID"))
            replicas.append(replica)
            return replica
        }
        guard tag - 1 < UInt64(replicas.count) else {
            throw BinaryDecodingError(
                code: .invalidValue, offset: start,
                message: "expected a reference to one of \(replicas.count) replicas, found #\(tag - 1)")
        }
        return replicas[Int(tag - 1)]
    }

    @inlinable
    public mutating func readTime() throws(BinaryDecodingError) -> UInt64 {
        let start = _offset
        let head = try readVarint("an HLC time")
        let physical = head >> 1
        guard physical <= HLC.maxPhysical else {
            throw BinaryDecodingError(
                code: .invalidValue, offset: start,
                message: "expected an HLC time of at most 48 bits, found \(physical)")
        }
        var logical: UInt64 = 0
        if head & 1 == 1 {
            logical = try readVarint("an HLC logical counter")
            guard logical > 0, logical <= UInt64(HLC.maxLogical) else {
                throw BinaryDecodingError(
                    code: .invalidValue, offset: start,
                    message: "expected an HLC logical counter in 1...65535, found \(logical)")
            }
        }
        return physical << 16 | logical
    }

    @inlinable
    public mutating func readStamp() throws(BinaryDecodingError) -> HLC {
        try readStamp(tag: readVarint("an HLC stamp"), start: _offset)
    }

    /// Reads a stamp written with `flagBits` flag bits; returns the stamp and the flags.
    @inlinable
    public mutating func readStamp(flagBits: Int) throws(BinaryDecodingError) -> (HLC, UInt64) {
        let start = _offset
        let head = try readVarint("an HLC stamp")
        let stamp = try readStamp(tag: head >> UInt64(flagBits), start: start)
        return (stamp, head & ((1 << UInt64(flagBits)) - 1))
    }

    /// Reads the rest of a stamp whose tag varint (see `BinaryWriter.writeStamp`) was read.
    @inlinable
    public mutating func readStamp(tag: UInt64, start: Int) throws(BinaryDecodingError) -> HLC {
        if tag == 0 {
            let replica = ReplicaID(try readFixed64("a replica ID"))
            replicas.append(replica)
            let stamp = HLC(time: try readTime(), replica: replica)
            stamps.append(stamp)
            return stamp
        }
        if tag & 1 == 1 {
            let index = (tag - 1) / 2
            guard index < UInt64(replicas.count) else {
                throw BinaryDecodingError(
                    code: .invalidValue, offset: start,
                    message: "expected a reference to one of \(replicas.count) replicas, found #\(index)")
            }
            let stamp = HLC(time: try readTime(), replica: replicas[Int(index)])
            stamps.append(stamp)
            return stamp
        }
        let index = (tag - 2) / 2
        guard index < UInt64(stamps.count) else {
            throw BinaryDecodingError(
                code: .invalidValue, offset: start,
                message: "expected a reference to one of \(stamps.count) stamps, found #\(index)")
        }
        return stamps[Int(index)]
    }

    /// Runs `body` one nesting level deeper, refusing input nested beyond ``maxDepth``.
    @inlinable
    public mutating func nested<T>(
        _ body: (inout BinaryReader) throws(BinaryDecodingError) -> T
    ) throws(BinaryDecodingError) -> T {
        guard depth < BinaryReader.maxDepth else {
            throw error(.tooDeep, "expected values nested at most \(BinaryReader.maxDepth) deep")
        }
        depth += 1
        defer { depth -= 1 }
        return try body(&self)
    }
}
