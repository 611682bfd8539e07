/* The credential lifecycle through the real store and crypto layers:
 * register, unlock, wrong keys, key rotation, and the property that no
 * secret ever reaches the log or the database files (WAL included). */
#include "crypto/masterkey.h"
#include "engine/account.h"
#include "lib/log.h"
#include "test.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

static const char password_text[] = "Zq7-leak-canary-p@ssw0rd \"quoted\"";
static const char username[] = "leak.canary@halfkey.test";
static FILE *log_file;

static void log_to_file(enum hk_log_level level, const char *line, void *ctx)
{
	(void)level;
	(void)ctx;
	if (log_file != NULL)
		fprintf(log_file, "%s\n", line);
}

void test_setup(void)
{
	if (secmem_init() < 0)
		abort();
	log_file = fopen(test_path("halfkey.log"), "w");
	hk_log_set_sink(log_to_file, NULL);
	hk_log_set_level(HK_LOG_DEBUG);
}

struct env {
	struct store *store;
	struct masterkey *mk;
	struct hk_clock clock;
	struct secret *dk, *password;
	char db[512], keyfile[600];
};

static bool env_open(struct env *e, const char *name)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->db, sizeof(e->db), "%s", test_path(name));
	snprintf(e->keyfile, sizeof(e->keyfile), "%s.keys", e->db);
	hk_clock_test_init(&e->clock, INT64_C(1800000000000));
	const char *err = NULL;
	e->dk = secret_random(HK_KEY_LEN);
	e->password = secret_dup(password_text, strlen(password_text));
	return CHECK(masterkey_load_or_create(e->keyfile, &e->mk, &err) == 0) &&
	       CHECK(store_open(&store_driver_sqlite, e->db, &e->store, &err) == 0);
}

static void env_close(struct env *e)
{
	store_close(&e->store);
	masterkey_free(&e->mk);
	secret_free(&e->dk);
	secret_free(&e->password);
}

static struct account_register_req make_req(const struct env *e)
{
	return (struct account_register_req){
		.server_url = "https://mail.halfkey.test/Microsoft-Server-ActiveSync",
		.username = username,
		.email = username,
		.password = e->password,
		.device_key = e->dk,
		.eas_device_id = "HKTESTDEVICE0001",
		.device_type = "iPhone",
		.user_agent = "HalfkeyTest/1.0",
	};
}

static void test_register_unlock(void)
{
	struct env e;
	if (!env_open(&e, "ru.db"))
		goto out;
	struct account_register_req req = make_req(&e);
	struct account_register_res res;
	struct account_secrets *s = NULL, *s2 = NULL;
	const char *err = NULL;
	REQUIRE(account_register(e.store, e.mk, &e.clock, &req, &res, &s, &err) == 0);
	CHECK(s != NULL);
	CHECK(secret_equal(account_secrets_password(s), e.password));
	CHECK_INT(strlen(res.account_id), ACCOUNT_ID_LEN);

	struct store_stats st;
	REQUIRE(store_stats(e.store, &st, &err) == 0);
	CHECK_INT(st.accounts, 1);
	CHECK_INT(st.devices, 1);
	CHECK_INT(st.envelopes, 1);

	hk_clock_test_advance(&e.clock, 1000);
	struct account_unlock_res ur;
	REQUIRE(account_unlock(e.store, e.mk, &e.clock, res.token, sizeof(res.token), e.dk, &ur,
			       &s2, &err) == 0);
	CHECK_STR(ur.account_id, res.account_id);
	CHECK(!ur.rewrapped);
	CHECK(secret_equal(account_secrets_password(s2), e.password));
	CHECK(secret_equal(account_secrets_dek(s2), account_secrets_dek(s)));
	struct store_account acct;
	REQUIRE(store_account_get(e.store, res.account_id, &acct, &err) == 0);
	CHECK_INT(acct.last_activity_ms, hk_clock_now(&e.clock));
	account_secrets_free(&s);
	account_secrets_free(&s2);
	CHECK(s == NULL && s2 == NULL);
	secmem_wipe(res.token, sizeof(res.token));
out:
	env_close(&e);
}

static size_t audit_count(struct store *store, enum store_audit_event ev)
{
	struct store_audit *a = NULL;
	size_t n = 0, hits = 0;
	const char *err;
	if (store_audit_list(store, 0, NULL, STORE_LIST_MAX, &a, &n, &err) < 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		hits += a[i].event == ev;
	store_list_free(&a);
	return hits;
}

static void test_wrong_keys_fail_closed(void)
{
	struct env e;
	if (!env_open(&e, "wk.db"))
		goto out;
	struct account_register_req req = make_req(&e);
	struct account_register_res res;
	struct account_secrets *s = NULL;
	struct account_unlock_res ur;
	const char *err = NULL;
	REQUIRE(account_register(e.store, e.mk, &e.clock, &req, &res, NULL, &err) == 0);

	struct secret *bad = secret_random(HK_KEY_LEN);
	CHECK_INT(account_unlock(e.store, e.mk, &e.clock, res.token, sizeof(res.token), bad, &ur,
				 &s, &err),
		  HK_ERR_AUTH);
	CHECK(s == NULL);
	CHECK_INT(audit_count(e.store, STORE_AUDIT_BAD_KEY), 1);
	secret_free(&bad);

	/* a 31-byte key is refused before any work */
	struct secret *shortkey = secret_random(31);
	CHECK_INT(account_unlock(e.store, e.mk, &e.clock, res.token, sizeof(res.token), shortkey,
				 &ur, &s, &err),
		  HK_ERR_INVAL);
	secret_free(&shortkey);

	/* unknown or truncated token */
	uint8_t tok[DEVTOKEN_LEN];
	memcpy(tok, res.token, sizeof(tok));
	tok[5] ^= 1;
	CHECK_INT(account_unlock(e.store, e.mk, &e.clock, tok, sizeof(tok), e.dk, &ur, &s, &err),
		  HK_ERR_AUTH);
	CHECK_INT(account_unlock(e.store, e.mk, &e.clock, res.token, sizeof(res.token) - 1, e.dk,
				 &ur, &s, &err),
		  HK_ERR_AUTH);
	CHECK(s == NULL);

	/* a wiped account's device is told so */
	REQUIRE(store_account_wipe(e.store, res.account_id, hk_clock_now(&e.clock), NULL, &err) ==
		0);
	CHECK_INT(account_unlock(e.store, e.mk, &e.clock, res.token, sizeof(res.token), e.dk, &ur,
				 &s, &err),
		  HK_ERR_STATE);
	CHECK(s == NULL);
out:
	env_close(&e);
}

static void test_master_key_rotation(void)
{
	struct env e;
	if (!env_open(&e, "rot.db"))
		goto out;
	struct account_register_req req = make_req(&e);
	struct account_register_res res;
	struct account_secrets *s = NULL;
	struct account_unlock_res ur;
	struct store_envelope *env = NULL;
	const char *err = NULL;
	REQUIRE(account_register(e.store, e.mk, &e.clock, &req, &res, NULL, &err) == 0);
	uint32_t id;
	REQUIRE(masterkey_rotate(e.keyfile, &id, &err) == 0);
	CHECK_INT(id, 2);
	masterkey_free(&e.mk);
	REQUIRE(masterkey_load(e.keyfile, &e.mk, &err) == 0);

	REQUIRE(account_unlock(e.store, e.mk, &e.clock, res.token, sizeof(res.token), e.dk, &ur,
			       &s, &err) == 0);
	CHECK(ur.rewrapped);
	CHECK(secret_equal(account_secrets_password(s), e.password));
	account_secrets_free(&s);
	REQUIRE(store_envelope_get(e.store, res.device_id, &env, &err) == 0);
	CHECK_INT(env->key_id, 2);
	store_envelope_free(&env);
	/* and it opens again under the new key, without re-wrapping */
	REQUIRE(account_unlock(e.store, e.mk, &e.clock, res.token, sizeof(res.token), e.dk, &ur,
			       &s, &err) == 0);
	CHECK(!ur.rewrapped);
	account_secrets_free(&s);

	/* a keyring that lost the key is HK_ERR_KEY_ID, not a bad key */
	struct masterkey *other = NULL;
	REQUIRE(masterkey_load_or_create(test_path("other.keys"), &other, &err) == 0);
	CHECK_INT(account_unlock(e.store, other, &e.clock, res.token, sizeof(res.token), e.dk,
				 &ur, &s, &err),
		  HK_ERR_KEY_ID);
	masterkey_free(&other);
out:
	env_close(&e);
}

static void test_register_refuses_bad_input(void)
{
	struct env e;
	if (!env_open(&e, "bad.db"))
		goto out;
	struct account_register_res res;
	const char *err = NULL;
	struct account_register_req req = make_req(&e);
	struct secret *k31 = secret_random(31), *empty = secret_new(0);
	req.device_key = k31;
	CHECK_INT(account_register(e.store, e.mk, &e.clock, &req, &res, NULL, &err),
		  HK_ERR_INVAL);
	req = make_req(&e);
	req.password = empty;
	CHECK_INT(account_register(e.store, e.mk, &e.clock, &req, &res, NULL, &err),
		  HK_ERR_INVAL);
	req = make_req(&e);
	req.username = NULL;
	CHECK_INT(account_register(e.store, e.mk, &e.clock, &req, &res, NULL, &err),
		  HK_ERR_INVAL);
	struct store_stats st;
	REQUIRE(store_stats(e.store, &st, &err) == 0);
	CHECK_INT(st.accounts, 0);
	secret_free(&k31);
	secret_free(&empty);
out:
	env_close(&e);
}

/* Each encoding in which a secret could cross a boundary. */
static size_t count_everywhere(const char *const *files, size_t nfiles, const void *needle,
			       size_t n)
{
	size_t hits = 0;
	for (size_t i = 0; i < nfiles; i++)
		hits += test_file_count(files[i], needle, n);
	return hits;
}

static void check_no_secret_in(const char *const *files, size_t nfiles, const struct env *e)
{
	char b64[256], b64url[256], hex[128];
	const uint8_t *dk = secret_cbytes(e->dk);
	/* the password: raw, base64, base64url, JSON-escaped */
	CHECK_INT(count_everywhere(files, nfiles, password_text, strlen(password_text)), 0);
	sodium_bin2base64(b64, sizeof(b64), (const uint8_t *)password_text, strlen(password_text),
			  sodium_base64_VARIANT_ORIGINAL);
	CHECK_INT(count_everywhere(files, nfiles, b64, strlen(b64)), 0);
	sodium_bin2base64(b64url, sizeof(b64url), (const uint8_t *)password_text,
			  strlen(password_text), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	CHECK_INT(count_everywhere(files, nfiles, b64url, strlen(b64url)), 0);
	const char *json = "Zq7-leak-canary-p@ssw0rd \\\"quoted\\\"";
	CHECK_INT(count_everywhere(files, nfiles, json, strlen(json)), 0);
	/* a distinctive prefix, in case of truncation */
	CHECK_INT(count_everywhere(files, nfiles, "Zq7-leak-canary", 15), 0);
	/* the Basic authorization value: base64(user:password) */
	char userpass[256];
	int n = snprintf(userpass, sizeof(userpass), "%s:%s", username, password_text);
	sodium_bin2base64(b64, sizeof(b64), (const uint8_t *)userpass, (size_t)n,
			  sodium_base64_VARIANT_ORIGINAL);
	CHECK_INT(count_everywhere(files, nfiles, b64, strlen(b64)), 0);
	/* the device key: raw, hex, base64, base64url */
	CHECK_INT(count_everywhere(files, nfiles, dk, HK_KEY_LEN), 0);
	sodium_bin2hex(hex, sizeof(hex), dk, HK_KEY_LEN);
	CHECK_INT(count_everywhere(files, nfiles, hex, strlen(hex)), 0);
	sodium_bin2base64(b64, sizeof(b64), dk, HK_KEY_LEN, sodium_base64_VARIANT_ORIGINAL);
	CHECK_INT(count_everywhere(files, nfiles, b64, 40), 0);
	sodium_bin2base64(b64url, sizeof(b64url), dk, HK_KEY_LEN,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	CHECK_INT(count_everywhere(files, nfiles, b64url, 40), 0);
}

static void test_no_secret_in_log_or_database(void)
{
	struct env e;
	if (!env_open(&e, "leak.db"))
		goto out;
	struct account_register_req req = make_req(&e);
	struct account_register_res res;
	struct account_secrets *s = NULL;
	struct account_unlock_res ur;
	const char *err = NULL;
	REQUIRE(account_register(e.store, e.mk, &e.clock, &req, &res, NULL, &err) == 0);
	struct secret *bad = secret_random(HK_KEY_LEN);
	CHECK(account_unlock(e.store, e.mk, &e.clock, res.token, sizeof(res.token), bad, &ur, &s,
			     &err) == HK_ERR_AUTH);
	secret_free(&bad);
	REQUIRE(account_unlock(e.store, e.mk, &e.clock, res.token, sizeof(res.token), e.dk, &ur,
			       &s, &err) == 0);
	account_secrets_free(&s);
	fflush(log_file);

	/* the database must really hold the account: the check is not vacuous */
	char wal[600], shm[600];
	snprintf(wal, sizeof(wal), "%s-wal", e.db);
	snprintf(shm, sizeof(shm), "%s-shm", e.db);
	CHECK(test_file_count(e.db, username, strlen(username)) +
		      test_file_count(wal, username, strlen(username)) >
	      0);
	CHECK(test_file_count(test_path("halfkey.log"), res.account_id, strlen(res.account_id)) >
	      0);

	const char *files[] = {e.db, wal, shm, test_path("halfkey.log"), e.keyfile};
	check_no_secret_in(files, 5, &e); /* while open: WAL and shm present */
	store_close(&e.store);		  /* checkpoint: everything in the main file */
	check_no_secret_in(files, 5, &e);
	secmem_wipe(res.token, sizeof(res.token));
out:
	env_close(&e);
}

TESTS(TEST(test_register_unlock), TEST(test_wrong_keys_fail_closed),
      TEST(test_master_key_rotation), TEST(test_register_refuses_bad_input),
      TEST(test_no_secret_in_log_or_database));
