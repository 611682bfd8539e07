#include "net/httpc.h"

#include "crypto/wipealloc.h"
#include "lib/clock.h"
#include "lib/log.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A curl multi handle with its connection cache. New calls go to the
 * current pool; httpc_retire() replaces it, and a retired pool takes no
 * new call: once its last call has ended it is freed, and with it every
 * connection it opened. */
struct pool {
	struct httpc *h;
	struct pool *next; /* retired pools */
	CURLM *multi;
	struct event *timer;
	size_t calls; /* calls whose transfer is in this pool */
};

struct httpc {
	struct event_base *base;
	struct pool *cur;
	struct pool *retired;	  /* still finishing calls */
	struct event *retire_ev;  /* httpc_retire(), from the loop */
	struct event *reap_ev;	  /* frees drained pools, from the loop */
	struct event *admit_ev;	  /* the next wave of admissions, from the loop */
	bool retire_pending;
	/* Admission in waves (see "admission" below) */
	struct httpc_call *q_head, *q_tail; /* waiting for admission, in order */
	struct httpc_call *refused;	    /* curl would not take them: to fail */
	size_t wave_left;		    /* admitted, not yet on a connection */
	bool probe_next;		    /* the next wave is one call */
	bool fill_wave;			    /* the current wave is a fill */
	bool flush_next;		    /* a call failed before its connection: admit all */
	size_t fill;			    /* calls a fill wave admits */
	size_t fill_joined, fill_spilled;   /* of the current fill wave */
	struct httpc_call *calls; /* in flight, doubly linked */
	size_t active;
	struct httpc_stats stats;
};

struct sock_ctx {
	struct pool *pool;
	struct event *ev;
};

struct httpc_call {
	struct httpc *h;
	struct pool *pool;
	struct httpc_call *prev, *next;
	CURL *easy;
	bool restartable;  /* httpc_request.restartable */
	bool gated;	   /* admitted in waves: HTTP/2 over TLS (see "admission") */
	bool queued;	   /* waiting for admission */
	bool in_wave;	   /* admitted, not yet on a connection */
	bool refused;	   /* in h->refused */
	struct httpc_call *qnext; /* in the queue or in h->refused */
	bool empty_post;   /* a POST with an empty body (set again on a restart) */
	struct curl_slist *headers;
	struct curl_slist *connect_to;
	httpc_cb *cb;
	void *ctx;
	int64_t started_ms; /* monotonic */

	uint8_t *body; /* wipealloc'ed; body_cap bytes */
	size_t body_len, body_cap, body_max;
	bool too_large;

	char *hdr_buf; /* "name\0value\0" pairs of the last response */
	size_t hdr_len;
	size_t hdr_raw; /* bytes of every header line received, kept or not */
	struct httpc_header hdrs[HTTPC_MAX_HEADERS];
	size_t hdr_count;

	char errbuf[CURL_ERROR_SIZE];
};

const char *httpc_result_str(enum httpc_result r)
{
	switch (r) {
	case HTTPC_OK: return "ok";
	case HTTPC_TIMEOUT: return "timed out";
	case HTTPC_CONNECT_FAILED: return "connection failed";
	case HTTPC_RESOLVE_FAILED: return "host name did not resolve";
	case HTTPC_TLS_FAILED: return "TLS handshake or certificate verification failed";
	case HTTPC_TOO_LARGE: return "response too large";
	case HTTPC_PROTOCOL_ERROR: return "malformed HTTP response";
	case HTTPC_CANCELLED: return "cancelled";
	case HTTPC_FAILED: return "transfer failed";
	}
	return "transfer failed";
}

static enum httpc_result classify(CURLcode rc, const struct httpc_call *c)
{
	if (c->too_large)
		return HTTPC_TOO_LARGE;
	switch (rc) {
	case CURLE_OK: return HTTPC_OK;
	case CURLE_OPERATION_TIMEDOUT: return HTTPC_TIMEOUT;
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE: return HTTPC_CONNECT_FAILED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY: return HTTPC_RESOLVE_FAILED;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_USE_SSL_FAILED: return HTTPC_TLS_FAILED;
	case CURLE_FILESIZE_EXCEEDED: return HTTPC_TOO_LARGE;
	case CURLE_UNSUPPORTED_PROTOCOL: {
		/* Before connecting: a scheme we refuse (file://, ftp://). After:
		 * curl refusing a reply that is not HTTP at all (HTTP/0.9). */
		char *ip = NULL;
		curl_easy_getinfo(c->easy, CURLINFO_PRIMARY_IP, &ip);
		return ip != NULL && ip[0] != '\0' ? HTTPC_PROTOCOL_ERROR : HTTPC_FAILED;
	}
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_BAD_CONTENT_ENCODING: return HTTPC_PROTOCOL_ERROR;
	default: return HTTPC_FAILED;
	}
}

/* ---- curl <-> libevent glue ------------------------------------------ */

static void check_done(struct pool *p);

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
	struct sock_ctx *sc = arg;
	struct pool *p = sc->pool; /* sc may be freed inside socket_action */
	int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) |
		     ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
	int running;
	curl_multi_socket_action(p->multi, fd, action, &running);
	check_done(p);
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	(void)easy;
	struct pool *p = userp;
	struct httpc *h = p->h;
	struct sock_ctx *sc = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (sc != NULL) {
			event_free(sc->ev);
			free(sc);
			curl_multi_assign(p->multi, s, NULL);
		}
		return 0;
	}
	short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) |
			     ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
	if (sc == NULL) {
		sc = calloc(1, sizeof(*sc));
		if (sc == NULL)
			abort();
		sc->pool = p;
		sc->ev = event_new(h->base, s, kind, on_socket_event, sc);
		if (sc->ev == NULL)
			abort();
		curl_multi_assign(p->multi, s, sc);
	} else {
		event_del(sc->ev);
		event_assign(sc->ev, h->base, s, kind, on_socket_event, sc);
	}
	event_add(sc->ev, NULL);
	return 0;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct pool *p = arg;
	int running;
	curl_multi_socket_action(p->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(p);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	struct pool *p = userp;
	if (timeout_ms < 0) {
		evtimer_del(p->timer);
		return 0;
	}
	/* 0 means "now": still go through the loop, curl must not be re-entered */
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	evtimer_add(p->timer, &tv);
	return 0;
}

/* ---- pools ----------------------------------------------------------- */

static struct pool *pool_new(struct httpc *h)
{
	struct pool *p = calloc(1, sizeof(*p));
	if (p == NULL)
		abort();
	p->h = h;
	p->multi = curl_multi_init();
	p->timer = evtimer_new(h->base, on_timer, p);
	if (p->multi == NULL || p->timer == NULL) {
		if (p->multi != NULL)
			curl_multi_cleanup(p->multi);
		if (p->timer != NULL)
			event_free(p->timer);
		free(p);
		return NULL;
	}
	curl_multi_setopt(p->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(p->multi, CURLMOPT_SOCKETDATA, p);
	curl_multi_setopt(p->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(p->multi, CURLMOPT_TIMERDATA, p);
	return p;
}

/* Closes every connection of the pool (libcurl and libnghttp2 free their
 * per-connection buffers then, through the process's wiping free). The
 * pool must have no call left. */
static void pool_free(struct pool *p)
{
	curl_multi_cleanup(p->multi);
	event_free(p->timer);
	free(p);
}

/* A call's transfer leaves its pool; a retired pool without calls is
 * freed from the loop (this may run inside one of its curl callbacks). */
static void pool_release(struct pool *p, CURL *easy)
{
	curl_multi_remove_handle(p->multi, easy);
	p->calls--;
	if (p != p->h->cur && p->calls == 0)
		event_active(p->h->reap_ev, 0, 0);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct httpc *h = arg;
	for (struct pool **pp = &h->retired; *pp != NULL;) {
		struct pool *p = *pp;
		if (p->calls > 0) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		pool_free(p);
		h->stats.pools_freed++;
	}
}

/* ---- calls ----------------------------------------------------------- */

static void wave_done(struct httpc_call *c);
static void queue_push(struct httpc_call *c);
static void queue_remove(struct httpc_call *c);
static void admit_wave(struct httpc *h);
static int on_prereq(void *arg, char *ip, char *local_ip, int port, int local_port);

static void call_unlink(struct httpc_call *c)
{
	struct httpc *h = c->h;
	wave_done(c);
	queue_remove(c);
	if (c->refused) {
		struct httpc_call **pp = &h->refused;
		while (*pp != c)
			pp = &(*pp)->qnext;
		*pp = c->qnext;
		c->refused = false;
	}
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		h->calls = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	h->active--;
}

static void call_free(struct httpc_call *c)
{
	if (c->easy != NULL) {
		if (c->pool != NULL) /* else never admitted */
			pool_release(c->pool, c->easy);
		curl_easy_cleanup(c->easy);
	}
	curl_slist_free_all(c->headers); /* wiping allocator: the auth header is zeroed */
	curl_slist_free_all(c->connect_to);
	wipealloc_free(c->body);
	wipealloc_free(c->hdr_buf);
	free(c);
}

static void finish(struct httpc_call *c, CURLcode rc)
{
	struct httpc_response r = {0};
	r.result = classify(rc, c);
	if (r.result == HTTPC_OK) {
		curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &r.status);
	} else {
		r.error = c->errbuf[0] != '\0' ? c->errbuf : curl_easy_strerror(rc);
		if (r.result == HTTPC_TOO_LARGE)
			r.error = "response over its size limit";
		long code = 0;
		curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &code);
		r.status = code;
	}
	long v = 0;
	curl_easy_getinfo(c->easy, CURLINFO_HTTP_VERSION, &v);
	r.http_version = r.status == 0 ? 0 : v == CURL_HTTP_VERSION_2_0 ? 2 : 1;
	r.headers = c->hdrs;
	r.header_count = c->hdr_count;
	r.body = c->body != NULL ? c->body : (const uint8_t *)"";
	r.body_len = c->body_len;
	/* Monotonic: libevent's cached time is wall-clock based and, read
	 * outside the loop at start, can come out later than at the end. */
	r.elapsed_ms = (long)(hk_clock_mono(hk_clock_real()) - c->started_ms);

	/* ended before it was on a connection: the server is not reachable,
	 * and the calls waiting for admission need not wait one by one */
	if (c->in_wave)
		c->h->flush_next = true;
	call_unlink(c);
	/* curl's state for the transfer goes before the callback, which often
	 * starts the next one (a Ping answered, the next Ping): the new handle
	 * then reuses this one's memory instead of both being held at once.
	 * The response points only into c (body, headers, errbuf). */
	if (c->pool != NULL)
		pool_release(c->pool, c->easy);
	curl_easy_cleanup(c->easy);
	c->easy = NULL;
	c->cb(&r, c->ctx);
	call_free(c);
}

static void check_done(struct pool *p)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(p->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct httpc_call *c = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
		finish(c, msg->data.result);
	}
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct httpc_call *c = arg;
	size_t n = size * nmemb;
	if (n > c->body_max - c->body_len) {
		c->too_large = true;
		return 0; /* aborts the transfer */
	}
	if (c->body_len + n + 1 > c->body_cap) {
		size_t cap = c->body_cap > 0 ? c->body_cap : 4096;
		while (cap < c->body_len + n + 1)
			cap *= 2;
		if (cap > c->body_max + 1)
			cap = c->body_max + 1;
		uint8_t *b = wipealloc_realloc(c->body, cap);
		if (b == NULL)
			return 0;
		c->body = b;
		c->body_cap = cap;
	}
	memcpy(c->body + c->body_len, data, n);
	c->body_len += n;
	c->body[c->body_len] = '\0';
	return n;
}

static void trim(const char **s, size_t *n)
{
	while (*n > 0 && ((*s)[0] == ' ' || (*s)[0] == '\t')) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t' || (*s)[*n - 1] == '\r' ||
			  (*s)[*n - 1] == '\n'))
		(*n)--;
}

/* Keeps the header lines of the last response (a 100 Continue or an
 * intermediate response starts over). */
static size_t on_header(char *line, size_t size, size_t nmemb, void *arg)
{
	struct httpc_call *c = arg;
	size_t n = size * nmemb;
	/* Every line counts, also those past HTTPC_MAX_HEADERS and those of
	 * 1xx responses: a flood of small headers is as much too large as one
	 * huge header. */
	if (n > HTTPC_HEADER_BYTES_MAX - c->hdr_raw) {
		c->too_large = true;
		return 0;
	}
	c->hdr_raw += n;
	if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
		c->hdr_len = 0;
		c->hdr_count = 0;
		return n;
	}
	const char *colon = memchr(line, ':', n);
	if (colon == NULL)
		return n; /* the blank line, or a folded continuation: ignored */
	const char *name = line, *value = colon + 1;
	size_t nlen = (size_t)(colon - line), vlen = n - nlen - 1;
	trim(&name, &nlen);
	trim(&value, &vlen);
	if (c->hdr_count == HTTPC_MAX_HEADERS)
		return n; /* keep the first ones; the rest are not ours to need */
	if (c->hdr_len + nlen + vlen + 2 > HTTPC_HEADER_BYTES_MAX) {
		c->too_large = true;
		return 0;
	}
	if (c->hdr_buf == NULL) {
		c->hdr_buf = wipealloc_malloc(HTTPC_HEADER_BYTES_MAX);
		if (c->hdr_buf == NULL)
			return 0;
	}
	char *p = c->hdr_buf + c->hdr_len;
	memcpy(p, name, nlen);
	p[nlen] = '\0';
	memcpy(p + nlen + 1, value, vlen);
	p[nlen + 1 + vlen] = '\0';
	c->hdr_len += nlen + vlen + 2;
	/* hdr_buf never moves once allocated, so the pointers stay valid */
	c->hdrs[c->hdr_count].name = p;
	c->hdrs[c->hdr_count].value = p + nlen + 1;
	c->hdr_count++;
	return n;
}

static CURLcode on_ssl_ctx(CURL *easy, void *ssl_ctx, void *arg)
{
	(void)easy;
	(void)arg;
	/* Idle connections (a Ping waiting for minutes) give their TLS
	 * record buffers back: ~34 KiB less per waiting account. */
	SSL_CTX_set_mode((SSL_CTX *)ssl_ctx, SSL_MODE_RELEASE_BUFFERS);
	/* OpenSSL 3.0 allocates a write buffer of max_send_fragment + ~330
	 * bytes to read the server's TLS 1.3 NewSessionTickets, which come
	 * after our request, and frees it only after the next write: on a new
	 * connection it stays for the whole Ping (bench/bench-ping.c). 4 KiB
	 * records instead of 16 KiB make it 12 KiB smaller; uploads cost 66
	 * bytes of record overhead more per 16 KiB. */
	SSL_CTX_set_max_send_fragment((SSL_CTX *)ssl_ctx, 4096);
	return CURLE_OK;
}

static int append_header(struct curl_slist **list, const char *line)
{
	struct curl_slist *l = curl_slist_append(*list, line);
	if (l == NULL)
		return HK_ERR_NOMEM;
	*list = l;
	return 0;
}

/* "Authorization: <value>" assembled in guarded memory, then copied by
 * curl_slist_append into curl's (wiping) heap. */
static int append_auth(struct curl_slist **list, const struct secret *value)
{
	static const char prefix[] = "Authorization: ";
	size_t n = sizeof(prefix) - 1, v = secret_len(value);
	if (memchr(secret_cbytes(value), '\r', v) != NULL ||
	    memchr(secret_cbytes(value), '\n', v) != NULL ||
	    memchr(secret_cbytes(value), '\0', v) != NULL)
		return HK_ERR_INVAL;
	struct secret *line = secret_new(n + v + 1);
	memcpy(secret_bytes(line), prefix, n);
	memcpy(secret_bytes(line) + n, secret_cbytes(value), v);
	int ret = append_header(list, (const char *)secret_cbytes(line));
	secret_free(&line);
	return ret;
}

static bool header_line_ok(const char *h)
{
	return strchr(h, '\r') == NULL && strchr(h, '\n') == NULL && strchr(h, ':') != NULL;
}

/* An RFC 9110 token: curl puts the method into the request line as is. */
static bool method_ok(const char *m)
{
	size_t n = strlen(m);
	return n > 0 && n <= 32 &&
	       strspn(m, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
			 "!#$%&'*+-.^_`|~") == n;
}

int httpc_start(struct httpc *h, const struct httpc_request *req, httpc_cb *cb, void *ctx,
		struct httpc_call **call_r)
{
	if (req->url == NULL || req->method == NULL || cb == NULL || !method_ok(req->method) ||
	    (req->body == NULL && req->body_len > 0))
		return HK_ERR_INVAL;
	/* on_body sizes its buffer body_max + 1: SIZE_MAX would wrap to 0 */
	if (req->body_max > SIZE_MAX / 2)
		return HK_ERR_INVAL;
	/* curl sends the User-Agent as given: no CR/LF may split the header */
	if (req->user_agent != NULL &&
	    (strchr(req->user_agent, '\r') != NULL || strchr(req->user_agent, '\n') != NULL))
		return HK_ERR_INVAL;
	struct httpc_call *c = calloc(1, sizeof(*c));
	if (c == NULL)
		abort();
	c->h = h;
	c->pool = h->cur;
	c->restartable = req->restartable;
	c->cb = cb;
	c->ctx = ctx;
	c->body_max = req->body_max > 0 ? req->body_max : HTTPC_DEFAULT_BODY_MAX;
	c->easy = curl_easy_init();
	if (c->easy == NULL) {
		free(c);
		return HK_ERR_NOMEM;
	}

	int ret = 0;
	for (const char *const *hp = req->headers; ret == 0 && hp != NULL && *hp != NULL; hp++)
		ret = header_line_ok(*hp) ? append_header(&c->headers, *hp) : HK_ERR_INVAL;
	if (ret == 0 && req->authorization != NULL)
		ret = append_auth(&c->headers, req->authorization);
	if (ret == 0 && req->content_type != NULL) {
		char line[256];
		if (snprintf(line, sizeof(line), "Content-Type: %s", req->content_type) >=
			    (int)sizeof(line) ||
		    !header_line_ok(line))
			ret = HK_ERR_INVAL;
		else
			ret = append_header(&c->headers, line);
	} else if (ret == 0) {
		/* no type given: not curl's x-www-form-urlencoded either */
		ret = append_header(&c->headers, "Content-Type:");
	}
	if (ret == 0)
		ret = append_header(&c->headers, "Expect:"); /* no 100-continue round trip */
	for (const char *const *cp = req->connect_to; ret == 0 && cp != NULL && *cp != NULL; cp++)
		ret = strpbrk(*cp, "\r\n") == NULL ? append_header(&c->connect_to, *cp)
						    : HK_ERR_INVAL;
	if (ret < 0)
		goto fail;

	CURL *e = c->easy;
	curl_easy_setopt(e, CURLOPT_URL, req->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
	if (req->ca_file != NULL) {
		/* only this file: not also the system's CA directory */
		curl_easy_setopt(e, CURLOPT_CAINFO, req->ca_file);
		curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
	}
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
			 req->connect_timeout_ms > 0 ? req->connect_timeout_ms : 30000L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : 120000L);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->body_max);
	if (req->buffer_size > 0)
		curl_easy_setopt(e, CURLOPT_BUFFERSIZE, req->buffer_size);
	/* Over TLS, curl 7.88 copies the request into its upload buffer
	 * (OpenSSL wants a retried write at the same address) and keeps that
	 * buffer until the transfer ends: 64 KiB by default, for the whole of
	 * every Ping. 16 KiB is curl's minimum; large bodies then go out in
	 * 16 KiB writes instead of 64 KiB ones. */
	curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
	if (!req->http2) {
		curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	} else {
		/* h2 over TLS when offered (ALPN), h1 otherwise and over plain
		 * http. Over TLS, a call that starts while a connection to the
		 * same server is still in its handshake waits to learn whether
		 * it can share it instead of opening one of its own; curl knows
		 * at the end of the handshake. Over plain http it would know
		 * only from the first response, which for a Ping comes minutes
		 * later: no waiting there. */
		curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
		if (strncasecmp(req->url, "https://", 8) == 0)
			curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
	}
	if (req->user_agent != NULL)
		curl_easy_setopt(e, CURLOPT_USERAGENT, req->user_agent);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
	if (c->connect_to != NULL)
		curl_easy_setopt(e, CURLOPT_CONNECT_TO, c->connect_to);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, c);
	/* A body goes out with any method, not only with POST. */
	bool has_body = strcmp(req->method, "POST") == 0 || req->body_len > 0;
	if (has_body) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS,
				 req->body != NULL ? (const char *)req->body : "");
		c->empty_post = req->body_len == 0;
	}
	if (strcmp(req->method, has_body ? "POST" : "GET") != 0)
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);

	c->started_ms = hk_clock_mono(hk_clock_real());
	c->gated = req->http2 && strncasecmp(req->url, "https://", 8) == 0;
	if (c->gated) {
		curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
		curl_easy_setopt(e, CURLOPT_PREREQDATA, c);
		c->pool = NULL; /* until admitted */
	} else if (curl_multi_add_handle(c->pool->multi, e) != CURLM_OK) {
		ret = HK_ERR_NOMEM;
		goto fail;
	} else {
		c->pool->calls++;
	}
	c->next = h->calls;
	if (h->calls != NULL)
		h->calls->prev = c;
	h->calls = c;
	h->active++;
	if (call_r != NULL)
		*call_r = c;
	if (c->gated) {
		queue_push(c);
		admit_wave(h);
	}
	return 0;
fail:
	curl_easy_cleanup(c->easy);
	c->easy = NULL;
	call_free(c);
	return ret;
}

void httpc_cancel(struct httpc_call **callp)
{
	struct httpc_call *c = *callp;
	if (c == NULL)
		return;
	*callp = NULL;
	call_unlink(c);
	call_free(c);
}

const char *httpc_header(const struct httpc_response *resp, const char *name)
{
	for (size_t i = 0; i < resp->header_count; i++)
		if (strcasecmp(resp->headers[i].name, name) == 0)
			return resp->headers[i].value;
	return NULL;
}

size_t httpc_active(const struct httpc *h)
{
	return h->active;
}

/* ---- admission and retiring -------------------------------------------- */

/* curl 7.88 does not share a connection still in its handshake: calls that
 * start together each open a connection of their own once the existing
 * ones are full (bench/RESULTS.md: 1000 Pings, 101 connections instead of
 * 10; a retire that moved them all at once, 901). So calls that may share
 * an HTTP/2 connection (HTTP/2 asked for, over TLS: "gated") are admitted
 * to curl in waves, in the order they came:
 *   - a probe: one call. If it opened a new connection, the next wave is a
 *     fill; if it found room on one, the next is a probe again;
 *   - a fill: up to h->fill calls (curl's 100 streams per connection, less
 *     the probe), which join the probe's connection. When some opened
 *     connections of their own, the server takes fewer streams: later
 *     fills admit as many as joined (and twice that after a full fill
 *     that all joined, up to the default again).
 * A wave is over when each of its calls is on a connection (curl's
 * pre-request callback) or has ended. A call that ended before that means
 * an unreachable server: the next wave admits everything waiting, which
 * fails as fast as it would have without the waves. A call waits only while
 * another is connecting; the wait is bounded by that one's connect
 * timeout. A retire puts the waiting calls of retired pools at the end of
 * the queue; until admitted they keep waiting where they are. */
#define WAVE_FILL 99 /* curl's default of 100 streams per connection, less the probe */

static void queue_push(struct httpc_call *c)
{
	struct httpc *h = c->h;
	c->queued = true;
	c->qnext = NULL;
	if (h->q_tail != NULL)
		h->q_tail->qnext = c;
	else
		h->q_head = c;
	h->q_tail = c;
}

static struct httpc_call *queue_pop(struct httpc *h)
{
	struct httpc_call *c = h->q_head;
	if (c == NULL)
		return NULL;
	h->q_head = c->qnext;
	if (h->q_head == NULL)
		h->q_tail = NULL;
	c->qnext = NULL;
	c->queued = false;
	return c;
}

static void queue_remove(struct httpc_call *c)
{
	struct httpc *h = c->h;
	if (!c->queued)
		return;
	struct httpc_call *prev = NULL;
	for (struct httpc_call *q = h->q_head; q != NULL; prev = q, q = q->qnext) {
		if (q != c)
			continue;
		if (prev != NULL)
			prev->qnext = c->qnext;
		else
			h->q_head = c->qnext;
		if (h->q_tail == c)
			h->q_tail = prev;
		break;
	}
	c->qnext = NULL;
	c->queued = false;
}

/* A call of the current wave is on a connection, or gone. */
static void wave_done(struct httpc_call *c)
{
	struct httpc *h = c->h;
	if (!c->in_wave)
		return;
	c->in_wave = false;
	if (--h->wave_left > 0)
		return;
	if (h->fill_wave) {
		if (h->fill_spilled > 0 && h->fill_joined > 0)
			h->fill = h->fill_joined; /* the server takes fewer streams */
		else if (h->fill_spilled == 0 && h->fill_joined == h->fill && h->fill < WAVE_FILL)
			h->fill = h->fill * 2 < WAVE_FILL ? h->fill * 2 : WAVE_FILL; /* or did, once */
		h->fill_wave = false;
		h->probe_next = true;
	}
	if (h->q_head != NULL)
		event_active(h->admit_ev, 0, 0); /* not from inside curl */
}

/* curl's pre-request callback: the call is on a connection. */
static int on_prereq(void *arg, char *ip, char *local_ip, int port, int local_port)
{
	(void)ip;
	(void)local_ip;
	(void)port;
	(void)local_port;
	struct httpc_call *c = arg;
	struct httpc *h = c->h;
	if (c->in_wave) {
		long made = 0;
		curl_easy_getinfo(c->easy, CURLINFO_NUM_CONNECTS, &made);
		if (h->fill_wave)
			made > 0 ? h->fill_spilled++ : h->fill_joined++;
		else
			h->probe_next = made == 0; /* found room: probe again */
	}
	wave_done(c);
	return CURL_PREREQFUNC_OK;
}

/* Moves a call that has seen no answer yet from a retired pool to the
 * current one: the same request, sent again on a new transfer
 * (curl_easy_duphandle copies every option, the body included); the old
 * transfer is reset. The caller's callback and handle are unaffected.
 * False: it stays where it is. */
static bool call_restart(struct httpc_call *c)
{
	struct pool *np = c->h->cur;
	CURL *n = curl_easy_duphandle(c->easy);
	if (n == NULL)
		return false;
	/* an empty body is a pointer curl does not copy: set it again */
	if (c->empty_post)
		curl_easy_setopt(n, CURLOPT_COPYPOSTFIELDS, "");
	curl_easy_setopt(n, CURLOPT_PREREQFUNCTION, on_prereq);
	curl_easy_setopt(n, CURLOPT_PREREQDATA, c);
	if (curl_multi_add_handle(np->multi, n) != CURLM_OK) {
		curl_easy_cleanup(n);
		return false;
	}
	np->calls++;
	pool_release(c->pool, c->easy);
	curl_easy_cleanup(c->easy);
	c->easy = n;
	c->pool = np;
	return true;
}

/* Hands a call to curl in the current pool: a new call, or one a retire
 * moves (still worth it: no answer has started). False: not admitted (a
 * moved call then finishes where it is). */
static bool admit(struct httpc_call *c)
{
	struct httpc *h = c->h;
	if (c->pool == NULL) {
		if (curl_multi_add_handle(h->cur->multi, c->easy) != CURLM_OK)
			return false; /* left to its timeout: see admit_wave */
		c->pool = h->cur;
		c->pool->calls++;
		return true;
	}
	if (c->pool == h->cur || c->hdr_raw > 0 || c->body_len > 0 || !call_restart(c))
		return false;
	h->stats.restarted++;
	return true;
}

static void admit_wave(struct httpc *h)
{
	if (h->q_head == NULL || h->wave_left > 0)
		return;
	size_t want = h->flush_next ? SIZE_MAX : h->probe_next ? 1 : h->fill;
	h->fill_wave = !h->flush_next && !h->probe_next;
	h->fill_joined = h->fill_spilled = 0;
	h->flush_next = false;
	size_t n = 0;
	struct httpc_call *c;
	while (n < want && (c = queue_pop(h)) != NULL) {
		if (!admit(c)) {
			if (c->pool == NULL) {
				/* curl refused a new transfer (out of memory): its
				 * callback reports it, from the loop */
				c->qnext = h->refused;
				c->refused = true;
				h->refused = c;
				event_active(h->admit_ev, 0, 0);
			}
			continue;
		}
		c->in_wave = true;
		h->wave_left++;
		n++;
	}
	if (n > 0)
		h->stats.waves++;
	else
		h->fill_wave = false;
}

static void on_admit(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct httpc *h = arg;
	while (h->refused != NULL) {
		struct httpc_call *c = h->refused;
		h->refused = c->qnext;
		c->qnext = NULL;
		c->refused = false;
		finish(c, CURLE_OUT_OF_MEMORY);
	}
	admit_wave(h);
}

static void do_retire(struct httpc *h)
{
	h->retire_pending = false;
	struct pool *np = pool_new(h);
	if (np == NULL) {
		hk_log(HK_LOG_ERR, "httpc: cannot retire connections: out of memory");
		return;
	}
	struct pool *old = h->cur;
	h->cur = np;
	old->next = h->retired;
	h->retired = old;
	h->stats.retires++;
	/* the current wave was for the old pool; every restartable call
	 * still waiting there, or in a pool retired before, moves (a call
	 * not yet admitted stays in the queue, for the new pool) */
	h->wave_left = 0;
	h->fill_wave = false;
	h->probe_next = true;
	for (struct httpc_call *c = h->calls; c != NULL; c = c->next) {
		c->in_wave = false;
		if (!c->queued && c->pool != NULL && c->restartable && c->hdr_raw == 0 &&
		    c->body_len == 0)
			queue_push(c);
	}
	admit_wave(h);
	if (old->calls == 0)
		event_active(h->reap_ev, 0, 0);
}

static void on_retire(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	do_retire(arg);
}

void httpc_retire(struct httpc *h)
{
	if (h->retire_pending)
		return;
	h->retire_pending = true;
	event_active(h->retire_ev, 0, 0);
}

void httpc_get_stats(const struct httpc *h, struct httpc_stats *st)
{
	*st = h->stats;
	st->pools_retired = 0;
	for (const struct pool *p = h->retired; p != NULL; p = p->next)
		st->pools_retired++;
}

int httpc_new(struct event_base *base, struct httpc **httpc_r)
{
	struct httpc *h = calloc(1, sizeof(*h));
	if (h == NULL)
		abort();
	h->base = base;
	h->cur = pool_new(h);
	h->retire_ev = event_new(base, -1, 0, on_retire, h);
	h->reap_ev = event_new(base, -1, 0, on_reap, h);
	h->admit_ev = event_new(base, -1, 0, on_admit, h);
	h->probe_next = true;
	h->fill = WAVE_FILL;
	if (h->cur == NULL || h->retire_ev == NULL || h->reap_ev == NULL || h->admit_ev == NULL) {
		httpc_free(&h);
		return HK_ERR_NOMEM;
	}
	*httpc_r = h;
	return 0;
}

void httpc_free(struct httpc **hp)
{
	struct httpc *h = *hp;
	if (h == NULL)
		return;
	*hp = NULL;
	while (h->calls != NULL) {
		struct httpc_call *c = h->calls;
		call_unlink(c);
		call_free(c);
	}
	while (h->retired != NULL) {
		struct pool *p = h->retired;
		h->retired = p->next;
		pool_free(p);
	}
	if (h->cur != NULL)
		pool_free(h->cur);
	if (h->retire_ev != NULL)
		event_free(h->retire_ev);
	if (h->reap_ev != NULL)
		event_free(h->reap_ev);
	if (h->admit_ev != NULL)
		event_free(h->admit_ev);
	free(h);
}
