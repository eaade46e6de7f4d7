-- Kraliki Sync replica store, schema 1: current state, CRDT metadata, outbox, sync state.
-- Released migrations are never edited; later changes go in new numbered files.

-- Identity of this replica and small settings: replica_id, user, role, hlc_last, tenant.
CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;

-- The CRDT state of every entity (per-field stamps, siblings, set dots, tombstones), as the
-- Domain's binary encoding. The tables below are derived from it for queries.
CREATE TABLE entity_state (
    kind  TEXT NOT NULL,             -- contact | note | schedule
    id    TEXT NOT NULL,             -- EntityID, 32 hex digits
    state BLOB NOT NULL,
    PRIMARY KEY (kind, id)
) STRICT, WITHOUT ROWID;

CREATE TABLE contacts (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,      -- the displayed (winning) value
    company      TEXT,
    title        TEXT,
    owner        TEXT,
    status       TEXT,
    address      TEXT,
    lifecycle    TEXT NOT NULL,      -- active | deleted | merged
    updated_hlc  TEXT NOT NULL,      -- HLC text of the newest write
    has_conflict INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;
CREATE INDEX contacts_by_name ON contacts (name COLLATE NOCASE);
CREATE INDEX contacts_by_owner ON contacts (owner);

CREATE TABLE contact_phones (
    phone      TEXT NOT NULL,        -- E.164
    contact_id TEXT NOT NULL,
    PRIMARY KEY (phone, contact_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX contact_phones_by_contact ON contact_phones (contact_id);

CREATE TABLE contact_emails (
    email      TEXT NOT NULL,        -- normalized
    contact_id TEXT NOT NULL,
    PRIMARY KEY (email, contact_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX contact_emails_by_contact ON contact_emails (contact_id);

CREATE TABLE contact_tags (
    tag        TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    PRIMARY KEY (tag, contact_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX contact_tags_by_contact ON contact_tags (contact_id);

CREATE TABLE contact_fields (
    contact_id TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (contact_id, key)
) STRICT, WITHOUT ROWID;

CREATE TABLE call_notes (
    id          TEXT PRIMARY KEY,
    contact_id  TEXT,
    author      TEXT,
    call_time   INTEGER,             -- ms since 1970
    duration    INTEGER,             -- seconds
    direction   TEXT,
    outcome     TEXT,
    body        TEXT,
    lifecycle   TEXT NOT NULL,
    updated_hlc TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX call_notes_by_contact_time ON call_notes (contact_id, call_time);

CREATE TABLE note_tags (
    tag     TEXT NOT NULL,
    note_id TEXT NOT NULL,
    PRIMARY KEY (tag, note_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX note_tags_by_note ON note_tags (note_id);

CREATE TABLE schedule_entries (
    id          TEXT PRIMARY KEY,
    kind        TEXT,
    title       TEXT,
    start_ms    INTEGER,
    end_ms      INTEGER,
    time_zone   TEXT,
    contact_id  TEXT,
    location    TEXT,
    status      TEXT,
    lifecycle   TEXT NOT NULL,
    updated_hlc TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX schedule_entries_by_start ON schedule_entries (start_ms);

-- One row per (assignee, entry), with the interval copied, for "my day / my week".
CREATE TABLE schedule_assignees (
    assignee TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    entry_id TEXT NOT NULL,
    end_ms   INTEGER NOT NULL,
    PRIMARY KEY (assignee, start_ms, entry_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX schedule_assignees_by_entry ON schedule_assignees (entry_id);

-- Local changes the server has not acknowledged, in local sequence order.
CREATE TABLE outbox (
    local_seq       INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: (replica, local_seq) is a key
    change          BLOB NOT NULL,   -- a TenantState delta (binary blob)
    created_hlc     TEXT NOT NULL,
    rejected_code   TEXT,            -- set when the server refused it
    rejected_reason TEXT
) STRICT;

-- The sync session (server epoch, pull cursor, push checkpoint, clock offset) and the server.
CREATE TABLE sync_state (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    server_url     TEXT,
    session        TEXT NOT NULL,    -- ReplicaSyncSession as JSON
    last_sync_ms   INTEGER
) STRICT;
