extension String {
    /// Zero-padded, lower-case hex fields of fixed widths, joined by `separator`, written straight
    /// into one new string. IDs and stamps in this form key every stored row; padding and joining
    /// pieces cost several allocations each, which showed in the store's import profile.
    ///
    /// - Precondition: every value fits its width, of at most 16 digits.
    public init(hexFields fields: (value: UInt64, width: Int)..., separator: UInt8? = nil) {
        let separators = separator == nil ? 0 : fields.count - 1
        let count = fields.reduce(separators) { $0 + $1.width }
        self.init(unsafeUninitializedCapacity: count) { buffer in
            var offset = 0
            for (index, field) in fields.enumerated() {
                precondition(field.width <= 16 && (field.width == 16 || field.value >> (4 * field.width) == 0))
                if index > 0, let separator {
                    buffer[offset] = separator
                    offset += 1
                }
                writeHexDigits(
                    field.value, width: field.width, to: UnsafeMutableRawPointer(buffer.baseAddress! + offset))
                offset += field.width
            }
            return offset
        }
    }
}

/// Writes `value` as `width` zero-padded, lower-case hex digits at `target`: the digits of one
/// field of `String(hexFields:separator:)`, for code that writes such text into a buffer of its
/// own (the replica store binds IDs and stamps this way, without making a string).
@inlinable
public func writeHexDigits(_ value: UInt64, width: Int, to target: UnsafeMutableRawPointer) {
    for position in 0..<width {
        let digit = UInt8((value >> (4 * UInt64(width - 1 - position))) & 0xF)
        target.storeBytes(
            of: digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10, toByteOffset: position,
            as: UInt8.self)
    }
}
