#!/usr/bin/env python3
"""How long one `replica-cli` command takes on a large replica, and its peak memory.

Starts a release `sync-server` on a free loopback port in a temporary directory, enrols one
replica, imports N contacts (default 100,000) from a generated CSV with a few notes and schedule
entries, then runs each command below R times with every binary given (interleaved, so a busy
moment hits all alike) and prints the median and spread of the wall time and the peak RSS.

    swift build -c release --product replica-cli --product sync-server
    python3 Benchmarks/experiments/cli-latency.py [--contacts 100000] [--runs 7] \
        [--base OLD_REPLICA_CLI] [--only edit,status] .build/release/replica-cli

Baseline in the same run: `sqlite3` doing the command's own query on the same file (the floor
of any command that must open the file), and `PRAGMA quick_check` (what every open runs).
"""

import argparse
import json
import os
import statistics
import subprocess
import time

from loopback_server import LoopbackServer, binaries_to_compare, write_contacts_csv


def timed(argv, env=None):
    """Wall seconds and peak RSS (KiB) of one child process run to completion."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.execvpe(argv[0], argv, env or os.environ)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {status}")
    return seconds, usage.ru_maxrss


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", help="measure only the commands whose names contain one of these (comma-separated)")
    args, binaries = binaries_to_compare(parser, runs=7)

    server = LoopbackServer(args.server, prefix="cli-latency-")
    root = server.root
    try:
        link = server.enrol("jana", "admin")
        replica = f"{root}/replica"
        cli = binaries[-1][1]
        subprocess.run([cli, "init", "--data", replica, link], check=True, capture_output=True)

        write_contacts_csv(f"{root}/contacts.csv", args.contacts)
        start = time.perf_counter()
        subprocess.run([cli, "import", "csv", "--data", replica, f"{root}/contacts.csv"], check=True,
                       capture_output=True)
        print(f"import of {args.contacts} contacts through the CLI: {time.perf_counter() - start:.2f} s")

        def run_json(*command):
            out = subprocess.run([cli, "--data", replica, "--json", *command], check=True, capture_output=True,
                                 text=True).stdout
            return json.loads(out)

        # The contact in the middle (050000 of 100,000); the search below finds it and nine more.
        middle = f"Contact {args.contacts // 2:06d}"
        contact = run_json("contact", "list", "--search", middle)["contacts"][0]["id"]
        for n in range(5):
            run_json("note", "add", contact, "--text", f"call {n}")
        run_json("schedule", "add", "--title", "Call back", "--start", "2026-12-01T09:00:00Z",
                 "--end", "2026-12-01T09:30:00Z", "--assignee", "jana", "--contact", contact)
        database = f"{replica}/replica.sqlite"
        print(f"replica: {os.path.getsize(database) / 1e6:.1f} MB; contact {contact}")

        commands = [
            ("contact show", ["contact", "show", contact]),
            ("contact list --search", ["contact", "list", "--search", middle[:-1]]),
            ("contact list (all 100,000)", ["contact", "list"]),
            ("note list", ["note", "list", contact]),
            ("schedule list --day", ["schedule", "list", "--day", "2026-12-01"]),
            ("history", ["history", contact]),
            ("contact edit", ["contact", "edit", contact, "--title", "Boss"]),
            ("status", ["status"]),
        ]
        floors = [
            ("sqlite3: quick_check", ["sqlite3", database, "PRAGMA quick_check"]),
            ("sqlite3: the contact's row and state", [
                "sqlite3", database,
                f"SELECT * FROM contacts WHERE id = '{contact}'; "
                f"SELECT length(state) FROM entity_state WHERE kind = 'contact' AND id = '{contact}'"]),
            ("sqlite3: the search's scan, ASCII LIKE, no folding", [
                "sqlite3", database,
                f"SELECT id, name FROM contacts WHERE lifecycle = 'active' AND name LIKE '%{middle[:-1].lower()}%' "
                "ORDER BY name COLLATE NOCASE, id"]),
        ]
        if args.only:
            commands = [(n, a) for n, a in commands if any(part in n for part in args.only.split(","))]
        results = {}
        for _ in range(args.runs):
            for name, argv in floors:
                results.setdefault(("floor", name), []).append(timed(argv))
            for name, argv in commands:
                for label, binary in binaries:
                    results.setdefault((label, name), []).append(timed([binary, "--data", replica, *argv]))
        print(f"{args.runs} runs each, interleaved; wall median (min-max), peak RSS median")
        for (label, name), samples in results.items():
            walls = sorted(s for s, _ in samples)
            rss = statistics.median(r for _, r in samples) / 1024
            print(f"  {label:5} {name:40} {statistics.median(walls):6.3f} s ({walls[0]:.3f}-{walls[-1]:.3f})"
                  f"  {rss:6.0f} MB")
    finally:
        server.close()


if __name__ == "__main__":
    main()
