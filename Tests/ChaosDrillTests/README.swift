// ChaosDrillTests: issue #7 (see docs/reliability.md).
