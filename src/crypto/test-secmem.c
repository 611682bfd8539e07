/* Guarded memory, process hardening and the wiping allocators. */
#include "crypto/secmem.h"
#include "crypto/wipealloc.h"
#include "test.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

void test_setup(void)
{
	if (secmem_init() < 0)
		abort();
}

static void test_secret_basics(void)
{
	struct secret *s = secret_new(40);
	REQUIRE(s != NULL);
	CHECK_INT(secret_len(s), 40);
	for (size_t i = 0; i < 40; i++)
		CHECK(secret_cbytes(s)[i] == 0);
	struct secret *d = secret_dup("hunter2", 7);
	CHECK_MEM(secret_cbytes(d), "hunter2", 7);
	struct secret *e = secret_dup("hunter3", 7);
	CHECK(!secret_equal(d, e));
	secret_truncate(e, 6);
	CHECK(!secret_equal(d, e));
	secret_truncate(d, 6);
	CHECK(secret_equal(d, e));
	struct secret *r1 = secret_random(32), *r2 = secret_random(32);
	CHECK(!secret_equal(r1, r2));
	secret_free(&s);
	CHECK(s == NULL);
	secret_free(&s); /* NULL-safe */
	secret_free(&d);
	secret_free(&e);
	secret_free(&r1);
	secret_free(&r2);
	struct secret *z = secret_new(0);
	CHECK_INT(secret_len(z), 0);
	secret_free(&z);
}

/* The flags of the mapping that holds addr, from /proc/self/smaps. */
static bool vmflags_of(const void *addr, char *flags, size_t cap)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	if (f == NULL)
		return false;
	char line[512];
	bool in = false, found = false;
	uintptr_t a = (uintptr_t)addr;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
			in = a >= lo && a < hi;
		else if (in && strncmp(line, "VmFlags:", 8) == 0) {
			snprintf(flags, cap, "%s", line + 8);
			found = true;
			break;
		}
	}
	fclose(f);
	return found;
}

static void check_guarded(struct secret *s)
{
	char flags[600];
	REQUIRE(vmflags_of(secret_cbytes(s), flags, sizeof(flags)));
	/* "dd": excluded from core dumps (MADV_DONTDUMP) */
	CHECK(strstr(flags, " dd") != NULL);
	struct rlimit ml;
	/* locked: never swapped (ASan turns mlock into a no-op, so not there) */
#ifndef __SANITIZE_ADDRESS__
	if (getrlimit(RLIMIT_MEMLOCK, &ml) == 0 && ml.rlim_cur >= 1024 * 1024)
		CHECK(strstr(flags, " lo") != NULL);
#else
	(void)ml;
#endif
}

static void test_secret_not_dumpable(void)
{
	struct secret *s = secret_random(32), *i = secret_new_isolated(32);
	CHECK(!secret_is_isolated(s));
	CHECK(secret_is_isolated(i));
	check_guarded(s);
	check_guarded(i);
	/* larger than the arena's slot limit: isolated */
	struct secret *big = secret_new(SECMEM_ARENA_MAX + 1);
	CHECK(secret_is_isolated(big));
	check_guarded(big);
	secret_free(&s);
	secret_free(&i);
	secret_free(&big);
}

/* When the arena is full, secrets still come from guarded memory. */
static void test_arena_exhaustion(void)
{
	enum { N = SECMEM_ARENA_SIZE / SECMEM_ARENA_MAX + 8 };
	static struct secret *many[N];
	size_t isolated = 0;
	for (size_t k = 0; k < N; k++) {
		many[k] = secret_new(SECMEM_ARENA_MAX);
		isolated += (size_t)secret_is_isolated(many[k]);
		secret_bytes(many[k])[SECMEM_ARENA_MAX - 1] = 1;
	}
	CHECK(isolated >= 8);
	check_guarded(many[N - 1]);
	for (size_t k = 0; k < N; k++)
		secret_free(&many[k]);
	struct secret *s = secret_new(32);
	CHECK(!secret_is_isolated(s)); /* the arena is usable again */
	secret_free(&s);
}

/* Runs fn in a child; true when the child died instead of returning. */
static bool child_dies(void (*fn)(void))
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		/* the crash is expected: keep its sanitizer report out of the log */
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, STDERR_FILENO);
		fn();
		_exit(0);
	}
	int st = 0;
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return false;
	return WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) != 0);
}

static void overflow_one(void)
{
	struct secret *s = secret_new_isolated(32);
	volatile uint8_t *p = secret_bytes(s);
	p[32] = 1; /* the byte after the secret is the guard page */
}

static void underflow_canary(void)
{
	struct secret *s = secret_new_isolated(32);
	volatile uint8_t *p = secret_bytes(s);
	p[-1] ^= 0xff; /* the canary in front; checked by the free */
	secret_free(&s);
}

static void no_overflow(void)
{
	struct secret *s = secret_new_isolated(32);
	volatile uint8_t *p = secret_bytes(s);
	p[31] = 1;
	secret_free(&s);
}

static void test_guard_page_traps(void)
{
	CHECK(!child_dies(no_overflow)); /* the harness itself works */
	CHECK(child_dies(overflow_one));
	CHECK(child_dies(underflow_canary));
}

static void harden_and_report(void)
{
	if (secmem_harden_process() != 0)
		_exit(3);
	struct rlimit core;
	if (getrlimit(RLIMIT_CORE, &core) != 0 || core.rlim_cur != 0 || core.rlim_max != 0)
		_exit(4);
	if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
		_exit(5);
	_exit(0);
}

static void test_harden_process(void)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		harden_and_report();
	int st = 0;
	REQUIRE(pid > 0 && waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st));
	CHECK_INT(WEXITSTATUS(st), 0);
}

static size_t frees_seen, nonzero_frees;

static void free_hook(const void *block, size_t len)
{
	const uint8_t *b = block;
	frees_seen++;
	for (size_t i = 0; i < len; i++) {
		if (b[i] != 0) {
			nonzero_frees++;
			return;
		}
	}
}

static void test_wipealloc_wipes(void)
{
	frees_seen = nonzero_frees = 0;
	wipealloc_set_free_hook(free_hook);
	char *p = wipealloc_malloc(100);
	REQUIRE(p != NULL);
	memset(p, 'S', 100);
	CHECK_INT(wipealloc_size(p), 100);
	/* growth: the old block is wiped when the data moves */
	p = wipealloc_realloc(p, 5000);
	REQUIRE(p != NULL);
	CHECK(p[99] == 'S');
	CHECK_INT(frees_seen, 1);
	char *d = wipealloc_strdup("Authorization: Basic YWxpY2U6cHc=");
	uint8_t *c = wipealloc_calloc(10, 10);
	CHECK(c != NULL && c[0] == 0 && c[99] == 0);
	CHECK(wipealloc_calloc(SIZE_MAX / 2, 4) == NULL); /* overflow refused */
	wipealloc_free(p);
	wipealloc_free(d);
	wipealloc_free(c);
	wipealloc_free(NULL);
	CHECK_INT(frees_seen, 4);
	CHECK_INT(nonzero_frees, 0);
	CHECK(wipealloc_realloc(wipealloc_malloc(8), 0) == NULL);
	wipealloc_set_free_hook(NULL);
}

/* OpenSSL, libcurl and SQLite allocate through the wiping allocator, and
 * what they free comes back zeroed. */
static void test_libraries_use_wipealloc(void)
{
	frees_seen = nonzero_frees = 0;
	wipealloc_set_free_hook(free_hook);

	size_t before = wipealloc_live_blocks();
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	CHECK(wipealloc_live_blocks() > before);
	EVP_CIPHER_CTX_free(ctx);
	CHECK_INT(wipealloc_live_blocks(), before);

	CURL *curl = curl_easy_init();
	CHECK(wipealloc_live_blocks() > before);
	curl_easy_setopt(curl, CURLOPT_USERPWD, "alice:s3cret");
	curl_easy_cleanup(curl);

	size_t seen = frees_seen;
	sqlite3 *db = NULL;
	CHECK(sqlite3_open(":memory:", &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES('secret-ish');", NULL,
			   NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	CHECK(frees_seen > seen);

	CHECK(frees_seen > 0);
	CHECK_INT(nonzero_frees, 0);
	wipealloc_set_free_hook(NULL);
}

static void test_constant_time_compare(void)
{
	uint8_t a[32], b[32];
	memset(a, 7, 32);
	memset(b, 7, 32);
	CHECK(secmem_memcmp(a, b, 32) == 0);
	b[31] = 8;
	CHECK(secmem_memcmp(a, b, 32) != 0);
	b[31] = 7;
	b[0] = 0;
	CHECK(secmem_memcmp(a, b, 32) != 0);
	secmem_wipe(a, 32);
	for (int i = 0; i < 32; i++)
		CHECK(a[i] == 0);
}

static void test_secret_views(void)
{
	struct secret *block = secret_new_isolated(40);
	memcpy(secret_bytes(block), "0123456789abcdefghijklmnopqrstuvwxyzABCD", 40);
	struct secret *a = secret_view(block, 0, 32), *b = secret_view(block, 32, 8);
	CHECK_INT(secret_len(a), 32);
	CHECK_INT(secret_len(b), 8);
	CHECK_MEM(secret_cbytes(b), "wxyzABCD", 8);
	CHECK(secret_is_isolated(a));
	secret_bytes(a)[0] = 'X'; /* a view writes through to its parent */
	CHECK(secret_cbytes(block)[0] == 'X');
	secret_free(&a);
	CHECK_MEM(secret_cbytes(b), "wxyzABCD", 8); /* freeing a view leaves the bytes */
	secret_free(&b);
	secret_free(&block);
}

static void view_outside(void)
{
	struct secret *block = secret_new(8);
	struct secret *v = secret_view(block, 4, 5); /* one byte too many: aborts */
	secret_free(&v);
}

static void test_secret_view_bounds(void)
{
	CHECK(child_dies(view_outside));
}

/* Freeing wipes arena secrets: past the allocator's own free-list words
 * (the first 16 bytes), every byte of a freed block is zero. The arena is
 * one mapping that stays, so reading it after the free is defined here. */
static void test_free_wipes_arena(void)
{
	for (int round = 0; round < 200; round++) {
		size_t n = 17 + (size_t)round % 100;
		struct secret *s = secret_new(n);
		REQUIRE(!secret_is_isolated(s));
		memset(secret_bytes(s), 'S', n);
		volatile const uint8_t *p = secret_cbytes(s);
		secret_free(&s);
		for (size_t i = 16; i < n; i++)
			if (!CHECK(p[i] == 0))
				return;
	}
}

TESTS(TEST(test_free_wipes_arena), TEST(test_secret_views), TEST(test_secret_view_bounds), TEST(test_secret_basics), TEST(test_secret_not_dumpable),
      TEST(test_arena_exhaustion), TEST(test_guard_page_traps),
      TEST(test_harden_process), TEST(test_wipealloc_wipes), TEST(test_libraries_use_wipealloc),
      TEST(test_constant_time_compare));
