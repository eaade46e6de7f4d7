-- Kraliki Sync server store, schema 2: users, devices, enrolment codes and the admin audit log.
-- Released migrations are never edited; later changes go in new numbered files.

-- A user of a tenant and the role that decides what their devices may do.
CREATE TABLE server_user (
    tenant     TEXT NOT NULL,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('agent', 'field', 'supervisor', 'admin')),
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
) STRICT, WITHOUT ROWID;

-- One enrolled replica. The device ID is its replica ID (16 hex digits); the token is stored
-- only as its SHA-256. Health columns are updated as the device pushes and pulls.
CREATE TABLE device (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    user          TEXT NOT NULL,
    token_sha256  BLOB NOT NULL UNIQUE,
    created_ms    INTEGER NOT NULL,
    revoked_ms    INTEGER,
    last_seen_ms  INTEGER,
    last_push_ms  INTEGER,
    last_pull_ms  INTEGER,
    cursor        INTEGER NOT NULL DEFAULT 0,   -- the newest cursor it pulled to
    FOREIGN KEY (tenant, user) REFERENCES server_user (tenant, name)
) STRICT;
CREATE INDEX device_by_tenant ON device (tenant, user);

-- One-time enrolment codes, stored as their SHA-256. A code is used once and expires.
CREATE TABLE enrolment_code (
    code_sha256 BLOB PRIMARY KEY,
    tenant      TEXT NOT NULL,
    user        TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL,
    used_ms     INTEGER,
    device      TEXT
) STRICT, WITHOUT ROWID;

-- What admins did and who enrolled: append-only.
CREATE TABLE admin_audit (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms  INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    actor  TEXT NOT NULL,      -- 'cli' or the acting device ID
    action TEXT NOT NULL,      -- enrol-code, enrol, revoke, restore …
    detail TEXT NOT NULL       -- JSON
) STRICT;

-- Online backups taken (`sync-server backup`), for the backup-age metric.
CREATE TABLE backup_log (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    file  TEXT NOT NULL,
    bytes INTEGER NOT NULL
) STRICT;
