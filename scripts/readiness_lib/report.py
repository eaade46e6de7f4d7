"""PASS/FAIL lines, the sections they fall into, and the score out of 100."""

# The parts of the check; the score weighs them equally.
SECTIONS = (
    "tools and binaries",
    "deployment and docs",
    "production start",
    "API routes",
    "metrics and alert rules",
    "documented commands",
)


class ReadinessError(Exception):
    """The check cannot go on (a prerequisite is missing, a command failed); a named failed check."""


def shorten(text, limit=300):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Report:
    def __init__(self, verbose):
        self.results = []  # (section, name, passed, detail)
        self.section = SECTIONS[0]
        self.verbose = verbose

    def check(self, name, passed, detail=""):
        passed = bool(passed)
        self.results.append((self.section, name, passed, detail))
        print(f"{'PASS' if passed else 'FAIL'}  {name}" + (f" — {detail}" if detail else ""), flush=True)
        return passed

    def log(self, text):
        if self.verbose:
            print(f"      {text}", flush=True)

    def rates(self):
        for section in SECTIONS:
            passed = [ok for sec, _, ok, _ in self.results if sec == section]
            yield section, sum(passed), len(passed)

    def score(self):
        """The mean pass rate of the SECTIONS; a section that never ran counts 0, so a run that
        stops early scores low instead of high on the few checks it made. 100 only when every
        check passed: rounding never turns a failure into 100."""
        rates = [passed / total if total else 0.0 for _, passed, total in self.rates()]
        if all(ok for _, _, ok, _ in self.results) and all(rates):
            return 100
        return min(99, int(100 * sum(rates) / len(SECTIONS)))

    def summary(self, figures):
        """Prints the failed checks, the figures, each section's count and the score; returns the exit code."""
        failed = [name for _, name, ok, _ in self.results if not ok]
        print(f"\nreadiness: {len(self.results) - len(failed)}/{len(self.results)} checks passed")
        for name in failed:
            print(f"  failed: {name}")
        print(f"readiness figures: {figures}")
        for section, passed, total in self.rates():
            print(f"  {section}: {passed}/{total}" + ("" if total else " (did not run)"))
        print(f"readiness score: {self.score()}/100")
        return 1 if failed else 0
