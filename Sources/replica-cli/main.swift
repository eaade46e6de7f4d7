import Foundation
// The `replica-cli` executable stays thin: parsing, calling Replica, printing.
// The commands arrive with issue #6; until then this tells the caller so.
import Replica

let message = """
    replica-cli: this build has no replica commands yet; they arrive with issue #6.
    See README.md ("Status") for what works today.

    """
FileHandle.standardError.write(Data(message.utf8))
exit(69)  // EX_UNAVAILABLE
