// ChaosDrillTests: issue #7 drills 1–3 (see docs/reliability.md).
