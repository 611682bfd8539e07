#include "crypto/vault.h"

static struct envelope_ad account_ad(const char *purpose, const struct vault_account *acct)
{
	return (struct envelope_ad){
		.purpose = purpose,
		.account_id = acct->account_id,
		.server_url = acct->server_url,
		.username = acct->username,
	};
}

int vault_account_key(const struct masterkey *mk, uint32_t key_id, const struct secret *dk,
		      const struct vault_account *acct, struct secret **ak_r)
{
	if (secret_len(dk) != HK_KEY_LEN || acct->salt == NULL)
		return HK_ERR_INVAL;
	const uint8_t *mkey = masterkey_get(mk, key_id);
	if (mkey == NULL)
		return HK_ERR_KEY_ID;
	return kdf_account_key(secret_cbytes(dk), mkey, acct->salt, acct->account_id, ak_r);
}

int vault_cred_seal(const struct secret *ak, uint32_t key_id, const struct vault_account *acct,
		    const struct secret *password, uint8_t *out, size_t out_cap, size_t *out_len_r)
{
	if (secret_len(password) > VAULT_PASSWORD_MAX)
		return HK_ERR_TOO_LONG;
	struct envelope_ad ad = account_ad(ENVELOPE_PURPOSE_PASSWORD, acct);
	return envelope_seal(secret_cbytes(ak), key_id, &ad, secret_cbytes(password),
			     secret_len(password), out, out_cap, out_len_r);
}

/* Opens an account envelope straight into a new guarded secret. */
static int open_secret(const struct secret *ak, uint32_t key_id, const struct envelope_ad *ad,
		       const uint8_t *env, size_t env_len, size_t max_len, struct secret **out_r)
{
	uint32_t env_key_id;
	int ret = envelope_peek(env, env_len, &env_key_id);
	if (ret < 0)
		return ret;
	size_t n = env_len - ENVELOPE_OVERHEAD;
	if (n > max_len)
		return HK_ERR_TOO_LONG;
	struct secret *s = secret_new(n);
	size_t got = 0;
	ret = envelope_open(secret_cbytes(ak), key_id, ad, env, env_len, secret_bytes(s), n, &got);
	if (ret < 0) {
		secret_free(&s);
		return ret;
	}
	*out_r = s;
	return 0;
}

int vault_cred_open(const struct secret *ak, uint32_t key_id, const struct vault_account *acct,
		    const uint8_t *env, size_t env_len, struct secret **password_r)
{
	struct envelope_ad ad = account_ad(ENVELOPE_PURPOSE_PASSWORD, acct);
	return open_secret(ak, key_id, &ad, env, env_len, VAULT_PASSWORD_MAX, password_r);
}

int vault_dek_wrap(const struct secret *ak, uint32_t key_id, const struct vault_account *acct,
		   const struct secret *dek, uint8_t out[ENVELOPE_SIZE(HK_KEY_LEN)])
{
	if (secret_len(dek) != HK_KEY_LEN)
		return HK_ERR_INVAL;
	struct envelope_ad ad = account_ad(ENVELOPE_PURPOSE_DEK, acct);
	size_t n;
	return envelope_seal(secret_cbytes(ak), key_id, &ad, secret_cbytes(dek), HK_KEY_LEN, out,
			     ENVELOPE_SIZE(HK_KEY_LEN), &n);
}

int vault_dek_unwrap(const struct secret *ak, uint32_t key_id, const struct vault_account *acct,
		     const uint8_t *env, size_t env_len, struct secret **dek_r)
{
	if (env_len != ENVELOPE_SIZE(HK_KEY_LEN))
		return env_len < ENVELOPE_SIZE(HK_KEY_LEN) ? HK_ERR_TRUNCATED : HK_ERR_TOO_LONG;
	struct envelope_ad ad = account_ad(ENVELOPE_PURPOSE_DEK, acct);
	return open_secret(ak, key_id, &ad, env, env_len, HK_KEY_LEN, dek_r);
}

int vault_item_seal(const struct secret *dek, const char *account_id, const char *item_id,
		    const uint8_t *pt, size_t pt_len, uint8_t *out, size_t out_cap,
		    size_t *out_len_r)
{
	struct envelope_ad ad = {
		.purpose = ENVELOPE_PURPOSE_ITEM, .account_id = account_id, .item_id = item_id};
	return envelope_seal(secret_cbytes(dek), VAULT_DEK_GENERATION, &ad, pt, pt_len, out,
			     out_cap, out_len_r);
}

int vault_item_open(const struct secret *dek, const char *account_id, const char *item_id,
		    const uint8_t *env, size_t env_len, uint8_t *pt, size_t pt_cap,
		    size_t *pt_len_r)
{
	struct envelope_ad ad = {
		.purpose = ENVELOPE_PURPOSE_ITEM, .account_id = account_id, .item_id = item_id};
	return envelope_open(secret_cbytes(dek), VAULT_DEK_GENERATION, &ad, env, env_len, pt,
			     pt_cap, pt_len_r);
}
