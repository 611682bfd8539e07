/* The account's keys and envelopes, as DESIGN §2 lays them out.
 *
 *   AK  = kdf_account_key(DK, MK[key id], account salt, account id)
 *   credential envelope = envelope(AK, MK key id, purpose "password",
 *                                  account id, server URL, username)
 *   wrapped DEK         = envelope(AK, MK key id, purpose "dek", same fields)
 *   cache item          = envelope(DEK, DEK generation, purpose "item",
 *                                  account id, item id)
 *
 * The device key and the master key are both needed to reach the password
 * or the DEK; without the DEK the cache is unreadable (crypto-shredding). */
#ifndef HK_VAULT_H
#define HK_VAULT_H

#include "crypto/envelope.h"
#include "crypto/kdf.h"
#include "crypto/masterkey.h"
#include "crypto/secmem.h"

#define VAULT_PASSWORD_MAX 1024
#define VAULT_DEK_GENERATION 1

/* The non-secret facts an account's envelopes are bound to. */
struct vault_account {
	const char *account_id;
	const char *server_url;
	const char *username;
	const uint8_t *salt; /* KDF_ACCOUNT_SALT_LEN bytes */
};

/* Derives AK for the master key of key_id; HK_ERR_KEY_ID when the keyring
 * lacks that key. dk is a guarded HK_KEY_LEN-byte secret. */
int vault_account_key(const struct masterkey *mk, uint32_t key_id, const struct secret *dk,
		      const struct vault_account *acct, struct secret **ak_r) HK_WARN_UNUSED;

/* Seals the password: out must hold ENVELOPE_SIZE(secret_len(password)). */
int vault_cred_seal(const struct secret *ak, uint32_t key_id, const struct vault_account *acct,
		    const struct secret *password, uint8_t *out, size_t out_cap, size_t *out_len_r)
	HK_WARN_UNUSED;
int vault_cred_open(const struct secret *ak, uint32_t key_id, const struct vault_account *acct,
		    const uint8_t *env, size_t env_len, struct secret **password_r) HK_WARN_UNUSED;

/* The DEK is 32 bytes; its envelope is ENVELOPE_SIZE(HK_KEY_LEN) bytes. */
int vault_dek_wrap(const struct secret *ak, uint32_t key_id, const struct vault_account *acct,
		   const struct secret *dek, uint8_t out[ENVELOPE_SIZE(HK_KEY_LEN)]) HK_WARN_UNUSED;
int vault_dek_unwrap(const struct secret *ak, uint32_t key_id, const struct vault_account *acct,
		     const uint8_t *env, size_t env_len, struct secret **dek_r) HK_WARN_UNUSED;

int vault_item_seal(const struct secret *dek, const char *account_id, const char *item_id,
		    const uint8_t *pt, size_t pt_len, uint8_t *out, size_t out_cap,
		    size_t *out_len_r) HK_WARN_UNUSED;
/* Opens into pt (pt_cap >= env_len - ENVELOPE_OVERHEAD). Cached mail is
 * not a key, so it goes to ordinary (caller's) memory. */
int vault_item_open(const struct secret *dek, const char *account_id, const char *item_id,
		    const uint8_t *env, size_t env_len, uint8_t *pt, size_t pt_cap,
		    size_t *pt_len_r) HK_WARN_UNUSED;

#endif
