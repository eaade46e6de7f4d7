"""Every route of the API answers 2xx over HTTP/2 to curl at least once, and none answers 501 or
"not implemented". What each route answers to every caller and to bad input is owned by
AuthorizationMatrixTests, BadInputTests and the hostile-input drills."""

import json
import re
import time

from .report import ReadinessError
from .runner import ROOT


def route_table():
    """(METHOD, /path/{id}) of every route in docs/api/openapi.yaml, which the Swift test
    OpenAPITests keeps equal to the router's own list (`Router.routes`)."""
    spec = (ROOT / "docs/api/openapi.yaml").read_text(encoding="utf-8")
    return {(method.upper(), block.group(1))
            for block in re.finditer(r"^  (/\S*):\n((?:    .*\n|\s*\n)*)", spec, re.M)
            for method in re.findall(r"^    (get|post|put|delete|patch):", block.group(2), re.M)}


def answer(runner, method, template, expect, path=None, **kwargs):
    """A call that must succeed for the next ones; returns its JSON (or its text)."""
    status, text = runner.curl(method, template, path=path, **kwargs)
    if status != expect:
        raise ReadinessError(f"{method} {path or template} answered {status}, expected {expect}: {text[:200]}")
    try:
        return json.loads(text)
    except ValueError:
        return text


def call_every_route(runner, metrics_token):
    """One successful call of each route, as an admin (`ops`) and an agent device (`kiosk`)."""
    runner.report.section = "API routes"
    code = runner.server_cmd("enroll", "--tenant", "acme", "--user", "ops", "--role", "admin", "--json").json()["code"]
    ops = answer(runner, "POST", "/v1/enroll", 201, body=json.dumps({"code": code}))["token"]
    for route in ("/healthz", "/readyz"):
        answer(runner, "GET", route, 200)
    answer(runner, "GET", "/metrics", 200, token=metrics_token)
    answer(runner, "GET", "/v1/device", 200, token=ops)
    made = answer(runner, "POST", "/v1/admin/enrolments", 201, token=ops, body='{"user": "kiosk", "role": "agent"}')
    kiosk = answer(runner, "POST", "/v1/enroll", 201, body=json.dumps({"code": made["code"]}))
    token = kiosk["token"]
    push = {"protocolVersion": 1, "replica": kiosk["deviceId"],
            "changes": [{"localSequence": 1, "change": {"contacts": [], "notes": [], "schedule": []}}]}
    answer(runner, "POST", "/v1/sync/push", 200, token=token, body=json.dumps(push))
    answer(runner, "POST", "/v1/sync/pull", 200, token=token,
           body='{"protocolVersion": 1, "cursor": 0, "maxChanges": 100, "maxBytes": 1048576}')
    runner.curl("GET", "/v1/sync/live", token=token, extra=["-N", "--max-time", "2"])  # open until curl ends it
    deadline = time.monotonic() + 30  # the image service writes one within seconds of a change
    while runner.curl("GET", "/v1/sync/image", token=token)[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    answer(runner, "POST", "/v1/admin/enrolments", 201, token=ops, body='{"user": "spare-api", "role": "agent"}')
    pending = answer(runner, "GET", "/v1/admin/enrolments", 200, token=ops)["codes"]
    spare = next(c["id"] for c in pending if c["user"] == "spare-api")
    answer(runner, "POST", "/v1/admin/enrolments/{id}/revoke", 200, token=ops,
           path=f"/v1/admin/enrolments/{spare}/revoke")
    for route in ("/v1/admin/users", "/v1/admin/devices", "/v1/admin/conflicts"):
        answer(runner, "GET", route, 200, token=ops)
    answer(runner, "POST", "/v1/admin/devices/{id}/revoke", 200, token=ops,
           path=f"/v1/admin/devices/{kiosk['deviceId']}/revoke")
    audit_records(runner.report, answer(runner, "GET", "/v1/admin/audit", 200, token=ops))


def audit_records(report, audit):
    """The admin audit log records what the calls above did: a code issued, a device enrolled, a
    device revoked."""
    actions = {entry.get("action") for entry in audit.get("entries", [])}
    report.check("the audit log records enrolment codes, enrolments and revocations",
                 {"enrolment-code", "enrol", "revoke"} <= actions, f"actions: {sorted(actions)}")


def coverage(runner):
    """Each route of the table answered 2xx over HTTP/2; no answer at all was 501 or "not implemented"."""
    r = runner.report
    r.section = "API routes"
    table = route_table()
    r.check("openapi.yaml lists the server's routes", len(table) >= 10, f"{len(table)} routes")
    for method, template in sorted(table):
        got = [(s, v) for m, t, s, v, _ in runner.answers if (m, t) == (method, template)]
        ok = any(200 <= s < 300 and v == "2" for s, v in got)
        r.check(f"route {method} {template} answers 2xx over HTTP/2", ok,
                ", ".join(f"{s} over HTTP/{v}" for s, v in got[:6]) or "never called")
    bad = [f"{m} {t} → {s}" for m, t, s, _, body in runner.answers
           if s == 501 or re.search(r"(?i)not[ -]implemented", body)]
    r.check('no route answers 501 or "not implemented"', not bad, f"{len(runner.answers)} answers" if not bad else
            "; ".join(bad))
