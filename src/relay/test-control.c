/* The control socket with a real store, master keyring and engine (no
 * network): every command's answers and refusals, hostile input, the
 * socket file's safety, peer credentials, limits, and the halfkeyctl
 * binary's output and exit codes.
 *
 * The server runs on its event loop in a second thread while the test
 * thread talks to it through the blocking client, as halfkeyctl does. The
 * test touches the engine, store and clock only while that thread is
 * stopped (env_stop/env_start), so nothing is shared while it runs. */
#include "crypto/devtoken.h"
#include "crypto/wipealloc.h"
#include "engine/account.h"
#include "relay/control-client.h"
#include "relay/control.h"
#include "relay/engine.h"
#include "test.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define T0 INT64_C(1800000000000)
#define FLUSH_AFTER (3 * HK_MS_PER_DAY)

#ifndef HK_HALFKEYCTL
#define HK_HALFKEYCTL "halfkeyctl"
#endif

static struct event_base *base;
static struct httpc *http;

void test_setup(void)
{
	if (secmem_init() < 0)
		abort();
	control_json_init();
	control_json_init(); /* idempotent */
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	if (base == NULL || httpc_new(base, &http) < 0)
		abort();
}

struct env {
	struct store *store;
	struct masterkey *mk;
	struct hk_clock clock;
	struct engine *engine;
	struct control *ctl;
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	/* the loop thread */
	pthread_t thread;
	bool running;
	int stop_pipe[2];
	struct event *stop_ev;
};

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	event_base_loopbreak(base);
}

static void *loop_main(void *arg)
{
	(void)arg;
	event_base_dispatch(base);
	return NULL;
}

static void env_start(struct env *v)
{
	if (v->running)
		return;
	if (pipe2(v->stop_pipe, O_CLOEXEC) < 0)
		abort();
	v->stop_ev = event_new(base, v->stop_pipe[0], EV_READ, on_stop, NULL);
	if (v->stop_ev == NULL || event_add(v->stop_ev, NULL) < 0 ||
	    pthread_create(&v->thread, NULL, loop_main, NULL) != 0)
		abort();
	v->running = true;
}

static void env_stop(struct env *v)
{
	if (!v->running)
		return;
	if (write(v->stop_pipe[1], "x", 1) != 1)
		abort();
	pthread_join(v->thread, NULL);
	event_free(v->stop_ev);
	v->stop_ev = NULL;
	close(v->stop_pipe[0]);
	close(v->stop_pipe[1]);
	v->running = false;
}

static bool env_open_opts(struct env *v, const char *name, int64_t idle_timeout_ms)
{
	memset(v, 0, sizeof(*v));
	hk_clock_test_init(&v->clock, T0);
	char db[300], keys[310];
	snprintf(db, sizeof(db), "%s.db", test_path(name));
	snprintf(keys, sizeof(keys), "%s.keys", test_path(name));
	snprintf(v->sock, sizeof(v->sock), "%s.sock", test_path(name));
	const char *err;
	if (!CHECK(masterkey_load_or_create(keys, &v->mk, &err) == 0) ||
	    !CHECK(store_open(&store_driver_sqlite, db, &v->store, &err) == 0))
		return false;
	struct engine_config cfg = {
		.store = v->store,
		.mk = v->mk,
		.clock = &v->clock,
		.http = http,
		.flush_after_ms = FLUSH_AFTER,
		.purge_every_ms = 7 * HK_MS_PER_DAY,
		.eas_timeout_ms = 30000,
	};
	if (!CHECK(engine_new(&cfg, &v->engine) == 0))
		return false;
	struct control_ctx ctx = {
		.engine = v->engine,
		.store = v->store,
		.clock = &v->clock,
		.flush_after_ms = FLUSH_AFTER,
		.started_ms = T0,
		.idle_timeout_ms = idle_timeout_ms,
	};
	int ret = control_new(base, v->sock, &ctx, &v->ctl, &err);
	if (!CHECK_INT(ret, 0)) {
		fprintf(stderr, "  control_new: %s\n", err);
		return false;
	}
	env_start(v);
	return true;
}

static bool env_open(struct env *v, const char *name)
{
	return env_open_opts(v, name, 0);
}

static void env_close(struct env *v)
{
	env_stop(v);
	control_free(&v->ctl);
	engine_free(&v->engine);
	store_close(&v->store);
	masterkey_free(&v->mk);
}

/* An account put in directly (as if the mail server had accepted it). */
struct reg {
	uint8_t token[DEVTOKEN_LEN];
	char account_id[STORE_ID_MAX];
};

static bool add_account(struct env *v, const char *user, struct reg *r)
{
	bool was_running = v->running;
	env_stop(v);
	struct secret *pw = secret_dup("pw-1234", 7);
	struct secret *dk = secret_random(HK_KEY_LEN);
	char dev[64];
	snprintf(dev, sizeof(dev), "DEV%s", user);
	struct account_register_req req = {
		.server_url = "https://mail.example/Microsoft-Server-ActiveSync",
		.username = user,
		.password = pw,
		.device_key = dk,
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
	/* unlock it, so the engine holds it */
	struct engine_result er;
	engine_unlock(v->engine, r->token, sizeof(r->token), dk, &er);
	if (was_running)
		env_start(v);
	return CHECK(ret == 0) && CHECK_INT(er.status, 200);
}

/* ---- talking to the server ------------------------------------------ */

static struct control_client *dial(struct env *v)
{
	struct control_client *c = NULL;
	const char *err;
	if (!CHECK(control_client_connect(v->sock, &c, &err) == 0)) {
		fprintf(stderr, "  connect: %s\n", err);
		return NULL;
	}
	control_client_set_timeout(c, 10000);
	return c;
}

/* One request (json_pack format) on a connection; the answer or NULL. */
static json_t *vcall(struct control_client *c, const char *fmt, va_list ap)
{
	json_error_t jerr;
	json_t *req = json_vpack_ex(&jerr, 0, fmt, ap);
	if (!CHECK(req != NULL))
		return NULL;
	json_t *ans = NULL;
	const char *err;
	if (!CHECK(control_client_call(c, req, &ans, NULL, &err) == 0))
		fprintf(stderr, "  call: %s\n", err);
	json_decref(req);
	return ans;
}

static json_t *call_on(struct control_client *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	json_t *ans = vcall(c, fmt, ap);
	va_end(ap);
	return ans;
}

/* One request on its own connection. */
static json_t *ask(struct env *v, const char *fmt, ...)
{
	struct control_client *c = dial(v);
	if (c == NULL)
		return NULL;
	va_list ap;
	va_start(ap, fmt);
	json_t *ans = vcall(c, fmt, ap);
	va_end(ap);
	control_client_close(&c);
	return ans;
}

static bool is_ok(const json_t *ans)
{
	return ans != NULL && json_is_true(json_object_get(ans, "ok"));
}

/* True when ans is {"ok":false,"error":...} and the error contains want. */
static bool is_error(const json_t *ans, const char *want)
{
	if (ans == NULL || !json_is_false(json_object_get(ans, "ok")))
		return false;
	const char *e = json_string_value(json_object_get(ans, "error"));
	if (e == NULL || strstr(e, want) == NULL) {
		fprintf(stderr, "  error was: %s (wanted \"%s\")\n", e ? e : "(none)", want);
		return false;
	}
	return true;
}

static const char *sget(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static long long iget(const json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

/* The entry of arr whose "id" is id. */
static json_t *find_id(json_t *arr, const char *id)
{
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e)
	{
		const char *s = sget(e, "id");
		if (s != NULL && strcmp(s, id) == 0)
			return e;
	}
	return NULL;
}

/* ---- the socket file ------------------------------------------------ */

static void test_socket_file(void)
{
	struct env v;
	const char *err;
	if (!env_open(&v, "sock"))
		goto out;
	struct stat st;
	REQUIRE(lstat(v.sock, &st) == 0);
	CHECK(S_ISSOCK(st.st_mode));
	CHECK_INT(st.st_mode & 07777, 0600);
	CHECK_INT(st.st_uid, geteuid());

	struct control_ctx ctx = {.engine = v.engine,
				  .store = v.store,
				  .clock = &v.clock,
				  .flush_after_ms = FLUSH_AFTER};
	struct control *other = NULL;
	/* a live socket is not taken over */
	CHECK_INT(control_new(base, v.sock, &ctx, &other, &err), HK_ERR_BUSY);
	CHECK(strstr(err, "in use") != NULL);
	CHECK(lstat(v.sock, &st) == 0 && S_ISSOCK(st.st_mode));
	/* a file that is not a socket is never replaced */
	const char *file = test_path("not-a-socket");
	int fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	REQUIRE(fd >= 0);
	close(fd);
	CHECK_INT(control_new(base, file, &ctx, &other, &err), HK_ERR_EXISTS);
	CHECK(lstat(file, &st) == 0 && S_ISREG(st.st_mode));
	/* a world-writable directory is refused */
	const char *wdir = test_path("ww");
	REQUIRE(mkdir(wdir, 0700) == 0 && chmod(wdir, 0777) == 0);
	char wsock[300];
	snprintf(wsock, sizeof(wsock), "%s/c.sock", wdir);
	CHECK_INT(control_new(base, wsock, &ctx, &other, &err), HK_ERR_PERM);
	CHECK(strstr(err, "world-writable") != NULL);
	CHECK(lstat(wsock, &st) < 0);
	/* a missing directory, a relative path, a path too long */
	CHECK_INT(control_new(base, "/nonexistent-dir/c.sock", &ctx, &other, &err), HK_ERR_IO);
	CHECK_INT(control_new(base, "c.sock", &ctx, &other, &err), HK_ERR_INVAL);
	char lng[200];
	memset(lng, 'a', sizeof(lng) - 1);
	lng[0] = '/';
	lng[sizeof(lng) - 1] = '\0';
	CHECK_INT(control_new(base, lng, &ctx, &other, &err), HK_ERR_INVAL);
	CHECK(other == NULL);

	/* a stale socket (its owner died) is replaced */
	const char *stale = test_path("stale.sock");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", stale);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(fd >= 0);
	REQUIRE(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	close(fd);
	REQUIRE(chmod(stale, 0644) == 0);
	REQUIRE(lstat(stale, &st) == 0 && S_ISSOCK(st.st_mode));
	env_stop(&v);
	int ret = control_new(base, stale, &ctx, &other, &err);
	CHECK_INT(ret, 0);
	struct stat st2;
	CHECK(lstat(stale, &st2) == 0 && S_ISSOCK(st2.st_mode) && (st2.st_mode & 07777) == 0600);
	control_free(&other);
	CHECK(other == NULL);
	CHECK(lstat(stale, &st2) < 0 && errno == ENOENT); /* removed on free */
	control_free(&other);				  /* NULL-safe */

	/* incomplete context */
	struct control_ctx bad = ctx;
	bad.engine = NULL;
	CHECK_INT(control_new(base, stale, &bad, &other, &err), HK_ERR_INVAL);
	env_start(&v);
out:
	env_close(&v);
	struct stat gone;
	CHECK(lstat(v.sock, &gone) < 0); /* control_free removed it */
}

/* ---- commands ------------------------------------------------------- */

static void test_accounts_and_account(void)
{
	struct env v;
	struct reg alice = {0}, bob = {0};
	json_t *ans = NULL;
	if (!env_open(&v, "acc") || !add_account(&v, "alice", &alice) ||
	    !add_account(&v, "bob@example.org", &bob))
		goto out;
	/* bob is flushed, so only alice is unlocked */
	env_stop(&v);
	hk_clock_test_advance(&v.clock, 1000);
	struct engine_result er;
	engine_admin_flush(v.engine, bob.account_id, &er);
	CHECK_INT(er.status, 200);
	env_start(&v);

	ans = ask(&v, "{s:s}", "cmd", "accounts");
	REQUIRE(is_ok(ans));
	json_t *list = json_object_get(ans, "accounts");
	CHECK_INT(json_array_size(list), 2);
	CHECK(json_object_get(ans, "next") == NULL);
	json_t *a = find_id(list, alice.account_id), *b = find_id(list, bob.account_id);
	REQUIRE(a != NULL && b != NULL);
	CHECK_STR(sget(a, "username"), "alice");
	CHECK_STR(sget(a, "server"), "https://mail.example/Microsoft-Server-ActiveSync");
	CHECK_STR(sget(a, "state"), "active");
	CHECK(json_is_true(json_object_get(a, "unlocked")));
	CHECK_INT(iget(a, "devices"), 1);
	CHECK_INT(iget(a, "last_activity_ms"), T0);
	CHECK_INT(iget(a, "next_flush_ms"), T0 + FLUSH_AFTER);
	CHECK(json_is_null(json_object_get(a, "email")));
	CHECK(json_is_null(json_object_get(a, "flushed_ms")));
	CHECK_STR(sget(b, "state"), "flushed");
	CHECK(json_is_false(json_object_get(b, "unlocked")));
	CHECK(json_is_null(json_object_get(b, "next_flush_ms")));
	CHECK_INT(iget(b, "flushed_ms"), T0 + 1000);
	json_decref(ans);

	/* paging */
	ans = ask(&v, "{s:s,s:i}", "cmd", "accounts", "limit", 1);
	REQUIRE(is_ok(ans));
	CHECK_INT(json_array_size(json_object_get(ans, "accounts")), 1);
	char next[STORE_ID_MAX];
	REQUIRE(sget(ans, "next") != NULL);
	snprintf(next, sizeof(next), "%s", sget(ans, "next"));
	json_decref(ans);
	ans = ask(&v, "{s:s,s:s,s:i}", "cmd", "accounts", "after", next, "limit", 1);
	REQUIRE(is_ok(ans));
	list = json_object_get(ans, "accounts");
	CHECK_INT(json_array_size(list), 1);
	CHECK(strcmp(sget(json_array_get(list, 0), "id"), next) > 0);
	json_decref(ans);
	ans = ask(&v, "{s:s,s:i}", "cmd", "accounts", "limit", 0);
	CHECK(is_error(ans, "\"limit\" must be between 1 and 1000"));
	json_decref(ans);
	ans = ask(&v, "{s:s,s:s}", "cmd", "accounts", "limit", "5");
	CHECK(is_error(ans, "must be an integer"));
	json_decref(ans);

	/* one account with its devices */
	ans = ask(&v, "{s:s,s:s}", "cmd", "account", "id", alice.account_id);
	REQUIRE(is_ok(ans));
	CHECK_STR(sget(json_object_get(ans, "account"), "id"), alice.account_id);
	list = json_object_get(ans, "devices");
	REQUIRE(json_array_size(list) == 1);
	json_t *d = json_array_get(list, 0);
	CHECK_STR(sget(d, "eas_device_id"), "DEValice");
	CHECK_STR(sget(d, "device_type"), "iPhone");
	CHECK_STR(sget(d, "user_agent"), "Test/1");
	CHECK(sget(d, "id") != NULL);
	CHECK(json_is_false(json_object_get(d, "tombstoned")));
	CHECK(json_is_null(json_object_get(d, "tombstoned_ms")));
	CHECK_INT(iget(d, "last_seen_ms"), T0);
	json_decref(ans);
	ans = ask(&v, "{s:s,s:s}", "cmd", "account", "id", "anosuchaccount");
	CHECK(is_error(ans, "no such account"));
	json_decref(ans);
	ans = ask(&v, "{s:s}", "cmd", "account");
	CHECK(is_error(ans, "missing argument \"id\""));
	json_decref(ans);
	ans = ask(&v, "{s:s,s:i}", "cmd", "account", "id", 7);
	CHECK(is_error(ans, "must be a string"));
	json_decref(ans);
	ans = ask(&v, "{s:s,s:s}", "cmd", "account", "id", "");
	CHECK(is_error(ans, "must not be empty"));
	json_decref(ans);
	char longid[STORE_ID_MAX + 8];
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	ans = ask(&v, "{s:s,s:s}", "cmd", "account", "id", longid);
	CHECK(is_error(ans, "too long"));
	json_decref(ans);
	ans = NULL;
out:
	json_decref(ans);
	env_close(&v);
}

static void test_wipe_flush_purge(void)
{
	struct env v;
	struct reg alice = {0}, bob = {0};
	json_t *ans = NULL;
	if (!env_open(&v, "wfp") || !add_account(&v, "alice", &alice) ||
	    !add_account(&v, "bob", &bob))
		goto out;

	/* flush: unlocked -> flushed; then nothing to flush; unknown account */
	ans = ask(&v, "{s:s,s:s}", "cmd", "flush", "id", alice.account_id);
	CHECK(is_ok(ans));
	CHECK_STR(sget(ans, "detail"), "flushed");
	CHECK_STR(sget(ans, "account"), alice.account_id);
	json_decref(ans);
	ans = ask(&v, "{s:s,s:s}", "cmd", "account", "id", alice.account_id);
	CHECK_STR(sget(json_object_get(ans, "account"), "state"), "flushed");
	CHECK(json_is_false(json_object_get(json_object_get(ans, "account"), "unlocked")));
	json_decref(ans);
	ans = ask(&v, "{s:s,s:s}", "cmd", "flush", "id", alice.account_id);
	CHECK(is_error(ans, "not unlocked"));
	json_decref(ans);
	ans = ask(&v, "{s:s,s:s}", "cmd", "flush", "id", "anosuchaccount");
	CHECK(is_error(ans, "no such account"));
	json_decref(ans);
	ans = ask(&v, "{s:s}", "cmd", "flush");
	CHECK(is_error(ans, "missing argument"));
	json_decref(ans);

	/* wipe: devices tombstoned, state wiped, no longer unlocked */
	ans = ask(&v, "{s:s,s:s}", "cmd", "wipe", "id", bob.account_id);
	CHECK(is_ok(ans));
	CHECK_STR(sget(ans, "detail"), "wiped");
	json_decref(ans);
	ans = ask(&v, "{s:s,s:s}", "cmd", "account", "id", bob.account_id);
	REQUIRE(is_ok(ans));
	json_t *acct = json_object_get(ans, "account");
	CHECK_STR(sget(acct, "state"), "wiped");
	CHECK(json_is_false(json_object_get(acct, "unlocked")));
	json_t *d = json_array_get(json_object_get(ans, "devices"), 0);
	CHECK(json_is_true(json_object_get(d, "tombstoned")));
	CHECK_INT(iget(d, "tombstoned_ms"), T0);
	json_decref(ans);
	ans = ask(&v, "{s:s,s:s}", "cmd", "wipe", "id", "anosuchaccount");
	CHECK(is_error(ans, "no such account"));
	json_decref(ans);
	ans = ask(&v, "{s:s}", "cmd", "wipe");
	CHECK(is_error(ans, "missing argument"));
	json_decref(ans);
	/* the device learns of the wipe */
	env_stop(&v);
	struct engine_result er;
	engine_touch(v.engine, bob.token, sizeof(bob.token), &er);
	CHECK_INT(er.status, 403);
	env_start(&v);

	/* purge: nothing yet; four days later the flushed account goes, the
	 * wiped one stays (its tombstones must reach the device) */
	ans = ask(&v, "{s:s}", "cmd", "purge");
	CHECK(is_ok(ans));
	CHECK_STR(sget(ans, "detail"), "0 account(s) purged");
	json_decref(ans);
	env_stop(&v);
	hk_clock_test_advance(&v.clock, 4 * HK_MS_PER_DAY);
	env_start(&v);
	ans = ask(&v, "{s:s}", "cmd", "purge");
	CHECK(is_ok(ans));
	CHECK_STR(sget(ans, "detail"), "1 account(s) purged");
	json_decref(ans);
	ans = ask(&v, "{s:s}", "cmd", "accounts");
	REQUIRE(is_ok(ans));
	CHECK_INT(json_array_size(json_object_get(ans, "accounts")), 1);
	CHECK(find_id(json_object_get(ans, "accounts"), bob.account_id) != NULL);
	json_decref(ans);
	ans = ask(&v, "{s:s,s:i}", "cmd", "purge", "id", 1);
	CHECK(is_error(ans, "unknown argument \"id\" for purge"));
	json_decref(ans);
	ans = NULL;
out:
	json_decref(ans);
	env_close(&v);
}

static void test_block_rules(void)
{
	struct env v;
	struct reg carol = {0};
	json_t *ans = NULL;
	if (!env_open(&v, "block") || !add_account(&v, "carol@example.net", &carol))
		goto out;
	ans = ask(&v, "{s:s}", "cmd", "block-list");
	REQUIRE(is_ok(ans));
	CHECK_INT(json_array_size(json_object_get(ans, "rules")), 0);
	json_decref(ans);

	ans = ask(&v, "{s:s,s:s,s:s,s:s}", "cmd", "block-add", "kind", "domain", "pattern",
		  "example.net", "note", "ticket 42");
	REQUIRE(is_ok(ans));
	json_t *rule = json_object_get(ans, "rule");
	long long id = iget(rule, "id");
	CHECK(id > 0);
	CHECK_STR(sget(rule, "kind"), "domain");
	CHECK_STR(sget(rule, "pattern"), "example.net");
	CHECK_STR(sget(rule, "note"), "ticket 42");
	CHECK_INT(iget(rule, "created_ms"), T0);
	json_decref(ans);
	ans = ask(&v, "{s:s,s:s,s:s}", "cmd", "block-add", "kind", "device_type", "pattern",
		  "Android*");
	REQUIRE(is_ok(ans));
	CHECK(json_is_null(json_object_get(json_object_get(ans, "rule"), "note")));
	long long id2 = iget(json_object_get(ans, "rule"), "id");
	json_decref(ans);

	ans = ask(&v, "{s:s}", "cmd", "block-list");
	REQUIRE(is_ok(ans));
	json_t *rules = json_object_get(ans, "rules");
	REQUIRE(json_array_size(rules) == 2);
	CHECK_INT(iget(json_array_get(rules, 0), "id"), id);
	CHECK_STR(sget(json_array_get(rules, 0), "pattern"), "example.net");
	CHECK_STR(sget(json_array_get(rules, 1), "kind"), "device_type");
	json_decref(ans);

	/* the rule takes effect at once: carol's device cannot unlock */
	env_stop(&v);
	struct engine_result er;
	engine_unlock(v.engine, carol.token, sizeof(carol.token), secret_random(HK_KEY_LEN), &er);
	CHECK_INT(er.status, 403);
	env_start(&v);

	/* refusals */
	ans = ask(&v, "{s:s,s:s,s:s}", "cmd", "block-add", "kind", "domain", "pattern",
		  "example.net");
	CHECK(is_error(ans, "exists already"));
	json_decref(ans);
	ans = ask(&v, "{s:s,s:s,s:s}", "cmd", "block-add", "kind", "planet", "pattern", "mars");
	CHECK(is_error(ans, "unknown block rule kind \"planet\""));
	json_decref(ans);
	ans = ask(&v, "{s:s,s:s}", "cmd", "block-add", "kind", "domain");
	CHECK(is_error(ans, "missing argument \"pattern\""));
	json_decref(ans);
	ans = ask(&v, "{s:s,s:s}", "cmd", "block-add", "pattern", "x");
	CHECK(is_error(ans, "missing argument \"kind\""));
	json_decref(ans);
	ans = ask(&v, "{s:s,s:s,s:s}", "cmd", "block-add", "kind", "domain", "pattern", "a\nb");
	CHECK(is_error(ans, "control character"));
	json_decref(ans);
	char big[STORE_NAME_MAX + 1];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ans = ask(&v, "{s:s,s:s,s:s}", "cmd", "block-add", "kind", "domain", "pattern", big);
	CHECK(is_error(ans, "too long"));
	json_decref(ans);

	/* remove */
	ans = ask(&v, "{s:s,s:I}", "cmd", "block-remove", "id", (json_int_t)id);
	CHECK(is_ok(ans));
	CHECK_INT(iget(ans, "id"), id);
	json_decref(ans);
	ans = ask(&v, "{s:s,s:I}", "cmd", "block-remove", "id", (json_int_t)id);
	CHECK(is_error(ans, "no such block rule"));
	json_decref(ans);
	ans = ask(&v, "{s:s,s:s}", "cmd", "block-remove", "id", "1");
	CHECK(is_error(ans, "must be an integer"));
	json_decref(ans);
	ans = ask(&v, "{s:s,s:i}", "cmd", "block-remove", "id", -3);
	CHECK(is_error(ans, "must be between 1"));
	json_decref(ans);
	ans = ask(&v, "{s:s}", "cmd", "block-remove");
	CHECK(is_error(ans, "missing argument \"id\""));
	json_decref(ans);
	ans = ask(&v, "{s:s,s:I}", "cmd", "block-remove", "id", (json_int_t)id2);
	CHECK(is_ok(ans));
	json_decref(ans);
	ans = ask(&v, "{s:s}", "cmd", "block-list");
	CHECK(is_ok(ans));
	CHECK_INT(json_array_size(json_object_get(ans, "rules")), 0);
	json_decref(ans);
	ans = NULL;
out:
	json_decref(ans);
	env_close(&v);
}

static void test_audit_and_stats(void)
{
	struct env v;
	struct reg a = {0}, b = {0};
	json_t *ans = NULL;
	if (!env_open(&v, "audit") || !add_account(&v, "dave", &a))
		goto out;
	env_stop(&v);
	hk_clock_test_advance(&v.clock, 60000);
	env_start(&v);
	if (!add_account(&v, "erin", &b))
		goto out;
	json_decref(ask(&v, "{s:s,s:s}", "cmd", "wipe", "id", a.account_id));

	/* all: register + unlock per account, then the wipe */
	ans = ask(&v, "{s:s}", "cmd", "audit");
	REQUIRE(is_ok(ans));
	json_t *list = json_object_get(ans, "entries");
	CHECK_INT(json_array_size(list), 5);
	json_t *e0 = json_array_get(list, 0);
	CHECK_STR(sget(e0, "event"), "register");
	CHECK_STR(sget(e0, "account"), a.account_id);
	CHECK_STR(sget(e0, "device"), "DEVdave");
	CHECK_INT(iget(e0, "time_ms"), T0);
	CHECK(iget(e0, "id") > 0);
	CHECK_STR(sget(json_array_get(list, 4), "event"), "wipe");
	json_decref(ans);
	/* one account; since; limit */
	ans = ask(&v, "{s:s,s:s}", "cmd", "audit", "account", b.account_id);
	REQUIRE(is_ok(ans));
	CHECK_INT(json_array_size(json_object_get(ans, "entries")), 2);
	json_decref(ans);
	ans = ask(&v, "{s:s,s:I}", "cmd", "audit", "since", (json_int_t)(T0 + 1));
	REQUIRE(is_ok(ans));
	CHECK_INT(json_array_size(json_object_get(ans, "entries")), 3);
	json_decref(ans);
	ans = ask(&v, "{s:s,s:i}", "cmd", "audit", "limit", 1);
	REQUIRE(is_ok(ans));
	CHECK_INT(json_array_size(json_object_get(ans, "entries")), 1);
	json_decref(ans);
	ans = ask(&v, "{s:s,s:i}", "cmd", "audit", "limit", 1001);
	CHECK(is_error(ans, "between 1 and 1000"));
	json_decref(ans);
	ans = ask(&v, "{s:s,s:i}", "cmd", "audit", "since", -1);
	CHECK(is_error(ans, "\"since\""));
	json_decref(ans);
	ans = ask(&v, "{s:s,s:s}", "cmd", "audit", "acount", "x");
	CHECK(is_error(ans, "unknown argument \"acount\""));
	json_decref(ans);

	/* stats */
	env_stop(&v);
	hk_clock_test_advance(&v.clock, 3600 * 1000);
	env_start(&v);
	ans = ask(&v, "{s:s}", "cmd", "stats");
	REQUIRE(is_ok(ans));
	json_t *s = json_object_get(ans, "stats");
	CHECK_INT(iget(s, "accounts"), 2);
	CHECK_INT(iget(s, "devices"), 2);
	CHECK_INT(iget(s, "envelopes"), 1); /* the wiped account's is gone */
	CHECK_INT(iget(s, "unlocked"), 1);
	CHECK_INT(iget(s, "syncing"), 0); /* this engine does not sync */
	CHECK_INT(iget(s, "sync_waiting"), 0);
	CHECK_INT(iget(s, "audit"), 5);
	CHECK_INT(iget(s, "block_rules"), 0);
	CHECK_INT(iget(s, "started_ms"), T0);
	CHECK_INT(iget(s, "uptime_ms"), 60000 + 3600 * 1000);
	CHECK_INT(iget(s, "flush_after_ms"), FLUSH_AFTER);
	CHECK(sget(s, "version") != NULL);
	json_decref(ans);
	ans = NULL;
out:
	json_decref(ans);
	env_close(&v);
}

/* Stored text that is not UTF-8 (a User-Agent is whatever the device
 * sent) still gives a valid answer. */
static void test_stored_text_not_utf8(void)
{
	struct env v;
	json_t *ans = NULL;
	if (!env_open(&v, "utf8"))
		goto out;
	env_stop(&v);
	struct secret *pw = secret_dup("pw", 2), *dk = secret_random(HK_KEY_LEN);
	struct account_register_req req = {
		.server_url = "https://mail.example/eas",
		.username = "zo\xc3",
		.password = pw,
		.device_key = dk,
		.eas_device_id = "DEVX",
		.device_type = "Phone\x1b[31m",
		.user_agent = "Bad\xff\xfeUA",
	};
	struct account_register_res res;
	const char *err;
	int ret = account_register(v.store, v.mk, &v.clock, &req, &res, NULL, &err);
	secret_free(&pw);
	secret_free(&dk);
	env_start(&v);
	REQUIRE(ret == 0);
	ans = ask(&v, "{s:s,s:s}", "cmd", "account", "id", res.account_id);
	REQUIRE(is_ok(ans));
	CHECK_STR(sget(json_object_get(ans, "account"), "username"), "zo?");
	json_t *d = json_array_get(json_object_get(ans, "devices"), 0);
	CHECK_STR(sget(d, "user_agent"), "Bad??UA");
	CHECK_STR(sget(d, "device_type"), "Phone\x1b[31m"); /* JSON escapes it */
	json_decref(ans);
	ans = ask(&v, "{s:s}", "cmd", "accounts");
	CHECK(is_ok(ans));
out:
	json_decref(ans);
	env_close(&v);
}

/* ---- hostile and odd input ------------------------------------------ */

static char *raw(struct control_client *c, const char *text, size_t len)
{
	const char *err;
	char *line = NULL;
	if (!CHECK(control_client_send(c, text, len, &err) == 0) ||
	    !CHECK(control_client_read_line(c, &line, &err) == 0)) {
		fprintf(stderr, "  raw: %s\n", err);
		return NULL;
	}
	return line;
}

/* Sends text, expects one error answer containing want. */
static bool raw_error(struct control_client *c, const char *text, size_t len, const char *want)
{
	char *line = raw(c, text, len);
	json_t *ans = line != NULL ? json_loads(line, 0, NULL) : NULL;
	bool ok = CHECK(is_error(ans, want));
	json_decref(ans);
	free(line);
	return ok;
}

static bool still_serves(struct control_client *c)
{
	json_t *ans = call_on(c, "{s:s}", "cmd", "stats");
	bool ok = CHECK(is_ok(ans));
	json_decref(ans);
	return ok;
}

#define S(lit) lit, sizeof(lit) - 1

static void test_bad_input(void)
{
	struct env v;
	struct control_client *c = NULL;
	char *big = NULL;
	if (!env_open(&v, "bad") || (c = dial(&v)) == NULL)
		goto out;
	raw_error(c, S("{\"cmd\":\n"), "malformed request");
	CHECK(still_serves(c));
	raw_error(c, S("not json at all\n"), "malformed request");
	raw_error(c, S("[1,2]\n"), "must be a JSON object");
	raw_error(c, S("\"stats\"\n"), "malformed request");
	raw_error(c, S("{}\n"), "missing \"cmd\"");
	raw_error(c, S("{\"cmd\":1}\n"), "\"cmd\" must be a string");
	raw_error(c, S("{\"cmd\":\"frobnicate\"}\n"), "unknown command \"frobnicate\"");
	raw_error(c, S("{\"cmd\":\"stats\",\"cmd\":\"purge\"}\n"), "duplicate");
	raw_error(c, S("{\"cmd\":\"stats\"} trailing\n"), "malformed request");
	raw_error(c, S("{\"cmd\":\"st\0ats\"}\n"), "malformed request");
	raw_error(c, S("{\"cmd\":\"stats\",\"x\":\"\\u0000\"}\n"), "malformed request");
	raw_error(c, S("{\"cmd\":\"audit\",\"since\":99999999999999999999999}\n"),
		  "malformed request");
	/* deep nesting parses (jansson bounds the depth) and is judged as usual */
	char deep[32 + 2 * 500];
	size_t dn = (size_t)snprintf(deep, sizeof(deep), "{\"cmd\":\"stats\",\"deep\":");
	for (int i = 0; i < 500; i++)
		deep[dn++] = '[';
	for (int i = 0; i < 500; i++)
		deep[dn++] = ']';
	memcpy(deep + dn, "}\n", 2);
	raw_error(c, deep, dn + 2, "unknown argument \"deep\"");
	/* deeper than jansson's limit (2048) */
	char *deeper = malloc(32 + 2 * 3000);
	REQUIRE(deeper != NULL);
	dn = (size_t)snprintf(deeper, 32, "{\"cmd\":\"stats\",\"deep\":");
	for (int i = 0; i < 3000; i++)
		deeper[dn++] = '[';
	for (int i = 0; i < 3000; i++)
		deeper[dn++] = ']';
	memcpy(deeper + dn, "}\n", 2);
	raw_error(c, deeper, dn + 2, "malformed request");
	free(deeper);
	raw_error(c, S("\xff\xfe{}\n"), "malformed request");
	CHECK(still_serves(c));

	/* blank lines are no requests; CRLF ends a line too; pipelined
	 * requests are answered in order */
	char *line = raw(c, S("\n\r\n{\"cmd\":\"block-list\"}\r\n{\"cmd\":\"purge\"}\n"));
	CHECK(line != NULL && strstr(line, "\"rules\"") != NULL);
	free(line);
	const char *err;
	line = NULL;
	CHECK(control_client_read_line(c, &line, &err) == 0);
	CHECK(line != NULL && strstr(line, "purged") != NULL);
	free(line);

	/* over-long lines: one error each, then service goes on */
	size_t n = CONTROL_LINE_MAX + 4096;
	big = malloc(n + 1);
	REQUIRE(big != NULL);
	memset(big, 'x', n);
	big[n] = '\n';
	raw_error(c, big, n + 1, "too long");
	CHECK(still_serves(c));
	/* valid JSON, too long: still only one answer */
	memcpy(big, "{\"cmd\":\"stats\",\"p\":\"", 20);
	memcpy(big + n - 2, "\"}", 2);
	raw_error(c, big, n + 1, "too long");
	CHECK(still_serves(c));
	/* exactly at the limit is fine (the unknown field is the only fault) */
	n = CONTROL_LINE_MAX;
	memset(big, 'x', n);
	memcpy(big, "{\"cmd\":\"stats\",\"p\":\"", 20);
	memcpy(big + n - 2, "\"}", 2);
	big[n] = '\n';
	raw_error(c, big, n + 1, "unknown argument \"p\"");
	/* a long line in pieces, then a normal request in the same write */
	n = 3 * CONTROL_LINE_MAX;
	free(big);
	big = malloc(n + 32);
	REQUIRE(big != NULL);
	memset(big, 'y', n);
	memcpy(big + n, "\n{\"cmd\":\"stats\"}\n", 17);
	line = raw(c, big, n + 17);
	CHECK(line != NULL && strstr(line, "too long") != NULL);
	free(line);
	line = NULL;
	CHECK(control_client_read_line(c, &line, &err) == 0);
	CHECK(line != NULL && strstr(line, "\"uptime_ms\"") != NULL);
	free(line);
	CHECK(still_serves(c));
	control_client_close(&c);

	/* a client that goes away mid-line or right after asking */
	c = dial(&v);
	REQUIRE(c != NULL);
	CHECK(control_client_send(c, S("{\"cmd\":\"sta"), &err) == 0);
	control_client_close(&c);
	c = dial(&v);
	REQUIRE(c != NULL);
	CHECK(control_client_send(c, S("{\"cmd\":\"accounts\"}\n{\"cmd\":\"stats\"}\n"), &err) ==
	      0);
	control_client_close(&c);

	/* half-close: the answers still come */
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", v.sock);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(fd >= 0);
	REQUIRE(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	static const char two[] = "{\"cmd\":\"stats\"}\n{\"cmd\":\"block-list\"}\n";
	CHECK(write(fd, two, sizeof(two) - 1) == (ssize_t)(sizeof(two) - 1));
	shutdown(fd, SHUT_WR);
	char buf[4096];
	size_t got = 0;
	for (;;) {
		ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	buf[got] = '\0';
	close(fd);
	CHECK(strstr(buf, "\"uptime_ms\"") != NULL);
	CHECK(strstr(buf, "\"rules\"") != NULL);

	c = dial(&v);
	REQUIRE(c != NULL);
	CHECK(still_serves(c));
out:
	free(big);
	control_client_close(&c);
	env_close(&v);
}

/* ---- limits --------------------------------------------------------- */

static void test_connection_limit(void)
{
	struct env v;
	struct control_client *cs[CONTROL_CONN_MAX + 1] = {0};
	if (!env_open(&v, "limit"))
		goto out;
	for (int i = 0; i < CONTROL_CONN_MAX; i++) {
		cs[i] = dial(&v);
		REQUIRE(cs[i] != NULL);
		REQUIRE(still_serves(cs[i])); /* accepted and served */
	}
	/* one too many: told so and closed */
	cs[CONTROL_CONN_MAX] = dial(&v);
	REQUIRE(cs[CONTROL_CONN_MAX] != NULL);
	const char *err;
	char *line = NULL;
	CHECK(control_client_read_line(cs[CONTROL_CONN_MAX], &line, &err) == 0);
	CHECK(line != NULL && strstr(line, "too many connections") != NULL);
	free(line);
	line = NULL;
	CHECK(control_client_read_line(cs[CONTROL_CONN_MAX], &line, &err) < 0);
	control_client_close(&cs[CONTROL_CONN_MAX]);
	/* the others still work; after one leaves there is room again */
	CHECK(still_serves(cs[3]));
	control_client_close(&cs[0]);
	bool served = false;
	for (int tries = 0; tries < 200 && !served; tries++) {
		struct control_client *c = dial(&v);
		REQUIRE(c != NULL);
		json_t *ans = NULL;
		json_t *req = json_pack("{s:s}", "cmd", "stats");
		if (control_client_call(c, req, &ans, NULL, &err) == 0)
			served = is_ok(ans);
		json_decref(req);
		json_decref(ans);
		control_client_close(&c);
		if (!served)
			usleep(10000);
	}
	CHECK(served);
	/* the server sees the last client go on its own time: look while it is
	 * stopped, never while it runs */
	unsigned open_now = 0;
	for (int tries = 0; tries < 200; tries++) {
		env_stop(&v);
		open_now = control_connection_count(v.ctl);
		env_start(&v);
		if (open_now == CONTROL_CONN_MAX - 1)
			break;
		usleep(10000);
	}
	CHECK_INT(open_now, CONTROL_CONN_MAX - 1);
out:
	for (int i = 0; i <= CONTROL_CONN_MAX; i++)
		control_client_close(&cs[i]);
	env_close(&v);
}

static void test_idle_timeout(void)
{
	struct env v;
	struct control_client *c = NULL;
	if (!env_open_opts(&v, "idle", 200) || (c = dial(&v)) == NULL)
		goto out;
	CHECK(still_serves(c));
	usleep(600 * 1000);
	const char *err;
	char *line = NULL;
	CHECK_INT(control_client_read_line(c, &line, &err), HK_ERR_IO);
	CHECK(strstr(err, "closed the connection") != NULL);
	free(line);
	control_client_close(&c);
	/* a silent client that never sends a full line goes too */
	c = dial(&v);
	REQUIRE(c != NULL);
	CHECK(control_client_send(c, S("{\"cmd\":"), &err) == 0);
	usleep(600 * 1000);
	CHECK_INT(control_client_read_line(c, &line, &err), HK_ERR_IO);
	env_stop(&v);
	CHECK_INT(control_connection_count(v.ctl), 0);
out:
	control_client_close(&c);
	env_close(&v);
}

/* ---- peer credentials ----------------------------------------------- */

/* In a child as uid/gid nobody: connects to path, asks for stats and
 * answers through the exit status: 0 refused by SO_PEERCRED, 10 connect
 * refused by the file mode (EACCES), else another failure. Raw system
 * calls only: the parent runs a second thread. */
static int as_nobody(const char *path)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
			_exit(20);
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		size_t n = strlen(path);
		if (n >= sizeof(sa.sun_path))
			_exit(21);
		memcpy(sa.sun_path, path, n + 1);
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			_exit(22);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			_exit(errno == EACCES ? 10 : 23);
		static const char req[] = "{\"cmd\":\"stats\"}\n";
		if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) < 0) {
			/* the server may have closed already; its answer is still readable */
		}
		char buf[512];
		size_t got = 0;
		while (got < sizeof(buf) - 1) {
			ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);
			if (r <= 0)
				break;
			got += (size_t)r;
			if (memchr(buf, '\n', got) != NULL)
				break;
		}
		buf[got] = '\0';
		if (strstr(buf, "\"ok\":false") != NULL &&
		    strstr(buf, "permission denied") != NULL && strstr(buf, "uptime") == NULL)
			_exit(0);
		_exit(24);
	}
	int status;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static void test_peer_credentials(void)
{
	if (geteuid() != 0)
		SKIP("needs root to run a client as another uid");
	/* let nobody reach the directory (the files in it keep their modes) */
	struct stat dst;
	REQUIRE(stat(test_tmpdir(), &dst) == 0);
	REQUIRE(chmod(test_tmpdir(), 0711) == 0);
	struct env v;
	if (!env_open(&v, "peer"))
		goto out;
	/* first barrier: the file mode */
	CHECK_INT(as_nobody(v.sock), 10);
	/* second barrier, with the mode opened up: the peer's uid */
	REQUIRE(chmod(v.sock, 0666) == 0);
	CHECK_INT(as_nobody(v.sock), 0);
	/* root itself still gets in */
	json_t *ans = ask(&v, "{s:s}", "cmd", "stats");
	CHECK(is_ok(ans));
	json_decref(ans);
out:
	env_close(&v);
	CHECK(chmod(test_tmpdir(), dst.st_mode & 07777) == 0);
}

/* ---- the halfkeyctl binary ------------------------------------------ */

/* Runs halfkeyctl with args (NULL-terminated) and env_sock as
 * HALFKEY_CONTROL_SOCKET (NULL: unset); stdout and stderr go to files.
 * Returns the exit status, or -1. */
static int run_ctl(const char *env_sock, const char *out, const char *errf, ...)
{
	const char *argv[16] = {"halfkeyctl"};
	size_t argc = 1;
	va_list ap;
	va_start(ap, errf);
	const char *a;
	while ((a = va_arg(ap, const char *)) != NULL && argc < 15)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	char envbuf[300];
	const char *envp[3] = {"PATH=/usr/bin:/bin", NULL, NULL};
	if (env_sock != NULL) {
		snprintf(envbuf, sizeof(envbuf), "%s=%s", CONTROL_SOCKET_ENV, env_sock);
		envp[1] = envbuf;
	}
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int o = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		int e = open(errf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (o < 0 || e < 0 || in < 0 || dup2(in, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
			_exit(126);
		/* execve takes non-const arrays for historical reasons */
		union {
			const char **c;
			char **m;
		} av = {.c = argv}, ev = {.c = envp};
		execve(HK_HALFKEYCTL, av.m, ev.m);
		_exit(127);
	}
	int status;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static bool has(const char *file, const char *needle)
{
	bool ok = test_file_count(file, needle, strlen(needle)) > 0;
	if (!ok)
		fprintf(stderr, "  \"%s\" not in %s\n", needle, file);
	return ok;
}

static size_t lines(const char *file)
{
	return test_file_count(file, "\n", 1);
}

static void test_halfkeyctl_binary(void)
{
	if (access(HK_HALFKEYCTL, X_OK) != 0)
		SKIP("%s not built", HK_HALFKEYCTL);
	struct env v;
	struct reg alice = {0}, bob = {0};
	if (!env_open(&v, "ctl") || !add_account(&v, "alice", &alice) ||
	    !add_account(&v, "bob", &bob))
		goto out;
	const char *o = test_path("ctl.out"), *e = test_path("ctl.err");
	const char *s = v.sock;

	/* the table */
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "accounts", NULL), 0);
	CHECK(has(o, "ACCOUNT  "));
	CHECK(has(o, "LAST ACTIVITY"));
	CHECK(has(o, "NEXT FLUSH"));
	CHECK(has(o, alice.account_id));
	CHECK(has(o, bob.account_id));
	CHECK(has(o, "2027-01-15T08:00:00Z")); /* T0 in UTC */
	CHECK(has(o, "2027-01-18T08:00:00Z")); /* three days on */
	CHECK_INT(lines(o), 3);
	CHECK_INT(lines(e), 0);
	/* pages: --limit gives one and says more follow */
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "accounts", "--limit", "1", NULL), 0);
	CHECK_INT(lines(o), 2);
	CHECK(has(e, "more accounts follow"));
	/* --json: the answer as is; the socket from the environment */
	CHECK_INT(run_ctl(s, o, e, "--json", "accounts", NULL), 0);
	CHECK(has(o, "{\"ok\":true,\"accounts\":["));
	CHECK(has(o, alice.account_id));
	CHECK_INT(lines(o), 1);
	CHECK_INT(run_ctl(s, o, e, "--json", "stats", NULL), 0);
	CHECK(has(o, "\"unlocked\":2"));
	CHECK_INT(run_ctl(NULL, o, e, "--socket", s, "stats", NULL), 0);
	CHECK(has(o, "uptime"));
	CHECK(has(o, "0d 00:00:00"));
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "account", alice.account_id, NULL), 0);
	CHECK(has(o, "DEValice"));
	CHECK(has(o, "EAS DEVICE ID"));
	CHECK(has(o, "Test/1"));

	/* actions */
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "wipe", bob.account_id, NULL), 0);
	CHECK(has(o, "wiped"));
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "account", bob.account_id, NULL), 0);
	CHECK(has(o, "wiped"));
	CHECK(has(o, "TOMBSTONED"));
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "flush", alice.account_id, NULL), 0);
	CHECK(has(o, "flushed"));
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "purge", NULL), 0);
	CHECK(has(o, "purged"));
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "block-add", "user_glob", "*@evil.example",
			  "spam wave", NULL),
		  0);
	CHECK(has(o, "block rule 1 added: user_glob *@evil.example"));
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "block-list", NULL), 0);
	CHECK(has(o, "*@evil.example"));
	CHECK(has(o, "spam wave"));
	CHECK(has(o, "PATTERN"));
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "block-add", "user_agent", "--", "--odd*", NULL), 0);
	CHECK(has(o, "block rule 2 added: user_agent --odd*"));
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "block-add", "user_agent", "--odd*", NULL), 2);
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "block-remove", "1", NULL), 0);
	CHECK(has(o, "block rule 1 removed"));
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "audit", "--since", "2027-01-15", "--limit", "50",
			  NULL),
		  0);
	CHECK(has(o, "register"));
	CHECK(has(o, "wipe"));
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "audit", "--account", bob.account_id, NULL), 0);
	CHECK(has(o, "DEVbob"));
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "audit", "--since", "2027-01-16T00:00:00Z", NULL),
		  0);
	CHECK(has(o, "no audit entries"));

	/* 1: the daemon refused */
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "account", "anosuchaccount", NULL), 1);
	CHECK(has(e, "halfkeyctl: no such account"));
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "block-add", "planet", "mars", NULL), 1);
	CHECK(has(e, "unknown block rule kind"));
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "--json", "block-remove", "99", NULL), 1);
	CHECK(has(o, "{\"ok\":false,\"error\":\"no such block rule: 99\"}"));
	CHECK(has(e, "no such block rule"));

	/* 2: usage */
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, NULL), 2);
	CHECK(has(e, "no command"));
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "frobnicate", NULL), 2);
	CHECK(has(e, "unknown command frobnicate"));
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "account", NULL), 2);
	CHECK(has(e, "missing id"));
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "account", "a", "b", NULL), 2);
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "block-remove", "abc", NULL), 2);
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "audit", "--limit", "0", NULL), 2);
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "audit", "--since", "yesterday", NULL), 2);
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "audit", "--since", NULL), 2);
	CHECK_INT(run_ctl(NULL, o, e, "-s", s, "accounts", "--bogus", "1", NULL), 2);
	CHECK_INT(run_ctl(NULL, o, e, "--frob", NULL), 2);
	CHECK_INT(run_ctl(NULL, o, e, "-s", NULL), 2);

	/* help documents every command */
	CHECK_INT(run_ctl(NULL, o, e, "--help", NULL), 0);
	static const char *const cmds[] = {"accounts", "account ID", "wipe ID", "flush ID",
					   "purge", "block-add KIND PATTERN [NOTE]", "block-list",
					   "block-remove RULE-ID", "audit [--since", "stats",
					   "--json", CONTROL_SOCKET_DEFAULT, CONTROL_SOCKET_ENV,
					   "user_glob", "user_agent", NULL};
	for (size_t i = 0; cmds[i] != NULL; i++)
		CHECK(has(o, cmds[i]));

	/* 3: nobody there */
	const char *nosock = test_path("nobody-home.sock");
	CHECK_INT(run_ctl(NULL, o, e, "-s", nosock, "stats", NULL), 3);
	CHECK(has(e, nosock));
	CHECK(has(e, "is halfkeyd running?"));
	CHECK_INT(run_ctl(nosock, o, e, "stats", NULL), 3);
	CHECK(has(e, nosock));
	/* the default path when nothing says otherwise (no daemon there in tests,
	 * unless a real one runs on this host) */
	struct stat st;
	if (stat(CONTROL_SOCKET_DEFAULT, &st) < 0) {
		CHECK_INT(run_ctl(NULL, o, e, "stats", NULL), 3);
		CHECK(has(e, CONTROL_SOCKET_DEFAULT));
	}
out:
	env_close(&v);
}

/* jansson allocates through the wiping allocator once control_json_init()
 * has run: a parsed string is zeroed when freed. */
static const char *seen_secret;
static size_t seen_count, freed_count;

static void free_hook(const void *block, size_t len)
{
	/* the block is wiped before the hook sees it: the marker is gone */
	freed_count++;
	if (memmem(block, len, seen_secret, strlen(seen_secret)) != NULL)
		seen_count++;
}

static void test_json_uses_wipealloc(void)
{
	size_t before = wipealloc_live_blocks();
	json_t *j = json_loads("{\"cmd\":\"marker-6a1f9e\"}", 0, NULL);
	REQUIRE(j != NULL);
	CHECK(wipealloc_live_blocks() > before);
	seen_secret = "marker-6a1f9e";
	seen_count = freed_count = 0;
	wipealloc_set_free_hook(free_hook);
	json_decref(j);
	wipealloc_set_free_hook(NULL);
	CHECK(freed_count >= 2); /* at least the object and the string */
	CHECK_INT(seen_count, 0);
	CHECK_INT(wipealloc_live_blocks(), before);
}

TESTS(TEST(test_json_uses_wipealloc), TEST(test_socket_file), TEST(test_accounts_and_account),
      TEST(test_wipe_flush_purge), TEST(test_block_rules), TEST(test_audit_and_stats),
      TEST(test_stored_text_not_utf8), TEST(test_bad_input), TEST(test_connection_limit),
      TEST(test_idle_timeout), TEST(test_peer_credentials), TEST(test_halfkeyctl_binary));
