#!/usr/bin/env python3
"""What SQLite alone needs to apply 100,000 pulled field changes to the replica's schema.

A companion to store-bench's "schema floor" line (issue #4's apply goal, >= 100,000 changes/s):
the rows the store writes per pulled change, split up, each variant on a fresh copy of the same
100,000-contact file (the schema/ migrations, the rows a synced replica holds), synchronous=FULL,
WAL, a 64 MiB page cache, one transaction per 500 changes (unless a line says otherwise; the store pulls 500,
and joins batches that arrive while it writes, up to 5,000 changes). Python's sqlite3
calls the C library directly; its own cost per statement is measured and printed, so the SQLite
share is (seconds - statements x overhead). The last lines are bounds, not the store: every change
in one transaction (no pull is that large), and another schema (the entity's state a column of
its contact row, no audit row per pulled entity), to show what a leaner design could reach.

    python3 Benchmarks/experiments/apply-floor.py            # from the repository root; ~1 min
"""
import glob
import os
import shutil
import sqlite3
import sys
import tempfile
import time

N = 100_000
BLOB = bytes(i * 31 % 256 for i in range(142))  # the size of a contact's encoded state
BASE_STAMP = 10**6


def connect(path):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA cache_size=-65536")
    return db


def build(path, ids):
    db = connect(path)
    for migration in sorted(glob.glob("schema/*.sql")):
        db.executescript(open(migration).read())
    db.execute("BEGIN")
    db.executemany("INSERT INTO entity_state (kind, id, state) VALUES ('contact', ?, ?)", ((i, BLOB) for i in ids))
    db.executemany(
        "INSERT INTO contacts (id, name, company, title, owner, status, address, lifecycle, updated_hlc, has_conflict) "
        "VALUES (?, ?, ?, 'Sales lead', NULL, NULL, NULL, 'active', ?, 0)",
        ((ids[n], f"Contact {n} Nováková", f"Acme {n % 500} s.r.o.", "%016x-0000000000000002" % n) for n in range(N)))
    db.executemany("INSERT INTO contact_phones (contact_id, phone) VALUES (?, ?)",
                   ((ids[n], "+4206%d" % (10_000_000 + n)) for n in range(N)))
    db.executemany("INSERT INTO audit (at_hlc, user, device, action, entity_kind, entity_id) "
                   "VALUES (?, 'jana', '0000000000000002', 'pull', 'contact', ?)",
                   (("%016x-0000000000000002" % n, ids[n]) for n in range(N)))
    db.execute("INSERT INTO store_meta VALUES ('hlc_last', 'x')")
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


UPSERT_STATE = ("INSERT INTO entity_state (kind, id, state) VALUES ('contact', ?, ?) "
                "ON CONFLICT (kind, id) DO UPDATE SET state = excluded.state")
UPSERT_CONTACT = """INSERT INTO contacts (id, name, company, title, owner, status, address, lifecycle, updated_hlc, has_conflict)
VALUES (?, ?, ?, ?, NULL, NULL, NULL, 'active', ?, 0)
ON CONFLICT (id) DO UPDATE SET name = excluded.name, company = excluded.company, title = excluded.title,
owner = excluded.owner, status = excluded.status, address = excluded.address, lifecycle = excluded.lifecycle,
updated_hlc = MAX(updated_hlc, excluded.updated_hlc), has_conflict = excluded.has_conflict"""
RENAME = "UPDATE contacts SET name = ?, updated_hlc = MAX(updated_hlc, ?) WHERE id = ?"
RETITLE = "UPDATE contacts SET title = ?, updated_hlc = MAX(updated_hlc, ?) WHERE id = ?"
RETITLE_WITH_STATE = "UPDATE contacts SET title = ?, state = ?, updated_hlc = MAX(updated_hlc, ?) WHERE id = ?"
RENAME_WITH_STATE = "UPDATE contacts SET name = ?, state = ?, updated_hlc = MAX(updated_hlc, ?) WHERE id = ?"
UPDATE_STATE = "UPDATE entity_state SET state = ? WHERE kind = 'contact' AND id = ?"
AUDIT = ("INSERT INTO audit (at_hlc, user, device, action, entity_kind, entity_id) "
         "VALUES (?, 'petr', '0000000000000004', 'pull', 'contact', ?)")


def variants(ids):
    blob = BLOB[:-1] + b"x"
    stamp = lambda n: "%016x-0000000000000004" % (BASE_STAMP + n)
    name = lambda n: "Renamed %06x" % (n * 7919 % N)  # a new place in the name index
    full = lambda db, n: (db.execute(UPSERT_STATE, (ids[n], blob)),
                          db.execute(UPSERT_CONTACT, (ids[n], name(n), "Acme s.r.o.", "Sales lead", stamp(n))),
                          db.execute(AUDIT, (stamp(n), ids[n])))
    retitle = lambda db, n: (db.execute(UPSERT_STATE, (ids[n], blob)),
                             db.execute(RETITLE, ("Head of %d" % n, stamp(n), ids[n])),
                             db.execute(AUDIT, (stamp(n), ids[n])))
    return [
        ("rename, every row the store writes (state upsert, contact upsert, audit row)", 3, 500, full),
        ("the same, 2,000 changes per transaction", 3, 2000, full),
        ("the same, 5,000 changes per transaction (the most the sync engine joins)", 3, 5000, full),
        ("rename without the audit row", 2, 500,
         lambda db, n: (db.execute(UPSERT_STATE, (ids[n], blob)),
                        db.execute(UPSERT_CONTACT, (ids[n], name(n), "Acme s.r.o.", "Sales lead", stamp(n))))),
        ("the entity state alone", 1, 500, lambda db, n: db.execute(UPDATE_STATE, (blob, ids[n]))),
        ("the contact row alone, renamed (the listing index moves)", 1, 500,
         lambda db, n: db.execute(RENAME, (name(n), stamp(n), ids[n]))),
        ("the contact row alone, new title (no index moves)", 1, 500,
         lambda db, n: db.execute(RETITLE, ("Head of %d" % n, stamp(n), ids[n]))),
        ("the audit row alone", 1, 500, lambda db, n: db.execute(AUDIT, (stamp(n), ids[n]))),
        ("title change, every row the store writes", 3, 500, retitle),
        ("the same, 1,000 changes per transaction (the server's largest pull)", 3, 1000, retitle),
        ("the same, 5,000 changes per transaction (the most the sync engine joins)", 3, 5000, retitle),
        ("bound: a title change, every row, all 100,000 in one transaction", 3, N, retitle),
        ("bound: a rename, every row, all 100,000 in one transaction", 3, N, full),
        # A schema this store does not have: the entity's state as a column of its contact row
        # (one row written per change) and no audit row per pulled entity (no per-entity
        # history of pulls). What the leanest design could reach.
        ("bound, another schema: title and state in one contact row, no audit row, 500 per transaction", 1, 500,
         lambda db, n: db.execute(RETITLE_WITH_STATE, ("Head of %d" % n, blob, stamp(n), ids[n]))),
        ("bound, another schema: the same, renamed", 1, 500,
         lambda db, n: db.execute(RENAME_WITH_STATE, (name(n), blob, stamp(n), ids[n]))),
    ]


def main():
    if not os.path.isdir("schema"):
        sys.exit("run from the repository root (schema/ holds the migrations)")
    work = tempfile.mkdtemp(prefix="apply-floor-")
    try:
        ids = ["%032x" % (n * 0x9E3779B97F4A7C15 % 2**128) for n in range(N)]
        ids.sort()  # the server sends a batch's entities in ID order, as store-bench's pulls are
        base = os.path.join(work, "base.sqlite")
        build(base, ids)
        probe = sqlite3.connect(":memory:", isolation_level=None)
        started = time.perf_counter()
        for n in range(300_000):
            probe.execute("SELECT ?", (n,))
        overhead = (time.perf_counter() - started) / 300_000
        print(f"Python's cost per statement: {overhead * 1e6:.2f} µs (subtracted below)")
        for label, statements, per, apply in variants(ids):
            path = os.path.join(work, "copy.sqlite")
            for stale in glob.glob(path + "*"):
                os.remove(stale)
            shutil.copy(base, path)
            db = connect(path)
            if "another schema" in label:
                db.execute("ALTER TABLE contacts ADD COLUMN state BLOB")
                db.execute("UPDATE contacts SET state = (SELECT state FROM entity_state WHERE kind = 'contact' AND id = contacts.id)")
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.execute("SELECT count(*) FROM contacts").fetchone()
            started = time.perf_counter()
            for first in range(0, N, per):
                db.execute("BEGIN")
                for n in range(first, min(first + per, N)):
                    apply(db, n)
                db.execute("UPDATE store_meta SET value = 'y' WHERE key = 'hlc_last'")
                db.execute("COMMIT")
            seconds = time.perf_counter() - started - N * statements * overhead
            db.close()
            print(f"{label}: {seconds:.2f} s = {N / seconds:,.0f} changes/s")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
