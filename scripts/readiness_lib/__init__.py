"""The parts of scripts/readiness; see that script's docstring and docs/development/README.md#readiness."""
