import CRDT

extension TenantState {
    /// The contact, note or schedule entry whose ID is `text`, or starts with `text` (at least 6
    /// hex digits, matching exactly one entity of the kinds given): what the CLI accepts as an ID.
    public func resolveID(_ text: String, kinds: [EntityKind] = EntityKind.allCases) -> EntityID? {
        let text = text.lowercased()
        if let id = EntityID(text: text) {
            let known = kinds.contains { kind in
                switch kind {
                case .contact: contacts[id]?.exists == true
                case .note: notes[id]?.exists == true
                case .schedule: schedule[id]?.exists == true
                }
            }
            return known ? id : nil
        }
        guard text.count >= 6, text.allSatisfy(\.isHexDigit) else { return nil }
        var found = [EntityID]()
        for kind in kinds {
            switch kind {
            case .contact: found += contacts.keys.filter { $0.text.hasPrefix(text) && contacts[$0]!.exists }
            case .note: found += notes.keys.filter { $0.text.hasPrefix(text) && notes[$0]!.exists }
            case .schedule: found += schedule.keys.filter { $0.text.hasPrefix(text) && schedule[$0]!.exists }
            }
            if found.count > 1 { return nil }
        }
        return found.count == 1 ? found[0] : nil
    }

    /// The kind of entity `id` is, if this state holds it.
    public func kind(of id: EntityID) -> EntityKind? {
        if contacts[id]?.exists == true { return .contact }
        if notes[id]?.exists == true { return .note }
        if schedule[id]?.exists == true { return .schedule }
        return nil
    }
}
