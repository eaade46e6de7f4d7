import CRDT

extension TenantState {
    /// Every open conflict, ordered by ID. Deterministic: a pure function of the replicated state.
    ///
    /// - Complexity: O(fields) for concurrent values and delete-vs-edit; double bookings sweep
    ///   each assignee's entries by start time; duplicates index phones and e-mails.
    public func conflicts() -> [Conflict] {
        var result = [Conflict]()
        result += entityConflicts(contacts)
        result += entityConflicts(notes)
        result += entityConflicts(schedule)
        result += doubleBookings()
        result += probableDuplicates()
        result += orphanNotes()
        return result.sorted { $0.id < $1.id }
    }

    /// The conflict with this ID, if open.
    public func conflict(_ id: String) -> Conflict? {
        conflicts().first { $0.id == id }
    }

    private func side<E: Entity>(_ entity: E, _ ref: EntityRef, _ event: FieldEvent) -> Conflict.Side {
        Conflict.Side(
            entity: ref, field: event.field, value: event.value, user: entity.user(of: event.stamp.replica),
            device: event.stamp.replica, stamp: event.stamp)
    }

    private func entityConflicts<E: Entity>(_ map: ORMap<EntityID, E>) -> [Conflict] {
        var result = [Conflict]()
        for (id, entity) in map.valueByKey where entity.exists {
            let ref = EntityRef(E.kind, id)
            for field in E.fields where entity.isActive || field.name == "lifecycle" {
                for register in field.registers(entity) where register.siblings.count > 1 {
                    result.append(
                        Conflict(
                            id: "\(Conflict.Kind.concurrentValues.rawValue)/\(E.kind.rawValue)/\(id)/\(register.field)",
                            kind: .concurrentValues, entities: [ref], field: register.field,
                            sides: register.siblings.map { side(entity, ref, $0) }))
                }
            }
            // Delete vs edit: edits the deleting replica had not seen.
            if let winner = entity.lifecycle.siblings.last, let seen = winner.payload.seen {
                let unseen = E.fields.filter(\.isContent).flatMap { $0.liveEvents(entity) }
                    .filter { !seen.covers($0.stamp.dot) }
                if !unseen.isEmpty {
                    let deletion = FieldEvent(field: "lifecycle", stamp: winner.stamp, value: winner.payload.display)
                    result.append(
                        Conflict(
                            id: "\(Conflict.Kind.deleteVsEdit.rawValue)/\(E.kind.rawValue)/\(id)",
                            kind: .deleteVsEdit, entities: [ref], field: nil,
                            sides: [side(entity, ref, deletion)] + unseen.map { side(entity, ref, $0) }))
                }
            }
        }
        return result
    }

    private func doubleBookings() -> [Conflict] {
        // Planned, active entries by assignee.
        var entriesByAssignee = [String: [(EntityID, Interval)]]()
        for (id, entry) in schedule.valueByKey where entry.isActive && entry.status.value == .planned {
            guard let interval = entry.interval.value else { continue }
            for assignee in entry.assignees.elements { entriesByAssignee[assignee, default: []].append((id, interval)) }
        }
        var assigneesByPair = [[EntityID]: [String]]()
        for (assignee, entries) in entriesByAssignee {
            let sorted = entries.sorted { ($0.1.start, $0.0) < ($1.1.start, $1.0) }
            for (index, (id, interval)) in sorted.enumerated() {
                var next = index + 1
                while next < sorted.count && sorted[next].1.start < interval.end {
                    let pair = [id, sorted[next].0].sorted()
                    assigneesByPair[pair, default: []].append(assignee)
                    next += 1
                }
            }
        }
        var result = [Conflict]()
        for (pair, assignees) in assigneesByPair {
            let first = schedule[pair[0]]!
            let second = schedule[pair[1]]!
            let acceptance = OverlapAcceptance(
                first: pair[0], second: pair[1], firstInterval: first.interval.stamp!,
                secondInterval: second.interval.stamp!)
            if first.acceptedOverlaps.contains(acceptance) || second.acceptedOverlaps.contains(acceptance) { continue }
            let sides = [(pair[0], first), (pair[1], second)].map { id, entry in
                let stamp = entry.interval.stamp!
                return Conflict.Side(
                    entity: EntityRef(.schedule, id), field: "interval",
                    value: "\(entry.title.value ?? "") \(entry.interval.value!.display)",
                    user: entry.user(of: stamp.replica),
                    device: stamp.replica, stamp: stamp)
            }
            result.append(
                Conflict(
                    id: "\(Conflict.Kind.doubleBooking.rawValue)/\(pair[0])/\(pair[1])", kind: .doubleBooking,
                    entities: pair.map { EntityRef(.schedule, $0) },
                    field: "assignees:" + assignees.sorted().joined(separator: ","),
                    sides: sides))
        }
        return result
    }

    private func probableDuplicates() -> [Conflict] {
        // Almost every phone and e-mail belongs to one contact: remember its first owner, and
        // start a list of owners only when a second one appears. (A list per key, under a key
        // built as "phone " + number, was 17 % of a CLI edit's samples at 100,000 contacts.)
        struct Key: Hashable {
            let isEmail: Bool
            let value: String
            var text: String { (isEmail ? "email " : "phone ") + value }
        }
        var firstOwner = [Key: EntityID](minimumCapacity: contacts.count * 2)
        var contactsByKey = [Key: [EntityID]]()
        func add(_ key: Key, _ id: EntityID) {
            // The owner before this one starts the list; once it exists, it is only appended to.
            if let earlier = firstOwner.updateValue(id, forKey: key) {
                contactsByKey[key, default: [earlier]].append(id)
            }
        }
        for (id, contact) in contacts.valueByKey where contact.isActive {
            for phone in contact.phones.elements { add(Key(isEmail: false, value: phone), id) }
            for email in contact.emails.elements { add(Key(isEmail: true, value: email), id) }
        }
        var keysByPair = [[EntityID]: [String]]()
        for (key, ids) in contactsByKey.map({ ($0.key.text, $0.value) }) {
            let ids = ids.sorted()
            for (index, a) in ids.enumerated() {
                for b in ids[(index + 1)...] where a.replica != b.replica {
                    keysByPair[[a, b], default: []].append(key)
                }
            }
        }
        var result = [Conflict]()
        for (pair, keys) in keysByPair {
            let a = contacts[pair[0]]!
            let b = contacts[pair[1]]!
            if a.notDuplicateOf.contains(pair[1]) || b.notDuplicateOf.contains(pair[0]) { continue }
            let shared = keys.sorted().joined(separator: ", ")
            let sides = [(pair[0], a), (pair[1], b)].map { id, contact in
                let stamp = contact.lifecycle.kernel.live.first?.stamp ?? HLC(time: id.time, replica: id.replica)
                return Conflict.Side(
                    entity: EntityRef(.contact, id), field: "name",
                    value: "\(contact.name.value ?? "") (shares \(shared))",
                    user: contact.user(of: id.replica), device: id.replica, stamp: stamp)
            }
            result.append(
                Conflict(
                    id: "\(Conflict.Kind.probableDuplicate.rawValue)/\(pair[0])/\(pair[1])", kind: .probableDuplicate,
                    entities: pair.map { EntityRef(.contact, $0) }, field: nil, sides: sides))
        }
        return result
    }

    private func orphanNotes() -> [Conflict] {
        var result = [Conflict]()
        for (id, note) in notes.valueByKey where note.isActive {
            guard let contactID = note.contact.value?.id, let contact = contacts[contactID], contact.exists,
                !contact.isActive, let deletion = contact.lifecycle.siblings.last
            else { continue }
            if note.orphanAccepted.values.contains(deletion.stamp) { continue }
            let noteStamp = note.body.stamp ?? HLC(time: id.time, replica: id.replica)
            result.append(
                Conflict(
                    id: "\(Conflict.Kind.orphanNote.rawValue)/\(id)", kind: .orphanNote,
                    entities: [EntityRef(.note, id), EntityRef(.contact, contactID)], field: nil,
                    sides: [
                        Conflict.Side(
                            entity: EntityRef(.note, id), field: "body",
                            value: String((note.body.value ?? "").prefix(80)),
                            user: note.user(of: noteStamp.replica), device: noteStamp.replica, stamp: noteStamp),
                        Conflict.Side(
                            entity: EntityRef(.contact, contactID), field: "lifecycle", value: deletion.payload.display,
                            user: contact.user(of: deletion.stamp.replica), device: deletion.stamp.replica,
                            stamp: deletion.stamp),
                    ]))
        }
        return result
    }
}
