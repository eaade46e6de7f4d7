// The Domain module: contacts, call notes, schedules, validation, conflicts and the sans-IO
// sync protocol, built from the CRDT module. Issue #3 fills it; until then it only re-exports
// CRDT so the dependency direction (CRDT ← Domain) is fixed from the start.
@_exported import CRDT
