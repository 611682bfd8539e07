/* The credential lifecycle of one account, as the engine runs it: register
 * (seal and store), unlock (open in guarded memory), and the secrets an
 * unlocked account holds. No network here: the caller has already verified
 * the password against the mail server before account_register(), and
 * decides when to flush (account_secrets_free wipes).
 *
 * Message-shaped on purpose (DESIGN §12): requests and results are plain
 * structs without pointers into engine state, so the device-facing layer
 * can later reach the engine across a socket with the same calls. */
#ifndef HK_ENGINE_ACCOUNT_H
#define HK_ENGINE_ACCOUNT_H

#include "crypto/devtoken.h"
#include "crypto/masterkey.h"
#include "crypto/secmem.h"
#include "lib/clock.h"
#include "store/store.h"

#define ACCOUNT_ID_LEN 27 /* one letter + 26 base32 characters */

struct account_register_req {
	const char *server_url;
	const char *username;
	const char *email;		  /* may be NULL */
	const struct secret *password;	  /* already accepted by the mail server */
	const struct secret *device_key;  /* HK_KEY_LEN bytes */
	const char *eas_device_id;	  /* the DeviceId this device uses on the server */
	const char *device_type;
	const char *user_agent;
	const char *policy_key; /* the server's PolicyKey from the check, or NULL / "" */
};

struct account_register_res {
	char account_id[STORE_ID_MAX];
	char device_id[STORE_ID_MAX];
	uint8_t token[DEVTOKEN_LEN]; /* hand to the device once; wipe after */
};

/* What an unlocked account holds (password and DEK), in one isolated
 * guarded block. */
struct account_secrets;

struct account_unlock_res {
	char account_id[STORE_ID_MAX];
	char device_id[STORE_ID_MAX];
	bool rewrapped; /* the envelope moved to the current master key */
};

/* Seals the password and a fresh data key under AK(device key, master key),
 * stores account + device + envelope + audit row in one transaction, and
 * returns the device token. secrets_r (may be NULL) receives the unlocked
 * secrets so that syncing can start at once. On failure nothing is stored
 * and every intermediate secret is wiped. */
int account_register(struct store *store, const struct masterkey *mk,
		     const struct hk_clock *clock, const struct account_register_req *req,
		     struct account_register_res *res, struct account_secrets **secrets_r,
		     const char **error_r) HK_WARN_UNUSED;

/* Finds the device by token (constant-time check of its hash), opens the
 * password and data key with the presented device key, records activity
 * and an "unlock" audit row. Errors: HK_ERR_AUTH for an unknown token or a
 * wrong device key (the latter audited "bad_key"), HK_ERR_STATE for a
 * wiped (tombstoned) device, HK_ERR_KEY_ID when the master key that sealed
 * the envelope is gone. An envelope sealed under an older master key is
 * re-sealed under the current one. */
int account_unlock(struct store *store, const struct masterkey *mk, const struct hk_clock *clock,
		   const uint8_t *token, size_t token_len, const struct secret *device_key,
		   struct account_unlock_res *res, struct account_secrets **secrets_r,
		   const char **error_r) HK_WARN_UNUSED;

const struct secret *account_secrets_password(const struct account_secrets *s);
const struct secret *account_secrets_dek(const struct account_secrets *s);
/* Wipes everything and frees; NULL-safe; sets *s to NULL. */
void account_secrets_free(struct account_secrets **s);

/* A fresh random identifier: prefix letter + 26 lowercase base32 chars. */
void account_new_id(char prefix, char out[ACCOUNT_ID_LEN + 1]);

#endif
