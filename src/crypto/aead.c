#include "crypto/aead.h"

#include "crypto/secmem.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>

/* Fetched once: a provider look-up per call costs more than the cipher. */
static EVP_CIPHER *gcm_alg;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch_alg(void)
{
	gcm_alg = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
}

static int feed_ad(EVP_CIPHER_CTX *ctx, const struct aead_chunk *ad, size_t n_ad)
{
	int outl;
	for (size_t i = 0; i < n_ad; i++) {
		if (ad[i].n == 0)
			continue;
		if (ad[i].n > AEAD_MAX_LEN ||
		    EVP_CipherUpdate(ctx, NULL, &outl, ad[i].p, (int)ad[i].n) != 1)
			return HK_ERR_CRYPTO;
	}
	return 0;
}

/* Runs the cipher in one direction; for decryption tag is the expected tag
 * (checked in the final step), for encryption it receives the tag. */
static int gcm_run(int enc, const uint8_t *key, const uint8_t *nonce, const struct aead_chunk *ad,
		   size_t n_ad, const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
	if (len > AEAD_MAX_LEN || (len > 0 && (in == NULL || out == NULL)))
		return HK_ERR_INVAL;
	pthread_once(&fetch_once, fetch_alg);
	if (gcm_alg == NULL)
		return HK_ERR_CRYPTO;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL)
		return HK_ERR_CRYPTO;

	int ret = HK_ERR_CRYPTO, outl = 0, finl = 0;
	if (EVP_CipherInit_ex2(ctx, gcm_alg, key, nonce, enc, NULL) != 1)
		goto out;
	if (feed_ad(ctx, ad, n_ad) < 0)
		goto out;
	if (len > 0 && EVP_CipherUpdate(ctx, out, &outl, in, (int)len) != 1)
		goto out;
	if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, AEAD_TAG_LEN, tag) != 1)
		goto out;
	/* For decryption the tag is verified here; before it, out is unusable. */
	if (EVP_CipherFinal_ex(ctx, out != NULL ? out + outl : NULL, &finl) != 1) {
		ret = enc ? HK_ERR_CRYPTO : HK_ERR_AUTH;
		goto out;
	}
	if ((size_t)(outl + finl) != len)
		goto out;
	if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, AEAD_TAG_LEN, tag) != 1)
		goto out;
	ret = 0;
out:
	EVP_CIPHER_CTX_free(ctx); /* cleanses the key schedule */
	if (ret < 0 && len > 0)
		secmem_wipe(out, len);
	return ret;
}

int aead_seal(const uint8_t key[AEAD_KEY_LEN], const uint8_t nonce[AEAD_NONCE_LEN],
	      const struct aead_chunk *ad, size_t n_ad, const uint8_t *pt, size_t len,
	      uint8_t *ct, uint8_t tag_r[AEAD_TAG_LEN])
{
	return gcm_run(1, key, nonce, ad, n_ad, pt, len, ct, tag_r);
}

int aead_open(const uint8_t key[AEAD_KEY_LEN], const uint8_t nonce[AEAD_NONCE_LEN],
	      const struct aead_chunk *ad, size_t n_ad, const uint8_t *ct, size_t len,
	      const uint8_t tag[AEAD_TAG_LEN], uint8_t *pt)
{
	uint8_t t[AEAD_TAG_LEN];
	memcpy(t, tag, sizeof(t));
	return gcm_run(0, key, nonce, ad, n_ad, ct, len, pt, t);
}
