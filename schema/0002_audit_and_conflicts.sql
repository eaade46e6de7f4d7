-- Kraliki Sync replica store, schema 2: the local audit trail and the conflicts cache.

-- Who (user, device) did what to which entity, and when; local writes and applied pulls.
CREATE TABLE audit (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at_hlc      TEXT NOT NULL,
    user        TEXT NOT NULL,
    device      TEXT NOT NULL,
    action      TEXT NOT NULL,       -- write | pull
    entity_kind TEXT NOT NULL,
    entity_id   TEXT NOT NULL
) STRICT;
CREATE INDEX audit_by_entity ON audit (entity_kind, entity_id);

-- The open conflicts as last derived from the state (see Domain's TenantState.conflicts()),
-- for tools that read the file directly; replaced whole on each refresh.
CREATE TABLE conflicts (
    id     TEXT PRIMARY KEY,
    kind   TEXT NOT NULL,
    detail TEXT NOT NULL             -- the Conflict as JSON
) STRICT, WITHOUT ROWID;
