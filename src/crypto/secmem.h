/* Secret memory.
 *
 * Every secret (password, device key, account key, data key, master key)
 * lives in a `struct secret` whose bytes sit in guarded memory: pages that
 * are mlock()ed (never swapped), marked MADV_DONTDUMP (never in a core
 * dump), bounded by inaccessible guard pages, and wiped when the secret is
 * freed. The struct is opaque and nothing formats it, so a secret has no
 * path into a log line or an error string.
 *
 * Two tiers, both from the libraries:
 *  - secret_new() and friends take short-lived secrets from OpenSSL's secure
 *    heap (CRYPTO_secure_malloc: one guarded, locked, non-dumpable arena;
 *    OPENSSL_secure_clear_free wipes). It costs no system call, which
 *    matters: a register or unlock derives and drops several keys.
 *  - secret_new_isolated() gives a long-lived secret its own guarded
 *    mapping (libsodium's sodium_malloc: guard page on each side, canary,
 *    the end of the secret flush against the guard page so an overflow
 *    traps at once). An unlocked account keeps its secrets in one such
 *    block for as long as it stays unlocked. It costs an mmap, several
 *    mprotects and an mlock, ~10 us, and ~2 resident pages.
 * When the arena is full, secret_new() falls back to an isolated block. */
#ifndef HK_SECMEM_H
#define HK_SECMEM_H

#include "lib/error.h"

#include <stddef.h>
#include <stdint.h>

#define HK_KEY_LEN 32

struct secret;

/* Initialises libsodium, installs the wiping allocators (crypto/wipealloc.h)
 * into OpenSSL, libcurl and SQLite, and sets up OpenSSL's secure heap. Must
 * run before any of those libraries allocates, i.e. first thing in main().
 * Idempotent. */
int secmem_init(void) HK_WARN_UNUSED;

/* Makes the process non-dumpable (no core files, no ptrace by other users,
 * /proc/PID/mem closed to non-root) and sets RLIMIT_CORE to 0. */
int secmem_harden_process(void) HK_WARN_UNUSED;

/* Size of the secure-heap arena for short-lived secrets. */
#define SECMEM_ARENA_SIZE (2u * 1024 * 1024)
/* Largest secret taken from the arena; larger ones are always isolated. */
#define SECMEM_ARENA_MAX 4096

/* A zero-filled secret of len bytes (len may be 0). Aborts when guarded
 * memory cannot be had: continuing without it would be unsafe. */
struct secret *secret_new(size_t len);
/* The same in its own guarded mapping (see above). */
struct secret *secret_new_isolated(size_t len);
/* True when s sits in its own guarded mapping. */
int secret_is_isolated(const struct secret *s);
/* A secret that is bytes [off, off + len) of parent: no copy, no new
 * mapping. Freeing the view frees only the view; the bytes stay the
 * parent's, which must outlive the view and wipes them when it goes. Lets
 * one isolated block hold several secrets (each block costs a mapping; the
 * kernel allows ~65530 per process). Aborts when the range is outside. */
struct secret *secret_view(struct secret *parent, size_t off, size_t len);
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
