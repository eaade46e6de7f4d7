import Foundation

/// Times as the CLI reads and writes them.
///
/// Input is ISO 8601: `2026-03-02T09:30:00+01:00`, `2026-03-02T09:30Z`, `2026-03-02 09:30`
/// (no offset: the local time zone), fractions of a second allowed. Output for people is the
/// local time zone (`TZ` is honoured); output for programs is UTC with milliseconds.
public enum TimeText {
    /// ISO 8601 UTC with milliseconds, e.g. `2026-03-02T08:30:00.000Z`.
    public static func utc(_ milliseconds: Int64) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
        return formatter.string(from: date(milliseconds))
    }

    /// `2026-03-02 09:30` in `zone` (the local time zone by default).
    public static func local(_ milliseconds: Int64, zone: TimeZone = .current, seconds: Bool = false) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = zone
        formatter.dateFormat = seconds ? "yyyy-MM-dd HH:mm:ss" : "yyyy-MM-dd HH:mm"
        return formatter.string(from: date(milliseconds))
    }

    /// The local time zone's name (`Europe/Prague`), for intervals planned on this machine.
    public static var localZoneName: String { TimeZone.current.identifier }

    static func date(_ milliseconds: Int64) -> Date { Date(timeIntervalSince1970: Double(milliseconds) / 1000) }

    /// Parses an ISO 8601 date and time; `field` names the option in the error.
    public static func parse(_ text: String, field: String, zone: TimeZone = .current) throws(ValidationError) -> Int64
    {
        let invalid = ValidationError(
            field: field, code: .invalidFormat,
            message: "\(field) \"\(text)\" is not an ISO 8601 date and time; write it like 2026-03-02T09:30:00+01:00")
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let parts = trimmed.split(maxSplits: 1, whereSeparator: { $0 == "T" || $0 == "t" || $0 == " " })
        guard parts.count == 2, let day = parseDay(String(parts[0])) else { throw invalid }
        var time = Substring(parts[1])
        // Offset: Z, ±HH:MM, ±HHMM, ±HH.
        var offsetSeconds: Int?
        if time.hasSuffix("Z") || time.hasSuffix("z") {
            offsetSeconds = 0
            time = time.dropLast()
        } else if let sign = time.lastIndex(where: { $0 == "+" || $0 == "-" }) {
            let digits = time[time.index(after: sign)...].filter { $0 != ":" }
            guard digits.count == 2 || digits.count == 4, digits.allSatisfy(\.isASCII), let value = Int(digits)
            else { throw invalid }
            let hours = digits.count == 2 ? value : value / 100
            let minutes = digits.count == 2 ? 0 : value % 100
            guard hours <= 18, minutes < 60 else { throw invalid }
            offsetSeconds = (hours * 3600 + minutes * 60) * (time[sign] == "-" ? -1 : 1)
            time = time[..<sign]
        }
        let clock = time.split(separator: ":", omittingEmptySubsequences: false)
        guard (2...3).contains(clock.count), clock[0].count == 2, clock[1].count == 2,
            let hour = Int(clock[0]), let minute = Int(clock[1]), hour < 24, minute < 60
        else { throw invalid }
        var millisecond = 0
        var second = 0
        if clock.count == 3 {
            let pieces = clock[2].split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
            guard pieces[0].count == 2, let value = Int(pieces[0]), value < 61 else { throw invalid }
            second = value
            if pieces.count == 2 {
                let fraction = pieces[1].prefix(3).padding(toLength: 3, withPad: "0", startingAt: 0)
                guard !pieces[1].isEmpty, pieces[1].allSatisfy(\.isNumber), let value = Int(fraction) else {
                    throw invalid
                }
                millisecond = value
            }
        }
        var components = DateComponents()
        components.year = day.year
        components.month = day.month
        components.day = day.day
        components.hour = hour
        components.minute = minute
        components.second = second
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = offsetSeconds.flatMap { TimeZone(secondsFromGMT: $0) } ?? zone
        guard let date = calendar.date(from: components) else { throw invalid }
        return Int64((date.timeIntervalSince1970 * 1000).rounded()) + Int64(millisecond)
    }

    /// Midnight at the start of `YYYY-MM-DD` in `zone`, ms since 1970.
    public static func startOfDay(
        _ text: String, field: String, zone: TimeZone = .current
    ) throws(ValidationError)
        -> Int64
    {
        guard let day = parseDay(text) else {
            throw ValidationError(
                field: field, code: .invalidFormat, message: "\(field) \"\(text)\" is not a date like 2026-03-02")
        }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let date = calendar.date(from: DateComponents(year: day.year, month: day.month, day: day.day))!
        return Int64(date.timeIntervalSince1970 * 1000)
    }

    /// The start of the day `days` days after the day starting at `start` (daylight saving aware).
    public static func addingDays(_ days: Int, to start: Int64, zone: TimeZone = .current) -> Int64 {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let date = calendar.date(byAdding: .day, value: days, to: self.date(start))!
        return Int64(date.timeIntervalSince1970 * 1000)
    }

    /// The Monday starting the ISO week that holds the day starting at `start`.
    public static func startOfWeek(containing start: Int64, zone: TimeZone = .current) -> Int64 {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let weekday = calendar.component(.weekday, from: date(start))  // 1 = Sunday
        return addingDays(-((weekday + 5) % 7), to: start, zone: zone)
    }

    private static func parseDay(_ text: String) -> (year: Int, month: Int, day: Int)? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
            let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]),
            (1...12).contains(month), (1...31).contains(day)
        else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        // Refuse 2026-02-30 rather than rolling it over.
        guard let date = calendar.date(from: DateComponents(year: year, month: month, day: day)),
            calendar.component(.day, from: date) == day
        else { return nil }
        return (year, month, day)
    }
}
