/* The SQLite schema as an ordered list of migrations. Migration i (from 0)
 * brings a database from version i to version i + 1 (PRAGMA user_version).
 * Migrations are append-only: a released one is never edited, a change is a
 * new one. */
#ifndef HK_STORE_SQLITE_MIGRATIONS_H
#define HK_STORE_SQLITE_MIGRATIONS_H

#include <stddef.h>

extern const char *const store_sqlite_migrations[];
extern const size_t store_sqlite_migration_count;

#endif
