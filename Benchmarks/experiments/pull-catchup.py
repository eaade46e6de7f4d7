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
import json
import os
import shutil
import statistics
import subprocess
import time

from loopback_server import LoopbackServer, binaries_to_compare, write_contacts_csv


def main():
    parser = argparse.ArgumentParser()
    args, binaries = binaries_to_compare(parser, runs=5)
    cli = binaries[-1][1]

    server = LoopbackServer(args.server, prefix="pull-catchup-")
    root = server.root
    try:
        jana, petr = f"{root}/jana", f"{root}/petr"
        subprocess.run([cli, "init", "--data", jana, server.enrol("jana", "admin")], check=True, capture_output=True)
        subprocess.run([cli, "init", "--data", petr, server.enrol("petr", "admin")], check=True, capture_output=True)
        subprocess.run([cli, "--data", petr, "sync"], check=True, capture_output=True)

        write_contacts_csv(f"{root}/contacts.csv", args.contacts)
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
        server.close()


if __name__ == "__main__":
    main()
