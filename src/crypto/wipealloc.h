/* Wiping allocators for third-party libraries.
 *
 * Libraries that handle request and response bytes (OpenSSL's TLS records,
 * libcurl's Authorization header, SQLite's page cache, later libevent and
 * jansson) keep transient copies in ordinary heap blocks. These allocators
 * zero every block before it goes back to the C library, so a copy lives
 * only as long as the library needs it. The libraries' free callbacks get no
 * size, so each block carries a 16-byte header with its size; realloc
 * allocates, copies, wipes the old block and frees it, so no stale copy
 * survives a buffer's growth. Out of memory returns NULL as the libraries
 * expect. */
#ifndef HK_WIPEALLOC_H
#define HK_WIPEALLOC_H

#include <stddef.h>

void *wipealloc_malloc(size_t n);
void *wipealloc_calloc(size_t nmemb, size_t size);
void *wipealloc_realloc(void *p, size_t n);
char *wipealloc_strdup(const char *s);
/* Wipes the whole block, then frees it. NULL-safe. */
void wipealloc_free(void *p);
/* Usable size of a block from this allocator (0 for NULL). */
size_t wipealloc_size(const void *p);

/* Installs the allocators; each must run before the library's first
 * allocation. Return 0 or HK_ERR_CRYPTO / HK_ERR_STATE. */
int wipealloc_install_openssl(void);
int wipealloc_install_curl(void);
int wipealloc_install_sqlite(void);

/* Tests only: called on every free after the wipe, before the block goes
 * back to the C library, with the whole block (header included). */
void wipealloc_set_free_hook(void (*hook)(const void *block, size_t len));

/* Number of live blocks (for leak tests). */
size_t wipealloc_live_blocks(void);

#endif
