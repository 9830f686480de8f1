// A SQLite VFS for the notebook's fault tests (design C.4 rows 8 and 9), in the way of SQLite's own crash and
// I/O-error tests: it wraps the default VFS and, for files whose path starts with an armed prefix only, either
//  - fails the N-th write or sync (once, or that one and every later one), as a full disk or an I/O error does; or
//  - "loses power" right after the N-th write: every write since each file's last sync is kept, undone or garbled
//    (chosen by a seeded generator, newest first), and every later operation on those files fails.
// Other files pass through untouched, so tests that run beside these see the plain default VFS.

#ifndef FAULT_VFS_H
#define FAULT_VFS_H

/// Registers the VFS as the default, once per process (later calls do nothing). Returns a SQLite result code.
int fault_vfs_install(void);

/// Counts writes and syncs of files under `prefix`, and injects nothing.
void fault_vfs_count_under(const char *prefix);

/// Under `prefix`: write number `n` (1-based) fails with SQLITE_FULL when `full`, else SQLITE_IOERR_WRITE; with
/// `persistent`, every write after it fails too. `sync` instead makes sync number `n` fail (SQLITE_IOERR_FSYNC).
void fault_vfs_fail_at(const char *prefix, long n, int sync, int full, int persistent);

/// Under `prefix`: power fails right after write number `n`; `seed` chooses the fate of each unsynced write.
void fault_vfs_crash_at(const char *prefix, long n, unsigned long long seed);

/// Stops injecting and counting; files already open keep working (after a crash they stay failed until closed).
void fault_vfs_disarm(void);

/// Writes and syncs seen under the prefix since it was armed; whether a fault was injected; whether power failed.
long fault_vfs_writes(void);
long fault_vfs_syncs(void);
int fault_vfs_injected(void);
int fault_vfs_crashed(void);

#endif
