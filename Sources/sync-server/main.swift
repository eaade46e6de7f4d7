import Foundation
// The `sync-server` executable stays thin: it parses arguments and starts SyncServer.
// The server itself arrives with issue #5; until then this tells the caller so, instead of
// pretending to serve.
import SyncServer

let message = """
    sync-server: this build has no server yet; it arrives with issue #5.
    See README.md ("Status") for what works today.

    """
FileHandle.standardError.write(Data(message.utf8))
exit(69)  // EX_UNAVAILABLE
