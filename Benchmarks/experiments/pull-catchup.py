#!/usr/bin/env python3
"""A replica catching up after days offline: `replica-cli sync` pulling N changes over HTTP/2.

Starts a release `sync-server` on a free loopback port in a temporary directory and enrols two
replicas. Petr's replica syncs once while the server is empty (so it is no longer fresh and will
pull, not take a bootstrap image); then Jana imports N contacts (default 100,000) and pushes them.
Petr's replica, as it was before, is copied once per run and binary, and each copy runs
`replica-cli sync` against the same server: the time of that command (process start to exit,
the pulls over TLS + HTTP/2, the apply, the integrity check on open) is what is printed, with the
pulled batches and the transactions they were written in when the binary reports them.

    swift build -c release --product replica-cli --product sync-server
    python3 Benchmarks/experiments/pull-catchup.py [--contacts 100000] [--runs 5] \
        [--base OLD_REPLICA_CLI] .build/release/replica-cli

Binaries are run interleaved, so a busy moment of the machine hits all alike. The baseline in the
same run is the other binary (`--base`), and Jana's own push of the same contacts.
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("cli", help="the replica-cli to measure")
    parser.add_argument("--base", help="another replica-cli to measure beside it (the previous build)")
    parser.add_argument("--server", default=".build/release/sync-server")
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    binaries = [("new", os.path.abspath(args.cli))]
    if args.base:
        binaries.insert(0, ("base", os.path.abspath(args.base)))
    cli = binaries[-1][1]

    root = tempfile.mkdtemp(prefix="pull-catchup-")
    port = free_port()
    # The server's log goes to a file: a pipe nobody reads fills up and stops the server.
    log = open(f"{root}/server.log", "w")
    server = subprocess.Popen(
        [args.server, "serve", "--data", f"{root}/srv", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "listening on" not in open(f"{root}/server.log").read():
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not start: " + open(f"{root}/server.log").read())
            time.sleep(0.1)

        def enrol(user, role):
            out = subprocess.run(
                [args.server, "enroll", "--data", f"{root}/srv", "--port", str(port), "--tenant", "acme",
                 "--user", user, "--role", role, "--json"], check=True, capture_output=True, text=True).stdout
            return json.loads(out)["enrolment"]

        jana, petr = f"{root}/jana", f"{root}/petr"
        subprocess.run([cli, "init", "--data", jana, enrol("jana", "admin")], check=True, capture_output=True)
        subprocess.run([cli, "init", "--data", petr, enrol("petr", "admin")], check=True, capture_output=True)
        subprocess.run([cli, "--data", petr, "sync"], check=True, capture_output=True)

        with open(f"{root}/contacts.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["name", "company", "phone", "email", "tag"])
            for i in range(args.contacts):
                w.writerow([f"Contact {i:06d} Nováková", f"Firma {i % 500}", f"+4206{i:08d}",
                            f"c{i}@example.cz", "vip" if i % 7 == 0 else "lead"])
        subprocess.run([cli, "import", "csv", "--data", jana, f"{root}/contacts.csv"], check=True,
                       capture_output=True)
        start = time.perf_counter()
        subprocess.run([cli, "--data", jana, "sync"], check=True, capture_output=True)
        print(f"Jana's push of {args.contacts} contacts (replica-cli sync): {time.perf_counter() - start:.2f} s",
              flush=True)

        results = {}
        for run in range(args.runs):
            for label, binary in binaries:
                copy = f"{root}/petr-{label}-{run}"
                shutil.copytree(petr, copy)
                start = time.perf_counter()
                done = subprocess.run([binary, "--data", copy, "--json", "sync"], capture_output=True, text=True)
                seconds = time.perf_counter() - start
                if done.returncode != 0:
                    raise SystemExit(f"{label} sync failed: {done.stderr}")
                report = json.loads(done.stdout)
                results.setdefault(label, []).append((seconds, report))
                print(f"  {label} run {run + 1}: {seconds:.2f} s", flush=True)
                shutil.rmtree(copy)
        print(f"Petr's `replica-cli sync` pulling them, {args.runs} runs each, interleaved:")
        for label, samples in results.items():
            walls = sorted(s for s, _ in samples)
            report = samples[-1][1]
            pulled = report.get("pulled", report.get("pulledChanges"))
            median = statistics.median(walls)
            rate = f" = {pulled / median:,.0f} changes/s" if isinstance(pulled, int) and pulled else ""
            print(f"  {label:5} {median:6.2f} s ({walls[0]:.2f}-{walls[-1]:.2f}){rate}; last report: "
                  + json.dumps(report, sort_keys=True))
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
