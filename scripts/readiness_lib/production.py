"""The server started from deploy/sync-server.json the way docs/deployment/install.md does it,
and the mistakes production mode must refuse to start with."""

import json
import os
import shutil
import stat
import subprocess

from .report import ReadinessError, shorten
from .runner import CONFIG, clean_env, stop


def make_certificate(runner):
    """A P-256 key (0600) and a self-signed certificate for 127.0.0.1, with install.md's `openssl req`."""
    key = runner.cert.parent / "key.pem"
    runner.cert.parent.mkdir(mode=0o700)
    done = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=serverAuth",
         "-keyout", str(key), "-out", str(runner.cert)], capture_output=True, text=True)
    if done.returncode != 0:
        raise ReadinessError(f"openssl req failed: {shorten(done.stderr)}")
    os.chmod(key, 0o600)
    runner.env = {"KRALIKI_TLS_CERT": str(runner.cert), "KRALIKI_TLS_KEY": str(key),
                  "KRALIKI_SECRETS_FILE": str(runner.tmp / "secrets.json"),
                  "KRALIKI_PUBLIC_URL": f"https://127.0.0.1:{runner.port}",
                  # A bootstrap image every second for a tenant with a change (defaults: 5,000 changes,
                  # 60 s), so that GET /v1/sync/image has one to answer.
                  "KRALIKI_IMAGE_MIN_CHANGES": "1", "KRALIKI_IMAGE_INTERVAL_SECONDS": "1"}
    return key


def refusals_and_secrets(runner, key):
    """Production mode refuses a missing secrets file, a placeholder secret, a key others can read
    and cleartext HTTP/2, naming each setting; `secrets generate` writes the secrets 0600 and
    replaces them only with --force. Returns the metrics token."""
    r, secrets, readable = runner.report, runner.tmp / "secrets.json", key.with_name("key-readable.pem")
    serve = ["serve", "--config", CONFIG, "--data", runner.data, "--host", "127.0.0.1", "--port", runner.port,
             "--production"]
    refused = runner.run("sync-server", *serve, expect=None)
    r.check("production mode refuses a missing secrets file, naming the setting",
            refused.code != 0 and "secretsFile" in refused.stderr, str(refused))
    secrets.write_text('{"metricsToken": "change-me"}\n')
    os.chmod(secrets, 0o600)
    shutil.copyfile(key, readable)
    os.chmod(readable, 0o644)
    refused = runner.run("sync-server", *serve, expect=None, env={"KRALIKI_TLS_KEY": str(readable)})
    r.check("production mode refuses a placeholder secret and a readable key, naming both settings",
            refused.code != 0 and "secretsFile" in refused.stderr and "tlsKey" in refused.stderr, str(refused))
    refused = runner.run("sync-server", *serve, "--h2c", expect=None)
    r.check("production mode refuses cleartext HTTP/2 (--h2c)",
            refused.code != 0 and "cleartextHTTP2" in refused.stderr, str(refused))
    secrets.unlink()
    runner.server_cmd("secrets", "generate")
    mode, old = stat.S_IMODE(secrets.stat().st_mode), secrets.read_text()
    again = runner.server_cmd("secrets", "generate", expect=None)
    runner.server_cmd("secrets", "generate", "--force")
    r.check("secrets generate writes the file 0600, refuses to replace it, replaces it with --force",
            mode == 0o600 and again.code != 0 and secrets.read_text() != old, f"mode {oct(mode)}; again: {again}")
    return json.loads(secrets.read_text())["metricsToken"]


def cleartext_development_server(runner):
    """`serve --h2c` without the production config serves cleartext HTTP/2 on loopback."""
    process, port = runner.spawn(["serve", "--data", runner.tmp / "h2c", "--host", "127.0.0.1", "--port", "0",
                                  "--h2c"], runner.tmp / "h2c.log", clean_env())
    done = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-w", " %{http_code} %{http_version}",
                           f"http://127.0.0.1:{port}/healthz"], capture_output=True, text=True, timeout=60)
    stop(process)
    runner.report.check("sync-server serve --h2c serves cleartext HTTP/2 on loopback", done.stdout.endswith(" 200 2"),
                        shorten(done.stdout + done.stderr))


def start(runner):
    """All of the above, then the production server itself; returns the metrics token."""
    runner.report.section = "production start"
    token = refusals_and_secrets(runner, make_certificate(runner))
    cleartext_development_server(runner)
    runner.start_server()
    runner.report.check("sync-server starts from deploy/sync-server.json in production mode", True,
                        f"listening on https://127.0.0.1:{runner.port}")
    return token
