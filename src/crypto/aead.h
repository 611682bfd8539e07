/* AES-256-GCM through OpenSSL's EVP interface, with the associated data
 * given as a list of chunks (fed to the cipher in order, equivalent to
 * their concatenation). The one place Halfkey calls the cipher; the
 * known-answer tests exercise exactly this code. */
#ifndef HK_AEAD_H
#define HK_AEAD_H

#include "lib/error.h"

#include <stddef.h>
#include <stdint.h>

#define AEAD_KEY_LEN 32
#define AEAD_NONCE_LEN 12
#define AEAD_TAG_LEN 16
#define AEAD_MAX_LEN (1u << 30)

struct aead_chunk {
	const uint8_t *p;
	size_t n;
};

int aead_seal(const uint8_t key[AEAD_KEY_LEN], const uint8_t nonce[AEAD_NONCE_LEN],
	      const struct aead_chunk *ad, size_t n_ad, const uint8_t *pt, size_t len,
	      uint8_t *ct, uint8_t tag_r[AEAD_TAG_LEN]) HK_WARN_UNUSED;

/* HK_ERR_AUTH when the tag does not verify; pt is then wiped. */
int aead_open(const uint8_t key[AEAD_KEY_LEN], const uint8_t nonce[AEAD_NONCE_LEN],
	      const struct aead_chunk *ad, size_t n_ad, const uint8_t *ct, size_t len,
	      const uint8_t tag[AEAD_TAG_LEN], uint8_t *pt) HK_WARN_UNUSED;

#endif
