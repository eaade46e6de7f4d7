"""Every command the docs show: it must exist in the binaries' --help, and have been run here with
each documented option (or be listed in NOT_RUN with the reason)."""

import re
import shlex

from .help_tree import BINARIES, resolve
from .runner import ROOT

# Documented commands this check does not run, with the reason. Keys are (binary, command path,
# option or None for the command itself). Every entry is a place where the docs could drift from
# the code unnoticed; today there is none.
NOT_RUN = {
    # ("sync-server", ("serve",), "--h2c"): "why it cannot run here, and what runs it instead",
}

# Every other program that a shell code block (```sh) of the docs runs, grouped by how it is
# covered: run here or by CI, or why it cannot run there. A program in no group fails the check.
OTHER_PROGRAMS = {program: reason for reason, programs in {
    "run here: curl calls every route over HTTP/2 with --cacert; openssl req makes the certificate (its s_client "
    "checks of the TLS profile run in TLSProfileTests); sqlite3 checks the backup; bash runs the backup script; "
    "python3: the metrics token is read from the secrets file as the docs' one-liner does":
        ("curl", "openssl", "sqlite3", "bash", "python3"),
    "run by CI: .ci/run runs scripts/test, which runs the format and docs checks, swift test and readiness; "
    "release and benchmark builds are not run in CI (their figures are in docs/performance.md)":
        ("scripts/test", "scripts/check-docs", "scripts/check-format.sh", "scripts/readiness", "swift"),
    "benchmarks, profiling and the hour-long test tier: release builds, not CI (figures in docs/performance.md "
    "and docs/reliability.md)": ("scripts/bench-h2load.sh", "scripts/store-bench-pairs.sh",
                                 "scripts/store-bench-allocations.sh", "scripts/long-tier", "perf", "mkfifo", "ldd"),
    "acts on a production host, which CI must not: systemd, users, files in /etc, /usr/local and /var (the "
    "units' ExecStart= commands run here instead; the server's log is read from its output)":
        ("systemctl", "journalctl", "useradd", "runuser", "install", "editor", "chown", "chmod"),
    "the clean-clone recipe; CI itself starts from a clean clone": ("git",),
    "shell built-ins and utilities around the commands above":
        ("cd", "mktemp", "ls", "tail", "date", "mv", "cp", "rm", "grep", "while", "do", "done"),
}.items() for program in programs}
COMMAND_PREFIXES = {"sudo", "exec", "time", "run", "--", "nohup"}  # `swift run X`, `runuser -u U -- X`


def doc_files():
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "deploy").rglob("*.md"))]


def fenced_lines(text, wanted):
    """(line number, logical line) in fenced code blocks whose language `wanted` accepts;
    backslash continuations joined."""
    keep, pending, start = None, "", 0
    for number, line in enumerate(text.splitlines(), 1):
        fence = re.match(r"^\s*(```|~~~)\s*([\w+-]*)", line)
        if fence:
            keep = None if keep is not None else wanted(fence.group(2).lower())
            pending = ""
        elif keep:
            start = start if pending else number
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
            else:
                yield start, pending + line
                pending = ""


def code_lines(text):
    """Shell-like fenced lines, and code spans in the prose that start with one of our programs
    (a synopsis's optional parts in brackets count: `sync-server [serve] [--port P]`)."""
    yield from fenced_lines(text, lambda lang: lang not in ("swift", "json", "yaml", "yml", "python", "sql", "ini"))
    prose = re.sub(r"(?ms)^\s*(```|~~~).*?^\s*(```|~~~)[^\n]*$", lambda m: "\n" * m.group(0).count("\n"), text)
    for span in re.finditer(r"`([^`]+)`", prose):
        if re.match(r"^(swift run )?(sync-server|replica-cli)\s", span.group(1)):
            yield prose.count("\n", 0, span.start()) + 1, re.sub(r"[\[\]\s]+", " ", span.group(1))


def segments(line):
    """The simple commands of a shell line (split at ; & | && || and parentheses), as token lists."""
    try:
        lexer = shlex.shlex(re.sub(r"^\s*\$ ", "", line), posix=True, punctuation_chars=";&|()")
        lexer.whitespace_split, lexer.commenters = True, "#"
        tokens = list(lexer)
    except ValueError:
        tokens = line.split("#", 1)[0].split()
    result = [[]]
    for token in tokens:
        if token and all(c in ";&|()" for c in token):
            result.append([])
        else:
            result[-1].append(token)
    return [s for s in result if s]


def assignment(token):
    return re.match(r"^[A-Za-z_]\w*=", token)


def documented_invocations(roots):
    """(file:line, line, Invocation) of every `sync-server …` / `replica-cli …` in the docs."""
    found = []
    for file in doc_files():
        for number, line in code_lines(file.read_text(encoding="utf-8")):
            if not re.search(r"sync-server|replica-cli", line) or re.search(r"[─│►┌└▶]", line):
                continue  # not a command, or a box-and-arrow diagram naming the programs
            for segment in segments(line):
                for k, token in enumerate(segment):
                    before = segment[:k]
                    # Where a command goes: not an argument of another program (`journalctl -u sync-server`).
                    if token.rsplit("/", 1)[-1] in BINARIES and (
                            all(map(assignment, before)) or before[-1] in COMMAND_PREFIXES):
                        binary = token.rsplit("/", 1)[-1]
                        found.append((f"{file.relative_to(ROOT)}:{number}", line.strip(),
                                      resolve(binary, roots[binary], segment[k + 1:])))
                        break
    return found


def commands_exist(report, found):
    """Each documented command and option is in the binaries' --help (an unknown one names its file:line)."""
    files = sorted({where.split(":")[0] for where, _, _ in found})
    report.check("the docs show commands", len(found) >= 50, f"{len(found)} commands in {len(files)} files")
    for file in files:
        items = [(w, t, inv) for w, t, inv in found if w.split(":")[0] == file]
        bad = [f"{w}: {inv.error} in `{t[:100]}`" for w, t, inv in items if inv.error]
        report.check(f"commands in {file} exist", not bad, f"{len(items)} commands" if not bad else "; ".join(bad))


def commands_run(report, found, ran):
    """Each documented command, with each documented option, exited 0 here or is in NOT_RUN."""
    missing = {}
    for where, _, inv in found:
        if not (inv.error or inv.help or inv.placeholder):  # help pages are all read; placeholders name nothing
            for key in [(inv.binary, inv.path, option) for option in [None, *inv.options]]:
                if key not in ran and key not in NOT_RUN and key[2] not in ("--help", "-h"):
                    missing.setdefault(" ".join(filter(None, (inv.binary, *inv.path, key[2]))), where)
    report.check("every documented command and option is run by readiness (or listed in NOT_RUN)", not missing,
                 "all run" if not missing else "; ".join(f"{k} ({v})" for k, v in sorted(missing.items())))


def other_programs(report):
    """Every other program a shell block of the docs runs is in OTHER_PROGRAMS, with how it is covered."""
    unknown = {}
    for file in doc_files():
        shell = fenced_lines(file.read_text(encoding="utf-8"), lambda lang: lang in ("sh", "bash", "shell", "console"))
        for number, line in shell:
            for words in filter(None, ([t for t in s if not assignment(t)] for s in segments(line))):
                if words[0].rsplit("/", 1)[-1] not in BINARIES and words[0] not in OTHER_PROGRAMS:
                    unknown.setdefault(words[0], f"{file.relative_to(ROOT)}:{number}")
    report.check("every other program in the docs' shell blocks is run here or by CI, or listed with a reason",
                 not unknown, f"{len(OTHER_PROGRAMS)} listed in OTHER_PROGRAMS" if not unknown else
                 "not listed: " + "; ".join(f"{p} ({w})" for p, w in sorted(unknown.items())))


def every_command_run(report, roots, ran):
    """Every command of both binaries exited 0 here, documented or not."""
    not_run = [" ".join((b, *leaf.path)) for b, root in roots.items() for leaf in root.leaves()
               if (b, leaf.path, None) not in ran]
    report.check("every command of both binaries is run by readiness", not not_run,
                 "all run" if not not_run else ", ".join(not_run))


def check(runner):
    runner.report.section = "documented commands"
    if len(runner.roots) < len(BINARIES):
        runner.report.check("documented commands checked", False, "the binaries' --help was not read")
        return
    found = documented_invocations(runner.roots)
    commands_exist(runner.report, found)
    commands_run(runner.report, found, runner.ran)
    other_programs(runner.report)
    every_command_run(runner.report, runner.roots, runner.ran)
