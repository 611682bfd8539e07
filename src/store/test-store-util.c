#include "test-store-util.h"

#include "test.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void pattern_fill(uint8_t *buf, size_t len, uint32_t seed)
{
	/* xorshift32: cheap, deterministic, no zero runs. */
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (uint8_t)(x | 1);
	}
}

void fixture_init(struct fixture *f, unsigned n, int64_t now_ms)
{
	memset(f, 0, sizeof(*f));
	struct store_account *a = &f->account;
	snprintf(a->id, sizeof(a->id), "acct%022u", n);
	snprintf(a->server_url, sizeof(a->server_url), "https://mail%u.example.org/", n % 3);
	snprintf(a->username, sizeof(a->username), "user%u", n);
	snprintf(a->email, sizeof(a->email), "user%u@example.org", n);
	pattern_fill(a->salt, sizeof(a->salt), 1000 + n);
	a->state = STORE_ACCOUNT_ACTIVE;
	a->created_ms = now_ms;
	a->last_activity_ms = now_ms;

	struct store_device *d = &f->device;
	snprintf(d->id, sizeof(d->id), "dev%023u", n);
	memcpy(d->account_id, a->id, sizeof(d->account_id));
	snprintf(d->eas_device_id, sizeof(d->eas_device_id), "EASDEV%u", n);
	snprintf(d->device_type, sizeof(d->device_type), "iPhone");
	snprintf(d->user_agent, sizeof(d->user_agent), "Apple-iPhone9C1/1602.92");
	pattern_fill(d->token_hash, sizeof(d->token_hash), 2000 + n);
	d->created_ms = now_ms;
	d->last_seen_ms = now_ms;

	pattern_fill(f->credential, sizeof(f->credential), 3000 + n);
	pattern_fill(f->wrapped_dek, sizeof(f->wrapped_dek), 4000 + n);
	f->envelope.key_id = 1;
	f->envelope.credential = f->credential;
	f->envelope.credential_len = sizeof(f->credential);
	f->envelope.wrapped_dek = f->wrapped_dek;
	f->envelope.wrapped_dek_len = sizeof(f->wrapped_dek);
	f->envelope.updated_ms = now_ms;
}

int fixture_create(struct store *store, const struct fixture *f)
{
	struct store_audit audit = {.time_ms = f->account.created_ms,
				    .event = STORE_AUDIT_REGISTER};
	const char *error;
	memcpy(audit.account_id, f->account.id, sizeof(audit.account_id));
	memcpy(audit.device, f->device.eas_device_id, sizeof(audit.device));
	int ret = store_account_create(store, &f->account, &f->device, &f->envelope, &audit,
				       &error);
	if (ret == HK_ERR_STORE)
		fprintf(stderr, "  fixture_create: %s\n", error);
	return ret;
}

int fixture_fill_cache(struct store *store, const struct fixture *f, unsigned c, unsigned count,
		       size_t len, uint8_t seed)
{
	struct store_collection coll = {.type = 2};
	const char *error;
	snprintf(coll.collection_id, sizeof(coll.collection_id), "mail/%u", c);
	snprintf(coll.parent_id, sizeof(coll.parent_id), "0");
	snprintf(coll.sync_key, sizeof(coll.sync_key), "1");
	snprintf(coll.display_name, sizeof(coll.display_name), "Folder %u", c);
	int ret = store_collection_put(store, f->account.id, &coll, &error);
	if (ret < 0 || count == 0)
		return ret;

	struct store_item *items = calloc(count, sizeof(*items));
	char(*ids)[32] = calloc(count, sizeof(*ids));
	uint8_t *blobs = malloc(count * len);
	for (unsigned i = 0; i < count; i++) {
		snprintf(ids[i], sizeof(ids[i]), "%u:%u", c, i);
		pattern_fill(blobs + i * len, len, seed * 100000u + i);
		items[i] = (struct store_item){.collection_id = coll.collection_id,
					       .item_id = ids[i],
					       .sealed = blobs + i * len,
					       .sealed_len = len,
					       .updated_ms = f->account.created_ms};
	}
	ret = store_item_put(store, f->account.id, items, count, NULL, &error);
	free(items);
	free(ids);
	free(blobs);
	return ret;
}

int fixture_populate(struct store *store, const struct fixture *f, uint8_t seed)
{
	struct store_push_sub s = {.created_ms = f->account.created_ms, .params_len = 16};
	const char *error;
	int ret;
	snprintf(s.id, sizeof(s.id), "sub-%.40s", f->account.id);
	snprintf(s.account_id, sizeof(s.account_id), "%s", f->account.id);
	snprintf(s.type, sizeof(s.type), "webpush");
	snprintf(s.endpoint, sizeof(s.endpoint), "https://push.example/%u", seed);
	pattern_fill(s.params, s.params_len, seed);
	if ((ret = fixture_fill_cache(store, f, 1, 20, 300, seed)) < 0 ||
	    (ret = fixture_fill_cache(store, f, 2, 5, 300, (uint8_t)(seed + 1))) < 0 ||
	    (ret = store_push_add(store, &s, &error)) < 0 ||
	    (ret = store_lease_acquire(store, f->account.id, "node-a", f->account.created_ms,
				       60000, &error)) < 0 ||
	    (ret = store_folder_sync_key_set(store, f->account.id, "fs-1", &error)) < 0)
		return ret;
	return 0;
}

const char *fresh_db_path(void)
{
	static unsigned seq;
	char name[32];
	snprintf(name, sizeof(name), "store-%u.db", seq++);
	return test_path(name);
}

struct store *open_store(const struct store_driver *drv, const char *path)
{
	struct store *store = NULL;
	const char *error = NULL;
	int ret = store_open(drv, path, &store, &error);
	if (!CHECK_INT(ret, 0))
		fprintf(stderr, "  open %s: %s\n", path, error);
	return store;
}

static void dump_value(FILE *out, sqlite3_stmt *stmt, int col)
{
	switch (sqlite3_column_type(stmt, col)) {
	case SQLITE_NULL:
		fputs("N", out);
		break;
	case SQLITE_INTEGER:
		fprintf(out, "I%lld", (long long)sqlite3_column_int64(stmt, col));
		break;
	case SQLITE_FLOAT:
		fprintf(out, "F%.17g", sqlite3_column_double(stmt, col));
		break;
	case SQLITE_TEXT: {
		const unsigned char *t = sqlite3_column_text(stmt, col);
		int n = sqlite3_column_bytes(stmt, col);
		fprintf(out, "T%d:", n);
		fwrite(t, 1, (size_t)n, out);
		break;
	}
	default: {
		const unsigned char *b = sqlite3_column_blob(stmt, col);
		int n = sqlite3_column_bytes(stmt, col);
		fputs("B", out);
		for (int i = 0; i < n; i++)
			fprintf(out, "%02x", b[i]);
		break;
	}
	}
}

char *db_dump(const char *path)
{
	return db_dump_skip(path, NULL);
}

static bool skipped(const char *name, const char *const *skip)
{
	for (; skip != NULL && *skip != NULL; skip++)
		if (strcmp(name, *skip) == 0)
			return true;
	return false;
}

char *db_dump_skip(const char *path, const char *const *skip)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *tables = NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	if (out == NULL || sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		abort();
	fprintf(out, "user_version %lld\n", (long long)db_int(path, "PRAGMA user_version"));
	if (sqlite3_prepare_v2(db,
			       "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name",
			       -1, &tables, NULL) != SQLITE_OK)
		abort();
	while (sqlite3_step(tables) == SQLITE_ROW) {
		char sql[256];
		sqlite3_stmt *rows = NULL;
		const char *name = (const char *)sqlite3_column_text(tables, 0);
		if (skipped(name, skip))
			continue;
		snprintf(sql, sizeof(sql), "SELECT * FROM \"%s\" ORDER BY rowid", name);
		if (sqlite3_prepare_v2(db, sql, -1, &rows, NULL) != SQLITE_OK)
			abort();
		fprintf(out, "table %s\n", name);
		long long n = 0;
		while (sqlite3_step(rows) == SQLITE_ROW) {
			for (int c = 0; c < sqlite3_column_count(rows); c++) {
				fputs(c == 0 ? " " : "|", out);
				dump_value(out, rows, c);
			}
			fputs("\n", out);
			n++;
		}
		fprintf(out, "rows %lld\n", n);
		sqlite3_finalize(rows);
	}
	sqlite3_finalize(tables);
	sqlite3_close(db);
	fclose(out);
	return buf;
}

int db_exec(const char *path, const char *sql, char *msg, size_t msg_size)
{
	sqlite3 *db = NULL;
	char *err = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK)
		abort();
	int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
	if (msg != NULL && msg_size > 0)
		snprintf(msg, msg_size, "%s", err != NULL ? err : "");
	sqlite3_free(err);
	sqlite3_close(db);
	return rc;
}

int64_t db_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *stmt = NULL;
	int64_t v = -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		abort();
	if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK &&
	    sqlite3_step(stmt) == SQLITE_ROW)
		v = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	return v;
}

int64_t db_count(const char *path, const char *table)
{
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM \"%s\"", table);
	return db_int(path, sql);
}

void db_copy(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	char buf[65536];
	size_t n;
	if (in == NULL || out == NULL)
		abort();
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		if (fwrite(buf, 1, n, out) != n)
			abort();
	fclose(in);
	if (fclose(out) != 0 || chmod(to, 0600) != 0)
		abort();
}
