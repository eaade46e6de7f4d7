// The Replica module: the durable local SQLite store and the sync client (issue #4).
// Empty until then; it depends on Domain only.
import Domain
