/* The one clock every time-dependent part of Halfkey reads.
 *
 * Activity, flush and purge deadlines are wall-clock milliseconds since the
 * Unix epoch (they are stored and must survive restarts); timeouts use the
 * monotonic reading. The real clock reads the kernel; a test clock only moves
 * when a test moves it, so a three-day flush is tested in milliseconds. */
#ifndef HK_CLOCK_H
#define HK_CLOCK_H

#include <stdint.h>

struct hk_clock;

struct hk_clock_ops {
	const char *name;
	int64_t (*now_ms)(const struct hk_clock *clock);  /* wall clock, Unix ms */
	int64_t (*mono_ms)(const struct hk_clock *clock); /* monotonic ms */
};

struct hk_clock {
	const struct hk_clock_ops *ops;
	int64_t wall_ms; /* test clock only */
	int64_t mono_ms; /* test clock only */
};

#define HK_MS_PER_SECOND INT64_C(1000)
#define HK_MS_PER_DAY (INT64_C(86400) * HK_MS_PER_SECOND)

/* The process-wide real clock (static; never freed). */
const struct hk_clock *hk_clock_real(void);

/* A test clock starting at start_ms (wall) and 0 (monotonic). */
void hk_clock_test_init(struct hk_clock *clock, int64_t start_ms);
/* Moves both readings forward by ms (ms >= 0). */
void hk_clock_test_advance(struct hk_clock *clock, int64_t ms);

static inline int64_t hk_clock_now(const struct hk_clock *clock)
{
	return clock->ops->now_ms(clock);
}

static inline int64_t hk_clock_mono(const struct hk_clock *clock)
{
	return clock->ops->mono_ms(clock);
}

#endif
