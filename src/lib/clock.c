#include "lib/clock.h"

#include <assert.h>
#include <time.h>

static int64_t timespec_ms(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t real_now(const struct hk_clock *clock)
{
	(void)clock;
	return timespec_ms(CLOCK_REALTIME);
}

static int64_t real_mono(const struct hk_clock *clock)
{
	(void)clock;
	return timespec_ms(CLOCK_MONOTONIC);
}

static const struct hk_clock_ops real_ops = {"real", real_now, real_mono};
static const struct hk_clock real_clock = {&real_ops, 0, 0};

const struct hk_clock *hk_clock_real(void)
{
	return &real_clock;
}

static int64_t test_now(const struct hk_clock *clock)
{
	return clock->wall_ms;
}

static int64_t test_mono(const struct hk_clock *clock)
{
	return clock->mono_ms;
}

static const struct hk_clock_ops test_ops = {"test", test_now, test_mono};

void hk_clock_test_init(struct hk_clock *clock, int64_t start_ms)
{
	clock->ops = &test_ops;
	clock->wall_ms = start_ms;
	clock->mono_ms = 0;
}

void hk_clock_test_advance(struct hk_clock *clock, int64_t ms)
{
	assert(clock->ops == &test_ops && ms >= 0);
	clock->wall_ms += ms;
	clock->mono_ms += ms;
}
