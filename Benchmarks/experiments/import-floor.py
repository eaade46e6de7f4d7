#!/usr/bin/env python3
"""The floor of a bulk import of 100,000 contacts under several schemas, raw SQLite only.

Issue #4 asks for a bulk import of 100,000 contacts in one transaction in <= 0.6 s. The store's
schema-floor line in store-bench measures SQLite writing exactly the store's rows; this script asks
the wider question: what does the *leanest* schema that still does what issue #4 section 1 asks
(contacts searchable by name, phone, e-mail and tag; CRDT metadata beside them; an outbox; an audit
trail) cost, next to the one-row baseline the goal was set against?

Every variant: WAL, synchronous=FULL, 64 MiB page cache, one transaction, rows bound through
executemany (SQLite's C loop; Python's per-row cost is measured and subtracted). The time includes
the commit (its share is printed too); the checkpoint after it is not timed. Each run does every
variant once, in turn, on a fresh file. Run from anywhere:

    python3 Benchmarks/experiments/import-floor.py [--runs 3] [--blob 450] [--dir DIR]
"""

import argparse
import os
import shutil
import sqlite3
import tempfile
import time

N = 100_000


def rows(blob_size):
    blob = bytes((i * 31) & 0xFF for i in range(blob_size))
    out = []
    for i in range(N):
        out.append(
            dict(
                id="%032x" % i,
                hlc="%016x-0000000000000002" % i,
                name="Contact %d Nováková" % i,
                company="Acme %d s.r.o." % (i % 500),
                title="Sales lead",
                phone="+4206%d" % (10_000_000 + i),
                email="c%d@example.cz" % i,
                tag="vip",
                blob=blob,
            )
        )
    return out


def connect(path):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA cache_size=-65536")
    return db


# Each variant: (name, schema SQL, [(insert SQL, row -> tuple, every)], option) — `every` = one
# row per that many contacts (outbox blobs and batched audit rows); option "index after" creates
# the name index after the rows, "no state" writes empty state blobs.
ONE_ROW = (
    "one-row baseline (what the goal was set against)",
    "CREATE TABLE contacts (id TEXT PRIMARY KEY, name TEXT NOT NULL, company TEXT, title TEXT, phone TEXT, email TEXT, tag TEXT);",
    [
        (
            "INSERT INTO contacts VALUES (?,?,?,?,?,?,?)",
            lambda r: (r["id"], r["name"], r["company"], r["title"], r["phone"], r["email"], r["tag"]),
            1,
        )
    ],
)

LEAN_CONTACTS = """
CREATE TABLE contacts (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, company TEXT, title TEXT, owner TEXT, status TEXT,
  lifecycle TEXT NOT NULL, updated_hlc TEXT NOT NULL, state BLOB NOT NULL) STRICT, WITHOUT ROWID;
CREATE TABLE contact_terms (term TEXT NOT NULL, contact_id TEXT NOT NULL, PRIMARY KEY (term, contact_id)) STRICT, WITHOUT ROWID;
CREATE TABLE outbox (local_seq INTEGER PRIMARY KEY, change BLOB NOT NULL, created_hlc TEXT NOT NULL) STRICT;
CREATE TABLE audit (seq INTEGER PRIMARY KEY, at_hlc TEXT NOT NULL, action TEXT NOT NULL, first_id TEXT, last_id TEXT, count INTEGER) STRICT;
"""


def lean_inserts(blob_in_row=True, terms=True, batched_audit=True):
    ins = []
    if blob_in_row:
        ins.append(
            (
                "INSERT INTO contacts VALUES (?,?,?,?,NULL,NULL,'active',?,?)",
                lambda r: (r["id"], r["name"], r["company"], r["title"], r["hlc"], r["blob"]),
                1,
            )
        )
    else:
        ins.append(
            (
                "INSERT INTO contacts VALUES (?,?,?,?,NULL,NULL,'active',?,x'')",
                lambda r: (r["id"], r["name"], r["company"], r["title"], r["hlc"]),
                1,
            )
        )
        ins.append(("INSERT INTO entity_state VALUES ('contact', ?, ?)", lambda r: (r["id"], r["blob"]), 1))
    if terms:
        for key in ("phone", "email", "tag"):
            ins.append(("INSERT INTO contact_terms VALUES (?, ?)", (lambda k: lambda r: ("%s:%s" % (k, r[k]), r["id"]))(key), 1))
    if batched_audit:
        ins.append(("INSERT INTO audit (at_hlc, action, first_id, last_id, count) VALUES (?, 'import', ?, ?, 100)", lambda r: (r["hlc"], r["id"], r["id"]), 100))
    else:
        ins.append(("INSERT INTO audit (at_hlc, action, first_id) VALUES (?, 'import', ?)", lambda r: (r["hlc"], r["id"]), 1))
    ins.append(("INSERT INTO outbox (change, created_hlc) VALUES (?, ?)", lambda r: (r["blob"] * 100, r["hlc"]), 100))
    return ins


NAME_INDEX = "CREATE INDEX contacts_by_name ON contacts (name COLLATE NOCASE, id);"
STATE_TABLE = "CREATE TABLE entity_state (kind TEXT NOT NULL, id TEXT NOT NULL, state BLOB NOT NULL, PRIMARY KEY (kind, id)) STRICT, WITHOUT ROWID;"

def store_schema():
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "schema")
    files = sorted(f for f in os.listdir(folder) if f.endswith(".sql"))
    return "".join(open(os.path.join(folder, f)).read() for f in files)


STORE_INSERTS = [
    ("INSERT INTO entity_state (kind, id, state) VALUES ('contact', ?, ?)", lambda r: (r["id"], r["blob"]), 1),
    (
        "INSERT INTO contacts (id, name, company, title, owner, status, address, lifecycle, updated_hlc, has_conflict) "
        "VALUES (?, ?, ?, ?, NULL, NULL, NULL, 'active', ?, 0)",
        lambda r: (r["id"], r["name"], r["company"], r["title"], r["hlc"]),
        1,
    ),
    ("INSERT INTO contact_phones (contact_id, phone) VALUES (?, ?)", lambda r: (r["id"], r["phone"]), 1),
    ("INSERT INTO contact_emails (contact_id, email) VALUES (?, ?)", lambda r: (r["id"], r["email"]), 1),
    ("INSERT INTO contact_tags (contact_id, tag) VALUES (?, ?)", lambda r: (r["id"], r["tag"]), 1),
    (
        "INSERT INTO audit (at_hlc, user, device, action, entity_kind, entity_id) "
        "VALUES (?, 'bench', '0000000000000002', 'import', 'contact', ?)",
        lambda r: (r["hlc"], r["id"]),
        1,
    ),
    ("INSERT INTO outbox (change, created_hlc) VALUES (?, ?)", lambda r: (r["blob"] * 100, r["hlc"]), 100),
]

VARIANTS = [
    ONE_ROW,
    ("the store's schema (schema/*.sql) and rows: store-bench's schema floor", store_schema(), STORE_INSERTS),
    ("leanest: state in the contact row, name index, one terms table, audit and outbox per 100", LEAN_CONTACTS + NAME_INDEX, lean_inserts()),
    ("  the same, name index built after the rows (in the transaction)", LEAN_CONTACTS, lean_inserts(), "index after"),
    ("  the same, no CRDT state at all (not a replica: a bound)", LEAN_CONTACTS + NAME_INDEX, lean_inserts(), "no state"),
    ("  the same, state in its own table (as the store)", LEAN_CONTACTS + NAME_INDEX + STATE_TABLE, lean_inserts(blob_in_row=False)),
    ("  the same, an audit row per contact", LEAN_CONTACTS + NAME_INDEX, lean_inserts(batched_audit=False)),
    ("contact row and name index only (no phone/e-mail/tag search: a bound)", LEAN_CONTACTS + NAME_INDEX, lean_inserts(terms=False)),
]


def run(variant, data, folder, python_cost):
    name, schema, inserts, option = (variant + (None,))[:4]
    path = os.path.join(folder, "floor.sqlite")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    db = connect(path)
    db.executescript(schema)
    after_index = option == "index after"
    if option == "no state":
        data = [dict(r, blob=b"") for r in data]
    statements = []
    for sql, bind, every in inserts:
        statements.append((sql, [bind(r) for i, r in enumerate(data) if i % every == every - 1]))
    bound = sum(len(params) for _, params in statements)
    start = time.perf_counter()
    db.execute("BEGIN")
    for sql, params in statements:
        db.executemany(sql, params)
    if after_index:
        db.execute(NAME_INDEX)
    commit_start = time.perf_counter()
    db.execute("COMMIT")
    end = time.perf_counter()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = os.path.getsize(path)
    db.close()
    total = end - start - bound * python_cost
    return name, total, end - commit_start, size / N


def python_cost_per_row(folder):
    """Python's own cost of one executemany row, measured on a statement that writes nothing."""
    db = sqlite3.connect(os.path.join(folder, "cost.sqlite"), isolation_level=None)
    db.execute("CREATE TABLE t (a, b)")
    params = [(i, "x" * 20) for i in range(N)]
    best = float("inf")
    for _ in range(3):
        db.execute("BEGIN")
        start = time.perf_counter()
        db.executemany("INSERT INTO t SELECT ?, ? WHERE 0", params)
        best = min(best, time.perf_counter() - start)
        db.execute("COMMIT")
    db.close()
    return best / N


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--blob", type=int, default=450, help="bytes of CRDT state per contact")
    parser.add_argument("--dir", default=None, help="directory for the files (default: a temporary one)")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="import-floor-", dir=args.dir)
    try:
        data = rows(args.blob)
        cost = python_cost_per_row(folder)
        print("python's cost per bound row: %.2f µs (subtracted)" % (cost * 1e6))
        results = {}
        for _ in range(args.runs):
            for variant in VARIANTS:
                name, total, commit, per = run(variant, data, folder, cost)
                results.setdefault(name, []).append((total, commit, per))
        base = min(t for t, _, _ in results[ONE_ROW[0]])
        for name, runs in results.items():
            totals = sorted(t for t, _, _ in runs)
            print(
                "%-92s %.3f–%.3f s (commit %.3f s)  %.2f× best one-row  %4.0f B/contact"
                % (name, totals[0], totals[-1], min(c for _, c, _ in runs), totals[0] / base, runs[0][2])
            )
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
