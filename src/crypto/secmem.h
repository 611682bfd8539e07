/* Secret memory.
 *
 * Every secret (password, device key, account key, data key, master key)
 * lives in a `struct secret`: its bytes sit in libsodium's guarded
 * allocation (sodium_malloc: a guard page on each side, the pages mlock()ed
 * and marked MADV_DONTDUMP, a canary checked on free) and are wiped when the
 * secret is freed. The struct is opaque and there is no function that
 * formats it, so a secret has no path into a log line or an error string.
 *
 * Why libsodium rather than OpenSSL's secure heap: sodium_malloc gives each
 * secret its own guarded pages, so an overflow traps at once instead of
 * running into the next secret, and it needs no fixed arena sized at start-up
 * (OPENSSL_secure_malloc's heap is one preallocated block that fails when
 * full). The cost is ~2 resident pages per allocation, which is why an
 * unlocked account keeps all its secrets in one allocation. */
#ifndef HK_SECMEM_H
#define HK_SECMEM_H

#include "lib/error.h"

#include <stddef.h>
#include <stdint.h>

#define HK_KEY_LEN 32

struct secret;

/* Initialises libsodium and installs the wiping allocators
 * (crypto/wipealloc.h) into OpenSSL, libcurl and SQLite. Must run before any
 * of those libraries allocates, i.e. first thing in main(). Idempotent. */
int secmem_init(void) HK_WARN_UNUSED;

/* Makes the process non-dumpable (no core files, no ptrace by other users,
 * /proc/PID/mem closed to non-root) and sets RLIMIT_CORE to 0. */
int secmem_harden_process(void) HK_WARN_UNUSED;

/* A zero-filled secret of len bytes (len may be 0). Aborts when guarded
 * memory cannot be had: continuing without it would be unsafe. */
struct secret *secret_new(size_t len);
/* A secret holding a copy of p[0..len). The caller still owns (and must wipe) p. */
struct secret *secret_dup(const void *p, size_t len);
/* Fills a new secret of len bytes from the system CSPRNG. */
struct secret *secret_random(size_t len);

uint8_t *secret_bytes(struct secret *s);
const uint8_t *secret_cbytes(const struct secret *s);
size_t secret_len(const struct secret *s);

/* Shortens the secret to len bytes (len <= current length); the tail is wiped. */
void secret_truncate(struct secret *s, size_t len);

/* Constant-time equality of two secrets (false if lengths differ). */
int secret_equal(const struct secret *a, const struct secret *b);

/* Wipes and releases the secret; sets *s to NULL. NULL-safe. */
void secret_free(struct secret **s);

/* Wipes len bytes at p in a way the compiler cannot elide. */
void secmem_wipe(void *p, size_t len);

/* Constant-time comparison of n bytes: 0 when equal, -1 otherwise. */
int secmem_memcmp(const void *a, const void *b, size_t n) HK_WARN_UNUSED;

/* Fills buf with n bytes from the system CSPRNG (getrandom). */
void secmem_random(void *buf, size_t n);

#endif
