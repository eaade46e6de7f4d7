"""/metrics of the production server exports every series the shipped alert rules use, and the
metrics table of docs/api/README.md is the list it exports."""

import re
import time

from .deploy import ALERTS
from .runner import ROOT

KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}


def rule_series():
    """The series the alert rules' expressions read: identifiers not called as functions, outside
    strings, label matchers, ranges and grouping clauses."""
    text = ALERTS.read_text(encoding="utf-8")
    names = set()
    for expr in re.findall(r"^\s*expr:[ |>-]*(.*?)(?=^\s*[\w-]+:|\Z)", text, re.S | re.M):  # up to the next key
        expr = re.sub(r'#.*|"[^"]*"|\{[^}]*\}|\[[^\]]*\]', "", expr)
        expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
        names |= set(re.findall(r"\b([a-zA-Z_:][\w:]*)\b(?!\s*\()", expr)) - KEYWORDS
    return names


def alert_series_exported(report, text):
    """Every kraliki_* series the rules read is exported; their other series come from Prometheus
    (`up`) or node_exporter (`node_*`), not from an exporter nobody runs."""
    exported = set(re.findall(r"^([a-zA-Z_:][\w:]*)(?:\{| )", text, re.M))
    names = rule_series()
    ours = sorted(n for n in names if n.startswith("kraliki_"))
    unknown = sorted(n for n in names - set(ours) if n != "up" and not n.startswith("node_"))
    report.check("alert rules read kraliki_* series and none of an unknown exporter", len(ours) >= 5 and not unknown,
                 f"{len(ours)} kraliki_* series; unknown: {unknown or 'none'}")
    for name in ours:
        ok = name in exported or re.sub(r"_(bucket|sum|count)$", "", name) in exported
        report.check(f"/metrics exports {name}", ok, "exported" if ok else "missing from /metrics")


def reference_lists_exported(report, text):
    """The metrics table of docs/api/README.md names exactly the families /metrics exports."""
    families = set(re.findall(r"^# TYPE (kraliki_\w+) ", text, re.M))
    documented = set(re.findall(r"^\| `(kraliki_\w+)` \|", (ROOT / "docs/api/README.md").read_text(), re.M))
    report.check("docs/api/README.md lists exactly the metrics /metrics exports", families and families == documented,
                 f"{len(families)} metrics" if families == documented else
                 f"undocumented: {sorted(families - documented)}; not exported: {sorted(documented - families)}")


def collection_recorded(report, text):
    """A garbage collection ran (the server runs one at start; `sync-server gc` ran too) and is on
    record in kraliki_last_collection_timestamp_seconds."""
    stamp = re.search(r"^kraliki_last_collection_timestamp_seconds (\S+)", text, re.M)
    report.check("a garbage collection is recorded in /metrics", stamp and float(stamp.group(1)) > 0,
                 stamp.group(0) if stamp else "missing")


def check(runner, token):
    """The production config keeps /metrics behind the metrics token; then the checks above."""
    r = runner.report
    r.section = "metrics and alert rules"
    status, _ = runner.curl("GET", "/metrics")
    r.check("the production config keeps /metrics private (401 without the token)", status == 401, f"{status}")
    # Per-tenant gauges are computed every metricsRefreshSeconds (15 s in the production config).
    deadline = time.monotonic() + 40
    while "kraliki_conflicts_open{" not in (text := runner.curl("GET", "/metrics", token=token)[1]):
        if time.monotonic() > deadline:
            break
        time.sleep(1)
    alert_series_exported(r, text)
    reference_lists_exported(r, text)
    collection_recorded(r, text)
