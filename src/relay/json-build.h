/* Building JSON with jansson where out of memory aborts (STYLE): these
 * never return NULL and never fail. Shared by the control socket's server
 * (relay/control.c) and its command-line client (halfkeyctl). */
#ifndef HK_RELAY_JSON_BUILD_H
#define HK_RELAY_JSON_BUILD_H

#include <jansson.h>
#include <stdlib.h>

static inline json_t *jobj(void)
{
	json_t *j = json_object();
	if (j == NULL)
		abort();
	return j;
}

static inline json_t *jarr(void)
{
	json_t *j = json_array();
	if (j == NULL)
		abort();
	return j;
}

/* Takes val (NULL: a constructor failed, out of memory). */
static inline void jset(json_t *obj, const char *key, json_t *val)
{
	if (val == NULL || json_object_set_new(obj, key, val) < 0)
		abort();
}

/* Takes val, as jset. */
static inline void jpush(json_t *arr, json_t *val)
{
	if (val == NULL || json_array_append_new(arr, val) < 0)
		abort();
}

#endif
