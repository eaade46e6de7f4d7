#!/usr/bin/env python3
"""The title apply's floor with the audit trail in two layouts (the measurement behind schema 6).

Raw SQLite writing, per pulled title change, what the replica writes: the narrow update of the
contact row with its CRDT state (213 B, schema 5), one audit row, and the sync state once per
transaction; 4,200 changes per transaction, WAL, synchronous=FULL, a 64 MiB cache, no CRDT work.

- "rowid": schema 2's trail, `seq INTEGER PRIMARY KEY AUTOINCREMENT` plus the index
  `audit_by_entity (entity_kind, entity_id)`: two B-tree inserts per row;
- "keyed": schema 6's trail, WITHOUT ROWID keyed by (entity_kind, entity_id, seq), the numbers
  reserved once per transaction from a counter in store_meta: one insert per row;
- "none": no audit row at all (what the trail costs).

Two orders of the changed contacts: "id order" (each transaction a run of neighbouring contacts,
as store-bench's title changes are) and "scattered" (the contacts of all transactions shuffled,
each transaction's sorted as the store's writer sees them; pulls arrive in the server's commit
order, not by ID). Python's sqlite3 adds its own cost per statement: compare lines of one run.

    python3 Benchmarks/experiments/audit-layouts.py      # ~1.5 min, files in a temp directory
"""
import os
import random
import sqlite3
import tempfile
import time

N = 100_000
PER_TRANSACTION = 4_200
BLOB = bytes(i * 31 % 256 for i in range(213))


def create(path, layout):
    """A replica-like file with N contacts, each with one import row in the trail."""
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA cache_size=-65536")
    db.execute("CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT, WITHOUT ROWID")
    db.execute("INSERT INTO store_meta VALUES ('hlc_last', 'x'), ('audit_seq', '0')")
    db.execute(
        "CREATE TABLE contacts (id TEXT PRIMARY KEY, name TEXT NOT NULL, company TEXT, title TEXT, owner TEXT, "
        "status TEXT, address TEXT, lifecycle TEXT NOT NULL, updated_hlc TEXT NOT NULL, "
        "has_conflict INTEGER NOT NULL DEFAULT 0, state BLOB NOT NULL) STRICT, WITHOUT ROWID"
    )
    db.execute("CREATE INDEX contacts_by_owner ON contacts (owner)")
    db.execute(
        "CREATE INDEX contacts_listing ON contacts "
        "(name COLLATE NOCASE, id, company, owner, status, lifecycle, has_conflict)"
    )
    if layout == "keyed":
        db.execute(
            "CREATE TABLE audit (entity_kind TEXT NOT NULL, entity_id TEXT NOT NULL, seq INTEGER NOT NULL, "
            "at_hlc TEXT NOT NULL, user TEXT NOT NULL, device TEXT NOT NULL, action TEXT NOT NULL, "
            "PRIMARY KEY (entity_kind, entity_id, seq)) STRICT, WITHOUT ROWID"
        )
    else:
        db.execute(
            "CREATE TABLE audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, at_hlc TEXT NOT NULL, user TEXT NOT NULL, "
            "device TEXT NOT NULL, action TEXT NOT NULL, entity_kind TEXT NOT NULL, entity_id TEXT NOT NULL) STRICT"
        )
        db.execute("CREATE INDEX audit_by_entity ON audit (entity_kind, entity_id)")
    db.execute("BEGIN")
    for i in range(N):
        entity = "%032x" % i
        stamp = "%016x-0002" % i
        db.execute(
            "INSERT INTO contacts (id, name, company, title, lifecycle, updated_hlc, state) "
            "VALUES (?, ?, 'Co', 'T', 'active', ?, ?)",
            (entity, "Name %06x" % ((i * 7919) % N), stamp, BLOB),
        )
        if layout == "keyed":
            db.execute(
                "INSERT INTO audit VALUES ('contact', ?, ?, ?, 'u', 'd', 'import')", (entity, i + 1, stamp)
            )
        elif layout == "rowid":
            db.execute(
                "INSERT INTO audit (at_hlc, user, device, action, entity_kind, entity_id) "
                "VALUES (?, 'u', 'd', 'import', 'contact', ?)",
                (stamp, entity),
            )
    db.execute("UPDATE store_meta SET value = ? WHERE key = 'audit_seq'", (str(N),))
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db


def apply_titles(db, layout, order):
    """N title changes, PER_TRANSACTION per transaction, in `order`; changes/s."""
    start_time = time.perf_counter()
    for start in range(0, N, PER_TRANSACTION):
        batch = sorted(order[start : start + PER_TRANSACTION])
        db.execute("BEGIN")
        if layout == "keyed":
            (last,) = db.execute(
                "UPDATE store_meta SET value = CAST(value AS INTEGER) + ? WHERE key = 'audit_seq' RETURNING value",
                (len(batch),),
            ).fetchone()
            seq = int(last) - len(batch) + 1
        for i in batch:
            entity = "%032x" % i
            stamp = "%016x-0004" % (N + i)
            db.execute(
                "UPDATE contacts SET title = ?, address = NULL, updated_hlc = MAX(updated_hlc, ?), state = ? "
                "WHERE id = ?",
                ("Head %d" % i, stamp, BLOB, entity),
            )
            if layout == "keyed":
                db.execute(
                    "INSERT INTO audit VALUES ('contact', ?, ?, ?, '(server)', 'd', 'pull')", (entity, seq, stamp)
                )
                seq += 1
            elif layout == "rowid":
                db.execute(
                    "INSERT INTO audit (at_hlc, user, device, action, entity_kind, entity_id) "
                    "VALUES (?, '(server)', 'd', 'pull', 'contact', ?)",
                    (stamp, entity),
                )
        db.execute("UPDATE store_meta SET value = ? WHERE key = 'hlc_last'", ("y",))
        db.execute("COMMIT")
    return N / (time.perf_counter() - start_time)


if __name__ == "__main__":
    path = os.path.join(tempfile.mkdtemp(prefix="audit-layouts-"), "floor.sqlite")
    scattered = list(range(N))
    random.Random(7).shuffle(scattered)
    for name, order in (("id order", list(range(N))), ("scattered", scattered)):
        for _ in range(2):
            for layout in ("rowid", "keyed", "none"):
                db = create(path, layout)
                rate = apply_titles(db, layout, order)
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                size = os.path.getsize(path) // N
                db.close()
                print("%-9s %-5s %7.0f changes/s  %4d B per contact" % (name, layout, rate, size), flush=True)
