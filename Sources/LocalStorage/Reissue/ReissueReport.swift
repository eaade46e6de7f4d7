import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// What a re-issue did (or, with `dryRun`, would do).
public struct ReissueReport: Sendable, Encodable {
    /// One refused change of the old replica made again here.
    public struct Reissued: Sendable, Encodable {
        public let localSequence: UInt64
        public let code: String
        /// The commands run for it (each its own outbox entry here).
        public let commands: Int
        /// Old ID → new ID of the entities it created, by old ID.
        public let created: [Created]
        public let leftOut: [LeftOutChange]
    }

    public struct Created: Sendable, Encodable {
        public let kind: EntityKind
        public let old: EntityID
        public let new: EntityID
    }

    /// The old replica's ID.
    public let from: String
    public let dryRun: Bool
    public let reissued: [Reissued]
    /// Local sequences of refused changes an earlier run re-issued already (skipped).
    public let alreadyReissued: [UInt64]
    /// The commands run for all of them.
    public let commands: Int

    init(from: String, dryRun: Bool, reissued: [Reissued], alreadyReissued: [UInt64]) {
        self.from = from
        self.dryRun = dryRun
        self.reissued = reissued
        self.alreadyReissued = alreadyReissued
        commands = reissued.reduce(0) { $0 + $1.commands }
    }
}
