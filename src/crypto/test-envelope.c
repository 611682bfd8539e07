/* Envelope and vault: round trips, and every way an envelope must fail
 * closed, each with its own error. */
#include "crypto/devtoken.h"
#include "crypto/envelope.h"
#include "crypto/masterkey.h"
#include "crypto/vault.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>

void test_setup(void)
{
	if (secmem_init() < 0)
		abort();
}

static const char ring_text[] = "halfkey-master-keyring 1\n"
				"key 1 AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n"
				"key 7 BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n";

static const uint8_t salt[16] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6};

static const struct vault_account acct = {
	.account_id = "01HKACCOUNT0000000000000001",
	.server_url = "https://mail.example/Microsoft-Server-ActiveSync",
	.username = "alice",
	.salt = salt,
};

struct fixture {
	struct masterkey *mk;
	struct secret *dk, *ak, *password, *dek;
	uint8_t cred[ENVELOPE_SIZE(64)];
	size_t cred_len;
	uint8_t dekenv[ENVELOPE_SIZE(HK_KEY_LEN)];
	uint32_t key_id;
};

static bool fixture_init(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	const char *err = NULL;
	if (!CHECK(masterkey_parse((const uint8_t *)ring_text, strlen(ring_text), &f->mk, &err) ==
		   0))
		return false;
	f->key_id = masterkey_current_id(f->mk);
	f->dk = secret_random(HK_KEY_LEN);
	f->password = secret_dup("correct horse battery staple", 28);
	f->dek = secret_random(HK_KEY_LEN);
	return CHECK(vault_account_key(f->mk, f->key_id, f->dk, &acct, &f->ak) == 0) &&
	       CHECK(vault_cred_seal(f->ak, f->key_id, &acct, f->password, f->cred,
				     sizeof(f->cred), &f->cred_len) == 0) &&
	       CHECK(vault_dek_wrap(f->ak, f->key_id, &acct, f->dek, f->dekenv) == 0);
}

static void fixture_free(struct fixture *f)
{
	masterkey_free(&f->mk);
	secret_free(&f->dk);
	secret_free(&f->ak);
	secret_free(&f->password);
	secret_free(&f->dek);
}

static void test_round_trip(void)
{
	struct fixture f;
	if (fixture_init(&f)) {
		CHECK_INT(f.key_id, 7);
		CHECK_INT(f.cred_len, ENVELOPE_SIZE(28));
		CHECK_INT(f.cred[0], ENVELOPE_VERSION);
		CHECK(f.cred[1] == 0 && f.cred[2] == 0 && f.cred[3] == 0 && f.cred[4] == 7);
		/* the password is not in the envelope in the clear */
		CHECK(memmem(f.cred, f.cred_len, "correct", 7) == NULL);

		struct secret *ak2 = NULL, *pw = NULL, *dek = NULL;
		REQUIRE(vault_account_key(f.mk, f.key_id, f.dk, &acct, &ak2) == 0);
		CHECK(vault_cred_open(ak2, f.key_id, &acct, f.cred, f.cred_len, &pw) == 0);
		CHECK(pw != NULL && secret_equal(pw, f.password));
		CHECK(vault_dek_unwrap(ak2, f.key_id, &acct, f.dekenv, sizeof(f.dekenv), &dek) ==
		      0);
		CHECK(dek != NULL && secret_equal(dek, f.dek));
		secret_free(&ak2);
		secret_free(&pw);
		secret_free(&dek);
	}
	fixture_free(&f);
}

static void test_nonce_fresh(void)
{
	/* Two seals of the same plaintext differ (random nonce). */
	struct fixture f;
	if (fixture_init(&f)) {
		uint8_t again[sizeof(f.cred)];
		size_t n;
		REQUIRE(vault_cred_seal(f.ak, f.key_id, &acct, f.password, again, sizeof(again),
					&n) == 0);
		CHECK(n == f.cred_len && memcmp(again, f.cred, n) != 0);
	}
	fixture_free(&f);
}

/* Flips every bit of every byte in turn: the header bytes give their own
 * errors, every other position fails the tag. */
static void test_every_bit_flip_fails(void)
{
	struct fixture f;
	if (!fixture_init(&f)) {
		fixture_free(&f);
		return;
	}
	for (size_t i = 0; i < f.cred_len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			f.cred[i] ^= (uint8_t)(1u << bit);
			struct secret *pw = NULL;
			int want = i == 0 ? HK_ERR_VERSION : i < 5 ? HK_ERR_KEY_ID : HK_ERR_AUTH;
			int got = vault_cred_open(f.ak, f.key_id, &acct, f.cred, f.cred_len, &pw);
			if (got != want)
				fprintf(stderr, "byte %zu bit %d: got %d want %d\n", i, bit, got,
					want);
			CHECK_INT(got, want);
			CHECK(pw == NULL);
			f.cred[i] ^= (uint8_t)(1u << bit);
		}
	}
	/* and the DEK envelope likewise */
	for (size_t i = ENVELOPE_HEADER_LEN - ENVELOPE_NONCE_LEN; i < sizeof(f.dekenv); i++) {
		f.dekenv[i] ^= 0x10;
		struct secret *dek = NULL;
		CHECK_INT(vault_dek_unwrap(f.ak, f.key_id, &acct, f.dekenv, sizeof(f.dekenv), &dek),
			  HK_ERR_AUTH);
		CHECK(dek == NULL);
		f.dekenv[i] ^= 0x10;
	}
	fixture_free(&f);
}

static void expect_open_fails(const struct fixture *f, const struct secret *dk,
			      const struct masterkey *mk, const struct vault_account *a, int want)
{
	struct secret *ak = NULL, *pw = NULL, *dek = NULL;
	int ret = vault_account_key(mk, f->key_id, dk, a, &ak);
	if (ret == 0) {
		CHECK_INT(vault_cred_open(ak, f->key_id, a, f->cred, f->cred_len, &pw), want);
		CHECK_INT(vault_dek_unwrap(ak, f->key_id, a, f->dekenv, sizeof(f->dekenv), &dek),
			  want);
	} else {
		CHECK_INT(ret, want);
	}
	CHECK(pw == NULL && dek == NULL);
	secret_free(&ak);
}

static void test_wrong_keys(void)
{
	struct fixture f;
	if (!fixture_init(&f)) {
		fixture_free(&f);
		return;
	}
	/* wrong device key */
	struct secret *dk2 = secret_random(HK_KEY_LEN);
	expect_open_fails(&f, dk2, f.mk, &acct, HK_ERR_AUTH);
	/* a device key one bit off */
	memcpy(secret_bytes(dk2), secret_cbytes(f.dk), HK_KEY_LEN);
	secret_bytes(dk2)[13] ^= 4;
	expect_open_fails(&f, dk2, f.mk, &acct, HK_ERR_AUTH);
	secret_free(&dk2);
	/* wrong master key: same id, other bytes */
	const char other[] = "halfkey-master-keyring 1\n"
			     "key 7 CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=\n";
	struct masterkey *mk2 = NULL;
	REQUIRE(masterkey_parse((const uint8_t *)other, strlen(other), &mk2, NULL) == 0);
	expect_open_fails(&f, f.dk, mk2, &acct, HK_ERR_AUTH);
	masterkey_free(&mk2);
	/* unknown key id: a keyring without key 7 */
	const char old[] = "halfkey-master-keyring 1\n"
			   "key 1 AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n";
	REQUIRE(masterkey_parse((const uint8_t *)old, strlen(old), &mk2, NULL) == 0);
	expect_open_fails(&f, f.dk, mk2, &acct, HK_ERR_KEY_ID);
	masterkey_free(&mk2);
	fixture_free(&f);
}

static void test_moved_envelope(void)
{
	struct fixture f;
	if (!fixture_init(&f)) {
		fixture_free(&f);
		return;
	}
	/* same keys, other account / server / user: the associated data differs */
	struct vault_account a = acct;
	a.account_id = "01HKACCOUNT0000000000000002";
	struct secret *ak = NULL, *pw = NULL;
	/* derive AK for the other account id but with the first one's salt: the
	 * envelope is still refused because its AD names the first account */
	REQUIRE(vault_account_key(f.mk, f.key_id, f.dk, &a, &ak) == 0);
	CHECK_INT(vault_cred_open(ak, f.key_id, &a, f.cred, f.cred_len, &pw), HK_ERR_AUTH);
	secret_free(&ak);

	/* with the right AK, only the AD fields change */
	a = acct;
	a.server_url = "https://evil.example/Microsoft-Server-ActiveSync";
	CHECK_INT(vault_cred_open(f.ak, f.key_id, &a, f.cred, f.cred_len, &pw), HK_ERR_AUTH);
	a = acct;
	a.username = "mallory";
	CHECK_INT(vault_cred_open(f.ak, f.key_id, &a, f.cred, f.cred_len, &pw), HK_ERR_AUTH);
	a = acct;
	a.account_id = "01HKACCOUNT0000000000000002";
	CHECK_INT(vault_cred_open(f.ak, f.key_id, &a, f.cred, f.cred_len, &pw), HK_ERR_AUTH);
	/* a DEK envelope presented as a credential (other purpose) */
	CHECK_INT(vault_cred_open(f.ak, f.key_id, &acct, f.dekenv, sizeof(f.dekenv), &pw),
		  HK_ERR_AUTH);
	CHECK(pw == NULL);
	fixture_free(&f);
}

static void test_lengths(void)
{
	struct fixture f;
	if (!fixture_init(&f)) {
		fixture_free(&f);
		return;
	}
	struct secret *pw = NULL;
	/* truncated below the fixed overhead */
	for (size_t n = 0; n < ENVELOPE_OVERHEAD; n++)
		CHECK_INT(vault_cred_open(f.ak, f.key_id, &acct, f.cred, n, &pw),
			  HK_ERR_TRUNCATED);
	/* truncated by one byte, or one byte appended: the tag no longer matches */
	CHECK_INT(vault_cred_open(f.ak, f.key_id, &acct, f.cred, f.cred_len - 1, &pw),
		  HK_ERR_AUTH);
	uint8_t longer[sizeof(f.cred) + 1];
	memcpy(longer, f.cred, f.cred_len);
	longer[f.cred_len] = 0;
	CHECK_INT(vault_cred_open(f.ak, f.key_id, &acct, longer, f.cred_len + 1, &pw),
		  HK_ERR_AUTH);
	/* a credential envelope larger than any password is refused unread */
	size_t big = ENVELOPE_SIZE(VAULT_PASSWORD_MAX + 1);
	uint8_t *b = calloc(1, big);
	REQUIRE(b != NULL);
	b[0] = ENVELOPE_VERSION;
	b[4] = 7;
	CHECK_INT(vault_cred_open(f.ak, f.key_id, &acct, b, big, &pw), HK_ERR_TOO_LONG);
	/* and the envelope format's own maximum */
	uint32_t kid;
	CHECK_INT(envelope_peek(b, ENVELOPE_SIZE(ENVELOPE_MAX_PLAINTEXT) + 1, &kid),
		  HK_ERR_TOO_LONG);
	free(b);
	/* DEK envelopes have exactly one size */
	struct secret *dek = NULL;
	CHECK_INT(vault_dek_unwrap(f.ak, f.key_id, &acct, f.dekenv, sizeof(f.dekenv) - 1, &dek),
		  HK_ERR_TRUNCATED);
	CHECK_INT(vault_dek_unwrap(f.ak, f.key_id, &acct, longer, sizeof(f.dekenv) + 1, &dek),
		  HK_ERR_TOO_LONG);
	CHECK(pw == NULL && dek == NULL);
	/* seal refuses oversize input and small output buffers */
	size_t n;
	uint8_t small[ENVELOPE_OVERHEAD];
	struct envelope_ad ad = {.purpose = "x"};
	CHECK_INT(envelope_seal(secret_cbytes(f.ak), 1, &ad, small, ENVELOPE_MAX_PLAINTEXT + 1,
				small, sizeof(small), &n),
		  HK_ERR_TOO_LONG);
	CHECK_INT(envelope_seal(secret_cbytes(f.ak), 1, &ad, small, 1, small, sizeof(small), &n),
		  HK_ERR_INVAL);
	/* a missing purpose is refused */
	struct envelope_ad nopurpose = {.account_id = "a"};
	CHECK_INT(envelope_seal(secret_cbytes(f.ak), 1, &nopurpose, NULL, 0, small, sizeof(small),
				&n),
		  HK_ERR_INVAL);
	fixture_free(&f);
}

static void test_unknown_version(void)
{
	struct fixture f;
	if (!fixture_init(&f)) {
		fixture_free(&f);
		return;
	}
	struct secret *pw = NULL;
	for (unsigned v = 0; v < 256; v++) {
		if (v == ENVELOPE_VERSION)
			continue;
		f.cred[0] = (uint8_t)v;
		CHECK_INT(vault_cred_open(f.ak, f.key_id, &acct, f.cred, f.cred_len, &pw),
			  HK_ERR_VERSION);
	}
	CHECK(pw == NULL);
	fixture_free(&f);
}

static void test_items(void)
{
	struct secret *dek = secret_random(HK_KEY_LEN);
	const char *mail = "From: a@b\r\nSubject: hello\r\n\r\nbody";
	uint8_t env[ENVELOPE_SIZE(64)], out[64];
	size_t n, m;
	REQUIRE(vault_item_seal(dek, "acct", "mail%2Finbox/17", (const uint8_t *)mail,
				strlen(mail), env, sizeof(env), &n) == 0);
	REQUIRE(vault_item_open(dek, "acct", "mail%2Finbox/17", env, n, out, sizeof(out), &m) ==
		0);
	CHECK_INT(m, strlen(mail));
	CHECK_MEM(out, mail, m);
	/* bound to its item id and account */
	CHECK_INT(vault_item_open(dek, "acct", "mail%2Finbox/18", env, n, out, sizeof(out), &m),
		  HK_ERR_AUTH);
	CHECK_INT(vault_item_open(dek, "acct2", "mail%2Finbox/17", env, n, out, sizeof(out), &m),
		  HK_ERR_AUTH);
	/* after a flush a new DEK cannot read the cache (crypto-shredding) */
	struct secret *dek2 = secret_random(HK_KEY_LEN);
	CHECK_INT(vault_item_open(dek2, "acct", "mail%2Finbox/17", env, n, out, sizeof(out), &m),
		  HK_ERR_AUTH);
	/* a too-small output buffer is refused before decrypting */
	CHECK_INT(vault_item_open(dek, "acct", "mail%2Finbox/17", env, n, out, 3, &m),
		  HK_ERR_INVAL);
	/* empty item */
	REQUIRE(vault_item_seal(dek, "acct", "e", NULL, 0, env, sizeof(env), &n) == 0);
	CHECK_INT(n, ENVELOPE_OVERHEAD);
	CHECK(vault_item_open(dek, "acct", "e", env, n, out, sizeof(out), &m) == 0 && m == 0);
	secret_free(&dek);
	secret_free(&dek2);
}

static void test_device_tokens(void)
{
	uint8_t tok[DEVTOKEN_LEN], hash[DEVTOKEN_HASH_LEN], tok2[DEVTOKEN_LEN], h2[32];
	REQUIRE(devtoken_new(tok, hash) == 0);
	REQUIRE(devtoken_new(tok2, h2) == 0);
	CHECK(memcmp(tok, tok2, DEVTOKEN_LEN) != 0);
	CHECK(memcmp(hash, tok, DEVTOKEN_HASH_LEN) != 0); /* the hash, not the token */
	CHECK(devtoken_verify(tok, DEVTOKEN_LEN, hash));
	CHECK(!devtoken_verify(tok2, DEVTOKEN_LEN, hash));
	CHECK(!devtoken_verify(tok, DEVTOKEN_LEN - 1, hash));
	for (size_t i = 0; i < DEVTOKEN_LEN; i++) {
		tok[i] ^= 0x40;
		CHECK(!devtoken_verify(tok, DEVTOKEN_LEN, hash));
		tok[i] ^= 0x40;
	}
	/* known answer: SHA-256 of 32 zero bytes */
	uint8_t zero[32] = {0}, want[32];
	static const uint8_t sha_zero32[32] = {
		0x66, 0x68, 0x7a, 0xad, 0xf8, 0x62, 0xbd, 0x77, 0x6c, 0x8f, 0xc1,
		0x8b, 0x8e, 0x9f, 0x8e, 0x20, 0x08, 0x97, 0x14, 0x85, 0x6e, 0xe2,
		0x33, 0xb3, 0x90, 0x2a, 0x59, 0x1d, 0x0d, 0x5f, 0x29, 0x25};
	REQUIRE(devtoken_hash(zero, 32, want) == 0);
	CHECK_MEM(want, sha_zero32, 32);
}

/* The byte layout of docs/crypto.md, checked against an envelope made by an
 * independent AES-GCM implementation (Python's cryptography) from that
 * description: key 01..20, key id 7, nonce 00..0b, purpose "item",
 * account "fuzz", item "1". */
static void test_known_envelope(void)
{
	static const char hex[] = "0100000007000102030405060708090a0b224563fdadbe15312f43d72d08f7f"
				  "a87249ddffa1ae6e45909ef903b625acba33f3a73c5e193";
	uint8_t env[64], key[32], pt[64];
	size_t n = strlen(hex) / 2, m = 0;
	for (size_t i = 0; i < n; i++) {
		char b[3] = {hex[2 * i], hex[2 * i + 1], 0};
		env[i] = (uint8_t)strtoul(b, NULL, 16);
	}
	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)(i + 1);
	struct envelope_ad ad = {.purpose = "item", .account_id = "fuzz", .item_id = "1"};
	REQUIRE(envelope_open(key, 7, &ad, env, n, pt, sizeof(pt), &m) == 0);
	CHECK_INT(m, 22);
	CHECK_MEM(pt, "Subject: hello\r\n\r\nbody", 22);
	uint32_t kid = 0;
	CHECK(envelope_peek(env, n, &kid) == 0 && kid == 7);
	/* the same bytes with the server URL field set no longer open */
	ad.server_url = "";
	CHECK(envelope_open(key, 7, &ad, env, n, pt, sizeof(pt), &m) == 0); /* empty == absent */
	ad.server_url = "x";
	CHECK_INT(envelope_open(key, 7, &ad, env, n, pt, sizeof(pt), &m), HK_ERR_AUTH);
}

TESTS(TEST(test_known_envelope), TEST(test_round_trip), TEST(test_nonce_fresh), TEST(test_every_bit_flip_fails),
      TEST(test_wrong_keys), TEST(test_moved_envelope), TEST(test_lengths),
      TEST(test_unknown_version), TEST(test_items), TEST(test_device_tokens));
