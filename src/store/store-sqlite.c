/* The SQLite store driver: one database file, one connection per handle.
 *
 * Connection settings, and why:
 * - journal_mode=WAL: readers (halfkeyctl, a backup) do not block the
 *   relay's writes, and a crash leaves either the whole transaction or none.
 * - synchronous=NORMAL: in WAL mode a commit is then not fsynced until the
 *   next checkpoint. The database can never be corrupted this way; a power
 *   cut (not a process crash) can only lose the last commits. For cache
 *   rows, sync keys, activity stamps, leases and audit rows that costs a
 *   re-sync or one lost line, and saves an fsync per write. The exceptions
 *   are the commits whose loss would be a broken promise: account creation
 *   (the device would hold a token for an account that is gone, and the
 *   password is never on the device), and deletion, wipe and purge (a lost
 *   delete would bring ciphertext back). Those run with synchronous=FULL.
 * - secure_delete=ON: SQLite overwrites deleted content with zeros, so a
 *   purged envelope, wrapped data key or sealed item does not linger in a
 *   free page of the file (crypto-shredding means the wrapped DEK is truly
 *   gone). After each delete, wipe and purge a TRUNCATE checkpoint moves the
 *   zeroed pages into the main file and empties the WAL, which would
 *   otherwise still hold older page images.
 * - foreign_keys=ON: the cascades in the schema do the deleting.
 * - busy_timeout: another process holding the write lock briefly (halfkeyctl)
 *   makes us wait up to STORE_SQLITE_BUSY_MS instead of failing at once.
 * - the file and its -wal and -shm are 0600: SQLite gives the -wal and -shm
 *   the main file's mode, so creating the main file 0600 covers all three;
 *   existing files with group or other access are refused.
 *
 * Every statement is prepared once per handle and kept. Writes that must be
 * all or nothing run in BEGIN IMMEDIATE transactions (taking the write lock
 * up front avoids a deadlocking lock upgrade between two writers). */
#include "store/store-private.h"
#include "store/store-sqlite-migrations.h"

#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STORE_SQLITE_BUSY_MS 5000
/* Accounts fetched per round of store_account_purge_inactive(). */
#define PURGE_PAGE 64

#define ACCOUNT_COLS                                                                        \
	"a.id, a.server_url, a.username, a.email, a.account_salt, a.state, a.created_ms, " \
	"a.last_activity_ms, a.flushed_ms, a.change_counter, a.folder_sync_key"
#define DEVICE_COLS                                                                      \
	"id, account_id, eas_device_id, device_type, user_agent, token_hash, created_ms, " \
	"last_seen_ms, tombstoned_ms, policy_key"
#define COLLECTION_COLS "collection_id, parent_id, sync_key, display_name, type"
#define PUSH_COLS "id, account_id, type, endpoint, params, created_ms, expires_ms"
#define AUDIT_COLS "id, time_ms, event, account_id, device, detail"

enum sq_stmt_id {
	SQ_BEGIN,
	SQ_COMMIT,
	SQ_ACCOUNT_DUPLICATE,
	SQ_ACCOUNT_INSERT,
	SQ_DEVICE_INSERT,
	SQ_ENVELOPE_INSERT,
	SQ_ACCOUNT_GET,
	SQ_ACCOUNT_FIND,
	SQ_ACCOUNT_LIST,
	SQ_ACCOUNT_SET_STATE,
	SQ_ACCOUNT_DELETE,
	SQ_ACCOUNT_DELETE_INACTIVE,
	SQ_ACCOUNT_INACTIVE,
	SQ_ACCOUNT_WIPE,
	SQ_ACCOUNT_TOUCH,
	SQ_ACCOUNT_BUMP,
	SQ_ENVELOPES_DELETE_ACCOUNT,
	SQ_PUSH_DELETE_ACCOUNT,
	SQ_LEASE_DELETE_ACCOUNT,
	SQ_DEVICES_TOMBSTONE,
	SQ_DEVICE_GET,
	SQ_DEVICE_GET_BY_TOKEN,
	SQ_DEVICE_LIST,
	SQ_DEVICE_TOUCH,
	SQ_ACCOUNT_REACTIVATE,
	SQ_DEVICE_SET_POLICY_KEY,
	SQ_ENVELOPE_GET,
	SQ_ENVELOPE_UPDATE,
	SQ_COLLECTION_PUT,
	SQ_COLLECTION_GET,
	SQ_COLLECTION_LIST,
	SQ_COLLECTION_DELETE,
	SQ_COLLECTIONS_DELETE_ACCOUNT,
	SQ_FOLDER_SYNC_KEY_SET,
	SQ_ITEM_PUT,
	SQ_ITEM_GET,
	SQ_ITEM_DELETE,
	SQ_ITEM_LIST,
	SQ_COLLECTION_SET_KEY,
	SQ_ITEMS_DELETE_COLLECTION,
	SQ_ACCOUNT_COUNTER,
	SQ_PUSH_ADD,
	SQ_PUSH_LIST,
	SQ_PUSH_DELETE,
	SQ_PUSH_DELETE_EXPIRED,
	SQ_BLOCK_ADD,
	SQ_BLOCK_LIST,
	SQ_BLOCK_REMOVE,
	SQ_AUDIT_INSERT,
	SQ_AUDIT_LIST,
	SQ_LEASE_ACQUIRE,
	SQ_LEASE_RENEW,
	SQ_LEASE_RELEASE,
	SQ_LEASE_EXISTS,
	SQ_STATS,
	SQ_STMT_COUNT
};

/* Each statement with the name its errors carry. */
static const struct sq_sql {
	const char *what;
	const char *sql;
} sq_sql[SQ_STMT_COUNT] = {
	[SQ_BEGIN] = {"begin", "BEGIN IMMEDIATE"},
	[SQ_COMMIT] = {"commit", "COMMIT"},
	[SQ_ACCOUNT_DUPLICATE] = {"check registration",
				  "SELECT 1 FROM accounts a JOIN devices d ON d.account_id = a.id"
				  " WHERE a.server_url = ?1 AND a.username = ?2"
				  " AND d.eas_device_id = ?3 LIMIT 1"},
	[SQ_ACCOUNT_INSERT] = {"insert account",
			       "INSERT INTO accounts (id, server_url, username, email,"
			       " account_salt, state, created_ms, last_activity_ms, flushed_ms,"
			       " change_counter, folder_sync_key)"
			       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"},
	[SQ_DEVICE_INSERT] = {"insert device",
			      "INSERT INTO devices (" DEVICE_COLS ")"
			      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"},
	[SQ_ENVELOPE_INSERT] = {"insert envelope",
				"INSERT INTO envelopes (device_id, key_id, credential, wrapped_dek,"
				" updated_ms) VALUES (?1, ?2, ?3, ?4, ?5)"},
	[SQ_ACCOUNT_GET] = {"get account",
			    "SELECT " ACCOUNT_COLS " FROM accounts a WHERE a.id = ?1"},
	[SQ_ACCOUNT_FIND] = {"find account",
			     "SELECT " ACCOUNT_COLS " FROM accounts a"
			     " JOIN devices d ON d.account_id = a.id"
			     " WHERE a.server_url = ?1 AND a.username = ?2"
			     " AND d.eas_device_id = ?3 LIMIT 1"},
	[SQ_ACCOUNT_LIST] = {"list accounts",
			     "SELECT " ACCOUNT_COLS ","
			     " (SELECT count(*) FROM devices d WHERE d.account_id = a.id)"
			     " FROM accounts a WHERE a.id > ?1 ORDER BY a.id LIMIT ?2"},
	[SQ_ACCOUNT_SET_STATE] = {"set account state",
				  "UPDATE accounts SET state = ?2,"
				  " flushed_ms = CASE WHEN ?4 THEN ?3 ELSE flushed_ms END"
				  " WHERE id = ?1"},
	[SQ_ACCOUNT_DELETE] = {"delete account", "DELETE FROM accounts WHERE id = ?1"},
	[SQ_ACCOUNT_DELETE_INACTIVE] = {"purge account",
					"DELETE FROM accounts WHERE id = ?1"
					" AND last_activity_ms < ?2 AND state <> ?3"},
	[SQ_ACCOUNT_INACTIVE] = {"find inactive accounts",
				 "SELECT id, last_activity_ms FROM accounts"
				 " WHERE last_activity_ms < ?1 AND state <> ?2 AND id > ?3"
				 " ORDER BY id LIMIT ?4"},
	[SQ_ACCOUNT_WIPE] = {"wipe account",
			     "UPDATE accounts SET state = ?2, folder_sync_key = ''"
			     " WHERE id = ?1"},
	[SQ_ACCOUNT_TOUCH] = {"touch account",
			      "UPDATE accounts SET last_activity_ms = max(last_activity_ms, ?2)"
			      " WHERE id = (SELECT account_id FROM devices WHERE id = ?1)"},
	[SQ_ACCOUNT_BUMP] = {"bump change counter",
			     "UPDATE accounts SET change_counter = change_counter + 1"
			     " WHERE id = ?1 RETURNING change_counter"},
	[SQ_ENVELOPES_DELETE_ACCOUNT] = {"delete envelopes",
					 "DELETE FROM envelopes WHERE device_id IN"
					 " (SELECT id FROM devices WHERE account_id = ?1)"},
	[SQ_PUSH_DELETE_ACCOUNT] = {"delete push subscriptions",
				    "DELETE FROM push_subscriptions WHERE account_id = ?1"},
	[SQ_LEASE_DELETE_ACCOUNT] = {"delete lease", "DELETE FROM leases WHERE account_id = ?1"},
	[SQ_DEVICES_TOMBSTONE] = {"tombstone devices",
				  "UPDATE devices SET tombstoned_ms = ?2"
				  " WHERE account_id = ?1 AND tombstoned_ms IS NULL"},
	[SQ_DEVICE_GET] = {"get device", "SELECT " DEVICE_COLS " FROM devices WHERE id = ?1"},
	[SQ_DEVICE_GET_BY_TOKEN] = {"get device by token",
				    "SELECT " DEVICE_COLS " FROM devices WHERE token_hash = ?1"},
	[SQ_DEVICE_LIST] = {"list devices",
			    "SELECT " DEVICE_COLS " FROM devices WHERE account_id = ?1"
			    " ORDER BY id"},
	[SQ_DEVICE_TOUCH] = {"touch device",
			     "UPDATE devices SET last_seen_ms = max(last_seen_ms, ?2)"
			     " WHERE id = ?1"},
	[SQ_DEVICE_SET_POLICY_KEY] = {"set policy key",
				      "UPDATE devices SET policy_key = ?2 WHERE id = ?1"},
	[SQ_ACCOUNT_REACTIVATE] = {"reactivate account",
				   "UPDATE accounts SET state = 'active', flushed_ms = NULL"
				   " WHERE id = (SELECT account_id FROM devices WHERE id = ?1)"
				   " AND state IN ('flushed', 'reregister_needed')"},
	[SQ_ENVELOPE_GET] = {"get envelope",
			     "SELECT key_id, credential, wrapped_dek, updated_ms FROM envelopes"
			     " WHERE device_id = ?1"},
	[SQ_ENVELOPE_UPDATE] = {"replace envelope",
				"UPDATE envelopes SET key_id = ?2, credential = ?3,"
				" wrapped_dek = ?4, updated_ms = ?5 WHERE device_id = ?1"},
	[SQ_COLLECTION_PUT] = {"put collection",
			       "INSERT INTO collections (account_id, " COLLECTION_COLS ")"
			       " VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
			       " ON CONFLICT (account_id, collection_id) DO UPDATE SET"
			       " parent_id = excluded.parent_id, sync_key = excluded.sync_key,"
			       " display_name = excluded.display_name, type = excluded.type"},
	[SQ_COLLECTION_GET] = {"get collection",
			       "SELECT " COLLECTION_COLS " FROM collections"
			       " WHERE account_id = ?1 AND collection_id = ?2"},
	[SQ_COLLECTION_LIST] = {"list collections",
				"SELECT " COLLECTION_COLS " FROM collections"
				" WHERE account_id = ?1 ORDER BY collection_id"},
	[SQ_COLLECTION_DELETE] = {"delete collection",
				  "DELETE FROM collections"
				  " WHERE account_id = ?1 AND collection_id = ?2"},
	[SQ_COLLECTIONS_DELETE_ACCOUNT] = {"delete collections",
					   "DELETE FROM collections WHERE account_id = ?1"},
	[SQ_FOLDER_SYNC_KEY_SET] = {"set folder sync key",
				    "UPDATE accounts SET folder_sync_key = ?2 WHERE id = ?1"},
	[SQ_ITEM_PUT] = {"put item",
			 "INSERT INTO items"
			 " (account_id, collection_id, item_id, sealed, updated_ms)"
			 " VALUES (?1, ?2, ?3, ?4, ?5)"
			 " ON CONFLICT (account_id, collection_id, item_id) DO UPDATE SET"
			 " sealed = excluded.sealed, updated_ms = excluded.updated_ms"},
	[SQ_ITEM_GET] = {"get item",
			 "SELECT sealed, updated_ms FROM items"
			 " WHERE account_id = ?1 AND collection_id = ?2 AND item_id = ?3"},
	[SQ_ITEM_DELETE] = {"delete item",
			    "DELETE FROM items"
			    " WHERE account_id = ?1 AND collection_id = ?2 AND item_id = ?3"},
	[SQ_ITEM_LIST] = {"list items",
			  "SELECT item_id FROM items WHERE account_id = ?1 AND collection_id = ?2"
			  " ORDER BY item_id"},
	[SQ_COLLECTION_SET_KEY] = {"set collection sync key",
				   "UPDATE collections SET sync_key = ?3"
				   " WHERE account_id = ?1 AND collection_id = ?2"},
	[SQ_ITEMS_DELETE_COLLECTION] = {"clear collection items",
					"DELETE FROM items"
					" WHERE account_id = ?1 AND collection_id = ?2"},
	[SQ_ACCOUNT_COUNTER] = {"read change counter",
				"SELECT change_counter FROM accounts WHERE id = ?1"},
	[SQ_PUSH_ADD] = {"add push subscription",
			 "INSERT INTO push_subscriptions (" PUSH_COLS ")"
			 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
	[SQ_PUSH_LIST] = {"list push subscriptions",
			  "SELECT " PUSH_COLS " FROM push_subscriptions WHERE account_id = ?1"
			  " ORDER BY id"},
	[SQ_PUSH_DELETE] = {"delete push subscription",
			    "DELETE FROM push_subscriptions WHERE id = ?1"},
	[SQ_PUSH_DELETE_EXPIRED] = {"delete expired push subscriptions",
				    "DELETE FROM push_subscriptions"
				    " WHERE expires_ms IS NOT NULL AND expires_ms <= ?1"},
	[SQ_BLOCK_ADD] = {"add block rule",
			  "INSERT INTO block_rules (kind, pattern, note, created_ms)"
			  " VALUES (?1, ?2, ?3, ?4) RETURNING id"},
	[SQ_BLOCK_LIST] = {"list block rules",
			   "SELECT id, kind, pattern, note, created_ms FROM block_rules"
			   " ORDER BY id"},
	[SQ_BLOCK_REMOVE] = {"remove block rule", "DELETE FROM block_rules WHERE id = ?1"},
	[SQ_AUDIT_INSERT] = {"append audit",
			     "INSERT INTO audit (time_ms, event, account_id, device, detail)"
			     " VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id"},
	[SQ_AUDIT_LIST] = {"list audit",
			   "SELECT " AUDIT_COLS " FROM audit"
			   " WHERE time_ms >= ?1 AND (?2 IS NULL OR account_id = ?2)"
			   " ORDER BY id LIMIT ?3"},
	/* One statement, so two nodes racing for the lease cannot both win:
	 * the update only happens if the row is ours or expired. */
	[SQ_LEASE_ACQUIRE] = {"acquire lease",
			      "INSERT INTO leases (account_id, node, expires_ms)"
			      " VALUES (?1, ?2, ?4)"
			      " ON CONFLICT (account_id) DO UPDATE SET"
			      " node = excluded.node, expires_ms = excluded.expires_ms"
			      " WHERE leases.node = excluded.node OR leases.expires_ms <= ?3"},
	[SQ_LEASE_RENEW] = {"renew lease",
			    "UPDATE leases SET expires_ms = ?4"
			    " WHERE account_id = ?1 AND node = ?2"},
	[SQ_LEASE_RELEASE] = {"release lease",
			      "DELETE FROM leases WHERE account_id = ?1 AND node = ?2"},
	[SQ_LEASE_EXISTS] = {"find lease", "SELECT 1 FROM leases WHERE account_id = ?1"},
	[SQ_STATS] = {"stats",
		      "SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM devices),"
		      " (SELECT count(*) FROM envelopes), (SELECT count(*) FROM collections),"
		      " (SELECT count(*) FROM items), (SELECT count(*) FROM push_subscriptions),"
		      " (SELECT count(*) FROM block_rules), (SELECT count(*) FROM leases),"
		      " (SELECT count(*) FROM audit)"},
};

/* Whether a transaction's commit is fsynced (see the top of the file). */
enum sq_durability { SQ_NORMAL, SQ_DURABLE };

struct sq_store {
	struct store store;
	sqlite3 *db;
	sqlite3_stmt *stmts[SQ_STMT_COUNT];
	store_step_hook_fn *hook;
	void *hook_ctx;
};

static struct sq_store *sq(struct store *store)
{
	return (struct sq_store *)store;
}

/* ---- errors ---- */

/* Maps an (extended) SQLite result code to an HK_ERR_* code. */
static int sq_code(int rc)
{
	switch (rc) {
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
		return HK_ERR_EXISTS;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		/* We only ever insert children: their parent is missing. */
		return HK_ERR_NOT_FOUND;
	default:
		break;
	}
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return HK_ERR_BUSY;
	case SQLITE_TOOBIG:
		return HK_ERR_TOO_LONG;
	case SQLITE_NOMEM:
		return HK_ERR_NOMEM;
	default:
		return HK_ERR_STORE;
	}
}

static const char *sq_what(const struct sq_store *st, const sqlite3_stmt *stmt)
{
	for (size_t i = 0; i < SQ_STMT_COUNT; i++)
		if (st->stmts[i] == stmt)
			return sq_sql[i].what;
	return "statement";
}

/* Reports a failed step of stmt. SQLite's messages name tables, columns and
 * constraints, never bound values, so no blob reaches the error text. */
static int sq_fail(struct sq_store *st, sqlite3_stmt *stmt, int rc, const char **error_r)
{
	return store_error(&st->store, sq_code(rc), error_r, "%s: %s", sq_what(st, stmt),
			   sqlite3_errmsg(st->db));
}

static int sq_not_found(struct sq_store *st, const char *what, const char **error_r)
{
	return store_error(&st->store, HK_ERR_NOT_FOUND, error_r, "%s not found", what);
}

static int sq_malformed(struct sq_store *st, const char *what, const char **error_r)
{
	return store_error(&st->store, HK_ERR_STORE, error_r, "malformed %s row", what);
}

/* ---- statements ---- */

/* One parameter of a cached statement. Every statement numbers its
 * parameters ?1, ?2, ... and is run with an ARGS() list of them in that
 * order. Text and blobs are borrowed: the helpers below reset the statement,
 * which drops them, before they return. */
enum sq_arg_type {
	SQ_ARG_END, /* closes the list */
	SQ_ARG_TEXT,
	SQ_ARG_TEXT_OPT, /* "" (or NULL) is stored as NULL */
	SQ_ARG_BLOB,
	SQ_ARG_INT,
	SQ_ARG_TIME_OPT, /* a time of 0 ("never") is stored as NULL */
};

struct sq_arg {
	enum sq_arg_type type;
	const char *text;
	const void *blob;
	size_t len;
	int64_t num;
};

#define ARG_TEXT(s) {.type = SQ_ARG_TEXT, .text = (s)}
#define ARG_TEXT_OPT(s) {.type = SQ_ARG_TEXT_OPT, .text = (s)}
#define ARG_BLOB(p, n) {.type = SQ_ARG_BLOB, .blob = (p), .len = (n)}
#define ARG_INT(v) {.type = SQ_ARG_INT, .num = (v)}
#define ARG_TIME_OPT(v) {.type = SQ_ARG_TIME_OPT, .num = (v)}
/* The parameters of one run of a statement, ?1 first. */
#define ARGS(...) ((const struct sq_arg[]){__VA_ARGS__, {.type = SQ_ARG_END}})
#define NO_ARGS ((const struct sq_arg[]){{.type = SQ_ARG_END}})

static int sq_prepare(struct sq_store *st, enum sq_stmt_id id, const char **error_r)
{
	if (st->stmts[id] == NULL &&
	    sqlite3_prepare_v3(st->db, sq_sql[id].sql, -1, SQLITE_PREPARE_PERSISTENT,
			       &st->stmts[id], NULL) != SQLITE_OK)
		return store_error(&st->store, HK_ERR_STORE, error_r, "prepare %s: %s",
				   sq_sql[id].what, sqlite3_errmsg(st->db));
	return 0;
}

static void sq_reset(sqlite3_stmt *stmt)
{
	sqlite3_reset(stmt);
	/* Drop the borrowed pointers to the caller's strings and blobs. */
	sqlite3_clear_bindings(stmt);
}

/* Binds arg as parameter i; returns an SQLite result code. */
static int sq_bind(sqlite3_stmt *stmt, int i, const struct sq_arg *arg)
{
	switch (arg->type) {
	case SQ_ARG_TEXT:
		return sqlite3_bind_text(stmt, i, arg->text, -1, SQLITE_STATIC);
	case SQ_ARG_TEXT_OPT:
		if (arg->text == NULL || arg->text[0] == '\0')
			return sqlite3_bind_null(stmt, i);
		return sqlite3_bind_text(stmt, i, arg->text, -1, SQLITE_STATIC);
	case SQ_ARG_BLOB:
		return sqlite3_bind_blob64(stmt, i, arg->blob, arg->len, SQLITE_STATIC);
	case SQ_ARG_INT:
		return sqlite3_bind_int64(stmt, i, arg->num);
	case SQ_ARG_TIME_OPT:
		if (arg->num == 0)
			return sqlite3_bind_null(stmt, i);
		return sqlite3_bind_int64(stmt, i, arg->num);
	case SQ_ARG_END:
	default:
		return SQLITE_MISUSE;
	}
}

/* Fetches the statement for id with args bound, ready to step. Each fetch
 * is one step for the step hook, which may veto it before anything is
 * prepared or bound. A failed bind leaves the statement reset. */
static int sq_stmt(struct sq_store *st, enum sq_stmt_id id, const struct sq_arg *args,
		   sqlite3_stmt **stmt_r, const char **error_r)
{
	int ret;
	if (st->hook != NULL && (ret = st->hook(st->hook_ctx)) < 0)
		return store_error(&st->store, ret, error_r, "%s: %s", sq_sql[id].what,
				   hk_strerror(ret));
	if ((ret = sq_prepare(st, id, error_r)) < 0)
		return ret;
	sqlite3_stmt *stmt = st->stmts[id];
	for (int i = 0; args[i].type != SQ_ARG_END; i++) {
		int rc = sq_bind(stmt, i + 1, &args[i]);
		if (rc != SQLITE_OK) {
			sq_reset(stmt);
			return store_error(&st->store, sq_code(rc), error_r, "%s: bind: %s",
					   sq_sql[id].what, sqlite3_errstr(rc));
		}
	}
	*stmt_r = stmt;
	return 0;
}

/* Steps a query: 1 with a row, 0 when done, < 0 on error. The caller
 * resets the statement. */
static int sq_next(struct sq_store *st, sqlite3_stmt *stmt, const char **error_r)
{
	int rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return sq_fail(st, stmt, rc, error_r);
}

/* Runs statement id with args to completion and resets it; *changes_r
 * (may be NULL) gets the rows it changed. */
static int sq_run(struct sq_store *st, enum sq_stmt_id id, const struct sq_arg *args,
		  int64_t *changes_r, const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret = sq_stmt(st, id, args, &stmt, error_r);
	if (ret < 0)
		return ret;
	while ((ret = sq_next(st, stmt, error_r)) == 1)
		;
	if (ret == 0 && changes_r != NULL)
		*changes_r = sqlite3_changes64(st->db);
	sq_reset(stmt);
	return ret;
}

/* For writes that must touch a row: 0 rows changed is HK_ERR_NOT_FOUND. */
static int expect_row(struct sq_store *st, int ret, int64_t changes, const char *what,
		      const char **error_r)
{
	if (ret == 0 && changes == 0)
		return sq_not_found(st, what, error_r);
	return ret;
}

/* sq_run() for a write that must touch a row: none is HK_ERR_NOT_FOUND,
 * "<what> not found". */
static int sq_run_row(struct sq_store *st, enum sq_stmt_id id, const struct sq_arg *args,
		      const char *what, const char **error_r)
{
	int64_t changes = 0;
	int ret = sq_run(st, id, args, &changes, error_r);
	return expect_row(st, ret, changes, what, error_r);
}

/* ---- reading columns ---- */

/* Copies a text column (NULL reads as "") into a fixed-size field. */
static bool col_text(sqlite3_stmt *stmt, int col, char *dst, size_t size)
{
	dst[0] = '\0';
	if (sqlite3_column_type(stmt, col) == SQLITE_NULL)
		return true;
	const unsigned char *p = sqlite3_column_text(stmt, col);
	int n = sqlite3_column_bytes(stmt, col);
	if (p == NULL || n < 0 || (size_t)n >= size)
		return false;
	memcpy(dst, p, (size_t)n);
	dst[n] = '\0';
	return true;
}

/* A blob column of exactly len bytes. */
static bool col_blob_exact(sqlite3_stmt *stmt, int col, uint8_t *dst, size_t len)
{
	if (sqlite3_column_type(stmt, col) != SQLITE_BLOB)
		return false;
	const void *p = sqlite3_column_blob(stmt, col);
	if (p == NULL || (size_t)sqlite3_column_bytes(stmt, col) != len)
		return false;
	memcpy(dst, p, len);
	return true;
}

/* A NULL time reads as 0 ("never"). */
static int64_t col_time(sqlite3_stmt *stmt, int col)
{
	return sqlite3_column_type(stmt, col) == SQLITE_NULL ? 0 : sqlite3_column_int64(stmt, col);
}

/* Reads the current row into row. The readers below all have this shape
 * (row is the struct named in each one's first line) so that sq_collect()
 * and sq_get_one() can serve them all. */
typedef int read_row_fn(struct sq_store *st, sqlite3_stmt *stmt, void *row,
			const char **error_r);

static int read_account(struct sq_store *st, sqlite3_stmt *stmt, void *row, const char **error_r)
{
	struct store_account *a = row;
	char state[32];
	memset(a, 0, sizeof(*a));
	if (!col_text(stmt, 0, a->id, sizeof(a->id)) ||
	    !col_text(stmt, 1, a->server_url, sizeof(a->server_url)) ||
	    !col_text(stmt, 2, a->username, sizeof(a->username)) ||
	    !col_text(stmt, 3, a->email, sizeof(a->email)) ||
	    !col_blob_exact(stmt, 4, a->salt, sizeof(a->salt)) ||
	    !col_text(stmt, 5, state, sizeof(state)) ||
	    store_account_state_parse(state, &a->state) < 0 ||
	    !col_text(stmt, 10, a->folder_sync_key, sizeof(a->folder_sync_key)))
		return sq_malformed(st, "account", error_r);
	a->created_ms = sqlite3_column_int64(stmt, 6);
	a->last_activity_ms = sqlite3_column_int64(stmt, 7);
	a->flushed_ms = col_time(stmt, 8);
	a->change_counter = sqlite3_column_int64(stmt, 9);
	return 0;
}

static int read_account_entry(struct sq_store *st, sqlite3_stmt *stmt, void *row,
			      const char **error_r)
{
	struct store_account_entry *e = row;
	int ret = read_account(st, stmt, &e->account, error_r);
	if (ret < 0)
		return ret;
	e->device_count = (unsigned)sqlite3_column_int64(stmt, 11);
	return 0;
}

static int read_device(struct sq_store *st, sqlite3_stmt *stmt, void *row, const char **error_r)
{
	struct store_device *d = row;
	memset(d, 0, sizeof(*d));
	if (!col_text(stmt, 0, d->id, sizeof(d->id)) ||
	    !col_text(stmt, 1, d->account_id, sizeof(d->account_id)) ||
	    !col_text(stmt, 2, d->eas_device_id, sizeof(d->eas_device_id)) ||
	    !col_text(stmt, 3, d->device_type, sizeof(d->device_type)) ||
	    !col_text(stmt, 4, d->user_agent, sizeof(d->user_agent)) ||
	    !col_blob_exact(stmt, 5, d->token_hash, sizeof(d->token_hash)) ||
	    !col_text(stmt, 9, d->policy_key, sizeof(d->policy_key)))
		return sq_malformed(st, "device", error_r);
	d->created_ms = sqlite3_column_int64(stmt, 6);
	d->last_seen_ms = sqlite3_column_int64(stmt, 7);
	d->tombstoned_ms = col_time(stmt, 8);
	return 0;
}

/* row: struct store_envelope **, set to one new allocation holding the
 * struct and both blobs. */
static int read_envelope(struct sq_store *st, sqlite3_stmt *stmt, void *row,
			 const char **error_r)
{
	struct store_envelope **env_r = row;
	int64_t key_id = sqlite3_column_int64(stmt, 0);
	const void *cred = sqlite3_column_blob(stmt, 1);
	int cred_len = sqlite3_column_bytes(stmt, 1);
	const void *dek = sqlite3_column_blob(stmt, 2);
	int dek_len = sqlite3_column_bytes(stmt, 2);
	if (cred == NULL || dek == NULL || cred_len <= 0 || dek_len <= 0 || key_id < 0 ||
	    key_id > UINT32_MAX)
		return sq_malformed(st, "envelope", error_r);

	struct store_envelope *env =
		store_xcalloc(1, sizeof(*env) + (size_t)cred_len + (size_t)dek_len);
	uint8_t *p = (uint8_t *)(env + 1);
	memcpy(p, cred, (size_t)cred_len);
	memcpy(p + cred_len, dek, (size_t)dek_len);
	env->key_id = (uint32_t)key_id;
	env->credential = p;
	env->credential_len = (size_t)cred_len;
	env->wrapped_dek = p + cred_len;
	env->wrapped_dek_len = (size_t)dek_len;
	env->updated_ms = sqlite3_column_int64(stmt, 3);
	*env_r = env;
	return 0;
}

static int read_collection(struct sq_store *st, sqlite3_stmt *stmt, void *row,
			   const char **error_r)
{
	struct store_collection *c = row;
	memset(c, 0, sizeof(*c));
	if (!col_text(stmt, 0, c->collection_id, sizeof(c->collection_id)) ||
	    !col_text(stmt, 1, c->parent_id, sizeof(c->parent_id)) ||
	    !col_text(stmt, 2, c->sync_key, sizeof(c->sync_key)) ||
	    !col_text(stmt, 3, c->display_name, sizeof(c->display_name)))
		return sq_malformed(st, "collection", error_r);
	c->type = (int32_t)sqlite3_column_int64(stmt, 4);
	return 0;
}

/* What read_item() needs besides the row: the ids it was looked up by. */
struct item_read {
	const char *collection_id;
	const char *item_id;
	struct store_item *item; /* out: one allocation, struct + ids + blob */
};

static int read_item(struct sq_store *st, sqlite3_stmt *stmt, void *row, const char **error_r)
{
	struct item_read *r = row;
	const void *sealed = sqlite3_column_blob(stmt, 0);
	int len = sqlite3_column_bytes(stmt, 0);
	if (sealed == NULL || len <= 0)
		return sq_malformed(st, "item", error_r);
	size_t coll_len = strlen(r->collection_id) + 1;
	size_t id_len = strlen(r->item_id) + 1;
	struct store_item *item =
		store_xcalloc(1, sizeof(*item) + coll_len + id_len + (size_t)len);
	char *p = (char *)(item + 1);
	memcpy(p, r->collection_id, coll_len);
	memcpy(p + coll_len, r->item_id, id_len);
	memcpy(p + coll_len + id_len, sealed, (size_t)len);
	item->collection_id = p;
	item->item_id = p + coll_len;
	item->sealed = (const uint8_t *)(p + coll_len + id_len);
	item->sealed_len = (size_t)len;
	item->updated_ms = sqlite3_column_int64(stmt, 1);
	r->item = item;
	return 0;
}

static int read_push(struct sq_store *st, sqlite3_stmt *stmt, void *row, const char **error_r)
{
	struct store_push_sub *p = row;
	memset(p, 0, sizeof(*p));
	const void *params = sqlite3_column_blob(stmt, 4);
	int n = sqlite3_column_bytes(stmt, 4);
	if (!col_text(stmt, 0, p->id, sizeof(p->id)) ||
	    !col_text(stmt, 1, p->account_id, sizeof(p->account_id)) ||
	    !col_text(stmt, 2, p->type, sizeof(p->type)) ||
	    !col_text(stmt, 3, p->endpoint, sizeof(p->endpoint)) || n < 0 ||
	    (size_t)n > sizeof(p->params) || (n > 0 && params == NULL))
		return sq_malformed(st, "push subscription", error_r);
	if (n > 0)
		memcpy(p->params, params, (size_t)n);
	p->params_len = (size_t)n;
	p->created_ms = sqlite3_column_int64(stmt, 5);
	p->expires_ms = col_time(stmt, 6);
	return 0;
}

static int read_block_rule(struct sq_store *st, sqlite3_stmt *stmt, void *row,
			   const char **error_r)
{
	struct store_block_rule *r = row;
	char kind[32];
	memset(r, 0, sizeof(*r));
	/* A rule this build cannot read must not be skipped silently: it
	 * would not be enforced. The whole list fails instead. */
	if (!col_text(stmt, 1, kind, sizeof(kind)) ||
	    store_block_kind_parse(kind, &r->kind) < 0 ||
	    !col_text(stmt, 2, r->pattern, sizeof(r->pattern)) ||
	    !col_text(stmt, 3, r->note, sizeof(r->note)))
		return sq_malformed(st, "block rule", error_r);
	r->id = sqlite3_column_int64(stmt, 0);
	r->created_ms = sqlite3_column_int64(stmt, 4);
	return 0;
}

static int read_audit(struct sq_store *st, sqlite3_stmt *stmt, void *row, const char **error_r)
{
	struct store_audit *e = row;
	char event[32];
	memset(e, 0, sizeof(*e));
	if (!col_text(stmt, 2, event, sizeof(event)) ||
	    !col_text(stmt, 3, e->account_id, sizeof(e->account_id)) ||
	    !col_text(stmt, 4, e->device, sizeof(e->device)) ||
	    !col_text(stmt, 5, e->detail, sizeof(e->detail)))
		return sq_malformed(st, "audit", error_r);
	e->id = sqlite3_column_int64(stmt, 0);
	e->time_ms = sqlite3_column_int64(stmt, 1);
	e->event = store_audit_event_parse(event);
	return 0;
}

static int read_stats(struct sq_store *st, sqlite3_stmt *stmt, void *row, const char **error_r)
{
	struct store_stats *s = row;
	int64_t *const fields[] = {&s->accounts,    &s->devices, &s->envelopes,
				   &s->collections, &s->items,	 &s->push_subs,
				   &s->block_rules, &s->leases,	 &s->audit};
	(void)st;
	(void)error_r;
	for (int i = 0; i < (int)(sizeof(fields) / sizeof(fields[0])); i++)
		*fields[i] = sqlite3_column_int64(stmt, i);
	return 0;
}

/* row: int64_t * (may be NULL), set to the first column: the value of an
 * INSERT or UPDATE ... RETURNING. */
static int read_int64(struct sq_store *st, sqlite3_stmt *stmt, void *row, const char **error_r)
{
	int64_t *value_r = row;
	(void)st;
	(void)error_r;
	if (value_r != NULL)
		*value_r = sqlite3_column_int64(stmt, 0);
	return 0;
}

/* ---- stepping through rows ---- */

/* Called by sq_each() for each row, with the ctx given there: returns 0 for
 * the next row, 1 to stop without stepping again, < 0 on error. */
typedef int row_fn(struct sq_store *st, sqlite3_stmt *stmt, void *ctx, const char **error_r);

/* Runs the query id with args, calling fn for each row until the rows end
 * or fn stops or fails; resets the statement. Returns 0 or the first
 * error. */
static int sq_each(struct sq_store *st, enum sq_stmt_id id, const struct sq_arg *args,
		   row_fn *fn, void *ctx, const char **error_r)
{
	sqlite3_stmt *stmt;
	int ret = sq_stmt(st, id, args, &stmt, error_r);
	if (ret < 0)
		return ret;
	while ((ret = sq_next(st, stmt, error_r)) == 1 && (ret = fn(st, stmt, ctx, error_r)) == 0)
		;
	sq_reset(stmt);
	return ret < 0 ? ret : 0;
}

/* ctx: bool *, set when there is a row. */
static int note_row(struct sq_store *st, sqlite3_stmt *stmt, void *ctx, const char **error_r)
{
	bool *found = ctx;
	(void)st;
	(void)stmt;
	(void)error_r;
	*found = true;
	return 1;
}

/* Runs the query id with args: 1 if it returns a row, 0 if none, < 0 on
 * error. */
static int sq_exists(struct sq_store *st, enum sq_stmt_id id, const struct sq_arg *args,
		     const char **error_r)
{
	bool found = false;
	int ret = sq_each(st, id, args, note_row, &found, error_r);
	return ret < 0 ? ret : found;
}

/* What sq_get_one() reads its row with, and whether there was one. */
struct one_row {
	read_row_fn *read;
	void *row;
	bool found;
};

static int read_first(struct sq_store *st, sqlite3_stmt *stmt, void *ctx, const char **error_r)
{
	struct one_row *one = ctx;
	int ret = one->read(st, stmt, one->row, error_r);
	one->found = true;
	return ret < 0 ? ret : 1;
}

/* Runs the query id with args, expected to return at most one row, read
 * into row with read(). No row is HK_ERR_NOT_FOUND, "<what> not found". */
static int sq_get_one(struct sq_store *st, enum sq_stmt_id id, const struct sq_arg *args,
		      read_row_fn *read, void *row, const char *what, const char **error_r)
{
	struct one_row one = {read, row, false};
	int ret = sq_each(st, id, args, read_first, &one, error_r);
	if (ret == 0 && !one.found)
		ret = sq_not_found(st, what, error_r);
	return ret;
}

/* Makes room for element n of a growing array. */
static void *grow(void *array, size_t n, size_t *cap, size_t size)
{
	if (n < *cap)
		return array;
	*cap = *cap == 0 ? 8 : *cap * 2;
	return store_xreallocarray(array, *cap, size);
}

/* Lists stop at STORE_UNPAGED_MAX rows with an error, never silently: a
 * truncated block rule list would leave rules unenforced. */
static int list_full(struct sq_store *st, sqlite3_stmt *stmt, size_t n, const char **error_r)
{
	if (n < STORE_UNPAGED_MAX)
		return 0;
	return store_error(&st->store, HK_ERR_TOO_LONG, error_r, "%s: more than %d rows",
			   sq_what(st, stmt), STORE_UNPAGED_MAX);
}

/* A growing array of fixed-size rows, each read with read. */
struct collect {
	size_t size;
	read_row_fn *read;
	uint8_t *array;
	size_t n, cap;
};

static int collect_row(struct sq_store *st, sqlite3_stmt *stmt, void *ctx, const char **error_r)
{
	struct collect *c = ctx;
	int ret;
	if ((ret = list_full(st, stmt, c->n, error_r)) < 0)
		return ret;
	c->array = grow(c->array, c->n, &c->cap, c->size);
	if ((ret = c->read(st, stmt, c->array + c->n * c->size, error_r)) < 0)
		return ret;
	c->n++;
	return 0;
}

/* Runs the query id with args to the end, reading each row with read()
 * into a new array of elements of size bytes. *array_r is NULL when there
 * are no rows. On failure nothing is returned. */
static int sq_collect(struct sq_store *st, enum sq_stmt_id id, const struct sq_arg *args,
		      size_t size, read_row_fn *read, void **array_r, size_t *count_r,
		      const char **error_r)
{
	struct collect c = {.size = size, .read = read};
	int ret = sq_each(st, id, args, collect_row, &c, error_r);
	if (ret < 0) {
		free(c.array);
		return ret;
	}
	*array_r = c.array;
	*count_r = c.n;
	return 0;
}

/* ---- transactions ---- */

/* Runs SQL that is not a cached statement (setup, migrations); what names
 * it in the error. */
static int sq_exec(struct sq_store *st, const char *what, const char *sql, const char **error_r)
{
	if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return store_error(&st->store, sq_code(sqlite3_extended_errcode(st->db)), error_r,
				   "%s: %s", what, sqlite3_errmsg(st->db));
	return 0;
}

/* The cleanup paths below log their own failures rather than report
 * them: *error_r already points at the error that made them run, in the
 * same buffer, and must keep saying so. */

static void sq_rollback(struct sq_store *st)
{
	/* Some errors (I/O, full disk) roll back by themselves. Never vetoed
	 * by the step hook: a rollback must always happen. */
	if (!sqlite3_get_autocommit(st->db) &&
	    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
		log_err("store: rollback: %s", sqlite3_errmsg(st->db));
}

static int sq_set_durability(struct sq_store *st, enum sq_durability durability)
{
	return sqlite3_exec(st->db,
			    durability == SQ_DURABLE ? "PRAGMA synchronous = FULL"
						     : "PRAGMA synchronous = NORMAL",
			    NULL, NULL, NULL);
}

static void sq_restore_durability(struct sq_store *st, enum sq_durability durability)
{
	if (durability == SQ_DURABLE && sq_set_durability(st, SQ_NORMAL) != SQLITE_OK)
		log_warn("store: restore synchronous=NORMAL: %s", sqlite3_errmsg(st->db));
}

static int sq_begin(struct sq_store *st, enum sq_durability durability, const char **error_r)
{
	int ret;
	if (durability == SQ_DURABLE && sq_set_durability(st, SQ_DURABLE) != SQLITE_OK)
		return store_error(&st->store, HK_ERR_STORE, error_r, "set synchronous=FULL: %s",
				   sqlite3_errmsg(st->db));
	if ((ret = sq_run(st, SQ_BEGIN, NO_ARGS, NULL, error_r)) < 0) {
		sq_restore_durability(st, durability);
		return ret;
	}
	return 0;
}

/* Ends the transaction sq_begin() started: commits if ret is 0, else rolls
 * back. Returns ret, or the commit's error (after rolling back). */
static int sq_finish(struct sq_store *st, int ret, enum sq_durability durability,
		     const char **error_r)
{
	if (ret == 0)
		ret = sq_run(st, SQ_COMMIT, NO_ARGS, NULL, error_r);
	if (ret < 0)
		sq_rollback(st);
	sq_restore_durability(st, durability);
	return ret;
}

/* Moves the zeroed pages of a committed delete into the main file and
 * empties the WAL, whose older frames may still hold the deleted bytes.
 * The delete stands either way: a checkpoint that cannot finish (another
 * process reads an old snapshot for longer than the busy timeout, which is
 * how long this may wait) only delays the shredding to a later one. */
static void sq_shred(struct sq_store *st)
{
	int rc = sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	if (rc != SQLITE_OK)
		log_warn("store: checkpoint after delete incomplete: %s", sqlite3_errmsg(st->db));
}

/* ---- open and close ---- */

static _Thread_local char open_error[STORE_ERROR_MAX];

static int open_fail(int code, const char **error_r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int open_fail(int code, const char **error_r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(open_error, sizeof(open_error), fmt, ap);
	va_end(ap);
	*error_r = open_error;
	return code;
}

/* An existing file must be a regular file without group or other access. */
static int check_mode(const char *path, bool must_exist, const char **error_r)
{
	struct stat st;
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT && !must_exist)
			return 0;
		return open_fail(HK_ERR_IO, error_r, "%s: %s", path, strerror(errno));
	}
	if (!S_ISREG(st.st_mode))
		return open_fail(HK_ERR_PERM, error_r, "%s: not a regular file", path);
	if ((st.st_mode & 077) != 0)
		return open_fail(HK_ERR_PERM, error_r,
				 "%s: mode %03o gives group or other access; want 0600", path,
				 (unsigned)(st.st_mode & 0777));
	return 0;
}

/* Creates the database file 0600 whatever the umask, or checks the mode of
 * the existing one and of any -wal and -shm beside it. */
static int prepare_files(const char *path, const char **error_r)
{
	char side[4096];
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd >= 0) {
		int ret = 0;
		if (fchmod(fd, 0600) < 0)
			ret = open_fail(HK_ERR_IO, error_r, "%s: chmod: %s", path,
					strerror(errno));
		close(fd);
		if (ret < 0)
			return ret;
	} else if (errno != EEXIST) {
		return open_fail(HK_ERR_IO, error_r, "%s: %s", path, strerror(errno));
	}
	int ret = check_mode(path, true, error_r);
	for (size_t i = 0; ret == 0 && i < 2; i++) {
		static const char *const suffixes[] = {"-wal", "-shm"};
		int n = snprintf(side, sizeof(side), "%s%s", path, suffixes[i]);
		if (n < 0 || (size_t)n >= sizeof(side))
			return open_fail(HK_ERR_TOO_LONG, error_r, "database path too long");
		ret = check_mode(side, false, error_r);
	}
	return ret;
}

static int pragma_int(struct sq_store *st, const char *sql, int64_t *value_r)
{
	sqlite3_stmt *stmt;
	int ret = -1;
	if (sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(stmt) == SQLITE_ROW) {
		*value_r = sqlite3_column_int64(stmt, 0);
		ret = 0;
	}
	sqlite3_finalize(stmt);
	return ret;
}

static int configure(struct sq_store *st, const char **error_r)
{
	const char *error;
	int64_t fk = 0, secure = 0;
	sqlite3_extended_result_codes(st->db, 1);
	/* Hardening: no writable_schema tricks, no SQL functions from the
	 * schema running with our privileges. */
	sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(st->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	sqlite3_busy_timeout(st->db, STORE_SQLITE_BUSY_MS);

	sqlite3_stmt *stmt;
	bool wal = false;
	if (sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1, &stmt, NULL) == SQLITE_OK) {
		wal = sqlite3_step(stmt) == SQLITE_ROW &&
		      sqlite3_column_text(stmt, 0) != NULL &&
		      strcmp((const char *)sqlite3_column_text(stmt, 0), "wal") == 0;
		sqlite3_finalize(stmt);
	}
	if (!wal)
		return open_fail(HK_ERR_STORE, error_r, "cannot enable WAL: %s",
				 sqlite3_errmsg(st->db));
	if (sq_exec(st, "configure",
		    "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;"
		    " PRAGMA secure_delete = ON",
		    &error) < 0)
		return open_fail(HK_ERR_STORE, error_r, "%s", error);
	/* Both are silently ignored by builds without them; we rely on both. */
	if (pragma_int(st, "PRAGMA foreign_keys", &fk) < 0 || fk != 1 ||
	    pragma_int(st, "PRAGMA secure_delete", &secure) < 0 || secure != 1)
		return open_fail(HK_ERR_STORE, error_r,
				 "this SQLite lacks foreign keys or secure_delete");
	return 0;
}

/* Applies the migrations the database lacks, each in its own transaction.
 * A database from a newer build is refused: this build would not know what
 * its tables mean. */
static int migrate(struct sq_store *st, const char **error_r)
{
	const int64_t latest = (int64_t)store_sqlite_migration_count;
	const char *error = NULL;
	int64_t version = 0;
	char sql[64];
	int ret = 0;

	if (pragma_int(st, "PRAGMA user_version", &version) < 0)
		return open_fail(HK_ERR_STORE, error_r, "read schema version: %s",
				 sqlite3_errmsg(st->db));
	while (version < latest) {
		if ((ret = sq_exec(st, "begin", "BEGIN IMMEDIATE", &error)) < 0)
			break;
		/* Another process may have migrated while we waited for the lock. */
		if (pragma_int(st, "PRAGMA user_version", &version) < 0) {
			ret = store_error(&st->store, HK_ERR_STORE, &error,
					  "read schema version: %s", sqlite3_errmsg(st->db));
		} else if (version < latest) {
			snprintf(sql, sizeof(sql), "PRAGMA user_version = %" PRId64, version + 1);
			if ((ret = sq_exec(st, "migrate", store_sqlite_migrations[version],
					   &error)) == 0)
				ret = sq_exec(st, "set schema version", sql, &error);
		}
		if (ret == 0)
			ret = sq_exec(st, "commit", "COMMIT", &error);
		if (ret < 0) {
			sq_rollback(st);
			break;
		}
		if (version < latest) {
			version++;
			log_info("store: database schema migrated to version %" PRId64, version);
		}
	}
	if (ret < 0)
		return open_fail(ret, error_r, "schema migration to version %" PRId64 " failed: %s",
				 version + 1, error);
	if (version > latest)
		return open_fail(HK_ERR_VERSION, error_r,
				 "database schema version %" PRId64
				 " is newer than this build's %" PRId64 "; refusing to open it",
				 version, latest);
	return 0;
}

static void sq_close(struct store *store)
{
	struct sq_store *st = sq(store);
	for (size_t i = 0; i < SQ_STMT_COUNT; i++)
		sqlite3_finalize(st->stmts[i]);
	if (sqlite3_close(st->db) != SQLITE_OK)
		log_err("store: close: %s", sqlite3_errmsg(st->db));
	free(st);
}

static int sq_open(const char *params, struct store **store_r, const char **error_r)
{
	int ret;
	if (params[0] == '\0')
		return open_fail(HK_ERR_INVAL, error_r, "database path missing");
	if ((ret = prepare_files(params, error_r)) < 0)
		return ret;

	struct sq_store *st = store_xcalloc(1, sizeof(*st));
	st->store.drv = &store_driver_sqlite;
	/* The file exists already: no SQLITE_OPEN_CREATE, so a race that
	 * removed it fails instead of creating one with SQLite's mode. */
	int rc = sqlite3_open_v2(params, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW,
				 NULL);
	if (rc != SQLITE_OK) {
		ret = open_fail(HK_ERR_STORE, error_r, "%s: %s", params,
				st->db != NULL ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
		goto fail;
	}
	if ((ret = configure(st, error_r)) < 0 || (ret = migrate(st, error_r)) < 0)
		goto fail;
	*store_r = &st->store;
	return 0;
fail:
	sq_close(&st->store);
	return ret;
}

static void sq_set_step_hook(struct store *store, store_step_hook_fn *hook, void *ctx)
{
	struct sq_store *st = sq(store);
	st->hook = hook;
	st->hook_ctx = ctx;
}

/* ---- shared write helpers ---- */

static int insert_audit(struct sq_store *st, const struct store_audit *e, int64_t *id_r,
			const char **error_r)
{
	return sq_get_one(st, SQ_AUDIT_INSERT,
			  ARGS(ARG_INT(e->time_ms), ARG_TEXT(store_audit_event_name(e->event)),
			       ARG_TEXT_OPT(e->account_id), ARG_TEXT_OPT(e->device),
			       ARG_TEXT(e->detail)),
			  read_int64, id_r, "audit id", error_r);
}

/* Bumps the account's change counter inside the caller's transaction;
 * *change_r (may be NULL) gets the new value. */
static int bump_change(struct sq_store *st, const char *account_id, int64_t *change_r,
		       const char **error_r)
{
	return sq_get_one(st, SQ_ACCOUNT_BUMP, ARGS(ARG_TEXT(account_id)), read_int64, change_r,
			  "account", error_r);
}

/* sq_finish() for the cache writes: on success *change_r (may be NULL)
 * gets change, the account's change counter. */
static int finish_change(struct sq_store *st, int ret, int64_t change, int64_t *change_r,
			 const char **error_r)
{
	ret = sq_finish(st, ret, SQ_NORMAL, error_r);
	if (ret == 0 && change_r != NULL)
		*change_r = change;
	return ret;
}

/* ---- accounts ---- */

static int sq_account_create(struct store *store, const struct store_account *a,
			     const struct store_device *d, const struct store_envelope *e,
			     const struct store_audit *audit, const char **error_r)
{
	struct sq_store *st = sq(store);
	int ret;

	if ((ret = sq_begin(st, SQ_DURABLE, error_r)) < 0)
		return ret;

	/* One account per registration of a device with a mail account. */
	ret = sq_exists(st, SQ_ACCOUNT_DUPLICATE,
			ARGS(ARG_TEXT(a->server_url), ARG_TEXT(a->username),
			     ARG_TEXT(d->eas_device_id)),
			error_r);
	if (ret == 1)
		ret = store_error(store, HK_ERR_EXISTS, error_r,
				  "this device is already registered for this user");
	if (ret < 0)
		goto out;

	if ((ret = sq_run(st, SQ_ACCOUNT_INSERT,
			  ARGS(ARG_TEXT(a->id), ARG_TEXT(a->server_url), ARG_TEXT(a->username),
			       ARG_TEXT_OPT(a->email), ARG_BLOB(a->salt, sizeof(a->salt)),
			       ARG_TEXT(store_account_state_name(a->state)),
			       ARG_INT(a->created_ms), ARG_INT(a->last_activity_ms),
			       ARG_TIME_OPT(a->flushed_ms), ARG_INT(a->change_counter),
			       ARG_TEXT(a->folder_sync_key)),
			  NULL, error_r)) < 0)
		goto out;
	if ((ret = sq_run(st, SQ_DEVICE_INSERT,
			  ARGS(ARG_TEXT(d->id), ARG_TEXT(d->account_id),
			       ARG_TEXT(d->eas_device_id), ARG_TEXT(d->device_type),
			       ARG_TEXT(d->user_agent),
			       ARG_BLOB(d->token_hash, sizeof(d->token_hash)),
			       ARG_INT(d->created_ms), ARG_INT(d->last_seen_ms),
			       ARG_TIME_OPT(d->tombstoned_ms), ARG_TEXT(d->policy_key)),
			  NULL, error_r)) < 0)
		goto out;
	if ((ret = sq_run(st, SQ_ENVELOPE_INSERT,
			  ARGS(ARG_TEXT(d->id), ARG_INT(e->key_id),
			       ARG_BLOB(e->credential, e->credential_len),
			       ARG_BLOB(e->wrapped_dek, e->wrapped_dek_len),
			       ARG_INT(e->updated_ms)),
			  NULL, error_r)) < 0)
		goto out;

	if (audit != NULL)
		ret = insert_audit(st, audit, NULL, error_r);
out:
	return sq_finish(st, ret, SQ_DURABLE, error_r);
}

static int sq_account_get(struct store *store, const char *id, struct store_account *account_r,
			  const char **error_r)
{
	return sq_get_one(sq(store), SQ_ACCOUNT_GET, ARGS(ARG_TEXT(id)), read_account, account_r,
			  "account", error_r);
}

static int sq_account_find(struct store *store, const char *server_url, const char *username,
			   const char *eas_device_id, struct store_account *account_r,
			   const char **error_r)
{
	return sq_get_one(sq(store), SQ_ACCOUNT_FIND,
			  ARGS(ARG_TEXT(server_url), ARG_TEXT(username), ARG_TEXT(eas_device_id)),
			  read_account, account_r, "account", error_r);
}

static int sq_account_list(struct store *store, const char *after_id, unsigned limit,
			   struct store_account_entry **entries_r, size_t *count_r,
			   const char **error_r)
{
	void *entries;
	int ret = sq_collect(sq(store), SQ_ACCOUNT_LIST, ARGS(ARG_TEXT(after_id), ARG_INT(limit)),
			     sizeof(**entries_r), read_account_entry, &entries, count_r, error_r);
	if (ret == 0)
		*entries_r = entries;
	return ret;
}

static int sq_account_set_state(struct store *store, const char *id,
				enum store_account_state state, int64_t now_ms,
				const char **error_r)
{
	/* Flushed stamps the time; active clears it; the others keep it. */
	return sq_run_row(sq(store), SQ_ACCOUNT_SET_STATE,
			  ARGS(ARG_TEXT(id), ARG_TEXT(store_account_state_name(state)),
			       ARG_TIME_OPT(state == STORE_ACCOUNT_FLUSHED ? now_ms : 0),
			       ARG_INT(state == STORE_ACCOUNT_FLUSHED ||
				       state == STORE_ACCOUNT_ACTIVE)),
			  "account", error_r);
}

/* Deletes one account and appends audit (may be NULL), in one durable
 * transaction; the schema's cascades take everything hanging off the
 * account. With purge set, the account goes only if it is still inactive
 * since before inactive_before_ms and not wiped (checked in the DELETE
 * itself, so activity that raced the purge wins), and *deleted_r says
 * whether it went; without, a missing account is HK_ERR_NOT_FOUND. */
static int delete_account(struct sq_store *st, const char *id, bool purge,
			  int64_t inactive_before_ms, const struct store_audit *audit,
			  bool *deleted_r, const char **error_r)
{
	int64_t changes = 0;
	int ret;

	*deleted_r = false;
	if ((ret = sq_begin(st, SQ_DURABLE, error_r)) < 0)
		return ret;
	if (purge) {
		ret = sq_run(st, SQ_ACCOUNT_DELETE_INACTIVE,
			     ARGS(ARG_TEXT(id), ARG_INT(inactive_before_ms),
				  ARG_TEXT(store_account_state_name(STORE_ACCOUNT_WIPED))),
			     &changes, error_r);
	} else {
		ret = sq_run(st, SQ_ACCOUNT_DELETE, ARGS(ARG_TEXT(id)), &changes, error_r);
		ret = expect_row(st, ret, changes, "account", error_r);
	}
	if (ret == 0 && changes > 0 && audit != NULL)
		ret = insert_audit(st, audit, NULL, error_r);
	ret = sq_finish(st, ret, SQ_DURABLE, error_r);
	if (ret == 0)
		*deleted_r = changes > 0;
	return ret;
}

static int sq_account_delete(struct store *store, const char *id,
			     const struct store_audit *audit, const char **error_r)
{
	struct sq_store *st = sq(store);
	bool deleted;
	int ret = delete_account(st, id, false, 0, audit, &deleted, error_r);
	if (ret == 0)
		sq_shred(st);
	return ret;
}

static int sq_account_wipe(struct store *store, const char *id, int64_t now_ms,
			   const struct store_audit *audit, const char **error_r)
{
	/* Each deletes everything of the account in one table; collections
	 * take their items with them. Devices and the account row stay. */
	static const enum sq_stmt_id deletes[] = {
		SQ_ENVELOPES_DELETE_ACCOUNT,
		SQ_COLLECTIONS_DELETE_ACCOUNT,
		SQ_PUSH_DELETE_ACCOUNT,
		SQ_LEASE_DELETE_ACCOUNT,
	};
	struct sq_store *st = sq(store);
	int ret;

	if ((ret = sq_begin(st, SQ_DURABLE, error_r)) < 0)
		return ret;
	if ((ret = sq_run_row(st, SQ_ACCOUNT_WIPE,
			      ARGS(ARG_TEXT(id),
				   ARG_TEXT(store_account_state_name(STORE_ACCOUNT_WIPED))),
			      "account", error_r)) < 0)
		goto out;
	for (size_t i = 0; i < sizeof(deletes) / sizeof(deletes[0]); i++)
		if ((ret = sq_run(st, deletes[i], ARGS(ARG_TEXT(id)), NULL, error_r)) < 0)
			goto out;
	if ((ret = sq_run(st, SQ_DEVICES_TOMBSTONE, ARGS(ARG_TEXT(id), ARG_INT(now_ms)), NULL,
			  error_r)) < 0)
		goto out;
	if (audit != NULL)
		ret = insert_audit(st, audit, NULL, error_r);
out:
	ret = sq_finish(st, ret, SQ_DURABLE, error_r);
	if (ret == 0)
		sq_shred(st);
	return ret;
}

/* One page of accounts inactive since before a time and not wiped, in id
 * order. */
struct inactive_page {
	char ids[PURGE_PAGE][STORE_ID_MAX];
	int64_t last_activity[PURGE_PAGE];
	size_t n;
};

static int read_inactive(struct sq_store *st, sqlite3_stmt *stmt, void *ctx,
			 const char **error_r)
{
	struct inactive_page *page = ctx;
	if (!col_text(stmt, 0, page->ids[page->n], STORE_ID_MAX))
		return sq_malformed(st, "account", error_r);
	page->last_activity[page->n++] = sqlite3_column_int64(stmt, 1);
	return page->n < PURGE_PAGE ? 0 : 1;
}

static int sq_account_purge_inactive(struct store *store, int64_t before_ms, int64_t now_ms,
				     unsigned *count_r, const char **error_r)
{
	struct sq_store *st = sq(store);
	struct inactive_page page;
	char after[STORE_ID_MAX] = "";
	int ret;

	/* A page at a time, and the deletes after the query is done: a
	 * statement must not be stepping while others write. */
	do {
		page.n = 0;
		if ((ret = sq_each(st, SQ_ACCOUNT_INACTIVE,
				   ARGS(ARG_INT(before_ms),
					ARG_TEXT(store_account_state_name(STORE_ACCOUNT_WIPED)),
					ARG_TEXT(after), ARG_INT(PURGE_PAGE)),
				   read_inactive, &page, error_r)) < 0)
			break;
		for (size_t i = 0; i < page.n && ret == 0; i++) {
			struct store_audit audit = {.time_ms = now_ms, .event = STORE_AUDIT_PURGE};
			bool deleted;
			memcpy(audit.account_id, page.ids[i], sizeof(audit.account_id));
			snprintf(audit.detail, sizeof(audit.detail),
				 "inactive since %" PRId64 " ms", page.last_activity[i]);
			ret = delete_account(st, page.ids[i], true, before_ms, &audit, &deleted,
					     error_r);
			if (ret == 0 && deleted)
				(*count_r)++;
		}
		if (page.n > 0)
			memcpy(after, page.ids[page.n - 1], sizeof(after));
	} while (ret == 0 && page.n == PURGE_PAGE);

	if (*count_r > 0)
		sq_shred(st);
	return ret;
}

/* ---- devices ---- */

static int sq_device_get(struct store *store, const char *id, struct store_device *device_r,
			 const char **error_r)
{
	return sq_get_one(sq(store), SQ_DEVICE_GET, ARGS(ARG_TEXT(id)), read_device, device_r,
			  "device", error_r);
}

static int sq_device_get_by_token(struct store *store,
				  const uint8_t token_hash[STORE_TOKEN_HASH_LEN],
				  struct store_device *device_r, const char **error_r)
{
	return sq_get_one(sq(store), SQ_DEVICE_GET_BY_TOKEN,
			  ARGS(ARG_BLOB(token_hash, STORE_TOKEN_HASH_LEN)), read_device, device_r,
			  "device", error_r);
}

static int sq_device_list(struct store *store, const char *account_id,
			  struct store_device **devices_r, size_t *count_r, const char **error_r)
{
	void *devices;
	int ret = sq_collect(sq(store), SQ_DEVICE_LIST, ARGS(ARG_TEXT(account_id)),
			     sizeof(**devices_r), read_device, &devices, count_r, error_r);
	if (ret == 0)
		*devices_r = devices;
	return ret;
}

/* Activity of a device, in one transaction: its last_seen_ms and its
 * account's last_activity_ms; with an unlock's audit entry (not NULL),
 * also the account back to active (from flushed or re-register needed)
 * and the entry appended. */
static int record_activity(struct sq_store *st, const char *id, int64_t now_ms,
			   const struct store_audit *unlock_audit, const char **error_r)
{
	int ret;

	if ((ret = sq_begin(st, SQ_NORMAL, error_r)) < 0)
		return ret;
	/* All take ?1 = the device id; the touches ?2 = the time. */
	if ((ret = sq_run_row(st, SQ_DEVICE_TOUCH, ARGS(ARG_TEXT(id), ARG_INT(now_ms)), "device",
			      error_r)) == 0)
		ret = sq_run(st, SQ_ACCOUNT_TOUCH, ARGS(ARG_TEXT(id), ARG_INT(now_ms)), NULL,
			     error_r);
	if (ret == 0 && unlock_audit != NULL) {
		ret = sq_run(st, SQ_ACCOUNT_REACTIVATE, ARGS(ARG_TEXT(id)), NULL, error_r);
		if (ret == 0)
			ret = insert_audit(st, unlock_audit, NULL, error_r);
	}
	return sq_finish(st, ret, SQ_NORMAL, error_r);
}

static int sq_device_touch(struct store *store, const char *id, int64_t now_ms,
			   const char **error_r)
{
	return record_activity(sq(store), id, now_ms, NULL, error_r);
}

static int sq_device_unlocked(struct store *store, const char *id, int64_t now_ms,
			      const struct store_audit *audit, const char **error_r)
{
	return record_activity(sq(store), id, now_ms, audit, error_r);
}

static int sq_device_set_policy_key(struct store *store, const char *id, const char *policy_key,
				    const char **error_r)
{
	return sq_run_row(sq(store), SQ_DEVICE_SET_POLICY_KEY,
			  ARGS(ARG_TEXT(id), ARG_TEXT(policy_key)), "device", error_r);
}

/* ---- envelopes ---- */

static int sq_envelope_get(struct store *store, const char *device_id,
			   struct store_envelope **envelope_r, const char **error_r)
{
	return sq_get_one(sq(store), SQ_ENVELOPE_GET, ARGS(ARG_TEXT(device_id)), read_envelope,
			  envelope_r, "envelope", error_r);
}

static int sq_envelope_replace(struct store *store, const char *device_id,
			       const struct store_envelope *e, const char **error_r)
{
	return sq_run_row(sq(store), SQ_ENVELOPE_UPDATE,
			  ARGS(ARG_TEXT(device_id), ARG_INT(e->key_id),
			       ARG_BLOB(e->credential, e->credential_len),
			       ARG_BLOB(e->wrapped_dek, e->wrapped_dek_len),
			       ARG_INT(e->updated_ms)),
			  "envelope", error_r);
}

/* ---- sync state ---- */

static int sq_collection_put(struct store *store, const char *account_id,
			     const struct store_collection *c, const char **error_r)
{
	return sq_run(sq(store), SQ_COLLECTION_PUT,
		      ARGS(ARG_TEXT(account_id), ARG_TEXT(c->collection_id),
			   ARG_TEXT(c->parent_id), ARG_TEXT(c->sync_key),
			   ARG_TEXT(c->display_name), ARG_INT(c->type)),
		      NULL, error_r);
}

static int sq_collection_get(struct store *store, const char *account_id,
			     const char *collection_id, struct store_collection *collection_r,
			     const char **error_r)
{
	return sq_get_one(sq(store), SQ_COLLECTION_GET,
			  ARGS(ARG_TEXT(account_id), ARG_TEXT(collection_id)), read_collection,
			  collection_r, "collection", error_r);
}

static int sq_collection_list(struct store *store, const char *account_id,
			      struct store_collection **collections_r, size_t *count_r,
			      const char **error_r)
{
	void *collections;
	int ret = sq_collect(sq(store), SQ_COLLECTION_LIST, ARGS(ARG_TEXT(account_id)),
			     sizeof(**collections_r), read_collection, &collections, count_r,
			     error_r);
	if (ret == 0)
		*collections_r = collections;
	return ret;
}

static int sq_collection_delete(struct store *store, const char *account_id,
				const char *collection_id, const char **error_r)
{
	struct sq_store *st = sq(store);
	int ret;

	if ((ret = sq_begin(st, SQ_NORMAL, error_r)) < 0)
		return ret;
	if ((ret = sq_run_row(st, SQ_COLLECTION_DELETE,
			      ARGS(ARG_TEXT(account_id), ARG_TEXT(collection_id)), "collection",
			      error_r)) == 0)
		ret = bump_change(st, account_id, NULL, error_r);
	return sq_finish(st, ret, SQ_NORMAL, error_r);
}

static int set_folder_sync_key(struct sq_store *st, const char *account_id,
			       const char *sync_key, const char **error_r)
{
	return sq_run_row(st, SQ_FOLDER_SYNC_KEY_SET,
			  ARGS(ARG_TEXT(account_id), ARG_TEXT(sync_key)), "account", error_r);
}

static int sq_folder_sync_key_set(struct store *store, const char *account_id,
				  const char *sync_key, const char **error_r)
{
	return set_folder_sync_key(sq(store), account_id, sync_key, error_r);
}

static int sq_cache_clear(struct store *store, const char *account_id, const char **error_r)
{
	struct sq_store *st = sq(store);
	int ret;

	if ((ret = sq_begin(st, SQ_NORMAL, error_r)) < 0)
		return ret;
	if ((ret = bump_change(st, account_id, NULL, error_r)) == 0 &&
	    (ret = sq_run(st, SQ_COLLECTIONS_DELETE_ACCOUNT, ARGS(ARG_TEXT(account_id)), NULL,
			  error_r)) == 0)
		ret = set_folder_sync_key(st, account_id, "", error_r);
	return sq_finish(st, ret, SQ_NORMAL, error_r);
}

/* ---- items ---- */

/* Inserts or replaces item in the collection collection_id (whatever
 * item->collection_id says). */
static int put_item(struct sq_store *st, const char *account_id, const char *collection_id,
		    const struct store_item *item, const char **error_r)
{
	return sq_run(st, SQ_ITEM_PUT,
		      ARGS(ARG_TEXT(account_id), ARG_TEXT(collection_id), ARG_TEXT(item->item_id),
			   ARG_BLOB(item->sealed, item->sealed_len), ARG_INT(item->updated_ms)),
		      NULL, error_r);
}

/* Deletes one item; *changes_r gets 1, or 0 if there was none. */
static int delete_item(struct sq_store *st, const char *account_id, const char *collection_id,
		       const char *item_id, int64_t *changes_r, const char **error_r)
{
	return sq_run(st, SQ_ITEM_DELETE,
		      ARGS(ARG_TEXT(account_id), ARG_TEXT(collection_id), ARG_TEXT(item_id)),
		      changes_r, error_r);
}

static int sq_item_put(struct store *store, const char *account_id,
		       const struct store_item *items, size_t count, int64_t *change_r,
		       const char **error_r)
{
	struct sq_store *st = sq(store);
	int64_t change = 0;
	int ret;

	if ((ret = sq_begin(st, SQ_NORMAL, error_r)) < 0)
		return ret;
	if ((ret = bump_change(st, account_id, &change, error_r)) < 0)
		goto out;
	for (size_t i = 0; i < count; i++)
		if ((ret = put_item(st, account_id, items[i].collection_id, &items[i], error_r)) < 0)
			goto out;
out:
	return finish_change(st, ret, change, change_r, error_r);
}

static int sq_item_get(struct store *store, const char *account_id, const char *collection_id,
		       const char *item_id, struct store_item **item_r, const char **error_r)
{
	struct item_read r = {collection_id, item_id, NULL};
	int ret = sq_get_one(sq(store), SQ_ITEM_GET,
			     ARGS(ARG_TEXT(account_id), ARG_TEXT(collection_id), ARG_TEXT(item_id)),
			     read_item, &r, "item", error_r);
	if (ret < 0)
		return ret;
	*item_r = r.item;
	return 0;
}

static int sq_item_delete(struct store *store, const char *account_id,
			  const char *collection_id, const char *item_id, int64_t *change_r,
			  const char **error_r)
{
	struct sq_store *st = sq(store);
	int64_t changes = 0, change = 0;
	int ret;

	if ((ret = sq_begin(st, SQ_NORMAL, error_r)) < 0)
		return ret;
	ret = delete_item(st, account_id, collection_id, item_id, &changes, error_r);
	if ((ret = expect_row(st, ret, changes, "item", error_r)) == 0)
		ret = bump_change(st, account_id, &change, error_r);
	return finish_change(st, ret, change, change_r, error_r);
}

/* A growing list of item ids. */
struct id_collect {
	struct store_id_list *list;
	size_t cap;
};

static int collect_id(struct sq_store *st, sqlite3_stmt *stmt, void *ctx, const char **error_r)
{
	struct id_collect *c = ctx;
	struct store_id_list *list = c->list;
	const unsigned char *id = sqlite3_column_text(stmt, 0);
	int len = sqlite3_column_bytes(stmt, 0);
	int ret;
	if (id == NULL || len < 0)
		return sq_malformed(st, "item", error_r);
	if ((ret = list_full(st, stmt, list->count, error_r)) < 0)
		return ret;
	list->ids = grow(list->ids, list->count, &c->cap, sizeof(*list->ids));
	list->ids[list->count] = store_xcalloc(1, (size_t)len + 1);
	memcpy(list->ids[list->count++], id, (size_t)len);
	return 0;
}

static int sq_item_list(struct store *store, const char *account_id, const char *collection_id,
			struct store_id_list **ids_r, const char **error_r)
{
	struct id_collect c = {store_xcalloc(1, sizeof(struct store_id_list)), 0};
	int ret = sq_each(sq(store), SQ_ITEM_LIST,
			  ARGS(ARG_TEXT(account_id), ARG_TEXT(collection_id)), collect_id, &c,
			  error_r);
	if (ret < 0) {
		store_id_list_free(&c.list);
		return ret;
	}
	*ids_r = c.list;
	return 0;
}

static int sq_sync_apply(struct store *store, const char *account_id,
			 const struct store_sync_batch *b, int64_t *change_r,
			 const char **error_r)
{
	struct sq_store *st = sq(store);
	int64_t changes = 0, removed = 0, change = 0;
	int ret;

	if ((ret = sq_begin(st, SQ_NORMAL, error_r)) < 0)
		return ret;
	/* The key first: it also proves that the collection exists. */
	if ((ret = sq_run_row(st, SQ_COLLECTION_SET_KEY,
			      ARGS(ARG_TEXT(account_id), ARG_TEXT(b->collection_id),
				   ARG_TEXT(b->sync_key)),
			      "collection", error_r)) < 0)
		goto out;
	if (b->clear && (ret = sq_run(st, SQ_ITEMS_DELETE_COLLECTION,
				      ARGS(ARG_TEXT(account_id), ARG_TEXT(b->collection_id)),
				      &removed, error_r)) < 0)
		goto out;
	for (size_t i = 0; i < b->n_deletes; i++) {
		if ((ret = delete_item(st, account_id, b->collection_id, b->deletes[i], &changes,
				       error_r)) < 0)
			goto out;
		removed += changes;
	}
	for (size_t i = 0; i < b->n_puts; i++)
		if ((ret = put_item(st, account_id, b->collection_id, &b->puts[i], error_r)) < 0)
			goto out;
	if (removed > 0 || b->n_puts > 0)
		ret = bump_change(st, account_id, &change, error_r);
	else
		ret = sq_get_one(st, SQ_ACCOUNT_COUNTER, ARGS(ARG_TEXT(account_id)), read_int64,
				 &change, "account", error_r);
out:
	return finish_change(st, ret, change, change_r, error_r);
}

/* ---- push subscriptions ---- */

static int sq_push_add(struct store *store, const struct store_push_sub *p,
		       const char **error_r)
{
	/* params is an array, never NULL: empty binds a zero-length blob,
	 * which the NOT NULL column accepts. */
	return sq_run(sq(store), SQ_PUSH_ADD,
		      ARGS(ARG_TEXT(p->id), ARG_TEXT(p->account_id), ARG_TEXT(p->type),
			   ARG_TEXT(p->endpoint), ARG_BLOB(p->params, p->params_len),
			   ARG_INT(p->created_ms), ARG_TIME_OPT(p->expires_ms)),
		      NULL, error_r);
}

static int sq_push_list(struct store *store, const char *account_id,
			struct store_push_sub **subs_r, size_t *count_r, const char **error_r)
{
	void *subs;
	int ret = sq_collect(sq(store), SQ_PUSH_LIST, ARGS(ARG_TEXT(account_id)),
			     sizeof(**subs_r), read_push, &subs, count_r, error_r);
	if (ret == 0)
		*subs_r = subs;
	return ret;
}

static int sq_push_delete(struct store *store, const char *id, const char **error_r)
{
	return sq_run_row(sq(store), SQ_PUSH_DELETE, ARGS(ARG_TEXT(id)), "push subscription",
			  error_r);
}

static int sq_push_delete_expired(struct store *store, int64_t now_ms, unsigned *count_r,
				  const char **error_r)
{
	int64_t changes = 0;
	int ret = sq_run(sq(store), SQ_PUSH_DELETE_EXPIRED, ARGS(ARG_INT(now_ms)), &changes,
			 error_r);
	if (ret < 0)
		return ret;
	*count_r = (unsigned)changes;
	return 0;
}

/* ---- block rules ---- */

static int sq_block_add(struct store *store, const struct store_block_rule *r, int64_t *id_r,
			const char **error_r)
{
	return sq_get_one(sq(store), SQ_BLOCK_ADD,
			  ARGS(ARG_TEXT(store_block_kind_name(r->kind)), ARG_TEXT(r->pattern),
			       ARG_TEXT(r->note), ARG_INT(r->created_ms)),
			  read_int64, id_r, "block rule id", error_r);
}

static int sq_block_list(struct store *store, struct store_block_rule **rules_r,
			 size_t *count_r, const char **error_r)
{
	void *rules;
	int ret = sq_collect(sq(store), SQ_BLOCK_LIST, NO_ARGS, sizeof(**rules_r),
			     read_block_rule, &rules, count_r, error_r);
	if (ret == 0)
		*rules_r = rules;
	return ret;
}

static int sq_block_remove(struct store *store, int64_t id, const char **error_r)
{
	return sq_run_row(sq(store), SQ_BLOCK_REMOVE, ARGS(ARG_INT(id)), "block rule", error_r);
}

/* ---- audit ---- */

static int sq_audit_append(struct store *store, const struct store_audit *entry, int64_t *id_r,
			   const char **error_r)
{
	return insert_audit(sq(store), entry, id_r, error_r);
}

static int sq_audit_list(struct store *store, int64_t since_ms, const char *account_id,
			 unsigned limit, struct store_audit **entries_r, size_t *count_r,
			 const char **error_r)
{
	void *entries;
	int ret = sq_collect(sq(store), SQ_AUDIT_LIST,
			     ARGS(ARG_INT(since_ms), ARG_TEXT_OPT(account_id), ARG_INT(limit)),
			     sizeof(**entries_r), read_audit, &entries, count_r, error_r);
	if (ret == 0)
		*entries_r = entries;
	return ret;
}

/* ---- leases ---- */

/* Runs an acquire or renew: ?1 = account id, ?2 = node, ?3 = now, ?4 = the
 * new expiry. */
static int lease_write(struct sq_store *st, enum sq_stmt_id id, const char *account_id,
		       const char *node, int64_t now_ms, int64_t ttl_ms, int64_t *changes_r,
		       const char **error_r)
{
	return sq_run(st, id,
		      ARGS(ARG_TEXT(account_id), ARG_TEXT(node), ARG_INT(now_ms),
			   ARG_INT(now_ms + ttl_ms)),
		      changes_r, error_r);
}

static int lease_busy(struct sq_store *st, const char **error_r)
{
	return store_error(&st->store, HK_ERR_BUSY, error_r, "lease held by another node");
}

static int sq_lease_acquire(struct store *store, const char *account_id, const char *node,
			    int64_t now_ms, int64_t ttl_ms, const char **error_r)
{
	struct sq_store *st = sq(store);
	int64_t changes = 0;
	int ret = lease_write(st, SQ_LEASE_ACQUIRE, account_id, node, now_ms, ttl_ms, &changes,
			      error_r);
	if (ret == 0 && changes == 0)
		ret = lease_busy(st, error_r);
	return ret;
}

/* After a renew or release matched no lease of ours: another node's lease
 * is HK_ERR_BUSY, no lease at all HK_ERR_NOT_FOUND. */
static int lease_lost(struct sq_store *st, const char *account_id, const char **error_r)
{
	int ret = sq_exists(st, SQ_LEASE_EXISTS, ARGS(ARG_TEXT(account_id)), error_r);
	if (ret == 1)
		return lease_busy(st, error_r);
	if (ret == 0)
		return sq_not_found(st, "lease", error_r);
	return ret;
}

static int sq_lease_renew(struct store *store, const char *account_id, const char *node,
			  int64_t now_ms, int64_t ttl_ms, const char **error_r)
{
	struct sq_store *st = sq(store);
	int64_t changes = 0;
	int ret = lease_write(st, SQ_LEASE_RENEW, account_id, node, now_ms, ttl_ms, &changes,
			      error_r);
	if (ret == 0 && changes == 0)
		ret = lease_lost(st, account_id, error_r);
	return ret;
}

static int sq_lease_release(struct store *store, const char *account_id, const char *node,
			    const char **error_r)
{
	return sq_run_row(sq(store), SQ_LEASE_RELEASE, ARGS(ARG_TEXT(account_id), ARG_TEXT(node)),
			  "lease", error_r);
}

static int sq_stats(struct store *store, struct store_stats *stats_r, const char **error_r)
{
	return sq_get_one(sq(store), SQ_STATS, NO_ARGS, read_stats, stats_r, "stats", error_r);
}

const struct store_driver store_driver_sqlite = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.set_step_hook = sq_set_step_hook,
	.account_create = sq_account_create,
	.account_get = sq_account_get,
	.account_find = sq_account_find,
	.account_list = sq_account_list,
	.account_set_state = sq_account_set_state,
	.account_delete = sq_account_delete,
	.account_wipe = sq_account_wipe,
	.account_purge_inactive = sq_account_purge_inactive,
	.device_get = sq_device_get,
	.device_get_by_token = sq_device_get_by_token,
	.device_list = sq_device_list,
	.device_touch = sq_device_touch,
	.device_unlocked = sq_device_unlocked,
	.device_set_policy_key = sq_device_set_policy_key,
	.envelope_get = sq_envelope_get,
	.envelope_replace = sq_envelope_replace,
	.collection_put = sq_collection_put,
	.collection_get = sq_collection_get,
	.collection_list = sq_collection_list,
	.collection_delete = sq_collection_delete,
	.folder_sync_key_set = sq_folder_sync_key_set,
	.cache_clear = sq_cache_clear,
	.item_put = sq_item_put,
	.item_get = sq_item_get,
	.item_delete = sq_item_delete,
	.item_list = sq_item_list,
	.sync_apply = sq_sync_apply,
	.push_add = sq_push_add,
	.push_list = sq_push_list,
	.push_delete = sq_push_delete,
	.push_delete_expired = sq_push_delete_expired,
	.block_add = sq_block_add,
	.block_list = sq_block_list,
	.block_remove = sq_block_remove,
	.audit_append = sq_audit_append,
	.audit_list = sq_audit_list,
	.lease_acquire = sq_lease_acquire,
	.lease_renew = sq_lease_renew,
	.lease_release = sq_lease_release,
	.stats = sq_stats,
};
