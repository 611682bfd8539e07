#include "store/store-sqlite-migrations.h"

/* Notes that hold for every migration:
 * - Tables are STRICT, so a column holds exactly its declared type.
 * - Children refer to their account with ON DELETE CASCADE, so deleting an
 *   account row removes everything hanging off it in the same statement;
 *   the audit table is the exception on purpose (its rows outlive accounts).
 * - Upserts use ON CONFLICT DO UPDATE, never INSERT OR REPLACE: REPLACE
 *   deletes the old row first, which would fire the cascades.
 * - A migration runs in a transaction with foreign_keys=ON; one that must
 *   rebuild a table has to follow SQLite's twelve-step ALTER procedure. */
const char *const store_sqlite_migrations[] = {
	/* 1: the initial schema. */
	"CREATE TABLE accounts ("
	"  id TEXT PRIMARY KEY NOT NULL,"
	"  server_url TEXT NOT NULL,"
	"  username TEXT NOT NULL,"
	"  email TEXT,"
	"  account_salt BLOB NOT NULL CHECK (length(account_salt) = 16),"
	"  state TEXT NOT NULL,"
	"  created_ms INTEGER NOT NULL,"
	"  last_activity_ms INTEGER NOT NULL,"
	"  flushed_ms INTEGER,"
	"  change_counter INTEGER NOT NULL DEFAULT 0,"
	"  folder_sync_key TEXT NOT NULL DEFAULT ''"
	") STRICT;"
	"CREATE INDEX accounts_user ON accounts (server_url, username);"
	"CREATE INDEX accounts_activity ON accounts (last_activity_ms);"

	"CREATE TABLE devices ("
	"  id TEXT PRIMARY KEY NOT NULL,"
	"  account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,"
	"  eas_device_id TEXT NOT NULL,"
	"  device_type TEXT NOT NULL,"
	"  user_agent TEXT NOT NULL,"
	"  token_hash BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),"
	"  created_ms INTEGER NOT NULL,"
	"  last_seen_ms INTEGER NOT NULL,"
	"  tombstoned_ms INTEGER,"
	"  UNIQUE (account_id, eas_device_id)"
	") STRICT;"

	"CREATE TABLE envelopes ("
	"  device_id TEXT PRIMARY KEY NOT NULL REFERENCES devices (id) ON DELETE CASCADE,"
	"  key_id INTEGER NOT NULL,"
	"  credential BLOB NOT NULL,"
	"  wrapped_dek BLOB NOT NULL,"
	"  updated_ms INTEGER NOT NULL"
	") STRICT;"

	"CREATE TABLE collections ("
	"  account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,"
	"  collection_id TEXT NOT NULL,"
	"  parent_id TEXT NOT NULL,"
	"  sync_key TEXT NOT NULL,"
	"  display_name TEXT NOT NULL,"
	"  type INTEGER NOT NULL,"
	"  PRIMARY KEY (account_id, collection_id)"
	") STRICT;"

	/* Items hang off their collection, so deleting a collection (or its
	 * account) deletes its items, and an item cannot be cached for a
	 * collection the relay does not know. */
	"CREATE TABLE items ("
	"  account_id TEXT NOT NULL,"
	"  collection_id TEXT NOT NULL,"
	"  item_id TEXT NOT NULL,"
	"  sealed BLOB NOT NULL,"
	"  updated_ms INTEGER NOT NULL,"
	"  PRIMARY KEY (account_id, collection_id, item_id),"
	"  FOREIGN KEY (account_id, collection_id)"
	"    REFERENCES collections (account_id, collection_id) ON DELETE CASCADE"
	") STRICT;"

	"CREATE TABLE push_subscriptions ("
	"  id TEXT PRIMARY KEY NOT NULL,"
	"  account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,"
	"  type TEXT NOT NULL,"
	"  endpoint TEXT NOT NULL,"
	"  params BLOB NOT NULL,"
	"  created_ms INTEGER NOT NULL,"
	"  expires_ms INTEGER"
	") STRICT;"
	"CREATE INDEX push_subscriptions_account ON push_subscriptions (account_id);"
	"CREATE INDEX push_subscriptions_expiry ON push_subscriptions (expires_ms)"
	"  WHERE expires_ms IS NOT NULL;"

	/* AUTOINCREMENT: a removed rule's id is never handed out again, so an
	 * admin script holding an old id cannot remove a newer rule. */
	"CREATE TABLE block_rules ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  kind TEXT NOT NULL,"
	"  pattern TEXT NOT NULL,"
	"  note TEXT NOT NULL,"
	"  created_ms INTEGER NOT NULL,"
	"  UNIQUE (kind, pattern)"
	") STRICT;"

	/* account_id is deliberately not a foreign key: audit rows outlive
	 * the accounts they mention. The triggers make the table append-only
	 * for every connection, not just ours (DROP TABLE still works: the
	 * triggers stop mistakes, not a database owner). */
	"CREATE TABLE audit ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  time_ms INTEGER NOT NULL,"
	"  event TEXT NOT NULL,"
	"  account_id TEXT,"
	"  device TEXT,"
	"  detail TEXT NOT NULL"
	") STRICT;"
	"CREATE INDEX audit_time ON audit (time_ms);"
	"CREATE INDEX audit_account ON audit (account_id, time_ms);"
	"CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
	"  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;"
	"CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
	"  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;"

	"CREATE TABLE leases ("
	"  account_id TEXT PRIMARY KEY NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,"
	"  node TEXT NOT NULL,"
	"  expires_ms INTEGER NOT NULL"
	") STRICT;",

	/* 2: the PolicyKey the mail server gave the device's partnership
	 * (ActiveSync provisioning), so that a new sync session presents it
	 * instead of provisioning again. Not a secret. */
	"ALTER TABLE devices ADD COLUMN policy_key TEXT NOT NULL DEFAULT '';",
};

const size_t store_sqlite_migration_count =
	sizeof(store_sqlite_migrations) / sizeof(store_sqlite_migrations[0]);
