-- Kraliki Sync replica store, schema 5: each entity's CRDT state in its own row.
-- Released migrations are never edited; later changes go in new numbered files.

-- The CRDT state of an entity (schema 1's entity_state) moves into the entity's row in
-- contacts, call_notes or schedule_entries. Every write of an entity wrote both rows in the same
-- transaction, so each change paid two B-tree writes (two pages dirtied, two WAL frames) where
-- one does: applying pulled title changes, the table's own floor rose by a fifth
-- (an experiment comparing the layouts, in git history at d8943f8). The state stays the source of truth; the other
-- columns are still derived from it.
ALTER TABLE contacts ADD COLUMN state BLOB NOT NULL DEFAULT x'';
ALTER TABLE call_notes ADD COLUMN state BLOB NOT NULL DEFAULT x'';
ALTER TABLE schedule_entries ADD COLUMN state BLOB NOT NULL DEFAULT x'';

UPDATE contacts SET state = e.state FROM entity_state AS e WHERE e.kind = 'contact' AND e.id = contacts.id;
UPDATE call_notes SET state = e.state FROM entity_state AS e WHERE e.kind = 'note' AND e.id = call_notes.id;
UPDATE schedule_entries SET state = e.state FROM entity_state AS e WHERE e.kind = 'schedule' AND e.id = schedule_entries.id;

-- The store always wrote an entity's state and its row together, so none should lack a row; if a
-- file has one anyway its state (the source of truth) is kept, in a row of stand-in values
-- (updated_hlc '') that the store rewrites whole from the state when it next opens the file
-- (LocalStore.rebuildPlaceholderRows, told so by this marker): no state is dropped.
INSERT INTO store_meta (key, value)
    SELECT 'rows_to_rebuild', 'schema 5' WHERE EXISTS (
        SELECT 1 FROM entity_state AS e WHERE NOT EXISTS (
            SELECT 1 FROM contacts WHERE e.kind = 'contact' AND contacts.id = e.id
            UNION ALL SELECT 1 FROM call_notes WHERE e.kind = 'note' AND call_notes.id = e.id
            UNION ALL SELECT 1 FROM schedule_entries WHERE e.kind = 'schedule' AND schedule_entries.id = e.id));
INSERT INTO contacts (id, name, lifecycle, updated_hlc, state)
    SELECT id, '', 'active', '', state FROM entity_state
    WHERE kind = 'contact' AND id NOT IN (SELECT id FROM contacts);
INSERT INTO call_notes (id, lifecycle, updated_hlc, state)
    SELECT id, 'active', '', state FROM entity_state
    WHERE kind = 'note' AND id NOT IN (SELECT id FROM call_notes);
INSERT INTO schedule_entries (id, lifecycle, updated_hlc, state)
    SELECT id, 'active', '', state FROM entity_state
    WHERE kind = 'schedule' AND id NOT IN (SELECT id FROM schedule_entries);

-- Nor did the store write a row without its state; such a row was never an entity this replica
-- holds (no state, nothing to show or sync), and an empty state would not decode.
DELETE FROM contacts WHERE state = x'';
DELETE FROM call_notes WHERE state = x'';
DELETE FROM schedule_entries WHERE state = x'';

DROP TABLE entity_state;

-- Readers (and tools reading the file) keep the name: every entity's state, in (kind, id) order
-- of the three tables' keys.
CREATE VIEW entity_state (kind, id, state) AS
    SELECT 'contact', id, state FROM contacts
    UNION ALL SELECT 'note', id, state FROM call_notes
    UNION ALL SELECT 'schedule', id, state FROM schedule_entries;
