#include "engine/account.h"

#include "crypto/kdf.h"
#include "crypto/vault.h"
#include "lib/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Both secrets in one isolated guarded block (one mapping per account:
 * the kernel's map count, ~65530 per process, bounds unlocked accounts). */
struct account_secrets {
	struct secret *block;	 /* DEK then password */
	struct secret *password; /* view into block */
	struct secret *dek;	 /* view into block */
};

const struct secret *account_secrets_password(const struct account_secrets *s)
{
	return s->password;
}

const struct secret *account_secrets_dek(const struct account_secrets *s)
{
	return s->dek;
}

void account_secrets_free(struct account_secrets **sp)
{
	struct account_secrets *s = *sp;
	if (s == NULL)
		return;
	*sp = NULL;
	secret_free(&s->password);
	secret_free(&s->dek);
	secret_free(&s->block); /* wipes both */
	free(s);
}

/* Moves short-lived secrets into one long-lived isolated block. */
static struct account_secrets *secrets_keep(const struct secret *password,
					    const struct secret *dek)
{
	struct account_secrets *s = calloc(1, sizeof(*s));
	if (s == NULL)
		abort();
	size_t dl = secret_len(dek), pl = secret_len(password);
	s->block = secret_new_isolated(dl + pl);
	memcpy(secret_bytes(s->block), secret_cbytes(dek), dl);
	memcpy(secret_bytes(s->block) + dl, secret_cbytes(password), pl);
	s->dek = secret_view(s->block, 0, dl);
	s->password = secret_view(s->block, dl, pl);
	return s;
}

void account_new_id(char prefix, char out[ACCOUNT_ID_LEN + 1])
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
	uint8_t r[26];
	secmem_random(r, sizeof(r));
	out[0] = prefix;
	for (size_t i = 0; i < sizeof(r); i++)
		out[1 + i] = alphabet[r[i] & 31];
	out[ACCOUNT_ID_LEN] = '\0';
}

static void audit_fill(struct store_audit *a, enum store_audit_event ev, int64_t now,
		       const char *account_id, const char *device, const char *detail)
{
	memset(a, 0, sizeof(*a));
	a->event = ev;
	a->time_ms = now;
	snprintf(a->account_id, sizeof(a->account_id), "%s", account_id ? account_id : "");
	snprintf(a->device, sizeof(a->device), "%s", device ? device : "");
	snprintf(a->detail, sizeof(a->detail), "%s", detail ? detail : "");
}

static bool fits(const char *s, size_t max)
{
	return s != NULL && strnlen(s, max) < max;
}

int account_register(struct store *store, const struct masterkey *mk,
		     const struct hk_clock *clock, const struct account_register_req *req,
		     struct account_register_res *res, struct account_secrets **secrets_r,
		     const char **error_r)
{
	if (!fits(req->server_url, STORE_URL_MAX) || !fits(req->username, STORE_NAME_MAX) ||
	    !fits(req->eas_device_id, STORE_NAME_MAX) || !fits(req->device_type, STORE_NAME_MAX) ||
	    (req->email != NULL && !fits(req->email, STORE_NAME_MAX)) ||
	    (req->user_agent != NULL && !fits(req->user_agent, STORE_USER_AGENT_MAX)) ||
	    secret_len(req->device_key) != HK_KEY_LEN || secret_len(req->password) == 0 ||
	    secret_len(req->password) > VAULT_PASSWORD_MAX) {
		*error_r = "invalid registration request";
		return HK_ERR_INVAL;
	}
	int64_t now = hk_clock_now(clock);
	struct store_account acct = {0};
	struct store_device dev = {0};
	account_new_id('a', acct.id);
	account_new_id('d', dev.id);
	snprintf(acct.server_url, sizeof(acct.server_url), "%s", req->server_url);
	snprintf(acct.username, sizeof(acct.username), "%s", req->username);
	snprintf(acct.email, sizeof(acct.email), "%s", req->email ? req->email : "");
	secmem_random(acct.salt, sizeof(acct.salt));
	acct.state = STORE_ACCOUNT_ACTIVE;
	acct.created_ms = acct.last_activity_ms = now;

	snprintf(dev.account_id, sizeof(dev.account_id), "%s", acct.id);
	snprintf(dev.eas_device_id, sizeof(dev.eas_device_id), "%s", req->eas_device_id);
	snprintf(dev.policy_key, sizeof(dev.policy_key), "%s",
		 req->policy_key != NULL ? req->policy_key : "");
	snprintf(dev.device_type, sizeof(dev.device_type), "%s", req->device_type);
	snprintf(dev.user_agent, sizeof(dev.user_agent), "%s",
		 req->user_agent ? req->user_agent : "");
	dev.created_ms = dev.last_seen_ms = now;

	struct vault_account va = {acct.id, acct.server_url, acct.username, acct.salt};
	uint32_t key_id = masterkey_current_id(mk);
	struct secret *ak = NULL, *dek = secret_random(HK_KEY_LEN);
	uint8_t cred[ENVELOPE_SIZE(VAULT_PASSWORD_MAX)], wrapped[ENVELOPE_SIZE(HK_KEY_LEN)];
	size_t cred_len = 0;
	int ret = vault_account_key(mk, key_id, req->device_key, &va, &ak);
	if (ret == 0)
		ret = vault_cred_seal(ak, key_id, &va, req->password, cred, sizeof(cred),
				      &cred_len);
	if (ret == 0)
		ret = vault_dek_wrap(ak, key_id, &va, dek, wrapped);
	secret_free(&ak);
	if (ret == 0)
		ret = devtoken_new(res->token, dev.token_hash);
	if (ret < 0) {
		*error_r = "sealing the credentials failed";
		goto out;
	}
	struct store_envelope env = {key_id, cred, cred_len, wrapped, sizeof(wrapped), now};
	struct store_audit audit;
	audit_fill(&audit, STORE_AUDIT_REGISTER, now, acct.id, dev.eas_device_id, "");
	ret = store_account_create(store, &acct, &dev, &env, &audit, error_r);
	if (ret < 0) {
		secmem_wipe(res->token, sizeof(res->token));
		goto out;
	}
	snprintf(res->account_id, sizeof(res->account_id), "%s", acct.id);
	snprintf(res->device_id, sizeof(res->device_id), "%s", dev.id);
	if (secrets_r != NULL)
		*secrets_r = secrets_keep(req->password, dek);
	log_info("registered account %s (device %s)", acct.id, dev.id);
out:
	secret_free(&dek);
	return ret;
}

static int fail_bad_key(struct store *store, int64_t now, const struct store_device *dev,
			const char **error_r)
{
	struct store_audit audit;
	const char *ignored;
	audit_fill(&audit, STORE_AUDIT_BAD_KEY, now, dev->account_id, dev->eas_device_id, "");
	if (store_audit_append(store, &audit, NULL, &ignored) < 0)
		log_warn("audit: cannot record bad key for %s", dev->account_id);
	log_notice("unlock of account %s: wrong device key", dev->account_id);
	*error_r = "wrong device key";
	return HK_ERR_AUTH;
}

int account_unlock(struct store *store, const struct masterkey *mk, const struct hk_clock *clock,
		   const uint8_t *token, size_t token_len, const struct secret *device_key,
		   struct account_unlock_res *res, struct account_secrets **secrets_r,
		   const char **error_r)
{
	uint8_t hash[DEVTOKEN_HASH_LEN];
	struct store_device dev;
	struct store_account acct;
	struct store_envelope *env = NULL;
	struct secret *ak = NULL, *password = NULL, *dek = NULL;
	int64_t now = hk_clock_now(clock);
	int ret;

	if (secret_len(device_key) != HK_KEY_LEN) {
		*error_r = "device key must be 32 bytes";
		return HK_ERR_INVAL;
	}
	if ((ret = devtoken_hash(token, token_len, hash)) < 0)
		return ret;
	ret = store_device_get_by_token(store, hash, &dev, error_r);
	/* the row was found by hash; compare again in constant time before trusting it */
	if (ret == HK_ERR_NOT_FOUND || (ret == 0 && !devtoken_verify(token, token_len,
								     dev.token_hash))) {
		*error_r = "unknown device token";
		return HK_ERR_AUTH;
	}
	if (ret < 0)
		return ret;
	if (dev.tombstoned_ms != 0) {
		*error_r = "account wiped";
		return HK_ERR_STATE;
	}
	if ((ret = store_account_get(store, dev.account_id, &acct, error_r)) < 0 ||
	    (ret = store_envelope_get(store, dev.id, &env, error_r)) < 0)
		return ret;

	struct vault_account va = {acct.id, acct.server_url, acct.username, acct.salt};
	ret = vault_account_key(mk, env->key_id, device_key, &va, &ak);
	if (ret == HK_ERR_KEY_ID) {
		*error_r = "the master key that sealed this account is gone";
		goto out;
	}
	if (ret == 0)
		ret = vault_cred_open(ak, env->key_id, &va, env->credential, env->credential_len,
				      &password);
	if (ret == 0)
		ret = vault_dek_unwrap(ak, env->key_id, &va, env->wrapped_dek,
				       env->wrapped_dek_len, &dek);
	if (ret == HK_ERR_AUTH) {
		ret = fail_bad_key(store, now, &dev, error_r);
		goto out;
	}
	if (ret < 0) {
		*error_r = "opening the credentials failed";
		goto out;
	}

	memset(res, 0, sizeof(*res));
	uint32_t current = masterkey_current_id(mk);
	if (env->key_id != current) {
		/* re-seal under the current master key while both keys are at hand */
		struct secret *ak2 = NULL;
		uint8_t cred[ENVELOPE_SIZE(VAULT_PASSWORD_MAX)], wrapped[ENVELOPE_SIZE(HK_KEY_LEN)];
		size_t cred_len = 0;
		int r = vault_account_key(mk, current, device_key, &va, &ak2);
		if (r == 0)
			r = vault_cred_seal(ak2, current, &va, password, cred, sizeof(cred),
					    &cred_len);
		if (r == 0)
			r = vault_dek_wrap(ak2, current, &va, dek, wrapped);
		secret_free(&ak2);
		struct store_envelope ne = {current, cred, cred_len, wrapped, sizeof(wrapped), now};
		const char *err2;
		if (r == 0)
			r = store_envelope_replace(store, dev.id, &ne, &err2);
		if (r == 0)
			res->rewrapped = true;
		else
			log_warn("account %s: re-sealing under master key %u failed; kept key %u",
				 acct.id, current, env->key_id);
	}
	/* activity, the account active again, and the audit entry: together */
	struct store_audit audit;
	audit_fill(&audit, STORE_AUDIT_UNLOCK, now, acct.id, dev.eas_device_id,
		   res->rewrapped ? "rewrapped" : "");
	if ((ret = store_device_unlocked(store, dev.id, now, &audit, error_r)) < 0)
		goto out;
	snprintf(res->account_id, sizeof(res->account_id), "%s", acct.id);
	snprintf(res->device_id, sizeof(res->device_id), "%s", dev.id);
	if (secrets_r != NULL)
		*secrets_r = secrets_keep(password, dek);
	ret = 0;
out:
	secret_free(&ak);
	secret_free(&password);
	secret_free(&dek);
	store_envelope_free(&env);
	secmem_wipe(hash, sizeof(hash));
	return ret;
}
