/* Unit tests of the store API over the SQLite driver: every table's
 * operations, their failure codes, the schema's guarantees (cascades,
 * append-only audit), migrations, file modes and secure deletion. */
#include "store/store-private.h"
#include "store/store-sqlite-migrations.h"
#include "test-store-util.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define T0 INT64_C(1700000000000)

static mode_t file_mode(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return (mode_t)-1;
	return st.st_mode & 07777;
}

static const char *side_path(const char *path, const char *suffix)
{
	static char buf[2][512];
	static unsigned next;
	char *b = buf[next++ % 2];
	snprintf(b, sizeof(buf[0]), "%s%s", path, suffix);
	return b;
}

/* ---- open, schema, migrations, files ---- */

static void test_open_creates_schema(void)
{
	const char *path = fresh_db_path();
	struct store *store = open_store(&store_driver_sqlite, path);
	REQUIRE(store != NULL);
	CHECK_INT(db_int(path, "PRAGMA user_version"), (int64_t)store_sqlite_migration_count);
	static const char *const tables[] = {"accounts", "devices",    "envelopes",
					     "collections", "items",   "push_subscriptions",
					     "block_rules", "audit",   "leases"};
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		char sql[128];
		snprintf(sql, sizeof(sql),
			 "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '%s'",
			 tables[i]);
		CHECK_INT(db_int(path, sql), 1);
	}
	CHECK_INT(db_int(path, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);

	/* Some data, then reopen: nothing migrates again, nothing is lost. */
	struct fixture f;
	fixture_init(&f, 1, T0);
	CHECK_INT(fixture_create(store, &f), 0);
	store_close(&store);
	CHECK(store == NULL);
	char *before = db_dump(path);
	store = open_store(&store_driver_sqlite, path);
	REQUIRE(store != NULL);
	/* A second handle on the same file works alongside. */
	struct store *second = open_store(&store_driver_sqlite, path);
	CHECK(second != NULL);
	struct store_account a;
	const char *error;
	CHECK_INT(store_account_get(second, f.account.id, &a, &error), 0);
	store_close(&second);
	store_close(&store);
	char *after = db_dump(path);
	CHECK_STR(before, after);
	free(before);
	free(after);
	store_close(&store); /* NULL-safe */
}

static void test_open_refuses_newer_version(void)
{
	const char *path = fresh_db_path();
	struct store *store = open_store(&store_driver_sqlite, path);
	REQUIRE(store != NULL);
	store_close(&store);
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %zu", store_sqlite_migration_count + 1);
	REQUIRE(db_exec(path, sql, NULL, 0) == 0);

	const char *error = NULL;
	CHECK_INT(store_open(&store_driver_sqlite, path, &store, &error), HK_ERR_VERSION);
	CHECK(store == NULL);
	CHECK(error != NULL && strstr(error, "newer") != NULL);
	/* Refusing changed nothing. */
	CHECK_INT(db_int(path, "PRAGMA user_version"), (int64_t)store_sqlite_migration_count + 1);
}

static void test_migration_failure_rolls_back(void)
{
	const char *path = fresh_db_path();
	/* A stray table that migration 1 collides with, half way through. */
	REQUIRE(db_exec(path, "CREATE TABLE leases (x)", NULL, 0) == 0);
	REQUIRE(chmod(path, 0600) == 0);
	struct store *store = NULL;
	const char *error = NULL;
	CHECK_INT(store_open(&store_driver_sqlite, path, &store, &error), HK_ERR_STORE);
	CHECK(store == NULL);
	CHECK(error != NULL && strstr(error, "migration to version 1") != NULL);
	/* All of migration 1 rolled back: no accounts table, version still 0. */
	CHECK_INT(db_int(path, "PRAGMA user_version"), 0);
	CHECK_INT(db_int(path, "SELECT count(*) FROM sqlite_schema WHERE name = 'accounts'"), 0);
}

static void test_file_modes(void)
{
	mode_t old = umask(022);
	const char *path = fresh_db_path();
	struct store *store = open_store(&store_driver_sqlite, path);
	REQUIRE(store != NULL);
	struct fixture f;
	fixture_init(&f, 1, T0);
	CHECK_INT(fixture_create(store, &f), 0);
	/* While open, all three files exist; none readable by others. */
	CHECK_INT(file_mode(path), 0600);
	CHECK_INT(file_mode(side_path(path, "-wal")), 0600);
	CHECK_INT(file_mode(side_path(path, "-shm")), 0600);
	store_close(&store);

	/* A restrictive umask does not leave the file unwritable either. */
	umask(0277);
	const char *path2 = fresh_db_path();
	store = open_store(&store_driver_sqlite, path2);
	CHECK(store != NULL);
	CHECK_INT(file_mode(path2), 0600);
	store_close(&store);
	umask(022);

	/* Loose modes on an existing database or its WAL are refused. */
	const char *error = NULL;
	REQUIRE(chmod(path, 0644) == 0);
	CHECK_INT(store_open(&store_driver_sqlite, path, &store, &error), HK_ERR_PERM);
	CHECK(error != NULL && strstr(error, "0600") != NULL);
	REQUIRE(chmod(path, 0600) == 0);
	FILE *wal = fopen(side_path(path, "-wal"), "w");
	REQUIRE(wal != NULL);
	fclose(wal);
	REQUIRE(chmod(side_path(path, "-wal"), 0640) == 0);
	CHECK_INT(store_open(&store_driver_sqlite, path, &store, &error), HK_ERR_PERM);
	CHECK(store == NULL);
	unlink(side_path(path, "-wal"));
	/* A symlink in place of the database is refused. */
	const char *link = fresh_db_path();
	REQUIRE(symlink(path, link) == 0);
	CHECK_INT(store_open(&store_driver_sqlite, link, &store, &error), HK_ERR_PERM);
	store = open_store(&store_driver_sqlite, path);
	CHECK(store != NULL);
	store_close(&store);
	umask(old);
}

static void test_open_bad_params(void)
{
	struct store *store = NULL;
	const char *error = NULL;
	CHECK_INT(store_open(&store_driver_sqlite, "", &store, &error), HK_ERR_INVAL);
	CHECK_INT(store_open(&store_driver_sqlite, test_path("no/such/dir.db"), &store, &error),
		  HK_ERR_IO);
	CHECK(store == NULL);
	CHECK_INT(store_open(NULL, "x", &store, &error), HK_ERR_INVAL);
}

/* ---- accounts and devices ---- */

static void test_account_create_get(void)
{
	const char *path = fresh_db_path();
	struct store *store = open_store(&store_driver_sqlite, path);
	REQUIRE(store != NULL);
	struct fixture f;
	const char *error;
	fixture_init(&f, 7, T0);
	f.account.email[0] = '\0'; /* optional: stored as NULL */
	REQUIRE(fixture_create(store, &f) == 0);

	struct store_account a;
	REQUIRE(store_account_get(store, f.account.id, &a, &error) == 0);
	CHECK_STR(a.id, f.account.id);
	CHECK_STR(a.server_url, f.account.server_url);
	CHECK_STR(a.username, f.account.username);
	CHECK_STR(a.email, "");
	CHECK_MEM(a.salt, f.account.salt, sizeof(a.salt));
	CHECK_INT(a.state, STORE_ACCOUNT_ACTIVE);
	CHECK_INT(a.created_ms, T0);
	CHECK_INT(a.last_activity_ms, T0);
	CHECK_INT(a.flushed_ms, 0);
	CHECK_INT(a.change_counter, 0);
	CHECK_STR(a.folder_sync_key, "");
	CHECK_INT(db_int(path, "SELECT count(*) FROM accounts WHERE email IS NULL"), 1);

	struct store_account found;
	CHECK_INT(store_account_find(store, f.account.server_url, f.account.username,
				     f.device.eas_device_id, &found, &error),
		  0);
	CHECK_STR(found.id, f.account.id);
	CHECK_INT(store_account_find(store, f.account.server_url, f.account.username, "OTHER",
				     &found, &error),
		  HK_ERR_NOT_FOUND);

	struct store_device d;
	REQUIRE(store_device_get(store, f.device.id, &d, &error) == 0);
	CHECK_STR(d.account_id, f.account.id);
	CHECK_STR(d.eas_device_id, f.device.eas_device_id);
	CHECK_STR(d.device_type, "iPhone");
	CHECK_STR(d.user_agent, f.device.user_agent);
	CHECK_MEM(d.token_hash, f.device.token_hash, sizeof(d.token_hash));
	CHECK_INT(d.tombstoned_ms, 0);
	memset(&d, 0, sizeof(d));
	REQUIRE(store_device_get_by_token(store, f.device.token_hash, &d, &error) == 0);
	CHECK_STR(d.id, f.device.id);

	struct store_device *devices = NULL;
	size_t n = 0;
	REQUIRE(store_device_list(store, f.account.id, &devices, &n, &error) == 0);
	CHECK_INT(n, 1);
	CHECK(devices != NULL && strcmp(devices[0].id, f.device.id) == 0);
	store_list_free(&devices);
	CHECK(devices == NULL);

	struct store_envelope *env = NULL;
	REQUIRE(store_envelope_get(store, f.device.id, &env, &error) == 0);
	CHECK_INT(env->key_id, 1);
	CHECK_INT(env->credential_len, sizeof(f.credential));
	CHECK_MEM(env->credential, f.credential, sizeof(f.credential));
	CHECK_INT(env->wrapped_dek_len, sizeof(f.wrapped_dek));
	CHECK_MEM(env->wrapped_dek, f.wrapped_dek, sizeof(f.wrapped_dek));
	CHECK_INT(env->updated_ms, T0);
	store_envelope_free(&env);
	CHECK(env == NULL);

	/* The registration's audit row went in with it. */
	struct store_audit *audit = NULL;
	REQUIRE(store_audit_list(store, 0, f.account.id, 10, &audit, &n, &error) == 0);
	CHECK_INT(n, 1);
	CHECK(audit != NULL && audit[0].event == STORE_AUDIT_REGISTER);
	store_list_free(&audit);
	store_close(&store);
}

static void test_account_create_conflicts(void)
{
	const char *path = fresh_db_path();
	struct store *store = open_store(&store_driver_sqlite, path);
	REQUIRE(store != NULL);
	struct fixture f, g;
	const char *error = NULL;
	fixture_init(&f, 1, T0);
	REQUIRE(fixture_create(store, &f) == 0);
	char *before = db_dump(path);

	/* Same account id. */
	fixture_init(&g, 2, T0);
	memcpy(g.account.id, f.account.id, sizeof(g.account.id));
	memcpy(g.device.account_id, f.account.id, sizeof(g.device.account_id));
	CHECK_INT(fixture_create(store, &g), HK_ERR_EXISTS);

	/* Same device id: the account row inserted first is rolled back. */
	fixture_init(&g, 2, T0);
	memcpy(g.device.id, f.device.id, sizeof(g.device.id));
	CHECK_INT(fixture_create(store, &g), HK_ERR_EXISTS);

	/* Same token hash, the last insert but one: all of it rolls back,
	 * and the error names the column, not the bytes. */
	fixture_init(&g, 2, T0);
	memcpy(g.device.token_hash, f.device.token_hash, sizeof(g.device.token_hash));
	CHECK_INT(store_account_create(store, &g.account, &g.device, &g.envelope, NULL, &error),
		  HK_ERR_EXISTS);
	CHECK(error != NULL && strstr(error, "token_hash") != NULL);
	CHECK(error != NULL && memmem(error, strlen(error), f.device.token_hash, 4) == NULL);

	/* The same phone registering again for the same user. */
	fixture_init(&g, 2, T0);
	memcpy(g.account.server_url, f.account.server_url, sizeof(g.account.server_url));
	memcpy(g.account.username, f.account.username, sizeof(g.account.username));
	memcpy(g.device.eas_device_id, f.device.eas_device_id, sizeof(g.device.eas_device_id));
	CHECK_INT(fixture_create(store, &g), HK_ERR_EXISTS);

	char *after = db_dump(path);
	CHECK_STR(before, after);
	free(after);

	/* A device naming another account is a caller bug. */
	fixture_init(&g, 3, T0);
	g.device.account_id[0] = 'x';
	CHECK_INT(fixture_create(store, &g), HK_ERR_INVAL);

	/* The same phone for another user, or another phone: fine. */
	fixture_init(&g, 4, T0);
	memcpy(g.device.eas_device_id, f.device.eas_device_id, sizeof(g.device.eas_device_id));
	CHECK_INT(fixture_create(store, &g), 0);
	free(before);
	store_close(&store);
}

static void test_not_found(void)
{
	struct store *store = open_store(&store_driver_sqlite, fresh_db_path());
	REQUIRE(store != NULL);
	struct fixture f;
	fixture_init(&f, 1, T0);
	REQUIRE(fixture_create(store, &f) == 0);
	const char *error = NULL;
	struct store_account a;
	struct store_device d;
	struct store_envelope *env = NULL;
	struct store_collection c;
	struct store_item *item = NULL;
	uint8_t hash[32] = {0};
	const char *id = f.account.id;

	CHECK_INT(store_account_get(store, "nope", &a, &error), HK_ERR_NOT_FOUND);
	CHECK(error != NULL && strstr(error, "not found") != NULL);
	CHECK_INT(store_device_get(store, "nope", &d, &error), HK_ERR_NOT_FOUND);
	CHECK_INT(store_device_get_by_token(store, hash, &d, &error), HK_ERR_NOT_FOUND);
	CHECK_INT(store_device_touch(store, "nope", T0, &error), HK_ERR_NOT_FOUND);
	CHECK_INT(store_envelope_get(store, "nope", &env, &error), HK_ERR_NOT_FOUND);
	CHECK(env == NULL);
	CHECK_INT(store_envelope_replace(store, "nope", &f.envelope, &error), HK_ERR_NOT_FOUND);
	CHECK_INT(store_account_set_state(store, "nope", STORE_ACCOUNT_FLUSHED, T0, &error),
		  HK_ERR_NOT_FOUND);
	CHECK_INT(store_account_delete(store, "nope", NULL, &error), HK_ERR_NOT_FOUND);
	CHECK_INT(store_account_wipe(store, "nope", T0, NULL, &error), HK_ERR_NOT_FOUND);
	CHECK_INT(store_collection_get(store, id, "nope", &c, &error), HK_ERR_NOT_FOUND);
	CHECK_INT(store_collection_delete(store, id, "nope", &error), HK_ERR_NOT_FOUND);
	CHECK_INT(store_folder_sync_key_set(store, "nope", "1", &error), HK_ERR_NOT_FOUND);
	CHECK_INT(store_cache_clear(store, "nope", &error), HK_ERR_NOT_FOUND);
	memset(&c, 0, sizeof(c));
	snprintf(c.collection_id, sizeof(c.collection_id), "mail/1");
	CHECK_INT(store_collection_put(store, "nope", &c, &error), HK_ERR_NOT_FOUND);
	CHECK_INT(store_item_get(store, id, "mail/1", "1", &item, &error), HK_ERR_NOT_FOUND);
	CHECK(item == NULL);
	CHECK_INT(store_item_delete(store, id, "mail/1", "1", NULL, &error), HK_ERR_NOT_FOUND);
	const uint8_t blob[4] = {1, 2, 3, 4};
	struct store_item it = {"mail/1", "1", blob, sizeof(blob), T0};
	/* Unknown collection, then unknown account. */
	CHECK_INT(store_item_put(store, id, &it, 1, NULL, &error), HK_ERR_NOT_FOUND);
	CHECK_INT(store_item_put(store, "nope", &it, 1, NULL, &error), HK_ERR_NOT_FOUND);
	struct store_push_sub sub = {.params_len = 0, .created_ms = T0};
	snprintf(sub.id, sizeof(sub.id), "sub1");
	snprintf(sub.account_id, sizeof(sub.account_id), "nope");
	snprintf(sub.type, sizeof(sub.type), "webpush");
	snprintf(sub.endpoint, sizeof(sub.endpoint), "https://push.example/1");
	CHECK_INT(store_push_add(store, &sub, &error), HK_ERR_NOT_FOUND);
	CHECK_INT(store_push_delete(store, "nope", &error), HK_ERR_NOT_FOUND);
	CHECK_INT(store_block_remove(store, 42, &error), HK_ERR_NOT_FOUND);
	CHECK_INT(store_lease_acquire(store, "nope", "node1", T0, 1000, &error),
		  HK_ERR_NOT_FOUND);
	CHECK_INT(store_lease_renew(store, id, "node1", T0, 1000, &error), HK_ERR_NOT_FOUND);
	CHECK_INT(store_lease_release(store, id, "node1", &error), HK_ERR_NOT_FOUND);

	/* Empty lists are empty, not errors. */
	struct store_collection *colls = (void *)&c;
	size_t n = 99;
	CHECK_INT(store_collection_list(store, "nope", &colls, &n, &error), 0);
	CHECK_INT(n, 0);
	CHECK(colls == NULL);
	struct store_id_list *ids = NULL;
	CHECK_INT(store_item_list(store, id, "nope", &ids, &error), 0);
	CHECK(ids != NULL && ids->count == 0);
	store_id_list_free(&ids);
	CHECK(ids == NULL);
	store_close(&store);
}

static void test_argument_checks(void)
{
	struct store *store = open_store(&store_driver_sqlite, fresh_db_path());
	REQUIRE(store != NULL);
	struct fixture f;
	const char *error = NULL;
	struct store_account a;
	char long_id[STORE_ID_MAX + 1];
	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';

	CHECK_INT(store_account_get(store, long_id, &a, &error), HK_ERR_TOO_LONG);
	CHECK(error != NULL && strstr(error, "too long") != NULL);
	CHECK_INT(store_account_get(store, "", &a, &error), HK_ERR_INVAL);
	CHECK_INT(store_account_get(store, NULL, &a, &error), HK_ERR_INVAL);
	CHECK_INT(store_account_get(store, "x", NULL, &error), HK_ERR_INVAL);

	/* Unterminated fixed-size fields are refused, not overread. */
	fixture_init(&f, 1, T0);
	memset(f.account.username, 'u', sizeof(f.account.username));
	CHECK_INT(fixture_create(store, &f), HK_ERR_TOO_LONG);
	fixture_init(&f, 1, T0);
	memset(f.device.user_agent, 'x', sizeof(f.device.user_agent));
	CHECK_INT(fixture_create(store, &f), HK_ERR_TOO_LONG);
	fixture_init(&f, 1, T0);
	f.account.state = (enum store_account_state)99;
	CHECK_INT(fixture_create(store, &f), HK_ERR_INVAL);
	fixture_init(&f, 1, T0);
	f.envelope.credential_len = STORE_ENVELOPE_MAX + 1;
	CHECK_INT(fixture_create(store, &f), HK_ERR_TOO_LONG);
	fixture_init(&f, 1, T0);
	f.envelope.wrapped_dek_len = 0;
	CHECK_INT(fixture_create(store, &f), HK_ERR_INVAL);
	fixture_init(&f, 1, T0);
	f.account.username[0] = '\0';
	CHECK_INT(fixture_create(store, &f), HK_ERR_INVAL);
	CHECK_INT(store_account_create(store, NULL, &f.device, &f.envelope, NULL, &error),
		  HK_ERR_INVAL);
	CHECK_INT(store_account_create(store, &f.account, &f.device, NULL, NULL, &error),
		  HK_ERR_INVAL);
	struct store_audit bad_audit = {.event = STORE_AUDIT_UNKNOWN};
	CHECK_INT(store_audit_append(store, &bad_audit, NULL, &error), HK_ERR_INVAL);

	fixture_init(&f, 1, T0);
	REQUIRE(fixture_create(store, &f) == 0);
	CHECK_INT(store_account_set_state(store, f.account.id, (enum store_account_state)0, T0,
					  &error),
		  HK_ERR_INVAL);
	struct store_account_entry *entries = NULL;
	size_t n;
	CHECK_INT(store_account_list(store, "", 0, &entries, &n, &error), HK_ERR_INVAL);
	CHECK_INT(store_account_list(store, "", STORE_LIST_MAX + 1, &entries, &n, &error),
		  HK_ERR_INVAL);
	CHECK_INT(store_lease_acquire(store, f.account.id, "n", T0, 0, &error), HK_ERR_INVAL);
	CHECK_INT(store_lease_acquire(store, f.account.id, "n", INT64_MAX - 5, 10, &error),
		  HK_ERR_INVAL);
	CHECK_INT(store_item_put(store, f.account.id, NULL, 1, NULL, &error), HK_ERR_INVAL);
	const uint8_t blob[1] = {1};
	struct store_item it = {"mail/1", "1", blob, sizeof(blob), T0};
	CHECK_INT(store_item_put(store, f.account.id, &it, 0, NULL, &error), HK_ERR_INVAL);
	it.sealed_len = STORE_ITEM_MAX + 1;
	CHECK_INT(store_item_put(store, f.account.id, &it, 1, NULL, &error), HK_ERR_TOO_LONG);
	struct store_block_rule rule = {.kind = (enum store_block_kind)0};
	snprintf(rule.pattern, sizeof(rule.pattern), "x");
	CHECK_INT(store_block_add(store, &rule, NULL, &error), HK_ERR_INVAL);
	struct store_push_sub sub = {.params_len = STORE_PUSH_PARAMS_MAX + 1};
	snprintf(sub.id, sizeof(sub.id), "s");
	snprintf(sub.account_id, sizeof(sub.account_id), "%s", f.account.id);
	snprintf(sub.type, sizeof(sub.type), "webpush");
	snprintf(sub.endpoint, sizeof(sub.endpoint), "https://e");
	CHECK_INT(store_push_add(store, &sub, &error), HK_ERR_TOO_LONG);

	/* The name tables. */
	enum store_account_state state;
	enum store_block_kind kind;
	CHECK_INT(store_account_state_parse("reregister_needed", &state), 0);
	CHECK_INT(state, STORE_ACCOUNT_REREGISTER_NEEDED);
	CHECK_INT(store_account_state_parse("bogus", &state), HK_ERR_INVAL);
	CHECK_STR(store_account_state_name(STORE_ACCOUNT_WIPED), "wiped");
	CHECK(store_account_state_name((enum store_account_state)0) == NULL);
	CHECK_INT(store_block_kind_parse("device_type", &kind), 0);
	CHECK_INT(kind, STORE_BLOCK_DEVICE_TYPE);
	CHECK_INT(store_block_kind_parse("", &kind), HK_ERR_INVAL);
	CHECK_STR(store_audit_event_name(STORE_AUDIT_BAD_KEY), "bad_key");
	CHECK_INT(store_audit_event_parse("register_refused"), STORE_AUDIT_REGISTER_REFUSED);
	CHECK_INT(store_audit_event_parse("unknown"), STORE_AUDIT_UNKNOWN);
	CHECK_INT(store_audit_event_parse("later_event"), STORE_AUDIT_UNKNOWN);
	store_close(&store);
}

static void test_account_state_and_touch(void)
{
	struct store *store = open_store(&store_driver_sqlite, fresh_db_path());
	REQUIRE(store != NULL);
	struct fixture f;
	struct store_account a;
	struct store_device d;
	const char *error;
	fixture_init(&f, 1, T0);
	REQUIRE(fixture_create(store, &f) == 0);

	CHECK_INT(store_account_set_state(store, f.account.id, STORE_ACCOUNT_FLUSHED, T0 + 5,
					  &error),
		  0);
	REQUIRE(store_account_get(store, f.account.id, &a, &error) == 0);
	CHECK_INT(a.state, STORE_ACCOUNT_FLUSHED);
	CHECK_INT(a.flushed_ms, T0 + 5);
	/* Other states keep the flush time; active clears it. */
	CHECK_INT(store_account_set_state(store, f.account.id, STORE_ACCOUNT_REREGISTER_NEEDED,
					  T0 + 6, &error),
		  0);
	REQUIRE(store_account_get(store, f.account.id, &a, &error) == 0);
	CHECK_INT(a.state, STORE_ACCOUNT_REREGISTER_NEEDED);
	CHECK_INT(a.flushed_ms, T0 + 5);
	CHECK_INT(store_account_set_state(store, f.account.id, STORE_ACCOUNT_ACTIVE, T0 + 7,
					  &error),
		  0);
	REQUIRE(store_account_get(store, f.account.id, &a, &error) == 0);
	CHECK_INT(a.state, STORE_ACCOUNT_ACTIVE);
	CHECK_INT(a.flushed_ms, 0);

	/* Touching a device is activity for its account, never backwards. */
	CHECK_INT(store_device_touch(store, f.device.id, T0 + 1000, &error), 0);
	CHECK_INT(store_device_touch(store, f.device.id, T0 + 500, &error), 0);
	REQUIRE(store_account_get(store, f.account.id, &a, &error) == 0);
	REQUIRE(store_device_get(store, f.device.id, &d, &error) == 0);
	CHECK_INT(a.last_activity_ms, T0 + 1000);
	CHECK_INT(d.last_seen_ms, T0 + 1000);
	store_close(&store);
}

/* An unlock: touch, back to active, audit entry, all or nothing. */
static void test_device_unlocked(void)
{
	const char *path = fresh_db_path();
	struct store *store = open_store(&store_driver_sqlite, path);
	REQUIRE(store != NULL);
	struct fixture f, g;
	struct store_account a;
	struct store_device d;
	const char *error;
	fixture_init(&f, 1, T0);
	fixture_init(&g, 2, T0);
	REQUIRE(fixture_create(store, &f) == 0);
	REQUIRE(fixture_create(store, &g) == 0);
	struct store_audit audit = {.time_ms = T0 + 100, .event = STORE_AUDIT_UNLOCK};
	snprintf(audit.account_id, sizeof(audit.account_id), "%s", f.account.id);
	snprintf(audit.device, sizeof(audit.device), "%s", f.device.eas_device_id);
	int64_t audits = db_count(path, "audit");

	/* flushed, then unlocked: active, flush time cleared, activity, audit */
	REQUIRE(store_account_set_state(store, f.account.id, STORE_ACCOUNT_FLUSHED, T0 + 5,
					&error) == 0);
	CHECK_INT(store_device_unlocked(store, f.device.id, T0 + 100, &audit, &error), 0);
	REQUIRE(store_account_get(store, f.account.id, &a, &error) == 0);
	REQUIRE(store_device_get(store, f.device.id, &d, &error) == 0);
	CHECK_INT(a.state, STORE_ACCOUNT_ACTIVE);
	CHECK_INT(a.flushed_ms, 0);
	CHECK_INT(a.last_activity_ms, T0 + 100);
	CHECK_INT(d.last_seen_ms, T0 + 100);
	CHECK_INT(db_count(path, "audit"), audits + 1);
	CHECK_INT(db_int(path, "SELECT count(*) FROM audit WHERE event = 'unlock'"), 1);
	/* the other account is untouched */
	REQUIRE(store_account_get(store, g.account.id, &a, &error) == 0);
	CHECK_INT(a.last_activity_ms, g.account.last_activity_ms);
	/* re-register needed comes back too; active stays active */
	REQUIRE(store_account_set_state(store, f.account.id, STORE_ACCOUNT_REREGISTER_NEEDED,
					T0 + 6, &error) == 0);
	CHECK_INT(store_device_unlocked(store, f.device.id, T0 + 200, &audit, &error), 0);
	REQUIRE(store_account_get(store, f.account.id, &a, &error) == 0);
	CHECK_INT(a.state, STORE_ACCOUNT_ACTIVE);
	CHECK_INT(store_device_unlocked(store, f.device.id, T0 + 300, &audit, &error), 0);
	REQUIRE(store_account_get(store, f.account.id, &a, &error) == 0);
	CHECK_INT(a.state, STORE_ACCOUNT_ACTIVE);
	CHECK_INT(db_count(path, "audit"), audits + 3);
	/* an unknown device: nothing at all, not even the audit entry */
	CHECK_INT(store_device_unlocked(store, "dnope", T0 + 400, &audit, &error),
		  HK_ERR_NOT_FOUND);
	CHECK_INT(db_count(path, "audit"), audits + 3);
	/* the audit entry is required, and checked */
	CHECK_INT(store_device_unlocked(store, f.device.id, T0 + 500, NULL, &error), HK_ERR_INVAL);
	struct store_audit bad = audit;
	bad.event = STORE_AUDIT_UNKNOWN;
	CHECK_INT(store_device_unlocked(store, f.device.id, T0 + 500, &bad, &error), HK_ERR_INVAL);
	REQUIRE(store_device_get(store, f.device.id, &d, &error) == 0);
	CHECK_INT(d.last_seen_ms, T0 + 300);
	/* a wiped account stays wiped */
	struct store_audit wipe = {.time_ms = T0 + 600, .event = STORE_AUDIT_WIPE};
	REQUIRE(store_account_wipe(store, g.account.id, T0 + 600, &wipe, &error) == 0);
	CHECK_INT(store_device_unlocked(store, g.device.id, T0 + 700, &audit, &error), 0);
	REQUIRE(store_account_get(store, g.account.id, &a, &error) == 0);
	CHECK_INT(a.state, STORE_ACCOUNT_WIPED);
	store_close(&store);
}

/* The PolicyKey of a device's partnership: stored, read back, checked,
 * and added to a database made before it existed (migration 2). */
static void test_device_policy_key(void)
{
	const char *path = fresh_db_path();
	struct store *store = open_store(&store_driver_sqlite, path);
	REQUIRE(store != NULL);
	struct fixture f;
	struct store_device d;
	const char *error;
	fixture_init(&f, 1, T0);
	REQUIRE(fixture_create(store, &f) == 0);
	REQUIRE(store_device_get(store, f.device.id, &d, &error) == 0);
	CHECK_STR(d.policy_key, "");
	CHECK_INT(store_device_set_policy_key(store, f.device.id, "3942919513", &error), 0);
	REQUIRE(store_device_get_by_token(store, f.device.token_hash, &d, &error) == 0);
	CHECK_STR(d.policy_key, "3942919513");
	/* only what the X-MS-PolicyKey header may carry */
	static const char *const bad[] = {"12345678901", "12a", " 1", "-1", "1\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(store_device_set_policy_key(store, f.device.id, bad[i], &error),
			  HK_ERR_INVAL);
	CHECK_INT(store_device_set_policy_key(store, f.device.id, NULL, &error), HK_ERR_INVAL);
	CHECK_INT(store_device_set_policy_key(store, "dnope", "1", &error), HK_ERR_NOT_FOUND);
	REQUIRE(store_device_get(store, f.device.id, &d, &error) == 0);
	CHECK_STR(d.policy_key, "3942919513");
	/* forgotten */
	CHECK_INT(store_device_set_policy_key(store, f.device.id, "", &error), 0);
	REQUIRE(store_device_get(store, f.device.id, &d, &error) == 0);
	CHECK_STR(d.policy_key, "");
	/* a device created with one keeps it */
	struct fixture g;
	fixture_init(&g, 2, T0);
	snprintf(g.device.policy_key, sizeof(g.device.policy_key), "7");
	REQUIRE(fixture_create(store, &g) == 0);
	REQUIRE(store_device_get(store, g.device.id, &d, &error) == 0);
	CHECK_STR(d.policy_key, "7");
	store_close(&store);

	/* a version-1 database with a device: opening it adds the column */
	const char *old = fresh_db_path();
	char msg[256];
	REQUIRE(db_exec(old, store_sqlite_migrations[0], msg, sizeof(msg)) == 0);
	REQUIRE(db_exec(old,
			"PRAGMA user_version = 1;"
			"INSERT INTO accounts (id, server_url, username, account_salt, state,"
			" created_ms, last_activity_ms) VALUES ('a1', 'https://m/eas', 'u',"
			" zeroblob(16), 'active', 1, 1);"
			"INSERT INTO devices (id, account_id, eas_device_id, device_type, user_agent,"
			" token_hash, created_ms, last_seen_ms) VALUES ('d1', 'a1', 'DEV1', 'T',"
			" 'UA', zeroblob(32), 1, 1);",
			msg, sizeof(msg)) == 0);
	REQUIRE(chmod(old, 0600) == 0);
	store = open_store(&store_driver_sqlite, old);
	REQUIRE(store != NULL);
	CHECK_INT(db_int(old, "PRAGMA user_version"), (int64_t)store_sqlite_migration_count);
	REQUIRE(store_device_get(store, "d1", &d, &error) == 0);
	CHECK_STR(d.policy_key, "");
	CHECK_STR(d.eas_device_id, "DEV1");
	CHECK_INT(store_device_set_policy_key(store, "d1", "42", &error), 0);
	store_close(&store);
}

static void test_account_list_paging(void)
{
	struct store *store = open_store(&store_driver_sqlite, fresh_db_path());
	REQUIRE(store != NULL);
	struct fixture f;
	const char *error;
	for (unsigned i = 0; i < 5; i++) {
		fixture_init(&f, 10 + i, T0 + i);
		REQUIRE(fixture_create(store, &f) == 0);
	}
	char after[STORE_ID_MAX] = "";
	unsigned seen = 0;
	for (;;) {
		struct store_account_entry *e = NULL;
		size_t n = 0;
		REQUIRE(store_account_list(store, after, 2, &e, &n, &error) == 0);
		if (n == 0) {
			CHECK(e == NULL);
			break;
		}
		CHECK(n <= 2);
		for (size_t i = 0; i < n; i++) {
			fixture_init(&f, 10 + seen, T0 + seen);
			CHECK_STR(e[i].account.id, f.account.id);
			CHECK_INT(e[i].account.last_activity_ms, T0 + seen);
			CHECK_INT(e[i].device_count, 1);
			CHECK_INT(e[i].account.state, STORE_ACCOUNT_ACTIVE);
			seen++;
		}
		memcpy(after, e[n - 1].account.id, sizeof(after));
		store_list_free(&e);
	}
	CHECK_INT(seen, 5);
	store_close(&store);
}

static void test_envelope_replace(void)
{
	struct store *store = open_store(&store_driver_sqlite, fresh_db_path());
	REQUIRE(store != NULL);
	struct fixture f;
	const char *error;
	fixture_init(&f, 1, T0);
	REQUIRE(fixture_create(store, &f) == 0);

	uint8_t cred[100], dek[48];
	pattern_fill(cred, sizeof(cred), 77);
	pattern_fill(dek, sizeof(dek), 78);
	struct store_envelope e = {2, cred, sizeof(cred), dek, sizeof(dek), T0 + 9};
	CHECK_INT(store_envelope_replace(store, f.device.id, &e, &error), 0);
	struct store_envelope *got = NULL;
	REQUIRE(store_envelope_get(store, f.device.id, &got, &error) == 0);
	CHECK_INT(got->key_id, 2);
	CHECK_INT(got->credential_len, sizeof(cred));
	CHECK_MEM(got->credential, cred, sizeof(cred));
	CHECK_INT(got->wrapped_dek_len, sizeof(dek));
	CHECK_MEM(got->wrapped_dek, dek, sizeof(dek));
	CHECK_INT(got->updated_ms, T0 + 9);
	store_envelope_free(&got);
	store_close(&store);
}

/* ---- sync state and cache ---- */

static void test_collections(void)
{
	const char *path = fresh_db_path();
	struct store *store = open_store(&store_driver_sqlite, path);
	REQUIRE(store != NULL);
	struct fixture f;
	const char *error;
	fixture_init(&f, 1, T0);
	REQUIRE(fixture_create(store, &f) == 0);
	const char *acct = f.account.id;

	/* Server ids are opaque bytes: percent signs, UTF-8, even bytes that
	 * are not UTF-8 come back as they went in. */
	static const char odd_id[] = "mail%2F0dff\xc3\xa9t\xe9\xff/INBOX";
	struct store_collection c = {.type = 2};
	memcpy(c.collection_id, odd_id, sizeof(odd_id));
	snprintf(c.parent_id, sizeof(c.parent_id), "0");
	snprintf(c.sync_key, sizeof(c.sync_key), "{8a9b...}1");
	snprintf(c.display_name, sizeof(c.display_name), "Boîte de réception");
	CHECK_INT(store_collection_put(store, acct, &c, &error), 0);
	struct store_collection got;
	REQUIRE(store_collection_get(store, acct, odd_id, &got, &error) == 0);
	CHECK_MEM(got.collection_id, odd_id, sizeof(odd_id));
	CHECK_STR(got.sync_key, "{8a9b...}1");
	CHECK_STR(got.display_name, "Boîte de réception");
	CHECK_STR(got.parent_id, "0");
	CHECK_INT(got.type, 2);

	/* Put again updates in place (and keeps the items: no REPLACE). */
	REQUIRE(fixture_fill_cache(store, &f, 9, 3, 40, 1) == 0);
	struct store_collection c9;
	REQUIRE(store_collection_get(store, acct, "mail/9", &c9, &error) == 0);
	snprintf(c9.sync_key, sizeof(c9.sync_key), "2");
	CHECK_INT(store_collection_put(store, acct, &c9, &error), 0);
	REQUIRE(store_collection_get(store, acct, "mail/9", &got, &error) == 0);
	CHECK_STR(got.sync_key, "2");
	CHECK_INT(db_count(path, "items"), 3);

	struct store_collection *list = NULL;
	size_t n = 0;
	REQUIRE(store_collection_list(store, acct, &list, &n, &error) == 0);
	CHECK_INT(n, 2);
	CHECK(list != NULL && strcmp(list[0].collection_id, odd_id) == 0 &&
	      strcmp(list[1].collection_id, "mail/9") == 0);
	store_list_free(&list);

	/* Deleting a collection takes its items and is a cache change. */
	struct store_account a;
	REQUIRE(store_account_get(store, acct, &a, &error) == 0);
	int64_t change = a.change_counter;
	CHECK_INT(store_collection_delete(store, acct, "mail/9", &error), 0);
	CHECK_INT(db_count(path, "items"), 0);
	CHECK_INT(db_count(path, "collections"), 1);
	REQUIRE(store_account_get(store, acct, &a, &error) == 0);
	CHECK_INT(a.change_counter, change + 1);

	/* The folder hierarchy key lives with the account. */
	CHECK_INT(store_folder_sync_key_set(store, acct, "fs-17", &error), 0);
	REQUIRE(store_account_get(store, acct, &a, &error) == 0);
	CHECK_STR(a.folder_sync_key, "fs-17");

	/* Clearing the cache forgets all sync state of this account only. */
	struct fixture g;
	fixture_init(&g, 2, T0);
	REQUIRE(fixture_create(store, &g) == 0);
	REQUIRE(fixture_fill_cache(store, &g, 1, 4, 40, 2) == 0);
	REQUIRE(fixture_fill_cache(store, &f, 3, 5, 40, 3) == 0);
	REQUIRE(store_account_get(store, acct, &a, &error) == 0);
	change = a.change_counter;
	CHECK_INT(store_cache_clear(store, acct, &error), 0);
	REQUIRE(store_account_get(store, acct, &a, &error) == 0);
	CHECK_STR(a.folder_sync_key, "");
	CHECK_INT(a.change_counter, change + 1);
	CHECK_INT(db_int(path, "SELECT count(*) FROM collections WHERE account_id LIKE 'acct%1'"),
		  0);
	CHECK_INT(db_count(path, "items"), 4);
	CHECK_INT(db_count(path, "collections"), 1);
	store_close(&store);
}

static void test_items(void)
{
	const char *path = fresh_db_path();
	struct store *store = open_store(&store_driver_sqlite, path);
	REQUIRE(store != NULL);
	struct fixture f;
	const char *error;
	int64_t change = -1;
	fixture_init(&f, 1, T0);
	REQUIRE(fixture_create(store, &f) == 0);
	REQUIRE(fixture_fill_cache(store, &f, 1, 0, 0, 0) == 0);
	REQUIRE(fixture_fill_cache(store, &f, 2, 0, 0, 0) == 0);
	const char *acct = f.account.id;

	uint8_t blob[300], blob2[310];
	pattern_fill(blob, sizeof(blob), 5);
	pattern_fill(blob2, sizeof(blob2), 6);
	struct store_item it = {"mail/1", "5:1", blob, sizeof(blob), T0 + 1};
	CHECK_INT(store_item_put(store, acct, &it, 1, &change, &error), 0);
	CHECK_INT(change, 1);

	struct store_item *got = NULL;
	REQUIRE(store_item_get(store, acct, "mail/1", "5:1", &got, &error) == 0);
	CHECK_STR(got->collection_id, "mail/1");
	CHECK_STR(got->item_id, "5:1");
	CHECK_INT(got->sealed_len, sizeof(blob));
	CHECK_MEM(got->sealed, blob, sizeof(blob));
	CHECK_INT(got->updated_ms, T0 + 1);
	store_item_free(&got);
	CHECK(got == NULL);
	/* The same id in another collection is another item. */
	CHECK_INT(store_item_get(store, acct, "mail/2", "5:1", &got, &error), HK_ERR_NOT_FOUND);

	/* Put again replaces. */
	it.sealed = blob2;
	it.sealed_len = sizeof(blob2);
	it.updated_ms = T0 + 2;
	CHECK_INT(store_item_put(store, acct, &it, 1, &change, &error), 0);
	CHECK_INT(change, 2);
	REQUIRE(store_item_get(store, acct, "mail/1", "5:1", &got, &error) == 0);
	CHECK_INT(got->sealed_len, sizeof(blob2));
	CHECK_MEM(got->sealed, blob2, sizeof(blob2));
	CHECK_INT(got->updated_ms, T0 + 2);
	store_item_free(&got);
	CHECK_INT(db_count(path, "items"), 1);

	/* A batch is all or nothing: one bad collection stops all of it and
	 * the change counter with it. */
	struct store_item batch[10];
	char ids[10][16];
	for (int i = 0; i < 10; i++) {
		snprintf(ids[i], sizeof(ids[i]), "b%d", i);
		batch[i] = (struct store_item){"mail/2", ids[i], blob, sizeof(blob), T0};
	}
	batch[6].collection_id = "mail/unknown";
	change = -1;
	CHECK_INT(store_item_put(store, acct, batch, 10, &change, &error), HK_ERR_NOT_FOUND);
	CHECK_INT(change, -1);
	CHECK_INT(db_count(path, "items"), 1);
	struct store_account a;
	REQUIRE(store_account_get(store, acct, &a, &error) == 0);
	CHECK_INT(a.change_counter, 2);
	batch[6].collection_id = "mail/2";
	CHECK_INT(store_item_put(store, acct, batch, 10, &change, &error), 0);
	CHECK_INT(change, 3);

	struct store_id_list *list = NULL;
	REQUIRE(store_item_list(store, acct, "mail/2", &list, &error) == 0);
	CHECK_INT(list->count, 10);
	for (size_t i = 0; i < list->count && i < 10; i++)
		CHECK_STR(list->ids[i], ids[i]);
	store_id_list_free(&list);

	CHECK_INT(store_item_delete(store, acct, "mail/2", "b3", &change, &error), 0);
	CHECK_INT(change, 4);
	CHECK_INT(store_item_delete(store, acct, "mail/2", "b3", &change, &error),
		  HK_ERR_NOT_FOUND);
	CHECK_INT(store_item_get(store, acct, "mail/2", "b3", &got, &error), HK_ERR_NOT_FOUND);
	REQUIRE(store_item_list(store, acct, "mail/2", &list, &error) == 0);
	CHECK_INT(list->count, 9);
	store_id_list_free(&list);
	store_close(&store);
}

/* A Sync response for one collection: key, deletes and puts together. */
static void test_sync_apply(void)
{
	const char *path = fresh_db_path();
	struct store *store = open_store(&store_driver_sqlite, path);
	REQUIRE(store != NULL);
	struct fixture f, g;
	const char *error = NULL;
	int64_t change = -1;
	fixture_init(&f, 1, T0);
	fixture_init(&g, 2, T0);
	REQUIRE(fixture_create(store, &f) == 0);
	REQUIRE(fixture_create(store, &g) == 0);
	REQUIRE(fixture_fill_cache(store, &f, 1, 4, 40, 1) == 0); /* mail/1: 1:0 .. 1:3 */
	REQUIRE(fixture_fill_cache(store, &f, 2, 2, 40, 2) == 0);
	REQUIRE(fixture_fill_cache(store, &g, 1, 3, 40, 3) == 0);
	const char *acct = f.account.id;
	struct store_account a;
	REQUIRE(store_account_get(store, acct, &a, &error) == 0);
	const int64_t c0 = a.change_counter;

	uint8_t blob[100];
	pattern_fill(blob, sizeof(blob), 77);
	/* "1:1" is both deleted and put: it ends up put (the new blob); "1:9"
	 * was never cached: skipped. */
	struct store_item puts[] = {
		{"mail/1", "new-a", blob, sizeof(blob), T0 + 5},
		{"mail/1", "1:1", blob, 50, T0 + 5},
	};
	const char *const dels[] = {"1:0", "1:1", "1:9"};
	struct store_sync_batch b = {.collection_id = "mail/1", .sync_key = "k-2",
				     .puts = puts, .n_puts = 2, .deletes = dels, .n_deletes = 3};
	CHECK_INT(store_sync_apply(store, acct, &b, &change, &error), 0);
	CHECK_INT(change, c0 + 1);
	struct store_collection c;
	REQUIRE(store_collection_get(store, acct, "mail/1", &c, &error) == 0);
	CHECK_STR(c.sync_key, "k-2");
	struct store_id_list *ids = NULL;
	REQUIRE(store_item_list(store, acct, "mail/1", &ids, &error) == 0);
	CHECK_INT(ids->count, 4);
	if (ids->count == 4) {
		CHECK_STR(ids->ids[0], "1:1");
		CHECK_STR(ids->ids[1], "1:2");
		CHECK_STR(ids->ids[2], "1:3");
		CHECK_STR(ids->ids[3], "new-a");
	}
	store_id_list_free(&ids);
	struct store_item *got = NULL;
	REQUIRE(store_item_get(store, acct, "mail/1", "1:1", &got, &error) == 0);
	CHECK_INT(got->sealed_len, 50);
	CHECK_MEM(got->sealed, blob, 50);
	CHECK_INT(got->updated_ms, T0 + 5);
	store_item_free(&got);

	/* Only the key moved (SOGo's extra round, an empty answer's key): no
	 * content change, no bump; deleting what is not cached neither. */
	b = (struct store_sync_batch){.collection_id = "mail/1", .sync_key = "k-3",
				      .deletes = dels + 2, .n_deletes = 1};
	change = -1;
	CHECK_INT(store_sync_apply(store, acct, &b, &change, &error), 0);
	CHECK_INT(change, c0 + 1);
	REQUIRE(store_collection_get(store, acct, "mail/1", &c, &error) == 0);
	CHECK_STR(c.sync_key, "k-3");
	CHECK_INT(store_sync_apply(store, acct, &b, NULL, &error), 0);

	/* A restart from "0": every item of this collection goes, nothing of
	 * the other collection or account, and that is one change. */
	b = (struct store_sync_batch){.collection_id = "mail/1", .sync_key = "0", .clear = true};
	CHECK_INT(store_sync_apply(store, acct, &b, &change, &error), 0);
	CHECK_INT(change, c0 + 2);
	CHECK_INT(db_int(path, "SELECT count(*) FROM items WHERE account_id = "
			       "'acct0000000000000000000001' AND collection_id = 'mail/1'"),
		  0);
	CHECK_INT(db_int(path, "SELECT count(*) FROM items WHERE account_id = "
			       "'acct0000000000000000000001' AND collection_id = 'mail/2'"),
		  2);
	CHECK_INT(db_int(path, "SELECT count(*) FROM items WHERE account_id = "
			       "'acct0000000000000000000002'"),
		  3);
	/* Clearing an empty collection changes nothing. */
	CHECK_INT(store_sync_apply(store, acct, &b, &change, &error), 0);
	CHECK_INT(change, c0 + 2);
	/* Clear and puts together: the puts survive the clear. */
	b = (struct store_sync_batch){.collection_id = "mail/1", .sync_key = "k-4", .clear = true,
				      .puts = puts, .n_puts = 1};
	CHECK_INT(store_sync_apply(store, acct, &b, &change, &error), 0);
	CHECK_INT(change, c0 + 3);
	CHECK_INT(db_int(path, "SELECT count(*) FROM items WHERE collection_id = 'mail/1'"
			       " AND account_id = 'acct0000000000000000000001'"),
		  1);

	/* All or nothing: an unknown collection, or an unknown account,
	 * changes nothing at all. */
	char *before = db_dump(path);
	b = (struct store_sync_batch){.collection_id = "mail/404", .sync_key = "k",
				      .deletes = dels, .n_deletes = 1};
	change = -1;
	CHECK_INT(store_sync_apply(store, acct, &b, &change, &error), HK_ERR_NOT_FOUND);
	CHECK(error != NULL && strstr(error, "collection") != NULL);
	CHECK_INT(change, -1);
	b.collection_id = "mail/1";
	CHECK_INT(store_sync_apply(store, "nope", &b, &change, &error), HK_ERR_NOT_FOUND);
	char *after = db_dump(path);
	CHECK_STR(before, after);
	free(after);

	/* Argument checks, before the database is touched. */
	b = (struct store_sync_batch){.collection_id = "mail/1", .sync_key = "k",
				      .puts = puts, .n_puts = 1};
	CHECK_INT(store_sync_apply(store, acct, NULL, &change, &error), HK_ERR_INVAL);
	b.sync_key = "";
	CHECK_INT(store_sync_apply(store, acct, &b, &change, &error), HK_ERR_INVAL);
	b.sync_key = NULL;
	CHECK_INT(store_sync_apply(store, acct, &b, &change, &error), HK_ERR_INVAL);
	char long_key[STORE_SYNC_KEY_MAX + 1];
	memset(long_key, 'k', sizeof(long_key) - 1);
	long_key[sizeof(long_key) - 1] = '\0';
	b.sync_key = long_key;
	CHECK_INT(store_sync_apply(store, acct, &b, &change, &error), HK_ERR_TOO_LONG);
	b.sync_key = "k";
	b.collection_id = "";
	CHECK_INT(store_sync_apply(store, acct, &b, &change, &error), HK_ERR_INVAL);
	b.collection_id = "mail/2"; /* the put says mail/1 */
	CHECK_INT(store_sync_apply(store, acct, &b, &change, &error), HK_ERR_INVAL);
	CHECK(error != NULL && strstr(error, "another collection") != NULL);
	b.collection_id = "mail/1";
	b.puts = NULL;
	CHECK_INT(store_sync_apply(store, acct, &b, &change, &error), HK_ERR_INVAL);
	struct store_item bad = {"mail/1", "x", blob, 0, T0};
	b.puts = &bad;
	CHECK_INT(store_sync_apply(store, acct, &b, &change, &error), HK_ERR_INVAL);
	bad.sealed_len = (size_t)STORE_ITEM_MAX + 1;
	CHECK_INT(store_sync_apply(store, acct, &b, &change, &error), HK_ERR_TOO_LONG);
	const char *const empty_id[] = {""};
	b = (struct store_sync_batch){.collection_id = "mail/1", .sync_key = "k",
				      .deletes = empty_id, .n_deletes = 1};
	CHECK_INT(store_sync_apply(store, acct, &b, &change, &error), HK_ERR_INVAL);
	b.deletes = NULL;
	CHECK_INT(store_sync_apply(store, acct, &b, &change, &error), HK_ERR_INVAL);
	after = db_dump(path);
	CHECK_STR(before, after);
	free(after);
	free(before);
	store_close(&store);
}

static void test_items_batch_1000(void)
{
	const char *path = fresh_db_path();
	struct store *store = open_store(&store_driver_sqlite, path);
	REQUIRE(store != NULL);
	struct fixture f;
	const char *error;
	fixture_init(&f, 1, T0);
	REQUIRE(fixture_create(store, &f) == 0);
	REQUIRE(fixture_fill_cache(store, &f, 1, 1000, 300, 9) == 0);

	struct store_stats stats;
	REQUIRE(store_stats(store, &stats, &error) == 0);
	CHECK_INT(stats.items, 1000);
	struct store_id_list *list = NULL;
	REQUIRE(store_item_list(store, f.account.id, "mail/1", &list, &error) == 0);
	CHECK_INT(list->count, 1000);
	store_id_list_free(&list);
	/* Spot checks, bytes and all. */
	for (unsigned i = 0; i < 1000; i += 333) {
		char id[32];
		uint8_t want[300];
		struct store_item *got = NULL;
		snprintf(id, sizeof(id), "1:%u", i);
		pattern_fill(want, sizeof(want), 9 * 100000u + i);
		REQUIRE(store_item_get(store, f.account.id, "mail/1", id, &got, &error) == 0);
		CHECK_INT(got->sealed_len, 300);
		CHECK_MEM(got->sealed, want, 300);
		store_item_free(&got);
	}
	/* One batch is one cache change. */
	struct store_account a;
	REQUIRE(store_account_get(store, f.account.id, &a, &error) == 0);
	CHECK_INT(a.change_counter, 1);
	store_close(&store);
}

/* ---- push, block rules, audit, leases, stats ---- */

static void test_push_subscriptions(void)
{
	struct store *store = open_store(&store_driver_sqlite, fresh_db_path());
	REQUIRE(store != NULL);
	struct fixture f;
	const char *error;
	fixture_init(&f, 1, T0);
	REQUIRE(fixture_create(store, &f) == 0);

	struct store_push_sub s = {.created_ms = T0, .expires_ms = T0 + 100};
	snprintf(s.account_id, sizeof(s.account_id), "%s", f.account.id);
	snprintf(s.type, sizeof(s.type), "webpush");
	snprintf(s.endpoint, sizeof(s.endpoint), "https://push.example.net/v2/abc");
	s.params_len = 81;
	pattern_fill(s.params, s.params_len, 11);
	snprintf(s.id, sizeof(s.id), "sub-b");
	CHECK_INT(store_push_add(store, &s, &error), 0);
	CHECK_INT(store_push_add(store, &s, &error), HK_ERR_EXISTS);
	snprintf(s.id, sizeof(s.id), "sub-a");
	s.expires_ms = 0; /* never */
	s.params_len = 0;
	snprintf(s.type, sizeof(s.type), "webhook");
	CHECK_INT(store_push_add(store, &s, &error), 0);

	struct store_push_sub *subs = NULL;
	size_t n = 0;
	REQUIRE(store_push_list(store, f.account.id, &subs, &n, &error) == 0);
	REQUIRE(n == 2);
	CHECK_STR(subs[0].id, "sub-a");
	CHECK_STR(subs[0].type, "webhook");
	CHECK_INT(subs[0].params_len, 0);
	CHECK_INT(subs[0].expires_ms, 0);
	CHECK_STR(subs[1].id, "sub-b");
	CHECK_STR(subs[1].endpoint, "https://push.example.net/v2/abc");
	CHECK_INT(subs[1].params_len, 81);
	uint8_t want[81];
	pattern_fill(want, sizeof(want), 11);
	CHECK_MEM(subs[1].params, want, sizeof(want));
	CHECK_INT(subs[1].expires_ms, T0 + 100);
	store_list_free(&subs);

	unsigned count = 99;
	CHECK_INT(store_push_delete_expired(store, T0 + 99, &count, &error), 0);
	CHECK_INT(count, 0);
	CHECK_INT(store_push_delete_expired(store, T0 + 100, &count, &error), 0);
	CHECK_INT(count, 1);
	CHECK_INT(store_push_delete(store, "sub-a", &error), 0);
	REQUIRE(store_push_list(store, f.account.id, &subs, &n, &error) == 0);
	CHECK_INT(n, 0);
	store_close(&store);
}

static void test_block_rules(void)
{
	const char *path = fresh_db_path();
	struct store *store = open_store(&store_driver_sqlite, path);
	REQUIRE(store != NULL);
	const char *error;
	int64_t id1 = 0, id2 = 0, id3 = 0;
	struct store_block_rule r = {.kind = STORE_BLOCK_DOMAIN, .created_ms = T0};
	snprintf(r.pattern, sizeof(r.pattern), "evil.example");
	snprintf(r.note, sizeof(r.note), "spam source");
	CHECK_INT(store_block_add(store, &r, &id1, &error), 0);
	CHECK_INT(store_block_add(store, &r, NULL, &error), HK_ERR_EXISTS);
	r.kind = STORE_BLOCK_USER_GLOB; /* same pattern, other kind: fine */
	r.note[0] = '\0';
	CHECK_INT(store_block_add(store, &r, &id2, &error), 0);
	CHECK(id2 > id1);

	struct store_block_rule *rules = NULL;
	size_t n = 0;
	REQUIRE(store_block_list(store, &rules, &n, &error) == 0);
	REQUIRE(n == 2);
	CHECK_INT(rules[0].id, id1);
	CHECK_INT(rules[0].kind, STORE_BLOCK_DOMAIN);
	CHECK_STR(rules[0].pattern, "evil.example");
	CHECK_STR(rules[0].note, "spam source");
	CHECK_INT(rules[0].created_ms, T0);
	CHECK_INT(rules[1].kind, STORE_BLOCK_USER_GLOB);
	store_list_free(&rules);

	/* Ids are never reused, even the highest one after removal. */
	CHECK_INT(store_block_remove(store, id2, &error), 0);
	CHECK_INT(store_block_remove(store, id2, &error), HK_ERR_NOT_FOUND);
	r.kind = STORE_BLOCK_DEVICE_ID;
	CHECK_INT(store_block_add(store, &r, &id3, &error), 0);
	CHECK(id3 > id2);

	/* A rule this build cannot interpret fails the list (fail closed). */
	REQUIRE(db_exec(path,
			"INSERT INTO block_rules (kind, pattern, note, created_ms)"
			" VALUES ('ip_range', '10.0.0.0/8', '', 0)",
			NULL, 0) == 0);
	rules = NULL;
	CHECK_INT(store_block_list(store, &rules, &n, &error), HK_ERR_STORE);
	CHECK(rules == NULL);
	store_close(&store);
}

static void test_audit(void)
{
	const char *path = fresh_db_path();
	struct store *store = open_store(&store_driver_sqlite, path);
	REQUIRE(store != NULL);
	const char *error;
	int64_t id = 0, prev = 0;
	for (int i = 0; i < 6; i++) {
		struct store_audit e = {.time_ms = T0 + i * 10};
		e.event = (enum store_audit_event)(STORE_AUDIT_REGISTER + i);
		snprintf(e.account_id, sizeof(e.account_id), "%s", i % 2 ? "acct-a" : "acct-b");
		snprintf(e.device, sizeof(e.device), "EAS%d", i);
		snprintf(e.detail, sizeof(e.detail), "detail %d", i);
		CHECK_INT(store_audit_append(store, &e, &id, &error), 0);
		CHECK(id > prev);
		prev = id;
	}
	struct store_audit bare = {.time_ms = T0 + 100, .event = STORE_AUDIT_BLOCK};
	CHECK_INT(store_audit_append(store, &bare, NULL, &error), 0);

	struct store_audit *list = NULL;
	size_t n = 0;
	REQUIRE(store_audit_list(store, 0, NULL, 100, &list, &n, &error) == 0);
	CHECK_INT(n, 7);
	CHECK(list != NULL && list[0].event == STORE_AUDIT_REGISTER &&
	      list[3].event == STORE_AUDIT_BAD_KEY && list[6].event == STORE_AUDIT_BLOCK);
	CHECK(list != NULL && strcmp(list[2].detail, "detail 2") == 0 &&
	      strcmp(list[2].device, "EAS2") == 0 && list[2].time_ms == T0 + 20);
	CHECK(list != NULL && list[6].account_id[0] == '\0' && list[6].device[0] == '\0');
	store_list_free(&list);
	REQUIRE(store_audit_list(store, T0 + 20, NULL, 2, &list, &n, &error) == 0);
	CHECK_INT(n, 2);
	CHECK(list != NULL && list[0].time_ms == T0 + 20 && list[1].time_ms == T0 + 30);
	store_list_free(&list);
	REQUIRE(store_audit_list(store, 0, "acct-a", 100, &list, &n, &error) == 0);
	CHECK_INT(n, 3);
	for (size_t i = 0; i < n; i++)
		CHECK_STR(list[i].account_id, "acct-a");
	store_list_free(&list);

	/* Append-only for any connection, enforced by the schema. */
	char msg[256];
	CHECK(db_exec(path, "UPDATE audit SET detail = 'forged'", msg, sizeof(msg)) != 0);
	CHECK(strstr(msg, "append-only") != NULL);
	CHECK(db_exec(path, "DELETE FROM audit WHERE id = 1", msg, sizeof(msg)) != 0);
	CHECK(strstr(msg, "append-only") != NULL);
	CHECK_INT(db_count(path, "audit"), 7);
	CHECK_INT(db_int(path, "SELECT count(*) FROM audit WHERE detail = 'forged'"), 0);

	/* An event name from a later build reads back as unknown. */
	REQUIRE(db_exec(path,
			"INSERT INTO audit (time_ms, event, detail) VALUES (1, 'future', '')",
			NULL, 0) == 0);
	REQUIRE(store_audit_list(store, 0, NULL, 100, &list, &n, &error) == 0);
	CHECK_INT(n, 8);
	CHECK(list != NULL && list[7].event == STORE_AUDIT_UNKNOWN);
	store_list_free(&list);
	store_close(&store);
}

static void test_leases(void)
{
	const char *path = fresh_db_path();
	struct store *store = open_store(&store_driver_sqlite, path);
	REQUIRE(store != NULL);
	struct fixture f;
	const char *error;
	fixture_init(&f, 1, T0);
	REQUIRE(fixture_create(store, &f) == 0);
	const char *acct = f.account.id;

	CHECK_INT(store_lease_acquire(store, acct, "node-a", 1000, 100, &error), 0);
	CHECK_INT(store_lease_acquire(store, acct, "node-b", 1050, 100, &error), HK_ERR_BUSY);
	/* Ours again: extends to 1150. */
	CHECK_INT(store_lease_acquire(store, acct, "node-a", 1050, 100, &error), 0);
	CHECK_INT(store_lease_acquire(store, acct, "node-b", 1149, 100, &error), HK_ERR_BUSY);
	CHECK_INT(store_lease_renew(store, acct, "node-b", 1149, 100, &error), HK_ERR_BUSY);
	CHECK_INT(store_lease_release(store, acct, "node-b", &error), HK_ERR_NOT_FOUND);
	/* A renew of our own expired lease works while nobody took it. */
	CHECK_INT(store_lease_renew(store, acct, "node-a", 1200, 100, &error), 0);
	CHECK_INT(db_int(path, "SELECT expires_ms FROM leases"), 1300);
	/* Expired: the other node steals it at the expiry instant. */
	CHECK_INT(store_lease_acquire(store, acct, "node-b", 1300, 100, &error), 0);
	CHECK_INT(store_lease_renew(store, acct, "node-a", 1310, 100, &error), HK_ERR_BUSY);
	CHECK_INT(store_lease_acquire(store, acct, "node-a", 1310, 100, &error), HK_ERR_BUSY);
	CHECK_INT(store_lease_renew(store, acct, "node-b", 1310, 100, &error), 0);
	CHECK_INT(store_lease_release(store, acct, "node-b", &error), 0);
	/* Released: renewing is "lost", acquiring works at once. */
	CHECK_INT(store_lease_renew(store, acct, "node-b", 1320, 100, &error), HK_ERR_NOT_FOUND);
	CHECK_INT(store_lease_acquire(store, acct, "node-a", 1320, 100, &error), 0);
	CHECK_INT(db_count(path, "leases"), 1);
	/* The lease goes with its account. */
	CHECK_INT(store_account_delete(store, acct, NULL, &error), 0);
	CHECK_INT(db_count(path, "leases"), 0);
	store_close(&store);
}

/* ---- delete, wipe, purge ---- */

static void test_delete_cascades(void)
{
	const char *path = fresh_db_path();
	struct store *store = open_store(&store_driver_sqlite, path);
	REQUIRE(store != NULL);
	struct fixture f, g;
	const char *error;
	fixture_init(&f, 1, T0);
	fixture_init(&g, 2, T0);
	REQUIRE(fixture_create(store, &g) == 0);
	REQUIRE(fixture_populate(store, &g, 50) == 0);
	static const char *const no_audit[] = {"audit", "sqlite_sequence", NULL};
	char *only_g = db_dump_skip(path, no_audit);
	int64_t audit_before = db_count(path, "audit");
	REQUIRE(fixture_create(store, &f) == 0);
	REQUIRE(fixture_populate(store, &f, 60) == 0);

	struct store_audit audit = {.time_ms = T0 + 1, .event = STORE_AUDIT_DELETE};
	snprintf(audit.account_id, sizeof(audit.account_id), "%s", f.account.id);
	CHECK_INT(store_account_delete(store, f.account.id, &audit, &error), 0);
	/* Every row of f is gone, g is untouched, the audit rows stay and
	 * gained the delete. */
	static const char *const tables[] = {"accounts", "devices", "envelopes", "collections",
					     "items",    "push_subscriptions", "leases"};
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		char sql[160];
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE %s = '%s'", tables[i],
			 strcmp(tables[i], "accounts") == 0	 ? "id"
			 : strcmp(tables[i], "envelopes") == 0 ? "device_id"
								 : "account_id",
			 strcmp(tables[i], "envelopes") == 0 ? f.device.id : f.account.id);
		CHECK_INT(db_int(path, sql), 0);
	}
	CHECK_INT(db_count(path, "audit"), audit_before + 2);
	CHECK_INT(db_int(path, "SELECT count(*) FROM audit WHERE event = 'delete'"), 1);
	struct store_stats stats;
	REQUIRE(store_stats(store, &stats, &error) == 0);
	CHECK_INT(stats.accounts, 1);
	CHECK_INT(stats.devices, 1);
	CHECK_INT(stats.envelopes, 1);
	CHECK_INT(stats.collections, 2);
	CHECK_INT(stats.items, 25);
	CHECK_INT(stats.push_subs, 1);
	CHECK_INT(stats.leases, 1);
	CHECK_INT(stats.block_rules, 0);
	CHECK_INT(stats.audit, audit_before + 2);

	/* Apart from the audit log, the database is as before f existed. */
	char *after = db_dump_skip(path, no_audit);
	CHECK_STR(after, only_g);
	free(after);
	free(only_g);
	store_close(&store);
}

static void test_wipe(void)
{
	const char *path = fresh_db_path();
	struct store *store = open_store(&store_driver_sqlite, path);
	REQUIRE(store != NULL);
	struct fixture f, g;
	const char *error;
	fixture_init(&f, 1, T0);
	fixture_init(&g, 2, T0);
	REQUIRE(fixture_create(store, &f) == 0);
	REQUIRE(fixture_create(store, &g) == 0);
	REQUIRE(fixture_populate(store, &f, 10) == 0);
	REQUIRE(fixture_populate(store, &g, 20) == 0);

	struct store_audit audit = {.time_ms = T0 + 5, .event = STORE_AUDIT_WIPE};
	snprintf(audit.account_id, sizeof(audit.account_id), "%s", f.account.id);
	CHECK_INT(store_account_wipe(store, f.account.id, T0 + 5, &audit, &error), 0);

	struct store_account a;
	REQUIRE(store_account_get(store, f.account.id, &a, &error) == 0);
	CHECK_INT(a.state, STORE_ACCOUNT_WIPED);
	CHECK_STR(a.folder_sync_key, "");
	/* The device is still found by its token, tombstoned. */
	struct store_device d;
	REQUIRE(store_device_get_by_token(store, f.device.token_hash, &d, &error) == 0);
	CHECK_INT(d.tombstoned_ms, T0 + 5);
	struct store_envelope *env = NULL;
	CHECK_INT(store_envelope_get(store, f.device.id, &env, &error), HK_ERR_NOT_FOUND);
	CHECK_INT(store_envelope_replace(store, f.device.id, &f.envelope, &error),
		  HK_ERR_NOT_FOUND);
	struct store_stats stats;
	REQUIRE(store_stats(store, &stats, &error) == 0);
	CHECK_INT(stats.accounts, 2);
	CHECK_INT(stats.devices, 2);
	CHECK_INT(stats.envelopes, 1);
	CHECK_INT(stats.collections, 2);
	CHECK_INT(stats.items, 25);
	CHECK_INT(stats.push_subs, 1);
	CHECK_INT(stats.leases, 1);
	CHECK_INT(db_int(path, "SELECT count(*) FROM audit WHERE event = 'wipe'"), 1);
	/* g is untouched. */
	REQUIRE(store_device_get(store, g.device.id, &d, &error) == 0);
	CHECK_INT(d.tombstoned_ms, 0);

	/* Wiping again keeps the first tombstone time. */
	CHECK_INT(store_account_wipe(store, f.account.id, T0 + 9, NULL, &error), 0);
	REQUIRE(store_device_get(store, f.device.id, &d, &error) == 0);
	CHECK_INT(d.tombstoned_ms, T0 + 5);
	store_close(&store);
}

static void test_purge_inactive(void)
{
	const char *path = fresh_db_path();
	struct store *store = open_store(&store_driver_sqlite, path);
	REQUIRE(store != NULL);
	struct fixture f;
	const char *error;
	unsigned count = 99;

	/* 150 idle accounts (more than one page), 3 recent, 1 wiped idle. */
	for (unsigned i = 0; i < 154; i++) {
		fixture_init(&f, i, i < 150 ? T0 : T0 + 10000);
		REQUIRE(fixture_create(store, &f) == 0);
		if (i < 150 && i % 50 == 0)
			REQUIRE(fixture_populate(store, &f, (uint8_t)i) == 0);
	}
	fixture_init(&f, 153, T0);
	REQUIRE(db_exec(path, "UPDATE accounts SET last_activity_ms = 1700000000000"
			      " WHERE id = 'acct0000000000000000000153'",
			NULL, 0) == 0);
	REQUIRE(store_account_wipe(store, f.account.id, T0 + 1, NULL, &error) == 0);

	CHECK_INT(store_account_purge_inactive(store, T0 + 5000, T0 + 20000, &count, &error), 0);
	CHECK_INT(count, 150);
	struct store_stats stats;
	REQUIRE(store_stats(store, &stats, &error) == 0);
	CHECK_INT(stats.accounts, 4);
	CHECK_INT(stats.devices, 4);
	CHECK_INT(stats.items, 0);
	CHECK_INT(stats.leases, 0);
	CHECK_INT(db_int(path, "SELECT count(*) FROM audit WHERE event = 'purge'"
			       " AND time_ms = 1700000020000 AND detail LIKE 'inactive since %'"),
		  150);
	/* The wiped tombstone stays; the recent ones stay. */
	struct store_account a;
	CHECK_INT(store_account_get(store, f.account.id, &a, &error), 0);
	fixture_init(&f, 151, T0);
	CHECK_INT(store_account_get(store, f.account.id, &a, &error), 0);
	fixture_init(&f, 0, T0);
	CHECK_INT(store_account_get(store, f.account.id, &a, &error), HK_ERR_NOT_FOUND);

	CHECK_INT(store_account_purge_inactive(store, T0 + 5000, T0 + 20000, &count, &error), 0);
	CHECK_INT(count, 0);
	store_close(&store);
}

/* Deleted secrets' ciphertext must not stay readable in the files: the
 * point of secure_delete and the checkpoint after a delete. */
static void test_delete_shreds_bytes(void)
{
	const char *path = fresh_db_path();
	const char *wal = side_path(path, "-wal");
	struct store *store = open_store(&store_driver_sqlite, path);
	REQUIRE(store != NULL);
	struct fixture f, g;
	const char *error;
	fixture_init(&f, 1, T0);
	fixture_init(&g, 2, T0);
	REQUIRE(fixture_create(store, &f) == 0);
	REQUIRE(fixture_create(store, &g) == 0);
	REQUIRE(fixture_populate(store, &f, 70) == 0);
	REQUIRE(fixture_populate(store, &g, 80) == 0);
	uint8_t item0[300];
	pattern_fill(item0, sizeof(item0), 70 * 100000u);

#define FOUND(bytes, n) (test_file_count(path, bytes, n) + test_file_count(wal, bytes, n))
	/* Before: the bytes are there to be found (proves the probe works). */
	CHECK(FOUND(f.credential, sizeof(f.credential)) > 0);
	CHECK(FOUND(f.wrapped_dek, sizeof(f.wrapped_dek)) > 0);
	CHECK(FOUND(item0, sizeof(item0)) > 0);

	CHECK_INT(store_account_delete(store, f.account.id, NULL, &error), 0);
	CHECK_INT(FOUND(f.credential, sizeof(f.credential)), 0);
	CHECK_INT(FOUND(f.wrapped_dek, sizeof(f.wrapped_dek)), 0);
	CHECK_INT(FOUND(item0, sizeof(item0)), 0);
	CHECK_INT(FOUND(f.account.salt, sizeof(f.account.salt)), 0);
	/* Wipe shreds too. */
	CHECK(FOUND(g.wrapped_dek, sizeof(g.wrapped_dek)) > 0);
	CHECK_INT(store_account_wipe(store, g.account.id, T0, NULL, &error), 0);
	CHECK_INT(FOUND(g.credential, sizeof(g.credential)), 0);
	CHECK_INT(FOUND(g.wrapped_dek, sizeof(g.wrapped_dek)), 0);
#undef FOUND
	store_close(&store);
}

TESTS(TEST(test_open_creates_schema), TEST(test_open_refuses_newer_version),
      TEST(test_migration_failure_rolls_back), TEST(test_file_modes),
      TEST(test_open_bad_params), TEST(test_account_create_get),
      TEST(test_account_create_conflicts), TEST(test_not_found), TEST(test_argument_checks),
      TEST(test_account_state_and_touch), TEST(test_device_unlocked),
      TEST(test_device_policy_key), TEST(test_account_list_paging),
      TEST(test_envelope_replace), TEST(test_collections), TEST(test_items),
      TEST(test_sync_apply), TEST(test_items_batch_1000), TEST(test_push_subscriptions),
      TEST(test_block_rules),
      TEST(test_audit), TEST(test_leases), TEST(test_delete_cascades), TEST(test_wipe),
      TEST(test_purge_inactive), TEST(test_delete_shreds_bytes));
