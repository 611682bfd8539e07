/* What store drivers share; not for the store's users. */
#ifndef HK_STORE_PRIVATE_H
#define HK_STORE_PRIVATE_H

#include "store/store.h"

#define STORE_ERROR_MAX 512

/* Every driver's handle starts with this. */
struct store {
	const struct store_driver *drv;
	/* The text *error_r points at after a failed call. */
	char error[STORE_ERROR_MAX];
};

/* Formats the handle's error text and returns code (< 0). */
int store_error(struct store *store, int code, const char **error_r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Allocation that aborts when out of memory (STYLE: OOM aborts). */
void *store_xcalloc(size_t nmemb, size_t size);
void *store_xreallocarray(void *p, size_t nmemb, size_t size);

#endif
