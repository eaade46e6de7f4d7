import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// A bounded queue of chunks from the builder's thread to the writer's. A few chunks ahead is
/// enough to keep both threads busy; more would only hold memory.
///
/// Written chunks come back (``written(_:)``) and are freed on the builder's thread, which
/// allocated them: freed by the writer, each block would go back to the builder's glibc heap
/// under that heap's lock while the builder allocates the next chunk (a profile measured this
/// wait on the sync engine's writer: 2,200–2,800 lock waits per 100,000 pulled changes).
final class ImportChunks: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue = [Result<ImportChunk, ValidationError>]()
    private var writtenChunks = [ImportChunk]()
    private var done = false
    private var cancelled = false
    private var result: ImportBuilder.Finished?
    private let capacity = 8

    /// Hands a chunk over; false once the writer gave up (the builder stops). The chunks
    /// written meanwhile are freed here, on the builder's thread, outside the lock.
    func put(_ chunk: Result<ImportChunk, ValidationError>) -> Bool {
        var done = [ImportChunk]()
        defer { withExtendedLifetime(done) {} }
        condition.lock()
        defer { condition.unlock() }
        swap(&done, &writtenChunks)
        while queue.count >= capacity && !cancelled { condition.wait() }
        if cancelled { return false }
        queue.append(chunk)
        condition.broadcast()
        return true
    }

    /// A chunk the writer wrote: handed back to be freed by the builder (``put(_:)``).
    func written(_ chunk: ImportChunk) {
        condition.lock()
        defer { condition.unlock() }
        writtenChunks.append(chunk)
    }

    /// The builder is done: with what the store takes, or nil after a bad draft.
    func finish(_ finished: ImportBuilder.Finished?) {
        condition.lock()
        defer { condition.unlock() }
        result = finished
        done = true
        condition.broadcast()
    }

    /// The next chunk, waiting for it; nil when the builder is done and every chunk was taken.
    func next() -> Result<ImportChunk, ValidationError>? {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty && !done { condition.wait() }
        if queue.isEmpty { return nil }
        let chunk = queue.removeFirst()
        condition.broadcast()
        return chunk
    }

    /// What the builder finished with, once `next()` returned nil.
    var finished: ImportBuilder.Finished? {
        condition.lock()
        defer { condition.unlock() }
        return result
    }

    /// The writer gave up: wake the builder so it stops.
    func cancel() {
        condition.lock()
        defer { condition.unlock() }
        cancelled = true
        queue.removeAll()
        condition.broadcast()
    }
}
