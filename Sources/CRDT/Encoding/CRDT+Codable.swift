// JSON (Codable) forms of the CRDT types, for the HTTP API that browsers use. Stamps are the
// sortable text form of `HLC`; contexts are objects from replica hex to counter.
//
// DotKernel / MVRegister  {"live": [{"stamp": "…", "value": …}], "context": {"<replica>": n}}
// LWWRegister             {"stamp": "…", "value": …} or {}
// ORSet                   [{"element": …, "kernel": <DotKernel>}]
// ORMap                   [{"key": …, "value": …}] in key order

extension DotKernel.Event: Codable where Payload: Codable {
    private enum CodingKeys: String, CodingKey { case stamp, value }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            stamp: try container.decode(HLC.self, forKey: .stamp),
            payload: try container.decode(Payload.self, forKey: .value))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(stamp, forKey: .stamp)
        try container.encode(payload, forKey: .value)
    }
}

extension DotKernel: Codable where Payload: Codable {
    private enum CodingKeys: String, CodingKey { case live, context }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            live: try container.decode([Event].self, forKey: .live),
            context: try container.decodeIfPresent(VersionVector.self, forKey: .context) ?? VersionVector())
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(live, forKey: .live)
        try container.encode(context, forKey: .context)
    }
}

extension MVRegister: Codable where Value: Codable {
    public init(from decoder: any Decoder) throws {
        self.init(kernel: try DotKernel(from: decoder))
    }

    public func encode(to encoder: any Encoder) throws {
        try kernel.encode(to: encoder)
    }
}

extension LWWRegister: Codable where Value: Codable {
    private enum CodingKeys: String, CodingKey { case stamp, value }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if let stamp = try container.decodeIfPresent(HLC.self, forKey: .stamp) {
            self.init(value: try container.decode(Value.self, forKey: .value), stamp: stamp)
        } else {
            self.init()
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(stamp, forKey: .stamp)
        try container.encodeIfPresent(value, forKey: .value)
    }
}

extension ORSet.Entry: Codable where Element: Codable {
    private enum CodingKeys: String, CodingKey { case element, kernel }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            element: try container.decode(Element.self, forKey: .element),
            kernel: try container.decode(DotKernel<Presence>.self, forKey: .kernel))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(element, forKey: .element)
        try container.encode(kernel, forKey: .kernel)
    }
}

extension ORSet: Codable where Element: Codable {
    /// Refuses an element listed twice: the encoding lists each once, and merging many copies
    /// of one element (each naming other replicas) would cost O(n²).
    public init(from decoder: any Decoder) throws {
        let entries = try [Entry](from: decoder)
        guard Set(entries.map(\.element)).count == entries.count else {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(
                    codingPath: decoder.codingPath, debugDescription: "expected each set element once, found repeats"))
        }
        self.init(entries: entries)
    }

    public func encode(to encoder: any Encoder) throws {
        try entries.encode(to: encoder)
    }
}

private struct MapEntry<Key: Codable, Value: Codable>: Codable {
    let key: Key
    let value: Value
}

extension ORMap: Codable where Key: Codable, Value: Codable {
    /// Refuses a key listed twice (see `ORSet`'s decoder).
    public init(from decoder: any Decoder) throws {
        let entries = try [MapEntry<Key, Value>](from: decoder)
        var valueByKey = [Key: Value](minimumCapacity: entries.count)
        for entry in entries where valueByKey.updateValue(entry.value, forKey: entry.key) != nil {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(
                    codingPath: decoder.codingPath, debugDescription: "expected each map key once, found repeats"))
        }
        self.init(valueByKey)
    }

    public func encode(to encoder: any Encoder) throws {
        try sortedKeys.map { MapEntry(key: $0, value: valueByKey[$0]!) }.encode(to: encoder)
    }
}
