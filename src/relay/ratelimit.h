/* Fixed-window request counters by key (a source address, a device):
 * at most `limit` hits per key per window. Bounded: at most `max_keys`
 * keys are tracked; when full, expired keys are dropped first, and a new
 * key that still finds no room is refused (fail closed under a flood). */
#ifndef HK_RELAY_RATELIMIT_H
#define HK_RELAY_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ratelimit;

struct ratelimit *ratelimit_new(unsigned limit, int64_t window_ms, size_t max_keys);
void ratelimit_free(struct ratelimit **rl);
/* Counts a hit for key at now_ms; false when over the limit. */
bool ratelimit_hit(struct ratelimit *rl, const char *key, int64_t now_ms);
size_t ratelimit_keys(const struct ratelimit *rl);

#endif
