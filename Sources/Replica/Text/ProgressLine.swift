import Foundation

/// A one-line progress indicator with counts and rate, redrawn in place on a terminal.
///
/// Draws only when `enabled` (the CLI passes "standard error is a terminal and not --json"), so
/// pipes and scripts never see it; at most ten redraws a second.
public final class ProgressLine {
    let label: String
    let enabled: Bool
    let write: (String) -> Void
    let started = Date()
    private var lastDraw = Date.distantPast
    private var drawn = false

    public init(
        label: String, enabled: Bool,
        write: @escaping (String) -> Void = { text in
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
        guard force || now.timeIntervalSince(lastDraw) >= 0.1 else { return }
        lastDraw = now
        write(
            "\r\u{1B}[K"
                + Self.render(
                    label: label, done: done, total: total, unit: unit,
                    seconds: now.timeIntervalSince(started), extra: extra))
        drawn = true
    }

    /// Clears the line.
    public func finish() {
        if drawn { write("\r\u{1B}[K") }
        drawn = false
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
