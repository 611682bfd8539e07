/* Fixtures and raw-database helpers shared by the store tests. */
#ifndef HK_TEST_STORE_UTIL_H
#define HK_TEST_STORE_UTIL_H

#include "store/store.h"

#include <stdint.h>

/* A registration: account n with its device and envelope. The blobs are
 * patterned from n so that tests can find them in the database file. */
struct fixture {
	struct store_account account;
	struct store_device device;
	struct store_envelope envelope;
	uint8_t credential[64];
	uint8_t wrapped_dek[60];
};

/* Fills f for account number n registered at now_ms. */
void fixture_init(struct fixture *f, unsigned n, int64_t now_ms);
/* Creates f's account (with audit row "register"); returns the store's code. */
int fixture_create(struct store *store, const struct fixture *f);
/* Adds collection "mail/<c>" to f's account and count items of len bytes
 * patterned from seed; returns the store's code. */
int fixture_fill_cache(struct store *store, const struct fixture *f, unsigned c, unsigned count,
		       size_t len, uint8_t seed);
/* Gives f's account everything that can hang off an account: collections
 * "mail/1" (20 items) and "mail/2" (5 items) of 300 bytes patterned from
 * seed, a push subscription, node-a's lease and a folder sync key. */
int fixture_populate(struct store *store, const struct fixture *f, uint8_t seed);
/* Fills buf with bytes derived from seed (not all equal, no long zero runs). */
void pattern_fill(uint8_t *buf, size_t len, uint32_t seed);

/* A fresh database path in the test directory. */
const char *fresh_db_path(void);
/* Opens a store with drv at path, recording a check failure if it fails. */
struct store *open_store(const struct store_driver *drv, const char *path);

/* A canonical text dump of every table of the database at path (all rows,
 * all columns, by table name then rowid) plus its user_version, read over a
 * separate connection. Compare two dumps to prove nothing changed. Free
 * with free(). */
char *db_dump(const char *path);
/* The same without the tables named in skip (NULL-terminated). */
char *db_dump_skip(const char *path, const char *const *skip);
/* Copies a closed database file. */
void db_copy(const char *from, const char *to);
/* Runs sql on a separate connection; returns the SQLite result code and,
 * on failure, copies the message into msg (may be NULL). */
int db_exec(const char *path, const char *sql, char *msg, size_t msg_size);
/* The integer the first column of the first row of sql yields (-1 if none). */
int64_t db_int(const char *path, const char *sql);
/* Rows in table. */
int64_t db_count(const char *path, const char *table);

#endif
