// PowerLossVFS: an SQLite VFS shim that makes a SIGKILL behave like a power cut.
//
// Writes go through to the real file at once (so the process and its readers see them, as they
// would see the kernel's page cache), but before each write or truncate the shim appends the
// bytes it is about to overwrite to an undo log beside the file (`<file>.powerloss`). A
// successful xSync of the file empties its log: what was synced is durable. After the process
// is killed, `powerloss_revert` replays the undo logs backwards, which takes every file back to
// what a disk would hold after a power cut at that moment: the synced bytes and none (or, in the
// ordered mode, only a prefix) of the unsynced ones.
//
// Test code only: it is linked into `power-loss-server` and the recovery drills, never into
// `sync-server`.
#ifndef POWERLOSS_VFS_H
#define POWERLOSS_VFS_H

#include <stddef.h>

/// Registers the shim over SQLite's default ("unix") VFS and makes it the default, so every
/// connection this process opens afterwards (GRDB's too) goes through it. Returns an SQLite
/// result code (0 is SQLITE_OK). Call once, before opening any database.
int powerloss_register(void);

/// Makes every connection opened afterwards checkpoint its WAL every `pages` pages (SQLite's
/// default is 1000), so a short drill also cuts power in the middle of checkpoints, when pages
/// are written to the main database file. Returns an SQLite result code.
int powerloss_checkpoint_every(int pages);

/// Makes the shim refuse `PRAGMA synchronous = NORMAL` (and `= 1`) on every connection: it
/// answers the pragma itself (SQLITE_FCNTL_PRAGMA), so a connection set to FULL stays FULL.
/// This emulates, without touching the server's code, the fix for the bug the drill found
/// (GRDB's WAL setup runs after `prepareDatabase` and sets NORMAL over the server's FULL), so
/// the drill can show that with fsynced commits nothing acknowledged is lost.
void powerloss_keep_full_sync(void);

/// What a revert did.
typedef struct powerloss_revert_report {
    /// Undo logs found (one per file written since its last sync).
    int logs;
    /// Writes and truncates undone, and bytes restored by them.
    long long undone;
    long long undone_bytes;
    /// Unsynced writes kept (the ordered mode keeps a prefix of each file's writes).
    long long kept;
    /// Files created and never synced, removed (their directory entry was never durable).
    int removed_files;
} powerloss_revert_report;

/// Replays the undo logs in `directory` (not recursive) backwards and deletes them.
/// `keep_prefix_seed == 0`: every unsynced write is lost. Otherwise, for each file a prefix of
/// its unsynced writes, of a length drawn from the seed, survives (a disk that writes its
/// cache in order and loses the rest). Returns 0, or -1 with `errno` set and a message in
/// `error` (of `error_size` bytes).
int powerloss_revert(
    const char *directory, unsigned long long keep_prefix_seed, powerloss_revert_report *report, char *error,
    size_t error_size);

#endif
