/* bench-store: how fast the SQLite store caches sealed items.
 *
 * Usage: bench-store [rows [batch]]   (defaults: 200000 rows, batches of 500)
 *
 * Inserts rows sealed items of 300 random bytes into a fresh database in a
 * temporary directory, batch items per store_item_put() call (one
 * transaction each), then 5000 more one per call, and prints rows per
 * second for both. The target for batched puts is 20,000 rows/s. */
#include "lib/clock.h"
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEALED_LEN 300
#define POOL_LEN (1024 * 1024)
#define SINGLE_ROWS 5000
#define TARGET_ROWS_PER_S 20000.0

static int parse_count(const char *s, unsigned long *value_r)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v == 0 || v > 100000000)
		return -1;
	*value_r = v;
	return 0;
}

static int fill_random(uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = getrandom(buf, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Creates the one account the items belong to, and its collection. */
static int setup(struct store *store, const char **error_r)
{
	struct store_account a = {.state = STORE_ACCOUNT_ACTIVE, .created_ms = 1,
				  .last_activity_ms = 1};
	struct store_device d = {.created_ms = 1, .last_seen_ms = 1};
	struct store_collection c = {.type = 2};
	static const uint8_t cred[64] = {1}, dek[60] = {2};
	const struct store_envelope e = {1, cred, sizeof(cred), dek, sizeof(dek), 1};
	int ret;

	snprintf(a.id, sizeof(a.id), "01HBENCHACCOUNT00000000000");
	snprintf(a.server_url, sizeof(a.server_url), "https://mail.example.org/");
	snprintf(a.username, sizeof(a.username), "bench");
	snprintf(d.id, sizeof(d.id), "01HBENCHDEVICE000000000000");
	snprintf(d.account_id, sizeof(d.account_id), "%s", a.id);
	snprintf(d.eas_device_id, sizeof(d.eas_device_id), "BENCH");
	snprintf(c.collection_id, sizeof(c.collection_id), "mail%%2FINBOX");
	snprintf(c.sync_key, sizeof(c.sync_key), "1");
	if ((ret = store_account_create(store, &a, &d, &e, NULL, error_r)) < 0)
		return ret;
	return store_collection_put(store, a.id, &c, error_r);
}

/* Puts rows items starting at number first, batch per call; returns the
 * elapsed milliseconds or -1. */
static int64_t put_rows(struct store *store, const uint8_t *pool, unsigned long first,
			unsigned long rows, unsigned long batch)
{
	struct store_item *items = calloc(batch, sizeof(*items));
	char(*ids)[24] = calloc(batch, sizeof(*ids));
	const struct hk_clock *clock = hk_clock_real();
	const char *error = NULL;
	int64_t elapsed = -1;
	if (items == NULL || ids == NULL)
		goto out;

	int64_t start = hk_clock_mono(clock);
	for (unsigned long done = 0; done < rows;) {
		unsigned long n = rows - done < batch ? rows - done : batch;
		for (unsigned long i = 0; i < n; i++) {
			unsigned long row = first + done + i;
			snprintf(ids[i], sizeof(ids[i]), "%lu", row);
			items[i] = (struct store_item){
				.collection_id = "mail%2FINBOX",
				.item_id = ids[i],
				.sealed = pool + (row * 331) % (POOL_LEN - SEALED_LEN),
				.sealed_len = SEALED_LEN,
				.updated_ms = 1,
			};
		}
		if (store_item_put(store, "01HBENCHACCOUNT00000000000", items, n, NULL, &error) <
		    0) {
			fprintf(stderr, "bench-store: put: %s\n", error);
			goto out;
		}
		done += n;
	}
	elapsed = hk_clock_mono(clock) - start;
out:
	free(items);
	free(ids);
	return elapsed;
}

static void report(const char *what, unsigned long rows, int64_t ms)
{
	double per_s = (double)rows * 1000.0 / (double)(ms > 0 ? ms : 1);
	printf("%-28s %9lu rows %8" PRId64 " ms %12.0f rows/s\n", what, rows, ms, per_s);
}

int main(int argc, char **argv)
{
	unsigned long rows = 200000, batch = 500;
	char dir[256], path[300], side[320];
	struct store *store = NULL;
	const char *error = NULL;
	uint8_t *pool = NULL;
	int status = 1;

	if (argc > 3 || (argc > 1 && parse_count(argv[1], &rows) < 0) ||
	    (argc > 2 && parse_count(argv[2], &batch) < 0)) {
		fprintf(stderr, "usage: bench-store [rows [batch]]\n");
		return 2;
	}
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/hk-bench-XXXXXX", tmp != NULL ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		perror("bench-store: mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/bench.db", dir);

	pool = malloc(POOL_LEN);
	if (pool == NULL || fill_random(pool, POOL_LEN) < 0) {
		fprintf(stderr, "bench-store: no random pool\n");
		goto out;
	}
	if (store_open(&store_driver_sqlite, path, &store, &error) < 0 ||
	    setup(store, &error) < 0) {
		fprintf(stderr, "bench-store: %s\n", error);
		goto out;
	}

	int64_t batched_ms = put_rows(store, pool, 0, rows, batch);
	int64_t single_ms = batched_ms < 0 ? -1 : put_rows(store, pool, rows, SINGLE_ROWS, 1);
	if (batched_ms < 0 || single_ms < 0)
		goto out;

	char label[64];
	snprintf(label, sizeof(label), "batched puts (%lu/txn):", batch);
	report(label, rows, batched_ms);
	report("single puts (1/txn):", SINGLE_ROWS, single_ms);
	struct stat st;
	if (stat(path, &st) == 0)
		printf("%-28s %9.1f MiB (%d-byte sealed items)\n", "database size:",
		       (double)st.st_size / (1024.0 * 1024.0), SEALED_LEN);
	double per_s = (double)rows * 1000.0 / (double)(batched_ms > 0 ? batched_ms : 1);
	printf("target %.0f rows/s batched: %s\n", TARGET_ROWS_PER_S,
	       per_s >= TARGET_ROWS_PER_S ? "met" : "NOT met");
	status = 0;
out:
	store_close(&store);
	free(pool);
	static const char *const suffixes[] = {"", "-wal", "-shm"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(side, sizeof(side), "%s%s", path, suffixes[i]);
		unlink(side);
	}
	rmdir(dir);
	return status;
}
