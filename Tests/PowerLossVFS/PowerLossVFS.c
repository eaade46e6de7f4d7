// PowerLossVFS: see include/PowerLossVFS.h for what it models and why.
//
// Undo log format (native byte order; written and read on the same machine), one record per
// write or truncate, appended BEFORE the operation reaches the file:
//   'C'                                   the file was created by this process (unlink on revert)
//   'W' u64 offset, u64 size_before, u32 n, n bytes
//                                         a write at offset; the n bytes it overwrote (the part
//                                         inside the old size); the file's size before it
//   'T' u64 new_size, u64 size_before, u64 n, n bytes
//                                         a truncate; the n bytes it cut off
// A record appended but not followed by its write (the kill came in between) reverts to bytes
// that are still there: harmless.
#define _GNU_SOURCE
#include "PowerLossVFS.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char undo_suffix[] = ".powerloss";

// MARK: - Undo logs, one per path, shared by every handle of that path in this process

typedef struct undo_log {
    char *path;  // the database file's path
    int fd;      // the undo log, O_APPEND
    struct undo_log *next;
} undo_log;

static pthread_mutex_t logs_lock = PTHREAD_MUTEX_INITIALIZER;
static undo_log *logs;

// The log for `path`, created (empty) the first time this process opens the path. Logs are
// never closed: a file closed with unsynced writes still loses them in a power cut.
static undo_log *log_for(const char *path) {
    pthread_mutex_lock(&logs_lock);
    undo_log *log = logs;
    while (log && strcmp(log->path, path) != 0) log = log->next;
    if (!log) {
        char *name = malloc(strlen(path) + sizeof undo_suffix);
        if (name) {
            strcpy(name, path);
            strcat(name, undo_suffix);
            int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
            free(name);
            log = fd >= 0 ? calloc(1, sizeof *log) : NULL;
            if (log) {
                log->path = strdup(path);
                log->fd = fd;
                log->next = logs;
                logs = log;
            } else if (fd >= 0) {
                close(fd);
            }
        }
    }
    pthread_mutex_unlock(&logs_lock);
    return log;
}

static int append_all(int fd, const void *bytes, size_t count) {
    const char *cursor = bytes;
    while (count > 0) {
        ssize_t written = write(fd, cursor, count);
        if (written < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        cursor += written;
        count -= (size_t)written;
    }
    return 0;
}

// MARK: - The file shim

typedef struct shim_file {
    sqlite3_file base;
    undo_log *log;       // NULL for files not tracked (temporary files without a name)
    sqlite3_file *real;  // the unix VFS's file, allocated right after this struct
} shim_file;

static sqlite3_vfs *real_vfs;
static sqlite3_vfs shim_vfs;
static sqlite3_io_methods shim_methods;

static sqlite3_file *real_of(sqlite3_file *file) { return ((shim_file *)file)->real; }

static int shim_close(sqlite3_file *file) {
    sqlite3_file *real = real_of(file);
    int rc = real->pMethods ? real->pMethods->xClose(real) : SQLITE_OK;
    return rc;
}

static int shim_read(sqlite3_file *file, void *buffer, int amount, sqlite3_int64 offset) {
    sqlite3_file *real = real_of(file);
    return real->pMethods->xRead(real, buffer, amount, offset);
}

static int shim_write(sqlite3_file *file, const void *buffer, int amount, sqlite3_int64 offset) {
    shim_file *shim = (shim_file *)file;
    sqlite3_file *real = shim->real;
    if (!shim->log) return real->pMethods->xWrite(real, buffer, amount, offset);
    // One lock around "record, then write", so the log's order is the files' order.
    pthread_mutex_lock(&logs_lock);
    sqlite3_int64 size = 0;
    int rc = real->pMethods->xFileSize(real, &size);
    if (rc == SQLITE_OK) {
        uint64_t start = (uint64_t)offset, before = (uint64_t)size;
        uint32_t overwritten = 0;
        if (start < before) {
            uint64_t end = start + (uint64_t)amount;
            overwritten = (uint32_t)((end < before ? end : before) - start);
        }
        size_t record_size = 1 + 8 + 8 + 4 + overwritten;
        unsigned char *record = malloc(record_size);
        if (!record) {
            rc = SQLITE_IOERR_NOMEM;
        } else {
            record[0] = 'W';
            memcpy(record + 1, &start, 8);
            memcpy(record + 9, &before, 8);
            memcpy(record + 17, &overwritten, 4);
            if (overwritten > 0) rc = real->pMethods->xRead(real, record + 21, (int)overwritten, offset);
            if (rc == SQLITE_OK && append_all(shim->log->fd, record, record_size) != 0) rc = SQLITE_IOERR_WRITE;
            free(record);
        }
    }
    if (rc == SQLITE_OK) rc = real->pMethods->xWrite(real, buffer, amount, offset);
    pthread_mutex_unlock(&logs_lock);
    return rc;
}

static int shim_truncate(sqlite3_file *file, sqlite3_int64 new_size) {
    shim_file *shim = (shim_file *)file;
    sqlite3_file *real = shim->real;
    if (!shim->log) return real->pMethods->xTruncate(real, new_size);
    pthread_mutex_lock(&logs_lock);
    sqlite3_int64 size = 0;
    int rc = real->pMethods->xFileSize(real, &size);
    if (rc == SQLITE_OK && size > new_size) {
        uint64_t after = (uint64_t)new_size, before = (uint64_t)size, cut = before - after;
        size_t record_size = 1 + 8 + 8 + 8 + (size_t)cut;
        unsigned char *record = malloc(record_size);
        if (!record) {
            rc = SQLITE_IOERR_NOMEM;
        } else {
            record[0] = 'T';
            memcpy(record + 1, &after, 8);
            memcpy(record + 9, &before, 8);
            memcpy(record + 17, &cut, 8);
            rc = real->pMethods->xRead(real, record + 25, (int)cut, new_size);
            if (rc == SQLITE_OK && append_all(shim->log->fd, record, record_size) != 0) rc = SQLITE_IOERR_WRITE;
            free(record);
        }
    }
    if (rc == SQLITE_OK) rc = real->pMethods->xTruncate(real, new_size);
    pthread_mutex_unlock(&logs_lock);
    return rc;
}

static int shim_sync(sqlite3_file *file, int flags) {
    shim_file *shim = (shim_file *)file;
    int rc = shim->real->pMethods->xSync(shim->real, flags);
    // Durable now: nothing of this file is left to lose. (A kill between the fsync and this
    // truncate reverts writes that did reach the disk; they belong to a commit whose xSync had
    // not returned, so nobody was told it was durable.)
    if (rc == SQLITE_OK && shim->log) {
        pthread_mutex_lock(&logs_lock);
        if (ftruncate(shim->log->fd, 0) != 0) rc = SQLITE_IOERR_FSYNC;
        pthread_mutex_unlock(&logs_lock);
    }
    return rc;
}

static int shim_file_size(sqlite3_file *file, sqlite3_int64 *size) {
    return real_of(file)->pMethods->xFileSize(real_of(file), size);
}
static int shim_lock(sqlite3_file *file, int level) { return real_of(file)->pMethods->xLock(real_of(file), level); }
static int shim_unlock(sqlite3_file *file, int level) {
    return real_of(file)->pMethods->xUnlock(real_of(file), level);
}
static int shim_check_reserved_lock(sqlite3_file *file, int *out) {
    return real_of(file)->pMethods->xCheckReservedLock(real_of(file), out);
}
static volatile int keep_full_sync;

void powerloss_keep_full_sync(void) { keep_full_sync = 1; }

static int shim_file_control(sqlite3_file *file, int op, void *argument) {
    if (op == SQLITE_FCNTL_PRAGMA && keep_full_sync) {
        // argument: [error message out, pragma name, value or NULL]
        char **pragma = argument;
        if (pragma[1] && pragma[2] && sqlite3_stricmp(pragma[1], "synchronous") == 0
            && (sqlite3_stricmp(pragma[2], "normal") == 0 || strcmp(pragma[2], "1") == 0)) {
            return SQLITE_OK;  // handled: the level stays what it was
        }
    }
    return real_of(file)->pMethods->xFileControl(real_of(file), op, argument);
}
static int shim_sector_size(sqlite3_file *file) { return real_of(file)->pMethods->xSectorSize(real_of(file)); }
static int shim_device_characteristics(sqlite3_file *file) {
    return real_of(file)->pMethods->xDeviceCharacteristics(real_of(file));
}
// The -shm file is passed through untouched: SQLite rebuilds the WAL index when the first
// connection after a crash opens the database, whatever the file holds.
static int shim_shm_map(sqlite3_file *file, int page, int page_size, int extend, void volatile **out) {
    return real_of(file)->pMethods->xShmMap(real_of(file), page, page_size, extend, out);
}
static int shim_shm_lock(sqlite3_file *file, int offset, int count, int flags) {
    return real_of(file)->pMethods->xShmLock(real_of(file), offset, count, flags);
}
static void shim_shm_barrier(sqlite3_file *file) { real_of(file)->pMethods->xShmBarrier(real_of(file)); }
static int shim_shm_unmap(sqlite3_file *file, int delete_flag) {
    return real_of(file)->pMethods->xShmUnmap(real_of(file), delete_flag);
}

static sqlite3_io_methods shim_methods = {
    // Version 2: no xFetch/xUnfetch, so SQLite never writes through a memory map the shim
    // cannot see.
    .iVersion = 2,
    .xClose = shim_close,
    .xRead = shim_read,
    .xWrite = shim_write,
    .xTruncate = shim_truncate,
    .xSync = shim_sync,
    .xFileSize = shim_file_size,
    .xLock = shim_lock,
    .xUnlock = shim_unlock,
    .xCheckReservedLock = shim_check_reserved_lock,
    .xFileControl = shim_file_control,
    .xSectorSize = shim_sector_size,
    .xDeviceCharacteristics = shim_device_characteristics,
    .xShmMap = shim_shm_map,
    .xShmLock = shim_shm_lock,
    .xShmBarrier = shim_shm_barrier,
    .xShmUnmap = shim_shm_unmap,
};

static int shim_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags, int *out_flags) {
    (void)vfs;
    shim_file *shim = (shim_file *)file;
    memset(shim, 0, sizeof *shim);
    shim->real = (sqlite3_file *)(shim + 1);
    int tracked = name != NULL && (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL));
    int created = tracked && (flags & SQLITE_OPEN_CREATE) && access(name, F_OK) != 0;
    int rc = real_vfs->xOpen(real_vfs, name, shim->real, flags, out_flags);
    if (rc != SQLITE_OK) return rc;
    if (tracked) {
        shim->log = log_for(name);
        if (!shim->log) {
            shim->real->pMethods->xClose(shim->real);
            return SQLITE_CANTOPEN;
        }
        // A new file's directory entry is durable only once something syncs; the unix VFS
        // fsyncs the directory at the first sync of a new WAL or journal (the model is
        // generous for a new main database file, whose directory SQLite does not sync).
        if (created) {
            pthread_mutex_lock(&logs_lock);
            int failed = append_all(shim->log->fd, "C", 1);
            pthread_mutex_unlock(&logs_lock);
            if (failed) {
                shim->real->pMethods->xClose(shim->real);
                return SQLITE_IOERR_WRITE;
            }
        }
    }
    shim->base.pMethods = &shim_methods;
    return SQLITE_OK;
}

static int shim_delete(sqlite3_vfs *vfs, const char *name, int sync_directory) {
    (void)vfs;
    int rc = real_vfs->xDelete(real_vfs, name, sync_directory);
    // An unlink is taken as durable at once (not modelled: a power cut that brings a deleted
    // WAL back). Its log has nothing left to undo.
    if (rc == SQLITE_OK) {
        pthread_mutex_lock(&logs_lock);
        for (undo_log *log = logs; log; log = log->next) {
            if (strcmp(log->path, name) == 0 && ftruncate(log->fd, 0) != 0) rc = SQLITE_IOERR_DELETE;
        }
        pthread_mutex_unlock(&logs_lock);
    }
    return rc;
}

static int shim_access(sqlite3_vfs *vfs, const char *name, int flags, int *out) {
    (void)vfs;
    return real_vfs->xAccess(real_vfs, name, flags, out);
}
static int shim_full_pathname(sqlite3_vfs *vfs, const char *name, int size, char *out) {
    (void)vfs;
    return real_vfs->xFullPathname(real_vfs, name, size, out);
}
static void *shim_dl_open(sqlite3_vfs *vfs, const char *name) {
    (void)vfs;
    return real_vfs->xDlOpen(real_vfs, name);
}
static void shim_dl_error(sqlite3_vfs *vfs, int size, char *out) {
    (void)vfs;
    real_vfs->xDlError(real_vfs, size, out);
}
static void (*shim_dl_sym(sqlite3_vfs *vfs, void *handle, const char *symbol))(void) {
    (void)vfs;
    return real_vfs->xDlSym(real_vfs, handle, symbol);
}
static void shim_dl_close(sqlite3_vfs *vfs, void *handle) {
    (void)vfs;
    real_vfs->xDlClose(real_vfs, handle);
}
static int shim_randomness(sqlite3_vfs *vfs, int size, char *out) {
    (void)vfs;
    return real_vfs->xRandomness(real_vfs, size, out);
}
static int shim_sleep(sqlite3_vfs *vfs, int microseconds) {
    (void)vfs;
    return real_vfs->xSleep(real_vfs, microseconds);
}
static int shim_current_time(sqlite3_vfs *vfs, double *out) {
    (void)vfs;
    return real_vfs->xCurrentTime(real_vfs, out);
}
static int shim_get_last_error(sqlite3_vfs *vfs, int size, char *out) {
    (void)vfs;
    return real_vfs->xGetLastError ? real_vfs->xGetLastError(real_vfs, size, out) : 0;
}
static int shim_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out) {
    (void)vfs;
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

int powerloss_register(void) {
    int rc = sqlite3_initialize();
    if (rc != SQLITE_OK) return rc;
    real_vfs = sqlite3_vfs_find("unix");
    if (!real_vfs) return SQLITE_ERROR;
    shim_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(shim_file) + real_vfs->szOsFile,
        .mxPathname = real_vfs->mxPathname,
        .zName = "powerloss",
        .xOpen = shim_open,
        .xDelete = shim_delete,
        .xAccess = shim_access,
        .xFullPathname = shim_full_pathname,
        .xDlOpen = shim_dl_open,
        .xDlError = shim_dl_error,
        .xDlSym = shim_dl_sym,
        .xDlClose = shim_dl_close,
        .xRandomness = shim_randomness,
        .xSleep = shim_sleep,
        .xCurrentTime = shim_current_time,
        .xGetLastError = shim_get_last_error,
        .xCurrentTimeInt64 = shim_current_time_int64,
    };
    return sqlite3_vfs_register(&shim_vfs, 1);
}

static int checkpoint_pages = 1000;

static int set_autocheckpoint(sqlite3 *db, const char **error, const void *api) {
    (void)error;
    (void)api;
    return sqlite3_wal_autocheckpoint(db, checkpoint_pages);
}

int powerloss_checkpoint_every(int pages) {
    checkpoint_pages = pages;
    return sqlite3_auto_extension((void (*)(void))set_autocheckpoint);
}

// MARK: - Revert (run by the test after the kill, in another process)

typedef struct record {
    char kind;
    uint64_t offset_or_new_size, size_before, count;
    const unsigned char *bytes;
} record;

static uint64_t split_mix(uint64_t *state) {
    *state += 0x9E3779B97F4A7C15ull;
    uint64_t z = *state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int fail(char *error, size_t error_size, const char *what, const char *path) {
    int saved = errno;
    snprintf(error, error_size, "%s %s: %s", what, path, strerror(saved));
    errno = saved;
    return -1;
}

static int read_file(const char *path, unsigned char **bytes, size_t *size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat status;
    if (fstat(fd, &status) != 0) {
        close(fd);
        return -1;
    }
    *size = (size_t)status.st_size;
    *bytes = malloc(*size ? *size : 1);
    size_t done = 0;
    while (*bytes && done < *size) {
        ssize_t got = read(fd, *bytes + done, *size - done);
        if (got <= 0) break;
        done += (size_t)got;
    }
    close(fd);
    if (!*bytes || done != *size) {
        free(*bytes);
        errno = EIO;
        return -1;
    }
    return 0;
}

static int parse(const unsigned char *bytes, size_t size, record **out, size_t *count) {
    size_t capacity = 16, used = 0, at = 0;
    record *records = malloc(capacity * sizeof *records);
    while (records && at < size) {
        if (used == capacity) {
            capacity *= 2;
            record *grown = realloc(records, capacity * sizeof *records);
            if (!grown) break;
            records = grown;
        }
        record r = {.kind = (char)bytes[at]};
        if (r.kind == 'C') {
            at += 1;
        } else if (r.kind == 'W' && size - at >= 21) {
            uint32_t n;
            memcpy(&r.offset_or_new_size, bytes + at + 1, 8);
            memcpy(&r.size_before, bytes + at + 9, 8);
            memcpy(&n, bytes + at + 17, 4);
            r.count = n;
            r.bytes = bytes + at + 21;
            at += 21;
        } else if (r.kind == 'T' && size - at >= 25) {
            memcpy(&r.offset_or_new_size, bytes + at + 1, 8);
            memcpy(&r.size_before, bytes + at + 9, 8);
            memcpy(&r.count, bytes + at + 17, 8);
            r.bytes = bytes + at + 25;
            at += 25;
        } else {
            break;  // a record cut short by the kill: its operation never started
        }
        if (size - at < r.count) break;
        at += (size_t)r.count;
        records[used++] = r;
    }
    if (!records) return -1;
    *out = records;
    *count = used;
    return 0;
}

static int pwrite_all(int fd, const unsigned char *bytes, size_t count, off_t offset) {
    while (count > 0) {
        ssize_t written = pwrite(fd, bytes, count, offset);
        if (written < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        bytes += written;
        count -= (size_t)written;
        offset += written;
    }
    return 0;
}

static int revert_file(
    const char *target, const record *records, size_t count, uint64_t *random, powerloss_revert_report *report,
    char *error, size_t error_size) {
    // The ordered mode: the disk wrote this file's first `keep` operations and lost the rest.
    size_t keep = random ? (size_t)(split_mix(random) % (count + 1)) : 0;
    report->kept += (long long)keep;
    if (keep == count) return 0;
    int fd = open(target, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return 0;  // deleted since: nothing left to undo
        return fail(error, error_size, "cannot open", target);
    }
    for (size_t index = count; index > keep; index--) {
        const record *r = &records[index - 1];
        report->undone += 1;
        if (r->kind == 'C') {
            close(fd);
            fd = -1;
            if (unlink(target) != 0 && errno != ENOENT) return fail(error, error_size, "cannot remove", target);
            report->removed_files += 1;
            break;  // nothing before a creation
        } else if (r->kind == 'W') {
            if (pwrite_all(fd, r->bytes, (size_t)r->count, (off_t)r->offset_or_new_size) != 0
                || ftruncate(fd, (off_t)r->size_before) != 0) {
                close(fd);
                return fail(error, error_size, "cannot undo a write to", target);
            }
            report->undone_bytes += (long long)r->count;
        } else {
            if (ftruncate(fd, (off_t)r->size_before) != 0
                || pwrite_all(fd, r->bytes, (size_t)r->count, (off_t)r->offset_or_new_size) != 0) {
                close(fd);
                return fail(error, error_size, "cannot undo a truncate of", target);
            }
            report->undone_bytes += (long long)r->count;
        }
    }
    // The reverted image is what the disk holds from now on.
    if (fd >= 0) {
        int synced = fsync(fd);
        close(fd);
        if (synced != 0) return fail(error, error_size, "cannot fsync", target);
    }
    return 0;
}

int powerloss_revert(
    const char *directory, unsigned long long keep_prefix_seed, powerloss_revert_report *report, char *error,
    size_t error_size) {
    memset(report, 0, sizeof *report);
    uint64_t random_state = keep_prefix_seed;
    uint64_t *random = keep_prefix_seed ? &random_state : NULL;
    DIR *listing = opendir(directory);
    if (!listing) return fail(error, error_size, "cannot list", directory);
    // Sorted names, so the ordered mode draws the same prefixes for the same seed.
    char **names = NULL;
    size_t count = 0;
    struct dirent *entry;
    while ((entry = readdir(listing))) {
        size_t length = strlen(entry->d_name), suffix = sizeof undo_suffix - 1;
        if (length <= suffix || strcmp(entry->d_name + length - suffix, undo_suffix) != 0) continue;
        char **grown = realloc(names, (count + 1) * sizeof *names);
        if (!grown) break;
        names = grown;
        names[count++] = strdup(entry->d_name);
    }
    closedir(listing);
    for (size_t i = 1; i < count; i++) {
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *swap = names[j];
            names[j] = names[j - 1];
            names[j - 1] = swap;
        }
    }
    int result = 0;
    for (size_t i = 0; i < count; i++) {
        char log_path[4096], target[4096];
        snprintf(log_path, sizeof log_path, "%s/%s", directory, names[i]);
        snprintf(target, sizeof target, "%s/%.*s", directory, (int)(strlen(names[i]) - (sizeof undo_suffix - 1)),
            names[i]);
        unsigned char *bytes = NULL;
        size_t size = 0;
        record *records = NULL;
        size_t record_count = 0;
        if (result == 0 && read_file(log_path, &bytes, &size) != 0) result = fail(error, error_size, "cannot read", log_path);
        if (result == 0 && parse(bytes, size, &records, &record_count) != 0) {
            result = fail(error, error_size, "cannot parse", log_path);
        }
        if (result == 0) {
            report->logs += 1;
            if (record_count > 0) {
                result = revert_file(target, records, record_count, random, report, error, error_size);
            }
        }
        if (result == 0 && unlink(log_path) != 0) result = fail(error, error_size, "cannot remove", log_path);
        free(records);
        free(bytes);
        free(names[i]);
    }
    free(names);
    return result;
}
