/* Known-answer tests: RFC 5869 HKDF-SHA256 (A.1-A.3), RFC 4231 HMAC-SHA256,
 * and AES-256-GCM vectors from the GCM specification that NIST SP 800-38D
 * is built on (test cases 13-16) and from NIST's CAVP gcmEncryptExtIV256. */
#include "crypto/aead.h"
#include "crypto/kdf.h"
#include "crypto/secmem.h"
#include "test.h"

#include <stdlib.h>

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = strlen(hex) / 2;
	if (n > cap)
		abort();
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		char b[3] = {hex[2 * i], hex[2 * i + 1], 0};
		v = (unsigned)strtoul(b, NULL, 16);
		out[i] = (uint8_t)v;
	}
	return n;
}

static void fill_range(uint8_t *p, unsigned from, unsigned to)
{
	for (unsigned i = from; i < to; i++)
		p[i - from] = (uint8_t)i;
}

static void check_hkdf(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
		       const uint8_t *info, size_t info_len, const char *okm_hex)
{
	uint8_t want[128], got[128];
	size_t n = unhex(okm_hex, want, sizeof(want));
	REQUIRE(kdf_hkdf_sha256(ikm, ikm_len, salt, salt_len, info, info_len, got, n) == 0);
	CHECK_MEM(got, want, n);
}

static void test_hkdf_rfc5869(void)
{
	uint8_t ikm[80], salt[80], info[80];
	memset(ikm, 0x0b, 22);
	fill_range(salt, 0x00, 0x0d);
	fill_range(info, 0xf0, 0xfa);
	check_hkdf(ikm, 22, salt, 13, info, 10,
		   "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887"
		   "185865");
	fill_range(ikm, 0x00, 0x50);
	fill_range(salt, 0x60, 0xb0);
	fill_range(info, 0xb0, 0x100);
	check_hkdf(ikm, 80, salt, 80, info, 80,
		   "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac782"
		   "7271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3"
		   "434f1d87");
	memset(ikm, 0x0b, 22);
	check_hkdf(ikm, 22, NULL, 0, NULL, 0,
		   "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b6"
		   "1a96c8");
}

static void test_hkdf_bad_args(void)
{
	uint8_t out[32];
	CHECK_INT(kdf_hkdf_sha256((const uint8_t *)"k", 1, NULL, 0, NULL, 0, out, 0),
		  HK_ERR_INVAL);
	uint8_t big[KDF_MAX_OUT + 1];
	CHECK_INT(kdf_hkdf_sha256((const uint8_t *)"k", 1, NULL, 0, NULL, 0, big, sizeof(big)),
		  HK_ERR_INVAL);
	CHECK_INT(kdf_hkdf_sha256(NULL, 5, NULL, 0, NULL, 0, out, 32), HK_ERR_INVAL);
}

static void test_hmac_rfc4231(void)
{
	uint8_t want[32], got[32];
	const char *msg = "what do ya want for nothing?";
	unhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", want, 32);
	REQUIRE(kdf_hmac_sha256((const uint8_t *)"Jefe", 4, (const uint8_t *)msg, strlen(msg),
				got) == 0);
	CHECK_MEM(got, want, 32);
}

struct gcm_vector {
	const char *key, *iv, *pt, *aad, *ct, *tag;
};

static const struct gcm_vector gcm_vectors[] = {
	/* GCM spec test case 13 */
	{"0000000000000000000000000000000000000000000000000000000000000000",
	 "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
	/* test case 14 */
	{"0000000000000000000000000000000000000000000000000000000000000000",
	 "000000000000000000000000", "00000000000000000000000000000000", "",
	 "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
	/* test case 15 */
	{"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
	 "cafebabefacedbaddecaf888",
	 "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fc"
	 "f0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
	 "",
	 "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b"
	 "08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
	 "b094dac5d93471bdec1a502270e3cc6c"},
	/* test case 16: with associated data, partial final block */
	{"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
	 "cafebabefacedbaddecaf888",
	 "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fc"
	 "f0e2449a6b525b16aedf5aa0de657ba637b39",
	 "feedfacedeadbeeffeedfacedeadbeefabaddad2",
	 "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b"
	 "08b1056828838c5f61e6393ba7a0abcc9f662",
	 "76fc6ece0f4e1768cddf8853bb2d551b"},
	/* CAVP gcmEncryptExtIV256, Count 0 of the 96-bit IV, 0-bit PT group */
	{"b52c505a37d78eda5dd34f20c22540ea1b58963cf8e5bf8ffa85f9f2492505b4",
	 "516c33929df5a3284ff463d7", "", "", "", "bdc1ac884d332457a1d2664f168c76f0"},
};

static void test_aes256gcm_vectors(void)
{
	for (size_t i = 0; i < sizeof(gcm_vectors) / sizeof(gcm_vectors[0]); i++) {
		const struct gcm_vector *v = &gcm_vectors[i];
		uint8_t key[32], iv[12], pt[64], aad[32], ct[64], tag[16], out[64], t[16];
		unhex(v->key, key, 32);
		unhex(v->iv, iv, 12);
		size_t n = unhex(v->pt, pt, sizeof(pt));
		size_t an = unhex(v->aad, aad, sizeof(aad));
		unhex(v->ct, ct, sizeof(ct));
		unhex(v->tag, tag, 16);
		/* the associated data split in two chunks must equal one */
		struct aead_chunk ad[2] = {{aad, an / 2}, {aad + an / 2, an - an / 2}};
		REQUIRE(aead_seal(key, iv, ad, 2, pt, n, out, t) == 0);
		CHECK_MEM(out, ct, n);
		CHECK_MEM(t, tag, 16);
		uint8_t back[64];
		REQUIRE(aead_open(key, iv, ad, 2, ct, n, tag, back) == 0);
		CHECK_MEM(back, pt, n);
		/* one flipped tag bit: rejected, output wiped */
		tag[15] ^= 1;
		memset(back, 0xaa, sizeof(back));
		CHECK_INT(aead_open(key, iv, ad, 2, ct, n, tag, back), HK_ERR_AUTH);
		for (size_t k = 0; k < n; k++)
			CHECK(back[k] == 0);
	}
}

static void test_account_key(void)
{
	/* AK depends on every input: DK, MK, salt and account id. */
	uint8_t dk[32], mk[32], salt[16];
	memset(dk, 1, 32);
	memset(mk, 2, 32);
	memset(salt, 3, 16);
	struct secret *a = NULL, *b = NULL;
	REQUIRE(kdf_account_key(dk, mk, salt, "acct-1", &a) == 0);
	REQUIRE(kdf_account_key(dk, mk, salt, "acct-1", &b) == 0);
	CHECK(secret_equal(a, b));
	secret_free(&b);
	dk[0] ^= 1;
	REQUIRE(kdf_account_key(dk, mk, salt, "acct-1", &b) == 0);
	CHECK(!secret_equal(a, b));
	secret_free(&b);
	dk[0] ^= 1;
	mk[31] ^= 0x80;
	REQUIRE(kdf_account_key(dk, mk, salt, "acct-1", &b) == 0);
	CHECK(!secret_equal(a, b));
	secret_free(&b);
	mk[31] ^= 0x80;
	salt[5] ^= 4;
	REQUIRE(kdf_account_key(dk, mk, salt, "acct-1", &b) == 0);
	CHECK(!secret_equal(a, b));
	secret_free(&b);
	salt[5] ^= 4;
	REQUIRE(kdf_account_key(dk, mk, salt, "acct-2", &b) == 0);
	CHECK(!secret_equal(a, b));
	secret_free(&b);
	/* independent recomputation from the definition */
	uint8_t xs[32], want[32];
	const char info[] = "halfkey v1 accountacct-1";
	REQUIRE(kdf_hmac_sha256(mk, 32, salt, 16, xs) == 0);
	REQUIRE(kdf_hkdf_sha256(dk, 32, xs, 32, (const uint8_t *)info, strlen(info), want, 32) ==
		0);
	CHECK_MEM(secret_cbytes(a), want, 32);
	CHECK_INT(kdf_account_key(dk, mk, salt, "", &b), HK_ERR_INVAL);
	CHECK(b == NULL);
	secret_free(&a);
}

void test_setup(void)
{
	if (secmem_init() < 0)
		abort();
}

static void test_init(void)
{
	CHECK(secmem_init() == 0); /* idempotent */
}

TESTS(TEST(test_init), TEST(test_hkdf_rfc5869), TEST(test_hkdf_bad_args),
      TEST(test_hmac_rfc4231), TEST(test_aes256gcm_vectors), TEST(test_account_key));
