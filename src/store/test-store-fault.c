/* Failure and crash tests: a fault at every internal step of each
 * multi-step write leaves the database exactly as before and a retry
 * succeeds; a process that dies at any step of a registration or deletion
 * leaves no half account. */
#include "store/store-fault.h"
#include "store/store-private.h"
#include "test-store-util.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define T0 INT64_C(1700000000000)

/* The operations under test, with the fixture they act on. */
typedef int op_fn(struct store *store, const struct fixture *f, const char **error_r);

static int op_create(struct store *store, const struct fixture *f, const char **error_r)
{
	struct store_audit audit = {.time_ms = T0, .event = STORE_AUDIT_REGISTER};
	memcpy(audit.account_id, f->account.id, sizeof(audit.account_id));
	return store_account_create(store, &f->account, &f->device, &f->envelope, &audit,
				    error_r);
}

static int op_delete(struct store *store, const struct fixture *f, const char **error_r)
{
	struct store_audit audit = {.time_ms = T0 + 1, .event = STORE_AUDIT_DELETE};
	memcpy(audit.account_id, f->account.id, sizeof(audit.account_id));
	return store_account_delete(store, f->account.id, &audit, error_r);
}

static int op_wipe(struct store *store, const struct fixture *f, const char **error_r)
{
	struct store_audit audit = {.time_ms = T0 + 2, .event = STORE_AUDIT_WIPE};
	memcpy(audit.account_id, f->account.id, sizeof(audit.account_id));
	return store_account_wipe(store, f->account.id, T0 + 2, &audit, error_r);
}

static int op_put_batch(struct store *store, const struct fixture *f, const char **error_r)
{
	static const uint8_t blob[] = "sealed-bytes-of-a-new-mail";
	struct store_item items[5];
	char ids[5][16];
	for (int i = 0; i < 5; i++) {
		snprintf(ids[i], sizeof(ids[i]), "new%d", i);
		/* The last one replaces an existing item. */
		items[i] = (struct store_item){"mail/1", i == 4 ? "1:0" : ids[i], blob,
					       sizeof(blob), T0 + 3};
	}
	return store_item_put(store, f->account.id, items, 5, NULL, error_r);
}

/* One Sync response: a restart's clear, two deletes (one of an item that
 * is not cached), three puts (one replacing an existing item), the key. */
static int op_sync_apply(struct store *store, const struct fixture *f, const char **error_r)
{
	static const uint8_t blob[] = "sealed-bytes-of-a-synced-mail";
	struct store_item puts[3] = {
		{"mail/1", "s0", blob, sizeof(blob), T0 + 4},
		{"mail/1", "s1", blob, sizeof(blob), T0 + 4},
		{"mail/1", "1:7", blob, sizeof(blob), T0 + 4},
	};
	const char *const dels[] = {"1:3", "never-cached"};
	struct store_sync_batch b = {.collection_id = "mail/1", .sync_key = "sk-2",
				     .puts = puts, .n_puts = 3, .deletes = dels, .n_deletes = 2};
	return store_sync_apply(store, f->account.id, &b, NULL, error_r);
}

static int op_sync_restart(struct store *store, const struct fixture *f, const char **error_r)
{
	struct store_sync_batch b = {.collection_id = "mail/2", .sync_key = "0", .clear = true};
	return store_sync_apply(store, f->account.id, &b, NULL, error_r);
}

static int op_cache_clear(struct store *store, const struct fixture *f, const char **error_r)
{
	return store_cache_clear(store, f->account.id, error_r);
}

static int op_collection_delete(struct store *store, const struct fixture *f,
				const char **error_r)
{
	return store_collection_delete(store, f->account.id, "mail/1", error_r);
}

static int op_touch(struct store *store, const struct fixture *f, const char **error_r)
{
	return store_device_touch(store, f->device.id, T0 + 50, error_r);
}

static int op_unlocked(struct store *store, const struct fixture *f, const char **error_r)
{
	struct store_audit a = {.time_ms = T0 + 60, .event = STORE_AUDIT_UNLOCK};
	snprintf(a.account_id, sizeof(a.account_id), "%s", f->account.id);
	return store_device_unlocked(store, f->device.id, T0 + 60, &a, error_r);
}

/* Fails op at step 1, 2, 3, ... until a run gets through. After each
 * failure the database must be byte-for-byte as before, and no write lock
 * may be left behind (another connection can write at once). The run that
 * gets through is the retry that must succeed. Returns op's step count. */
static unsigned sweep(struct store *store, const char *path, op_fn *op, const struct fixture *f)
{
	char *before = db_dump(path);
	unsigned n;
	int ret = -1;
	for (n = 1; n < 64; n++) {
		const char *error = NULL;
		if (!CHECK_INT(store_fault_set(store, n), 0))
			break;
		if ((ret = op(store, f, &error)) == 0)
			break;
		char *after = db_dump(path);
		if (!CHECK_INT(ret, HK_ERR_FAULT) ||
		    !CHECK(error != NULL && strstr(error, "injected fault") != NULL) ||
		    !CHECK_STR(before, after) ||
		    !CHECK_INT(db_exec(path, "BEGIN IMMEDIATE; COMMIT", NULL, 0), 0)) {
			fprintf(stderr, "  ... after a fault at step %u: %s\n", n,
				error != NULL ? error : "(no error text)");
			free(after);
			break;
		}
		free(after);
	}
	CHECK_INT(ret, 0);
	unsigned steps = store_fault_steps(store);
	CHECK_INT(steps, n - 1);
	CHECK_INT(store_fault_set(store, 0), 0);
	free(before);
	return steps;
}

/* A store with one unrelated, fully populated account, so that a fault
 * that touched the wrong rows would show. */
static struct store *open_populated(const char *path, const struct store_driver *drv)
{
	struct store *store = open_store(drv, path);
	struct fixture other;
	if (store == NULL)
		return NULL;
	fixture_init(&other, 99, T0);
	if (!CHECK_INT(fixture_create(store, &other), 0) ||
	    !CHECK_INT(fixture_populate(store, &other, 90), 0))
		store_close(&store);
	return store;
}

static void test_fault_driver_basics(void)
{
	const char *path = fresh_db_path();
	struct store *store = open_populated(path, &store_driver_fault);
	REQUIRE(store != NULL);
	struct store_stats stats;
	const char *error = NULL;

	/* A read is one step: fail it once, then it works again. */
	CHECK_INT(store_fault_set(store, 1), 0);
	CHECK_INT(store_stats(store, &stats, &error), HK_ERR_FAULT);
	CHECK(error != NULL && strstr(error, "injected fault") != NULL);
	CHECK_INT(store_fault_steps(store), 1);
	CHECK_INT(store_stats(store, &stats, &error), 0);
	CHECK_INT(stats.accounts, 1);
	/* The third step from now, not before. */
	CHECK_INT(store_fault_set(store, 3), 0);
	CHECK_INT(store_stats(store, &stats, &error), 0);
	CHECK_INT(store_stats(store, &stats, &error), 0);
	CHECK_INT(store_stats(store, &stats, &error), HK_ERR_FAULT);
	CHECK_INT(store_stats(store, &stats, &error), 0);
	CHECK_INT(store_fault_steps(store), 4);
	/* Argument errors never reach the database: no step. */
	CHECK_INT(store_fault_set(store, 1), 0);
	CHECK_INT(store_stats(store, NULL, &error), HK_ERR_INVAL);
	CHECK_INT(store_fault_steps(store), 0);
	CHECK_INT(store_fault_set(store, 0), 0);

	/* Only fault stores take faults. */
	struct store *plain = open_store(&store_driver_sqlite, path);
	CHECK(plain != NULL);
	CHECK_INT(store_fault_set(plain, 1), HK_ERR_INVAL);
	CHECK_INT(store_fault_steps(plain), 0);
	store_close(&plain);
	store_close(&store);

	/* Open failures come through the wrapper. */
	CHECK_INT(store_open(&store_driver_fault, "", &store, &error), HK_ERR_INVAL);
	CHECK(store == NULL);
}

static void test_fault_sweep_create_delete(void)
{
	const char *path = fresh_db_path();
	struct store *store = open_populated(path, &store_driver_fault);
	REQUIRE(store != NULL);
	static const char *const no_audit[] = {"audit", "sqlite_sequence", NULL};
	char *original = db_dump_skip(path, no_audit);
	struct fixture f;
	const char *error;
	fixture_init(&f, 1, T0);

	/* begin, duplicate check, account, device, envelope, audit, commit */
	CHECK_INT(sweep(store, path, op_create, &f), 7);
	struct store_account a;
	CHECK_INT(store_account_get(store, f.account.id, &a, &error), 0);
	CHECK_INT(fixture_populate(store, &f, 10), 0);

	/* begin, delete (cascading), audit, commit */
	CHECK_INT(sweep(store, path, op_delete, &f), 4);
	CHECK_INT(store_account_get(store, f.account.id, &a, &error), HK_ERR_NOT_FOUND);
	/* Back to the original, except for the audit rows of both. */
	char *now = db_dump_skip(path, no_audit);
	CHECK_STR(now, original);
	CHECK_INT(db_int(path, "SELECT count(*) FROM audit WHERE account_id = "
			       "'acct0000000000000000000001'"),
		  2);
	free(now);
	free(original);
	store_close(&store);
}

static void test_fault_sweep_wipe(void)
{
	const char *path = fresh_db_path();
	struct store *store = open_populated(path, &store_driver_fault);
	REQUIRE(store != NULL);
	struct fixture f;
	const char *error;
	fixture_init(&f, 1, T0);
	REQUIRE(fixture_create(store, &f) == 0);
	REQUIRE(fixture_populate(store, &f, 10) == 0);

	/* begin, state, envelopes, collections (and items), push, lease,
	 * tombstones, audit, commit */
	CHECK_INT(sweep(store, path, op_wipe, &f), 9);
	struct store_device d;
	CHECK_INT(store_device_get(store, f.device.id, &d, &error), 0);
	CHECK_INT(d.tombstoned_ms, T0 + 2);
	CHECK_INT(db_int(path, "SELECT count(*) FROM items WHERE account_id = "
			       "'acct0000000000000000000001'"),
		  0);
	store_close(&store);
}

static void test_fault_sweep_cache_writes(void)
{
	const char *path = fresh_db_path();
	struct store *store = open_populated(path, &store_driver_fault);
	REQUIRE(store != NULL);
	struct fixture f;
	const char *error;
	fixture_init(&f, 1, T0);
	REQUIRE(fixture_create(store, &f) == 0);
	REQUIRE(fixture_populate(store, &f, 10) == 0);

	/* begin, bump, 5 puts, commit */
	CHECK_INT(sweep(store, path, op_put_batch, &f), 8);
	struct store_account a;
	REQUIRE(store_account_get(store, f.account.id, &a, &error) == 0);
	CHECK_INT(a.change_counter, 3); /* two fills, one batch */
	/* begin, key, 2 deletes, 3 puts, bump, commit */
	CHECK_INT(sweep(store, path, op_sync_apply, &f), 9);
	struct store_collection c;
	REQUIRE(store_collection_get(store, f.account.id, "mail/1", &c, &error) == 0);
	CHECK_STR(c.sync_key, "sk-2");
	CHECK_INT(db_int(path, "SELECT count(*) FROM items WHERE account_id = "
			       "'acct0000000000000000000001' AND collection_id = 'mail/1'"),
		  24 - 1 + 2); /* after the batch above: one deleted, two new */
	REQUIRE(store_account_get(store, f.account.id, &a, &error) == 0);
	CHECK_INT(a.change_counter, 4);
	/* begin, key, clear, bump, commit */
	CHECK_INT(sweep(store, path, op_sync_restart, &f), 5);
	CHECK_INT(db_int(path, "SELECT count(*) FROM items WHERE account_id = "
			       "'acct0000000000000000000001' AND collection_id = 'mail/2'"),
		  0);
	/* begin, touch device, touch account, commit */
	CHECK_INT(sweep(store, path, op_touch, &f), 4);
	/* a flushed account unlocked: begin, touch device, touch account,
	 * reactivate, audit, commit */
	REQUIRE(store_account_set_state(store, f.account.id, STORE_ACCOUNT_FLUSHED, T0 + 55,
					&error) == 0);
	int64_t audits = db_count(path, "audit");
	CHECK_INT(sweep(store, path, op_unlocked, &f), 6);
	REQUIRE(store_account_get(store, f.account.id, &a, &error) == 0);
	CHECK_INT(a.state, STORE_ACCOUNT_ACTIVE);
	CHECK_INT(db_count(path, "audit"), audits + 1);
	/* begin, delete, bump, commit */
	CHECK_INT(sweep(store, path, op_collection_delete, &f), 4);
	/* begin, bump, delete collections, folder key, commit */
	CHECK_INT(sweep(store, path, op_cache_clear, &f), 5);
	CHECK_INT(db_int(path, "SELECT count(*) FROM items WHERE account_id = "
			       "'acct0000000000000000000001'"),
		  0);
	store_close(&store);
}

/* Purge is one transaction per account, so a fault mid-way may leave some
 * accounts purged: each account must be all there or all gone (with its
 * audit row), and a retry finishes the job. Each fault step runs on a fresh
 * copy of the same database. */
static void test_fault_sweep_purge(void)
{
	const char *base = fresh_db_path();
	const char *path = fresh_db_path();
	struct store *store = open_store(&store_driver_sqlite, base);
	REQUIRE(store != NULL);
	for (unsigned i = 1; i <= 4; i++) {
		struct fixture f;
		fixture_init(&f, i, i == 4 ? T0 + 10000 : T0);
		REQUIRE(fixture_create(store, &f) == 0);
		REQUIRE(fixture_populate(store, &f, (uint8_t)(i * 10)) == 0);
	}
	store_close(&store);

	unsigned steps = 0;
	for (unsigned n = 1; n < 64; n++) {
		const char *error = NULL;
		unsigned count = 0;
		db_copy(base, path);
		store = open_store(&store_driver_fault, path);
		REQUIRE(store != NULL);
		REQUIRE(store_fault_set(store, n) == 0);
		int ret = store_account_purge_inactive(store, T0 + 5000, T0 + 6000, &count, &error);
		steps = store_fault_steps(store);
		if (ret == 0) {
			CHECK_INT(count, 3);
			store_close(&store);
			break;
		}
		CHECK_INT(ret, HK_ERR_FAULT);
		/* No orphan anywhere; every purged account has its audit row
		 * and every remaining one all of its rows. */
		CHECK_INT(db_int(path, "SELECT (SELECT count(*) FROM devices WHERE account_id"
				       " NOT IN (SELECT id FROM accounts))"
				       " + (SELECT count(*) FROM envelopes WHERE device_id"
				       " NOT IN (SELECT id FROM devices))"
				       " + (SELECT count(*) FROM collections WHERE account_id"
				       " NOT IN (SELECT id FROM accounts))"
				       " + (SELECT count(*) FROM items WHERE account_id"
				       " NOT IN (SELECT id FROM accounts))"
				       " + (SELECT count(*) FROM push_subscriptions"
				       " WHERE account_id NOT IN (SELECT id FROM accounts))"
				       " + (SELECT count(*) FROM leases WHERE account_id"
				       " NOT IN (SELECT id FROM accounts))"),
			  0);
		int64_t accounts = db_count(path, "accounts");
		CHECK_INT(db_int(path, "SELECT count(*) FROM audit WHERE event = 'purge'"),
			  4 - accounts);
		CHECK_INT(db_count(path, "devices"), accounts);
		CHECK_INT(db_count(path, "envelopes"), accounts);
		CHECK_INT(db_count(path, "items"), 25 * accounts);
		CHECK_INT(db_count(path, "push_subscriptions"), accounts);
		CHECK_INT(count, (unsigned)(4 - accounts));
		/* The retry purges the rest. */
		REQUIRE(store_fault_set(store, 0) == 0);
		CHECK_INT(store_account_purge_inactive(store, T0 + 5000, T0 + 6000, &count, &error),
			  0);
		CHECK_INT(count, (unsigned)(accounts - 1));
		CHECK_INT(db_count(path, "accounts"), 1);
		CHECK_INT(db_int(path, "SELECT count(*) FROM audit WHERE event = 'purge'"), 3);
		store_close(&store);
		if (test_failed())
			break;
	}
	/* One page query, then begin, delete, audit, commit per account. */
	CHECK_INT(steps, 1 + 3 * 4);
}

/* ---- crashes ---- */

static unsigned crash_at, crash_steps;

/* The parent's dump before the crashes, at file scope so that the forked
 * child can free its copy: the child dies by _exit() and valgrind, which
 * follows it there, would report the inherited block as lost. */
static char *crash_before;

/* Step hook of the child: dies, without any cleanup, at the chosen step,
 * as a process killed mid-transaction would. */
static int crash_hook(void *ctx)
{
	(void)ctx;
	if (++crash_steps == crash_at)
		_exit(42);
	return 0;
}

/* Runs op in a child process that dies at step at; returns its exit code
 * (42: died at the step, 0: op completed and the child exited without
 * closing the store). */
static int run_child(const char *path, unsigned at, op_fn *op, const struct fixture *f)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		struct store *store = NULL;
		const char *error;
		free(crash_before);
		crash_before = NULL;
		if (store_open(&store_driver_sqlite, path, &store, &error) < 0)
			_exit(2);
		crash_at = at;
		crash_steps = 0;
		store_driver_sqlite.set_step_hook(store, crash_hook, NULL);
		_exit(op(store, f, &error) == 0 ? 0 : 3);
	}
	int status = 0;
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* Crashes op at every step in turn; after each crash a reopened store
 * (which recovers the WAL) holds exactly what it held before. Finally op
 * runs to completion in a child that exits without closing. */
static void crash_sweep(const char *path, op_fn *op, const struct fixture *f)
{
	char *before = crash_before = db_dump(path);
	unsigned at;
	for (at = 1; at < 64; at++) {
		int code = run_child(path, at, op, f);
		if (code == 0)
			break;
		if (!CHECK_INT(code, 42))
			break;
		struct store *store = open_store(&store_driver_sqlite, path);
		REQUIRE(store != NULL);
		char *after = db_dump(path);
		if (!CHECK_STR(before, after))
			fprintf(stderr, "  ... after a crash at step %u\n", at);
		free(after);
		store_close(&store);
	}
	CHECK(at > 3 && at < 64);
	char *after = db_dump(path);
	CHECK(strcmp(before, after) != 0);
	free(after);
	free(before);
	crash_before = NULL;
}

static void test_crash_mid_create_and_delete(void)
{
	const char *path = fresh_db_path();
	struct store *store = open_populated(path, &store_driver_sqlite);
	REQUIRE(store != NULL);
	store_close(&store);
	struct fixture f;
	struct store_account a;
	const char *error;
	fixture_init(&f, 1, T0);

	crash_sweep(path, op_create, &f);
	/* The completed registration survived its process's sudden exit. */
	store = open_store(&store_driver_sqlite, path);
	REQUIRE(store != NULL);
	CHECK_INT(store_account_get(store, f.account.id, &a, &error), 0);
	struct store_envelope *env = NULL;
	CHECK_INT(store_envelope_get(store, f.device.id, &env, &error), 0);
	store_envelope_free(&env);
	CHECK_INT(fixture_populate(store, &f, 10), 0);
	store_close(&store);

	crash_sweep(path, op_delete, &f);
	store = open_store(&store_driver_sqlite, path);
	REQUIRE(store != NULL);
	CHECK_INT(store_account_get(store, f.account.id, &a, &error), HK_ERR_NOT_FOUND);
	CHECK_INT(db_int(path, "SELECT count(*) FROM items WHERE account_id = "
			       "'acct0000000000000000000001'"),
		  0);
	store_close(&store);
}

static void test_crash_mid_batch(void)
{
	const char *path = fresh_db_path();
	struct store *store = open_populated(path, &store_driver_sqlite);
	REQUIRE(store != NULL);
	struct fixture f;
	fixture_init(&f, 1, T0);
	REQUIRE(fixture_create(store, &f) == 0);
	REQUIRE(fixture_populate(store, &f, 10) == 0);
	store_close(&store);
	crash_sweep(path, op_put_batch, &f);
	CHECK_INT(db_int(path, "SELECT count(*) FROM items WHERE item_id LIKE 'new%'"), 4);
}

/* A process killed at any step of applying a Sync response leaves neither
 * the items without the key nor the key without the items. */
static void test_crash_mid_sync_apply(void)
{
	const char *path = fresh_db_path();
	struct store *store = open_populated(path, &store_driver_sqlite);
	REQUIRE(store != NULL);
	struct fixture f;
	fixture_init(&f, 1, T0);
	REQUIRE(fixture_create(store, &f) == 0);
	REQUIRE(fixture_populate(store, &f, 10) == 0);
	store_close(&store);
	crash_sweep(path, op_sync_apply, &f);
	CHECK_INT(db_int(path, "SELECT count(*) FROM collections WHERE sync_key = 'sk-2'"), 1);
	CHECK_INT(db_int(path, "SELECT count(*) FROM items WHERE item_id LIKE 's_'"), 2);
}

TESTS(TEST(test_fault_driver_basics), TEST(test_fault_sweep_create_delete),
      TEST(test_fault_sweep_wipe), TEST(test_fault_sweep_cache_writes),
      TEST(test_fault_sweep_purge), TEST(test_crash_mid_create_and_delete),
      TEST(test_crash_mid_batch), TEST(test_crash_mid_sync_apply));
