import StoreSupport

/// A CSV parser for RFC 4180: comma-separated fields, double-quoted fields that may hold
/// commas, line breaks and doubled quotes (`""`), CRLF or LF line ends, a UTF-8 byte order mark
/// allowed at the start.
///
/// Each record carries the number of the line it starts on (1-based, counting the header), so
/// errors can name the line a person sees in an editor.
public struct CSVReader {
    public struct Record: Equatable, Sendable {
        public let line: Int
        public let fields: [String]
    }

    /// A quote that is never closed, or text after a closing quote.
    public struct Malformed: Error, Equatable, Sendable, CustomStringConvertible {
        public let line: Int
        public let description: String
    }

    /// Parses `text` into records; blank lines are skipped. A malformed record is reported in
    /// `malformed` by line and parsing resumes at the next line.
    public static func parse(_ text: String) -> (records: [Record], malformed: [Malformed]) {
        var scalars = Array(text.unicodeScalars)
        if scalars.first == "\u{FEFF}" { scalars.removeFirst() }
        var records = [Record]()
        var malformed = [Malformed]()
        var index = 0
        var line = 1
        while index < scalars.count {
            let startLine = line
            var fields = [String]()
            var field = String.UnicodeScalarView()
            var error: String?
            var atRecordEnd = false
            while !atRecordEnd {
                // Start of a field.
                if index < scalars.count && scalars[index] == "\"" {
                    index += 1
                    var closed = false
                    while index < scalars.count {
                        let scalar = scalars[index]
                        if scalar == "\"" {
                            if index + 1 < scalars.count && scalars[index + 1] == "\"" {
                                field.append("\"")
                                index += 2
                                continue
                            }
                            index += 1
                            closed = true
                            break
                        }
                        if scalar == "\n" { line += 1 }
                        field.append(scalar)
                        index += 1
                    }
                    if !closed { error = "a quoted field is never closed" }
                    // After the closing quote: a separator or the end of the record.
                    if error == nil, index < scalars.count, scalars[index] != ",", scalars[index] != "\n",
                        scalars[index] != "\r"
                    {
                        error = "text follows a closing quote (write \"\" for a quote inside a quoted field)"
                    }
                } else {
                    while index < scalars.count, scalars[index] != ",", scalars[index] != "\n", scalars[index] != "\r" {
                        field.append(scalars[index])
                        index += 1
                    }
                }
                fields.append(String(field))
                field = String.UnicodeScalarView()
                if error != nil {
                    // Skip to the end of this physical line.
                    while index < scalars.count && scalars[index] != "\n" { index += 1 }
                }
                if index < scalars.count && scalars[index] == "," && error == nil {
                    index += 1
                    continue
                }
                if index < scalars.count && scalars[index] == "\r" { index += 1 }
                if index < scalars.count && scalars[index] == "\n" {
                    index += 1
                    line += 1
                }
                atRecordEnd = true
            }
            if let error {
                malformed.append(Malformed(line: startLine, description: error))
            } else if !(fields.count == 1 && fields[0].isEmpty) {
                records.append(Record(line: startLine, fields: fields))
            }
        }
        return (records, malformed)
    }
}
