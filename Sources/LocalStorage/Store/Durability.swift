import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// How hard a commit works to survive a power cut.
public enum Durability: String, Sendable, Codable, CaseIterable {
    /// `synchronous=FULL`: every commit is fsynced before it returns. A write reported as
    /// committed survives a power cut. The default.
    case full
    /// `synchronous=NORMAL`: in WAL mode SQLite fsyncs only at checkpoints. A power cut (not a
    /// crash of the program) can lose the last commits — which may include changes already
    /// acknowledged to the user. About 5× faster per commit on this machine; use it only where
    /// the server is the copy that matters.
    case normal
}
