/* bench-ping: relay-side memory per account waiting in an ActiveSync Ping.
 *
 *   bench-ping [--h2 [--max-streams M]] [--accounts N] [--buffer BYTES]
 *              [--heartbeat S] [--window W] [--settle MS] [--rounds R]
 *              [--retire K]
 *   bench-ping --all [--max-streams M] [--heartbeat S] [--window W]
 *              [--settle MS] [--rounds R]
 *
 * One run: this process holds only the client side, N eas_clients (default
 * 1000), each with its own username, password (a guarded secret) and
 * DeviceId, all on one libevent loop and one httpc, each sending one Ping
 * (HeartbeatInterval S, default 600 s, one Inbox folder) over TLS, the
 * server's certificate verified against the run's CA. The server is a load
 * responder in a separate process (this binary exec'ed with --responder):
 * an HTTPS server on 127.0.0.1 that uses tests/tls-fixture.c's throwaway
 * PKI, checks Basic auth, answers OPTIONS, and holds every Ping until its
 * heartbeat expires (then 200 and <Ping><Status>1</Status></Ping>),
 * reporting how many it holds through a pipe. A real server (SOGo) holds
 * only a few Pings; this one holds thousands.
 *
 * Without --h2 the responder is tests/tls-fixture.c's evhttp server
 * (HTTP/1.1, no ALPN) and the clients ask for HTTP/1.1: one connection per
 * waiting account. With --h2 the responder is our own listener with
 * OpenSSL (TLS 1.3, ALPN "h2" and nothing else: a client that does not
 * offer h2 fails the run) and libnghttp2's server session, announcing
 * SETTINGS_MAX_CONCURRENT_STREAMS M (default 1000); the clients are
 * configured with eas_client_config.http2, and curl multiplexes their
 * Pings as streams on a few connections (at most CURLMOPT_MAX_CONCURRENT_
 * STREAMS, 100 by default, on each). Every Ping answer must say it came
 * over the HTTP version asked for (eas_response.http_version), and the
 * report gives the connections: the client's sockets, and for HTTP/2 the
 * responder's count of connections and the most streams it saw on one.
 *
 * Memory of this process is read (/proc/self/smaps_rollup, /proc/self/
 * status, mallinfo2) before the first client is created (baseline) and
 * settle ms (default 2000) after the responder holds all N Pings; the
 * result is the growth per waiting account. Pings start in a window of W
 * (default 100) not yet held, as a relay unlocking accounts would, so that
 * the responder's accept queue (backlog 128) does not overflow into SYN
 * retransmits. Over HTTP/2 the window also sets the connection count with
 * curl 7.88: a connection still in its handshake is not shared, so each
 * time every connection is at its stream limit, the next W Pings open one
 * each. W = 100 gave 101 connections for N = 200, 1000 and 2000; W = 10 gave
 * 11 for N = 1000 and 21 for N = 2000 (bench/RESULTS.md).
 *
 * Then R rounds (default 3): the responder answers every Ping at once (as
 * if the heartbeats had expired), each account sends its next Ping at
 * once, as the relay does, and memory is read again when all are held.
 * The first round alone flatters: blocks that were allocated but never
 * written (curl's upload buffer, OpenSSL's write buffer) are not resident
 * yet; once freed (the wiping allocator writes every byte) and reused they
 * are. The last reading is followed by one after malloc_trim(0), to tell
 * memory in use from free heap the allocator kept.
 *
 * --buffer is curl's receive buffer for Pings (0: the client's 1 KiB;
 * 16384 is curl's default). --all runs N = 100, 1000, 2000 over HTTP/1.1
 * and over HTTP/2, each with 1 KiB and 16 KiB buffers, each in a fresh
 * process, and prints one table with the marginal cost per account between
 * the N of a row and the one before.
 *
 * --retire K, after the rounds and the trimmed reading: K times, with all N
 * Pings waiting, httpc_retire() (what eas_client_free() does after HTTP/2),
 * then the loop runs until httpc has moved every Ping to the new pool
 * (httpc_get_stats: restarted + N), the responder holds N again and has
 * received N new requests, it saw every old held Ping end (HTTP/2: its
 * stream reset or its connection closed, and none of the connections open
 * before is left; HTTP/1.1: its connection closed), and the old pool is
 * freed (pools_freed + 1, pools_retired 0). A Ping callback in that time
 * fails the run: a restart must be invisible to the caller. Reported per
 * retire: the time from httpc_retire() to the last Ping moved, to the old
 * pool freed (both seen by a 1 ms poll, which also gives the longest stall
 * of the loop) and to the last Ping held again (the responder's
 * CLOCK_MONOTONIC, the same clock); how the old Pings ended at the
 * responder (RST_STREAM, or their connection closed); the connections (the
 * client's sockets; over HTTP/2 the responder's accepted, closed, and
 * streams per connection) and the namespace's listen queue overflows; and
 * memory settle ms later, against the last round's reading, and after
 * malloc_trim(0) against the trimmed one. The responder sends its line of
 * these, and looks for closed HTTP/1.1 connections, only once the client
 * side asks ('x'): without --retire the output is as before.
 *
 * Target: at most 48 KiB RSS per waiting account, TLS included. A program,
 * not a test: it exits 1 when a run could not be measured, never fails a
 * build. */
#include "crypto/secmem.h"
#include "crypto/wipealloc.h"
#include "eas/client.h"
#include "eas/wbxml.h"
#include "net/httpc.h"
#include "tls-fixture.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_ACCOUNTS  1000ul
#define MAX_ACCOUNTS      100000ul
#define DEFAULT_HEARTBEAT 600u
#define DEFAULT_WINDOW    100ul
#define DEFAULT_SETTLE_MS 2000l
#define DEFAULT_ROUNDS    3ul
#define TARGET_KIB        48.0
#define FD_SLACK          64ul /* descriptors a process needs besides one per connection */
#define SEED_LEN          32
#define EAS_PATH          "/Microsoft-Server-ActiveSync"
#define WBXML_TYPE        "application/vnd.ms-sync.wbxml"

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("bench-ping: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *v_r)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max)
		return -1;
	*v_r = v;
	return 0;
}

/* Account i's password: 32 hex digits of BLAKE2b-128(key = the run's seed,
 * "bench-ping account <i>"). Both processes derive it; only the seed
 * crosses the pipe. */
static struct secret *account_password(const struct secret *seed, unsigned long i)
{
	char msg[64];
	int n = snprintf(msg, sizeof(msg), "bench-ping account %lu", i);
	uint8_t h[16];
	crypto_generichash(h, sizeof(h), (const uint8_t *)msg, (size_t)n, secret_cbytes(seed),
	                   secret_len(seed));
	struct secret *pw = secret_new(2 * sizeof(h) + 1);
	sodium_bin2hex((char *)secret_bytes(pw), 2 * sizeof(h) + 1, h, sizeof(h));
	secret_truncate(pw, 2 * sizeof(h));
	secmem_wipe(h, sizeof(h));
	return pw;
}

static void account_user(unsigned long i, char *buf, size_t len)
{
	snprintf(buf, len, "bench%lu", i);
}

static int read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- the load responder (its own process) ------------------------------ */

/* HTTP/1.1 runs on the tests' evhttp fixture; HTTP/2 on a listener of our
 * own, with OpenSSL for TLS and ALPN and nghttp2's server session for the
 * protocol. Both hand every complete request to judge() and hold Pings in
 * the same list, so what the client side sees differs only in the wire
 * protocol. */

#define H2_DEFAULT_MAX_STREAMS 1000ul
#define H2_BODY_MAX            (64u * 1024) /* a Ping is ~40 bytes */
#define H2_OUTBUF_MAX          (64u * 1024) /* queued for TLS before nghttp2 waits */
#define H2_BACKLOG             128          /* as evhttp's */
#define OPT_VERSIONS           "12.1,14.0,14.1"
#define OPT_COMMANDS           "Ping"
#define REALM                  "Basic realm=\"bench\""

struct held;
struct h2_conn;

struct responder {
	struct event_base *base;
	bool h2;
	struct tfx_server *srv; /* HTTP/1.1 */
	/* HTTP/2 */
	SSL_CTX *ssl_ctx;
	struct evconnlistener *listener;
	nghttp2_session_callbacks *h2_cbs;
	uint32_t max_streams; /* our SETTINGS_MAX_CONCURRENT_STREAMS */
	struct h2_conn *conns;
	size_t received;                     /* complete requests (HTTP/2) */
	size_t accepted, open, streams_peak; /* connections; most streams on one */
	size_t last_accepted, last_open, last_peak;

	struct secret *seed;
	uint8_t *ping_ok; /* WBXML <Ping><Status>1</Status></Ping> */
	size_t ping_ok_len;
	int st_fd;
	struct held *held; /* Pings waiting for their heartbeat */
	size_t nheld;
	size_t refused, bad; /* 401s; malformed or unexpected requests */
	size_t last_held, last_count, last_refused, last_bad;
	bool tls_told;
	struct event *tick, *ctl_ev;

	/* --retire (the client side's 'x'): what became of held Pings whose
	 * request went before its answer, reported on a line of its own */
	bool retire_report;
	size_t gone_reset, gone_closed; /* held Pings: stream reset; connection closed */
	size_t rst, goaway;             /* RST_STREAM and GOAWAY frames received (HTTP/2) */
	uint32_t rst_code;              /* the last RST_STREAM's error code */
	unsigned long hold_us;          /* CLOCK_MONOTONIC when the last Ping was held */
	size_t last_gone_reset, last_gone_closed, last_rst, last_goaway;
	unsigned long last_hold_us;
	size_t last_busiest, last_single; /* streams now: most on one conn; conns with one */
};

/* A request on an HTTP/2 stream, from its first HEADERS frame until the
 * stream closes. */
struct h2_stream {
	struct h2_conn *c;
	struct h2_stream *prev, *next;
	int32_t id;
	char method[16];
	char uri[2048];
	char auth[512]; /* Authorization: wiped when freed */
	uint8_t *body;
	size_t body_len, body_cap;
	bool truncated; /* a field or the body did not fit: a bad request */
	struct held *held;
	const uint8_t *out; /* the response body (static), sent from out_off */
	size_t out_len, out_off;
};

/* One TLS connection carrying HTTP/2. */
struct h2_conn {
	struct responder *r;
	struct h2_conn *prev, *next;
	struct bufferevent *bev;
	nghttp2_session *sess; /* NULL until the TLS handshake is done */
	struct h2_stream *streams;
	size_t nstreams;
	bool in_recv; /* inside nghttp2_session_mem_recv: no send, no free */
};

/* A Ping the responder holds until its heartbeat expires (or the client
 * side asks for all of them at once, to make the next round come): an
 * evhttp request (HTTP/1.1) or a stream (HTTP/2). */
struct held {
	struct responder *r;
	struct held *prev, *next;
	struct evhttp_request *req;
	struct h2_stream *stream;
	struct event *timer;
};

static void held_forget(struct held *h)
{
	struct responder *r = h->r;
	if (h->prev != NULL)
		h->prev->next = h->next;
	else
		r->held = h->next;
	if (h->next != NULL)
		h->next->prev = h->prev;
	r->nheld--;
	if (h->stream != NULL)
		h->stream->held = NULL;
	event_free(h->timer);
	free(h);
}

static void h2_respond_ping(struct h2_stream *s);

/* The heartbeat expired with nothing new: HTTP 200, Ping Status 1. */
static void held_answer(struct held *h)
{
	static const char *const wbxml_headers[] = {"Content-Type: " WBXML_TYPE, NULL};
	struct responder *r = h->r;
	struct h2_stream *s = h->stream;
	struct evhttp_request *req = h->req;
	/* forgotten first: answering a stream can close its connection */
	held_forget(h);
	if (s != NULL)
		h2_respond_ping(s);
	else
		tfx_respond(r->srv, req,
		            &(struct tfx_reply){.headers = wbxml_headers,
		                                .body = r->ping_ok,
		                                .body_len = r->ping_ok_len});
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	held_answer(arg);
}

static void hold(struct responder *r, struct evhttp_request *req, struct h2_stream *s,
                 unsigned long hb)
{
	struct held *h = calloc(1, sizeof(*h));
	if (h == NULL)
		abort();
	h->r = r;
	h->req = req;
	h->stream = s;
	h->timer = evtimer_new(r->base, on_heartbeat, h);
	if (h->timer == NULL)
		abort();
	struct timeval tv = {(time_t)hb, 0};
	evtimer_add(h->timer, &tv);
	h->next = r->held;
	if (r->held != NULL)
		r->held->prev = h;
	r->held = h;
	r->nheld++;
	r->hold_us = (unsigned long)(now_s() * 1e6);
	if (s != NULL) {
		s->held = h;
		return;
	}
	/* evhttp's 50 s default would close the held connection */
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	if (evcon != NULL)
		evhttp_connection_set_timeout(evcon, (int)hb + 120);
}

/* True when auth is account i's Basic credentials, "bench<i>:<password>";
 * the user's name into user (up to len bytes). */
static bool auth_ok(const struct responder *r, const char *auth, char *user, size_t len)
{
	user[0] = '\0';
	if (auth == NULL || strncmp(auth, "Basic ", 6) != 0)
		return false;
	const char *b64 = auth + 6;
	size_t b64_len = strlen(b64), n = 0;
	struct secret *raw = secret_new(b64_len); /* user:password, decoded */
	bool ok = sodium_base642bin(secret_bytes(raw), secret_len(raw), b64, b64_len, NULL, &n,
	                            NULL, sodium_base64_VARIANT_ORIGINAL) == 0;
	const uint8_t *colon = ok ? memchr(secret_cbytes(raw), ':', n) : NULL;
	size_t ulen = colon != NULL ? (size_t)(colon - secret_cbytes(raw)) : 0;
	unsigned long i;
	ok = colon != NULL && ulen < len;
	if (ok) {
		memcpy(user, secret_cbytes(raw), ulen);
		user[ulen] = '\0';
		ok = strncmp(user, "bench", 5) == 0 &&
		     parse_ulong(user + 5, 0, MAX_ACCOUNTS, &i) == 0;
	}
	if (ok) {
		struct secret *pw = account_password(r->seed, i);
		size_t plen = n - ulen - 1;
		ok = plen == secret_len(pw) &&
		     secmem_memcmp(colon + 1, secret_cbytes(pw), secret_len(pw)) == 0;
		secret_free(&pw);
	}
	secret_free(&raw);
	return ok;
}

/* The HeartbeatInterval of a Ping body with at least one folder. */
static int ping_heartbeat(const uint8_t *body, size_t len, unsigned long *hb_r)
{
	struct eas_node *root = NULL;
	const char *err = NULL;
	if (eas_wbxml_decode(body, len, 0, &root, &err) < 0)
		return -1;
	const char *hb = eas_node_child_text(root, EAS_PAGE_PING, "HeartbeatInterval");
	const struct eas_node *id =
	    eas_node_find(root, EAS_PAGE_PING, "Folders", "Folder", "Id", NULL);
	int ret = -1;
	if (eas_node_is(root, EAS_PAGE_PING, "Ping") && id != NULL && hb != NULL &&
	    parse_ulong(hb, 60, 3540, hb_r) == 0) /* [MS-ASCMD]'s range */
		ret = 0;
	eas_node_free(&root);
	return ret;
}

/* Tells the client side, once, which TLS version and cipher the first
 * connection got, and what ALPN chose: "h2", or none (HTTP/1.1). */
static void tell_tls(struct responder *r, SSL *ssl)
{
	if (r->tls_told || ssl == NULL)
		return;
	const unsigned char *alpn = NULL;
	unsigned alpn_len = 0;
	SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
	dprintf(r->st_fd, "tls %s %s, ALPN %.*s\n", SSL_get_version(ssl), SSL_get_cipher_name(ssl),
	        alpn_len > 0 ? (int)alpn_len : 4, alpn_len > 0 ? (const char *)alpn : "none");
	r->tls_told = true;
}

enum verdict { V_OPTIONS, V_REFUSED, V_BAD, V_HOLD };

/* What the responder does with a complete request, either protocol: the
 * OPTIONS answer, 401, 400, or hold it (a Ping, its heartbeat into hb_r).
 * Counts refusals and bad requests. */
static enum verdict judge(struct responder *r, const char *method, const char *uri,
                          const char *auth, const uint8_t *body, size_t body_len, bool truncated,
                          unsigned long *hb_r)
{
	struct evkeyvalq params;
	TAILQ_INIT(&params);
	enum verdict v = V_BAD;
	const char *q = strchr(uri, '?');
	if (truncated || evhttp_parse_query_str(q != NULL ? q + 1 : "", &params) < 0)
		goto out;
	/* OPTIONS goes to the bare URL; commands name the same user. */
	char user[64];
	const char *quser = evhttp_find_header(&params, "User");
	if (!auth_ok(r, auth, user, sizeof(user)) ||
	    (q != NULL && (quser == NULL || strcmp(quser, user) != 0))) {
		v = V_REFUSED;
		goto out;
	}
	if (strcmp(method, "OPTIONS") == 0) {
		v = V_OPTIONS;
		goto out;
	}
	const char *cmd = evhttp_find_header(&params, "Cmd");
	if (strcmp(method, "POST") == 0 && cmd != NULL && strcmp(cmd, "Ping") == 0 &&
	    evhttp_find_header(&params, "DeviceId") != NULL &&
	    ping_heartbeat(body, body_len, hb_r) == 0)
		v = V_HOLD;
out:
	evhttp_clear_headers(&params);
	if (v == V_REFUSED)
		r->refused++;
	else if (v == V_BAD)
		r->bad++;
	return v;
}

/* ---- HTTP/1.1: tests/tls-fixture.c's evhttp server ---- */

static void on_request(struct tfx_server *srv, struct evhttp_request *req,
                       const struct tfx_request *rec, void *arg)
{
	static const char *const options_headers[] = {"MS-ASProtocolVersions: " OPT_VERSIONS,
	                                              "MS-ASProtocolCommands: " OPT_COMMANDS, NULL};
	static const char *const refused_headers[] = {"WWW-Authenticate: " REALM, NULL};
	struct responder *r = arg;
	if (!r->tls_told) {
		struct evhttp_connection *evcon = evhttp_request_get_connection(req);
		struct bufferevent *bev =
		    evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
		tell_tls(r, bev != NULL ? bufferevent_openssl_get_ssl(bev) : NULL);
	}
	unsigned long hb = 0;
	switch (judge(r, rec->method, rec->uri, tfx_request_header(rec, "Authorization"), rec->body,
	              rec->body_len, rec->truncated, &hb)) {
	case V_OPTIONS:
		tfx_respond(srv, req, &(struct tfx_reply){.headers = options_headers});
		break;
	case V_REFUSED:
		tfx_respond(srv, req,
		            &(struct tfx_reply){.status = 401, .headers = refused_headers});
		break;
	case V_HOLD: hold(r, req, NULL, hb); break;
	case V_BAD:
	default: tfx_respond(srv, req, &(struct tfx_reply){.status = 400}); break;
	}
}

/* ---- HTTP/2: nghttp2 server sessions on TLS bufferevents ---- */

/* A header field for nghttp2_submit_response(), which copies it. */
#define NV(name, value)                                                                            \
	{                                                                                          \
		(uint8_t *)(name), (uint8_t *)(value), strlen(name), strlen(value),                \
		    NGHTTP2_NV_FLAG_NONE                                                           \
	}

static void h2_stream_free(struct h2_stream *s)
{
	struct h2_conn *c = s->c;
	if (s->held != NULL)
		held_forget(s->held); /* the client reset it, or its connection went */
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		c->streams = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	c->nstreams--;
	secmem_wipe(s->auth, sizeof(s->auth));
	free(s->body);
	free(s);
}

/* Closes the connection and forgets its streams, held Pings included
 * (they leave the count the client side watches). */
static void h2_conn_free(struct h2_conn *c)
{
	struct responder *r = c->r;
	nghttp2_session_del(c->sess); /* calls no callback */
	for (const struct h2_stream *s = c->streams; s != NULL; s = s->next)
		if (s->held != NULL)
			r->gone_closed++;
	while (c->streams != NULL)
		h2_stream_free(c->streams);
	bufferevent_free(c->bev); /* BEV_OPT_CLOSE_ON_FREE: the socket and the SSL */
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		r->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	r->open--;
	free(c);
}

/* Sends what the session has queued (into the TLS bufferevent); closes
 * the connection on a session error, or when neither side has anything
 * more to say (the client's GOAWAY). Not from inside nghttp2 callbacks. */
static void h2_flush(struct h2_conn *c)
{
	if (nghttp2_session_send(c->sess) != 0) {
		h2_conn_free(c);
		return;
	}
	if (nghttp2_session_want_read(c->sess) == 0 && nghttp2_session_want_write(c->sess) == 0 &&
	    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		h2_conn_free(c);
}

static ssize_t h2_send_cb(nghttp2_session *sess, const uint8_t *data, size_t len, int flags,
                          void *arg)
{
	(void)sess;
	(void)flags;
	struct h2_conn *c = arg;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	/* resumed from h2_on_write when the output has drained */
	if (evbuffer_get_length(out) >= H2_OUTBUF_MAX)
		return NGHTTP2_ERR_WOULDBLOCK;
	if (evbuffer_add(out, data, len) < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	return (ssize_t)len;
}

static ssize_t h2_read_body(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t len,
                            uint32_t *flags, nghttp2_data_source *src, void *arg)
{
	(void)sess;
	(void)id;
	(void)arg;
	struct h2_stream *s = src->ptr;
	size_t n = s->out_len - s->out_off;
	if (n > len)
		n = len;
	memcpy(buf, s->out + s->out_off, n);
	s->out_off += n;
	if (s->out_off == s->out_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* Submits a response on s (body NULL: headers only, END_STREAM on them);
 * sends it unless nghttp2 is reading, which sends after. s goes when its
 * stream closes (h2_on_stream_close). */
static void h2_respond(struct h2_stream *s, const nghttp2_nv *nv, size_t nvlen, const uint8_t *body,
                       size_t body_len)
{
	struct h2_conn *c = s->c;
	s->out = body;
	s->out_len = body_len;
	s->out_off = 0;
	nghttp2_data_provider prd = {.source.ptr = s, .read_callback = h2_read_body};
	int rv = nghttp2_submit_response(c->sess, s->id, nv, nvlen, body != NULL ? &prd : NULL);
	if (rv != 0) {
		/* only out of memory or misuse: the run cannot be trusted */
		dprintf(c->r->st_fd, "error nghttp2_submit_response: %s\n", nghttp2_strerror(rv));
		return;
	}
	if (!c->in_recv)
		h2_flush(c);
}

static void h2_respond_ping(struct h2_stream *s)
{
	struct responder *r = s->c->r;
	char len[24];
	snprintf(len, sizeof(len), "%zu", r->ping_ok_len);
	const nghttp2_nv nv[] = {NV(":status", "200"), NV("content-type", WBXML_TYPE),
	                         NV("content-length", len)};
	h2_respond(s, nv, sizeof(nv) / sizeof(nv[0]), r->ping_ok, r->ping_ok_len);
}

/* A complete request (END_STREAM seen): the same verdict as HTTP/1.1. */
static void h2_request(struct h2_stream *s)
{
	struct responder *r = s->c->r;
	r->received++;
	unsigned long hb = 0;
	switch (judge(r, s->method, s->uri, s->auth[0] != '\0' ? s->auth : NULL, s->body,
	              s->body_len, s->truncated || s->method[0] == '\0' || s->uri[0] == '\0',
	              &hb)) {
	case V_OPTIONS: {
		const nghttp2_nv nv[] = {NV(":status", "200"),
		                         NV("ms-asprotocolversions", OPT_VERSIONS),
		                         NV("ms-asprotocolcommands", OPT_COMMANDS)};
		h2_respond(s, nv, sizeof(nv) / sizeof(nv[0]), NULL, 0);
		break;
	}
	case V_REFUSED: {
		const nghttp2_nv nv[] = {NV(":status", "401"), NV("www-authenticate", REALM)};
		h2_respond(s, nv, sizeof(nv) / sizeof(nv[0]), NULL, 0);
		break;
	}
	case V_HOLD: hold(r, NULL, s, hb); break;
	case V_BAD:
	default: {
		const nghttp2_nv nv[] = {NV(":status", "400")};
		h2_respond(s, nv, sizeof(nv) / sizeof(nv[0]), NULL, 0);
		break;
	}
	}
}

static int h2_on_begin_headers(nghttp2_session *sess, const nghttp2_frame *frame, void *arg)
{
	struct h2_conn *c = arg;
	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct h2_stream *s = calloc(1, sizeof(*s));
	if (s == NULL)
		abort();
	s->c = c;
	s->id = frame->hd.stream_id;
	if (nghttp2_session_set_stream_user_data(sess, s->id, s) != 0) {
		free(s);
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	s->next = c->streams;
	if (c->streams != NULL)
		c->streams->prev = s;
	c->streams = s;
	c->nstreams++;
	if (c->nstreams > c->r->streams_peak)
		c->r->streams_peak = c->nstreams;
	return 0;
}

static bool name_is(const uint8_t *name, size_t len, const char *want)
{
	return len == strlen(want) && memcmp(name, want, len) == 0;
}

/* Keeps the three fields judge() needs; nghttp2 has checked them (no NUL,
 * CR or LF; names in lower case). */
static int h2_on_header(nghttp2_session *sess, const nghttp2_frame *frame, const uint8_t *name,
                        size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                        void *arg)
{
	(void)flags;
	(void)arg;
	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct h2_stream *s = nghttp2_session_get_stream_user_data(sess, frame->hd.stream_id);
	if (s == NULL)
		return 0;
	char *dst;
	size_t cap;
	if (name_is(name, namelen, ":method")) {
		dst = s->method;
		cap = sizeof(s->method);
	} else if (name_is(name, namelen, ":path")) {
		dst = s->uri;
		cap = sizeof(s->uri);
	} else if (name_is(name, namelen, "authorization")) {
		dst = s->auth;
		cap = sizeof(s->auth);
	} else {
		return 0;
	}
	if (valuelen >= cap) {
		s->truncated = true;
		return 0;
	}
	memcpy(dst, value, valuelen);
	dst[valuelen] = '\0';
	return 0;
}

static int h2_on_data(nghttp2_session *sess, uint8_t flags, int32_t id, const uint8_t *data,
                      size_t len, void *arg)
{
	(void)flags;
	(void)arg;
	struct h2_stream *s = nghttp2_session_get_stream_user_data(sess, id);
	if (s == NULL)
		return 0;
	if (len > H2_BODY_MAX - s->body_len) {
		s->truncated = true;
		return 0;
	}
	if (s->body_len + len + 1 > s->body_cap) {
		size_t cap = s->body_cap > 0 ? s->body_cap : 256;
		while (cap < s->body_len + len + 1)
			cap *= 2;
		uint8_t *b = realloc(s->body, cap);
		if (b == NULL)
			abort();
		s->body = b;
		s->body_cap = cap;
	}
	memcpy(s->body + s->body_len, data, len);
	s->body_len += len;
	s->body[s->body_len] = '\0';
	return 0;
}

static int h2_on_frame_recv(nghttp2_session *sess, const nghttp2_frame *frame, void *arg)
{
	struct h2_conn *c = arg;
	if (frame->hd.type == NGHTTP2_RST_STREAM) {
		c->r->rst++;
		c->r->rst_code = frame->rst_stream.error_code;
	} else if (frame->hd.type == NGHTTP2_GOAWAY) {
		c->r->goaway++;
	}
	if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
	    (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0)
		return 0;
	struct h2_stream *s = nghttp2_session_get_stream_user_data(sess, frame->hd.stream_id);
	if (s != NULL)
		h2_request(s);
	return 0;
}

static int h2_on_stream_close(nghttp2_session *sess, int32_t id, uint32_t error_code, void *arg)
{
	(void)error_code;
	struct h2_conn *c = arg;
	struct h2_stream *s = nghttp2_session_get_stream_user_data(sess, id);
	if (s != NULL && s->held != NULL)
		c->r->gone_reset++; /* closed before its answer: the client reset it */
	if (s != NULL)
		h2_stream_free(s);
	return 0;
}

static void h2_on_read(struct bufferevent *bev, void *arg)
{
	struct h2_conn *c = arg;
	if (c->sess == NULL)
		return; /* h2_start reads what came before it */
	struct evbuffer *in = bufferevent_get_input(bev);
	ssize_t rv = 0;
	c->in_recv = true;
	while (evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		rv = nghttp2_session_mem_recv(c->sess, v.iov_base, v.iov_len);
		if (rv < 0)
			break;
		evbuffer_drain(in, (size_t)rv);
		if ((size_t)rv < v.iov_len)
			break; /* nghttp2 paused; we never ask it to */
	}
	c->in_recv = false;
	if (rv < 0)
		h2_conn_free(c); /* a protocol error, bad client preface included */
	else
		h2_flush(c);
}

static void h2_on_write(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct h2_conn *c = arg;
	if (c->sess != NULL)
		h2_flush(c);
}

/* The TLS handshake is done (ALPN chose h2, h2_alpn_select saw to that):
 * the session starts with our SETTINGS. */
static void h2_start(struct h2_conn *c)
{
	struct responder *r = c->r;
	tell_tls(r, bufferevent_openssl_get_ssl(c->bev));
	if (nghttp2_session_server_new(&c->sess, r->h2_cbs, c) != 0)
		abort(); /* only out of memory */
	const nghttp2_settings_entry iv[] = {
	    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, r->max_streams}};
	int rv = nghttp2_submit_settings(c->sess, NGHTTP2_FLAG_NONE, iv, 1);
	if (rv != 0) {
		dprintf(r->st_fd, "error nghttp2_submit_settings: %s\n", nghttp2_strerror(rv));
		h2_conn_free(c);
		return;
	}
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		h2_on_read(c->bev, c); /* flushes */
	else
		h2_flush(c);
}

static void h2_on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct h2_conn *c = arg;
	if ((what & BEV_EVENT_CONNECTED) != 0 && c->sess == NULL)
		h2_start(c);
	else if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) != 0)
		h2_conn_free(c);
}

static void h2_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                         int salen, void *arg)
{
	(void)l;
	(void)sa;
	(void)salen;
	struct responder *r = arg;
	SSL *ssl = SSL_new(r->ssl_ctx);
	struct bufferevent *bev =
	    ssl != NULL ? bufferevent_openssl_socket_new(
	                      r->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE)
	                : NULL;
	if (bev == NULL)
		abort(); /* only out of memory */
	/* A client that closes without close_notify is an EOF, not an error. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	struct h2_conn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		abort();
	c->r = r;
	c->bev = bev;
	c->next = r->conns;
	if (r->conns != NULL)
		r->conns->prev = c;
	r->conns = c;
	r->accepted++;
	r->open++;
	bufferevent_setcb(bev, h2_on_read, h2_on_write, h2_on_event, c);
	if (bufferevent_enable(bev, EV_READ | EV_WRITE) < 0)
		h2_conn_free(c);
}

static void h2_on_accept_error(struct evconnlistener *l, void *arg)
{
	(void)l;
	struct responder *r = arg;
	/* EMFILE and the like: the client side's Pings would wait forever */
	dprintf(r->st_fd, "error accept: %s\n", strerror(errno));
}

/* ALPN: h2 or nothing. A client that does not offer h2 would fall back to
 * HTTP/1.1 and measure the wrong thing; the run fails instead. */
static int h2_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned inlen, void *arg)
{
	(void)ssl;
	struct responder *r = arg;
	for (unsigned i = 0; i < inlen; i += 1u + in[i]) {
		unsigned len = in[i];
		if (len > inlen - i - 1)
			break;
		if (len == 2 && memcmp(in + i + 1, "h2", 2) == 0) {
			*out = in + i + 1;
			*outlen = 2;
			return SSL_TLSEXT_ERR_OK;
		}
	}
	dprintf(r->st_fd, "error a client did not offer h2 in ALPN\n");
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* Listens on 127.0.0.1 (ephemeral port, into port_r): TLS 1.3 with the
 * fixture's certificate, ALPN h2. */
static int h2_listen(struct responder *r, const struct tfx_pki *pki, uint16_t *port_r)
{
	r->ssl_ctx = SSL_CTX_new(TLS_server_method());
	if (r->ssl_ctx == NULL || SSL_CTX_set_min_proto_version(r->ssl_ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_use_certificate_chain_file(r->ssl_ctx, pki->cert_file) != 1 ||
	    SSL_CTX_use_PrivateKey_file(r->ssl_ctx, pki->key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(r->ssl_ctx) != 1)
		return HK_ERR_CRYPTO;
	SSL_CTX_set_alpn_select_cb(r->ssl_ctx, h2_alpn_select, r);

	if (nghttp2_session_callbacks_new(&r->h2_cbs) != 0)
		abort();
	nghttp2_session_callbacks_set_send_callback(r->h2_cbs, h2_send_cb);
	nghttp2_session_callbacks_set_on_begin_headers_callback(r->h2_cbs, h2_on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(r->h2_cbs, h2_on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(r->h2_cbs, h2_on_data);
	nghttp2_session_callbacks_set_on_frame_recv_callback(r->h2_cbs, h2_on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(r->h2_cbs, h2_on_stream_close);

	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	r->listener = evconnlistener_new_bind(r->base, h2_on_accept, r,
	                                      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
	                                      H2_BACKLOG, (struct sockaddr *)&sin, sizeof(sin));
	if (r->listener == NULL)
		return HK_ERR_IO;
	evconnlistener_set_error_cb(r->listener, h2_on_accept_error);
	struct sockaddr_in bound;
	socklen_t blen = sizeof(bound);
	if (getsockname(evconnlistener_get_fd(r->listener), (struct sockaddr *)&bound, &blen) < 0)
		return HK_ERR_IO;
	*port_r = ntohs(bound.sin_port);
	return 0;
}

static void h2_stop(struct responder *r)
{
	while (r->conns != NULL)
		h2_conn_free(r->conns);
	if (r->listener != NULL)
		evconnlistener_free(r->listener);
	nghttp2_session_callbacks_del(r->h2_cbs);
	SSL_CTX_free(r->ssl_ctx);
}

/* ---- both ---- */

/* HTTP/1.1, --retire: a held Ping whose client closed the connection. evhttp
 * does not read a connection while its request waits for the answer, so it
 * does not notice; poll() does (POLLRDHUP: the client's FIN). Such a Ping
 * is forgotten, and the fixture closes its connection. One poll() for all. */
static void h1_forget_closed(struct responder *r)
{
	if (r->nheld == 0)
		return;
	struct pollfd *pfd = calloc(r->nheld, sizeof(*pfd));
	struct held **hs = calloc(r->nheld, sizeof(*hs));
	if (pfd == NULL || hs == NULL)
		abort();
	nfds_t n = 0;
	for (struct held *h = r->held; h != NULL && n < r->nheld; h = h->next) {
		struct evhttp_connection *evcon =
		    h->req != NULL ? evhttp_request_get_connection(h->req) : NULL;
		struct bufferevent *bev =
		    evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
		/* detached (evhttp saw the close after all): fd -1, always gone */
		pfd[n].fd = bev != NULL ? bufferevent_getfd(bev) : -1;
		pfd[n].events = POLLRDHUP;
		hs[n++] = h;
	}
	if (poll(pfd, n, 0) >= 0)
		for (nfds_t i = 0; i < n; i++) {
			if (pfd[i].fd >= 0 &&
			    (pfd[i].revents & (POLLRDHUP | POLLHUP | POLLERR)) == 0)
				continue;
			r->gone_closed++;
			/* frees the request and closes its connection */
			tfx_drop(r->srv, hs[i]->req, 0);
			held_forget(hs[i]);
		}
	free(pfd);
	free(hs);
}

/* --retire: the held Pings that went, frames, and when the last was held. */
static void report_retire(struct responder *r)
{
	if (!r->h2)
		h1_forget_closed(r);
	size_t busiest = 0, single = 0;
	for (const struct h2_conn *c = r->conns; c != NULL; c = c->next) {
		if (c->nstreams > busiest)
			busiest = c->nstreams;
		single += c->nstreams == 1;
	}
	if (r->gone_reset == r->last_gone_reset && r->gone_closed == r->last_gone_closed &&
	    r->rst == r->last_rst && r->goaway == r->last_goaway && r->hold_us == r->last_hold_us &&
	    busiest == r->last_busiest && single == r->last_single)
		return;
	if (dprintf(r->st_fd,
	            "gone reset %zu closed %zu rst %zu code %lu goaway %zu hold_us %lu busiest %zu "
	            "single %zu\n",
	            r->gone_reset, r->gone_closed, r->rst, (unsigned long)r->rst_code, r->goaway,
	            r->hold_us, busiest, single) < 0)
		event_base_loopbreak(r->base);
	r->last_busiest = busiest;
	r->last_single = single;
	r->last_gone_reset = r->gone_reset;
	r->last_gone_closed = r->gone_closed;
	r->last_rst = r->rst;
	r->last_goaway = r->goaway;
	r->last_hold_us = r->hold_us;
}

/* Reports what changed, at most every 50 ms. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct responder *r = arg;
	if (r->retire_report)
		report_retire(r); /* first: its line comes before the held line */
	size_t held = r->nheld, count = r->h2 ? r->received : tfx_server_count(r->srv);
	if (r->h2 && (r->accepted != r->last_accepted || r->open != r->last_open ||
	              r->streams_peak != r->last_peak)) {
		if (dprintf(r->st_fd, "conns accepted %zu open %zu peak %zu\n", r->accepted,
		            r->open, r->streams_peak) < 0)
			event_base_loopbreak(r->base);
		r->last_accepted = r->accepted;
		r->last_open = r->open;
		r->last_peak = r->streams_peak;
	}
	if (held == r->last_held && count == r->last_count && r->refused == r->last_refused &&
	    r->bad == r->last_bad)
		return;
	if (dprintf(r->st_fd, "held %zu received %zu refused %zu bad %zu\n", held, count,
	            r->refused, r->bad) < 0)
		event_base_loopbreak(r->base); /* the client side is gone */
	r->last_held = held;
	r->last_count = count;
	r->last_refused = r->refused;
	r->last_bad = r->bad;
}

/* The client side writes 'r' to have every held Ping answered now (the
 * next round of Pings follows), 'x' before its first retire (--retire),
 * and closes the pipe when it is done. */
static void on_ctl(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct responder *r = arg;
	char c[16];
	ssize_t n = read(fd, c, sizeof(c));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		event_base_loopbreak(r->base);
		return;
	}
	if (memchr(c, 'x', (size_t)n) != NULL)
		r->retire_report = true;
	if (memchr(c, 'r', (size_t)n) != NULL)
		while (r->held != NULL)
			held_answer(r->held);
}

/* The responder process: HTTP/2 when h2, else HTTP/1.1; max_streams is
 * HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS. */
static int responder_main(const char *dir, int ctl_fd, int st_fd, bool h2,
                          unsigned long max_streams)
{
	struct responder r = {.st_fd = st_fd, .h2 = h2, .max_streams = (uint32_t)max_streams};
	struct tfx_pki pki;
	const char *err = NULL;
	int ret = tfx_pki_create(dir, &pki);
	if (ret < 0) {
		dprintf(st_fd, "error cannot create the PKI in %s: %s\n", dir, hk_strerror(ret));
		return 1;
	}
	r.seed = secret_new(SEED_LEN);
	if (read_full(ctl_fd, secret_bytes(r.seed), SEED_LEN) < 0) {
		secret_free(&r.seed);
		return 1;
	}
	struct eas_node *ok = eas_node_new(EAS_PAGE_PING, "Ping");
	eas_node_add_text(ok, EAS_PAGE_PING, "Status", "1");
	ret = eas_wbxml_encode(ok, &r.ping_ok, &r.ping_ok_len, &err);
	eas_node_free(&ok);
	if (ret < 0) {
		dprintf(st_fd, "error cannot encode the Ping answer: %s\n", err);
		secret_free(&r.seed);
		return 1;
	}
	r.base = event_base_new();
	if (r.base == NULL)
		abort();
	uint16_t port = 0;
	if (h2) {
		ret = h2_listen(&r, &pki, &port);
	} else {
		struct tfx_server_opts opts = {.cert_file = pki.cert_file,
		                               .key_file = pki.key_file,
		                               .handler = on_request,
		                               .ctx = &r};
		ret = tfx_server_new(r.base, &opts, &r.srv);
		if (ret == 0)
			port = tfx_server_port(r.srv);
	}
	if (ret < 0) {
		dprintf(st_fd, "error cannot start the server: %s\n", hk_strerror(ret));
		goto out;
	}
	if (fcntl(ctl_fd, F_SETFL, O_NONBLOCK) < 0)
		abort();
	r.tick = event_new(r.base, -1, EV_PERSIST, on_tick, &r);
	r.ctl_ev = event_new(r.base, ctl_fd, EV_READ | EV_PERSIST, on_ctl, &r);
	if (r.tick == NULL || r.ctl_ev == NULL)
		abort();
	struct timeval tv = {0, 50000};
	event_add(r.tick, &tv);
	event_add(r.ctl_ev, NULL);
	dprintf(st_fd, "port %u\n", port);
	event_base_dispatch(r.base);
out:
	while (r.held != NULL)
		held_forget(r.held); /* their requests go with the server */
	if (r.tick != NULL)
		event_free(r.tick);
	if (r.ctl_ev != NULL)
		event_free(r.ctl_ev);
	tfx_server_free(&r.srv);
	if (h2)
		h2_stop(&r);
	event_base_free(r.base);
	free(r.ping_ok);
	secret_free(&r.seed);
	return ret < 0 ? 1 : 0;
}

/* ---- measuring ---------------------------------------------------------- */

struct mem {
	long rss_kib, pss_kib, private_dirty_kib, anon_kib; /* smaps_rollup */
	size_t heap_used;                                   /* mallinfo2: in use */
	size_t heap_total;                                  /* mallinfo2: from the system */
	size_t wipe_blocks; /* live blocks of OpenSSL and curl (wiping allocator) */
	long locked_kib;    /* VmLck: mlock()ed, the guarded secrets among it */
	long threads;
	long fds;
	long sockets; /* of the descriptors: TCP connections, and curl's wakeup pair */
};

static long field_kib(const char *line, const char *name)
{
	size_t n = strlen(name);
	if (strncmp(line, name, n) != 0)
		return -1;
	return strtol(line + n, NULL, 10);
}

static void mem_read(struct mem *m)
{
	memset(m, 0, sizeof(*m));
	m->rss_kib = m->pss_kib = m->private_dirty_kib = m->anon_kib = -1;
	char line[256];
	long v;
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	if (f != NULL) {
		while (fgets(line, sizeof(line), f) != NULL) {
			if ((v = field_kib(line, "Rss:")) >= 0)
				m->rss_kib = v;
			else if ((v = field_kib(line, "Pss:")) >= 0)
				m->pss_kib = v;
			else if ((v = field_kib(line, "Private_Dirty:")) >= 0)
				m->private_dirty_kib = v;
			else if ((v = field_kib(line, "Anonymous:")) >= 0)
				m->anon_kib = v;
		}
		fclose(f);
	}
	f = fopen("/proc/self/status", "r");
	if (f != NULL) {
		while (fgets(line, sizeof(line), f) != NULL) {
			if ((v = field_kib(line, "VmRSS:")) >= 0 && m->rss_kib < 0)
				m->rss_kib = v; /* a kernel without smaps_rollup */
			else if ((v = field_kib(line, "VmLck:")) >= 0)
				m->locked_kib = v;
			else if ((v = field_kib(line, "Threads:")) >= 0)
				m->threads = v;
		}
		fclose(f);
	}
	struct mallinfo2 mi = mallinfo2();
	m->heap_used = mi.uordblks + mi.hblkhd;
	m->heap_total = mi.arena + mi.hblkhd;
	m->wipe_blocks = wipealloc_live_blocks();
	DIR *d = opendir("/proc/self/fd");
	if (d != NULL) {
		const struct dirent *de;
		char target[64];
		while ((de = readdir(d)) != NULL) {
			m->fds++;
			ssize_t n = readlinkat(dirfd(d), de->d_name, target, sizeof(target) - 1);
			if (n > 0 && (size_t)n >= 7 && memcmp(target, "socket:", 7) == 0)
				m->sockets++;
		}
		closedir(d);
		m->fds -= 3; /* ".", "..", and the directory's own descriptor */
	}
}

/* ---- the client side ---------------------------------------------------- */

struct bench;

struct account {
	struct bench *b;
	struct eas_client *client;
};

enum phase { WAIT_PORT, RAMP, SETTLE, CYCLE, RETIRE, RETIRE_SETTLE, DONE };

#define MAX_CYCLES  10
#define MAX_RETIRES 10

/* What the responder reported, at a point in time (--retire). */
struct resp_counts {
	unsigned long held, received, accepted, open, peak, gone_reset, gone_closed, rst, goaway;
	unsigned long busiest, single; /* HTTP/2: most streams on one connection; with one */
};

/* One httpc_retire() with all N Pings waiting (--retire). Times in ms from
 * the call; -1 until seen. */
struct retire {
	double t0;
	double moved_ms;         /* httpc_get_stats: restarted + N (the retire took effect) */
	double held_ms;          /* the last Ping sent again held by the responder (its clock) */
	double freed_ms;         /* the old pool freed: pools_freed + 1, pools_retired 0 */
	double done_ms;          /* every condition seen here (status lines come every 50 ms) */
	double t_poll, stall_ms; /* the last 1 ms poll; the longest time between two */
	struct httpc_stats st0, st1;
	struct resp_counts c0, c1;   /* at the call; when done */
	long sockets_before;         /* the client's, at the reading before */
	unsigned long callbacks;     /* Ping callbacks in the retire: must stay 0 */
	long overflows0, overflows1; /* TcpExt ListenOverflows (the network namespace's) */
	unsigned long rst_code;      /* the responder's last RST_STREAM error code */
	struct mem mem;              /* settle ms after done */
};

struct bench {
	/* options */
	unsigned long n, window, cycles;
	long buffer;
	unsigned heartbeat;
	long settle_ms;
	bool h2;                   /* the responder speaks HTTP/2 */
	unsigned long max_streams; /* its SETTINGS_MAX_CONCURRENT_STREAMS */

	enum phase phase;
	struct event_base *base;
	struct httpc *http;
	struct eas_node *ping_req;
	struct secret *seed;
	struct account *acc;
	unsigned long started, held, received, refused, bad;
	unsigned long cycle, answered; /* rounds done; answers in this round */
	/* HTTP/2 responder: connections accepted, open, most streams on one */
	unsigned long conns_accepted, conns_open, streams_peak;
	unsigned long answers_h1, answers_h2; /* Ping answers by HTTP version */
	char url[128];
	char ca_file[TFX_PATH_MAX];
	char tls[128];
	char failure[256];
	int st_fd, ctl_fd;
	char line[512];
	size_t line_len;
	struct event *st_ev, *settle, *deadline;
	double t0, t_held;
	/* [0] baseline, [1] first round waiting, [1 + k] after round k */
	struct mem m[2 + MAX_CYCLES];
	size_t nm;
	struct mem trimmed; /* the last, after malloc_trim(0) */

	/* --retire */
	unsigned long retires, retire; /* asked for; begun */
	unsigned long gone_reset, gone_closed, rst, rst_code, goaway, hold_us; /* responder */
	unsigned long busiest, single;
	struct resp_counts pre; /* the responder's counts when the rounds ended */
	double t_rounds_end;
	struct retire ret[MAX_RETIRES];
	struct mem ret_trimmed; /* after the last retire, after malloc_trim(0) */
	char cb_first[256];     /* the first Ping callback during a retire */
	struct event *poll, *grace;
};

static void fail(struct bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct bench *b, const char *fmt, ...)
{
	if (b->failure[0] == '\0') {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(b->failure, sizeof(b->failure), fmt, ap);
		va_end(ap);
	}
	b->phase = DONE;
	event_base_loopbreak(b->base);
}

static void arm_deadline(struct bench *b)
{
	struct timeval dl = {60 + (time_t)(b->n / 20), 0};
	evtimer_add(b->deadline, &dl);
}

static void on_ping(struct eas_response *resp, void *ctx)
{
	struct account *a = ctx;
	struct bench *b = a->b;
	if (b->phase == RETIRE || b->phase == RETIRE_SETTLE) {
		/* A restart is invisible to the caller: any callback is a bug. */
		struct retire *rt = &b->ret[b->retire - 1];
		if (rt->callbacks++ == 0) {
			snprintf(b->cb_first, sizeof(b->cb_first),
			         "account %zu: %s (http %ld, HTTP/%d, Status %d, %s) %.1f ms "
			         "after httpc_retire()",
			         (size_t)(a - b->acc), eas_action_name(resp->action),
			         resp->http_status, resp->http_version, resp->status,
			         resp->error != NULL ? resp->error : "no error text",
			         (now_s() - rt->t0) * 1000.0);
			fprintf(stderr, "bench-ping: RETIRE %lu: A PING CALLBACK FIRED: %s\n",
			        b->retire, b->cb_first);
			struct timeval tv = {1, 0}; /* to count the others */
			evtimer_add(b->grace, &tv);
		}
		return;
	}
	/* Only the responder's release ends a Ping; anything else voids the run. */
	if (b->phase != CYCLE || resp->action != EAS_ACT_OK || resp->status != 1) {
		fail(b, "a Ping ended unexpectedly: %s (http %ld, Status %d, %s)",
		     eas_action_name(resp->action), resp->http_status, resp->status,
		     resp->error != NULL ? resp->error : "no error text");
		return;
	}
	/* The version curl used, not the one asked for: a client that fell
	 * back to HTTP/1.1 would measure the wrong thing. */
	if (resp->http_version != (b->h2 ? 2 : 1)) {
		fail(b, "a Ping was answered over HTTP/%d, not HTTP/%s", resp->http_version,
		     b->h2 ? "2" : "1.1");
		return;
	}
	if (resp->http_version == 2)
		b->answers_h2++;
	else
		b->answers_h1++;
	b->answered++;
	/* what the relay does: the next Ping at once */
	int ret = eas_client_ping(a->client, b->ping_req, b->heartbeat, on_ping, a);
	if (ret < 0)
		fail(b, "eas_client_ping: %s", hk_strerror(ret));
}

/* Starts Pings while fewer than window are on their way to being held. */
static void start_more(struct bench *b)
{
	while (b->phase == RAMP && b->started < b->n && b->started - b->held < b->window) {
		unsigned long i = b->started;
		char user[32], device[EAS_DEVICE_ID_MAX + 1];
		account_user(i, user, sizeof(user));
		snprintf(device, sizeof(device), "HKBENCH%08lu", i);
		struct eas_client_config cfg = {.url = b->url,
		                                .username = user,
		                                .device_id = device,
		                                .ca_file = b->ca_file,
		                                .ping_buffer_size = b->buffer,
		                                .http2 = b->h2};
		struct secret *pw = account_password(b->seed, i);
		const char *err = NULL;
		int ret = eas_client_new(b->http, &cfg, pw, &b->acc[i].client, &err);
		secret_free(&pw);
		if (ret < 0) {
			fail(b, "eas_client_new: %s", err);
			return;
		}
		b->acc[i].b = b;
		ret = eas_client_ping(b->acc[i].client, b->ping_req, b->heartbeat, on_ping,
		                      &b->acc[i]);
		if (ret < 0) {
			fail(b, "eas_client_ping: %s", hk_strerror(ret));
			return;
		}
		b->started++;
	}
}

/* All N Pings of the current round are held by the responder. */
static bool all_waiting(const struct bench *b)
{
	if (b->held != b->n || b->received != b->n * (b->cycle + 1) ||
	    (b->phase == CYCLE && b->answered != b->n) || httpc_active(b->http) != b->n)
		return false;
	for (unsigned long i = 0; i < b->n; i++)
		if (!eas_client_ping_active(b->acc[i].client))
			return false;
	return true;
}

static void start_retire(struct bench *b);
static void retire_settled(struct bench *b);

static void on_settled(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct bench *b = arg;
	if (b->phase == RETIRE_SETTLE) {
		retire_settled(b);
		return;
	}
	mem_read(&b->m[b->nm++]);
	if (b->held != b->n || b->received != b->n * (b->cycle + 1)) {
		fail(b, "the responder holds %lu of %lu Pings after settling", b->held, b->n);
		return;
	}
	if (b->cycle == b->cycles) {
		/* How much of the RSS is free heap the allocator kept. */
		malloc_trim(0);
		mem_read(&b->trimmed);
		if (b->retires > 0) {
			start_retire(b);
			return;
		}
		b->phase = DONE;
		event_base_loopbreak(b->base);
		return;
	}
	/* Next round: the responder answers every Ping, each account Pings again. */
	b->cycle++;
	b->answered = 0;
	b->phase = CYCLE;
	arm_deadline(b);
	if (write(b->ctl_fd, "r", 1) != 1)
		fail(b, "cannot reach the responder");
}

/* ---- --retire ---- */

static void resp_counts_now(const struct bench *b, struct resp_counts *c)
{
	*c = (struct resp_counts){.held = b->held,
	                          .received = b->received,
	                          .accepted = b->conns_accepted,
	                          .open = b->conns_open,
	                          .peak = b->streams_peak,
	                          .gone_reset = b->gone_reset,
	                          .gone_closed = b->gone_closed,
	                          .rst = b->rst,
	                          .goaway = b->goaway,
	                          .busiest = b->busiest,
	                          .single = b->single};
}

/* TcpExt ListenOverflows of /proc/net/netstat: SYNs dropped because an
 * accept queue was full (any listener of the network namespace); -1 when
 * unreadable. */
static long listen_overflows(void)
{
	FILE *f = fopen("/proc/net/netstat", "r");
	if (f == NULL)
		return -1;
	char names[4096], values[4096];
	long v = -1;
	while (v < 0 && fgets(names, sizeof(names), f) != NULL &&
	       fgets(values, sizeof(values), f) != NULL) {
		if (strncmp(names, "TcpExt:", 7) != 0 || strncmp(values, "TcpExt:", 7) != 0)
			continue;
		char *sn = NULL, *sv = NULL;
		char *n = strtok_r(names, " \n", &sn), *val = strtok_r(values, " \n", &sv);
		while (n != NULL && val != NULL) {
			if (strcmp(n, "ListenOverflows") == 0) {
				unsigned long u;
				v = parse_ulong(val, 0, LONG_MAX, &u) == 0 ? (long)u : -1;
				break;
			}
			n = strtok_r(NULL, " \n", &sn);
			val = strtok_r(NULL, " \n", &sv);
		}
	}
	fclose(f);
	return v;
}

static void start_retire(struct bench *b)
{
	struct retire *rt = &b->ret[b->retire];
	if (b->retire == 0) {
		b->t_rounds_end = now_s();
		resp_counts_now(b, &b->pre);
		/* the responder reports what became of the held Pings */
		if (write(b->ctl_fd, "x", 1) != 1) {
			fail(b, "cannot reach the responder");
			return;
		}
	}
	rt->sockets_before =
	    b->retire == 0 ? b->trimmed.sockets : b->ret[b->retire - 1].mem.sockets;
	rt->moved_ms = rt->held_ms = rt->freed_ms = rt->done_ms = -1;
	httpc_get_stats(b->http, &rt->st0);
	resp_counts_now(b, &rt->c0);
	rt->overflows0 = listen_overflows();
	b->retire++;
	b->phase = RETIRE;
	arm_deadline(b);
	struct timeval tv = {0, 1000};
	evtimer_add(b->poll, &tv);
	rt->t0 = rt->t_poll = now_s();
	rt->stall_ms = 0;
	httpc_retire(b->http);
}

/* Every Ping moved, sent again and held, every old one gone at the
 * responder, the old pool freed. */
static bool retire_complete(const struct bench *b, const struct retire *rt)
{
	struct httpc_stats st;
	httpc_get_stats(b->http, &st);
	if (st.retires != rt->st0.retires + 1 || st.restarted != rt->st0.restarted + b->n ||
	    st.pools_freed != rt->st0.pools_freed + 1 || st.pools_retired != 0)
		return false;
	if (b->held != b->n || b->received != rt->c0.received + b->n ||
	    b->gone_reset + b->gone_closed != rt->c0.gone_reset + rt->c0.gone_closed + b->n)
		return false;
	/* over HTTP/2: every connection open now was accepted after the call */
	if (b->h2 && b->conns_open != b->conns_accepted - rt->c0.accepted)
		return false;
	if (httpc_active(b->http) != b->n)
		return false;
	for (unsigned long i = 0; i < b->n; i++)
		if (!eas_client_ping_active(b->acc[i].client))
			return false;
	return true;
}

static void check_retire(struct bench *b)
{
	struct retire *rt = &b->ret[b->retire - 1];
	if (b->phase != RETIRE || rt->callbacks > 0)
		return;
	double t = now_s();
	struct httpc_stats st;
	httpc_get_stats(b->http, &st);
	if (rt->moved_ms < 0 && st.restarted >= rt->st0.restarted + b->n)
		rt->moved_ms = (t - rt->t0) * 1000.0;
	if (rt->freed_ms < 0 && st.pools_freed > rt->st0.pools_freed && st.pools_retired == 0)
		rt->freed_ms = (t - rt->t0) * 1000.0;
	if (!retire_complete(b, rt))
		return;
	evtimer_del(b->poll);
	rt->done_ms = (t - rt->t0) * 1000.0;
	rt->held_ms = (double)b->hold_us / 1e3 - rt->t0 * 1000.0;
	rt->st1 = st;
	rt->rst_code = b->rst_code;
	resp_counts_now(b, &rt->c1);
	rt->overflows1 = listen_overflows();
	b->phase = RETIRE_SETTLE;
	struct timeval tv = {b->settle_ms / 1000, (b->settle_ms % 1000) * 1000};
	evtimer_add(b->settle, &tv);
}

/* Every 1 ms while a retire runs: httpc's counters change without a
 * status line. */
static void on_poll(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct bench *b = arg;
	struct retire *rt = &b->ret[b->retire - 1];
	double t = now_s();
	if ((t - rt->t_poll) * 1000.0 > rt->stall_ms)
		rt->stall_ms = (t - rt->t_poll) * 1000.0; /* the loop was busy that long */
	rt->t_poll = t;
	check_retire(b);
	if (b->phase == RETIRE) {
		struct timeval tv = {0, 1000};
		evtimer_add(b->poll, &tv);
	}
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct bench *b = arg;
	fail(b,
	     "retire %lu: %lu Ping callbacks fired (a restart must be invisible to the caller); "
	     "first: %s",
	     b->retire, b->ret[b->retire - 1].callbacks, b->cb_first);
}

static void retire_settled(struct bench *b)
{
	struct retire *rt = &b->ret[b->retire - 1];
	mem_read(&rt->mem);
	if (b->held != b->n || httpc_active(b->http) != b->n) {
		fail(b,
		     "retire %lu: the responder holds %lu of %lu Pings, httpc has %zu calls, "
		     "after settling",
		     b->retire, b->held, b->n, httpc_active(b->http));
		return;
	}
	if (b->retire < b->retires) {
		start_retire(b);
		return;
	}
	malloc_trim(0);
	mem_read(&b->ret_trimmed);
	b->phase = DONE;
	event_base_loopbreak(b->base);
}

static void check_progress(struct bench *b)
{
	if (b->phase == RETIRE) {
		check_retire(b);
		return;
	}
	if (b->phase == RAMP)
		start_more(b);
	if ((b->phase == RAMP || b->phase == CYCLE) && all_waiting(b)) {
		if (b->phase == RAMP)
			b->t_held = now_s();
		b->phase = SETTLE;
		struct timeval tv = {b->settle_ms / 1000, (b->settle_ms % 1000) * 1000};
		evtimer_add(b->settle, &tv);
	}
}

/* "<key0><v0><key1><v1>..." with decimal values, as the responder writes
 * its status lines. */
static int parse_fields(const char *line, const char *const *keys, size_t n, unsigned long *v)
{
	const char *p = line;
	for (size_t k = 0; k < n; k++) {
		size_t kl = strlen(keys[k]);
		char *end;
		if (strncmp(p, keys[k], kl) != 0)
			return -1;
		errno = 0;
		v[k] = strtoul(p + kl, &end, 10);
		if (errno != 0 || end == p + kl)
			return -1;
		p = end;
	}
	return *p == '\0' ? 0 : -1;
}

static void status_line(struct bench *b, const char *line)
{
	static const char *const held_keys[] = {"held ", " received ", " refused ", " bad "};
	static const char *const conns_keys[] = {"conns accepted ", " open ", " peak "};
	static const char *const gone_keys[] = {"gone reset ", " closed ", " rst ",
	                                        " code ",      " goaway ", " hold_us ",
	                                        " busiest ",   " single "};
	if (strncmp(line, "port ", 5) == 0 && b->phase == WAIT_PORT) {
		unsigned long port;
		if (parse_ulong(line + 5, 1, 65535, &port) < 0) {
			fail(b, "bad port line from the responder");
			return;
		}
		snprintf(b->url, sizeof(b->url), "https://127.0.0.1:%lu" EAS_PATH, port);
		/* Everything per process exists: the loop, httpc, the request. */
		mem_read(&b->m[b->nm++]);
		b->phase = RAMP;
		b->t0 = now_s();
		check_progress(b);
	} else if (strncmp(line, "held ", 5) == 0) {
		unsigned long v[4];
		if (parse_fields(line, held_keys, 4, v) < 0) {
			fail(b, "bad status line from the responder: %s", line);
			return;
		}
		b->held = v[0];
		b->received = v[1];
		b->refused = v[2];
		b->bad = v[3];
		if (b->refused > 0 || b->bad > 0) {
			fail(b, "the responder refused %lu and rejected %lu requests", b->refused,
			     b->bad);
			return;
		}
		check_progress(b);
	} else if (strncmp(line, "conns ", 6) == 0) {
		unsigned long v[3];
		if (parse_fields(line, conns_keys, 3, v) < 0) {
			fail(b, "bad status line from the responder: %s", line);
			return;
		}
		b->conns_accepted = v[0];
		b->conns_open = v[1];
		b->streams_peak = v[2];
	} else if (strncmp(line, "gone ", 5) == 0) {
		unsigned long v[8];
		if (parse_fields(line, gone_keys, 8, v) < 0) {
			fail(b, "bad status line from the responder: %s", line);
			return;
		}
		b->gone_reset = v[0];
		b->gone_closed = v[1];
		b->rst = v[2];
		b->rst_code = v[3];
		b->goaway = v[4];
		b->hold_us = v[5];
		b->busiest = v[6];
		b->single = v[7];
		check_progress(b);
	} else if (strncmp(line, "tls ", 4) == 0) {
		snprintf(b->tls, sizeof(b->tls), "%s", line + 4);
	} else if (strncmp(line, "error ", 6) == 0) {
		fail(b, "responder: %s", line + 6);
	}
}

static void on_status(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct bench *b = arg;
	ssize_t n = read(fd, b->line + b->line_len, sizeof(b->line) - 1 - b->line_len);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		fail(b, "the responder exited");
		return;
	}
	b->line_len += (size_t)n;
	char *nl;
	while (b->phase != DONE && (nl = memchr(b->line, '\n', b->line_len)) != NULL) {
		*nl = '\0';
		status_line(b, b->line);
		size_t used = (size_t)(nl - b->line) + 1;
		memmove(b->line, nl + 1, b->line_len - used);
		b->line_len -= used;
	}
	if (b->line_len == sizeof(b->line) - 1)
		fail(b, "status line from the responder too long");
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct bench *b = arg;
	if (b->phase == RETIRE || b->phase == RETIRE_SETTLE) {
		const struct retire *rt = &b->ret[b->retire - 1];
		struct httpc_stats st;
		httpc_get_stats(b->http, &st);
		unsigned long inactive = 0;
		for (unsigned long i = 0; i < b->n; i++)
			inactive += !eas_client_ping_active(b->acc[i].client);
		fail(b,
		     "retire %lu timed out after %.1f s: httpc retires +%llu restarted +%llu "
		     "waves +%llu pools_freed +%llu pools_retired %llu active %zu (%lu accounts "
		     "without a Ping); responder holds %lu, received +%lu, old Pings ended +%lu "
		     "reset +%lu closed, connections open %lu accepted +%lu; callbacks %lu",
		     b->retire, now_s() - rt->t0,
		     (unsigned long long)(st.retires - rt->st0.retires),
		     (unsigned long long)(st.restarted - rt->st0.restarted),
		     (unsigned long long)(st.waves - rt->st0.waves),
		     (unsigned long long)(st.pools_freed - rt->st0.pools_freed),
		     (unsigned long long)st.pools_retired, httpc_active(b->http), inactive, b->held,
		     b->received - rt->c0.received, b->gone_reset - rt->c0.gone_reset,
		     b->gone_closed - rt->c0.gone_closed, b->conns_open,
		     b->conns_accepted - rt->c0.accepted, rt->callbacks);
		return;
	}
	fail(b, "timed out in round %lu: %lu Pings started, %lu answered, %lu held (of %lu)",
	     b->cycle, b->started, b->answered, b->held, b->n);
}

/* The Ping every account sends: one Inbox folder. */
static struct eas_node *ping_request(unsigned heartbeat)
{
	char hb[16];
	snprintf(hb, sizeof(hb), "%u", heartbeat);
	struct eas_node *root = eas_node_new(EAS_PAGE_PING, "Ping");
	eas_node_add_text(root, EAS_PAGE_PING, "HeartbeatInterval", hb);
	struct eas_node *f =
	    eas_node_add(eas_node_add(root, EAS_PAGE_PING, "Folders"), EAS_PAGE_PING, "Folder");
	eas_node_add_text(f, EAS_PAGE_PING, "Id", "1");
	eas_node_add_text(f, EAS_PAGE_PING, "Class", "Email");
	return root;
}

static pid_t spawn_responder(const char *self, const char *dir, bool h2, unsigned long max_streams,
                             int *ctl_w, int *st_r)
{
	int ctl[2], st[2];
	if (pipe2(ctl, O_CLOEXEC) < 0 || pipe2(st, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		/* only these two survive exec */
		char a[16], c[16], ms[24];
		snprintf(a, sizeof(a), "%d", ctl[0]);
		snprintf(c, sizeof(c), "%d", st[1]);
		snprintf(ms, sizeof(ms), "%lu", max_streams);
		if (fcntl(ctl[0], F_SETFD, 0) < 0 || fcntl(st[1], F_SETFD, 0) < 0)
			_exit(127);
		execl(self, self, "--responder", dir, a, c, h2 ? "h2" : "http/1.1", ms,
		      (char *)NULL);
		_exit(127);
	}
	close(ctl[0]);
	close(st[1]);
	*ctl_w = ctl[1];
	*st_r = st[0];
	return pid;
}

static void remove_pki(const char *dir)
{
	static const char *const files[] = {"ca.pem", "ca.key", "server.pem", "server.key",
	                                    "other-ca.pem"};
	char path[TFX_PATH_MAX];
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

struct opts {
	unsigned long accounts, window, heartbeat, buffer, cycles, max_streams, retires;
	long settle_ms;
	bool all, h2;
};

static void raise_nofile(rlim_t *before_r, rlim_t *after_r, rlim_t *hard_r)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("getrlimit: %s", strerror(errno));
	*before_r = rl.rlim_cur;
	*hard_r = rl.rlim_max;
	if (rl.rlim_max == RLIM_INFINITY) {
		/* the kernel's ceiling for RLIMIT_NOFILE */
		unsigned long v = 1048576;
		FILE *f = fopen("/proc/sys/fs/nr_open", "r");
		char buf[32];
		if (f != NULL && fgets(buf, sizeof(buf), f) != NULL) {
			buf[strcspn(buf, "\n")] = '\0';
			if (parse_ulong(buf, 1024, ~0ul, &v) < 0)
				v = 1048576;
		}
		if (f != NULL)
			fclose(f);
		rl.rlim_max = v;
	}
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		fprintf(stderr, "bench-ping: cannot raise RLIMIT_NOFILE: %s\n", strerror(errno));
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("getrlimit: %s", strerror(errno));
	*after_r = rl.rlim_cur;
}

static void print_mem_row(const char *label, double div, const struct mem *m,
                          const struct mem *base)
{
	const struct mem zero = {0};
	if (base == NULL)
		base = &zero;
	printf("| %-26s | %9.1f | %9.1f | %13.1f | %11.1f | %10.1f | %10.1f |\n", label,
	       (double)(m->rss_kib - base->rss_kib) / div,
	       (double)(m->pss_kib - base->pss_kib) / div,
	       (double)(m->private_dirty_kib - base->private_dirty_kib) / div,
	       ((double)m->heap_used - (double)base->heap_used) / 1024.0 / div,
	       ((double)m->heap_total - (double)base->heap_total) / 1024.0 / div,
	       ((double)m->wipe_blocks - (double)base->wipe_blocks) / div);
}

/* --retire: one row per retire done, then memory before and after. */
static void print_retires(const struct bench *b)
{
	const struct mem *m0 = &b->m[0], *mc = &b->m[b->nm - 1];
	unsigned long done = 0;
	while (done < b->retire && b->ret[done].done_ms >= 0)
		done++;
	printf("\nretire: %lu of %lu times httpc_retire() with all %lu Pings waiting, then the "
	       "loop until every Ping is held again on new connections, every old one ended at "
	       "the responder and the old pool is freed; ms from httpc_retire(); settle %ld ms, "
	       "then the reading\n\n",
	       done, b->retires, b->n, b->settle_ms);
	printf("| retire | Pings moved | moved after ms | old pool freed after ms | all held again "
	       "after ms | longest loop stall ms | old Pings ended: stream reset / connection "
	       "closed | RST_STREAM (last code) / GOAWAY | Ping callbacks | waves |\n");
	printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
	for (unsigned long k = 0; k < b->retire; k++) {
		const struct retire *rt = &b->ret[k];
		if (rt->done_ms < 0) {
			printf("| %lu | did not complete | | | | | | | %lu | |\n", k + 1,
			       rt->callbacks);
			continue;
		}
		const struct resp_counts *c0 = &rt->c0, *c1 = &rt->c1;
		printf("| %lu | %llu | %.1f | %.1f | %.1f | %.1f | %lu / %lu | %lu (%lu) / %lu | "
		       "%lu | %llu |\n",
		       k + 1, (unsigned long long)(rt->st1.restarted - rt->st0.restarted),
		       rt->moved_ms, rt->freed_ms, rt->held_ms, rt->stall_ms,
		       c1->gone_reset - c0->gone_reset, c1->gone_closed - c0->gone_closed,
		       c1->rst - c0->rst, rt->rst_code, c1->goaway - c0->goaway, rt->callbacks,
		       (unsigned long long)(rt->st1.waves - rt->st0.waves));
	}
	printf("\n(moved: httpc_get_stats restarted + %lu, the last wave started; held again: the "
	       "responder's clock at the last Ping held; the client polls every 1 ms until done, "
	       "and the longest stall is the longest time between two polls, the first from "
	       "httpc_retire(); waves: httpc_get_stats waves, groups of Pings moved together)\n\n",
	       b->n);
	printf("| retire | client connections before -> after | responder connections accepted / "
	       "closed / open after | streams on one connection after: most / connections with "
	       "one | listen queue overflows |\n");
	printf("| ---: | ---: | ---: | ---: | ---: |\n");
	for (unsigned long k = 0; k < done; k++) {
		const struct retire *rt = &b->ret[k];
		const struct resp_counts *c0 = &rt->c0, *c1 = &rt->c1;
		char resp[96] = "not counted (HTTP/1.1)", streams[64] = "-";
		if (b->h2) {
			snprintf(resp, sizeof(resp), "%lu / %lu / %lu", c1->accepted - c0->accepted,
			         (c1->accepted - c1->open) - (c0->accepted - c0->open), c1->open);
			snprintf(streams, sizeof(streams), "%lu / %lu", c1->busiest, c1->single);
		}
		printf("| %lu | %ld -> %ld | %s | %s | %ld |\n", k + 1,
		       rt->sockets_before - m0->sockets, rt->mem.sockets - m0->sockets, resp,
		       streams,
		       rt->overflows0 >= 0 && rt->overflows1 >= 0 ? rt->overflows1 - rt->overflows0
		                                                  : -1l);
	}
	printf("\n(client connections: its sockets over the baseline's, settle ms after; listen "
	       "queue overflows: TcpExt ListenOverflows of the network namespace, from the call to "
	       "done)\n\n");
	printf("| %-26s | %9s | %9s | %13s | %11s | %10s | %10s |\n", "KiB per account", "RSS",
	       "Pss", "Private_Dirty", "heap in use", "heap total", "wipe blocks");
	printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
	char label[64];
	snprintf(label, sizeof(label), "before: round %zu", b->nm - 1);
	print_mem_row(label, (double)b->n, mc, m0);
	for (unsigned long k = 0; k < done; k++) {
		snprintf(label, sizeof(label), "after retire %lu", k + 1);
		print_mem_row(label, (double)b->n, &b->ret[k].mem, m0);
	}
	print_mem_row("before, malloc_trim(0)", (double)b->n, &b->trimmed, m0);
	if (done == b->retires && b->failure[0] == '\0') {
		snprintf(label, sizeof(label), "after retire %lu, trimmed", done);
		print_mem_row(label, (double)b->n, &b->ret_trimmed, m0);
	}
	for (unsigned long k = 0; k < done; k++) {
		const struct retire *rt = &b->ret[k];
		printf("RETIRE k=%lu moved=%llu moved_ms=%.1f freed_ms=%.1f held_ms=%.1f "
		       "stall_ms=%.1f "
		       "conns_before=%ld conns_after=%ld accepted=%lu closed=%lu gone_reset=%lu "
		       "gone_closed=%lu rst=%lu goaway=%lu callbacks=%lu waves=%llu rss=%ld "
		       "rss_before=%ld heap=%.0f heap_before=%.0f\n",
		       k + 1, (unsigned long long)(rt->st1.restarted - rt->st0.restarted),
		       rt->moved_ms, rt->freed_ms, rt->held_ms, rt->stall_ms,
		       rt->sockets_before - m0->sockets, rt->mem.sockets - m0->sockets,
		       rt->c1.accepted - rt->c0.accepted,
		       (rt->c1.accepted - rt->c1.open) - (rt->c0.accepted - rt->c0.open),
		       rt->c1.gone_reset - rt->c0.gone_reset,
		       rt->c1.gone_closed - rt->c0.gone_closed, rt->c1.rst - rt->c0.rst,
		       rt->c1.goaway - rt->c0.goaway, rt->callbacks,
		       (unsigned long long)(rt->st1.waves - rt->st0.waves),
		       rt->mem.rss_kib - m0->rss_kib,
		       mc->rss_kib - m0->rss_kib,
		       ((double)rt->mem.heap_used - (double)m0->heap_used) / 1024.0,
		       ((double)mc->heap_used - (double)m0->heap_used) / 1024.0);
	}
}

static void print_report(const struct bench *b, const char *cmdline, pid_t pid, rlim_t before,
                         rlim_t after, rlim_t hard, const char *method, double t_end)
{
	printf("command: %s\n", cmdline);
	printf("bench-ping: %lu accounts waiting in Ping, curl receive buffer %ld B, "
	       "HeartbeatInterval %u s, window %lu, settle %ld ms, %lu re-Ping rounds\n",
	       b->n, b->buffer > 0 ? b->buffer : 1024, b->heartbeat, b->window, b->settle_ms,
	       b->cycles);
	if (b->h2)
		printf("responder speaks HTTP/2 (ALPN h2 only, SETTINGS_MAX_CONCURRENT_STREAMS "
		       "%lu)\n",
		       b->max_streams);
	else
		printf("responder speaks HTTP/1.1 (evhttp, no ALPN)\n");
	printf("responder: pid %ld, %s, %s, server certificate verified against the run's CA\n",
	       (long)pid, b->url[0] != '\0' ? b->url : "(no port)",
	       b->tls[0] != '\0' ? b->tls : "(TLS version not reported)");
	printf("RLIMIT_NOFILE: soft %llu -> %llu (hard %llu); libevent backend %s\n",
	       (unsigned long long)before, (unsigned long long)after, (unsigned long long)hard,
	       method);
	if (b->failure[0] != '\0') {
		printf("FAILED: %s (after %.1f s)\n", b->failure, t_end - b->t0);
		if (b->retire > 0)
			print_retires(b);
		return;
	}
	const struct mem *m0 = &b->m[0], *m1 = &b->m[1], *mc = &b->m[b->nm - 1];
	/* the rounds' figures, not what the retires changed */
	const struct resp_counts *rc = &b->pre;
	struct resp_counts live;
	if (b->retires == 0) {
		resp_counts_now(b, &live);
		rc = &live;
	} else {
		t_end = b->t_rounds_end;
	}
	printf("all %lu Pings held by the responder %.2f s after the first started; "
	       "%lu rounds later, done %.2f s after that\n",
	       b->n, b->t_held - b->t0, b->cycles, t_end - b->t_held);
	struct rlimit ml;
	char mlock_max[32] = "unlimited";
	if (getrlimit(RLIMIT_MEMLOCK, &ml) == 0 && ml.rlim_cur != RLIM_INFINITY)
		snprintf(mlock_max, sizeof(mlock_max), "%llu KiB",
		         (unsigned long long)ml.rlim_cur / 1024);
	printf("client process while waiting: %ld descriptors, %ld threads, %ld KiB locked "
	       "(baseline %ld KiB, RLIMIT_MEMLOCK %s)\n",
	       mc->fds, mc->threads, mc->locked_kib, m0->locked_kib, mlock_max);
	/* One per account over HTTP/1.1; over HTTP/2, N / (streams per connection). */
	long conns = mc->sockets - m0->sockets;
	printf("client: %lu Ping answers over HTTP/2, %lu over HTTP/1.1 (curl's "
	       "CURLINFO_HTTP_VERSION)\n",
	       b->answers_h2, b->answers_h1);
	printf("connections: %ld (the client's sockets while waiting, over the baseline's)", conns);
	if (b->h2)
		printf("; the responder has %lu open, accepted %lu, at most %lu streams on one "
		       "(%.1f Pings per connection)",
		       rc->open, rc->accepted, rc->peak,
		       rc->open > 0 ? (double)b->n / (double)rc->open : 0.0);
	printf("\n\n");

	printf("| %-26s | %9s | %9s | %13s | %11s | %10s | %10s |\n", "KiB", "RSS", "Pss",
	       "Private_Dirty", "heap in use", "heap total", "wipe blocks");
	printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
	char label[64];
	print_mem_row("baseline", 1, m0, NULL);
	snprintf(label, sizeof(label), "%lu waiting, first round", b->n);
	print_mem_row(label, 1, m1, NULL);
	for (size_t k = 2; k < b->nm; k++) {
		snprintf(label, sizeof(label), "%lu waiting, round %zu", b->n, k);
		print_mem_row(label, 1, &b->m[k], NULL);
	}
	print_mem_row("  then malloc_trim(0)", 1, &b->trimmed, NULL);
	print_mem_row("per account, first round", (double)b->n, m1, m0);
	if (b->nm > 2) {
		snprintf(label, sizeof(label), "per account, round %zu", b->nm - 1);
		print_mem_row(label, (double)b->n, mc, m0);
	}
	print_mem_row("per account, trimmed", (double)b->n, &b->trimmed, m0);
	double first = (double)(m1->rss_kib - m0->rss_kib) / (double)b->n;
	double last = (double)(mc->rss_kib - m0->rss_kib) / (double)b->n;
	printf("\n(heap: mallinfo2 bytes in use and taken from the system; wipe blocks: live "
	       "OpenSSL and curl allocations)\n");
	printf("target <= %.0f KiB RSS per waiting account: %s (first round %.1f KiB, "
	       "last round %.1f KiB)\n",
	       TARGET_KIB, (first <= TARGET_KIB && last <= TARGET_KIB) ? "met" : "MISSED", first,
	       last);
	printf("RESULT accounts=%lu buffer=%ld rss=%ld pd=%ld heap=%.0f rss_last=%ld "
	       "pd_last=%ld heap_last=%.0f rss_trim=%ld held_ms=%.0f http=%d conns=%ld\n",
	       b->n, b->buffer > 0 ? b->buffer : 1024, m1->rss_kib - m0->rss_kib,
	       m1->private_dirty_kib - m0->private_dirty_kib,
	       ((double)m1->heap_used - (double)m0->heap_used) / 1024.0, mc->rss_kib - m0->rss_kib,
	       mc->private_dirty_kib - m0->private_dirty_kib,
	       ((double)mc->heap_used - (double)m0->heap_used) / 1024.0,
	       b->trimmed.rss_kib - m0->rss_kib, (b->t_held - b->t0) * 1000.0, b->h2 ? 2 : 1,
	       conns);
	if (b->retires > 0)
		print_retires(b);
}

static int run_one(const struct opts *o, const char *self, const char *cmdline)
{
	rlim_t before, after, hard;
	raise_nofile(&before, &after, &hard);
	if (after < o->accounts + FD_SLACK)
		die("%lu accounts need about %lu descriptors in each process; RLIMIT_NOFILE "
		    "is %llu (hard %llu): raise the hard limit (ulimit -Hn, LimitNOFILE)",
		    o->accounts, o->accounts + FD_SLACK, (unsigned long long)after,
		    (unsigned long long)hard);

	struct bench b = {.n = o->accounts,
	                  .window = o->window,
	                  .cycles = o->cycles,
	                  .buffer = (long)o->buffer,
	                  .heartbeat = (unsigned)o->heartbeat,
	                  .settle_ms = o->settle_ms,
	                  .h2 = o->h2,
	                  .max_streams = o->max_streams,
	                  .retires = o->retires,
	                  .phase = WAIT_PORT};
	char dir[] = "/tmp/bench-ping.XXXXXX";
	if (mkdtemp(dir) == NULL)
		die("mkdtemp: %s", strerror(errno));
	snprintf(b.ca_file, sizeof(b.ca_file), "%s/ca.pem", dir);
	pid_t pid = spawn_responder(self, dir, b.h2, b.max_streams, &b.ctl_fd, &b.st_fd);
	b.seed = secret_random(SEED_LEN);
	if (write(b.ctl_fd, secret_cbytes(b.seed), SEED_LEN) != SEED_LEN)
		die("cannot hand the seed to the responder");

	b.base = event_base_new();
	if (b.base == NULL)
		abort();
	if (httpc_new(b.base, &b.http) < 0)
		die("httpc_new failed");
	b.ping_req = ping_request(b.heartbeat);
	b.acc = calloc(b.n, sizeof(*b.acc));
	if (b.acc == NULL)
		abort();
	if (fcntl(b.st_fd, F_SETFL, O_NONBLOCK) < 0)
		die("fcntl: %s", strerror(errno));
	b.st_ev = event_new(b.base, b.st_fd, EV_READ | EV_PERSIST, on_status, &b);
	b.settle = evtimer_new(b.base, on_settled, &b);
	b.deadline = evtimer_new(b.base, on_deadline, &b);
	b.poll = evtimer_new(b.base, on_poll, &b);
	b.grace = evtimer_new(b.base, on_grace, &b);
	if (b.st_ev == NULL || b.settle == NULL || b.deadline == NULL || b.poll == NULL ||
	    b.grace == NULL)
		abort();
	event_add(b.st_ev, NULL);
	arm_deadline(&b);

	event_base_dispatch(b.base);

	double t_end = now_s();
	for (unsigned long i = 0; i < b.n; i++)
		eas_client_free(&b.acc[i].client);
	httpc_free(&b.http);
	event_free(b.st_ev);
	event_free(b.settle);
	event_free(b.deadline);
	event_free(b.poll);
	event_free(b.grace);
	close(b.ctl_fd); /* the responder's cue to exit */
	waitpid(pid, NULL, 0);
	close(b.st_fd);
	remove_pki(dir);
	eas_node_free(&b.ping_req);
	free(b.acc);
	secret_free(&b.seed);
	print_report(&b, cmdline, pid, before, after, hard, event_base_get_method(b.base), t_end);
	event_base_free(b.base);
	fflush(stdout);
	return b.failure[0] != '\0' ? 1 : 0;
}

/* ---- --all: every case in a fresh process ------------------------------ */

struct result {
	unsigned long accounts;
	long buffer;
	bool h2;
	long rss, pd, heap, rss_last, pd_last, heap_last, rss_trim, held_ms, conns;
	bool ok;
};

static void run_case(const char *self, const struct opts *o, unsigned long n, long buffer, bool h2,
                     struct result *r)
{
	char sn[24], sb[24], sh[24], sw[24], ss[24], sc[24], sm[24];
	snprintf(sn, sizeof(sn), "%lu", n);
	snprintf(sb, sizeof(sb), "%ld", buffer);
	snprintf(sh, sizeof(sh), "%lu", o->heartbeat);
	snprintf(sw, sizeof(sw), "%lu", o->window);
	snprintf(ss, sizeof(ss), "%ld", o->settle_ms);
	snprintf(sc, sizeof(sc), "%lu", o->cycles);
	snprintf(sm, sizeof(sm), "%lu", o->max_streams);
	int out[2];
	if (pipe2(out, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		if (dup2(out[1], STDOUT_FILENO) < 0)
			_exit(127);
		/* "--h2" last: "--max-streams" is harmless without it */
		execl(self, self, "--accounts", sn, "--buffer", sb, "--heartbeat", sh, "--window",
		      sw, "--settle", ss, "--rounds", sc, "--max-streams", sm,
		      h2 ? "--h2" : (char *)NULL, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	memset(r, 0, sizeof(*r));
	r->accounts = n;
	r->buffer = buffer;
	r->h2 = h2;
	FILE *f = fdopen(out[0], "r");
	if (f == NULL)
		die("fdopen: %s", strerror(errno));
	char line[512];
	while (fgets(line, sizeof(line), f) != NULL) {
		fputs("    ", stdout);
		fputs(line, stdout);
		unsigned long acc;
		long buf;
		int http;
		double heap, heap_last, held;
		if (sscanf(line,
		           "RESULT accounts=%lu buffer=%ld rss=%ld pd=%ld heap=%lf rss_last=%ld "
		           "pd_last=%ld heap_last=%lf rss_trim=%ld held_ms=%lf http=%d conns=%ld",
		           &acc, &buf, &r->rss, &r->pd, &heap, &r->rss_last, &r->pd_last,
		           &heap_last, &r->rss_trim, &held, &http, &r->conns) == 12) {
			r->heap = (long)heap;
			r->heap_last = (long)heap_last;
			r->held_ms = (long)held;
			r->ok = http == (h2 ? 2 : 1);
		}
	}
	fclose(f);
	int status;
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		r->ok = false;
	fflush(stdout);
}

/* HTTP/1.1 and HTTP/2, each with curl's receive buffer at the client's
 * 1 KiB and curl's default 16 KiB, each at N = 100, 1000, 2000. */
static int run_all(const struct opts *o, const char *self, const char *cmdline)
{
	static const unsigned long ns[] = {100, 1000, 2000};
	static const struct {
		bool h2;
		long buffer;
	} groups[] = {{false, 1024}, {false, 16384}, {true, 1024}, {true, 16384}};
	enum { NN = sizeof(ns) / sizeof(ns[0]), NG = sizeof(groups) / sizeof(groups[0]) };
	struct result res[NG][NN];
	rlim_t before, after, hard;
	raise_nofile(&before, &after, &hard);
	printf("command: %s\n", cmdline);
	printf("RLIMIT_NOFILE: soft %llu -> %llu (hard %llu), inherited by every case\n\n",
	       (unsigned long long)before, (unsigned long long)after, (unsigned long long)hard);
	for (size_t gi = 0; gi < NG; gi++)
		for (size_t ni = 0; ni < NN; ni++) {
			memset(&res[gi][ni], 0, sizeof(res[gi][ni]));
			if (after < ns[ni] + FD_SLACK) {
				printf("skipping %lu accounts: RLIMIT_NOFILE %llu is too low\n",
				       ns[ni], (unsigned long long)after);
				continue;
			}
			printf("-- %lu accounts, %s, buffer %ld B\n", ns[ni],
			       groups[gi].h2 ? "HTTP/2" : "HTTP/1.1", groups[gi].buffer);
			run_case(self, o, ns[ni], groups[gi].buffer, groups[gi].h2, &res[gi][ni]);
		}
	printf("\nKiB per waiting account (RSS growth over the baseline / N); marginal: "
	       "between this N and the one above; after %lu rounds: every Ping answered and "
	       "sent again %lu times; connections: the client's sockets; HTTP/2 responder: "
	       "SETTINGS_MAX_CONCURRENT_STREAMS %lu\n\n",
	       o->cycles, o->cycles, o->max_streams);
	printf(
	    "| accounts | HTTP | curl buffer | connections | RSS | Private_Dirty | heap in use | "
	    "marginal RSS | RSS after %lu rounds | heap in use after %lu rounds | "
	    "RSS trimmed | all held after s |\n",
	    o->cycles, o->cycles);
	printf("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
	       "---: |\n");
	int failed = 0;
	for (size_t gi = 0; gi < NG; gi++)
		for (size_t ni = 0; ni < NN; ni++) {
			const struct result *r = &res[gi][ni];
			const char *http = groups[gi].h2 ? "2" : "1.1";
			if (!r->ok) {
				printf("| %lu | %s | %ld | failed or skipped | | | | | | | | |\n",
				       ns[ni], http, groups[gi].buffer);
				failed = 1;
				continue;
			}
			char marginal[32] = "";
			if (ni > 0 && res[gi][ni - 1].ok)
				snprintf(marginal, sizeof(marginal), "%.1f",
				         (double)(r->rss - res[gi][ni - 1].rss) /
				             (double)(r->accounts - res[gi][ni - 1].accounts));
			double n = (double)r->accounts;
			printf("| %lu | %s | %ld | %ld | %.1f | %.1f | %.1f | %s | %.1f | %.1f | "
			       "%.1f | "
			       "%.2f |\n",
			       r->accounts, http, r->buffer, r->conns, (double)r->rss / n,
			       (double)r->pd / n, (double)r->heap / n, marginal,
			       (double)r->rss_last / n, (double)r->heap_last / n,
			       (double)r->rss_trim / n, (double)r->held_ms / 1000.0);
		}
	printf("\ntarget: <= %.0f KiB RSS per waiting account, TLS included\n", TARGET_KIB);
	return failed;
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: bench-ping [--h2 [--max-streams M]] [--accounts N] [--buffer BYTES] "
	        "[--heartbeat S] [--window W] [--settle MS] [--rounds R] [--retire K]\n"
	        "       bench-ping --all [--max-streams M] [--heartbeat S] [--window W] "
	        "[--settle MS] [--rounds R]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	if (secmem_init() < 0)
		die("secmem_init failed");
	if (argc == 7 && strcmp(argv[1], "--responder") == 0) {
		unsigned long ctl, st, ms;
		bool h2 = strcmp(argv[5], "h2") == 0;
		if (parse_ulong(argv[3], 0, 1 << 20, &ctl) < 0 ||
		    parse_ulong(argv[4], 0, 1 << 20, &st) < 0 ||
		    (!h2 && strcmp(argv[5], "http/1.1") != 0) ||
		    parse_ulong(argv[6], 1, INT32_MAX, &ms) < 0)
			usage();
		return responder_main(argv[2], (int)ctl, (int)st, h2, ms);
	}
	signal(SIGPIPE, SIG_IGN);
	struct opts o = {.accounts = DEFAULT_ACCOUNTS,
	                 .window = DEFAULT_WINDOW,
	                 .heartbeat = DEFAULT_HEARTBEAT,
	                 .buffer = 0,
	                 .cycles = DEFAULT_ROUNDS,
	                 .max_streams = H2_DEFAULT_MAX_STREAMS,
	                 .settle_ms = DEFAULT_SETTLE_MS};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		unsigned long v;
		if (strcmp(a, "--all") == 0) {
			o.all = true;
			continue;
		}
		if (strcmp(a, "--h2") == 0) {
			o.h2 = true;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		const char *val = argv[++i];
		if (strcmp(a, "--accounts") == 0 && parse_ulong(val, 1, MAX_ACCOUNTS, &v) == 0)
			o.accounts = v;
		else if (strcmp(a, "--buffer") == 0 && parse_ulong(val, 0, 512 * 1024, &v) == 0 &&
		         (v == 0 || v >= 1024))
			o.buffer = v; /* curl's CURLOPT_BUFFERSIZE range */
		else if (strcmp(a, "--heartbeat") == 0 && parse_ulong(val, 60, 3540, &v) == 0)
			o.heartbeat = v;
		else if (strcmp(a, "--window") == 0 && parse_ulong(val, 1, MAX_ACCOUNTS, &v) == 0)
			o.window = v;
		else if (strcmp(a, "--rounds") == 0 && parse_ulong(val, 0, MAX_CYCLES, &v) == 0)
			o.cycles = v;
		else if (strcmp(a, "--settle") == 0 && parse_ulong(val, 0, 600000, &v) == 0)
			o.settle_ms = (long)v;
		else if (strcmp(a, "--max-streams") == 0 && parse_ulong(val, 1, INT32_MAX, &v) == 0)
			o.max_streams = v; /* RFC 9113: up to 2^31 - 1 */
		else if (strcmp(a, "--retire") == 0 && parse_ulong(val, 0, MAX_RETIRES, &v) == 0)
			o.retires = v;
		else
			usage();
	}
	if (o.all && (o.h2 || o.retires > 0))
		usage(); /* --all has HTTP/2 rows of its own, and no retires */
	/* The path to exec: /proc/self/exe itself would not survive valgrind. */
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		die("readlink /proc/self/exe: %s", strerror(errno));
	self[n] = '\0';
	char cmdline[1024];
	size_t len = 0;
	for (int i = 0; i < argc && len < sizeof(cmdline); i++) {
		int w = snprintf(cmdline + len, sizeof(cmdline) - len, "%s%s", i > 0 ? " " : "",
		                 argv[i]);
		if (w < 0)
			break;
		len += (size_t)w;
	}
	return o.all ? run_all(&o, self, cmdline) : run_one(&o, self, cmdline);
}
