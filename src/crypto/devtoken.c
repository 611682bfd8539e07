#include "crypto/devtoken.h"

#include "crypto/secmem.h"

#include <openssl/evp.h>

int devtoken_hash(const uint8_t *token, size_t token_len, uint8_t hash_r[DEVTOKEN_HASH_LEN])
{
	unsigned int n = 0;
	if (token == NULL && token_len > 0)
		return HK_ERR_INVAL;
	if (EVP_Digest(token, token_len, hash_r, &n, EVP_sha256(), NULL) != 1 ||
	    n != DEVTOKEN_HASH_LEN)
		return HK_ERR_CRYPTO;
	return 0;
}

int devtoken_new(uint8_t token[DEVTOKEN_LEN], uint8_t hash_r[DEVTOKEN_HASH_LEN])
{
	secmem_random(token, DEVTOKEN_LEN);
	int ret = devtoken_hash(token, DEVTOKEN_LEN, hash_r);
	if (ret < 0)
		secmem_wipe(token, DEVTOKEN_LEN);
	return ret;
}

bool devtoken_verify(const uint8_t *token, size_t token_len,
		     const uint8_t stored_hash[DEVTOKEN_HASH_LEN])
{
	uint8_t h[DEVTOKEN_HASH_LEN];
	if (devtoken_hash(token, token_len, h) < 0)
		return false;
	bool ok = (secmem_memcmp(h, stored_hash, DEVTOKEN_HASH_LEN) == 0) &
		  (token_len == DEVTOKEN_LEN);
	secmem_wipe(h, sizeof(h));
	return ok;
}
