/* A small unit-test harness. A test file defines its cases with TESTS(...);
 * tests/test.c provides main(), runs every case (or those named on the
 * command line) and prints "N passed, M failed". A case fails as soon as one
 * of its CHECKs fails; the run continues with the next case. */
#ifndef HK_TEST_H
#define HK_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct test_case {
	const char *name;
	void (*fn)(void);
};

extern const struct test_case hk_tests[];
extern const size_t hk_test_count;

#define TESTS(...)                                                          \
	const struct test_case hk_tests[] = {__VA_ARGS__};                  \
	const size_t hk_test_count = sizeof(hk_tests) / sizeof(hk_tests[0])
#define TEST(fn) {#fn, fn}

/* Records a failure; returns cond so callers can stop early. */
bool test_check(bool cond, const char *expr, const char *file, int line);
bool test_check_int(long long a, long long b, const char *ea, const char *eb, const char *file,
		    int line);
bool test_check_mem(const void *a, const void *b, size_t n, const char *ea, const char *eb,
		    const char *file, int line);
bool test_failed(void);
/* Marks the current case skipped: something it needs is missing (an unset
 * variable, a feature the server lacks). A skipped case counts neither as
 * passed nor as failed (a failure recorded before still fails it); main()
 * exits 77, CTest's skip code, when every case that ran was skipped. */
void test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Optional: a test program may define test_setup(); main() calls it once
 * before the first case (e.g. secmem_init()). */
void test_setup(void) __attribute__((weak));

/* A fresh empty directory for this test program (removed at exit). */
const char *test_tmpdir(void);
/* Path join into a static rotating buffer (for test convenience only). */
const char *test_path(const char *name);
/* Counts occurrences of needle in the file (0 if the file does not exist). */
size_t test_file_count(const char *path, const void *needle, size_t n);

#define CHECK(c) test_check(!!(c), #c, __FILE__, __LINE__)
#define CHECK_INT(a, b) test_check_int((long long)(a), (long long)(b), #a, #b, __FILE__, __LINE__)
#define CHECK_MEM(a, b, n) test_check_mem((a), (b), (n), #a, #b, __FILE__, __LINE__)
#define CHECK_STR(a, b)                                                                   \
	test_check((a) != NULL && (b) != NULL && strcmp((a), (b)) == 0, #a " == " #b, __FILE__, \
		   __LINE__)
/* Skips the rest of the current case. */
#define SKIP(...)                                                                         \
	do {                                                                              \
		test_skip(__VA_ARGS__);                                                   \
		return;                                                                   \
	} while (0)
/* Stops the current case when the check fails. */
#define REQUIRE(c)                                                                        \
	do {                                                                              \
		if (!CHECK(c))                                                            \
			return;                                                           \
	} while (0)

#endif
