#include "crypto/secmem.h"

#include "crypto/wipealloc.h"
#include "lib/log.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

struct secret {
	size_t len;
	size_t cap;
	uint8_t *bytes; /* sodium_malloc'ed; cap bytes; ends at a guard page */
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

struct secret *secret_new(size_t len)
{
	struct secret *s = malloc(sizeof(*s));
	/* sodium_malloc(0) is valid but keep a byte so bytes is never NULL. */
	uint8_t *b = sodium_malloc(len > 0 ? len : 1);
	if (s == NULL || b == NULL) {
		log_err("out of guarded memory (%zu bytes): aborting", len);
		abort();
	}
	sodium_memzero(b, len > 0 ? len : 1);
	s->len = len;
	s->cap = len > 0 ? len : 1;
	s->bytes = b;
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
	sodium_free(s->bytes); /* wipes, checks the canary, unmaps */
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
