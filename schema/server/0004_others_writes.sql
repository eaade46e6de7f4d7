-- Kraliki Sync server store, schema 4: whose writes a device may push.
-- Released migrations are never edited; later changes go in new numbered files.

-- A device may push only its own writes, with one exception: after a restore (or after a lost
-- server was replaced by an empty one), replicas send back what the server lacks, which includes
-- other devices' writes. Those are accepted only when stamped before this time (ms since 1970):
-- the tenant's epoch start, plus the drift bound after a restore (the server had accepted stamps
-- up to that far ahead of its clock). 0 for ledgers older than this schema: none accepted.
ALTER TABLE tenant_ledger ADD COLUMN others_writes_before_ms INTEGER NOT NULL DEFAULT 0;
