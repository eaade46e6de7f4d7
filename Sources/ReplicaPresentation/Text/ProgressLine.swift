import Foundation
import LocalStorage
import Replica
import StoreSupport
import Synchronization

/// A one-line progress indicator with counts and rate, redrawn in place on a terminal.
///
/// Draws only when `enabled` (the CLI passes "standard error is a terminal and not --json"), so
/// pipes and scripts never see it; at most ten redraws a second.
/// Sendable: a sync reports progress from the task that fetches ahead too.
public final class ProgressLine: Sendable {
    let label: String
    let enabled: Bool
    let write: @Sendable (String) -> Void
    let started = Date()
    private let drawState = Mutex((lastDraw: Date.distantPast, drawn: false))

    public init(
        label: String, enabled: Bool,
        write: @escaping @Sendable (String) -> Void = { text in
            FileHandle.standardError.write(Data(text.utf8))
        }
    ) {
        self.label = label
        self.enabled = enabled
        self.write = write
    }

    /// `done` of `total` (when known) `unit`, with the rate since the start.
    public func update(_ done: Int, of total: Int? = nil, unit: String, extra: String = "", force: Bool = false) {
        guard enabled else { return }
        let now = Date()
        let due = drawState.withLock { state in
            guard force || now.timeIntervalSince(state.lastDraw) >= 0.1 else { return false }
            state.lastDraw = now
            state.drawn = true
            return true
        }
        guard due else { return }
        write(
            "\r\u{1B}[K"
                + Self.render(
                    label: label, done: done, total: total, unit: unit,
                    seconds: now.timeIntervalSince(started), extra: extra))
    }

    /// Clears the line.
    public func finish() {
        let drawn = drawState.withLock { state in
            defer { state.drawn = false }
            return state.drawn
        }
        if drawn { write("\r\u{1B}[K") }
    }

    /// `import [########------------]  412/1000 contacts  2,310/s`.
    public static func render(
        label: String, done: Int, total: Int?, unit: String, seconds: Double, extra: String = ""
    )
        -> String
    {
        let rate = seconds > 0 ? Int(Double(done) / seconds) : 0
        var text = label + " "
        if let total, total > 0 {
            let width = 20
            let filled = min(width, done * width / total)
            text += "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "] "
            text += "\(done)/\(total) \(unit)"
        } else {
            text += "\(done) \(unit)"
        }
        text += "  \(rate)/s"
        if !extra.isEmpty { text += "  " + extra }
        return text
    }
}
