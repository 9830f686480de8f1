// See fault_vfs.h. One mutex guards the configuration, the counters and the list of open tracked files.

#include "fault_vfs.h"
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

typedef struct Unsynced {
  sqlite3_int64 offset;
  int length;
  unsigned char *old;         /* the bytes the write replaced (zeros past the old end) */
  sqlite3_int64 oldSize;      /* the file's size before the write */
  struct Unsynced *next;      /* older writes */
} Unsynced;

typedef struct FaultFile {
  sqlite3_file base;
  sqlite3_file *real;
  int tracked;
  int dead;                   /* power failed while it was open */
  Unsynced *unsynced;         /* newest first */
  struct FaultFile *nextOpen;
} FaultFile;

enum { MODE_OFF, MODE_COUNT, MODE_FAIL, MODE_CRASH };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static sqlite3_vfs *realVFS;
static sqlite3_vfs faultVFS;
static sqlite3_io_methods methods;
static int installed;
static char prefix[1024];
static int mode, failSync, failFull, failPersistent, injected, crashed;
static long target, writes, syncs;
static unsigned long long rng;
static FaultFile *openFiles;

static unsigned long long next_random(void) {
  rng += 0x9E3779B97F4A7C15ULL;
  unsigned long long z = rng;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

static void free_unsynced(FaultFile *f) {
  while (f->unsynced) {
    Unsynced *u = f->unsynced;
    f->unsynced = u->next;
    free(u->old);
    free(u);
  }
}

/* The power fails: each open tracked file's unsynced writes, newest first, are kept, undone or garbled. */
static void lose_power(void) {
  for (FaultFile *f = openFiles; f; f = f->nextOpen) {
    if (!f->tracked) continue;
    for (Unsynced *u = f->unsynced; u; u = u->next) {
      unsigned long long fate = next_random() % 3;
      if (fate == 1) {
        sqlite3_int64 keep = u->oldSize - u->offset;
        if (keep > u->length) keep = u->length;
        if (keep > 0) f->real->pMethods->xWrite(f->real, u->old, (int)keep, u->offset);
        sqlite3_int64 size = 0;
        if (u->offset + u->length > u->oldSize && f->real->pMethods->xFileSize(f->real, &size) == SQLITE_OK && size > u->oldSize) {
          f->real->pMethods->xTruncate(f->real, u->oldSize);
        }
      } else if (fate == 2) {
        unsigned char *noise = malloc((size_t)u->length);
        if (noise) {
          for (int i = 0; i < u->length; i++) noise[i] = (unsigned char)next_random();
          f->real->pMethods->xWrite(f->real, noise, u->length, u->offset);
          free(noise);
        }
      }
    }
    free_unsynced(f);
    f->dead = 1;
  }
  crashed = 1;
}

static int f_close(sqlite3_file *file) {
  FaultFile *f = (FaultFile *)file;
  pthread_mutex_lock(&lock);
  for (FaultFile **p = &openFiles; *p; p = &(*p)->nextOpen) {
    if (*p == f) { *p = f->nextOpen; break; }
  }
  free_unsynced(f);
  pthread_mutex_unlock(&lock);
  return f->real->pMethods->xClose(f->real);
}

static int f_read(sqlite3_file *file, void *buffer, int amount, sqlite3_int64 offset) {
  FaultFile *f = (FaultFile *)file;
  if (f->dead) return SQLITE_IOERR_READ;
  return f->real->pMethods->xRead(f->real, buffer, amount, offset);
}

static int f_write(sqlite3_file *file, const void *buffer, int amount, sqlite3_int64 offset) {
  FaultFile *f = (FaultFile *)file;
  pthread_mutex_lock(&lock);
  if (f->dead) { pthread_mutex_unlock(&lock); return SQLITE_IOERR_WRITE; }
  if (f->tracked && mode != MODE_OFF) {
    writes++;
    if (mode == MODE_FAIL && !failSync && (writes == target || (failPersistent && writes > target))) {
      injected = 1;
      pthread_mutex_unlock(&lock);
      return failFull ? SQLITE_FULL : SQLITE_IOERR_WRITE;
    }
    if (mode == MODE_CRASH) {
      Unsynced *u = calloc(1, sizeof(Unsynced));
      if (u) {
        u->offset = offset;
        u->length = amount;
        u->old = calloc(1, (size_t)amount);
        f->real->pMethods->xFileSize(f->real, &u->oldSize);
        if (u->old) f->real->pMethods->xRead(f->real, u->old, amount, offset);   /* a short read zero-fills */
        u->next = f->unsynced;
        f->unsynced = u;
      }
    }
  }
  int rc = f->real->pMethods->xWrite(f->real, buffer, amount, offset);
  if (f->tracked && mode == MODE_CRASH && writes == target && !crashed) {
    injected = 1;
    lose_power();
    rc = SQLITE_IOERR_WRITE;
  }
  pthread_mutex_unlock(&lock);
  return rc;
}

static int f_truncate(sqlite3_file *file, sqlite3_int64 size) {
  FaultFile *f = (FaultFile *)file;
  if (f->dead) return SQLITE_IOERR_TRUNCATE;
  return f->real->pMethods->xTruncate(f->real, size);
}

static int f_sync(sqlite3_file *file, int flags) {
  FaultFile *f = (FaultFile *)file;
  pthread_mutex_lock(&lock);
  if (f->dead) { pthread_mutex_unlock(&lock); return SQLITE_IOERR_FSYNC; }
  if (f->tracked && mode != MODE_OFF) {
    syncs++;
    if (mode == MODE_FAIL && failSync && (syncs == target || (failPersistent && syncs > target))) {
      injected = 1;
      pthread_mutex_unlock(&lock);
      return SQLITE_IOERR_FSYNC;
    }
  }
  int rc = f->real->pMethods->xSync(f->real, flags);
  if (rc == SQLITE_OK) free_unsynced(f);
  pthread_mutex_unlock(&lock);
  return rc;
}

static int f_file_size(sqlite3_file *file, sqlite3_int64 *size) {
  FaultFile *f = (FaultFile *)file;
  if (f->dead) return SQLITE_IOERR_FSTAT;
  return f->real->pMethods->xFileSize(f->real, size);
}

static int f_lock(sqlite3_file *file, int level) { FaultFile *f = (FaultFile *)file; return f->real->pMethods->xLock(f->real, level); }
static int f_unlock(sqlite3_file *file, int level) { FaultFile *f = (FaultFile *)file; return f->real->pMethods->xUnlock(f->real, level); }
static int f_check_reserved(sqlite3_file *file, int *out) {
  FaultFile *f = (FaultFile *)file;
  return f->real->pMethods->xCheckReservedLock(f->real, out);
}
static int f_file_control(sqlite3_file *file, int op, void *arg) {
  FaultFile *f = (FaultFile *)file;
  return f->real->pMethods->xFileControl(f->real, op, arg);
}
static int f_sector_size(sqlite3_file *file) { FaultFile *f = (FaultFile *)file; return f->real->pMethods->xSectorSize(f->real); }
static int f_device(sqlite3_file *file) { FaultFile *f = (FaultFile *)file; return f->real->pMethods->xDeviceCharacteristics(f->real); }
static int f_shm_map(sqlite3_file *file, int page, int size, int extend, void volatile **out) {
  FaultFile *f = (FaultFile *)file;
  if (f->dead) return SQLITE_IOERR_SHMMAP;
  return f->real->pMethods->xShmMap(f->real, page, size, extend, out);
}
static int f_shm_lock(sqlite3_file *file, int offset, int n, int flags) {
  FaultFile *f = (FaultFile *)file;
  return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}
static void f_shm_barrier(sqlite3_file *file) { FaultFile *f = (FaultFile *)file; f->real->pMethods->xShmBarrier(f->real); }
static int f_shm_unmap(sqlite3_file *file, int remove) {
  FaultFile *f = (FaultFile *)file;
  return f->real->pMethods->xShmUnmap(f->real, remove);
}
/* Memory-mapped reads are refused: every read goes through xRead, where a dead file fails. */
static int f_fetch(sqlite3_file *file, sqlite3_int64 offset, int amount, void **out) { (void)file; (void)offset; (void)amount; *out = 0; return SQLITE_OK; }
static int f_unfetch(sqlite3_file *file, sqlite3_int64 offset, void *p) { (void)file; (void)offset; (void)p; return SQLITE_OK; }

static int v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *outFlags) {
  (void)vfs;
  FaultFile *f = (FaultFile *)file;
  memset(f, 0, sizeof(FaultFile));
  f->real = (sqlite3_file *)(f + 1);
  int rc = realVFS->xOpen(realVFS, name, f->real, flags, outFlags);
  if (rc != SQLITE_OK) { f->base.pMethods = 0; return rc; }
  f->base.pMethods = &methods;
  pthread_mutex_lock(&lock);
  f->tracked = name && prefix[0] && strncmp(name, prefix, strlen(prefix)) == 0;
  f->nextOpen = openFiles;
  openFiles = f;
  pthread_mutex_unlock(&lock);
  return SQLITE_OK;
}

static int v_delete(sqlite3_vfs *vfs, const char *name, int syncDir) { (void)vfs; return realVFS->xDelete(realVFS, name, syncDir); }
static int v_access(sqlite3_vfs *vfs, const char *name, int flags, int *out) { (void)vfs; return realVFS->xAccess(realVFS, name, flags, out); }
static int v_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out) { (void)vfs; return realVFS->xFullPathname(realVFS, name, n, out); }
static void *v_dl_open(sqlite3_vfs *vfs, const char *name) { (void)vfs; return realVFS->xDlOpen(realVFS, name); }
static void v_dl_error(sqlite3_vfs *vfs, int n, char *out) { (void)vfs; realVFS->xDlError(realVFS, n, out); }
static void (*v_dl_sym(sqlite3_vfs *vfs, void *handle, const char *symbol))(void) { (void)vfs; return realVFS->xDlSym(realVFS, handle, symbol); }
static void v_dl_close(sqlite3_vfs *vfs, void *handle) { (void)vfs; realVFS->xDlClose(realVFS, handle); }
static int v_randomness(sqlite3_vfs *vfs, int n, char *out) { (void)vfs; return realVFS->xRandomness(realVFS, n, out); }
static int v_sleep(sqlite3_vfs *vfs, int micro) { (void)vfs; return realVFS->xSleep(realVFS, micro); }
static int v_current_time(sqlite3_vfs *vfs, double *out) { (void)vfs; return realVFS->xCurrentTime(realVFS, out); }
static int v_last_error(sqlite3_vfs *vfs, int n, char *out) { (void)vfs; return realVFS->xGetLastError ? realVFS->xGetLastError(realVFS, n, out) : 0; }
static int v_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out) { (void)vfs; return realVFS->xCurrentTimeInt64(realVFS, out); }

int fault_vfs_install(void) {
  pthread_mutex_lock(&lock);
  if (installed) { pthread_mutex_unlock(&lock); return SQLITE_OK; }
  realVFS = sqlite3_vfs_find(0);
  if (!realVFS) { pthread_mutex_unlock(&lock); return SQLITE_ERROR; }
  methods = (sqlite3_io_methods){
    3, f_close, f_read, f_write, f_truncate, f_sync, f_file_size, f_lock, f_unlock, f_check_reserved, f_file_control,
    f_sector_size, f_device, f_shm_map, f_shm_lock, f_shm_barrier, f_shm_unmap, f_fetch, f_unfetch};
  faultVFS = (sqlite3_vfs){
    2, (int)(sizeof(FaultFile) + (size_t)realVFS->szOsFile), realVFS->mxPathname, 0, "fault", 0,
    v_open, v_delete, v_access, v_full_pathname, v_dl_open, v_dl_error, v_dl_sym, v_dl_close, v_randomness, v_sleep,
    v_current_time, v_last_error, v_current_time_int64, 0, 0, 0};
  int rc = sqlite3_vfs_register(&faultVFS, 1);
  installed = rc == SQLITE_OK;
  pthread_mutex_unlock(&lock);
  return rc;
}

static void arm(const char *path, int newMode, long n) {
  pthread_mutex_lock(&lock);
  strncpy(prefix, path, sizeof(prefix) - 1);
  prefix[sizeof(prefix) - 1] = 0;
  mode = newMode; target = n; writes = 0; syncs = 0; injected = 0; crashed = 0;
  pthread_mutex_unlock(&lock);
}

void fault_vfs_count_under(const char *path) { arm(path, MODE_COUNT, 0); }

void fault_vfs_fail_at(const char *path, long n, int sync, int full, int persistent) {
  arm(path, MODE_FAIL, n);
  pthread_mutex_lock(&lock);
  failSync = sync; failFull = full; failPersistent = persistent;
  pthread_mutex_unlock(&lock);
}

void fault_vfs_crash_at(const char *path, long n, unsigned long long seed) {
  arm(path, MODE_CRASH, n);
  pthread_mutex_lock(&lock);
  rng = seed;
  pthread_mutex_unlock(&lock);
}

void fault_vfs_disarm(void) {
  pthread_mutex_lock(&lock);
  mode = MODE_OFF;
  prefix[0] = 0;
  pthread_mutex_unlock(&lock);
}

long fault_vfs_writes(void) { pthread_mutex_lock(&lock); long n = writes; pthread_mutex_unlock(&lock); return n; }
long fault_vfs_syncs(void) { pthread_mutex_lock(&lock); long n = syncs; pthread_mutex_unlock(&lock); return n; }
int fault_vfs_injected(void) { pthread_mutex_lock(&lock); int n = injected; pthread_mutex_unlock(&lock); return n; }
int fault_vfs_crashed(void) { pthread_mutex_lock(&lock); int n = crashed; pthread_mutex_unlock(&lock); return n; }
