#include "crypto/envelope.h"

#include "crypto/aead.h"
#include "crypto/secmem.h"

#include <string.h>

#define AD_PREFIX "halfkey envelope v1" /* the terminating NUL is part of it */
#define AD_FIELDS 5

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The associated data as chunks: prefix, header (version, key id), then each
 * field as length and bytes. lens holds the encoded lengths. */
struct ad_chunks {
	struct aead_chunk c[2 + 2 * AD_FIELDS];
	uint8_t lens[AD_FIELDS][4];
};

static int ad_build(const struct envelope_ad *ad, const uint8_t header5[5], struct ad_chunks *out)
{
	const char *f[AD_FIELDS] = {ad->purpose, ad->account_id, ad->server_url, ad->username,
				    ad->item_id};
	if (ad->purpose == NULL || ad->purpose[0] == '\0')
		return HK_ERR_INVAL;
	out->c[0] = (struct aead_chunk){(const uint8_t *)AD_PREFIX, sizeof(AD_PREFIX)};
	out->c[1] = (struct aead_chunk){header5, 5};
	for (size_t i = 0; i < AD_FIELDS; i++) {
		size_t n = f[i] != NULL ? strnlen(f[i], ENVELOPE_AD_FIELD_MAX + 1) : 0;
		if (n > ENVELOPE_AD_FIELD_MAX)
			return HK_ERR_TOO_LONG;
		put_u32(out->lens[i], (uint32_t)n);
		out->c[2 + 2 * i] = (struct aead_chunk){out->lens[i], 4};
		out->c[3 + 2 * i] = (struct aead_chunk){(const uint8_t *)f[i], n};
	}
	return 0;
}

int envelope_seal(const uint8_t *key, uint32_t key_id, const struct envelope_ad *ad,
		  const uint8_t *pt, size_t pt_len, uint8_t *out, size_t out_cap, size_t *out_len_r)
{
	if (pt_len > ENVELOPE_MAX_PLAINTEXT)
		return HK_ERR_TOO_LONG;
	if (key == NULL || out == NULL || out_cap < ENVELOPE_SIZE(pt_len) ||
	    (pt == NULL && pt_len > 0))
		return HK_ERR_INVAL;
	out[0] = ENVELOPE_VERSION;
	put_u32(out + 1, key_id);
	struct ad_chunks adc;
	int ret = ad_build(ad, out, &adc);
	if (ret < 0)
		return ret;
	/* 96-bit random nonces: safe far beyond the number of envelopes one
	 * key ever seals (each AK seals two; a DEK seals one per cache write). */
	secmem_random(out + 5, ENVELOPE_NONCE_LEN);
	uint8_t *ct = out + ENVELOPE_HEADER_LEN;
	ret = aead_seal(key, out + 5, adc.c, sizeof(adc.c) / sizeof(adc.c[0]), pt, pt_len, ct,
			ct + pt_len);
	if (ret < 0)
		return ret;
	*out_len_r = ENVELOPE_SIZE(pt_len);
	return 0;
}

int envelope_peek(const uint8_t *env, size_t env_len, uint32_t *key_id_r)
{
	if (env == NULL || env_len < ENVELOPE_OVERHEAD)
		return HK_ERR_TRUNCATED;
	if (env_len > ENVELOPE_SIZE(ENVELOPE_MAX_PLAINTEXT))
		return HK_ERR_TOO_LONG;
	if (env[0] != ENVELOPE_VERSION)
		return HK_ERR_VERSION;
	*key_id_r = get_u32(env + 1);
	return 0;
}

int envelope_open(const uint8_t *key, uint32_t key_id, const struct envelope_ad *ad,
		  const uint8_t *env, size_t env_len, uint8_t *pt, size_t pt_cap, size_t *pt_len_r)
{
	uint32_t env_key_id;
	int ret = envelope_peek(env, env_len, &env_key_id);
	if (ret < 0)
		return ret;
	if (env_key_id != key_id)
		return HK_ERR_KEY_ID;
	size_t ct_len = env_len - ENVELOPE_OVERHEAD;
	if (key == NULL || pt_cap < ct_len || (pt == NULL && ct_len > 0))
		return HK_ERR_INVAL;
	struct ad_chunks adc;
	if ((ret = ad_build(ad, env, &adc)) < 0)
		return ret;
	const uint8_t *ct = env + ENVELOPE_HEADER_LEN;
	ret = aead_open(key, env + 5, adc.c, sizeof(adc.c) / sizeof(adc.c[0]), ct, ct_len,
			ct + ct_len, pt);
	if (ret < 0)
		return ret;
	*pt_len_r = ct_len;
	return 0;
}
