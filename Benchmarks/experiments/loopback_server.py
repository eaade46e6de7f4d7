"""A release `sync-server` on a free loopback port, for the experiment scripts beside this file.

    server = LoopbackServer(".build/release/sync-server", prefix="my-experiment-")
    link = server.enrol("jana", "admin")   # a one-time enrolment link for `replica-cli init`
    ...                                    # files of the experiment go under server.root
    server.close()                         # stops it and removes server.root
"""

import csv
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time


class LoopbackServer:
    def __init__(self, binary, prefix):
        self.binary = binary
        self.root = root = tempfile.mkdtemp(prefix=prefix)
        self.data = f"{root}/srv"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        # The server's log goes to a file: a pipe nobody reads fills up and stops the server.
        self.log_path = f"{root}/server.log"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [binary, "serve", "--data", self.data, "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while "listening on" not in open(self.log_path).read():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise SystemExit("the server did not start: " + open(self.log_path).read())
            time.sleep(0.1)

    def enrol(self, user, role):
        out = subprocess.run(
            [self.binary, "enroll", "--data", self.data, "--port", str(self.port), "--tenant", "acme",
             "--user", user, "--role", role, "--json"], check=True, capture_output=True, text=True).stdout
        return json.loads(out)["enrolment"]

    def close(self):
        self.process.terminate()
        self.process.wait()
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


def binaries_to_compare(parser, runs):
    """Adds the arguments the comparing scripts share (the replica-cli to measure, `--base`,
    `--server`, `--contacts`, `--runs`), parses them, and returns them with the binaries to run:
    [("base", path)] first when `--base` was given, then ("new", path)."""
    parser.add_argument("cli", help="the replica-cli to measure")
    parser.add_argument("--base", help="another replica-cli to measure beside it (the previous build)")
    parser.add_argument("--server", default=".build/release/sync-server")
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=runs)
    args = parser.parse_args()
    binaries = [("new", os.path.abspath(args.cli))]
    if args.base:
        binaries.insert(0, ("base", os.path.abspath(args.base)))
    return args, binaries


def write_contacts_csv(path, count):
    """`count` contacts for `replica-cli import csv`: names "Contact 000000 Nováková" …, 500
    companies, a phone and an e-mail each, every 7th tagged vip."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "company", "phone", "email", "tag"])
        for i in range(count):
            w.writerow([f"Contact {i:06d} Nováková", f"Firma {i % 500}", f"+4206{i:08d}",
                        f"c{i}@example.cz", "vip" if i % 7 == 0 else "lead"])
