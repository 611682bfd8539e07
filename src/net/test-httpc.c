/* httpc against a real in-process HTTP(S) server on 127.0.0.1
 * (tests/tls-fixture.h): round trips, status codes and headers, TLS
 * verification, every failure class, size limits, concurrency,
 * cancellation and the callback contract, and that the Authorization
 * header leaves no unwiped copy in the process. Deadlines are generous and
 * only bound a hang; no test depends on the machine's speed. */
#include "crypto/secmem.h"
#include "crypto/wipealloc.h"
#include "lib/clock.h"
#include "net/httpc.h"
#include "test.h"
#include "tls-fixture.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

/* Bounds a hang only; a passing run takes a small fraction of it, also
 * under valgrind. */
#define DEADLINE_MS 120000

static struct tfx_pki pki;

void test_setup(void)
{
	if (secmem_init() < 0)
		abort();
	/* libevent's buffers (the fixture server's request parsing) wipe too,
	 * as planned for the relay (DESIGN.md §3), so that a memory scan
	 * sees only what the code under test left behind. */
	event_set_mem_functions(wipealloc_malloc, wipealloc_realloc, wipealloc_free);
	/* The fixture talks to 127.0.0.1 directly, whatever the environment says. */
	unsetenv("http_proxy");
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("all_proxy");
	unsetenv("ALL_PROXY");
	if (tfx_pki_create(test_tmpdir(), &pki) < 0)
		abort();
}

static int64_t mono_ms(void)
{
	return hk_clock_mono(hk_clock_real());
}

/* ---- a loop, a client, a server --------------------------------------- */

struct env {
	struct event_base *base;
	struct event *tick;
	struct httpc *h;
	struct tfx_server *srv;
	bool tls;
};

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static bool env_init_at(struct env *e, bool tls, const char *address, const char *cert,
			const char *key, tfx_handler *handler, void *ctx)
{
	memset(e, 0, sizeof(*e));
	e->tls = tls;
	e->base = event_base_new();
	if (e->base == NULL)
		return false;
	/* Wakes the loop now and then so RUN_UNTIL re-checks its condition. */
	e->tick = event_new(e->base, -1, EV_PERSIST, on_tick, NULL);
	struct timeval tv = {0, 20000};
	if (e->tick == NULL || event_add(e->tick, &tv) < 0)
		return false;
	if (httpc_new(e->base, &e->h) < 0)
		return false;
	struct tfx_server_opts o = {
		.cert_file = tls ? cert : NULL,
		.key_file = tls ? key : NULL,
		.address = address,
		.handler = handler,
		.ctx = ctx,
	};
	return tfx_server_new(e->base, &o, &e->srv) == 0;
}

static bool env_init(struct env *e, bool tls, tfx_handler *handler, void *ctx)
{
	return env_init_at(e, tls, NULL, pki.cert_file, pki.key_file, handler, ctx);
}

static void env_done(struct env *e)
{
	httpc_free(&e->h);
	tfx_server_free(&e->srv);
	if (e->tick != NULL)
		event_free(e->tick);
	if (e->base != NULL)
		event_base_free(e->base);
	memset(e, 0, sizeof(*e));
}

static void loop_once(struct event_base *base)
{
	event_base_loop(base, EVLOOP_ONCE);
}

#define RUN_UNTIL(base, cond)                                                          \
	for (int64_t end_ = mono_ms() + DEADLINE_MS; !(cond) && mono_ms() < end_;) \
	loop_once(base)

/* Gives anything that should not happen the chance to happen. */
static void run_for(struct event_base *base, long ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static struct httpc_request req_for(const struct env *e, const char *path)
{
	return (struct httpc_request){
		.method = "GET",
		.url = tfx_server_url(e->srv, path),
		.ca_file = e->tls ? pki.ca_file : NULL,
	};
}

/* ---- what a callback saw ---------------------------------------------- */

struct got {
	int calls;
	enum httpc_result result;
	long status;
	int http_version;
	long elapsed_ms;
	bool error_set;
	char error[256];
	uint8_t *body;
	size_t body_len;
	struct httpc_header hdrs[HTTPC_MAX_HEADERS];
	size_t hdr_count;
	char hbuf[8192];
	size_t hbuf_len;
	bool hdr_truncated;
	int *total; /* optional: counts every callback of a group */
};

static int callbacks_total; /* every on_got, for "never called" checks */

static const char *keep_str(struct got *g, const char *s)
{
	size_t n = strlen(s) + 1;
	if (n > sizeof(g->hbuf) - g->hbuf_len) {
		g->hdr_truncated = true;
		return "";
	}
	char *p = g->hbuf + g->hbuf_len;
	memcpy(p, s, n);
	g->hbuf_len += n;
	return p;
}

static void on_got(const struct httpc_response *resp, void *ctx)
{
	struct got *g = ctx;
	g->calls++;
	callbacks_total++;
	if (g->total != NULL)
		(*g->total)++;
	g->result = resp->result;
	g->status = resp->status;
	g->http_version = resp->http_version;
	g->elapsed_ms = resp->elapsed_ms;
	g->error_set = resp->error != NULL;
	if (resp->error != NULL)
		snprintf(g->error, sizeof(g->error), "%s", resp->error);
	/* The response contract, checked on every callback. */
	CHECK(resp->result == HTTPC_OK ? resp->error == NULL : resp->error != NULL);
	CHECK(resp->body != NULL && resp->body[resp->body_len] == '\0');
	CHECK(resp->header_count <= HTTPC_MAX_HEADERS);
	CHECK(resp->elapsed_ms >= 0);
	CHECK(resp->status == 0 ? resp->http_version == 0
				: resp->http_version == 1 || resp->http_version == 2);
	free(g->body);
	g->body = malloc(resp->body_len + 1);
	if (g->body == NULL)
		abort();
	memcpy(g->body, resp->body, resp->body_len + 1);
	g->body_len = resp->body_len;
	g->hdr_count = 0;
	g->hbuf_len = 0;
	for (size_t i = 0; i < resp->header_count && i < HTTPC_MAX_HEADERS; i++) {
		g->hdrs[i].name = keep_str(g, resp->headers[i].name);
		g->hdrs[i].value = keep_str(g, resp->headers[i].value);
		g->hdr_count++;
	}
}

/* httpc_header() over the headers the callback saw. */
static const char *got_header(const struct got *g, const char *name)
{
	struct httpc_response r = {.headers = g->hdrs, .header_count = g->hdr_count};
	return httpc_header(&r, name);
}

static void got_free(struct got *g)
{
	free(g->body);
	g->body = NULL;
}

/* Starts req and runs the loop until its callback ran. */
static bool fetch(struct env *e, const struct httpc_request *req, struct got *g)
{
	memset(g, 0, sizeof(*g));
	struct httpc_call *call = NULL;
	if (!CHECK_INT(httpc_start(e->h, req, on_got, g, &call), 0))
		return false;
	CHECK(call != NULL);
	CHECK_INT(httpc_active(e->h), 1);
	RUN_UNTIL(e->base, g->calls > 0);
	CHECK_INT(httpc_active(e->h), 0);
	return CHECK_INT(g->calls, 1);
}

/* ---- server handlers ---------------------------------------------------- */

/* 200; the body is the request body, or the URI when there is none; the
 * method in X-Method. */
static void h_echo(struct tfx_server *srv, struct evhttp_request *req,
		   const struct tfx_request *rec, void *ctx)
{
	(void)ctx;
	char m[64];
	snprintf(m, sizeof(m), "X-Method: %s", rec->method);
	const char *hs[] = {m, NULL};
	bool has_body = rec->body_len > 0;
	tfx_respond(srv, req,
		    &(struct tfx_reply){
			    .headers = hs,
			    .body = has_body ? (const void *)rec->body : rec->uri,
			    .body_len = has_body ? rec->body_len : strlen(rec->uri),
		    });
}

static void h_hold(struct tfx_server *srv, struct evhttp_request *req,
		   const struct tfx_request *rec, void *ctx)
{
	(void)srv;
	(void)req;
	(void)rec;
	(void)ctx;
}

static void h_drop(struct tfx_server *srv, struct evhttp_request *req,
		   const struct tfx_request *rec, void *ctx)
{
	(void)rec;
	(void)ctx;
	tfx_drop(srv, req, 0);
}

/* ---- the fixture itself ------------------------------------------------ */

static X509 *load_cert(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	return x;
}

/* Verifies the leaf at cert_path against ca_path with OpenSSL directly. */
static int verify_with(const char *cert_path, const char *ca_path)
{
	X509 *leaf = load_cert(cert_path), *ca = load_cert(ca_path);
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ok = -1;
	if (leaf != NULL && ca != NULL && store != NULL && ctx != NULL &&
	    X509_STORE_add_cert(store, ca) == 1 &&
	    X509_STORE_CTX_init(ctx, store, leaf, NULL) == 1) {
		X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
		ok = X509_verify_cert(ctx);
	}
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(leaf);
	X509_free(ca);
	return ok;
}

static void test_fixture_pki(void)
{
	CHECK_INT(verify_with(pki.cert_file, pki.ca_file), 1);
	CHECK_INT(verify_with(pki.cert_file, pki.other_ca_file), 0);
	X509 *leaf = load_cert(pki.cert_file);
	REQUIRE(leaf != NULL);
	CHECK_INT(X509_check_host(leaf, "localhost", 0, 0, NULL), 1);
	CHECK_INT(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
	CHECK_INT(X509_check_host(leaf, "example.com", 0, 0, NULL), 0);
	CHECK_INT(X509_check_ip_asc(leaf, "127.0.0.2", 0), 0);
	X509_free(leaf);

	char cert[TFX_PATH_MAX], key[TFX_PATH_MAX];
	REQUIRE(tfx_pki_issue(&pki, "fixture-other", "DNS:other.invalid", cert, key) == 0);
	CHECK_INT(verify_with(cert, pki.ca_file), 1);
	leaf = load_cert(cert);
	REQUIRE(leaf != NULL);
	CHECK_INT(X509_check_host(leaf, "other.invalid", 0, 0, NULL), 1);
	CHECK_INT(X509_check_ip_asc(leaf, "127.0.0.1", 0), 0);
	X509_free(leaf);
	CHECK(access(key, R_OK) == 0);
}

/* ---- round trips -------------------------------------------------------- */

static void roundtrips(bool tls)
{
	struct env e;
	REQUIRE(env_init(&e, tls, h_echo, NULL));
	const struct tfx_request *rec = tfx_server_last(e.srv);
	struct got g;

	/* GET with extra headers and a User-Agent */
	const char *extra[] = {"X-Test: one two", "MS-ASProtocolVersion: 14.1", NULL};
	struct httpc_request r = req_for(&e, "/Microsoft-Server-ActiveSync?Cmd=Ping&User=al%40x");
	r.headers = extra;
	r.user_agent = "Halfkey/0.1 (test)";
	if (fetch(&e, &r, &g)) {
		CHECK_INT(g.result, HTTPC_OK);
		CHECK_INT(g.status, 200);
		CHECK_INT(g.http_version, 1); /* the fixture speaks HTTP/1.1 only */
		CHECK_STR(rec->method, "GET");
		CHECK_STR(rec->uri, "/Microsoft-Server-ActiveSync?Cmd=Ping&User=al%40x");
		CHECK_STR(tfx_request_header(rec, "User-Agent"), "Halfkey/0.1 (test)");
		CHECK_STR(tfx_request_header(rec, "X-Test"), "one two");
		CHECK_STR(tfx_request_header(rec, "MS-ASProtocolVersion"), "14.1");
		CHECK_INT(tfx_request_header_count(rec, "X-Test"), 1);
		CHECK_INT(tfx_request_header_count(rec, "Expect"), 0);
		CHECK_INT(tfx_request_header_count(rec, "Content-Type"), 0);
		CHECK_INT(tfx_request_header_count(rec, "Authorization"), 0);
		CHECK_INT(rec->body_len, 0);
		CHECK(!rec->truncated);
		CHECK_STR(got_header(&g, "x-method"), "GET");
		CHECK_STR((const char *)g.body, rec->uri);
	}
	got_free(&g);

	/* POST: a binary body (NULs, 0xff: WBXML), over the 1 MiB from which
	 * curl would ask for 100-continue if it were allowed to */
	size_t n = 1536 * 1024;
	uint8_t *body = malloc(n);
	REQUIRE(body != NULL);
	for (size_t i = 0; i < n; i++)
		body[i] = (uint8_t)(i * 7 + (i >> 8));
	body[0] = 0x03;
	body[1] = 0x00;
	body[2] = 0xff;
	r = req_for(&e, "/Microsoft-Server-ActiveSync?Cmd=Sync");
	r.method = "POST";
	r.body = body;
	r.body_len = n;
	r.content_type = "application/vnd.ms-sync.wbxml";
	r.user_agent = "Halfkey/0.1";
	r.headers = extra;
	if (fetch(&e, &r, &g)) {
		CHECK_INT(g.result, HTTPC_OK);
		CHECK_INT(g.status, 200);
		CHECK_STR(rec->method, "POST");
		CHECK_STR(rec->uri, "/Microsoft-Server-ActiveSync?Cmd=Sync");
		CHECK_STR(tfx_request_header(rec, "Content-Type"), "application/vnd.ms-sync.wbxml");
		CHECK_INT(tfx_request_header_count(rec, "Content-Type"), 1);
		CHECK_STR(tfx_request_header(rec, "Content-Length"), "1572864");
		CHECK_STR(tfx_request_header(rec, "User-Agent"), "Halfkey/0.1");
		CHECK_STR(tfx_request_header(rec, "X-Test"), "one two");
		CHECK_INT(tfx_request_header_count(rec, "Expect"), 0);
		CHECK_INT(rec->body_len, n);
		if (rec->body_len == n)
			CHECK_MEM(rec->body, body, n);
		/* and back: the echo is the same binary body */
		CHECK_INT(g.body_len, n);
		if (g.body_len == n)
			CHECK_MEM(g.body, body, n);
	}
	got_free(&g);

	/* the same with a small receive buffer: many body callbacks */
	r.buffer_size = 1024;
	if (fetch(&e, &r, &g)) {
		CHECK_INT(g.result, HTTPC_OK);
		CHECK_INT(g.body_len, n);
		if (g.body_len == n)
			CHECK_MEM(g.body, body, n);
	}
	got_free(&g);
	free(body);

	/* POST with an empty body and no content type: the server is told
	 * nothing about a type the caller did not give */
	r = req_for(&e, "/empty");
	r.method = "POST";
	if (fetch(&e, &r, &g)) {
		CHECK_INT(g.result, HTTPC_OK);
		CHECK_STR(rec->method, "POST");
		CHECK_STR(tfx_request_header(rec, "Content-Length"), "0");
		CHECK_INT(tfx_request_header_count(rec, "Content-Type"), 0);
		CHECK_INT(rec->body_len, 0);
	}
	got_free(&g);

	/* OPTIONS, as an ActiveSync client starts */
	r = req_for(&e, "/Microsoft-Server-ActiveSync");
	r.method = "OPTIONS";
	r.user_agent = "Halfkey/0.1";
	if (fetch(&e, &r, &g)) {
		CHECK_INT(g.result, HTTPC_OK);
		CHECK_INT(g.status, 200);
		CHECK_STR(rec->method, "OPTIONS");
		CHECK_STR(rec->uri, "/Microsoft-Server-ActiveSync");
		CHECK_STR(got_header(&g, "X-Method"), "OPTIONS");
		CHECK_INT(rec->body_len, 0);
	}
	got_free(&g);

	/* a body with another method is sent, not dropped */
	static const char put_body[] = "<put/>";
	r = req_for(&e, "/put");
	r.method = "PUT";
	r.body = (const uint8_t *)put_body;
	r.body_len = sizeof(put_body) - 1;
	r.content_type = "text/xml";
	if (fetch(&e, &r, &g)) {
		CHECK_INT(g.result, HTTPC_OK);
		CHECK_STR(rec->method, "PUT");
		CHECK_STR((const char *)rec->body, put_body);
		CHECK_STR(tfx_request_header(rec, "Content-Type"), "text/xml");
	}
	got_free(&g);

	CHECK_INT(tfx_server_count(e.srv), 6);
	env_done(&e);
}

static void test_roundtrip_plain(void)
{
	roundtrips(false);
}

static void test_roundtrip_tls(void)
{
	roundtrips(true);
}

/* The DNS:localhost SAN, through the resolver. */
static void test_tls_localhost(void)
{
	struct env e;
	REQUIRE(env_init(&e, true, h_echo, NULL));
	char url[128];
	snprintf(url, sizeof(url), "https://localhost:%u/by-name", tfx_server_port(e.srv));
	struct httpc_request r = {.method = "GET", .url = url, .ca_file = pki.ca_file};
	struct got g;
	if (fetch(&e, &r, &g)) {
		CHECK_INT(g.result, HTTPC_OK);
		CHECK_INT(g.status, 200);
		CHECK_STR(tfx_server_last(e.srv)->uri, "/by-name");
	}
	got_free(&g);
	env_done(&e);
}

/* ---- status codes and headers ----------------------------------------- */

static void h_status(struct tfx_server *srv, struct evhttp_request *req,
		     const struct tfx_request *rec, void *ctx)
{
	(void)ctx;
	const char *p = strrchr(rec->uri, '/');
	long code = p != NULL ? strtol(p + 1, NULL, 10) : 500;
	const char *hs[] = {
		"Retry-After: 120",
		"X-MS-Location: https://eas.example.com/Microsoft-Server-ActiveSync",
		"MS-ASProtocolVersions: 2.5,12.0,12.1,14.0,14.1",
		"X-Padded:   spaced value  ",
		"Location: /elsewhere",
		NULL,
	};
	tfx_respond(srv, req,
		    &(struct tfx_reply){.status = (int)code, .headers = hs, .body = "status",
					.body_len = 6});
}

static void test_status_codes(void)
{
	static const int codes[] = {200, 302, 401, 403, 449, 451, 500, 503};
	struct env e;
	REQUIRE(env_init(&e, true, h_status, NULL));
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		char path[32];
		snprintf(path, sizeof(path), "/status/%d", codes[i]);
		struct httpc_request r = req_for(&e, path);
		r.method = "POST";
		struct got g;
		if (fetch(&e, &r, &g)) {
			CHECK_INT(g.result, HTTPC_OK);
			CHECK_INT(g.status, codes[i]);
			CHECK(!g.error_set);
			CHECK_STR((const char *)g.body, "status");
			CHECK_STR(got_header(&g, "Retry-After"), "120");
			CHECK_STR(got_header(&g, "retry-after"), "120");
			CHECK_STR(got_header(&g, "x-ms-location"),
				  "https://eas.example.com/Microsoft-Server-ActiveSync");
			CHECK_STR(got_header(&g, "MS-ASPROTOCOLVERSIONS"),
				  "2.5,12.0,12.1,14.0,14.1");
			CHECK_STR(got_header(&g, "x-padded"), "spaced value");
			CHECK_STR(got_header(&g, "Content-Length"), "6");
			CHECK_STR(got_header(&g, "location"), "/elsewhere");
			CHECK(got_header(&g, "X-Not-There") == NULL);
			CHECK(got_header(&g, "HTTP/1.1 200 OK") == NULL);
		}
		got_free(&g);
		/* one request each: a redirect is the caller's to follow */
		CHECK_INT(tfx_server_count(e.srv), i + 1);
	}
	env_done(&e);
}

/* More headers than HTTPC_MAX_HEADERS: the first ones are kept. */
static void h_many_headers(struct tfx_server *srv, struct evhttp_request *req,
			   const struct tfx_request *rec, void *ctx)
{
	(void)rec;
	(void)ctx;
	static char lines[40][32];
	static const char *hs[41];
	for (int i = 0; i < 40; i++) {
		snprintf(lines[i], sizeof(lines[i]), "X-H-%02d: v%d", i, i);
		hs[i] = lines[i];
	}
	hs[40] = NULL;
	tfx_respond(srv, req, &(struct tfx_reply){.headers = hs, .body = "x", .body_len = 1});
}

static void test_many_headers(void)
{
	struct env e;
	REQUIRE(env_init(&e, false, h_many_headers, NULL));
	struct httpc_request r = req_for(&e, "/");
	struct got g;
	if (fetch(&e, &r, &g)) {
		CHECK_INT(g.result, HTTPC_OK);
		CHECK_INT(g.hdr_count, HTTPC_MAX_HEADERS);
		CHECK_STR(got_header(&g, "x-h-00"), "v0");
		CHECK_STR(got_header(&g, "X-H-31"), "v31");
		CHECK(got_header(&g, "X-H-32") == NULL);
		CHECK(got_header(&g, "X-H-39") == NULL);
	}
	got_free(&g);
	env_done(&e);
}

/* ---- TLS verification ---------------------------------------------------- */

static void expect_tls_failure(struct env *e, const char *url, const char *ca_file)
{
	struct httpc_request r = {.method = "GET", .url = url, .ca_file = ca_file};
	struct got g;
	if (fetch(e, &r, &g)) {
		CHECK_INT(g.result, HTTPC_TLS_FAILED);
		CHECK_INT(g.status, 0);
		CHECK(g.error_set && g.error[0] != '\0');
		CHECK_INT(g.body_len, 0);
	}
	got_free(&g);
}

static void test_tls_wrong_ca(void)
{
	struct env e;
	REQUIRE(env_init(&e, true, h_echo, NULL));
	const char *url = tfx_server_url(e.srv, "/secret");
	expect_tls_failure(&e, url, pki.other_ca_file);
	/* the system's trust store does not know the test CA either */
	expect_tls_failure(&e, url, NULL);
	/* a CA file that does not exist is a failure, not "no verification" */
	expect_tls_failure(&e, url, test_path("no-such-ca.pem"));
	/* not one request got through */
	CHECK_INT(tfx_server_count(e.srv), 0);
	/* and the right CA still works on the same loop */
	struct httpc_request r = req_for(&e, "/ok");
	struct got g;
	if (fetch(&e, &r, &g))
		CHECK_INT(g.result, HTTPC_OK);
	got_free(&g);
	CHECK_INT(tfx_server_count(e.srv), 1);
	env_done(&e);
}

static void test_tls_wrong_name(void)
{
	/* a certificate from the right CA, for another name */
	char cert[TFX_PATH_MAX], key[TFX_PATH_MAX];
	REQUIRE(tfx_pki_issue(&pki, "other-name", "DNS:other.invalid", cert, key) == 0);
	struct env e;
	REQUIRE(env_init_at(&e, true, NULL, cert, key, h_echo, NULL));
	expect_tls_failure(&e, tfx_server_url(e.srv, "/"), pki.ca_file);
	CHECK_INT(tfx_server_count(e.srv), 0);
	env_done(&e);

	/* the localhost certificate, reached at an address not in its SAN */
	if (!env_init_at(&e, true, "127.0.0.2", pki.cert_file, pki.key_file, h_echo, NULL)) {
		fprintf(stderr, "  (127.0.0.2 not available: address case skipped)\n");
		env_done(&e);
		return;
	}
	expect_tls_failure(&e, tfx_server_url(e.srv, "/"), pki.ca_file);
	CHECK_INT(tfx_server_count(e.srv), 0);
	env_done(&e);
}

static void test_tls_to_plain_server(void)
{
	struct env e;
	REQUIRE(env_init(&e, false, h_echo, NULL));
	char url[128];
	snprintf(url, sizeof(url), "https://127.0.0.1:%u/", tfx_server_port(e.srv));
	expect_tls_failure(&e, url, pki.ca_file);
	env_done(&e);
}

/* ---- connection failures and timeouts --------------------------------- */

/* A port nothing listens on: bound, then closed. */
static uint16_t closed_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		abort();
	close(fd);
	return ntohs(a.sin_port);
}

static void test_connect_refused(void)
{
	struct env e;
	REQUIRE(env_init(&e, false, h_echo, NULL));
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", closed_port());
	struct httpc_request r = {.method = "GET", .url = url};
	struct got g;
	if (fetch(&e, &r, &g)) {
		CHECK_INT(g.result, HTTPC_CONNECT_FAILED);
		CHECK_INT(g.status, 0);
		CHECK(g.error_set);
	}
	got_free(&g);
	snprintf(url, sizeof(url), "https://127.0.0.1:%u/", closed_port());
	r.ca_file = pki.ca_file;
	if (fetch(&e, &r, &g))
		CHECK_INT(g.result, HTTPC_CONNECT_FAILED);
	got_free(&g);
	env_done(&e);
}

static void test_timeout_no_answer(void)
{
	for (int tls = 0; tls <= 1; tls++) {
		struct env e;
		REQUIRE(env_init(&e, tls, h_hold, NULL));
		struct httpc_request r = req_for(&e, "/hang");
		r.timeout_ms = 500;
		struct got g;
		int64_t t0 = mono_ms();
		if (fetch(&e, &r, &g)) {
			int64_t took = mono_ms() - t0;
			CHECK_INT(g.result, HTTPC_TIMEOUT);
			CHECK_INT(g.status, 0);
			CHECK(g.error_set);
			/* never early; late only by the loop's scheduling */
			CHECK(g.elapsed_ms >= 490);
			CHECK(g.elapsed_ms <= took + 5);
			CHECK(took < DEADLINE_MS / 2);
		}
		got_free(&g);
		CHECK_INT(tfx_server_count(e.srv), 1);
		env_done(&e);
	}
}

/* A listener that never accepts: TCP connects (the kernel's backlog), the
 * TLS handshake never answers; connect_timeout_ms covers it. */
static void test_timeout_tls_handshake(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	REQUIRE(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
		getsockname(fd, (struct sockaddr *)&a, &len) == 0 && listen(fd, 8) == 0);
	struct env e;
	if (!CHECK(env_init(&e, false, h_echo, NULL))) {
		close(fd);
		return;
	}
	char url[128];
	snprintf(url, sizeof(url), "https://127.0.0.1:%u/", ntohs(a.sin_port));
	struct httpc_request r = {
		.method = "GET", .url = url, .ca_file = pki.ca_file, .connect_timeout_ms = 500};
	struct got g;
	if (fetch(&e, &r, &g)) {
		CHECK_INT(g.result, HTTPC_TIMEOUT);
		CHECK(g.elapsed_ms >= 490);
	}
	got_free(&g);
	env_done(&e);
	close(fd);
}

/* Writes the start of a response announcing 100 bytes, sends 10, drops. */
static void h_partial(struct tfx_server *srv, struct evhttp_request *req,
		      const struct tfx_request *rec, void *ctx)
{
	(void)rec;
	(void)ctx;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Length", "100");
	evhttp_send_reply_start(req, 200, "OK");
	struct evbuffer *b = evbuffer_new();
	if (b == NULL || evbuffer_add(b, "0123456789", 10) < 0)
		abort();
	evhttp_send_reply_chunk(req, b);
	evbuffer_free(b);
	tfx_drop(srv, req, 100);
}

static void test_server_closes(void)
{
	for (int tls = 0; tls <= 1; tls++) {
		struct env e;
		REQUIRE(env_init(&e, tls, h_drop, NULL));
		struct httpc_request r = req_for(&e, "/drop");
		struct got g;
		if (fetch(&e, &r, &g)) {
			CHECK_INT(g.result, HTTPC_CONNECT_FAILED);
			CHECK_INT(g.status, 0);
			CHECK(g.error_set);
		}
		got_free(&g);
		CHECK_INT(tfx_server_count(e.srv), 1);
		env_done(&e);

		/* lost in the middle of the body: not a response to act on */
		REQUIRE(env_init(&e, tls, h_partial, NULL));
		r = req_for(&e, "/partial");
		if (fetch(&e, &r, &g)) {
			CHECK_INT(g.result, HTTPC_CONNECT_FAILED);
			CHECK_INT(g.status, 200);
			CHECK(g.error_set);
		}
		got_free(&g);
		env_done(&e);
	}
}

/* A raw responder: whatever arrives, it answers with fixed bytes. It
 * parses nothing; it is how a broken server or a middlebox looks. */
struct raw {
	struct evconnlistener *lis;
	const char *reply;
	size_t len;
	struct bufferevent *bev[8];
	size_t nbev;
	uint16_t port;
};

static void raw_on_read(struct bufferevent *bev, void *arg)
{
	struct raw *r = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	bufferevent_write(bev, r->reply, r->len);
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL); /* once */
}

static void raw_on_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
			  int salen, void *arg)
{
	(void)lis;
	(void)sa;
	(void)salen;
	struct raw *r = arg;
	struct bufferevent *bev = bufferevent_socket_new(evconnlistener_get_base(r->lis), fd,
							 BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL || r->nbev == sizeof(r->bev) / sizeof(r->bev[0]))
		abort();
	r->bev[r->nbev++] = bev;
	bufferevent_setcb(bev, raw_on_read, NULL, NULL, r);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static bool raw_init(struct raw *r, struct event_base *base, const char *reply, size_t len)
{
	memset(r, 0, sizeof(*r));
	r->reply = reply;
	r->len = len;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	r->lis = evconnlistener_new_bind(base, raw_on_accept, r,
					 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 8,
					 (struct sockaddr *)&a, sizeof(a));
	socklen_t alen = sizeof(a);
	if (r->lis == NULL ||
	    getsockname(evconnlistener_get_fd(r->lis), (struct sockaddr *)&a, &alen) < 0)
		return false;
	r->port = ntohs(a.sin_port);
	return true;
}

static void raw_done(struct raw *r)
{
	for (size_t i = 0; i < r->nbev; i++)
		bufferevent_free(r->bev[i]);
	if (r->lis != NULL)
		evconnlistener_free(r->lis);
	memset(r, 0, sizeof(*r));
}

static void test_malformed_responses(void)
{
	static const struct {
		const char *reply;
		size_t len;
		enum httpc_result want;
	} cases[] = {
#define C(s, w) {s, sizeof(s) - 1, w}
		/* not HTTP at all (curl: HTTP/0.9, refused) */
		C("garbage\r\n\r\n", HTTPC_PROTOCOL_ERROR),
		C("HTTP/1.1 abc\r\nContent-Length: 0\r\n\r\n", HTTPC_PROTOCOL_ERROR),
		C("HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello", HTTPC_PROTOCOL_ERROR),
		C("HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\nhi",
		  HTTPC_PROTOCOL_ERROR),
		/* curl reports a broken chunked encoding as a receive error */
		C("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
		  HTTPC_CONNECT_FAILED),
#undef C
	};
	struct env e;
	REQUIRE(env_init(&e, false, h_echo, NULL));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct raw raw;
		if (!CHECK(raw_init(&raw, e.base, cases[i].reply, cases[i].len)))
			break;
		char url[64];
		snprintf(url, sizeof(url), "http://127.0.0.1:%u/", raw.port);
		struct httpc_request r = {.method = "GET", .url = url, .timeout_ms = 30000};
		struct got g;
		if (fetch(&e, &r, &g)) {
			if (!CHECK_INT(g.result, cases[i].want))
				fprintf(stderr, "  (case %zu: %s)\n", i, g.error);
			CHECK(g.error_set);
		}
		got_free(&g);
		raw_done(&raw);
	}
	env_done(&e);
}

/* Only http and https: another scheme fails in the callback, unread. */
static void test_other_schemes(void)
{
	const char *file = test_path("not-for-http.txt");
	FILE *f = fopen(file, "w");
	REQUIRE(f != NULL);
	fputs("local file contents\n", f);
	fclose(f);
	char file_url[600];
	snprintf(file_url, sizeof(file_url), "file://%s", file);
	const char *urls[] = {file_url, "ftp://127.0.0.1:1/x", "dict://127.0.0.1:1/x",
			      "gopher://127.0.0.1:1/x"};
	struct env e;
	REQUIRE(env_init(&e, false, h_echo, NULL));
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		struct httpc_request r = {.method = "GET", .url = urls[i]};
		struct got g;
		if (fetch(&e, &r, &g)) {
			CHECK_INT(g.result, HTTPC_FAILED);
			CHECK_INT(g.status, 0);
			CHECK_INT(g.body_len, 0);
		}
		got_free(&g);
	}
	env_done(&e);
}

/* ---- size limits ----------------------------------------------------------- */

struct big {
	size_t len;
	bool chunked;
	const char *const *headers;
};

static void h_big(struct tfx_server *srv, struct evhttp_request *req,
		  const struct tfx_request *rec, void *ctx)
{
	(void)rec;
	struct big *b = ctx;
	uint8_t *body = malloc(b->len + 1);
	if (body == NULL)
		abort();
	for (size_t i = 0; i < b->len; i++)
		body[i] = (uint8_t)('a' + i % 26);
	tfx_respond(srv, req,
		    &(struct tfx_reply){.headers = b->headers, .body = body, .body_len = b->len,
					.chunked = b->chunked});
	free(body);
}

static void expect_size(bool tls, size_t len, bool chunked, size_t body_max,
			enum httpc_result want)
{
	struct big b = {.len = len, .chunked = chunked};
	struct env e;
	REQUIRE(env_init(&e, tls, h_big, &b));
	struct httpc_request r = req_for(&e, "/big");
	r.body_max = body_max;
	struct got g;
	if (fetch(&e, &r, &g)) {
		if (!CHECK_INT(g.result, want))
			fprintf(stderr, "  (len %zu chunked %d body_max %zu tls %d)\n", len,
				chunked, body_max, tls);
		if (want == HTTPC_OK) {
			CHECK_INT(g.status, 200);
			CHECK_INT(g.body_len, len);
			CHECK(got_header(&g, chunked ? "Transfer-Encoding" : "Content-Length") !=
			      NULL);
		} else {
			CHECK(g.body_len <= body_max);
			CHECK(g.error_set);
		}
	}
	got_free(&g);
	env_done(&e);
}

static void test_body_too_large(void)
{
	for (int tls = 0; tls <= 1; tls++) {
		for (int chunked = 0; chunked <= 1; chunked++) {
			expect_size(tls, 1000, chunked, 1000, HTTPC_OK);
			expect_size(tls, 1001, chunked, 1000, HTTPC_TOO_LARGE);
			expect_size(tls, 300 * 1024, chunked, 1000, HTTPC_TOO_LARGE);
			expect_size(tls, 300 * 1024, chunked, 64 * 1024, HTTPC_TOO_LARGE);
			/* the default maximum is far above this */
			expect_size(tls, 300 * 1024, chunked, 0, HTTPC_OK);
		}
	}
}

static void test_header_flood(void)
{
	/* 2000 small headers (~50 KiB): past the count limit, the bytes still count */
	size_t n = 2000;
	char(*lines)[32] = calloc(n, sizeof(*lines));
	const char **hs = calloc(n + 1, sizeof(*hs));
	REQUIRE(lines != NULL && hs != NULL);
	for (size_t i = 0; i < n; i++) {
		snprintf(lines[i], sizeof(lines[i]), "X-Flood-%04zu: abcdefghij", i);
		hs[i] = lines[i];
	}
	struct big b = {.len = 10, .headers = hs};
	struct env e;
	if (CHECK(env_init(&e, false, h_big, &b))) {
		struct httpc_request r = req_for(&e, "/flood");
		struct got g;
		if (fetch(&e, &r, &g)) {
			CHECK_INT(g.result, HTTPC_TOO_LARGE);
			CHECK(g.error_set);
		}
		got_free(&g);
	}
	env_done(&e);

	/* one header line over the limit */
	size_t vlen = HTTPC_HEADER_BYTES_MAX + 100;
	char *line = malloc(vlen + 16);
	REQUIRE(line != NULL);
	memcpy(line, "X-Huge: ", 8);
	memset(line + 8, 'h', vlen);
	line[8 + vlen] = '\0';
	const char *one[] = {line, NULL};
	b.headers = one;
	if (CHECK(env_init(&e, true, h_big, &b))) {
		struct httpc_request r = req_for(&e, "/huge");
		struct got g;
		if (fetch(&e, &r, &g))
			CHECK_INT(g.result, HTTPC_TOO_LARGE);
		got_free(&g);
	}
	env_done(&e);

	/* just under the limit in total is fine */
	n = 100;
	for (size_t i = 0; i < n; i++)
		hs[i] = lines[i];
	hs[n] = NULL;
	b.headers = hs;
	if (CHECK(env_init(&e, false, h_big, &b))) {
		struct httpc_request r = req_for(&e, "/fine");
		struct got g;
		if (fetch(&e, &r, &g)) {
			CHECK_INT(g.result, HTTPC_OK);
			CHECK_STR(got_header(&g, "x-flood-0000"), "abcdefghij");
		}
		got_free(&g);
	}
	env_done(&e);
	free(line);
	free(lines);
	free(hs);
}

/* ---- many at once ---------------------------------------------------------- */

/* Replies to /c/<i> after (i % 10) * 3 ms with the URI as body, so that
 * replies overtake each other. */
static void h_staggered(struct tfx_server *srv, struct evhttp_request *req,
			const struct tfx_request *rec, void *ctx)
{
	(void)ctx;
	const char *p = strrchr(rec->uri, '/');
	long i = p != NULL ? strtol(p + 1, NULL, 10) : 0;
	tfx_respond(srv, req,
		    &(struct tfx_reply){.body = rec->uri, .body_len = strlen(rec->uri),
					.delay_ms = (i % 10) * 3});
}

static void concurrent(bool tls)
{
	enum { N = 100 };
	struct env e;
	REQUIRE(env_init(&e, tls, h_staggered, NULL));
	struct got *g = calloc(N, sizeof(*g));
	REQUIRE(g != NULL);
	int total = 0;
	for (int i = 0; i < N; i++) {
		char path[32];
		snprintf(path, sizeof(path), "/c/%d", i);
		struct httpc_request r = req_for(&e, path);
		g[i].total = &total;
		if (!CHECK_INT(httpc_start(e.h, &r, on_got, &g[i], NULL), 0))
			break;
	}
	CHECK_INT(httpc_active(e.h), N);
	RUN_UNTIL(e.base, total >= N);
	run_for(e.base, 50); /* a second callback would show up now */
	CHECK_INT(total, N);
	CHECK_INT(httpc_active(e.h), 0);
	CHECK_INT(tfx_server_count(e.srv), N);
	for (int i = 0; i < N; i++) {
		char path[32];
		snprintf(path, sizeof(path), "/c/%d", i);
		CHECK_INT(g[i].calls, 1);
		CHECK_INT(g[i].result, HTTPC_OK);
		CHECK_INT(g[i].status, 200);
		CHECK(g[i].body != NULL && strcmp((const char *)g[i].body, path) == 0);
		got_free(&g[i]);
	}
	free(g);
	env_done(&e);
}

static void test_concurrent_plain(void)
{
	concurrent(false);
}

static void test_concurrent_tls(void)
{
	concurrent(true);
}

/* ---- cancellation and the callback contract ------------------------------- */

static void test_cancel_before_start(void)
{
	struct env e;
	REQUIRE(env_init(&e, true, h_echo, NULL));
	int before = callbacks_total;
	struct got g = {0}, control;
	struct httpc_request r = req_for(&e, "/cancelled");
	struct httpc_call *call = NULL;
	REQUIRE(httpc_start(e.h, &r, on_got, &g, &call) == 0);
	CHECK_INT(httpc_active(e.h), 1);
	httpc_cancel(&call);
	CHECK(call == NULL);
	CHECK_INT(httpc_active(e.h), 0);
	httpc_cancel(&call); /* NULL-safe */

	r = req_for(&e, "/control");
	if (fetch(&e, &r, &control))
		CHECK_INT(control.result, HTTPC_OK);
	got_free(&control);
	run_for(e.base, 50);
	CHECK_INT(g.calls, 0);
	CHECK_INT(callbacks_total, before + 1);
	/* the cancelled request never reached the server */
	CHECK_INT(tfx_server_count(e.srv), 1);
	CHECK_STR(tfx_server_last(e.srv)->uri, "/control");
	env_done(&e);
}

/* The server cancels the client's call once the request arrived, i.e. in
 * the middle of the transfer. */
struct cancel_at_server {
	struct httpc_call *call;
	int seen;
};

static void h_cancel_client(struct tfx_server *srv, struct evhttp_request *req,
			    const struct tfx_request *rec, void *ctx)
{
	struct cancel_at_server *c = ctx;
	if (strcmp(rec->uri, "/control") == 0) {
		h_echo(srv, req, rec, NULL);
		return;
	}
	c->seen++;
	httpc_cancel(&c->call);
}

static void test_cancel_during_transfer(void)
{
	for (int tls = 0; tls <= 1; tls++) {
		struct cancel_at_server c = {0};
		struct env e;
		REQUIRE(env_init(&e, tls, h_cancel_client, &c));
		int before = callbacks_total;
		struct got g = {0}, control;
		struct httpc_request r = req_for(&e, "/in-flight");
		r.method = "POST";
		r.body = (const uint8_t *)"body";
		r.body_len = 4;
		REQUIRE(httpc_start(e.h, &r, on_got, &g, &c.call) == 0);
		RUN_UNTIL(e.base, c.seen > 0);
		CHECK_INT(c.seen, 1);
		CHECK(c.call == NULL);
		CHECK_INT(httpc_active(e.h), 0);
		r = req_for(&e, "/control");
		if (fetch(&e, &r, &control))
			CHECK_INT(control.result, HTTPC_OK);
		got_free(&control);
		run_for(e.base, 50);
		CHECK_INT(g.calls, 0);
		CHECK_INT(callbacks_total, before + 1);
		env_done(&e);
	}
}

/* Whichever of two calls finishes first cancels the other. Both time out
 * together, so the other's completion is usually already queued inside
 * curl when it is cancelled: it must be dropped, not delivered. */
struct pair {
	struct httpc_call *call[2];
	int calls[2];
};

struct pair_ctx {
	struct pair *p;
	int idx;
};

static void on_pair(const struct httpc_response *resp, void *ctx)
{
	struct pair_ctx *pc = ctx;
	struct pair *p = pc->p;
	CHECK_INT(resp->result, HTTPC_TIMEOUT);
	p->calls[pc->idx]++;
	callbacks_total++;
	p->call[pc->idx] = NULL; /* invalid from here on */
	httpc_cancel(&p->call[1 - pc->idx]);
}

static void test_cancel_from_callback(void)
{
	for (int round = 0; round < 5; round++) {
		struct env e;
		REQUIRE(env_init(&e, false, h_hold, NULL));
		struct pair p = {0};
		struct pair_ctx pc[2] = {{&p, 0}, {&p, 1}};
		for (int i = 0; i < 2; i++) {
			struct httpc_request r = req_for(&e, "/twin");
			r.timeout_ms = 200;
			REQUIRE(httpc_start(e.h, &r, on_pair, &pc[i], &p.call[i]) == 0);
		}
		RUN_UNTIL(e.base, p.calls[0] + p.calls[1] > 0);
		run_for(e.base, 100);
		CHECK_INT(p.calls[0] + p.calls[1], 1);
		CHECK(p.call[0] == NULL && p.call[1] == NULL);
		CHECK_INT(httpc_active(e.h), 0);
		env_done(&e);
	}
}

/* Cancels after k turns of the loop, for every k up to well past
 * completion: connecting, TLS handshake, request, response. Each call
 * ends exactly once: in its callback, or cancelled and never called. */
struct step {
	struct httpc_call *call;
	int calls;
};

static void on_step(const struct httpc_response *resp, void *ctx)
{
	(void)resp;
	struct step *s = ctx;
	s->calls++;
	s->call = NULL;
}

static void test_cancel_at_every_step(void)
{
	enum { K = 60 };
	for (int tls = 0; tls <= 1; tls++) {
		struct env e;
		REQUIRE(env_init(&e, tls, h_echo, NULL));
		struct step *s = calloc(K + 1, sizeof(*s));
		REQUIRE(s != NULL);
		int cancelled = 0;
		for (int k = 0; k <= K; k++) {
			struct httpc_request r = req_for(&e, "/step");
			r.method = "POST";
			r.body = (const uint8_t *)"step";
			r.body_len = 4;
			if (!CHECK_INT(httpc_start(e.h, &r, on_step, &s[k], &s[k].call), 0))
				break;
			for (int i = 0; i < k && s[k].calls == 0; i++)
				loop_once(e.base);
			if (k == K) {
				RUN_UNTIL(e.base, s[k].calls > 0); /* the last one completes */
			} else if (s[k].calls == 0) {
				httpc_cancel(&s[k].call);
				cancelled++;
			}
			CHECK_INT(httpc_active(e.h), 0);
		}
		run_for(e.base, 100);
		int completed = 0;
		for (int k = 0; k <= K; k++) {
			CHECK(s[k].calls <= 1);
			CHECK(s[k].call == NULL);
			completed += s[k].calls;
		}
		CHECK_INT(completed + cancelled, K + 1);
		CHECK_INT(s[0].calls, 0);
		CHECK_INT(s[K].calls, 1);
		free(s);
		env_done(&e);
	}
}

/* A callback that starts the next request, three deep. */
struct chain {
	struct env *e;
	int step;
	struct got g[3];
};

static void on_chain(const struct httpc_response *resp, void *ctx)
{
	struct chain *c = ctx;
	on_got(resp, &c->g[c->step]);
	c->step++;
	if (c->step == 3)
		return;
	char path[32];
	snprintf(path, sizeof(path), "/chain/%d", c->step);
	struct httpc_request r = req_for(c->e, path);
	r.method = c->step == 1 ? "POST" : "GET";
	r.body = (const uint8_t *)"next";
	r.body_len = c->step == 1 ? 4 : 0;
	if (r.body_len == 0)
		r.body = NULL;
	CHECK_INT(httpc_start(c->e->h, &r, on_chain, c, NULL), 0);
	CHECK_INT(httpc_active(c->e->h), 1);
}

static void test_callback_starts_request(void)
{
	for (int tls = 0; tls <= 1; tls++) {
		struct env e;
		REQUIRE(env_init(&e, tls, h_echo, NULL));
		struct chain c = {.e = &e};
		struct httpc_request r = req_for(&e, "/chain/0");
		REQUIRE(httpc_start(e.h, &r, on_chain, &c, NULL) == 0);
		RUN_UNTIL(e.base, c.step >= 3);
		run_for(e.base, 50);
		CHECK_INT(c.step, 3);
		CHECK_STR((const char *)c.g[0].body, "/chain/0");
		CHECK_STR((const char *)c.g[1].body, "next");
		CHECK_STR((const char *)c.g[2].body, "/chain/2");
		for (int i = 0; i < 3; i++) {
			CHECK_INT(c.g[i].calls, 1);
			CHECK_INT(c.g[i].result, HTTPC_OK);
			got_free(&c.g[i]);
		}
		CHECK_INT(tfx_server_count(e.srv), 3);
		CHECK_INT(httpc_active(e.h), 0);
		env_done(&e);
	}
}

/* httpc_free with calls in flight: some at the server, some not yet
 * started. No callback, and nothing left allocated. */
static void free_in_flight_once(bool tls)
{
	struct env e;
	REQUIRE(env_init(&e, tls, h_hold, NULL));
	int before = callbacks_total;
	struct got g[5];
	memset(g, 0, sizeof(g));
	for (int i = 0; i < 3; i++) {
		struct httpc_request r = req_for(&e, "/held");
		REQUIRE(httpc_start(e.h, &r, on_got, &g[i], NULL) == 0);
	}
	RUN_UNTIL(e.base, tfx_server_pending(e.srv) >= 3);
	CHECK_INT(tfx_server_pending(e.srv), 3);
	for (int i = 3; i < 5; i++) {
		struct httpc_request r = req_for(&e, "/never");
		REQUIRE(httpc_start(e.h, &r, on_got, &g[i], NULL) == 0);
	}
	CHECK_INT(httpc_active(e.h), 5);
	httpc_free(&e.h);
	CHECK(e.h == NULL);
	httpc_free(&e.h); /* NULL-safe */
	run_for(e.base, 50);
	CHECK_INT(callbacks_total, before);
	CHECK_INT(tfx_server_count(e.srv), 3);
	env_done(&e);
}

static void test_free_in_flight(void)
{
	for (int tls = 0; tls <= 1; tls++) {
		/* The first round warms up the libraries' one-time state. */
		free_in_flight_once(tls);
		size_t live = wipealloc_live_blocks();
		free_in_flight_once(tls);
		CHECK_INT(wipealloc_live_blocks(), live);
	}
}

/* ---- retiring connections ------------------------------------------------ */

/* Keeps every request unanswered, in arrival order, for the test to answer. */
struct parked {
	struct evhttp_request *req[8];
	char uri[8][64];
	char body[8][16];
	char method[8][8];
	size_t n;
	bool answer_all; /* from now on, answer every request at once */
};

static void h_park(struct tfx_server *srv, struct evhttp_request *req,
		   const struct tfx_request *rec, void *ctx)
{
	struct parked *pk = ctx;
	if (pk->answer_all) {
		tfx_respond(srv, req, &(struct tfx_reply){.body = "done", .body_len = 4});
		return;
	}
	if (pk->n == 8)
		return;
	pk->req[pk->n] = req;
	snprintf(pk->uri[pk->n], sizeof(pk->uri[0]), "%.63s", rec->uri);
	snprintf(pk->body[pk->n], sizeof(pk->body[0]), "%.*s", (int)rec->body_len,
		 (const char *)rec->body);
	snprintf(pk->method[pk->n], sizeof(pk->method[0]), "%.7s", rec->method);
	pk->n++;
}

static void answer(struct env *e, struct evhttp_request *req, const char *body)
{
	tfx_respond(e->srv, req, &(struct tfx_reply){.body = body, .body_len = strlen(body)});
}

static struct httpc_stats stats_of(const struct env *e)
{
	struct httpc_stats st;
	httpc_get_stats(e->h, &st);
	return st;
}

/* A retire moves the waiting restartable calls (a body, an empty body) to
 * new connections, lets the others finish where they are, closes the old
 * connections once they have, and each caller sees exactly one callback. */
static void test_retire(void)
{
	for (int tls = 0; tls <= 1; tls++) {
		struct parked pk = {0};
		struct env e;
		REQUIRE(env_init(&e, tls, h_park, &pk));
		int before = callbacks_total;
		struct got ga = {0}, ge = {0}, gb = {0};
		struct httpc_request r = req_for(&e, "/ping-a");
		r.method = "POST";
		r.body = (const uint8_t *)"A";
		r.body_len = 1;
		r.restartable = true;
		REQUIRE(httpc_start(e.h, &r, on_got, &ga, NULL) == 0);
		r = req_for(&e, "/ping-empty");
		r.method = "POST";
		r.restartable = true;
		REQUIRE(httpc_start(e.h, &r, on_got, &ge, NULL) == 0);
		r = req_for(&e, "/sync-b");
		r.method = "POST";
		r.body = (const uint8_t *)"B";
		r.body_len = 1;
		REQUIRE(httpc_start(e.h, &r, on_got, &gb, NULL) == 0);
		RUN_UNTIL(e.base, pk.n == 3);
		REQUIRE(pk.n == 3);

		/* two retires in one turn of the loop make one */
		httpc_retire(e.h);
		httpc_retire(e.h);
		RUN_UNTIL(e.base, pk.n == 5);
		REQUIRE(pk.n == 5);
		run_for(e.base, 100);
		CHECK_INT(pk.n, 5); /* the other call is not sent again */
		struct httpc_stats st = stats_of(&e);
		CHECK_INT(st.retires, 1);
		CHECK_INT(st.restarted, 2);
		CHECK_INT(st.waves, 2); /* one call, then the other once it was on its connection */
		CHECK_INT(st.pools_retired, 1);
		CHECK_INT(st.pools_freed, 0);
		CHECK_INT(httpc_active(e.h), 3);
		CHECK_INT(callbacks_total, before);
		/* the two sent again are the restartable ones, unchanged */
		size_t ia = 3, ie = 4;
		if (strcmp(pk.uri[3], "/ping-a") != 0) {
			ia = 4;
			ie = 3;
		}
		CHECK_STR(pk.uri[ia], "/ping-a");
		CHECK_STR(pk.body[ia], "A");
		CHECK_STR(pk.method[ia], "POST");
		CHECK_STR(pk.uri[ie], "/ping-empty");
		CHECK_STR(pk.body[ie], "");
		CHECK_STR(pk.method[ie], "POST");

		/* the one left on the old connections finishes there; then they close */
		size_t ib = strcmp(pk.uri[0], "/sync-b") == 0 ? 0 : strcmp(pk.uri[1], "/sync-b") == 0 ? 1 : 2;
		CHECK_STR(pk.uri[ib], "/sync-b");
		answer(&e, pk.req[ib], "b-done");
		RUN_UNTIL(e.base, gb.calls > 0 && stats_of(&e).pools_freed == 1);
		CHECK_INT(gb.calls, 1);
		CHECK_INT(gb.result, HTTPC_OK);
		CHECK_STR((const char *)gb.body, "b-done");
		st = stats_of(&e);
		CHECK_INT(st.pools_freed, 1);
		CHECK_INT(st.pools_retired, 0);

		/* the moved calls are answered on their new connections, once */
		answer(&e, pk.req[ia], "a-done");
		answer(&e, pk.req[ie], "e-done");
		RUN_UNTIL(e.base, ga.calls > 0 && ge.calls > 0);
		CHECK_INT(ga.calls, 1);
		CHECK_INT(ga.result, HTTPC_OK);
		CHECK_STR((const char *)ga.body, "a-done");
		CHECK_INT(ge.calls, 1);
		CHECK_STR((const char *)ge.body, "e-done");
		run_for(e.base, 50);
		CHECK_INT(callbacks_total, before + 3);
		CHECK_INT(httpc_active(e.h), 0);

		/* a retire with nothing in flight closes the idle connections at once */
		httpc_retire(e.h);
		RUN_UNTIL(e.base, stats_of(&e).pools_freed == 2);
		CHECK_INT(stats_of(&e).pools_freed, 2);

		/* freeing the client with a retired pool still busy */
		r = req_for(&e, "/held");
		struct got gh = {0};
		REQUIRE(httpc_start(e.h, &r, on_got, &gh, NULL) == 0);
		RUN_UNTIL(e.base, pk.n == 6);
		httpc_retire(e.h);
		RUN_UNTIL(e.base, stats_of(&e).retires == 3);
		CHECK_INT(stats_of(&e).pools_retired, 1);
		got_free(&ga);
		got_free(&ge);
		got_free(&gb);
		env_done(&e);
		CHECK_INT(gh.calls, 0);
		got_free(&gh);
	}
}

/* A second retire while the first is still moving calls: every waiting
 * call ends up on the newest connections (also one the first retire had
 * already moved), each retired set closes, one callback each. Which
 * requests the first retire got out before the second is a race, so the
 * server answers everything it holds once the second is done. */
static void test_retire_twice(void)
{
	struct parked pk = {0};
	struct env e;
	REQUIRE(env_init(&e, true, h_park, &pk));
	struct got g[3];
	memset(g, 0, sizeof(g));
	for (int i = 0; i < 3; i++) {
		struct httpc_request r = req_for(&e, "/ping");
		r.method = "POST";
		r.body = (const uint8_t *)"P";
		r.body_len = 1;
		r.restartable = true;
		REQUIRE(httpc_start(e.h, &r, on_got, &g[i], NULL) == 0);
	}
	RUN_UNTIL(e.base, pk.n == 3);
	REQUIRE(pk.n == 3);
	httpc_retire(e.h);
	/* the first wave is one call; retire again before it is through */
	RUN_UNTIL(e.base, stats_of(&e).waves >= 1);
	uint64_t moved = stats_of(&e).restarted;
	CHECK(moved >= 1 && moved < 3);
	httpc_retire(e.h);
	RUN_UNTIL(e.base, stats_of(&e).pools_freed == 2 && stats_of(&e).restarted >= moved + 3);
	struct httpc_stats st = stats_of(&e);
	CHECK_INT(st.retires, 2);
	CHECK(st.restarted >= moved + 3); /* all three moved by the second */
	CHECK_INT(st.pools_freed, 2);
	CHECK_INT(st.pools_retired, 0);
	CHECK_INT(httpc_active(e.h), 3);
	for (int i = 0; i < 3; i++)
		CHECK_INT(g[i].calls, 0);
	pk.answer_all = true;
	for (size_t i = 0; i < pk.n; i++)
		answer(&e, pk.req[i], "done");
	RUN_UNTIL(e.base, g[0].calls + g[1].calls + g[2].calls == 3);
	run_for(e.base, 50);
	CHECK(tfx_server_count(e.srv) >= 6); /* 3, each sent again by the second retire */
	for (int i = 0; i < 3; i++) {
		CHECK_INT(g[i].calls, 1);
		CHECK_INT(g[i].result, HTTPC_OK);
		CHECK_STR((const char *)g[i].body, "done");
		got_free(&g[i]);
	}
	CHECK_INT(httpc_active(e.h), 0);
	env_done(&e);
}

/* Calls that may share an HTTP/2 connection (HTTP/2 asked for, over TLS)
 * go to curl in waves, in the order they were started: one, and once it
 * is on its connection the rest (this fixture speaks HTTP/1.1, so each
 * opens its own; the order and the waves are what is checked here; the
 * sharing itself in test-eas-live). A call cancelled while it waits is
 * never sent. */
static void test_admission_waves(void)
{
	struct parked pk = {0};
	struct env e;
	REQUIRE(env_init(&e, true, h_park, &pk));
	struct got g[5];
	memset(g, 0, sizeof(g));
	struct httpc_call *calls[5] = {0};
	char path[5][8];
	for (int i = 0; i < 5; i++) {
		snprintf(path[i], sizeof(path[i]), "/a%d", i);
		struct httpc_request r = req_for(&e, path[i]);
		r.http2 = true;
		REQUIRE(httpc_start(e.h, &r, on_got, &g[i], &calls[i]) == 0);
	}
	CHECK_INT(httpc_active(e.h), 5);
	httpc_cancel(&calls[4]); /* still waiting: never sent */
	CHECK_INT(httpc_active(e.h), 4);
	RUN_UNTIL(e.base, pk.n == 4);
	run_for(e.base, 100);
	REQUIRE(pk.n == 4);
	CHECK_STR(pk.uri[0], "/a0"); /* the probe: the first started */
	for (int i = 1; i < 4; i++)
		CHECK(strncmp(pk.uri[i], "/a", 2) == 0 && pk.uri[i][2] != '4');
	CHECK_INT(stats_of(&e).waves, 2);
	for (size_t i = 0; i < pk.n; i++)
		answer(&e, pk.req[i], "ok");
	RUN_UNTIL(e.base, g[0].calls + g[1].calls + g[2].calls + g[3].calls == 4);
	run_for(e.base, 50);
	for (int i = 0; i < 4; i++) {
		CHECK_INT(g[i].calls, 1);
		CHECK_INT(g[i].result, HTTPC_OK);
	}
	CHECK_INT(g[4].calls, 0);
	/* more calls later: a single one goes at once */
	struct httpc_request r = req_for(&e, "/later");
	r.http2 = true;
	struct got gl = {0};
	REQUIRE(httpc_start(e.h, &r, on_got, &gl, NULL) == 0);
	RUN_UNTIL(e.base, pk.n == 5);
	CHECK_STR(pk.uri[4], "/later");
	answer(&e, pk.req[4], "ok");
	RUN_UNTIL(e.base, gl.calls == 1);
	CHECK_INT(gl.result, HTTPC_OK);
	got_free(&gl);
	/* freed with calls still waiting for admission */
	struct got gw = {0};
	for (int i = 0; i < 3; i++) {
		struct httpc_request rw = req_for(&e, "/w");
		rw.http2 = true;
		REQUIRE(httpc_start(e.h, &rw, on_got, &gw, NULL) == 0);
	}
	CHECK_INT(httpc_active(e.h), 3);
	for (int i = 0; i < 5; i++)
		got_free(&g[i]);
	env_done(&e);
	CHECK_INT(gw.calls, 0);
}

/* An unreachable server: the first call fails before it is on a
 * connection, and the calls waiting behind it go all at once, so each
 * fails as fast as it would have alone. */
static void test_admission_unreachable(void)
{
	struct env e;
	REQUIRE(env_init(&e, true, h_echo, NULL));
	char url[128];
	snprintf(url, sizeof(url), "https://127.0.0.1:%u/", closed_port());
	struct got g[6];
	memset(g, 0, sizeof(g));
	int64_t t0 = mono_ms();
	for (int i = 0; i < 6; i++) {
		struct httpc_request r = {.method = "GET", .url = url, .ca_file = pki.ca_file,
					  .http2 = true, .connect_timeout_ms = 20000};
		REQUIRE(httpc_start(e.h, &r, on_got, &g[i], NULL) == 0);
	}
	int total = 0;
	RUN_UNTIL(e.base, (total = g[0].calls + g[1].calls + g[2].calls + g[3].calls +
				   g[4].calls + g[5].calls) == 6);
	CHECK_INT(total, 6);
	CHECK(mono_ms() - t0 < 10000);
	for (int i = 0; i < 6; i++) {
		CHECK_INT(g[i].calls, 1);
		CHECK_INT(g[i].result, HTTPC_CONNECT_FAILED);
		got_free(&g[i]);
	}
	CHECK_INT(stats_of(&e).waves, 2); /* the probe, then all the rest */
	CHECK_INT(httpc_active(e.h), 0);
	env_done(&e);
}

static void test_start_failures(void)
{
	struct env e;
	REQUIRE(env_init(&e, false, h_echo, NULL));
	int before = callbacks_total;
	struct got g = {0};
	struct httpc_call *call = NULL;
	struct httpc_request ok = req_for(&e, "/");

	static const char *const bad_headers[][2] = {
		{"X-Evil: a\r\nInjected: b", NULL},
		{"X-Evil: a\nInjected: b", NULL},
		{"X-Evil: a\r", NULL},
		{"No colon here", NULL},
	};
	for (size_t i = 0; i < sizeof(bad_headers) / sizeof(bad_headers[0]); i++) {
		struct httpc_request r = ok;
		r.headers = bad_headers[i];
		CHECK_INT(httpc_start(e.h, &r, on_got, &g, &call), HK_ERR_INVAL);
		/* a good header before a bad one: still refused as a whole */
		const char *mixed[] = {"X-Good: 1", bad_headers[i][0], NULL};
		r.headers = mixed;
		CHECK_INT(httpc_start(e.h, &r, on_got, &g, &call), HK_ERR_INVAL);
	}
	struct httpc_request r = ok;
	r.content_type = "text/plain\r\nX-Injected: 1";
	CHECK_INT(httpc_start(e.h, &r, on_got, &g, &call), HK_ERR_INVAL);
	r = ok;
	r.user_agent = "Halfkey\r\nX-Injected: 1";
	CHECK_INT(httpc_start(e.h, &r, on_got, &g, &call), HK_ERR_INVAL);
	r = ok;
	r.method = "GET / HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET";
	CHECK_INT(httpc_start(e.h, &r, on_got, &g, &call), HK_ERR_INVAL);
	r = ok;
	r.method = "";
	CHECK_INT(httpc_start(e.h, &r, on_got, &g, &call), HK_ERR_INVAL);
	r = ok;
	r.method = "POST";
	r.body = NULL;
	r.body_len = 10;
	CHECK_INT(httpc_start(e.h, &r, on_got, &g, &call), HK_ERR_INVAL);
	r = ok;
	r.body_max = SIZE_MAX; /* not "unlimited": no buffer can be that large */
	CHECK_INT(httpc_start(e.h, &r, on_got, &g, &call), HK_ERR_INVAL);
	r = ok;
	r.url = NULL;
	CHECK_INT(httpc_start(e.h, &r, on_got, &g, &call), HK_ERR_INVAL);
	r = ok;
	r.method = NULL;
	CHECK_INT(httpc_start(e.h, &r, on_got, &g, &call), HK_ERR_INVAL);
	CHECK_INT(httpc_start(e.h, &ok, NULL, &g, &call), HK_ERR_INVAL);

	static const char *const bad_auth[] = {"Basic YWxpY2U6cHc=\r\nX-Injected: 1",
					       "Basic YWxp\nY2U6cHc=", "Basic YWxpY2U6cHc=\r"};
	for (size_t i = 0; i < sizeof(bad_auth) / sizeof(bad_auth[0]); i++) {
		struct secret *s = secret_dup(bad_auth[i], strlen(bad_auth[i]));
		r = ok;
		r.authorization = s;
		CHECK_INT(httpc_start(e.h, &r, on_got, &g, &call), HK_ERR_INVAL);
		secret_free(&s);
	}
	static const char nul_auth[] = "Basic YWxp\0Y2U6cHc=";
	struct secret *s = secret_dup(nul_auth, sizeof(nul_auth) - 1);
	r = ok;
	r.authorization = s;
	CHECK_INT(httpc_start(e.h, &r, on_got, &g, &call), HK_ERR_INVAL);
	secret_free(&s);

	CHECK(call == NULL);
	CHECK_INT(httpc_active(e.h), 0);
	/* the client is fine afterwards, and nothing failed reached the server */
	struct got control;
	if (fetch(&e, &ok, &control))
		CHECK_INT(control.result, HTTPC_OK);
	got_free(&control);
	run_for(e.base, 50);
	CHECK_INT(g.calls, 0);
	CHECK_INT(callbacks_total, before + 1);
	CHECK_INT(tfx_server_count(e.srv), 1);
	env_done(&e);
}

/* ---- Authorization ------------------------------------------------------ */

static void test_authorization(void)
{
	for (int tls = 0; tls <= 1; tls++) {
		struct env e;
		REQUIRE(env_init(&e, tls, h_echo, NULL));
		static const char v[] = "Basic YWxpY2U6cHc=";
		struct secret *auth = secret_dup(v, sizeof(v) - 1);
		const char *extra[] = {"X-Other: 1", NULL};
		struct httpc_request r = req_for(&e, "/auth");
		r.method = "POST";
		r.authorization = auth;
		r.headers = extra;
		r.body = (const uint8_t *)"b";
		r.body_len = 1;
		r.content_type = "text/plain";
		struct got g;
		if (fetch(&e, &r, &g)) {
			const struct tfx_request *rec = tfx_server_last(e.srv);
			CHECK_INT(g.result, HTTPC_OK);
			CHECK_STR(tfx_request_header(rec, "Authorization"), v);
			CHECK_INT(tfx_request_header_count(rec, "Authorization"), 1);
			CHECK_STR(tfx_request_header(rec, "X-Other"), "1");
			CHECK_STR(tfx_request_header(rec, "Content-Type"), "text/plain");
		}
		got_free(&g);
		/* the caller's secret is untouched */
		CHECK_INT(secret_len(auth), sizeof(v) - 1);
		CHECK_MEM(secret_cbytes(auth), v, sizeof(v) - 1);
		secret_free(&auth);
		env_done(&e);
	}
}

/* Every block the wiping allocator frees must be zero when it goes back
 * to the C library. */
static size_t hook_blocks, hook_dirty;

static void on_free_block(const void *block, size_t len)
{
	const uint8_t *b = block;
	hook_blocks++;
	for (size_t i = 0; i < len; i++) {
		if (b[i] != 0) {
			hook_dirty++;
			return;
		}
	}
}

#define SCAN_MASK 0xa5
#define SCAN_CHUNK (1u << 20)

struct region {
	uintptr_t lo, hi;
	char name[160]; /* the maps line */
};

/* Counts copies of a needle in every readable, writable mapping of this
 * process, read through /proc/self/mem (so freed and poisoned memory is
 * read too, also under ASan). The needle is given XOR-masked so that this
 * test never holds a plain copy of its own. report: print where. */
static size_t scan_memory(const uint8_t *masked, size_t n, bool report)
{
	FILE *maps = fopen("/proc/self/maps", "r");
	int mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	uint8_t *buf = mmap(NULL, SCAN_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			    -1, 0);
	size_t cap = 256, count = 0, hits = 0;
	struct region *regs = malloc(cap * sizeof(*regs));
	if (maps == NULL || mem < 0 || buf == MAP_FAILED || regs == NULL)
		abort();
	char line[512];
	while (fgets(line, sizeof(line), maps) != NULL) {
		char *end;
		uintptr_t lo = strtoull(line, &end, 16);
		if (*end != '-')
			continue;
		uintptr_t hi = strtoull(end + 1, &end, 16);
		if (end[0] != ' ' || end[1] != 'r' || end[2] != 'w')
			continue;
		/* sanitizer shadow and reserved arenas: huge and never our data */
		if (hi - lo > (1ul << 30))
			continue;
		if (count == cap) {
			cap *= 2;
			regs = realloc(regs, cap * sizeof(*regs));
			if (regs == NULL)
				abort();
		}
		size_t ln = strcspn(line, "\n");
		if (ln >= sizeof(regs[count].name))
			ln = sizeof(regs[count].name) - 1;
		memcpy(regs[count].name, line, ln);
		regs[count].name[ln] = '\0';
		regs[count].lo = lo;
		regs[count].hi = hi;
		count++;
	}
	fclose(maps);
	uint8_t first = masked[0] ^ SCAN_MASK;
	for (size_t r = 0; r < count; r++) {
		uintptr_t at = regs[r].lo;
		while (at < regs[r].hi) {
			if (at >= (uintptr_t)buf && at < (uintptr_t)buf + SCAN_CHUNK) {
				at = (uintptr_t)buf + SCAN_CHUNK; /* our own window */
				continue;
			}
			size_t want = regs[r].hi - at < SCAN_CHUNK ? regs[r].hi - at : SCAN_CHUNK;
			ssize_t got = pread(mem, buf, want, (off_t)at);
			if (got <= 0) {
				at += 4096; /* an unreadable page */
				continue;
			}
			size_t len = (size_t)got;
			for (size_t i = 0; i + n <= len; i++) {
				const uint8_t *p = memchr(buf + i, first, len - n + 1 - i);
				if (p == NULL)
					break;
				i = (size_t)(p - buf);
				size_t j = 1;
				while (j < n && (p[j] ^ SCAN_MASK) == masked[j])
					j++;
				if (j == n) {
					hits++;
					if (report)
						fprintf(stderr, "  copy at %#lx in %s\n",
							(unsigned long)(at + i), regs[r].name);
				}
			}
			/* overlap so a copy across two reads is seen */
			at += len > n ? len - n + 1 : len;
		}
	}
	free(regs);
	munmap(buf, SCAN_CHUNK);
	close(mem);
	return hits;
}

/* A random credential is sent over TLS; afterwards (client and server
 * freed) no copy of its base64 form is anywhere in the process, and every
 * block freed meanwhile was wiped. The scanner first proves it finds a
 * planted copy. */
static void test_authorization_no_copy(void)
{
	/* "Basic " and the base64 of 24 random bytes, encoded in place: the
	 * token exists in this secret only, and masked below. */
	enum { RAW = 24, B64 = 32 };
	struct secret *raw = secret_random(RAW);
	struct secret *auth = secret_new(6 + B64 + 1);
	memcpy(secret_bytes(auth), "Basic ", 6);
	REQUIRE(EVP_EncodeBlock(secret_bytes(auth) + 6, secret_cbytes(raw), RAW) == B64);
	secret_truncate(auth, 6 + B64); /* without EncodeBlock's NUL */
	secret_free(&raw);
	uint8_t masked[B64];
	for (size_t i = 0; i < B64; i++)
		masked[i] = secret_cbytes(auth)[6 + i] ^ SCAN_MASK;

	/* The scanner works: it finds the live secret (in OpenSSL's secure
	 * heap) and a planted copy on the ordinary heap, and no longer the
	 * plant once it is wiped. (At least: under valgrind the guest's
	 * vector registers live in memory, and the planting loop may have
	 * just left the token in one.) */
	uint8_t *plant = malloc(64);
	REQUIRE(plant != NULL);
	for (size_t i = 0; i < B64; i++)
		plant[i + 7] = masked[i] ^ SCAN_MASK;
	size_t planted = scan_memory(masked, B64, false);
	CHECK(planted >= 2);
	OPENSSL_cleanse(plant, 64);
	free(plant);
	size_t unplanted = scan_memory(masked, B64, false);
	CHECK(unplanted >= 1 && unplanted < planted);

	struct env e;
	REQUIRE(env_init(&e, true, h_echo, NULL));
	hook_blocks = hook_dirty = 0;
	wipealloc_set_free_hook(on_free_block);
	struct httpc_request r = req_for(&e, "/Microsoft-Server-ActiveSync?Cmd=FolderSync");
	r.method = "POST";
	r.authorization = auth;
	r.body = (const uint8_t *)"\x03\x01\x6a\x00";
	r.body_len = 4;
	r.content_type = "application/vnd.ms-sync.wbxml";
	struct got g;
	if (fetch(&e, &r, &g)) {
		CHECK_INT(g.result, HTTPC_OK);
		const char *seen = tfx_request_header(tfx_server_last(e.srv), "Authorization");
		CHECK(seen != NULL && strlen(seen) == secret_len(auth) &&
		      memcmp(seen, secret_cbytes(auth), secret_len(auth)) == 0);
	}
	got_free(&g);
	/* and a second request on the kept-alive connection */
	if (fetch(&e, &r, &g))
		CHECK_INT(g.result, HTTPC_OK);
	got_free(&g);
	secret_free(&auth);
	env_done(&e);
	wipealloc_set_free_hook(NULL);
	CHECK(hook_blocks > 100);
	CHECK_INT(hook_dirty, 0);
	CHECK_INT(scan_memory(masked, B64, true), 0);
}

/* ---- misc ------------------------------------------------------------------- */

static void test_elapsed(void)
{
	struct big b = {.len = 2};
	struct env e;
	REQUIRE(env_init(&e, false, h_big, &b));
	struct httpc_request r = req_for(&e, "/now");
	struct got g;
	int64_t t0 = mono_ms();
	if (fetch(&e, &r, &g)) {
		int64_t took = mono_ms() - t0;
		CHECK(g.elapsed_ms >= 0);
		CHECK(g.elapsed_ms <= took + 5);
	}
	got_free(&g);
	env_done(&e);

	REQUIRE(env_init(&e, true, h_staggered, NULL));
	/* h_staggered: /x/<i> waits (i % 10) * 3 ms: 27 ms */
	r = req_for(&e, "/delay/9");
	t0 = mono_ms();
	if (fetch(&e, &r, &g)) {
		int64_t took = mono_ms() - t0;
		CHECK_INT(g.result, HTTPC_OK);
		CHECK(g.elapsed_ms >= 25);
		CHECK(g.elapsed_ms <= took + 5);
	}
	got_free(&g);
	env_done(&e);
}

static void test_result_str(void)
{
	for (int i = HTTPC_OK; i <= HTTPC_FAILED; i++) {
		const char *s = httpc_result_str((enum httpc_result)i);
		CHECK(s != NULL && s[0] != '\0');
	}
	CHECK_STR(httpc_result_str(HTTPC_OK), "ok");
	CHECK_STR(httpc_result_str((enum httpc_result)99), "transfer failed");
}

TESTS(TEST(test_fixture_pki), TEST(test_roundtrip_plain), TEST(test_roundtrip_tls),
      TEST(test_tls_localhost), TEST(test_status_codes), TEST(test_many_headers),
      TEST(test_tls_wrong_ca), TEST(test_tls_wrong_name), TEST(test_tls_to_plain_server),
      TEST(test_connect_refused), TEST(test_timeout_no_answer),
      TEST(test_timeout_tls_handshake), TEST(test_server_closes), TEST(test_body_too_large),
      TEST(test_header_flood), TEST(test_concurrent_plain), TEST(test_concurrent_tls),
      TEST(test_cancel_before_start), TEST(test_cancel_during_transfer),
      TEST(test_cancel_from_callback), TEST(test_cancel_at_every_step),
      TEST(test_callback_starts_request), TEST(test_malformed_responses),
      TEST(test_other_schemes),
      TEST(test_free_in_flight), TEST(test_retire), TEST(test_retire_twice),
      TEST(test_admission_waves), TEST(test_admission_unreachable),
      TEST(test_start_failures), TEST(test_authorization),
      TEST(test_authorization_no_copy), TEST(test_elapsed), TEST(test_result_str));
