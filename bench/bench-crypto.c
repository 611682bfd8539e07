/* Benchmark: seal + open of a 64-byte password including the account-key
 * derivation on both sides, on one thread (one core). Also the parts alone.
 *   bench-crypto [seconds-per-case]      (default 3) */
#include "crypto/masterkey.h"
#include "crypto/vault.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char ring[] = "halfkey-master-keyring 1\n"
			   "key 1 AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n";
static const uint8_t salt[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const struct vault_account acct = {"01HKBENCHACCOUNT0000000001",
					  "https://mail.example/Microsoft-Server-ActiveSync",
					  "alice@example.com", salt};

static struct masterkey *mk;
static struct secret *dk, *password, *ak_fixed;

static void fail(const char *what)
{
	fprintf(stderr, "bench-crypto: %s failed\n", what);
	exit(1);
}

/* One full register-and-unlock round: derive, seal, derive, open. */
static void full_round(void)
{
	uint8_t env[ENVELOPE_SIZE(64)];
	size_t n;
	struct secret *ak = NULL, *pw = NULL;
	if (vault_account_key(mk, 1, dk, &acct, &ak) < 0)
		fail("derive");
	if (vault_cred_seal(ak, 1, &acct, password, env, sizeof(env), &n) < 0)
		fail("seal");
	secret_free(&ak);
	if (vault_account_key(mk, 1, dk, &acct, &ak) < 0)
		fail("derive");
	if (vault_cred_open(ak, 1, &acct, env, n, &pw) < 0)
		fail("open");
	secret_free(&ak);
	secret_free(&pw);
}

static void seal_open_only(void)
{
	uint8_t env[ENVELOPE_SIZE(64)];
	size_t n;
	struct secret *pw = NULL;
	if (vault_cred_seal(ak_fixed, 1, &acct, password, env, sizeof(env), &n) < 0 ||
	    vault_cred_open(ak_fixed, 1, &acct, env, n, &pw) < 0)
		fail("seal/open");
	secret_free(&pw);
}

static void derive_only(void)
{
	struct secret *ak = NULL;
	if (vault_account_key(mk, 1, dk, &acct, &ak) < 0)
		fail("derive");
	secret_free(&ak);
}

static void run(const char *name, void (*fn)(void), double secs)
{
	for (int i = 0; i < 1000; i++) /* warm up */
		fn();
	unsigned long n = 0;
	double t0 = now_s(), t;
	do {
		for (int i = 0; i < 1000; i++)
			fn();
		n += 1000;
		t = now_s() - t0;
	} while (t < secs);
	printf("%-44s %10.0f ops/s  %6.2f us/op\n", name, (double)n / t, t * 1e6 / (double)n);
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? strtod(argv[1], NULL) : 3.0;
	if (secs <= 0)
		secs = 3.0;
	if (secmem_init() < 0)
		fail("secmem_init");
	const char *err;
	if (masterkey_parse((const uint8_t *)ring, strlen(ring), &mk, &err) < 0)
		fail("masterkey");
	dk = secret_random(HK_KEY_LEN);
	password = secret_random(64);
	if (vault_account_key(mk, 1, dk, &acct, &ak_fixed) < 0)
		fail("derive");
	printf("one thread; 64-byte password; AES-256-GCM + HKDF-SHA256 via OpenSSL 3\n");
	run("seal+open incl. 2x key derivation", full_round, secs);
	run("seal+open (key already derived)", seal_open_only, secs);
	run("account key derivation (HMAC + HKDF)", derive_only, secs);
	secret_free(&dk);
	secret_free(&password);
	secret_free(&ak_fixed);
	masterkey_free(&mk);
	return 0;
}
