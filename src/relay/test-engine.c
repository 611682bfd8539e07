/* The engine's lifecycle with the test clock (unit), and registration
 * against a real ActiveSync server when HALFKEY_TEST_EAS_URL & co. are set
 * (those cases report themselves skipped otherwise). */
#include "crypto/devtoken.h"
#include "engine/account.h"
#include "lib/clock.h"
#include "relay/engine.h"
#include "test.h"

#include <event2/event.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

static struct event_base *base;
static struct httpc *http, *verify_http;

void test_setup(void)
{
	if (secmem_init() < 0)
		abort();
	base = event_base_new();
	if (base == NULL || httpc_new(base, &http) < 0 || httpc_new(base, &verify_http) < 0)
		abort();
}

/* env_open*: HTTP/2 to the mail server, registrations on their own client */
static bool env_h2_split;

struct env {
	struct store *store;
	struct masterkey *mk;
	struct hk_clock clock;
	struct engine *engine;
};

static bool env_open_cap(struct env *v, const char *name, bool sync, size_t max_syncing)
{
	memset(v, 0, sizeof(*v));
	hk_clock_test_init(&v->clock, INT64_C(1800000000000));
	char db[512], keys[600];
	snprintf(db, sizeof(db), "%s", test_path(name));
	snprintf(keys, sizeof(keys), "%s.keys", db);
	const char *err;
	if (!CHECK(masterkey_load_or_create(keys, &v->mk, &err) == 0) ||
	    !CHECK(store_open(&store_driver_sqlite, db, &v->store, &err) == 0))
		return false;
	const char *ca = getenv("HALFKEY_TEST_EAS_CA");
	struct engine_config cfg = {
		.base = base,
		.no_sync = !sync,
		.store = v->store,
		.mk = v->mk,
		.clock = &v->clock,
		.http = http,
		.ca_file = ca != NULL && *ca != '\0' ? ca : NULL,
		.flush_after_ms = 3 * HK_MS_PER_DAY,
		.purge_every_ms = 7 * HK_MS_PER_DAY,
		.eas_timeout_ms = 30000,
		.heartbeat_s = 60, /* the minimum: a Ping holds a server worker */
		.max_syncing = max_syncing,
		.http2 = env_h2_split,
		.verify_http = env_h2_split ? verify_http : NULL,
	};
	return CHECK(engine_new(&cfg, &v->engine) == 0);
}

static bool env_open_sync(struct env *v, const char *name, bool sync)
{
	return env_open_cap(v, name, sync, 0);
}

static bool env_open(struct env *v, const char *name)
{
	return env_open_sync(v, name, false);
}

static void env_close(struct env *v)
{
	engine_free(&v->engine);
	store_close(&v->store);
	masterkey_free(&v->mk);
}

/* An account stored directly (as if the mail server had accepted it). */
struct reg {
	uint8_t token[DEVTOKEN_LEN];
	char account_id[STORE_ID_MAX];
	struct secret *dk;
};

static bool store_account_at(struct env *v, const char *user, const char *url, struct reg *r)
{
	struct secret *pw = secret_dup("pw-1234", 7);
	r->dk = secret_random(HK_KEY_LEN);
	char dev[40];
	snprintf(dev, sizeof(dev), "DEV%s", user);
	struct account_register_req req = {
		.server_url = url,
		.username = user,
		.password = pw,
		.device_key = r->dk,
		.eas_device_id = dev,
		.device_type = "iPhone",
		.user_agent = "Test/1",
	};
	struct account_register_res res;
	const char *err;
	int ret = account_register(v->store, v->mk, &v->clock, &req, &res, NULL, &err);
	secret_free(&pw);
	memcpy(r->token, res.token, sizeof(r->token));
	snprintf(r->account_id, sizeof(r->account_id), "%s", res.account_id);
	return CHECK(ret == 0);
}

static bool store_account(struct env *v, const char *user, struct reg *r)
{
	return store_account_at(v, user, "https://mail.example/Microsoft-Server-ActiveSync", r);
}

static int unlock(struct env *v, struct reg *r, const struct secret *key)
{
	struct engine_result res;
	engine_unlock(v->engine, r->token, sizeof(r->token),
		      secret_dup(secret_cbytes(key), secret_len(key)), &res);
	return res.status;
}

static void test_unlock_and_flush_after_three_days(void)
{
	struct env v;
	struct reg r = {0};
	if (!env_open(&v, "flush.db") || !store_account(&v, "alice", &r))
		goto out;
	CHECK_INT(unlock(&v, &r, r.dk), 200);
	CHECK(engine_is_unlocked(v.engine, r.account_id));
	/* two days idle, then activity: still unlocked two more days later */
	hk_clock_test_advance(&v.clock, 2 * HK_MS_PER_DAY);
	engine_tick(v.engine);
	CHECK(engine_is_unlocked(v.engine, r.account_id));
	struct engine_result res;
	engine_touch(v.engine, r.token, sizeof(r.token), &res);
	CHECK_INT(res.status, 200);
	CHECK_STR(res.detail, "unlocked");
	hk_clock_test_advance(&v.clock, 2 * HK_MS_PER_DAY);
	engine_tick(v.engine);
	CHECK(engine_is_unlocked(v.engine, r.account_id));
	/* three days without activity: flushed */
	hk_clock_test_advance(&v.clock, HK_MS_PER_DAY + 1);
	engine_tick(v.engine);
	CHECK(!engine_is_unlocked(v.engine, r.account_id));
	CHECK_INT(engine_unlocked_count(v.engine), 0);
	struct store_account acct;
	const char *err;
	REQUIRE(store_account_get(v.store, r.account_id, &acct, &err) == 0);
	CHECK_INT(acct.state, STORE_ACCOUNT_FLUSHED);
	engine_touch(v.engine, r.token, sizeof(r.token), &res);
	CHECK_STR(res.detail, "locked");
	/* the device comes back: unlocks again */
	CHECK_INT(unlock(&v, &r, r.dk), 200);
	CHECK(engine_is_unlocked(v.engine, r.account_id));
	REQUIRE(store_account_get(v.store, r.account_id, &acct, &err) == 0);
	CHECK_INT(acct.state, STORE_ACCOUNT_ACTIVE);
out:
	secret_free(&r.dk);
	env_close(&v);
}

static void loop_once(void)
{
	event_base_loop(base, EVLOOP_NONBLOCK);
}

/* mailserver.max_syncing_accounts: past it, unlocked accounts wait in
 * unlock order and take the slot of one that stops. The server refuses
 * connections, so the sessions sit in back-off: still syncing. */
static void test_sync_cap(void)
{
	struct env v;
	struct reg r[4];
	memset(r, 0, sizeof(r));
	const char *url = "https://127.0.0.1:9/Microsoft-Server-ActiveSync";
	if (!env_open_cap(&v, "cap.db", true, 2))
		goto out;
	for (int i = 0; i < 4; i++) {
		char user[16];
		snprintf(user, sizeof(user), "user%d", i);
		if (!store_account_at(&v, user, url, &r[i]))
			goto out;
	}
	for (int i = 0; i < 3; i++)
		CHECK_INT(unlock(&v, &r[i], r[i].dk), 200);
	CHECK_INT(engine_unlocked_count(v.engine), 3);
	CHECK_INT(engine_syncing_count(v.engine), 2);
	CHECK_INT(engine_sync_waiting_count(v.engine), 1);
	/* unlocking a waiting account again queues it once, not twice */
	CHECK_INT(unlock(&v, &r[2], r[2].dk), 200);
	CHECK_INT(engine_sync_waiting_count(v.engine), 1);
	CHECK_INT(unlock(&v, &r[3], r[3].dk), 200);
	CHECK_INT(engine_sync_waiting_count(v.engine), 2);
	loop_once();
	CHECK_INT(engine_syncing_count(v.engine), 2); /* no slot freed */
	/* a waiting account that flushes leaves the queue */
	struct engine_result res;
	engine_admin_flush(v.engine, r[2].account_id, &res);
	CHECK_INT(res.status, 200);
	CHECK_INT(engine_sync_waiting_count(v.engine), 1);
	CHECK_INT(engine_syncing_count(v.engine), 2);
	/* a syncing one that goes frees its slot for the oldest waiting */
	engine_admin_flush(v.engine, r[0].account_id, &res);
	CHECK_INT(res.status, 200);
	CHECK_INT(engine_syncing_count(v.engine), 1);
	loop_once();
	CHECK_INT(engine_syncing_count(v.engine), 2);
	CHECK_INT(engine_sync_waiting_count(v.engine), 0);
	/* r[2] comes back: waits again; deleting a syncing account admits it */
	CHECK_INT(unlock(&v, &r[2], r[2].dk), 200);
	CHECK_INT(engine_sync_waiting_count(v.engine), 1);
	engine_delete(v.engine, r[1].token, sizeof(r[1].token), &res);
	CHECK_INT(res.status, 204);
	loop_once();
	CHECK_INT(engine_syncing_count(v.engine), 2);
	CHECK_INT(engine_sync_waiting_count(v.engine), 0);
	CHECK_INT(engine_unlocked_count(v.engine), 2);
	/* three days idle: both flush, nothing is left syncing or waiting */
	CHECK_INT(unlock(&v, &r[0], r[0].dk), 200);
	CHECK_INT(engine_sync_waiting_count(v.engine), 1);
	hk_clock_test_advance(&v.clock, 3 * HK_MS_PER_DAY + 1);
	engine_tick(v.engine);
	loop_once();
	CHECK_INT(engine_unlocked_count(v.engine), 0);
	CHECK_INT(engine_syncing_count(v.engine), 0);
	CHECK_INT(engine_sync_waiting_count(v.engine), 0);
	CHECK_INT(httpc_active(http), 0);
	/* the engine goes with accounts still waiting: nothing leaks */
	CHECK_INT(unlock(&v, &r[0], r[0].dk), 200);
	CHECK_INT(unlock(&v, &r[2], r[2].dk), 200);
	CHECK_INT(unlock(&v, &r[3], r[3].dk), 200);
	CHECK_INT(engine_sync_waiting_count(v.engine), 1);
out:
	for (int i = 0; i < 4; i++)
		secret_free(&r[i].dk);
	env_close(&v);
}

static void test_weekly_purge(void)
{
	struct env v;
	struct reg idle = {0}, busy = {0};
	if (!env_open(&v, "purge.db") || !store_account(&v, "idle", &idle) ||
	    !store_account(&v, "busy", &busy))
		goto out;
	struct engine_result res;
	for (int day = 1; day <= 7; day++) {
		hk_clock_test_advance(&v.clock, HK_MS_PER_DAY);
		engine_touch(v.engine, busy.token, sizeof(busy.token), &res);
		engine_tick(v.engine);
	}
	struct store_stats st;
	const char *err;
	REQUIRE(store_stats(v.store, &st, &err) == 0);
	CHECK_INT(st.accounts, 1);
	CHECK_INT(st.envelopes, 1);
	struct store_account acct;
	CHECK_INT(store_account_get(v.store, idle.account_id, &acct, &err), HK_ERR_NOT_FOUND);
	CHECK(store_account_get(v.store, busy.account_id, &acct, &err) == 0);
	engine_touch(v.engine, idle.token, sizeof(idle.token), &res);
	CHECK_INT(res.status, 401);
out:
	secret_free(&idle.dk);
	secret_free(&busy.dk);
	env_close(&v);
}

static void test_bad_keys_back_off(void)
{
	struct env v;
	struct reg r = {0};
	if (!env_open(&v, "backoff.db") || !store_account(&v, "carol", &r))
		goto out;
	struct secret *bad = secret_random(HK_KEY_LEN);
	CHECK_INT(unlock(&v, &r, bad), 401);
	CHECK_INT(unlock(&v, &r, bad), 401);
	CHECK_INT(unlock(&v, &r, bad), 401);
	/* now even the right key waits */
	CHECK_INT(unlock(&v, &r, r.dk), 429);
	hk_clock_test_advance(&v.clock, 2000);
	CHECK_INT(unlock(&v, &r, r.dk), 200);
	/* success resets the count; a wrong key on an unlocked account is
	 * refused all the same, and leaves it unlocked */
	CHECK_INT(unlock(&v, &r, bad), 401);
	CHECK(engine_is_unlocked(v.engine, r.account_id));
	CHECK_INT(unlock(&v, &r, r.dk), 200);
	CHECK_INT(unlock(&v, &r, r.dk), 200); /* already unlocked: checked, not kept twice */
	CHECK_INT(engine_unlocked_count(v.engine), 1);
	/* a 31-byte key */
	struct secret *k31 = secret_random(31);
	CHECK_INT(unlock(&v, &r, k31), 400);
	secret_free(&k31);
	secret_free(&bad);
	/* unknown token */
	uint8_t t[DEVTOKEN_LEN] = {0};
	struct engine_result res;
	engine_unlock(v.engine, t, sizeof(t), secret_random(HK_KEY_LEN), &res);
	CHECK_INT(res.status, 401);
out:
	secret_free(&r.dk);
	env_close(&v);
}

static void test_wipe_and_delete(void)
{
	struct env v;
	struct reg a = {0}, b = {0};
	if (!env_open(&v, "wipe.db") || !store_account(&v, "dave", &a) ||
	    !store_account(&v, "erin", &b))
		goto out;
	CHECK_INT(unlock(&v, &a, a.dk), 200);
	struct engine_result res;
	engine_admin_wipe(v.engine, a.account_id, &res);
	CHECK_INT(res.status, 200);
	CHECK(!engine_is_unlocked(v.engine, a.account_id));
	CHECK_INT(unlock(&v, &a, a.dk), 403);
	engine_touch(v.engine, a.token, sizeof(a.token), &res);
	CHECK_INT(res.status, 403);
	CHECK_STR(res.type, "urn:halfkey:wiped");
	engine_admin_wipe(v.engine, "nosuchaccount", &res);
	CHECK_INT(res.status, 404);

	CHECK_INT(unlock(&v, &b, b.dk), 200);
	engine_delete(v.engine, b.token, sizeof(b.token), &res);
	CHECK_INT(res.status, 204);
	CHECK(!engine_is_unlocked(v.engine, b.account_id));
	struct store_account acct;
	const char *err;
	CHECK_INT(store_account_get(v.store, b.account_id, &acct, &err), HK_ERR_NOT_FOUND);
	engine_touch(v.engine, b.token, sizeof(b.token), &res);
	CHECK_INT(res.status, 401);
out:
	secret_free(&a.dk);
	secret_free(&b.dk);
	env_close(&v);
}

static void test_block_rule_at_unlock(void)
{
	struct env v;
	struct reg r = {0};
	if (!env_open(&v, "block.db") || !store_account(&v, "frank@blocked.example", &r))
		goto out;
	struct store_block_rule rule = {.kind = STORE_BLOCK_DOMAIN};
	snprintf(rule.pattern, sizeof(rule.pattern), "blocked.example");
	const char *err;
	REQUIRE(store_block_add(v.store, &rule, NULL, &err) == 0);
	CHECK_INT(unlock(&v, &r, r.dk), 403);
	CHECK(!engine_is_unlocked(v.engine, r.account_id));
out:
	secret_free(&r.dk);
	env_close(&v);
}

/* ---- against a real server ---- */

struct reg_outcome {
	bool done;
	struct engine_result res;
	uint8_t device_key[HK_KEY_LEN]; /* kept by the test, as the device does */
};

static void on_registered(const struct engine_result *res, void *ctx)
{
	struct reg_outcome *o = ctx;
	o->res = *res;
	o->done = true;
}

static bool live(void)
{
	const char *u = getenv("HALFKEY_TEST_EAS_URL");
	if (u == NULL || *u == '\0') {
		test_skip("HALFKEY_TEST_EAS_URL not set: live registration not run");
		return false;
	}
	return true;
}

static int do_register(struct env *v, const char *password, const char *device_id,
		       struct reg_outcome *o)
{
	struct engine_register_req req = {0};
	snprintf(req.server_url, sizeof(req.server_url), "%s", getenv("HALFKEY_TEST_EAS_URL"));
	snprintf(req.username, sizeof(req.username), "%s", getenv("HALFKEY_TEST_USER_A"));
	snprintf(req.device_id, sizeof(req.device_id), "%s", device_id);
	snprintf(req.device_type, sizeof(req.device_type), "TestPhone");
	req.password = secret_dup(password, strlen(password));
	memset(o, 0, sizeof(*o));
	randombytes_buf(o->device_key, sizeof(o->device_key));
	req.device_key = secret_dup(o->device_key, sizeof(o->device_key));
	int ret = engine_register(v->engine, &req, on_registered, o);
	for (int i = 0; i < 100000 && ret == 0 && !o->done; i++)
		event_base_loop(base, EVLOOP_ONCE);
	CHECK(req.password == NULL && req.device_key == NULL); /* taken by the engine */
	return o->done ? o->res.status : -1;
}

static void random_device_id(char out[25])
{
	uint8_t r[12];
	secmem_random(r, sizeof(r));
	sodium_bin2hex(out, 25, r, sizeof(r));
}

static void test_live_register(void)
{
	if (!live())
		return;
	struct env v;
	if (!env_open(&v, "live.db"))
		goto out;
	char dev[25];
	struct reg_outcome o;
	struct store_stats st;
	const char *err;
	/* wrong password: nothing stored, refusal audited */
	random_device_id(dev);
	CHECK_INT(do_register(&v, "wrong-password", dev, &o), 401);
	CHECK_STR(o.res.type, "urn:halfkey:mail-server-refused");
	REQUIRE(store_stats(v.store, &st, &err) == 0);
	CHECK_INT(st.accounts, 0);
	CHECK_INT(st.envelopes, 0);
	CHECK(st.audit >= 1);
	/* blocked by a rule: refused before the mail server is asked */
	struct store_block_rule rule = {.kind = STORE_BLOCK_DEVICE_TYPE};
	snprintf(rule.pattern, sizeof(rule.pattern), "TestPhone");
	int64_t rid;
	REQUIRE(store_block_add(v.store, &rule, &rid, &err) == 0);
	CHECK_INT(do_register(&v, getenv("HALFKEY_TEST_PASS_A"), dev, &o), 403);
	REQUIRE(store_block_remove(v.store, rid, &err) == 0);
	REQUIRE(store_stats(v.store, &st, &err) == 0);
	CHECK_INT(st.accounts, 0);
	/* the right password: stored, unlocked, token works */
	CHECK_INT(do_register(&v, getenv("HALFKEY_TEST_PASS_A"), dev, &o), 201);
	REQUIRE(store_stats(v.store, &st, &err) == 0);
	CHECK_INT(st.accounts, 1);
	CHECK_INT(st.envelopes, 1);
	CHECK(engine_is_unlocked(v.engine, o.res.account_id));
	uint8_t token[64];
	size_t tlen = 0;
	REQUIRE(sodium_base642bin(token, sizeof(token), o.res.token, strlen(o.res.token), NULL,
				  &tlen, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0);
	struct engine_result res;
	engine_touch(v.engine, token, tlen, &res);
	CHECK_INT(res.status, 200);
	/* the same device again: conflict, nothing new stored */
	CHECK_INT(do_register(&v, getenv("HALFKEY_TEST_PASS_A"), dev, &o), 409);
	REQUIRE(store_stats(v.store, &st, &err) == 0);
	CHECK_INT(st.accounts, 1);
out:
	env_close(&v);
}

static void test_live_unreachable(void)
{
	struct env v;
	if (!env_open(&v, "unreach.db"))
		goto out;
	struct engine_register_req req = {0};
	snprintf(req.server_url, sizeof(req.server_url),
		 "https://127.0.0.1:9/Microsoft-Server-ActiveSync");
	snprintf(req.username, sizeof(req.username), "alice");
	snprintf(req.device_id, sizeof(req.device_id), "UNREACH1");
	snprintf(req.device_type, sizeof(req.device_type), "TestPhone");
	req.password = secret_dup("pw", 2);
	req.device_key = secret_random(HK_KEY_LEN);
	struct reg_outcome o = {0};
	REQUIRE(engine_register(v.engine, &req, on_registered, &o) == 0);
	for (int i = 0; i < 100000 && !o.done; i++)
		event_base_loop(base, EVLOOP_ONCE);
	CHECK_INT(o.res.status, 502);
	struct store_stats st;
	const char *err;
	REQUIRE(store_stats(v.store, &st, &err) == 0);
	CHECK_INT(st.accounts, 0);
	/* bad input never reaches the network */
	req.password = secret_dup("pw", 2);
	req.device_key = secret_random(31);
	memset(&o, 0, sizeof(o));
	REQUIRE(engine_register(v.engine, &req, on_registered, &o) == 0);
	CHECK(o.done);
	CHECK_INT(o.res.status, 400);
out:
	env_close(&v);
}

/* Runs the loop until cond() or about `seconds` of real time passed. */
static bool run_until(bool (*cond)(struct env *), struct env *v, int seconds)
{
	for (int i = 0; i < seconds * 10; i++) {
		if (cond(v))
			return true;
		struct timeval tv = {0, 100000};
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	return cond(v);
}

static int64_t items_now(struct env *v)
{
	struct store_stats st;
	const char *err;
	return store_stats(v->store, &st, &err) == 0 ? st.items : -1;
}

static int64_t items_before;
static bool has_items(struct env *v)
{
	return items_now(v) > items_before;
}

/* For run_until(): the initial sync is over, the cached item count has
 * not moved for ITEMS_STILL_MS (longer than one Sync window takes, also
 * under ASan). Set items_still_since to 0 before. */
#define ITEMS_STILL_MS 8000
static int64_t items_still_last, items_still_since;
static bool items_still(struct env *v)
{
	int64_t n = items_now(v), now = hk_clock_mono(hk_clock_real());
	if (items_still_since == 0 || n != items_still_last) {
		items_still_last = n;
		items_still_since = now;
	}
	return now - items_still_since >= ITEMS_STILL_MS;
}

static char live_account[STORE_ID_MAX];
static int64_t counter_before;
static bool counter_moved(struct env *v)
{
	struct store_account a;
	const char *err;
	return store_account_get(v->store, live_account, &a, &err) == 0 &&
	       a.change_counter > counter_before;
}

/* Lets the session settle into Ping, delivers one message to user A, and
 * waits for it to reach the sealed cache; exact: one new item and nothing
 * else (not while an initial sync may still be fetching the mailbox). */
static void deliver_and_await(struct env *v, const char *deliver, const char *what,
			      const char *dev, bool exact)
{
	struct timeval tv = {3, 0};
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	struct store_account a;
	const char *err;
	REQUIRE(store_account_get(v->store, live_account, &a, &err) == 0);
	counter_before = a.change_counter;
	int64_t items = items_now(v);
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "%s %s 'halfkey engine %s %s' >/dev/null", deliver,
		 getenv("HALFKEY_TEST_USER_A"), what, dev);
	CHECK(system(cmd) == 0);
	CHECK(run_until(counter_moved, v, 90)); /* Ping -> Sync -> sealed cache */
	if (exact)
		CHECK_INT(items_now(v), items + 1); /* the new message, not the mailbox again */
}

/* Register -> the sync engine fills the sealed cache; a message delivered
 * on the server reaches it through Ping; a flush stops the traffic. */
static void test_live_sync(void)
{
	if (!live())
		return;
	const char *deliver = getenv("HALFKEY_TEST_DELIVER");
	struct env v;
	if (!env_open_sync(&v, "livesync.db", true))
		goto out;
	char dev[25];
	random_device_id(dev);
	struct reg_outcome o;
	REQUIRE(do_register(&v, getenv("HALFKEY_TEST_PASS_A"), dev, &o) == 201);
	snprintf(live_account, sizeof(live_account), "%s", o.res.account_id);
	CHECK_INT(engine_syncing_count(v.engine), 1);
	items_before = 0;
	CHECK(run_until(has_items, &v, 120)); /* the initial sync starts */
	/* and ends (the mailbox may hold hundreds of messages: several
	 * windows), so that what comes later is the delivery alone */
	items_still_since = 0;
	CHECK(run_until(items_still, &v, 300));
	if (deliver != NULL && *deliver != '\0')
		deliver_and_await(&v, deliver, "live", dev, true);
	else
		test_skip("HALFKEY_TEST_DELIVER not set: push not checked");
	/* flush: the session stops and the secrets go */
	struct engine_result res;
	engine_admin_flush(v.engine, live_account, &res);
	CHECK_INT(res.status, 200);
	CHECK_INT(engine_syncing_count(v.engine), 0);
	CHECK_INT(httpc_active(http), 0); /* no traffic to the mail server */
	/* the device comes back: the flushed account unlocks and syncs again,
	 * from its stored sync keys */
	uint8_t token[64];
	size_t tlen = 0;
	REQUIRE(sodium_base642bin(token, sizeof(token), o.res.token, strlen(o.res.token), NULL,
				  &tlen, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0);
	engine_unlock(v.engine, token, tlen, secret_dup(o.device_key, sizeof(o.device_key)), &res);
	CHECK_INT(res.status, 200);
	CHECK_INT(engine_syncing_count(v.engine), 1);
	if (deliver != NULL && *deliver != '\0')
		deliver_and_await(&v, deliver, "after flush", dev, true);
	engine_admin_flush(v.engine, live_account, &res);
	CHECK_INT(engine_syncing_count(v.engine), 0);
	CHECK_INT(httpc_active(http), 0);
out:
	env_close(&v);
}

/* Registrations check credentials on their own client: over HTTP/2 each
 * check ends in a retire of its connections (the credential is wiped),
 * which must not reach the connections the syncing accounts' Pings wait
 * on. */
static void test_live_register_retires_apart(void)
{
	if (!live())
		return;
	env_h2_split = true;
	struct env v;
	bool ok = env_open(&v, "live-split.db");
	env_h2_split = false;
	if (!ok)
		goto out;
	struct httpc_stats s0, v0, s1, v1;
	httpc_get_stats(http, &s0);
	httpc_get_stats(verify_http, &v0);
	char dev[25];
	struct reg_outcome o;
	random_device_id(dev);
	CHECK_INT(do_register(&v, "wrong-password", dev, &o), 401);
	random_device_id(dev);
	CHECK_INT(do_register(&v, getenv("HALFKEY_TEST_PASS_A"), dev, &o), 201);
	for (int i = 0; i < 100; i++) /* the retires run from the loop */
		event_base_loop(base, EVLOOP_NONBLOCK);
	httpc_get_stats(http, &s1);
	httpc_get_stats(verify_http, &v1);
	CHECK_INT(s1.retires, s0.retires); /* the sync client's connections stay */
	/* each check retired the verifier's connections, unless the server
	 * spoke HTTP/1.1 only (then nothing needs retiring) */
	if (v1.retires == v0.retires)
		test_skip("the mail server did not answer over HTTP/2: no retire to route");
	else
		CHECK_INT(v1.retires, v0.retires + 2);
out:
	env_close(&v);
}

TESTS(TEST(test_unlock_and_flush_after_three_days), TEST(test_sync_cap), TEST(test_weekly_purge),
      TEST(test_bad_keys_back_off), TEST(test_wipe_and_delete), TEST(test_block_rule_at_unlock),
      TEST(test_live_unreachable), TEST(test_live_register),
      TEST(test_live_register_retires_apart), TEST(test_live_sync));
