"""The deployment as shipped in deploy/: the alert rules, the one production config and the docs
that explain it, the systemd units' commands, the backup script; and the docs tree."""

import json
import re
import shlex
import subprocess

from .help_tree import BINARIES, resolve
from .report import ReadinessError, shorten
from .runner import CONFIG, ROOT, clean_env

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
# The docs tree issue #8 asks for: each file, and what it must mention.
TOPICS = {
    "docs/api/openapi.yaml": [r"^openapi: 3", r"/v1/sync/push"],
    "docs/api/README.md": [r"## Routes", r"## Problem documents"],
    "docs/architecture/README.md": [r"(?i)module", r"(?i)(data flow|way through the system)"],
    "docs/architecture/sync-protocol.md": [r"(?i)push", r"(?i)pull", r"(?i)epoch"],
    "docs/architecture/conflicts.md": [r"(?i)delete", r"(?i)double", r"(?i)duplicate", r"(?i)orphan"],
    "docs/architecture/storage.md": [r"(?i)table", r"(?i)migration"],
    "docs/deployment/install.md": [r"(?i)systemd", r"(?i)certificate"],
    "docs/deployment/configuration.md": [r"(?i)production mode", r"sync-server backup"],
    "docs/deployment/upgrade.md": [r"(?i)upgrade"],
    "docs/deployment/disaster-recovery.md": [r"sync-server restore", r"--rejoin"],
    "docs/deployment/scaling.md": [r"(?i)postgres"],
    "docs/development/README.md": [r"(?im)^#+ .*build", r"swift build", r"(?im)^#+ .*test tiers", r"KRALIKI_LONG_FUZZ",
                                   r"(?im)^#+ .*benchmarks", r"(?im)^#+ .*formatting", r"(?im)^#+ .*field",
                                   r"(?im)^#+ .*migration", r"(?im)^#+ .*readiness", r"scripts/readiness"],
    "docs/security/threat-model.md": [r"(?i)lost laptop", r"(?i)stolen token", r"(?i)hostile client",
                                      r"(?i)cross-tenant", r"(?i)clock", r"(?i)encryption at rest",
                                      r"(?i)what the system guarantees, and what it does not"],
    "README.md": [r"(?im)^## Readiness", r"scripts/readiness"],
    **{f"docs/user-guides/{who}.md": [r"replica-cli"] for who in ("agents", "field-staff", "admins")},
    **{f"docs/user-guides/{who}.cs.md": [r"replica-cli", r"[ěščřžýáíé]"]
       for who in ("agents", "field-staff", "admins")},
}


def docs_tree(report):
    """Each file of TOPICS exists, mentions its topics, and says more than a stub (150 words)."""
    for rel, patterns in TOPICS.items():
        text = (ROOT / rel).read_text(encoding="utf-8") if (ROOT / rel).is_file() else ""
        missing = [p for p in patterns if not re.search(p, text)]
        report.check(f"docs tree: {rel}", not missing and len(text.split()) >= 150,
                     f"{len(text.split())} words" + (f"; does not match {missing}" if missing else ""))


def alert_rules(report):
    """`promtool check rules` accepts the shipped alert rules."""
    done = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True)
    report.check("promtool check rules deploy/prometheus/alerts.yml", done.returncode == 0,
                 shorten((done.stdout + done.stderr).strip().replace("\n", "; ")))


def single_config(report):
    """deploy/sync-server.json is the only server config in the repository: no second one to drift."""
    others = []
    for path in ROOT.rglob("*.json"):
        if {".git", ".build", "Benchmarks"} & set(path.relative_to(ROOT).parts) or path == CONFIG:
            continue
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(value, dict) and {"dataDirectory", "tlsCertificate"} & value.keys():
            others.append(str(path.relative_to(ROOT)))
    report.check("deploy/sync-server.json is the only server config", not others, f"also: {others}" if others else "")


def settings_documented(report):
    """The production config names every setting ServerConfig reads; configuration.md and install.md
    explain each of its keys; configuration.md lists every KRALIKI_* variable."""
    source = (ROOT / "Sources/SyncServer/Config/ServerConfig.swift").read_text(encoding="utf-8")
    known = set(re.findall(r"(?:\bvalue\(|forKey:\s*)\.(\w+)", source))

    def flatten(value, prefix=""):
        for key, inner in value.items():
            yield from flatten(inner, f"{prefix}{key}.") if isinstance(inner, dict) else [f"{prefix}{key}"]

    keys = sorted(flatten(json.loads(CONFIG.read_text(encoding="utf-8"))))
    missing = sorted(known - {part for key in keys for part in key.split(".")})
    report.check("deploy/sync-server.json names every setting ServerConfig reads", len(known) >= 10 and not missing,
                 f"{len(known)} settings" if not missing else f"not in the config: {missing}")
    variables = sorted(set(re.findall(r'"(KRALIKI_[A-Z_]+)"', source)))
    for rel, names in (("docs/deployment/configuration.md", keys + variables), ("docs/deployment/install.md", keys)):
        text = (ROOT / rel).read_text(encoding="utf-8")
        undocumented = [name for name in names if f"`{name}`" not in text]
        report.check(f"{rel} explains every key of the production config"
                     + (" and every KRALIKI_* variable" if names != keys else ""), variables and not undocumented,
                     f"{len(names)} names" if not undocumented else f"missing: {undocumented}")


def static_checks(report):
    report.section = "deployment and docs"
    alert_rules(report)
    docs_tree(report)
    single_config(report)
    settings_documented(report)


def backup_script(runner):
    """deploy/kraliki-sync-backup.sh (what kraliki-sync-backup.timer runs) takes one online backup
    of the serving store, configured by its documented variables; sqlite3 finds the copy consistent."""
    backups, script = runner.tmp / "backups", ROOT / "deploy" / "kraliki-sync-backup.sh"
    backups.mkdir(mode=0o700)
    env = clean_env({**runner.env, "SYNC_SERVER": runner.bins["sync-server"], "KRALIKI_CONFIG": str(CONFIG),
                     "BACKUP_DIR": str(backups), "KRALIKI_DATA": str(runner.data)})
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=120)
    taken = sorted(backups.glob("server-*.sqlite"))
    check = subprocess.run(["sqlite3", str(taken[-1]), "PRAGMA integrity_check;"], capture_output=True,
                           text=True).stdout.strip() if taken else "no backup"
    runner.report.section = "deployment and docs"
    if not runner.report.check("deploy/kraliki-sync-backup.sh takes a consistent online backup",
                               done.returncode == 0 and len(taken) == 1 and check == "ok",
                               f"integrity {check}: {shorten(done.stdout + done.stderr)}"):
        raise ReadinessError("no backup to restore")
    runner.scripts_ran.add(script.name)
    runner.record("sync-server", ["backup", "--config", CONFIG, "--out", taken[0]])  # what the script ran
    return taken[0]


def systemd_units(runner):
    """Every ExecStart= of the systemd units in deploy/ was run here: a sync-server command with each
    of its options, or a script of deploy/."""
    runner.report.section = "deployment and docs"
    for unit in sorted((ROOT / "deploy").glob("*.service")):
        for line in re.findall(r"^Exec\w*=[-@:+!]*(.*)$", unit.read_text(encoding="utf-8"), re.M):
            program, *arguments = shlex.split(line)
            program = program.rsplit("/", 1)[-1]
            if program in BINARIES and runner.roots:
                inv = resolve(program, runner.roots[program], arguments)
                missing = {" ".join(filter(None, (program, *inv.path, o))) for o in [None, *inv.options]
                           if (program, inv.path, o) not in runner.ran}
                ok, detail = not inv.error and not missing, inv.error or f"not run: {sorted(missing)}"
            else:
                ok, detail = program in runner.scripts_ran, f"{program} did not run here"
            runner.report.check(f"{unit.relative_to(ROOT)}: ExecStart={shorten(line, 90)}", ok,
                                "ran" if ok else detail)
