#include "crypto/secmem.h"

#include "crypto/wipealloc.h"
#include "lib/log.h"

#include <openssl/crypto.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

struct secret {
	size_t len;
	size_t cap;
	bool isolated;	/* sodium_malloc'ed, else from OpenSSL's secure heap */
	bool view;	/* bytes belong to another secret (secret_view) */
	uint8_t *bytes; /* cap bytes of guarded memory */
};

static bool secmem_ready;

int secmem_init(void)
{
	if (secmem_ready)
		return 0;
	if (sodium_init() < 0)
		return HK_ERR_CRYPTO;
	/* The wiping allocators must precede every allocation of these
	 * libraries; a failure here means something already used them. */
	int ret = wipealloc_install_openssl();
	if (ret == 0)
		ret = wipealloc_install_sqlite();
	if (ret == 0)
		ret = wipealloc_install_curl();
	if (ret < 0)
		return ret;
	/* 1: arena ready; 2: ready but not mlock()ed (RLIMIT_MEMLOCK); 0: none */
	int sh = CRYPTO_secure_malloc_initialized()
			 ? 1
			 : CRYPTO_secure_malloc_init(SECMEM_ARENA_SIZE, 16);
	if (sh == 0)
		return HK_ERR_NOMEM;
	if (sh == 2)
		log_warn("secure heap could not be locked in memory (RLIMIT_MEMLOCK): "
			 "short-lived secrets may be swapped");
	secmem_ready = true;
	return 0;
}

int secmem_harden_process(void)
{
	struct rlimit no_core = {0, 0};
	if (setrlimit(RLIMIT_CORE, &no_core) < 0)
		return HK_ERR_IO;
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return HK_ERR_IO;
	struct rlimit ml;
	if (getrlimit(RLIMIT_MEMLOCK, &ml) == 0 && ml.rlim_cur != RLIM_INFINITY &&
	    ml.rlim_cur < 64u * 1024 * 1024)
		log_notice("RLIMIT_MEMLOCK is %llu KiB: secrets beyond it are not mlock()ed "
			   "(still excluded from core dumps); raise LimitMEMLOCK for many accounts",
			   (unsigned long long)ml.rlim_cur / 1024);
	return 0;
}

static struct secret *secret_alloc(size_t len, bool isolated)
{
	struct secret *s = calloc(1, sizeof(*s)); /* view = false */
	size_t cap = len > 0 ? len : 1; /* bytes is never NULL */
	uint8_t *b = NULL;
	if (!isolated && cap <= SECMEM_ARENA_MAX && CRYPTO_secure_malloc_initialized())
		b = OPENSSL_secure_zalloc(cap);
	if (b == NULL) {
		isolated = true;
		b = sodium_malloc(cap);
		if (b != NULL)
			sodium_memzero(b, cap);
	}
	if (s == NULL || b == NULL) {
		log_err("out of guarded memory (%zu bytes): aborting", len);
		abort();
	}
	s->len = len;
	s->cap = cap;
	s->isolated = isolated;
	s->bytes = b;
	return s;
}

struct secret *secret_new(size_t len)
{
	return secret_alloc(len, false);
}

struct secret *secret_new_isolated(size_t len)
{
	return secret_alloc(len, true);
}

int secret_is_isolated(const struct secret *s)
{
	return s->isolated;
}

struct secret *secret_view(struct secret *parent, size_t off, size_t len)
{
	if (off > parent->len || len > parent->len - off) {
		log_err("secret_view outside its parent: aborting");
		abort();
	}
	struct secret *s = calloc(1, sizeof(*s));
	if (s == NULL)
		abort();
	s->len = s->cap = len;
	s->isolated = parent->isolated;
	s->view = true;
	s->bytes = parent->bytes + off;
	return s;
}

struct secret *secret_dup(const void *p, size_t len)
{
	struct secret *s = secret_new(len);
	if (len > 0)
		memcpy(s->bytes, p, len);
	return s;
}

struct secret *secret_random(size_t len)
{
	struct secret *s = secret_new(len);
	randombytes_buf(s->bytes, len);
	return s;
}

uint8_t *secret_bytes(struct secret *s)
{
	return s->bytes;
}

const uint8_t *secret_cbytes(const struct secret *s)
{
	return s->bytes;
}

size_t secret_len(const struct secret *s)
{
	return s->len;
}

void secret_truncate(struct secret *s, size_t len)
{
	if (len < s->len) {
		sodium_memzero(s->bytes + len, s->len - len);
		s->len = len;
	}
}

int secret_equal(const struct secret *a, const struct secret *b)
{
	if (a->len != b->len)
		return 0;
	return a->len == 0 || sodium_memcmp(a->bytes, b->bytes, a->len) == 0;
}

void secret_free(struct secret **sp)
{
	struct secret *s = *sp;
	if (s == NULL)
		return;
	*sp = NULL;
	if (s->view)
		; /* the parent's bytes: it wipes them */
	else if (s->isolated)
		sodium_free(s->bytes); /* wipes, checks the canary, unmaps */
	else
		OPENSSL_secure_clear_free(s->bytes, s->cap);
	s->bytes = NULL;
	s->len = s->cap = 0;
	free(s);
}

void secmem_wipe(void *p, size_t len)
{
	sodium_memzero(p, len);
}

int secmem_memcmp(const void *a, const void *b, size_t n)
{
	return sodium_memcmp(a, b, n);
}

void secmem_random(void *buf, size_t n)
{
	randombytes_buf(buf, n);
}
