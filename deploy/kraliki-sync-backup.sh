#!/usr/bin/env bash
# One online backup of the Kraliki Sync store, then retention. Run by kraliki-sync-backup.service
# (hourly, from kraliki-sync-backup.timer) as the kraliki-sync user; install it as
# /usr/local/lib/kraliki-sync/kraliki-sync-backup.sh (docs/deployment/install.md).
#
# 1. `sync-server backup` copies the store with SQLite's online backup API while the server keeps
#    serving, fsyncs the copy and its directory, and records it in the store (the metric
#    kraliki_last_backup_timestamp_seconds, alert KralikiBackupTooOld).
#    The file is <BACKUP_DIR>/server-<UTC timestamp>.sqlite, e.g. server-20261125T170000Z.sqlite.
# 2. Retention, by the UTC timestamp in the file name (not the file's mtime):
#    - hourly: the newest backup of each of the newest KEEP_HOURLY hours that have a backup;
#    - daily:  the newest backup of each of the newest KEEP_DAILY days that have a backup;
#    - the newest backup is always kept; everything else named server-<timestamp>.sqlite is
#      deleted. Files with any other name are never touched.
#    Retention runs only after a successful backup (set -e), so a failing backup never thins out
#    the backups that exist.
#
# Settings (environment; the service sets none, so these defaults apply):
#   SYNC_SERVER  the binary              (/usr/local/bin/sync-server)
#   KRALIKI_CONFIG the config file        (/etc/kraliki-sync/sync-server.json)
#   BACKUP_DIR   where backups go        (/var/backups/kraliki-sync)
#   KEEP_HOURLY  hours to keep           (48)
#   KEEP_DAILY   days to keep            (14)
# Exit status: 0 backup taken and retention applied; 1 anything failed (the unit then shows as
# failed; the backup-age alert fires if no backup succeeds for 2 h).
set -euo pipefail
umask 077

SYNC_SERVER=${SYNC_SERVER:-/usr/local/bin/sync-server}
KRALIKI_CONFIG=${KRALIKI_CONFIG:-/etc/kraliki-sync/sync-server.json}
BACKUP_DIR=${BACKUP_DIR:-/var/backups/kraliki-sync}
KEEP_HOURLY=${KEEP_HOURLY:-48}
KEEP_DAILY=${KEEP_DAILY:-14}

fail() {
  echo "kraliki-sync-backup: $*" >&2
  exit 1
}

[[ $KEEP_HOURLY =~ ^[1-9][0-9]*$ ]] || fail "KEEP_HOURLY must be a whole number >= 1, not '$KEEP_HOURLY'"
[[ $KEEP_DAILY =~ ^[0-9]+$ ]] || fail "KEEP_DAILY must be a whole number >= 0, not '$KEEP_DAILY'"
[[ $BACKUP_DIR == /* ]] || fail "BACKUP_DIR must be an absolute path, not '$BACKUP_DIR'"
[[ -d $BACKUP_DIR ]] || fail "$BACKUP_DIR does not exist (create it: docs/deployment/install.md)"
[[ -x $SYNC_SERVER ]] || fail "$SYNC_SERVER is not an executable"

# One run at a time (a manual run beside the timer's): the second one fails instead of racing.
exec 9>>"$BACKUP_DIR/.backup.lock"
flock -n 9 || fail "another backup is running (lock $BACKUP_DIR/.backup.lock)"

# ---- 1. The backup ---------------------------------------------------------------------
name="server-$(date -u +%Y%m%dT%H%M%SZ).sqlite"
out="$BACKUP_DIR/$name"
# sync-server refuses an existing --out; check first so that a failure below can only have
# left a file this run created, which is then safe to remove.
[[ ! -e $out ]] || fail "$out already exists; not overwriting it"
# A run stopped half-way (systemctl stop, TimeoutStartSec, Ctrl-C) must not leave a partial
# file that looks like a backup to the next run's retention.
finished=no
remove_partial() { if [[ $finished == no ]]; then rm -f -- "$out"; fi; }
trap remove_partial EXIT
trap 'exit 1' TERM INT HUP
if ! "$SYNC_SERVER" backup --config "$KRALIKI_CONFIG" --out "$out"; then
  fail "sync-server backup failed; no backup taken, retention not applied"
fi
[[ -s $out ]] || fail "sync-server reported success but $out is missing or empty"
finished=yes

# ---- 2. Retention ------------------------------------------------------------------------
pattern='^server-([0-9]{8})T([0-9]{2})[0-9]{4}Z\.sqlite$'
backups=()
while IFS= read -r file; do
  if [[ $file =~ $pattern ]]; then backups+=("$file"); fi
done < <(find "$BACKUP_DIR" -maxdepth 1 -type f -name 'server-*.sqlite' -printf '%f\n' | LC_ALL=C sort -r)
# Newest first: the timestamp format sorts as text.
((${#backups[@]} > 0)) || fail "no backups found in $BACKUP_DIR after taking one"

declare -A keep=() hours=() days=()
keep[${backups[0]}]=newest
keep[$name]=${keep[$name]:-this run}
for file in "${backups[@]}"; do
  [[ $file =~ $pattern ]] || fail "internal: $file does not match" # fills BASH_REMATCH
  day=${BASH_REMATCH[1]}
  hour=$day${BASH_REMATCH[2]}
  # The first file seen for an hour or a day is its newest backup.
  if [[ -z ${hours[$hour]:-} ]] && ((${#hours[@]} < KEEP_HOURLY)); then
    hours[$hour]=$file
    keep[$file]=${keep[$file]:-hourly}
  fi
  if [[ -z ${days[$day]:-} ]] && ((${#days[@]} < KEEP_DAILY)); then
    days[$day]=$file
    keep[$file]=${keep[$file]:-daily}
  fi
done

deleted=0
for file in "${backups[@]}"; do
  if [[ -n ${keep[$file]:-} || $file == "${backups[0]}" ]]; then continue; fi # never the newest
  rm -f -- "${BACKUP_DIR:?}/$file"
  deleted=$((deleted + 1))
done

echo "kraliki-sync-backup: took $name; kept ${#keep[@]} backup(s) (newest of each of the last ${#hours[@]} hour(s) and ${#days[@]} day(s)); deleted $deleted"
