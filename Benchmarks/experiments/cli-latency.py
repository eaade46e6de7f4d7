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
import csv
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    parser.add_argument("cli", help="the replica-cli to measure")
    parser.add_argument("--base", help="another replica-cli to measure beside it (the previous build)")
    parser.add_argument("--server", default=".build/release/sync-server")
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--only", help="measure only the commands whose names contain one of these (comma-separated)")
    args = parser.parse_args()
    binaries = [("new", os.path.abspath(args.cli))]
    if args.base:
        binaries.insert(0, ("base", os.path.abspath(args.base)))

    root = tempfile.mkdtemp(prefix="cli-latency-")
    port = free_port()
    server = subprocess.Popen(
        [args.server, "serve", "--data", f"{root}/srv", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in server.stdout:
            if "listening on" in line:
                break
        enrol = subprocess.run(
            [args.server, "enroll", "--data", f"{root}/srv", "--port", str(port), "--tenant", "acme",
             "--user", "jana", "--role", "admin", "--json"], check=True, capture_output=True, text=True)
        link = json.loads(enrol.stdout)["enrolment"]
        replica = f"{root}/replica"
        cli = binaries[-1][1]
        subprocess.run([cli, "init", "--data", replica, link], check=True, capture_output=True)

        with open(f"{root}/contacts.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["name", "company", "phone", "email", "tag"])
            for i in range(args.contacts):
                w.writerow([f"Contact {i:06d} Nováková", f"Firma {i % 500}", f"+4206{i:08d}",
                            f"c{i}@example.cz", "vip" if i % 7 == 0 else "lead"])
        start = time.perf_counter()
        subprocess.run([cli, "import", "csv", "--data", replica, f"{root}/contacts.csv"], check=True,
                       capture_output=True)
        print(f"import of {args.contacts} contacts through the CLI: {time.perf_counter() - start:.2f} s")

        def run_json(*command):
            out = subprocess.run([cli, "--data", replica, "--json", *command], check=True, capture_output=True,
                                 text=True).stdout
            return json.loads(out)

        contact = run_json("contact", "list", "--search", "Contact 050000")["contacts"][0]["id"]
        for n in range(5):
            run_json("note", "add", contact, "--text", f"call {n}")
        run_json("schedule", "add", "--title", "Call back", "--start", "2026-12-01T09:00:00Z",
                 "--end", "2026-12-01T09:30:00Z", "--assignee", "jana", "--contact", contact)
        database = f"{replica}/replica.sqlite"
        print(f"replica: {os.path.getsize(database) / 1e6:.1f} MB; contact {contact}")

        commands = [
            ("contact show", ["contact", "show", contact]),
            ("contact list --search", ["contact", "list", "--search", "Contact 05000"]),
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
                "SELECT id, name FROM contacts WHERE lifecycle = 'active' AND name LIKE '%contact 05000%' "
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
        server.terminate()
        server.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
