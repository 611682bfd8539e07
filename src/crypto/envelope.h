/* The versioned AES-256-GCM envelope.
 *
 * Byte layout (version 1), all integers big-endian:
 *
 *   offset  size  field
 *   0       1     version (0x01)
 *   1       4     key id (the master key's id for credential and DEK
 *                 envelopes; the DEK generation for cache items)
 *   5       12    nonce, random per seal
 *   17      n     ciphertext (n = plaintext length)
 *   17+n    16    GCM tag
 *
 * Associated data (authenticated, not stored):
 *   "halfkey envelope v1" 0x00 || version || key id ||
 *   for each of purpose, account id, server URL, username, item id:
 *       u32 length || bytes            (absent fields have length 0)
 * so an envelope cannot be moved to another purpose, account, server, user
 * or item, and its header cannot be edited. A failed tag check is
 * HK_ERR_AUTH: a wrong key or a tampered or moved envelope. */
#ifndef HK_ENVELOPE_H
#define HK_ENVELOPE_H

#include "lib/error.h"

#include <stddef.h>
#include <stdint.h>

#define ENVELOPE_VERSION 1
#define ENVELOPE_NONCE_LEN 12
#define ENVELOPE_TAG_LEN 16
#define ENVELOPE_HEADER_LEN (1 + 4 + ENVELOPE_NONCE_LEN)
#define ENVELOPE_OVERHEAD (ENVELOPE_HEADER_LEN + ENVELOPE_TAG_LEN)
#define ENVELOPE_MAX_PLAINTEXT (64u * 1024 * 1024)
#define ENVELOPE_AD_FIELD_MAX 4096
#define ENVELOPE_SIZE(n) ((size_t)(n) + ENVELOPE_OVERHEAD)

#define ENVELOPE_PURPOSE_PASSWORD "password"
#define ENVELOPE_PURPOSE_DEK "dek"
#define ENVELOPE_PURPOSE_ITEM "item"

struct envelope_ad {
	const char *purpose; /* required */
	const char *account_id;
	const char *server_url;
	const char *username;
	const char *item_id;
};

/* Seals pt[0..pt_len) under the 32-byte key into out (out_cap >=
 * ENVELOPE_SIZE(pt_len)); *out_len_r = ENVELOPE_SIZE(pt_len). */
int envelope_seal(const uint8_t *key, uint32_t key_id, const struct envelope_ad *ad,
		  const uint8_t *pt, size_t pt_len, uint8_t *out, size_t out_cap, size_t *out_len_r)
	HK_WARN_UNUSED;

/* Reads the header: HK_ERR_TRUNCATED when env is shorter than the overhead,
 * HK_ERR_TOO_LONG when longer than the maximum, HK_ERR_VERSION for an
 * unknown version. */
int envelope_peek(const uint8_t *env, size_t env_len, uint32_t *key_id_r) HK_WARN_UNUSED;

/* Verifies and decrypts. key_id is the id of key: an envelope naming another
 * id is HK_ERR_KEY_ID. pt_cap >= env_len - ENVELOPE_OVERHEAD. On any failure
 * pt is wiped and nothing is returned. */
int envelope_open(const uint8_t *key, uint32_t key_id, const struct envelope_ad *ad,
		  const uint8_t *env, size_t env_len, uint8_t *pt, size_t pt_cap, size_t *pt_len_r)
	HK_WARN_UNUSED;

#endif
