-- Kraliki Sync server store, schema 3: tombstone collection and retention.
-- Released migrations are never edited; later changes go in new numbered files.

-- The highest sequence at which a collected tombstone last changed. A replica whose cursor (in
-- the same epoch) is below it may have missed a deletion whose record is gone: its pull is
-- refused with "stale-cursor" and it re-bootstraps after pushing its outbox.
ALTER TABLE tenant_ledger ADD COLUMN collected_through INTEGER NOT NULL DEFAULT 0;

-- What is left of a collected tombstone: the entity's ID and everything it had seen (a version
-- vector, binary). A late change that adds nothing to it is ignored; one that carries new edits
-- is refused with "entity-collected", so a deleted record never comes back silently.
CREATE TABLE collected_entity (
    tenant       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    id           TEXT NOT NULL,
    knowledge    BLOB NOT NULL,
    deleted_ms   INTEGER NOT NULL,   -- the deletion's stamp (the deleting device's clock)
    collected_ms INTEGER NOT NULL,   -- the server's clock
    PRIMARY KEY (tenant, kind, id)
) STRICT, WITHOUT ROWID;

-- The tenant's sequence at each collection run, by the server's clock: a change whose sequence
-- is at most the newest checkpoint older than the retention arrived at least that long ago,
-- whatever clock stamped it.
CREATE TABLE retention_checkpoint (
    tenant   TEXT NOT NULL,
    at_ms    INTEGER NOT NULL,
    sequence INTEGER NOT NULL,
    PRIMARY KEY (tenant, at_ms)
) STRICT, WITHOUT ROWID;
