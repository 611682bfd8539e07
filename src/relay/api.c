#include "relay/api.h"

#include "crypto/devtoken.h"
#include "crypto/wipealloc.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "relay/control.h"
#include "relay/ratelimit.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <jansson.h>
#include <openssl/err.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_B64_MAX 64

struct pending_reg {
	struct pending_reg *prev, *next;
	struct api *api;
	struct evhttp_request *req; /* NULL once the client went away */
	struct evhttp_connection *conn;
};

struct api {
	struct api_config cfg;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct ratelimit *reg_rl, *dev_rl;
	struct pending_reg *pending;
	/* limits.max_connections: open TLS connections, counted from accept
	 * (make_ssl_bev) to SSL_free (on_ssl_free); at the limit the listener
	 * stops accepting and new connections wait in the kernel's backlog */
	struct conn_count *count;
	bool paused;
	int64_t warned_ms; /* monotonic */
};

int api_init_allocators(void)
{
	event_set_mem_functions(wipealloc_malloc, wipealloc_realloc, wipealloc_free);
	control_json_init(); /* jansson: the one place that installs it */
	return 0;
}

/* ---- replies --------------------------------------------------------- */

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

static void send_json(struct evhttp_request *req, int status, json_t *body, bool problem)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	struct evbuffer *out = NULL;
	if (body != NULL && status != 204) {
		evhttp_add_header(h, "Content-Type",
				  problem ? "application/problem+json" : "application/json");
		char *s = json_dumps(body, JSON_COMPACT);
		out = evbuffer_new();
		if (s != NULL && out != NULL)
			evbuffer_add(out, s, strlen(s));
		wipealloc_free(s); /* jansson's allocator: zeroed (it may hold a token) */
	}
	evhttp_send_reply(req, status, reason(status), out);
	if (out != NULL)
		evbuffer_free(out);
	json_decref(body);
}

/* RFC 7807 problem details. */
static void send_problem(struct evhttp_request *req, int status, const char *type,
			 const char *detail)
{
	json_t *p = json_pack("{s:s, s:s, s:i, s:s}", "type", type ? type : "about:blank",
			      "title", reason(status), "status", status, "detail",
			      detail ? detail : reason(status));
	send_json(req, status, p, true);
}

static void send_result(struct evhttp_request *req, const struct engine_result *r)
{
	if (r->status >= 400) {
		send_problem(req, r->status, r->type, r->detail);
		return;
	}
	json_t *o = json_object();
	if (r->account_id[0] != '\0')
		json_object_set_new(o, "account_id", json_string(r->account_id));
	if (r->device_id[0] != '\0')
		json_object_set_new(o, "device_id", json_string(r->device_id));
	if (r->token[0] != '\0')
		json_object_set_new(o, "token", json_string(r->token));
	json_object_set_new(o, "state", json_string(r->detail));
	send_json(req, r->status, o, false);
}

/* ---- request parsing ------------------------------------------------- */

/* The body, moved into guarded memory (it may hold a password or a device
 * key); libevent's chains are freed, and so zeroed, as it is drained. */
static struct secret *take_body(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in);
	struct secret *s = secret_new(n);
	if (n > 0 && evbuffer_remove(in, secret_bytes(s), n) != (int)n) {
		secret_free(&s);
		return NULL;
	}
	return s;
}

static json_t *parse_json(const struct secret *body, const char **error_r)
{
	json_error_t jerr;
	json_t *j = json_loadb((const char *)secret_cbytes(body), secret_len(body),
			       JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL) {
		*error_r = "malformed JSON";
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		*error_r = "the body must be a JSON object";
		return NULL;
	}
	return j;
}

/* Copies an optional string member; false (with error) when it has the
 * wrong type, holds a NUL, or does not fit. */
static bool get_str(json_t *o, const char *key, char *out, size_t cap, bool required,
		    char *error, size_t error_len)
{
	json_t *v = json_object_get(o, key);
	out[0] = '\0';
	if (v == NULL || json_is_null(v)) {
		if (required)
			snprintf(error, error_len, "missing field \"%s\"", key);
		return !required;
	}
	if (!json_is_string(v)) {
		snprintf(error, error_len, "field \"%s\" must be a string", key);
		return false;
	}
	size_t n = json_string_length(v);
	if (n >= cap || memchr(json_string_value(v), '\0', n) != NULL) {
		snprintf(error, error_len, "field \"%s\" is too long or holds a NUL", key);
		return false;
	}
	memcpy(out, json_string_value(v), n + 1);
	return true;
}

/* A 32-byte key given as base64url (padding optional) or base64. */
static struct secret *get_key(json_t *o, const char *key, char *error, size_t error_len)
{
	json_t *v = json_object_get(o, key);
	if (v == NULL || !json_is_string(v)) {
		snprintf(error, error_len, "field \"%s\" must be a base64url string", key);
		return NULL;
	}
	const char *b64 = json_string_value(v);
	size_t n = json_string_length(v), len = 0;
	struct secret *k = secret_new(HK_KEY_LEN + 3);
	const int variants[] = {sodium_base64_VARIANT_URLSAFE_NO_PADDING,
				sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_ORIGINAL};
	bool ok = false;
	for (size_t i = 0; i < 3 && !ok; i++) {
		const char *end = NULL;
		ok = sodium_base642bin(secret_bytes(k), secret_len(k), b64, n, NULL, &len, &end,
				       variants[i]) == 0 &&
		     end == b64 + n;
	}
	if (!ok || len != HK_KEY_LEN) {
		snprintf(error, error_len, "field \"%s\" must be 32 bytes in base64url", key);
		secret_free(&k);
		return NULL;
	}
	secret_truncate(k, HK_KEY_LEN);
	return k;
}

/* The device token of "Authorization: Bearer <base64url>"; 0 or -1. */
static int bearer(struct evhttp_request *req, uint8_t token[DEVTOKEN_LEN + 8], size_t *len_r)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return -1;
	const char *b64 = h + 7;
	size_t n = strnlen(b64, TOKEN_B64_MAX + 1);
	const char *end = NULL;
	if (n > TOKEN_B64_MAX ||
	    sodium_base642bin(token, DEVTOKEN_LEN + 8, b64, n, NULL, len_r, &end,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    end != b64 + n)
		return -1;
	return 0;
}

static void peer_of(struct evhttp_request *req, char *out, size_t cap)
{
	char *addr = NULL;
	ev_uint16_t port = 0;
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	if (c != NULL)
		evhttp_connection_get_peer(c, &addr, &port);
	snprintf(out, cap, "%s", addr != NULL ? addr : "?");
}

/* ---- routes ---------------------------------------------------------- */

static void pending_unlink(struct pending_reg *p)
{
	struct api *api = p->api;
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		api->pending = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
}

static void on_conn_closed(struct evhttp_connection *conn, void *arg)
{
	(void)conn;
	struct pending_reg *p = arg;
	p->req = NULL; /* the engine's answer will find nobody to send to */
	p->conn = NULL;
}

static void on_registered(const struct engine_result *res, void *ctx)
{
	struct pending_reg *p = ctx;
	if (p->req != NULL) {
		evhttp_connection_set_closecb(p->conn, NULL, NULL);
		send_result(p->req, res);
	}
	pending_unlink(p);
	free(p);
}

static void do_register(struct api *api, struct evhttp_request *req)
{
	char peer[64], err[160] = "";
	const char *jerr = NULL;
	peer_of(req, peer, sizeof(peer));
	if (!ratelimit_hit(api->reg_rl, peer, hk_clock_mono(api->cfg.clock))) {
		send_problem(req, 429, "urn:halfkey:too-many-attempts",
			     "too many registrations from this address; retry in a minute");
		return;
	}
	struct secret *body = take_body(req);
	json_t *j = body != NULL ? parse_json(body, &jerr) : NULL;
	secret_free(&body);
	if (j == NULL) {
		send_problem(req, 400, NULL, jerr != NULL ? jerr : "unreadable body");
		return;
	}
	struct engine_register_req r = {0};
	char email[STORE_NAME_MAX];
	bool ok = get_str(j, "server", r.server_url, sizeof(r.server_url), false, err,
			  sizeof(err)) &&
		  get_str(j, "email", email, sizeof(email), false, err, sizeof(err)) &&
		  get_str(j, "username", r.username, sizeof(r.username), email[0] == '\0', err,
			  sizeof(err)) &&
		  get_str(j, "device_id", r.device_id, sizeof(r.device_id), true, err,
			  sizeof(err)) &&
		  get_str(j, "device_type", r.device_type, sizeof(r.device_type), true, err,
			  sizeof(err));
	if (ok) {
		if (r.username[0] == '\0')
			snprintf(r.username, sizeof(r.username), "%s", email);
		snprintf(r.email, sizeof(r.email), "%s", email);
		json_t *pw = json_object_get(j, "password");
		if (pw == NULL || !json_is_string(pw) || json_string_length(pw) == 0) {
			snprintf(err, sizeof(err), "field \"password\" must be a non-empty string");
			ok = false;
		} else {
			r.password = secret_dup(json_string_value(pw), json_string_length(pw));
			r.device_key = get_key(j, "device_key", err, sizeof(err));
			ok = r.device_key != NULL;
		}
	}
	json_decref(j); /* its strings are zeroed by the wiping allocator */
	const char *ua = evhttp_find_header(evhttp_request_get_input_headers(req), "User-Agent");
	snprintf(r.user_agent, sizeof(r.user_agent), "%s", ua != NULL ? ua : "");
	if (!ok) {
		secret_free(&r.password);
		secret_free(&r.device_key);
		send_problem(req, 400, NULL, err);
		return;
	}
	struct pending_reg *p = calloc(1, sizeof(*p));
	if (p == NULL)
		abort();
	p->api = api;
	p->req = req;
	p->conn = evhttp_request_get_connection(req);
	p->next = api->pending;
	if (api->pending != NULL)
		api->pending->prev = p;
	api->pending = p;
	evhttp_connection_set_closecb(p->conn, on_conn_closed, p);
	log_info("register %s at %s from %s", r.username,
		 r.server_url[0] ? r.server_url : "(default server)", peer);
	if (engine_register(api->cfg.engine, &r, on_registered, p) < 0) {
		evhttp_connection_set_closecb(p->conn, NULL, NULL);
		pending_unlink(p);
		free(p);
		send_problem(req, 500, NULL, "registration could not start");
	}
}

/* Authenticated routes: token from the Authorization header, per-device
 * rate limit, then the engine call. */
static void do_authenticated(struct api *api, struct evhttp_request *req, const char *route)
{
	uint8_t token[DEVTOKEN_LEN + 8];
	size_t tlen = 0;
	struct engine_result res;
	if (bearer(req, token, &tlen) < 0) {
		struct evkeyvalq *h = evhttp_request_get_output_headers(req);
		evhttp_add_header(h, "WWW-Authenticate", "Bearer realm=\"halfkey\"");
		send_problem(req, 401, NULL, "missing or malformed bearer token");
		return;
	}
	char key[DEVTOKEN_HASH_LEN * 2 + 1];
	uint8_t hash[DEVTOKEN_HASH_LEN];
	if (devtoken_hash(token, tlen, hash) < 0) {
		send_problem(req, 500, NULL, "internal error");
		goto out;
	}
	/* rate-limit by a prefix of the token's hash: never the token itself */
	sodium_bin2hex(key, sizeof(key), hash, 12);
	if (!ratelimit_hit(api->dev_rl, key, hk_clock_mono(api->cfg.clock))) {
		send_problem(req, 429, "urn:halfkey:too-many-requests",
			     "too many requests for this device; slow down");
		goto out;
	}
	if (strcmp(route, "unlock") == 0) {
		struct secret *body = take_body(req);
		const char *jerr = NULL;
		char err[160] = "";
		json_t *j = body != NULL ? parse_json(body, &jerr) : NULL;
		secret_free(&body);
		if (j == NULL) {
			send_problem(req, 400, NULL, jerr != NULL ? jerr : "unreadable body");
			goto out;
		}
		struct secret *dk = get_key(j, "device_key", err, sizeof(err));
		json_decref(j);
		if (dk == NULL) {
			send_problem(req, 400, NULL, err);
			goto out;
		}
		engine_unlock(api->cfg.engine, token, tlen, dk, &res);
	} else if (strcmp(route, "ping") == 0) {
		engine_touch(api->cfg.engine, token, tlen, &res);
	} else {
		engine_delete(api->cfg.engine, token, tlen, &res);
	}
	send_result(req, &res);
out:
	secmem_wipe(token, sizeof(token));
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct api *api = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	if (path == NULL) {
		send_problem(req, 400, NULL, "malformed request target");
		return;
	}
	struct {
		const char *path;
		enum evhttp_cmd_type method;
		const char *route;
	} routes[] = {
		{"/register", EVHTTP_REQ_POST, "register"},
		{"/unlock", EVHTTP_REQ_POST, "unlock"},
		{"/ping", EVHTTP_REQ_POST, "ping"},
		{"/account", EVHTTP_REQ_DELETE, "delete"},
		{"/health", EVHTTP_REQ_GET, "health"},
	};
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strcmp(path, routes[i].path) != 0)
			continue;
		if (m != routes[i].method) {
			send_problem(req, 405, NULL, "method not allowed on this resource");
			return;
		}
		if (strcmp(routes[i].route, "register") == 0)
			do_register(api, req);
		else if (strcmp(routes[i].route, "health") == 0)
			send_json(req, 200, json_pack("{s:s}", "status", "ok"), false);
		else
			do_authenticated(api, req, routes[i].route);
		return;
	}
	send_problem(req, 404, NULL, "no such resource");
}

/* ---- server ---------------------------------------------------------- */

/* The SSL ex_data slot that ties each connection's SSL to its api's
 * count: its free callback runs when libevent frees the connection
 * (SSL_free). libevent may free a connection after evhttp_free has
 * returned (bufferevents are finalized from the loop), so the SSL holds a
 * reference to the count, not to the api, and the api detaches from the
 * count when it goes. */
static int conn_slot = -1;

struct conn_count {
	struct api *api; /* NULL once the api is freed */
	size_t open;	 /* connections of the api */
	size_t refs;	 /* the api's + one per SSL */
};

static void count_unref(struct conn_count *cc)
{
	if (--cc->refs == 0)
		free(cc);
}

static void set_paused(struct api *api, bool paused)
{
	if (api->paused == paused)
		return;
	struct evconnlistener *l = evhttp_bound_socket_get_listener(api->bound);
	if (l == NULL || (paused ? evconnlistener_disable(l) : evconnlistener_enable(l)) < 0) {
		log_err("api: cannot %s accepting connections", paused ? "pause" : "resume");
		return;
	}
	api->paused = paused;
	/* at the limit it pauses and resumes per connection: warn once a minute */
	int64_t now = hk_clock_mono(hk_clock_real());
	if (paused && (api->warned_ms == 0 || now - api->warned_ms >= 60000)) {
		api->warned_ms = now;
		log_warn("api: %zu connections (limits.max_connections): new ones wait until "
			 "one closes",
			 api->count->open);
	} else {
		log_debug("api: %s accepting connections", paused ? "paused" : "resumed");
	}
}

static void on_ssl_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	struct conn_count *cc = ptr;
	if (cc == NULL)
		return;
	cc->open--;
	struct api *api = cc->api;
	if (api != NULL && api->paused && cc->open < api->cfg.max_connections)
		set_paused(api, false);
	count_unref(cc);
}

static struct bufferevent *make_ssl_bev(struct event_base *base, void *arg)
{
	struct api *api = arg;
	struct conn_count *cc = api->count;
	SSL *ssl = SSL_new(api->cfg.ssl_ctx);
	if (ssl == NULL)
		return NULL;
	if (SSL_set_ex_data(ssl, conn_slot, cc) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	/* from here SSL_free, wherever and whenever it happens, counts the
	 * connection out */
	cc->refs++;
	cc->open++;
	struct bufferevent *bev =
		bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
					       BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		SSL_free(ssl);
	else if (api->cfg.max_connections > 0 && cc->open >= api->cfg.max_connections)
		set_paused(api, true);
	return bev;
}

int api_ssl_ctx_new(const char *cert_file, const char *key_file, bool min_tls13,
		    SSL_CTX **ctx_r, const char **error_r)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		*error_r = "cannot create a TLS context";
		return HK_ERR_CRYPTO;
	}
	SSL_CTX_set_min_proto_version(ctx, min_tls13 ? TLS1_3_VERSION : TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
					 SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/* TLS 1.2: forward-secret AEAD suites only */
	SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20");
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		*error_r = "cannot load the TLS certificate chain";
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		*error_r = "cannot load the TLS private key (or it does not match)";
		goto fail;
	}
	*ctx_r = ctx;
	return 0;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return HK_ERR_IO;
}

int api_start(const struct api_config *cfg, struct api **api_r, const char **error_r)
{
	struct api *api = calloc(1, sizeof(*api));
	if (api == NULL)
		abort();
	api->cfg = *cfg;
	api->count = calloc(1, sizeof(*api->count));
	if (api->count == NULL)
		abort();
	api->count->api = api;
	api->count->refs = 1;
	api->http = evhttp_new(cfg->base);
	if (api->http == NULL) {
		*error_r = "cannot create the HTTP server";
		api_free(&api);
		return HK_ERR_NOMEM;
	}
	evhttp_set_max_body_size(api->http, cfg->max_body > 0 ? cfg->max_body : 65536);
	evhttp_set_max_headers_size(api->http, cfg->max_headers > 0 ? cfg->max_headers : 8192);
	evhttp_set_timeout(api->http, cfg->timeout_s > 0 ? cfg->timeout_s : 30);
	evhttp_set_allowed_methods(api->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
						      EVHTTP_REQ_DELETE);
	evhttp_set_default_content_type(api->http, "application/json");
	if (cfg->ssl_ctx != NULL) {
		if (conn_slot < 0)
			conn_slot = SSL_get_ex_new_index(0, NULL, NULL, NULL, on_ssl_free);
		if (conn_slot < 0) {
			*error_r = "cannot set up connection accounting";
			api_free(&api);
			return HK_ERR_NOMEM;
		}
		evhttp_set_bevcb(api->http, make_ssl_bev, api);
	}
	evhttp_set_gencb(api->http, on_request, api);
	api->reg_rl = ratelimit_new(cfg->register_per_minute > 0 ? cfg->register_per_minute : 10,
				    60000, 65536);
	api->dev_rl = ratelimit_new(cfg->requests_per_minute > 0 ? cfg->requests_per_minute : 60,
				    60000, 65536);
	api->bound = evhttp_bind_socket_with_handle(api->http, cfg->address, cfg->port);
	if (api->bound == NULL) {
		*error_r = "cannot listen on the configured address and port";
		api_free(&api);
		return HK_ERR_IO;
	}
	*api_r = api;
	return 0;
}

size_t api_connections(const struct api *api)
{
	return api->count->open;
}

uint16_t api_port(const struct api *api)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	evutil_socket_t fd = evhttp_bound_socket_get_fd(api->bound);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

void api_free(struct api **ap)
{
	struct api *api = *ap;
	if (api == NULL)
		return;
	*ap = NULL;
	/* The engine must be gone first (engine_free cancels registrations
	 * without calling back), so what is pending here is only ours. */
	while (api->pending != NULL) {
		struct pending_reg *p = api->pending;
		if (p->conn != NULL)
			evhttp_connection_set_closecb(p->conn, NULL, NULL);
		pending_unlink(p);
		free(p);
	}
	/* evhttp_free frees the listener before the connections, and libevent
	 * may free some of those only later: their on_ssl_free must find no api */
	api->count->api = NULL;
	count_unref(api->count);
	if (api->http != NULL)
		evhttp_free(api->http);
	ratelimit_free(&api->reg_rl);
	ratelimit_free(&api->dev_rl);
	free(api);
}
