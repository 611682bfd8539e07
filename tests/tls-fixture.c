#include "tls-fixture.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>

/* ---- PKI -------------------------------------------------------------- */

static int path_join(char *out, const char *dir, const char *name, const char *ext)
{
	int n = snprintf(out, TFX_PATH_MAX, "%s/%s%s", dir, name, ext);
	return n > 0 && n < TFX_PATH_MAX ? 0 : HK_ERR_TOO_LONG;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return HK_ERR_CRYPTO;
	int ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : HK_ERR_CRYPTO;
}

/* A certificate for key named cn. issuer NULL: a self-signed CA; else a
 * server certificate for san signed by issuer/issuer_key. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
		       const char *san)
{
	X509 *x = X509_new();
	BIGNUM *serial = BN_new();
	int ret = x != NULL && serial != NULL ? 0 : HK_ERR_CRYPTO;
	if (ret == 0 && (X509_set_version(x, X509_VERSION_3) != 1 ||
			 BN_rand(serial, 63, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1 ||
			 BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) == NULL ||
			 X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
			 X509_gmtime_adj(X509_getm_notAfter(x), 2 * 86400) == NULL))
		ret = HK_ERR_CRYPTO;
	X509_NAME *name = ret == 0 ? X509_get_subject_name(x) : NULL;
	if (ret == 0 &&
	    (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
					(const unsigned char *)"Halfkey tests", -1, -1, 0) != 1 ||
	     X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn,
					-1, -1, 0) != 1 ||
	     X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name) !=
		     1 ||
	     X509_set_pubkey(x, key) != 1))
		ret = HK_ERR_CRYPTO;
	X509 *iss = issuer != NULL ? issuer : x;
	if (ret == 0 && issuer == NULL) {
		ret = add_ext(x, iss, NID_basic_constraints, "critical,CA:TRUE");
		if (ret == 0)
			ret = add_ext(x, iss, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else if (ret == 0) {
		ret = add_ext(x, iss, NID_basic_constraints, "critical,CA:FALSE");
		if (ret == 0)
			ret = add_ext(x, iss, NID_key_usage, "critical,digitalSignature");
		if (ret == 0)
			ret = add_ext(x, iss, NID_ext_key_usage, "serverAuth");
		if (ret == 0)
			ret = add_ext(x, iss, NID_subject_alt_name, san);
	}
	/* The subject key id first: the authority key id of a self-signed CA is
	 * taken from it. */
	if (ret == 0)
		ret = add_ext(x, iss, NID_subject_key_identifier, "hash");
	if (ret == 0)
		ret = add_ext(x, iss, NID_authority_key_identifier, "keyid:always");
	if (ret == 0 && X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256()) <= 0)
		ret = HK_ERR_CRYPTO;
	BN_free(serial);
	if (ret < 0) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static int write_cert(const char *path, X509 *x)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return HK_ERR_IO;
	int ok = PEM_write_X509(f, x);
	return fclose(f) == 0 && ok == 1 ? 0 : HK_ERR_IO;
}

static int write_key(const char *path, EVP_PKEY *key)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return HK_ERR_IO;
	int ok = fchmod(fileno(f), 0600) == 0 &&
		 PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
	return fclose(f) == 0 && ok ? 0 : HK_ERR_IO;
}

/* A new P-256 key and a certificate for it, written to cert_path/key_path
 * (key_path NULL: the key is not written). */
static int make_pair(const char *cn, X509 *issuer, EVP_PKEY *issuer_key, const char *san,
		     const char *cert_path, const char *key_path, X509 **cert_r, EVP_PKEY **key_r)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = key != NULL ? make_cert(key, cn, issuer, issuer_key, san) : NULL;
	int ret = x != NULL ? 0 : HK_ERR_CRYPTO;
	if (ret == 0)
		ret = write_cert(cert_path, x);
	if (ret == 0 && key_path != NULL)
		ret = write_key(key_path, key);
	if (ret == 0 && cert_r != NULL) {
		*cert_r = x;
		x = NULL;
	}
	if (ret == 0 && key_r != NULL) {
		*key_r = key;
		key = NULL;
	}
	X509_free(x);
	EVP_PKEY_free(key);
	return ret;
}

int tfx_pki_create(const char *dir, struct tfx_pki *pki_r)
{
	struct tfx_pki p;
	memset(&p, 0, sizeof(p));
	int ret = path_join(p.ca_file, dir, "ca", ".pem");
	if (ret == 0)
		ret = path_join(p.ca_key_file, dir, "ca", ".key");
	if (ret == 0)
		ret = path_join(p.cert_file, dir, "server", ".pem");
	if (ret == 0)
		ret = path_join(p.key_file, dir, "server", ".key");
	if (ret == 0)
		ret = path_join(p.other_ca_file, dir, "other-ca", ".pem");
	if (ret < 0)
		return ret;

	X509 *ca = NULL;
	EVP_PKEY *ca_key = NULL;
	ret = make_pair("Halfkey test CA", NULL, NULL, NULL, p.ca_file, p.ca_key_file, &ca,
			&ca_key);
	if (ret == 0)
		ret = make_pair("localhost", ca, ca_key, "IP:127.0.0.1,DNS:localhost", p.cert_file,
				p.key_file, NULL, NULL);
	if (ret == 0)
		ret = make_pair("Halfkey other test CA", NULL, NULL, NULL, p.other_ca_file, NULL,
				NULL, NULL);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	if (ret == 0)
		*pki_r = p;
	return ret;
}

int tfx_pki_issue(const struct tfx_pki *pki, const char *name, const char *san, char *cert_r,
		  char *key_r)
{
	char dir[TFX_PATH_MAX];
	const char *slash = strrchr(pki->ca_file, '/');
	size_t dlen = slash != NULL ? (size_t)(slash - pki->ca_file) : 0;
	if (slash == NULL || dlen >= sizeof(dir))
		return HK_ERR_INVAL;
	memcpy(dir, pki->ca_file, dlen);
	dir[dlen] = '\0';
	int ret = path_join(cert_r, dir, name, ".pem");
	if (ret == 0)
		ret = path_join(key_r, dir, name, ".key");
	if (ret < 0)
		return ret;

	X509 *ca = NULL;
	EVP_PKEY *ca_key = NULL;
	FILE *f = fopen(pki->ca_file, "r");
	if (f != NULL) {
		ca = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	f = fopen(pki->ca_key_file, "r");
	if (f != NULL) {
		ca_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	ret = ca != NULL && ca_key != NULL ? 0 : HK_ERR_IO;
	if (ret == 0)
		ret = make_pair(name, ca, ca_key, san, cert_r, key_r, NULL, NULL);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	return ret;
}

/* ---- server ----------------------------------------------------------- */

/* A request handed to the handler and not yet answered or dropped. */
struct pending {
	struct tfx_server *srv;
	struct pending *prev, *next;
	struct evhttp_request *req;
	struct event *timer; /* set once a delayed reply or a drop is scheduled */
	bool drop;
	int status;
	bool chunked;
	struct evbuffer *body;
};

struct tfx_server {
	struct event_base *base;
	struct evhttp *http;
	SSL_CTX *ssl_ctx; /* NULL: plain HTTP */
	tfx_handler *handler;
	void *ctx;
	char address[64];
	uint16_t port;
	size_t count;
	size_t npending;
	struct pending *pending;
	struct tfx_request last;
};

static void record_wipe(struct tfx_request *r)
{
	if (r->body != NULL) {
		OPENSSL_cleanse(r->body, r->body_len + 1);
		free(r->body);
	}
	OPENSSL_cleanse(r, sizeof(*r));
}

static const char *method_name(enum evhttp_cmd_type t)
{
	switch (t) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_TRACE: return "TRACE";
	case EVHTTP_REQ_CONNECT: return "CONNECT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	}
	return "?";
}

/* Copies s into the record's header buffer; NULL when it is full. */
static const char *record_str(struct tfx_request *r, const char *s)
{
	size_t n = strlen(s) + 1;
	if (n > sizeof(r->header_buf) - r->header_buf_len)
		return NULL;
	char *p = r->header_buf + r->header_buf_len;
	memcpy(p, s, n);
	r->header_buf_len += n;
	return p;
}

static void record(struct tfx_request *r, struct evhttp_request *req)
{
	record_wipe(r);
	snprintf(r->method, sizeof(r->method), "%s", method_name(evhttp_request_get_command(req)));
	const char *uri = evhttp_request_get_uri(req);
	if ((size_t)snprintf(r->uri, sizeof(r->uri), "%s", uri) >= sizeof(r->uri))
		r->truncated = true;
	const struct evkeyvalq *hs = evhttp_request_get_input_headers(req);
	for (const struct evkeyval *kv = hs->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
		const char *name = NULL, *value = NULL;
		if (r->header_count < TFX_MAX_HEADERS) {
			name = record_str(r, kv->key);
			value = name != NULL ? record_str(r, kv->value) : NULL;
		}
		if (value == NULL) {
			r->truncated = true;
			break;
		}
		r->headers[r->header_count].name = name;
		r->headers[r->header_count].value = value;
		r->header_count++;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	if (len > TFX_BODY_MAX) {
		len = TFX_BODY_MAX;
		r->truncated = true;
	}
	r->body = malloc(len + 1);
	if (r->body == NULL)
		abort();
	if (evbuffer_copyout(in, r->body, len) != (ev_ssize_t)len)
		abort();
	r->body[len] = '\0';
	r->body_len = len;
}

static struct pending *pending_find(struct tfx_server *srv, struct evhttp_request *req)
{
	for (struct pending *p = srv->pending; p != NULL; p = p->next)
		if (p->req == req)
			return p;
	/* Answering twice, or a request this server never saw: a test bug. */
	fprintf(stderr, "tls-fixture: request is not pending\n");
	abort();
}

static void pending_free(struct pending *p)
{
	struct tfx_server *srv = p->srv;
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		srv->pending = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	srv->npending--;
	if (p->timer != NULL)
		event_free(p->timer);
	if (p->body != NULL)
		evbuffer_free(p->body);
	free(p);
}

/* Ends p's request now, as scheduled, and forgets p. */
static void pending_finish(struct pending *p)
{
	struct evhttp_request *req = p->req;
	if (p->drop) {
		/* The connection owns the request; a request whose client left
		 * while it waited was detached from it and is ours to free. */
		struct evhttp_connection *evcon = evhttp_request_get_connection(req);
		if (evcon != NULL)
			evhttp_connection_free(evcon);
		else
			evhttp_request_free(req);
	} else if (p->chunked) {
		evhttp_send_reply_start(req, p->status, NULL);
		struct evbuffer *chunk = evbuffer_new();
		if (chunk == NULL)
			abort();
		while (evbuffer_get_length(p->body) > 0) {
			evbuffer_remove_buffer(p->body, chunk, 4096);
			evhttp_send_reply_chunk(req, chunk);
			evbuffer_drain(chunk, evbuffer_get_length(chunk));
		}
		evbuffer_free(chunk);
		evhttp_send_reply_end(req);
	} else {
		/* Frees a detached request itself. */
		evhttp_send_reply(req, p->status, NULL, p->body);
	}
	pending_free(p);
}

static void on_pending_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	pending_finish(arg);
}

static void schedule(struct pending *p, long delay_ms)
{
	p->timer = evtimer_new(p->srv->base, on_pending_timer, p);
	if (p->timer == NULL)
		abort();
	struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
	evtimer_add(p->timer, &tv);
}

void tfx_respond(struct tfx_server *srv, struct evhttp_request *req, const struct tfx_reply *reply)
{
	struct pending *p = pending_find(srv, req);
	if (p->timer != NULL)
		abort(); /* already scheduled */
	p->status = reply->status > 0 ? reply->status : 200;
	p->chunked = reply->chunked;
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	for (const char *const *h = reply->headers; h != NULL && *h != NULL; h++) {
		const char *colon = strchr(*h, ':');
		char name[256];
		size_t n = colon != NULL ? (size_t)(colon - *h) : 0;
		if (n == 0 || n >= sizeof(name))
			abort();
		memcpy(name, *h, n);
		name[n] = '\0';
		const char *value = colon + 1;
		while (*value == ' ')
			value++;
		if (evhttp_add_header(out, name, value) < 0)
			abort();
	}
	p->body = evbuffer_new();
	if (p->body == NULL || evbuffer_add(p->body, reply->body, reply->body_len) < 0)
		abort();
	if (reply->delay_ms > 0)
		schedule(p, reply->delay_ms);
	else
		pending_finish(p);
}

void tfx_drop(struct tfx_server *srv, struct evhttp_request *req, long delay_ms)
{
	struct pending *p = pending_find(srv, req);
	if (p->timer != NULL)
		abort();
	p->drop = true;
	/* Never synchronously: the handler may still be inside evhttp. */
	schedule(p, delay_ms > 0 ? delay_ms : 0);
}

static void default_handler(struct tfx_server *srv, struct evhttp_request *req,
			    const struct tfx_request *rec, void *ctx)
{
	(void)rec;
	(void)ctx;
	tfx_respond(srv, req, &(struct tfx_reply){.body = "ok", .body_len = 2});
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct tfx_server *srv = arg;
	record(&srv->last, req);
	srv->count++;
	struct pending *p = calloc(1, sizeof(*p));
	if (p == NULL)
		abort();
	p->srv = srv;
	p->req = req;
	p->next = srv->pending;
	if (srv->pending != NULL)
		srv->pending->prev = p;
	srv->pending = p;
	srv->npending++;
	srv->handler(srv, req, &srv->last, srv->ctx);
}

static struct bufferevent *make_tls_bev(struct event_base *base, void *arg)
{
	struct tfx_server *srv = arg;
	SSL *ssl = SSL_new(srv->ssl_ctx);
	struct bufferevent *bev =
		ssl != NULL ? bufferevent_openssl_socket_new(base, -1, ssl,
							     BUFFEREVENT_SSL_ACCEPTING,
							     BEV_OPT_CLOSE_ON_FREE)
			    : NULL;
	/* evhttp would fall back to a plain socket on NULL: never serve
	 * plain HTTP from a TLS fixture. */
	if (bev == NULL)
		abort();
	/* A client that closes without close_notify is an EOF, not an error. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

static int tls_setup(struct tfx_server *srv, const char *cert_file, const char *key_file)
{
	srv->ssl_ctx = SSL_CTX_new(TLS_server_method());
	if (srv->ssl_ctx == NULL ||
	    SSL_CTX_set_min_proto_version(srv->ssl_ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_use_certificate_chain_file(srv->ssl_ctx, cert_file) != 1 ||
	    SSL_CTX_use_PrivateKey_file(srv->ssl_ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(srv->ssl_ctx) != 1)
		return HK_ERR_CRYPTO;
	evhttp_set_bevcb(srv->http, make_tls_bev, srv);
	return 0;
}

int tfx_server_new(struct event_base *base, const struct tfx_server_opts *opts,
		   struct tfx_server **srv_r)
{
	if ((opts->cert_file == NULL) != (opts->key_file == NULL))
		return HK_ERR_INVAL;
	signal(SIGPIPE, SIG_IGN);
	struct tfx_server *srv = calloc(1, sizeof(*srv));
	if (srv == NULL)
		abort();
	srv->base = base;
	srv->handler = opts->handler != NULL ? opts->handler : default_handler;
	srv->ctx = opts->ctx;
	snprintf(srv->address, sizeof(srv->address), "%s",
		 opts->address != NULL ? opts->address : "127.0.0.1");
	srv->http = evhttp_new(base);
	int ret = srv->http != NULL ? 0 : HK_ERR_NOMEM;
	if (ret == 0) {
		evhttp_set_allowed_methods(srv->http,
					   EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
						   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
						   EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
		evhttp_set_gencb(srv->http, on_request, srv);
	}
	if (ret == 0 && opts->cert_file != NULL)
		ret = tls_setup(srv, opts->cert_file, opts->key_file);
	struct evhttp_bound_socket *bound =
		ret == 0 ? evhttp_bind_socket_with_handle(srv->http, srv->address, 0) : NULL;
	if (ret == 0 && bound == NULL)
		ret = HK_ERR_IO;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	if (ret == 0 &&
	    getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &sslen) < 0)
		ret = HK_ERR_IO;
	if (ret < 0) {
		tfx_server_free(&srv);
		return ret;
	}
	srv->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
					     : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	*srv_r = srv;
	return 0;
}

void tfx_server_free(struct tfx_server **srvp)
{
	struct tfx_server *srv = *srvp;
	if (srv == NULL)
		return;
	*srvp = NULL;
	/* Unanswered requests still on a connection go with it in
	 * evhttp_free(); detached ones (their client left) are ours. */
	while (srv->pending != NULL) {
		struct pending *p = srv->pending;
		if (evhttp_request_get_connection(p->req) == NULL)
			evhttp_request_free(p->req);
		pending_free(p);
	}
	if (srv->http != NULL)
		evhttp_free(srv->http);
	SSL_CTX_free(srv->ssl_ctx);
	record_wipe(&srv->last);
	free(srv);
}

uint16_t tfx_server_port(const struct tfx_server *srv)
{
	return srv->port;
}

const char *tfx_server_url(const struct tfx_server *srv, const char *path)
{
	static char bufs[8][TFX_PATH_MAX + 64];
	static unsigned next;
	char *b = bufs[next++ % 8];
	snprintf(b, sizeof(bufs[0]), "%s://%s:%u%s", srv->ssl_ctx != NULL ? "https" : "http",
		 srv->address, srv->port, path);
	return b;
}

const struct tfx_request *tfx_server_last(const struct tfx_server *srv)
{
	return &srv->last;
}

size_t tfx_server_count(const struct tfx_server *srv)
{
	return srv->count;
}

size_t tfx_server_pending(const struct tfx_server *srv)
{
	return srv->npending;
}

const char *tfx_request_header(const struct tfx_request *rec, const char *name)
{
	for (size_t i = 0; i < rec->header_count; i++)
		if (strcasecmp(rec->headers[i].name, name) == 0)
			return rec->headers[i].value;
	return NULL;
}

size_t tfx_request_header_count(const struct tfx_request *rec, const char *name)
{
	size_t n = 0;
	for (size_t i = 0; i < rec->header_count; i++)
		if (strcasecmp(rec->headers[i].name, name) == 0)
			n++;
	return n;
}
