/* lib: error strings, the clock interface, logging. */
#include "lib/clock.h"
#include "lib/error.h"
#include "lib/log.h"
#include "test.h"

#include <stdio.h>

static void test_errors_distinct(void)
{
	for (int a = HK_ERR_STATE; a <= HK_OK; a++) {
		CHECK(strcmp(hk_strerror(a), "unknown error") != 0);
		for (int b = a + 1; b <= HK_OK; b++)
			CHECK(strcmp(hk_strerror(a), hk_strerror(b)) != 0);
	}
	CHECK_STR(hk_strerror(-999), "unknown error");
}

static void test_real_clock(void)
{
	const struct hk_clock *c = hk_clock_real();
	int64_t now = hk_clock_now(c);
	CHECK(now > INT64_C(1700000000000)); /* after 2023 */
	int64_t m1 = hk_clock_mono(c), m2 = hk_clock_mono(c);
	CHECK(m2 >= m1);
}

static void test_test_clock(void)
{
	struct hk_clock c;
	hk_clock_test_init(&c, 1000);
	CHECK_INT(hk_clock_now(&c), 1000);
	CHECK_INT(hk_clock_mono(&c), 0);
	hk_clock_test_advance(&c, 3 * HK_MS_PER_DAY);
	CHECK_INT(hk_clock_now(&c), 1000 + 3 * HK_MS_PER_DAY);
	CHECK_INT(hk_clock_mono(&c), 3 * HK_MS_PER_DAY);
	CHECK_STR(c.ops->name, "test");
}

static char captured[4096];
static int captured_level;

static void sink(enum hk_log_level level, const char *line, void *ctx)
{
	(void)ctx;
	captured_level = (int)level;
	snprintf(captured, sizeof(captured), "%s", line);
}

static void test_log_levels_and_escaping(void)
{
	hk_log_set_sink(sink, NULL);
	hk_log_set_level(HK_LOG_INFO);
	captured[0] = '\0';
	log_debug("dropped %d", 1);
	CHECK_STR(captured, "");
	log_warn("user %s said\nforged line\r", "bob");
	CHECK_STR(captured, "user bob said?forged line?");
	CHECK_INT(captured_level, HK_LOG_WARNING);
	/* long lines are cut, not overflowed */
	char big[5000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_info("%s", big);
	CHECK(strlen(captured) < sizeof(big) - 1 && strlen(captured) > 1000);
	enum hk_log_level l;
	CHECK(hk_log_level_parse("notice", &l) == 0 && l == HK_LOG_NOTICE);
	CHECK_INT(hk_log_level_parse("loud", &l), HK_ERR_INVAL);
	hk_log_set_sink(NULL, NULL);
}

TESTS(TEST(test_errors_distinct), TEST(test_real_clock), TEST(test_test_clock),
      TEST(test_log_levels_and_escaping));
