"""Runs the binaries, curl and the server, and records what ran: the commands and options that
exited 0, and every route's answers with their HTTP version."""

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

from .help_tree import resolve
from .report import ReadinessError, shorten

ROOT = Path(__file__).resolve().parent.parent.parent
CONFIG = ROOT / "deploy" / "sync-server.json"


def clean_env(extra=None):
    """No KRALIKI_* from the caller's shell, English messages, the docs' time zone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRALIKI_", "LC_", "LANG"))}
    return {**env, "LANG": "C", "TZ": "Europe/Prague", **(extra or {})}


class Result:
    def __init__(self, code, stdout, stderr):
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def json(self):
        try:
            return json.loads(self.stdout)
        except ValueError:
            raise ReadinessError(f"expected JSON, got {self}") from None

    def __str__(self):
        return f"exit {self.code}: {shorten(self.stdout + ' ' + self.stderr)}"


def stop(process, sig=signal.SIGTERM, timeout=60):
    """Stops a child with `sig` (SIGTERM: as systemd does); its exit code, None when it had to be killed."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return None
    return process.returncode


class Runner:
    def __init__(self, report, tmp, bins, roots):
        self.report, self.tmp, self.bins, self.roots = report, tmp, bins, roots
        self.env = {}  # KRALIKI_* for every run: the certificate, key and secrets paths, the public URL
        self.data = tmp / "data"  # the server's data directory
        self.ran = set()  # (binary, command path, option or None) that exited 0
        self.scripts_ran = set()  # deploy/ scripts that exited 0
        self.answers = []  # (METHOD, route template, status, HTTP version, body)
        self.runs, self.server, self.cert = 0, None, tmp / "tls" / "fullchain.pem"
        with socket.socket() as s:  # chosen here: the public URL in enrolment strings names it
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]

    def record(self, binary, arguments):
        """Counts a command line that exited 0 as run, with each option it used."""
        invocation = resolve(binary, self.roots[binary], [str(a) for a in arguments])
        if invocation.error is None and not invocation.help:
            self.ran |= {(binary, invocation.path, option) for option in [None, *invocation.options]}

    def run(self, binary, *arguments, expect=0, env=None):
        """Runs one of our binaries; an exit code other than `expect` (None: any) stops the scenario."""
        args = [str(a) for a in arguments]
        self.runs += 1
        self.report.log("$ " + shlex.join([binary, *args]))
        try:
            done = subprocess.run([self.bins[binary], *args], capture_output=True, text=True, timeout=90,
                                  env=clean_env({**self.env, **(env or {})}), cwd=self.tmp)
            result = Result(done.returncode, done.stdout, done.stderr)
        except subprocess.TimeoutExpired:
            result = Result(-1, "", "timed out after 90 s")
        self.report.log(str(result))
        if result.code == 0:  # a refusal alone does not show that a command works
            self.record(binary, args)
        if expect is not None and result.code != expect:
            raise ReadinessError(f"`{shlex.join([binary, *args])}` expected exit {expect}, got {result}")
        return result

    def cli(self, replica, *arguments, **kwargs):
        return self.run("replica-cli", *arguments, "--data", self.tmp / replica, **kwargs)

    def server_cmd(self, *arguments, **kwargs):
        """`sync-server …` with the production config and this run's data directory."""
        return self.run("sync-server", *arguments, "--config", CONFIG, "--data", self.data, **kwargs)

    def curl(self, method, template, path=None, token=None, body=None, extra=()):
        """One request over HTTP/2 trusting the server's certificate as a CA; returns (status, body)."""
        url, out = f"https://127.0.0.1:{self.port}{path or template}", self.tmp / "curl-body"
        command = ["curl", "-sS", "--http2", "--cacert", str(self.cert), "-X", method, "-o", str(out),
                   "-w", "%{http_code} %{http_version}", "--max-time", "30", *extra]
        command += ["-H", f"Authorization: Bearer {token}"] if token else []
        command += ["-H", "Content-Type: application/json", "--data-binary", body] if body is not None else []
        status, _, version = subprocess.run(command + [url], capture_output=True, text=True).stdout.partition(" ")
        text = out.read_text(encoding="utf-8", errors="replace") if out.exists() else ""
        out.unlink(missing_ok=True)
        status = int(status) if status.isdigit() else 0
        self.answers.append((method, template, status, version, text))
        shown = shorten(text, 200) if "\0" not in text else f"({len(text)} characters, binary)"
        self.report.log(f"curl -X {method} {url} → {status} HTTP/{version} {shown}")
        return status, text

    def spawn(self, arguments, log, env):
        """Starts `sync-server ARGUMENTS` in its own session (a Ctrl-C here must not reach it before
        the cleanup stops it); returns the process and the port it printed it listens on."""
        self.report.log("$ sync-server " + shlex.join(map(str, arguments)))
        offset = log.stat().st_size if log.exists() else 0
        with open(log, "a") as out:
            process = subprocess.Popen([self.bins["sync-server"], *map(str, arguments)], stdout=out, stderr=out,
                                       env=env, cwd=self.tmp, start_new_session=True)
        deadline, text = time.monotonic() + 60, ""
        while time.monotonic() < deadline and process.poll() is None:
            with open(log, "rb") as f:
                text = f.read()[offset:].decode(errors="replace")
            if found := re.search(r"listening on https?://127\.0\.0\.1:(\d+)", text):
                self.record("sync-server", arguments)
                return process, int(found.group(1))
            time.sleep(0.05)
        stop(process)
        raise ReadinessError(f"sync-server {arguments[0]} did not listen (exit {process.returncode}): "
                             f"{shorten(text, 600)}")

    def start_server(self):
        """`sync-server serve` from the production config, as sync-server.service runs it, with only
        the data directory, address and port changed."""
        self.server, _ = self.spawn(["serve", "--config", CONFIG, "--data", self.data, "--host", "127.0.0.1",
                                     "--port", self.port, "--production"], self.tmp / "server.log", clean_env(self.env))

    def stop_server(self):
        process, self.server = self.server, None
        return stop(process) if process else None
