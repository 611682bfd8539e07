#include "relay/ratelimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX 80
#define BUCKETS 4096

struct entry {
	struct entry *next;
	char key[KEY_MAX];
	int64_t window_start;
	unsigned hits;
};

struct ratelimit {
	unsigned limit;
	int64_t window_ms;
	size_t max_keys, keys;
	struct entry *buckets[BUCKETS];
};

static unsigned hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s != '\0'; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h % BUCKETS;
}

struct ratelimit *ratelimit_new(unsigned limit, int64_t window_ms, size_t max_keys)
{
	struct ratelimit *rl = calloc(1, sizeof(*rl));
	if (rl == NULL)
		abort();
	rl->limit = limit;
	rl->window_ms = window_ms > 0 ? window_ms : 60000;
	rl->max_keys = max_keys > 0 ? max_keys : 65536;
	return rl;
}

void ratelimit_free(struct ratelimit **rlp)
{
	struct ratelimit *rl = *rlp;
	if (rl == NULL)
		return;
	*rlp = NULL;
	for (unsigned b = 0; b < BUCKETS; b++)
		while (rl->buckets[b] != NULL) {
			struct entry *e = rl->buckets[b];
			rl->buckets[b] = e->next;
			free(e);
		}
	free(rl);
}

static void expire(struct ratelimit *rl, int64_t now)
{
	for (unsigned b = 0; b < BUCKETS; b++) {
		struct entry **pp = &rl->buckets[b];
		while (*pp != NULL) {
			if (now - (*pp)->window_start >= rl->window_ms) {
				struct entry *e = *pp;
				*pp = e->next;
				free(e);
				rl->keys--;
			} else {
				pp = &(*pp)->next;
			}
		}
	}
}

bool ratelimit_hit(struct ratelimit *rl, const char *key, int64_t now)
{
	char k[KEY_MAX];
	snprintf(k, sizeof(k), "%s", key);
	unsigned b = hash(k);
	struct entry *e = rl->buckets[b];
	while (e != NULL && strcmp(e->key, k) != 0)
		e = e->next;
	if (e == NULL) {
		if (rl->keys >= rl->max_keys)
			expire(rl, now);
		if (rl->keys >= rl->max_keys)
			return false;
		e = calloc(1, sizeof(*e));
		if (e == NULL)
			abort();
		memcpy(e->key, k, sizeof(k));
		e->window_start = now;
		e->next = rl->buckets[b];
		rl->buckets[b] = e;
		rl->keys++;
	}
	if (now - e->window_start >= rl->window_ms) {
		e->window_start = now;
		e->hits = 0;
	}
	if (e->hits >= rl->limit)
		return false;
	e->hits++;
	return true;
}

size_t ratelimit_keys(const struct ratelimit *rl)
{
	return rl->keys;
}
