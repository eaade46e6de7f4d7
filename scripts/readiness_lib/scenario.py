"""Runs every documented `replica-cli` and `sync-server` command with the options the docs show,
against the production server. Each must exit 0, nothing more: what the commands do is checked by
the Swift tests (CLITests, ConflictTests, RepairTests, RecoveryDrillTests, MainJobTests, …)."""

import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import time

from .report import ReadinessError
from .runner import clean_env, stop

# One command a line: `WHO COMMAND…` runs `replica-cli COMMAND… --data <tmp>/WHO`, and `server
# COMMAND…` runs `sync-server COMMAND… --config deploy/sync-server.json --data <data>`.
# `-> NAME` keeps the command's --json output; `{NAME.key}` (or `{NAME.0.key}` in a list) uses it.
# A conflict is named by a part of its ID that only it holds, as `conflicts resolve` accepts.
RECORDS = r"""
server enroll --tenant acme --user jana --role admin --json -> jana
jana init {jana.enrolment} --json -> jana_id
server enroll --tenant acme --user petr --role field --json -> petr
petr init --server {petr.server} --code {petr.code} --fingerprint {petr.fingerprint} --json -> petr_id
jana admin enroll --user eva --role agent --json -> eva
eva init --server {jana.server} --code {eva.code} --ca {cert} --json -> eva_id
petr status --lang cs
petr status --json
jana contact add --name "Jana Nováková" --phone "601 234 567" --email jana@example.cz --company "Acme s.r.o." \
    --title CFO --tag vip --field source=fair --owner jana --json -> c
jana contact edit {c.id} --company "ACME a.s." --status active --add-phone "+421 905 123 456" \
    --add-email j.novakova@example.cz --remove-tag vip --field source=
jana contact show {c.id}
jana contact list --search novakova --tag vip --owner jana
jana note add {c.id} --text "Wants a visit" --outcome callback-requested --direction in --duration 120 \
    --at 2026-03-02T08:15:00+01:00 --tag visit --json -> note
jana note edit {note.id} --text "Wants a visit on Monday"
jana note list {c.id}
jana note delete {note.id}
jana schedule add --title "Visit Jana" --start 2026-03-02T09:00:00+01:00 --end 2026-03-02T10:00:00+01:00 \
    --kind appointment --assignee petr --contact {c.id} --location Brno --json -> visit
jana schedule move {visit.id} --start 2026-03-02T13:00+01:00 --end 2026-03-02T14:00+01:00
jana schedule done {visit.id}
jana schedule add --title Fair --start 2026-03-03T09:00+01:00 --end 2026-03-03T17:00+01:00 --json -> fair
jana schedule cancel {fair.id}
jana schedule list --day 2026-03-02 --assignee petr
jana schedule list --week 2026-03-04
jana contact delete {c.id}
jana contact restore {c.id}
jana history {c.id}
jana export vcard --out {tmp}/contacts.vcf
jana import csv {tmp}/leads.csv --dry-run --map "Customer no=field.customer-no" --map Fax=ignore
petr sync --json
"""

# Offline work on two replicas that makes every kind of conflict, each resolved with one of the
# documented options of `conflicts resolve`.
CONFLICTS = r"""
jana contact add --name "Hana Černá" --json -> hana
jana contact add --name "Tomáš Král" --json -> restored
jana contact add --name "Věra Horáková" --json -> holder
jana sync
petr sync
jana contact edit {hana.id} --company Acme --title "Head of sales"
petr contact edit {hana.id} --company "Acme Brno" --title Sales
jana contact delete {restored.id}
petr contact edit {restored.id} --title Director
jana contact delete {holder.id}
petr note add {holder.id} --text "Call back" --json -> orphan
jana contact add --name "Eva Dvořáková" --phone "604 000 002" --json -> twin
petr contact add --name "Eva Dvorakova" --phone +420604000002
jana schedule add --title A --start 2026-03-05T09:00+01:00 --end 2026-03-05T10:00+01:00 --assignee petr --json -> moved
petr schedule add --title B --start 2026-03-05T09:30+01:00 --end 2026-03-05T10:30+01:00 --assignee petr
jana schedule add --title C --start 2026-03-06T09:00+01:00 --end 2026-03-06T10:00+01:00 --assignee petr --json -> cancel
petr schedule add --title D --start 2026-03-06T09:30+01:00 --end 2026-03-06T10:30+01:00 --assignee petr
jana schedule add --title E --start 2026-03-09T09:00+01:00 --end 2026-03-09T10:00+01:00 --assignee petr --json -> accept
petr schedule add --title F --start 2026-03-09T09:30+01:00 --end 2026-03-09T10:30+01:00 --assignee petr
jana sync
petr sync
jana sync
jana conflicts list
jana conflicts show {hana.id}/company
jana conflicts resolve {hana.id}/company --pick 1
jana conflicts resolve {hana.id}/title --value "Sales director"
jana conflicts resolve delete-vs-edit/contact/{restored.id} --restore
jana conflicts resolve {orphan.id} --reattach {hana.id}
jana conflicts resolve {twin.id} --merge-into {twin.id}
jana conflicts resolve {moved.id} --move-to 2026-03-05T13:00+01:00 2026-03-05T14:00+01:00
jana conflicts resolve {cancel.id} --cancel --entry {cancel.id}
jana conflicts resolve {accept.id} --accept
jana admin conflicts
"""

# The operator's commands while the server serves (the new code is the only pending one); an
# admin revoking a device; a replica with a change the server refused, for `refused` (see refused()).
OPERATOR = r"""
server enroll --tenant acme --user spare --role agent
server enrolments list --tenant acme --json -> codes
server enrolments revoke --tenant acme {codes.0.id}
server gc
jana admin devices
jana admin revoke {eva_id.replica}
server enroll --tenant acme --user rita --role field --json -> rita
rita init {rita.enrolment}
rita contact add --name Rita
"""
REFUSED = r"""
petr refused list --from {tmp}/rita
petr refused reissue --from {tmp}/rita --dry-run --lang en
"""

# The backup was taken before anyone enrolled: restoring it loses every replica, and they rejoin
# with a rejoin code from the server's CLI and one from an admin's replica.
REJOIN = r"""
server enroll --tenant acme --user jana --role admin --rejoin {jana_id.replica} --json -> code
jana init --rejoin {code.enrolment}
jana admin enroll --user petr --role field --rejoin {petr_id.replica} --json -> code
petr init --rejoin {code.enrolment}
"""


def run_script(runner, script, kept):
    """Runs each line of a script above; `kept` holds the values of `-> NAME`."""

    def value(match):
        found = kept
        for part in match.group(1).split("."):
            found = found[int(part)] if isinstance(found, list) else found[part]
        return str(found)

    for line in script.replace("\\\n", " ").strip().splitlines():
        words, _, name = line.partition(" -> ")
        who, *arguments = [re.sub(r"\{([\w.]+)\}", value, w) for w in shlex.split(words)]
        result = runner.server_cmd(*arguments) if who == "server" else runner.cli(who, *arguments)
        if name:
            kept[name.strip()] = result.json()


def watch(runner):
    """`sync --watch` stays connected until Ctrl-C, then exits 0."""
    arguments = ["sync", "--watch", "--data", str(runner.tmp / "petr")]
    process = subprocess.Popen([runner.bins["replica-cli"], *arguments], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=clean_env(runner.env), cwd=runner.tmp)
    time.sleep(1.5)
    if process.poll() is None and stop(process, signal.SIGINT, timeout=30) == 0:
        runner.record("replica-cli", arguments)


def repair(runner):
    """A copy of a synced replica with a damaged index page is refused (exit 3); `repair` rebuilds it."""
    shutil.copytree(runner.tmp / "petr", runner.tmp / "damaged")
    path = runner.tmp / "damaged" / "replica.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'contacts_listing'").fetchone()[0]
    size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    with open(path, "r+b") as f:
        f.seek((page - 1) * size)
        f.write(b"\xa5" * size)
    runner.cli("damaged", "status", expect=3)
    runner.cli("damaged", "repair")


def refused(runner, kept):
    """REFUSED on rita's change, marked refused in her outbox the way the sync client records a
    refusal: the server refuses only changes stamped far ahead of its clock, which a correct clock
    cannot make here (the real refusal runs in RecoveryDrillTests/RefusedReissueDrillTests)."""
    db = sqlite3.connect(runner.tmp / "rita" / "replica.sqlite")
    with db:
        db.execute("UPDATE outbox SET rejected_code = 'clock-drift-exceeded', rejected_reason = "
                   "'marked by scripts/readiness' WHERE rejected_code IS NULL")
    db.close()
    run_script(runner, REFUSED, kept)


def replica_commands(runner):
    """Every documented command but restore and rejoin; returns the values kept for REJOIN."""
    (runner.tmp / "leads.csv").write_text("name,phone,Customer no,Fax\nEva Malá,602 111 333,C-1,2\n")
    kept = {"tmp": str(runner.tmp), "cert": str(runner.cert)}
    for script in (RECORDS, CONFLICTS, OPERATOR):
        run_script(runner, script, kept)
    watch(runner)
    repair(runner)
    refused(runner, kept)
    return kept


def restore_and_rejoin(runner, backup, kept):
    """`sync-server restore` of the backup with the server stopped, then REJOIN."""
    code = runner.stop_server()
    if code != 0:
        raise ReadinessError(f"sync-server did not stop cleanly on SIGTERM before the restore: exit {code}")
    runner.server_cmd("restore", "--from", backup)
    runner.start_server()
    run_script(runner, REJOIN, kept)
