#!/usr/bin/env python3
"""The title apply's floor in two layouts (the measurement behind schema 5).

Raw SQLite writing, per pulled title change, the rows the replica writes: the entity's CRDT
state (213 B, its size after the change), the narrow update of its contact row, the audit row
and its index, and the sync state once per transaction; 4,200 changes per transaction, WAL,
synchronous=FULL, a 64 MiB cache, no CRDT work.

- "current": the state in its own table (`entity_state`, as schemas 1-4 keep it);
- "folded": the state a column of the contact row (one statement fewer per change; a possible
  schema 5).

Python's sqlite3 adds its own cost per statement, so the figures sit below store-bench's C-API
floor; compare the two lines of the same run, and run it more than once (a shared host).

    python3 Benchmarks/experiments/title-floor-layouts.py      # ~1 min, files in a temp directory
"""
import os
import sqlite3
import tempfile
import time

N = 100_000
PER_TRANSACTION = 4_200
BLOB = bytes(i * 31 % 256 for i in range(213))


def create(path, folded):
    """A replica-like file with N contacts (their state in `entity_state` or, folded, in `contacts`)."""
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA cache_size=-65536")
    db.execute("CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT, WITHOUT ROWID")
    db.execute("INSERT INTO store_meta VALUES ('hlc_last', 'x')")
    db.execute(
        "CREATE TABLE entity_state (kind TEXT NOT NULL, id TEXT NOT NULL, state BLOB NOT NULL, "
        "PRIMARY KEY (kind, id)) STRICT, WITHOUT ROWID"
    )
    db.execute(
        "CREATE TABLE contacts (id TEXT PRIMARY KEY, name TEXT NOT NULL, company TEXT, title TEXT, owner TEXT, "
        "status TEXT, address TEXT, lifecycle TEXT NOT NULL, updated_hlc TEXT NOT NULL, "
        "has_conflict INTEGER NOT NULL DEFAULT 0" + (", state BLOB" if folded else "") + ") STRICT, WITHOUT ROWID"
    )
    db.execute("CREATE INDEX contacts_by_owner ON contacts (owner)")
    db.execute(
        "CREATE INDEX contacts_listing ON contacts "
        "(name COLLATE NOCASE, id, company, owner, status, lifecycle, has_conflict)"
    )
    db.execute(
        "CREATE TABLE audit (seq INTEGER PRIMARY KEY, at_hlc TEXT NOT NULL, user TEXT NOT NULL, "
        "device TEXT NOT NULL, action TEXT NOT NULL, entity_kind TEXT NOT NULL, entity_id TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX audit_by_entity ON audit (entity_kind, entity_id)")
    db.execute("BEGIN")
    for i in range(N):
        entity = "%032x" % i
        stamp = "%016x-0002" % i
        name = "Name %06x" % ((i * 7919) % N)
        if folded:
            db.execute(
                "INSERT INTO contacts (id, name, company, title, lifecycle, updated_hlc, state) "
                "VALUES (?, ?, 'Co', 'T', 'active', ?, ?)",
                (entity, name, stamp, BLOB),
            )
        else:
            db.execute("INSERT INTO entity_state VALUES ('contact', ?, ?)", (entity, BLOB))
            db.execute(
                "INSERT INTO contacts (id, name, company, title, lifecycle, updated_hlc) "
                "VALUES (?, ?, 'Co', 'T', 'active', ?)",
                (entity, name, stamp),
            )
        db.execute(
            "INSERT INTO audit (at_hlc, user, device, action, entity_kind, entity_id) "
            "VALUES (?, 'u', 'd', 'import', 'contact', ?)",
            (stamp, entity),
        )
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db


def apply_titles(db, folded):
    """N title changes, PER_TRANSACTION per transaction; changes/s."""
    start_time = time.perf_counter()
    for start in range(0, N, PER_TRANSACTION):
        db.execute("BEGIN")
        for i in range(start, min(start + PER_TRANSACTION, N)):
            entity = "%032x" % i
            stamp = "%016x-0004" % (N + i)
            if folded:
                db.execute(
                    "UPDATE contacts SET title = ?, address = NULL, updated_hlc = MAX(updated_hlc, ?), state = ? "
                    "WHERE id = ?",
                    ("Head %d" % i, stamp, BLOB, entity),
                )
            else:
                db.execute(
                    "INSERT INTO entity_state (kind, id, state) VALUES ('contact', ?, ?) "
                    "ON CONFLICT (kind, id) DO UPDATE SET state = excluded.state",
                    (entity, BLOB),
                )
                db.execute(
                    "UPDATE contacts SET title = ?, address = NULL, updated_hlc = MAX(updated_hlc, ?) WHERE id = ?",
                    ("Head %d" % i, stamp, entity),
                )
            db.execute(
                "INSERT INTO audit (at_hlc, user, device, action, entity_kind, entity_id) "
                "VALUES (?, '(server)', 'd', 'pull', 'contact', ?)",
                (stamp, entity),
            )
        db.execute("UPDATE store_meta SET value = ? WHERE key = 'hlc_last'", ("y",))
        db.execute("COMMIT")
    return N / (time.perf_counter() - start_time)


if __name__ == "__main__":
    path = os.path.join(tempfile.mkdtemp(prefix="title-floor-"), "floor.sqlite")
    for _ in range(2):
        for folded in (False, True):
            db = create(path, folded)
            print("folded " if folded else "current", "%.0f changes/s" % apply_titles(db, folded), flush=True)
            db.close()
