/* The device API over real HTTPS: every route, bad input on each, limits,
 * slow clients; and, when HALFKEY_TEST_EAS_URL & co. are set, the whole
 * register -> unlock -> ping -> delete path against a real ActiveSync
 * server. The client is the project's own httpc, verifying the API's
 * certificate against a CA made for the test. */
#include "relay/api.h"
#include "relay/engine.h"
#include "tls-fixture.h"
#include "test.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static struct event_base *base;
static struct httpc *http;
static struct tfx_pki pki;
static struct store *store;
static struct masterkey *mk;
static struct engine *engine;
static struct api *api;
static SSL_CTX *ssl;
static struct hk_clock clock_;
static char base_url[64];

void test_setup(void)
{
	if (secmem_init() < 0 || api_init_allocators() < 0)
		abort();
	signal(SIGPIPE, SIG_IGN); /* as halfkeyd: a client gone mid-reply is not fatal */
	const char *err;
	base = event_base_new();
	if (base == NULL || httpc_new(base, &http) < 0 || tfx_pki_create(test_tmpdir(), &pki) < 0 ||
	    masterkey_load_or_create(test_path("mk"), &mk, &err) < 0 ||
	    store_open(&store_driver_sqlite, test_path("api.db"), &store, &err) < 0 ||
	    api_ssl_ctx_new(pki.cert_file, pki.key_file, false, &ssl, &err) < 0)
		abort();
	hk_clock_test_init(&clock_, INT64_C(1800000000000));
	const char *ca = getenv("HALFKEY_TEST_EAS_CA");
	struct engine_config ec = {
		.base = base, .store = store, .mk = mk, .clock = &clock_, .http = http,
		.ca_file = ca != NULL && *ca ? ca : NULL,
		.flush_after_ms = 3 * HK_MS_PER_DAY, .purge_every_ms = 7 * HK_MS_PER_DAY,
		.eas_timeout_ms = 30000,
		.heartbeat_s = 60, /* the minimum: a Ping holds a server worker */
	};
	struct api_config ac = {
		.base = base, .engine = NULL, .clock = &clock_, .ssl_ctx = ssl,
		.address = "127.0.0.1", .port = 0, .max_body = 4096, .max_headers = 4096,
		.timeout_s = 2, .register_per_minute = 1000, .requests_per_minute = 1000,
	};
	if (engine_new(&ec, &engine) < 0)
		abort();
	ac.engine = engine;
	if (api_start(&ac, &api, &err) < 0)
		abort();
	snprintf(base_url, sizeof(base_url), "https://127.0.0.1:%u", api_port(api));
}

static void teardown(void)
{
	engine_free(&engine);
	api_free(&api);
	httpc_free(&http);
	store_close(&store);
	masterkey_free(&mk);
	SSL_CTX_free(ssl);
	event_base_free(base);
}

struct reply {
	bool done;
	enum httpc_result result;
	long status;
	char content_type[64];
	json_t *json;
};

static void on_reply(const struct httpc_response *r, void *ctx)
{
	struct reply *o = ctx;
	o->done = true;
	o->result = r->result;
	o->status = r->status;
	const char *ct = httpc_header(r, "Content-Type");
	snprintf(o->content_type, sizeof(o->content_type), "%s", ct ? ct : "");
	json_error_t e;
	o->json = r->body_len > 0 ? json_loadb((const char *)r->body, r->body_len, 0, &e) : NULL;
}

/* One request to the API; body may be NULL; token (base64url) may be NULL. */
static long call(const char *method, const char *path, const char *body, const char *token,
		 struct reply *o)
{
	char url[256], auth[128];
	snprintf(url, sizeof(url), "%s%s", base_url, path);
	const char *headers[2] = {NULL, NULL};
	if (token != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		headers[0] = auth;
	}
	struct httpc_request req = {
		.method = method, .url = url, .headers = headers, .ca_file = pki.ca_file,
		.body = (const uint8_t *)body, .body_len = body ? strlen(body) : 0,
		.content_type = body ? "application/json" : NULL, .timeout_ms = 60000,
	};
	memset(o, 0, sizeof(*o));
	if (httpc_start(http, &req, on_reply, o, NULL) < 0)
		return -1;
	for (int i = 0; i < 1000000 && !o->done; i++)
		event_base_loop(base, EVLOOP_ONCE);
	return o->status;
}

static const char *jstr(const json_t *j, const char *key)
{
	return json_string_value(json_object_get(j, key));
}

static void expect_problem(const char *method, const char *path, const char *body,
			   const char *token, long status)
{
	struct reply o;
	long got = call(method, path, body, token, &o);
	if (got != status)
		fprintf(stderr, "  %s %s %s -> %ld (want %ld)\n", method, path, body ? body : "",
			got, status);
	CHECK_INT(got, status);
	CHECK_STR(o.content_type, "application/problem+json");
	CHECK(o.json != NULL && json_integer_value(json_object_get(o.json, "status")) == status);
	CHECK(o.json != NULL && jstr(o.json, "type") != NULL && jstr(o.json, "detail") != NULL);
	json_decref(o.json);
}

static void test_health_and_unknown_routes(void)
{
	struct reply o;
	CHECK_INT(call("GET", "/health", NULL, NULL, &o), 200);
	CHECK(o.json != NULL && strcmp(jstr(o.json, "status"), "ok") == 0);
	json_decref(o.json);
	expect_problem("GET", "/nope", NULL, NULL, 404);
	expect_problem("GET", "/register", NULL, NULL, 405);
	expect_problem("POST", "/account", "{}", NULL, 405);
}

static const char *good_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"; /* 32 bytes */

static void test_register_bad_input(void)
{
	char big[6000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	const char *bodies[] = {
		"", "not json", "[1,2,3]", "{\"username\": 5}",
		"{\"username\":\"a\",\"password\":\"p\",\"device_type\":\"t\",\"device_key\":\"AAAA\"}",
		/* 31-byte key */
		"{\"server\":\"https://x.example/eas\",\"username\":\"a\",\"password\":\"p\","
		"\"device_id\":\"D1\",\"device_type\":\"t\","
		"\"device_key\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg\"}",
		/* invalid base64 */
		"{\"server\":\"https://x.example/eas\",\"username\":\"a\",\"password\":\"p\","
		"\"device_id\":\"D1\",\"device_type\":\"t\",\"device_key\":\"!!!\"}",
		/* empty password */
		"{\"server\":\"https://x.example/eas\",\"username\":\"a\",\"password\":\"\","
		"\"device_id\":\"D1\",\"device_type\":\"t\",\"device_key\":\"AAAA\"}",
		/* device id with forbidden characters */
		"{\"server\":\"https://x.example/eas\",\"username\":\"a\",\"password\":\"p\","
		"\"device_id\":\"../x\",\"device_type\":\"t\","
		"\"device_key\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\"}",
		/* duplicate keys */
		"{\"username\":\"a\",\"username\":\"b\"}",
	};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
		expect_problem("POST", "/register", bodies[i], NULL, 400);
	/* a plain-http mail server is refused */
	char body[512];
	snprintf(body, sizeof(body),
		 "{\"server\":\"http://x.example/eas\",\"username\":\"a\",\"password\":\"p\","
		 "\"device_id\":\"D1\",\"device_type\":\"t\",\"device_key\":\"%s\"}",
		 good_key);
	expect_problem("POST", "/register", body, NULL, 403);
	/* oversize body: refused by the server, which keeps serving */
	struct reply o;
	CHECK_INT(call("POST", "/register", big, NULL, &o), 413);
	json_decref(o.json);
	CHECK_INT(call("GET", "/health", NULL, NULL, &o), 200);
	json_decref(o.json);
	struct store_stats st;
	const char *err;
	REQUIRE(store_stats(store, &st, &err) == 0);
	CHECK_INT(st.accounts, 0);
}

static void test_token_routes_bad_input(void)
{
	expect_problem("POST", "/unlock", "{}", NULL, 401);
	expect_problem("POST", "/ping", NULL, NULL, 401);
	expect_problem("DELETE", "/account", NULL, NULL, 401);
	expect_problem("POST", "/ping", NULL, "not*base64", 401);
	/* well-formed but unknown token */
	expect_problem("POST", "/ping", NULL, good_key, 401);
	char body[128];
	snprintf(body, sizeof(body), "{\"device_key\":\"%s\"}", good_key);
	expect_problem("POST", "/unlock", body, good_key, 401);
	expect_problem("POST", "/unlock", "{\"device_key\": 12}", good_key, 400);
	expect_problem("POST", "/unlock", "{", good_key, 400);
}

/* A client that sends half a request line and then nothing: the server
 * cuts it off after its timeout and keeps serving others meanwhile. */
static void test_slow_client(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	REQUIRE(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(api_port(api))};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	REQUIRE(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	REQUIRE(write(fd, "\x16\x03\x01", 3) == 3); /* the start of a TLS hello, then silence */
	struct reply o;
	CHECK_INT(call("GET", "/health", NULL, NULL, &o), 200); /* others are served */
	json_decref(o.json);
	/* wait past the 2 s timeout while running the loop */
	struct timeval tv = {3, 500000};
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	char c;
	ssize_t n = read(fd, &c, 1);
	CHECK(n <= 0); /* closed by the server */
	close(fd);
	CHECK_INT(call("GET", "/health", NULL, NULL, &o), 200);
	json_decref(o.json);
}

static int raw_connect(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static void run_ms(long ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

/* limits.max_connections: at the limit the API stops accepting (the next
 * client waits and times out), and serves again once one closes. */
static void test_max_connections(void)
{
	const char *err;
	struct api *lim = NULL;
	struct api_config ac = {
		.base = base, .engine = engine, .clock = &clock_, .ssl_ctx = ssl,
		.address = "127.0.0.1", .port = 0, .max_body = 4096, .max_headers = 4096,
		.timeout_s = 5, .register_per_minute = 1000, .requests_per_minute = 1000,
		.max_connections = 2,
	};
	REQUIRE(api_start(&ac, &lim, &err) == 0);
	uint16_t port = api_port(lim);
	char url[64];
	snprintf(url, sizeof(url), "https://127.0.0.1:%u/health", port);
	struct httpc_request req = {
		.method = "GET", .url = url, .ca_file = pki.ca_file, .timeout_ms = 1500,
	};
	int a = raw_connect(port), b = raw_connect(port);
	CHECK(a >= 0 && b >= 0);
	for (int i = 0; i < 200 && api_connections(lim) < 2; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	run_ms(100);
	CHECK_INT(api_connections(lim), 2);
	/* a third: accepted by the kernel, not by the server; no answer */
	struct reply o = {0};
	REQUIRE(httpc_start(http, &req, on_reply, &o, NULL) == 0);
	for (int i = 0; i < 1000000 && !o.done; i++)
		event_base_loop(base, EVLOOP_ONCE);
	CHECK_INT(o.result, HTTPC_TIMEOUT);
	CHECK_INT(api_connections(lim), 2);
	json_decref(o.json);
	/* the others are not held up: the main API still answers */
	CHECK_INT(call("GET", "/health", NULL, NULL, &o), 200);
	json_decref(o.json);
	/* one closes: served again */
	close(a);
	for (int i = 0; i < 2000 && api_connections(lim) > 1; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	run_ms(50);
	req.timeout_ms = 10000;
	memset(&o, 0, sizeof(o));
	REQUIRE(httpc_start(http, &req, on_reply, &o, NULL) == 0);
	for (int i = 0; i < 1000000 && !o.done; i++)
		event_base_loop(base, EVLOOP_ONCE);
	CHECK_INT(o.result, HTTPC_OK);
	CHECK_INT(o.status, 200);
	json_decref(o.json);
	close(b);
	api_free(&lim); /* with connections still open: nothing leaks */
}

static void test_live_register_unlock_delete(void)
{
	const char *url = getenv("HALFKEY_TEST_EAS_URL");
	if (url == NULL || *url == '\0')
		SKIP("HALFKEY_TEST_EAS_URL not set");
	char dev[25], key[64], body[1024];
	uint8_t r[12], k[32];
	secmem_random(r, sizeof(r));
	sodium_bin2hex(dev, sizeof(dev), r, sizeof(r));
	secmem_random(k, sizeof(k));
	sodium_bin2base64(key, sizeof(key), k, sizeof(k), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	/* the wrong password: 401, nothing stored */
	snprintf(body, sizeof(body),
		 "{\"server\":\"%s\",\"username\":\"%s\",\"password\":\"nope\",\"device_id\":\"%s\","
		 "\"device_type\":\"TestPhone\",\"device_key\":\"%s\"}",
		 url, getenv("HALFKEY_TEST_USER_A"), dev, key);
	expect_problem("POST", "/register", body, NULL, 401);
	struct store_stats st;
	const char *err;
	REQUIRE(store_stats(store, &st, &err) == 0);
	CHECK_INT(st.accounts, 0);
	/* the right one: 201 with a token */
	snprintf(body, sizeof(body),
		 "{\"server\":\"%s\",\"username\":\"%s\",\"password\":\"%s\",\"device_id\":\"%s\","
		 "\"device_type\":\"TestPhone\",\"device_key\":\"%s\"}",
		 url, getenv("HALFKEY_TEST_USER_A"), getenv("HALFKEY_TEST_PASS_A"), dev, key);
	struct reply o;
	REQUIRE(call("POST", "/register", body, NULL, &o) == 201);
	char token[64];
	snprintf(token, sizeof(token), "%s", jstr(o.json, "token"));
	CHECK(jstr(o.json, "account_id") != NULL);
	json_decref(o.json);
	CHECK_INT(strlen(token), 43);
	/* ping, unlock with the right key, wrong key, delete */
	CHECK_INT(call("POST", "/ping", NULL, token, &o), 200);
	CHECK(o.json != NULL && strcmp(jstr(o.json, "state"), "unlocked") == 0);
	json_decref(o.json);
	snprintf(body, sizeof(body), "{\"device_key\":\"%s\"}", key);
	CHECK_INT(call("POST", "/unlock", body, token, &o), 200);
	json_decref(o.json);
	snprintf(body, sizeof(body), "{\"device_key\":\"%s\"}", good_key);
	expect_problem("POST", "/unlock", body, token, 401);
	CHECK_INT(call("DELETE", "/account", NULL, token, &o), 204);
	json_decref(o.json);
	expect_problem("POST", "/ping", NULL, token, 401);
	REQUIRE(store_stats(store, &st, &err) == 0);
	CHECK_INT(st.accounts, 0);
	CHECK_INT(engine_unlocked_count(engine), 0);
}

static void test_teardown(void)
{
	teardown();
	CHECK(true);
}

TESTS(TEST(test_health_and_unknown_routes), TEST(test_register_bad_input),
      TEST(test_token_routes_bad_input), TEST(test_slow_client), TEST(test_max_connections),
      TEST(test_live_register_unlock_delete), TEST(test_teardown));
