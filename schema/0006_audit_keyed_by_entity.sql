-- Kraliki Sync replica store, schema 6: the audit trail keyed by entity.
-- Released migrations are never edited; later changes go in new numbered files.

-- Every applied pull writes an audit row per entity, and schema 2's trail was a rowid table with
-- an index on (entity_kind, entity_id): two B-tree inserts per row, the index's far from the
-- table's. Keyed by (entity_kind, entity_id, seq) it is one insert, and an entity's trail (what
-- `history` reads) is one range of the key. Applying pulled title changes, the raw SQLite floor
-- rose by 15 % and the file shrank by the index
-- (an experiment comparing the layouts, in git history at d8943f8).
--
-- `seq` still orders the whole trail. AUTOINCREMENT kept its counter in sqlite_sequence; a table
-- without a rowid has none, so the last number given out is kept in store_meta ('audit_seq')
-- and a writing transaction reserves its rows' numbers there in one statement.
CREATE TABLE audit_keyed (
    entity_kind TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    seq         INTEGER NOT NULL,    -- the trail's order; store_meta 'audit_seq' is the last one
    at_hlc      TEXT NOT NULL,
    user        TEXT NOT NULL,
    device      TEXT NOT NULL,
    action      TEXT NOT NULL,       -- write | pull | import | reissue
    PRIMARY KEY (entity_kind, entity_id, seq)
) STRICT, WITHOUT ROWID;

INSERT INTO audit_keyed (entity_kind, entity_id, seq, at_hlc, user, device, action)
    SELECT entity_kind, entity_id, seq, at_hlc, user, device, action FROM audit;

-- Past every number AUTOINCREMENT gave out, as it would have continued. A counter may be there
-- already: a replica that took an older server's bootstrap image carried its own store_meta
-- into it (LocalStore.adoptImage); the greatest wins.
INSERT OR REPLACE INTO store_meta (key, value)
    SELECT 'audit_seq', MAX(
        COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit'), 0),
        COALESCE((SELECT MAX(seq) FROM audit), 0),
        COALESCE((SELECT CAST(value AS INTEGER) FROM store_meta WHERE key = 'audit_seq'), 0));

DROP TABLE audit;
ALTER TABLE audit_keyed RENAME TO audit;
