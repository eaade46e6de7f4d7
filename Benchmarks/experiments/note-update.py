#!/usr/bin/env python3
"""What naming every column costs a pulled note edit: 100,000 note body edits, 500 per
transaction, synchronous=FULL, on the replica's schema, written by the store's old upsert (which
names contact_id and call_time, so SQLite rewrites the note's call_notes_by_contact_time entry even
though neither changed) and by its narrow UPDATE (RowWriter.SQL.noteUnlisted). Rows only, no CRDT.

    python3 Benchmarks/experiments/note-update.py     # from the repository root; ~15 s
"""
import glob, sqlite3, tempfile, time, random
N=100_000
def run(narrow):
    d=tempfile.mkdtemp(); db=sqlite3.connect(d+"/x.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=FULL"); db.execute("PRAGMA cache_size=-65536")
    for m in sorted(glob.glob("schema/*.sql")): db.executescript(open(m).read())
    rnd=random.Random(1)
    ids=["%032x"%n for n in range(N)]
    db.execute("BEGIN")
    db.executemany("INSERT INTO call_notes VALUES (?,?,?,?,?,?,?,?,?,?)",((i,"%032x"%rnd.randrange(20000),"jana",1764000000000+rnd.randrange(10**9),60,"in","answered","body","active","h") for i in ids))
    db.execute("COMMIT"); db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rows={r[0]:r[1:] for r in db.execute("SELECT id, contact_id, call_time FROM call_notes")}
    up="""INSERT INTO call_notes (id, contact_id, author, call_time, duration, direction, outcome, body, lifecycle, updated_hlc)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET contact_id = excluded.contact_id, author = excluded.author, call_time = excluded.call_time,
duration = excluded.duration, direction = excluded.direction, outcome = excluded.outcome, body = excluded.body, lifecycle = excluded.lifecycle, updated_hlc = MAX(updated_hlc, excluded.updated_hlc)"""
    nw="UPDATE call_notes SET author = ?, duration = ?, direction = ?, outcome = ?, body = ?, lifecycle = ?, updated_hlc = MAX(updated_hlc, ?) WHERE id = ?"
    t=time.perf_counter()
    for s in range(0,N,500):
        db.execute("BEGIN")
        for i in ids[s:s+500]:
            c,ct=rows[i]
            if narrow: db.execute(nw,("jana",60,"in","answered","edited body","active","h2",i))
            else: db.execute(up,(i,c,"jana",ct,60,"in","answered","edited body","active","h2"))
        db.execute("COMMIT")
    return time.perf_counter()-t
for r in range(2):
    print(f"upsert every column {run(False):.2f} s; narrow {run(True):.2f} s  (100,000 note body edits, 500 per txn, FULL)")
