#include "crypto/wipealloc.h"

#include "crypto/secmem.h"
#include "lib/error.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* 16 bytes keep the user pointer aligned for any type malloc would serve. */
#define HDR 16
#define MAX_BLOCK (SIZE_MAX / 2)

static atomic_size_t live_blocks;
static void (*free_hook)(const void *, size_t);

void wipealloc_set_free_hook(void (*hook)(const void *block, size_t len))
{
	free_hook = hook;
}

static inline unsigned char *hdr_of(const void *p)
{
	return (unsigned char *)(uintptr_t)p - HDR;
}

size_t wipealloc_size(const void *p)
{
	size_t n;
	if (p == NULL)
		return 0;
	memcpy(&n, hdr_of(p), sizeof(n));
	return n;
}

void *wipealloc_malloc(size_t n)
{
	if (n > MAX_BLOCK)
		return NULL;
	unsigned char *b = malloc(HDR + n);
	if (b == NULL)
		return NULL;
	memcpy(b, &n, sizeof(n));
	atomic_fetch_add_explicit(&live_blocks, 1, memory_order_relaxed);
	return b + HDR;
}

void *wipealloc_calloc(size_t nmemb, size_t size)
{
	if (size != 0 && nmemb > MAX_BLOCK / size)
		return NULL;
	void *p = wipealloc_malloc(nmemb * size);
	if (p != NULL)
		memset(p, 0, nmemb * size);
	return p;
}

void wipealloc_free(void *p)
{
	if (p == NULL)
		return;
	unsigned char *b = hdr_of(p);
	size_t n;
	memcpy(&n, b, sizeof(n));
	secmem_wipe(b, HDR + n);
	if (free_hook != NULL)
		free_hook(b, HDR + n);
	atomic_fetch_sub_explicit(&live_blocks, 1, memory_order_relaxed);
	free(b);
}

void *wipealloc_realloc(void *p, size_t n)
{
	if (p == NULL)
		return wipealloc_malloc(n);
	if (n == 0) {
		wipealloc_free(p);
		return NULL;
	}
	size_t old = wipealloc_size(p);
	void *q = wipealloc_malloc(n);
	if (q == NULL)
		return NULL; /* the old block stays valid, as realloc promises */
	memcpy(q, p, old < n ? old : n);
	wipealloc_free(p);
	return q;
}

char *wipealloc_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = wipealloc_malloc(n);
	if (d != NULL)
		memcpy(d, s, n);
	return d;
}

size_t wipealloc_live_blocks(void)
{
	return atomic_load_explicit(&live_blocks, memory_order_relaxed);
}

/* OpenSSL passes file/line for its debug builds; they are not needed here. */
static void *ossl_malloc(size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return wipealloc_malloc(n);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return wipealloc_realloc(p, n);
}

static void ossl_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	wipealloc_free(p);
}

int wipealloc_install_openssl(void)
{
	/* Fails once OpenSSL has allocated anything: then the caller ran too late. */
	return CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free) == 1 ? 0
										   : HK_ERR_STATE;
}

int wipealloc_install_curl(void)
{
	CURLcode rc = curl_global_init_mem(CURL_GLOBAL_DEFAULT, wipealloc_malloc, wipealloc_free,
					   wipealloc_realloc, wipealloc_strdup,
					   wipealloc_calloc);
	return rc == CURLE_OK ? 0 : HK_ERR_STATE;
}

static void *sq_malloc(int n)
{
	return n < 0 ? NULL : wipealloc_malloc((size_t)n);
}

static void sq_free(void *p)
{
	wipealloc_free(p);
}

static void *sq_realloc(void *p, int n)
{
	return n < 0 ? NULL : wipealloc_realloc(p, (size_t)n);
}

static int sq_size(void *p)
{
	size_t n = wipealloc_size(p);
	return n > INT32_MAX ? INT32_MAX : (int)n;
}

static int sq_roundup(int n)
{
	return (n + 7) & ~7;
}

static int sq_init(void *ctx)
{
	(void)ctx;
	return SQLITE_OK;
}

static void sq_shutdown(void *ctx)
{
	(void)ctx;
}

static const sqlite3_mem_methods sq_methods = {
	sq_malloc, sq_free, sq_realloc, sq_size, sq_roundup, sq_init, sq_shutdown, NULL,
};

int wipealloc_install_sqlite(void)
{
	/* SQLITE_MISUSE when SQLite was already initialised. */
	return sqlite3_config(SQLITE_CONFIG_MALLOC, &sq_methods) == SQLITE_OK ? 0 : HK_ERR_STATE;
}
