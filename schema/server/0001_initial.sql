-- Kraliki Sync server store, schema 1: per-tenant ledgers (the durable TenantLedger).
-- Released migrations are never edited; later changes go in new numbered files.

-- One row per tenant: its server epoch and the last sequence number given to a change.
CREATE TABLE tenant_ledger (
    tenant   TEXT PRIMARY KEY,
    epoch    TEXT NOT NULL,          -- 16 hex digits
    sequence INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- The merged CRDT state of every entity of every tenant, and which sequence last changed
-- each of its fields (field_sequences: one varint per field, in the entity's field order).
CREATE TABLE server_entity (
    tenant          TEXT NOT NULL,
    kind            TEXT NOT NULL,
    id              TEXT NOT NULL,
    state           BLOB NOT NULL,
    field_sequences BLOB NOT NULL,
    PRIMARY KEY (tenant, kind, id)
) STRICT, WITHOUT ROWID;

-- The change log: which fields of which entity each sequence number changed. A pull reads it
-- after the cursor and skips entries whose fields were all changed again later.
CREATE TABLE server_log (
    tenant   TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    id       TEXT NOT NULL,
    fields   INTEGER NOT NULL,       -- FieldMask
    PRIMARY KEY (tenant, sequence)
) STRICT, WITHOUT ROWID;
