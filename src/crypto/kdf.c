#include "crypto/kdf.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <pthread.h>
#include <string.h>

#define ACCOUNT_ID_MAX 256

/* Fetched once: a provider look-up per call would cost more than the hash. */
static EVP_KDF *hkdf_alg;
static EVP_MAC *hmac_alg;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch_algs(void)
{
	hkdf_alg = EVP_KDF_fetch(NULL, "HKDF", NULL);
	hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

int kdf_hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
		    const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len)
{
	if (out_len == 0 || out_len > KDF_MAX_OUT || (ikm == NULL && ikm_len > 0))
		return HK_ERR_INVAL;
	pthread_once(&fetch_once, fetch_algs);
	if (hkdf_alg == NULL)
		return HK_ERR_CRYPTO;
	EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(hkdf_alg);
	if (ctx == NULL)
		return HK_ERR_CRYPTO;

	OSSL_PARAM params[5], *p = params;
	char digest[] = "SHA256";
	static const uint8_t empty[1];
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
						 (void *)(uintptr_t)(ikm ? ikm : empty), ikm_len);
	/* RFC 5869: an absent salt is HashLen zero bytes, which is what the
	 * provider uses when no salt parameter is given. */
	if (salt_len > 0)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
							 (void *)(uintptr_t)salt, salt_len);
	if (info_len > 0)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
							 (void *)(uintptr_t)info, info_len);
	*p = OSSL_PARAM_construct_end();

	int ret = EVP_KDF_derive(ctx, out, out_len, params) == 1 ? 0 : HK_ERR_CRYPTO;
	EVP_KDF_CTX_free(ctx); /* the provider cleanses its copy of the key */
	if (ret < 0)
		secmem_wipe(out, out_len);
	return ret;
}

int kdf_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *msg, size_t msg_len,
		    uint8_t out[32])
{
	pthread_once(&fetch_once, fetch_algs);
	if (hmac_alg == NULL)
		return HK_ERR_CRYPTO;
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac_alg);
	if (ctx == NULL)
		return HK_ERR_CRYPTO;
	char digest[] = "SHA256";
	OSSL_PARAM params[2] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
		OSSL_PARAM_construct_end(),
	};
	size_t out_len = 0;
	int ret = HK_ERR_CRYPTO;
	if (EVP_MAC_init(ctx, key, key_len, params) == 1 && EVP_MAC_update(ctx, msg, msg_len) == 1 &&
	    EVP_MAC_final(ctx, out, &out_len, 32) == 1 && out_len == 32)
		ret = 0;
	EVP_MAC_CTX_free(ctx);
	if (ret < 0)
		secmem_wipe(out, 32);
	return ret;
}

int kdf_account_key(const uint8_t *dk, const uint8_t *mk, const uint8_t salt[KDF_ACCOUNT_SALT_LEN],
		    const char *account_id, struct secret **ak_r)
{
	size_t id_len = account_id != NULL ? strlen(account_id) : 0;
	if (dk == NULL || mk == NULL || id_len == 0 || id_len > ACCOUNT_ID_MAX)
		return HK_ERR_INVAL;

	uint8_t info[sizeof(KDF_ACCOUNT_INFO) - 1 + ACCOUNT_ID_MAX];
	size_t info_len = sizeof(KDF_ACCOUNT_INFO) - 1;
	memcpy(info, KDF_ACCOUNT_INFO, info_len);
	memcpy(info + info_len, account_id, id_len);
	info_len += id_len;

	/* The extract salt is keyed by MK: it is as secret as MK itself. */
	struct secret *xsalt = secret_new(32);
	struct secret *ak = secret_new(HK_KEY_LEN);
	int ret = kdf_hmac_sha256(mk, HK_KEY_LEN, salt, KDF_ACCOUNT_SALT_LEN, secret_bytes(xsalt));
	if (ret == 0)
		ret = kdf_hkdf_sha256(dk, HK_KEY_LEN, secret_cbytes(xsalt), 32, info, info_len,
				      secret_bytes(ak), HK_KEY_LEN);
	secret_free(&xsalt);
	if (ret < 0) {
		secret_free(&ak);
		return ret;
	}
	*ak_r = ak;
	return 0;
}
