/* Key derivation: HKDF-SHA256 (RFC 5869), HMAC-SHA256, and the account key.
 *
 * Account key AK = HKDF-SHA256(ikm  = device key DK,
 *                              salt = HMAC-SHA256(MK, account salt),
 *                              info = "halfkey v1 account" || account id)
 * It needs both the device's key and the relay's master key; it is never
 * stored. Every intermediate value is wiped before return. */
#ifndef HK_KDF_H
#define HK_KDF_H

#include "crypto/secmem.h"
#include "lib/error.h"

#include <stddef.h>
#include <stdint.h>

#define KDF_ACCOUNT_SALT_LEN 16
#define KDF_ACCOUNT_INFO "halfkey v1 account"
#define KDF_MAX_OUT (255 * 32)

/* RFC 5869 extract-then-expand. salt and info may be empty (NULL, 0). */
int kdf_hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
		    const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len)
	HK_WARN_UNUSED;

int kdf_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *msg, size_t msg_len,
		    uint8_t out[32]) HK_WARN_UNUSED;

/* Derives AK into a new guarded secret of HK_KEY_LEN bytes. dk and mk are
 * HK_KEY_LEN bytes each (in guarded memory); account_id is the account's
 * stable identifier (not secret). */
int kdf_account_key(const uint8_t *dk, const uint8_t *mk, const uint8_t salt[KDF_ACCOUNT_SALT_LEN],
		    const char *account_id, struct secret **ak_r) HK_WARN_UNUSED;

#endif
