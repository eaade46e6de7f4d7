// The SyncServer module: the HTTP/2 sync server (issue #5). Empty until then; it depends on
// Domain (and may later depend on Replica for storage code, never the reverse).
import Domain
