// sqlite3, plus wrappers for its variadic configuration calls (Swift cannot call C variadics).
#include <sqlite3.h>
static inline int lathe_sqlite3_db_config_int(sqlite3 *db, int op, int value) {
  return sqlite3_db_config(db, op, value, (int *)0);
}
