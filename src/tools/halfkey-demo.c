/* halfkey-demo: walks through Halfkey's credential lifecycle on a
 * throw-away data directory, printing what happens at each step.
 *
 *   halfkey-demo [DATA_DIR]
 *
 * It plays both sides: a "device" that makes a device key, and the relay's
 * engine that seals, stores, unlocks, flushes and purges. The mail server
 * check of a real registration is the relay's (next issue); here the
 * password is taken as verified. */
#include "crypto/vault.h"
#include "engine/account.h"
#include "lib/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int step_no;

static void step(const char *what)
{
	printf("\n[%d] %s\n", ++step_no, what);
}

static void die(const char *what, int ret, const char *err)
{
	fprintf(stderr, "halfkey-demo: %s: %s%s%s\n", what, hk_strerror(ret), err ? ": " : "",
		err ? err : "");
	exit(1);
}

static void hexdump_short(const char *label, const uint8_t *p, size_t n)
{
	printf("    %-22s", label);
	for (size_t i = 0; i < n && i < 24; i++)
		printf("%02x%s", p[i], (i == 0 || i == 4 || i == 16) ? " " : "");
	printf("%s (%zu bytes)\n", n > 24 ? "..." : "", n);
}

static size_t file_hits(const char *path, const char *needle)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return 0;
	size_t n = strlen(needle), hits = 0, len = 0, cap = 0;
	char *buf = NULL;
	int c;
	while ((c = fgetc(f)) != EOF) {
		if (len == cap) {
			cap = cap ? cap * 2 : 65536;
			char *nb = realloc(buf, cap);
			if (nb == NULL)
				break;
			buf = nb;
		}
		buf[len++] = (char)c;
	}
	fclose(f);
	for (size_t i = 0; buf != NULL && i + n <= len; i++)
		hits += memcmp(buf + i, needle, n) == 0;
	free(buf);
	return hits;
}

int main(int argc, char **argv)
{
	hk_log_init("halfkey-demo", HK_LOG_STDERR, HK_LOG_WARNING);
	if (secmem_init() < 0 || secmem_harden_process() < 0) {
		fprintf(stderr, "halfkey-demo: cannot set up guarded memory\n");
		return 1;
	}
	char dir[4096];
	if (argc > 1) {
		snprintf(dir, sizeof(dir), "%s", argv[1]);
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			die("mkdir", HK_ERR_IO, dir);
	} else {
		snprintf(dir, sizeof(dir), "/tmp/halfkey-demo-XXXXXX");
		if (mkdtemp(dir) == NULL)
			die("mkdtemp", HK_ERR_IO, NULL);
	}
	char keyfile[4200], dbfile[4200];
	snprintf(keyfile, sizeof(keyfile), "%s/master.keys", dir);
	snprintf(dbfile, sizeof(dbfile), "%s/halfkey.db", dir);

	const char *err = NULL;
	int ret;
	struct hk_clock clock;
	hk_clock_test_init(&clock, INT64_C(1800000000000)); /* demo time, moved by hand */

	step("Relay start: master keyring (created 0600 on first start) and SQLite store");
	struct masterkey *mk = NULL;
	if ((ret = masterkey_load_or_create(keyfile, &mk, &err)) < 0)
		die("master key", ret, err);
	struct stat st;
	stat(keyfile, &st);
	printf("    %s  mode %o, current key id %u\n", keyfile, st.st_mode & 0777,
	       masterkey_current_id(mk));
	struct store *store = NULL;
	if ((ret = store_open(&store_driver_sqlite, dbfile, &store, &err)) < 0)
		die("store", ret, err);
	printf("    %s  (WAL, foreign keys, secure_delete)\n", dbfile);

	step("Device: makes a random 256-bit device key and keeps it; the user types a password");
	const char *pw_text = "demo-Passw0rd-not-real";
	struct secret *dk = secret_random(HK_KEY_LEN);
	struct secret *password = secret_dup(pw_text, strlen(pw_text));
	printf("    device key: 32 random bytes (only the device stores it)\n");

	step("Register: (mail server accepted the password) seal password + data key, store");
	struct account_register_req req = {
		.server_url = "https://mail.example.org/Microsoft-Server-ActiveSync",
		.username = "alice",
		.email = "alice@example.org",
		.password = password,
		.device_key = dk,
		.eas_device_id = "HKDEMO0001",
		.device_type = "Halfkey",
		.user_agent = "halfkey-demo/" HK_VERSION,
	};
	struct account_register_res reg;
	struct account_secrets *unlocked = NULL;
	if ((ret = account_register(store, mk, &clock, &req, &reg, &unlocked, &err)) < 0)
		die("register", ret, err);
	secret_free(&password); /* the relay wipes the password it was sent */
	printf("    account %s, device %s, token handed to the device once\n", reg.account_id,
	       reg.device_id);
	struct store_envelope *env = NULL;
	if ((ret = store_envelope_get(store, reg.device_id, &env, &err)) < 0)
		die("envelope", ret, err);
	printf("    stored envelopes (version | key id | nonce | ciphertext+tag):\n");
	hexdump_short("password envelope", env->credential, env->credential_len);
	hexdump_short("wrapped data key", env->wrapped_dek, env->wrapped_dek_len);
	store_envelope_free(&env);

	step("Sync: cached mail is sealed under the account's data key");
	struct store_collection inbox = {.collection_id = "inbox", .parent_id = "0",
					  .display_name = "Inbox", .type = 2};
	if ((ret = store_collection_put(store, reg.account_id, &inbox, &err)) < 0)
		die("collection", ret, err);
	const char *msgs[] = {"Subject: Welcome\r\n\r\nHello Alice.",
			      "Subject: Lunch?\r\n\r\nNoon at the usual place.",
			      "Subject: Report\r\n\r\nAttached."};
	uint8_t sealed[3][256];
	struct store_item items[3];
	for (int i = 0; i < 3; i++) {
		char id[16];
		size_t n;
		snprintf(id, sizeof(id), "%d", i + 1);
		if ((ret = vault_item_seal(account_secrets_dek(unlocked), reg.account_id, id,
					   (const uint8_t *)msgs[i], strlen(msgs[i]), sealed[i],
					   sizeof(sealed[i]), &n)) < 0)
			die("seal item", ret, NULL);
		items[i] = (struct store_item){"inbox", strdup(id), sealed[i], n,
					       hk_clock_now(&clock)};
	}
	int64_t change = 0;
	if ((ret = store_item_put(store, reg.account_id, items, 3, &change, &err)) < 0)
		die("cache", ret, err);
	for (int i = 0; i < 3; i++)
		free((char *)(uintptr_t)items[i].item_id);
	printf("    3 messages cached, change counter %lld\n", (long long)change);

	step("What a stolen database shows: no password, no mail in the clear");
	store_close(&store); /* checkpoint the WAL into the main file */
	printf("    occurrences of the password in %s: %zu\n", dbfile, file_hits(dbfile, pw_text));
	printf("    occurrences of 'Lunch?' in the database: %zu\n",
	       file_hits(dbfile, "Lunch?"));
	if ((ret = store_open(&store_driver_sqlite, dbfile, &store, &err)) < 0)
		die("store", ret, err);

	step("3 days without activity: flush wipes password and data key from memory");
	hk_clock_test_advance(&clock, 3 * HK_MS_PER_DAY);
	account_secrets_free(&unlocked);
	if ((ret = store_account_set_state(store, reg.account_id, STORE_ACCOUNT_FLUSHED,
					   hk_clock_now(&clock), &err)) < 0)
		die("flush", ret, err);
	struct store_audit flush = {.time_ms = hk_clock_now(&clock), .event = STORE_AUDIT_FLUSH};
	snprintf(flush.account_id, sizeof(flush.account_id), "%s", reg.account_id);
	if ((ret = store_audit_append(store, &flush, NULL, &err)) < 0)
		die("audit", ret, err);
	printf("    state: flushed; the relay can no longer reach the mailbox or read its cache\n");

	step("Someone presents the right token with a wrong device key");
	struct secret *wrong = secret_random(HK_KEY_LEN);
	struct account_unlock_res ur;
	ret = account_unlock(store, mk, &clock, reg.token, sizeof(reg.token), wrong, &ur,
			     &unlocked, &err);
	printf("    -> %s (%s); audited as bad_key\n", hk_strerror(ret), err ? err : "");
	secret_free(&wrong);

	step("The device returns with its key: unlock opens password and cache again");
	if ((ret = account_unlock(store, mk, &clock, reg.token, sizeof(reg.token), dk, &ur,
				  &unlocked, &err)) < 0)
		die("unlock", ret, err);
	struct store_item *it = NULL;
	if ((ret = store_item_get(store, reg.account_id, "inbox", "2", &it, &err)) < 0)
		die("item", ret, err);
	uint8_t plain[256];
	size_t pn = 0;
	if ((ret = vault_item_open(account_secrets_dek(unlocked), reg.account_id, "2", it->sealed,
				   it->sealed_len, plain, sizeof(plain), &pn)) < 0)
		die("open item", ret, NULL);
	for (size_t i = 0; i < pn; i++)
		if (plain[i] == '\r' || plain[i] == '\n')
			plain[i] = ' ';
	printf("    cached message 2 reads: \"%.*s\"\n", (int)pn, (const char *)plain);
	store_item_free(&it);
	account_secrets_free(&unlocked);

	step("A week later without the device: the weekly purge removes everything");
	hk_clock_test_advance(&clock, 7 * HK_MS_PER_DAY);
	unsigned purged = 0;
	if ((ret = store_account_purge_inactive(store, hk_clock_now(&clock) - 3 * HK_MS_PER_DAY,
						hk_clock_now(&clock), &purged, &err)) < 0)
		die("purge", ret, err);
	struct store_stats stats;
	if ((ret = store_stats(store, &stats, &err)) < 0)
		die("stats", ret, err);
	printf("    purged %u account(s); left: %lld accounts, %lld envelopes, %lld cached items\n",
	       purged, (long long)stats.accounts, (long long)stats.envelopes,
	       (long long)stats.items);

	step("The audit log (append-only, never a secret)");
	struct store_audit *audit = NULL;
	size_t na = 0;
	if ((ret = store_audit_list(store, 0, NULL, 100, &audit, &na, &err)) < 0)
		die("audit", ret, err);
	for (size_t i = 0; i < na; i++)
		printf("    %lld  %-16s account %s\n", (long long)audit[i].time_ms,
		       store_audit_event_name(audit[i].event), audit[i].account_id);
	store_list_free(&audit);

	secmem_wipe(reg.token, sizeof(reg.token));
	secret_free(&dk);
	store_close(&store);
	masterkey_free(&mk);
	printf("\nDemo data left in %s\n", dir);
	return 0;
}
