/* bench-ping: relay-side memory per account waiting in an ActiveSync Ping.
 *
 *   bench-ping [--accounts N] [--buffer BYTES] [--heartbeat S] [--window W]
 *              [--settle MS] [--rounds R]
 *   bench-ping --all [--heartbeat S] [--window W] [--settle MS] [--rounds R]
 *
 * One run: this process holds only the client side, N eas_clients (default
 * 1000), each with its own username, password (a guarded secret) and
 * DeviceId, all on one libevent loop and one httpc, each sending one Ping
 * (HeartbeatInterval S, default 600 s, one Inbox folder) over TLS, the
 * server's certificate verified against the run's CA. The server is a load
 * responder in a separate process (this binary exec'ed with --responder):
 * an HTTPS server on 127.0.0.1 made with tests/tls-fixture.c that creates
 * the throwaway PKI, checks Basic auth, answers OPTIONS, and holds every
 * Ping until its heartbeat expires (then 200 and <Ping><Status>1</Status>
 * </Ping>), reporting how many it holds through a pipe. A real server
 * (SOGo) holds only a few Pings; this one holds thousands.
 *
 * Memory of this process is read (/proc/self/smaps_rollup, /proc/self/
 * status, mallinfo2) before the first client is created (baseline) and
 * settle ms (default 2000) after the responder holds all N Pings; the
 * result is the growth per waiting account. Pings start in a window of W
 * (default 100) not yet held, as a relay unlocking accounts would, so that
 * the responder's accept queue (backlog 128) does not overflow into SYN
 * retransmits.
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
 * --buffer is curl's receive buffer for Pings (0: the client's 4 KiB;
 * 16384 is curl's default). --all runs N = 100, 1000, 2000 with 4 KiB and
 * 16 KiB buffers, each in a fresh process, and prints one table with the
 * marginal cost per account between the N of a row and the one before.
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

#include <dirent.h>
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <malloc.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
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

struct held;

struct responder {
	struct event_base *base;
	struct tfx_server *srv;
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
};

/* A Ping the responder holds until its heartbeat expires (or the client
 * side asks for all of them at once, to make the next round come). */
struct held {
	struct responder *r;
	struct held *prev, *next;
	struct evhttp_request *req;
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
	event_free(h->timer);
	free(h);
}

/* The heartbeat expired with nothing new: HTTP 200, Ping Status 1. */
static void held_answer(struct held *h)
{
	static const char *const wbxml_headers[] = {"Content-Type: " WBXML_TYPE, NULL};
	struct responder *r = h->r;
	tfx_respond(r->srv, h->req,
	            &(struct tfx_reply){
	                .headers = wbxml_headers, .body = r->ping_ok, .body_len = r->ping_ok_len});
	held_forget(h);
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	held_answer(arg);
}

static void hold(struct responder *r, struct evhttp_request *req, unsigned long hb)
{
	struct held *h = calloc(1, sizeof(*h));
	if (h == NULL)
		abort();
	h->r = r;
	h->req = req;
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

static void tell_tls(struct responder *r, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
	SSL *ssl = bev != NULL ? bufferevent_openssl_get_ssl(bev) : NULL;
	if (ssl == NULL)
		return;
	dprintf(r->st_fd, "tls %s %s\n", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
	r->tls_told = true;
}

static void on_request(struct tfx_server *srv, struct evhttp_request *req,
                       const struct tfx_request *rec, void *arg)
{
	static const char *const options_headers[] = {"MS-ASProtocolVersions: 12.1,14.0,14.1",
	                                              "MS-ASProtocolCommands: Ping", NULL};
	static const char *const refused_headers[] = {"WWW-Authenticate: Basic realm=\"bench\"",
	                                              NULL};
	struct responder *r = arg;
	if (!r->tls_told)
		tell_tls(r, req);
	struct evkeyvalq params;
	TAILQ_INIT(&params);
	const char *q = strchr(rec->uri, '?');
	if (rec->truncated || evhttp_parse_query_str(q != NULL ? q + 1 : "", &params) < 0) {
		r->bad++;
		tfx_respond(srv, req, &(struct tfx_reply){.status = 400});
		goto out;
	}
	/* OPTIONS goes to the bare URL; commands name the same user. */
	char user[64];
	const char *quser = evhttp_find_header(&params, "User");
	if (!auth_ok(r, tfx_request_header(rec, "Authorization"), user, sizeof(user)) ||
	    (q != NULL && (quser == NULL || strcmp(quser, user) != 0))) {
		r->refused++;
		tfx_respond(srv, req,
		            &(struct tfx_reply){.status = 401, .headers = refused_headers});
		goto out;
	}
	if (strcmp(rec->method, "OPTIONS") == 0) {
		tfx_respond(srv, req, &(struct tfx_reply){.headers = options_headers});
		goto out;
	}
	const char *cmd = evhttp_find_header(&params, "Cmd");
	unsigned long hb;
	if (strcmp(rec->method, "POST") != 0 || cmd == NULL || strcmp(cmd, "Ping") != 0 ||
	    evhttp_find_header(&params, "DeviceId") == NULL ||
	    ping_heartbeat(rec->body, rec->body_len, &hb) < 0) {
		r->bad++;
		tfx_respond(srv, req, &(struct tfx_reply){.status = 400});
		goto out;
	}
	hold(r, req, hb);
out:
	evhttp_clear_headers(&params);
}

/* Reports what changed, at most every 50 ms. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct responder *r = arg;
	size_t held = r->nheld, count = tfx_server_count(r->srv);
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
 * next round of Pings follows), and closes the pipe when it is done. */
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
	if (memchr(c, 'r', (size_t)n) != NULL)
		while (r->held != NULL)
			held_answer(r->held);
}

static int responder_main(const char *dir, int ctl_fd, int st_fd)
{
	struct responder r = {.st_fd = st_fd};
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
	struct tfx_server_opts opts = {
	    .cert_file = pki.cert_file, .key_file = pki.key_file, .handler = on_request, .ctx = &r};
	ret = tfx_server_new(r.base, &opts, &r.srv);
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
	dprintf(st_fd, "port %u\n", tfx_server_port(r.srv));
	event_base_dispatch(r.base);
out:
	while (r.held != NULL)
		held_forget(r.held); /* their requests go with the server */
	if (r.tick != NULL)
		event_free(r.tick);
	if (r.ctl_ev != NULL)
		event_free(r.ctl_ev);
	tfx_server_free(&r.srv);
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
		while (readdir(d) != NULL)
			m->fds++;
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

enum phase { WAIT_PORT, RAMP, SETTLE, CYCLE, DONE };

#define MAX_CYCLES 10

struct bench {
	/* options */
	unsigned long n, window, cycles;
	long buffer;
	unsigned heartbeat;
	long settle_ms;

	enum phase phase;
	struct event_base *base;
	struct httpc *http;
	struct eas_node *ping_req;
	struct secret *seed;
	struct account *acc;
	unsigned long started, held, received, refused, bad;
	unsigned long cycle, answered; /* rounds done; answers in this round */
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
	/* Only the responder's release ends a Ping; anything else voids the run. */
	if (b->phase != CYCLE || resp->action != EAS_ACT_OK || resp->status != 1) {
		fail(b, "a Ping ended unexpectedly: %s (http %ld, Status %d, %s)",
		     eas_action_name(resp->action), resp->http_status, resp->status,
		     resp->error != NULL ? resp->error : "no error text");
		return;
	}
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
		                                .ping_buffer_size = b->buffer};
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

static void on_settled(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct bench *b = arg;
	mem_read(&b->m[b->nm++]);
	if (b->held != b->n || b->received != b->n * (b->cycle + 1)) {
		fail(b, "the responder holds %lu of %lu Pings after settling", b->held, b->n);
		return;
	}
	if (b->cycle == b->cycles) {
		/* How much of the RSS is free heap the allocator kept. */
		malloc_trim(0);
		mem_read(&b->trimmed);
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

static void check_progress(struct bench *b)
{
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

static void status_line(struct bench *b, const char *line)
{
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
		char *p = (char *)(uintptr_t)line;
		const char *keys[4] = {"held ", " received ", " refused ", " bad "};
		for (int k = 0; k < 4; k++) {
			size_t kl = strlen(keys[k]);
			if (strncmp(p, keys[k], kl) != 0) {
				fail(b, "bad status line from the responder: %s", line);
				return;
			}
			v[k] = strtoul(p + kl, &p, 10);
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

static pid_t spawn_responder(const char *self, const char *dir, int *ctl_w, int *st_r)
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
		char a[16], c[16];
		snprintf(a, sizeof(a), "%d", ctl[0]);
		snprintf(c, sizeof(c), "%d", st[1]);
		if (fcntl(ctl[0], F_SETFD, 0) < 0 || fcntl(st[1], F_SETFD, 0) < 0)
			_exit(127);
		execl(self, self, "--responder", dir, a, c, (char *)NULL);
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
	unsigned long accounts, window, heartbeat, buffer, cycles;
	long settle_ms;
	bool all;
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

static void print_report(const struct bench *b, const char *cmdline, pid_t pid, rlim_t before,
                         rlim_t after, rlim_t hard, const char *method, double t_end)
{
	printf("command: %s\n", cmdline);
	printf("bench-ping: %lu accounts waiting in Ping, curl receive buffer %ld B, "
	       "HeartbeatInterval %u s, window %lu, settle %ld ms, %lu re-Ping rounds\n",
	       b->n, b->buffer > 0 ? b->buffer : 4096, b->heartbeat, b->window, b->settle_ms,
	       b->cycles);
	printf("responder: pid %ld, %s, %s, server certificate verified against the run's CA\n",
	       (long)pid, b->url[0] != '\0' ? b->url : "(no port)",
	       b->tls[0] != '\0' ? b->tls : "(TLS version not reported)");
	printf("RLIMIT_NOFILE: soft %llu -> %llu (hard %llu); libevent backend %s\n",
	       (unsigned long long)before, (unsigned long long)after, (unsigned long long)hard,
	       method);
	if (b->failure[0] != '\0') {
		printf("FAILED: %s (after %.1f s)\n", b->failure, t_end - b->t0);
		return;
	}
	const struct mem *m0 = &b->m[0], *m1 = &b->m[1], *mc = &b->m[b->nm - 1];
	printf("all %lu Pings held by the responder %.2f s after the first started; "
	       "%lu rounds later, done %.2f s after that\n",
	       b->n, b->t_held - b->t0, b->cycles, t_end - b->t_held);
	struct rlimit ml;
	char mlock_max[32] = "unlimited";
	if (getrlimit(RLIMIT_MEMLOCK, &ml) == 0 && ml.rlim_cur != RLIM_INFINITY)
		snprintf(mlock_max, sizeof(mlock_max), "%llu KiB",
		         (unsigned long long)ml.rlim_cur / 1024);
	printf("client process while waiting: %ld descriptors, %ld threads, %ld KiB locked "
	       "(baseline %ld KiB, RLIMIT_MEMLOCK %s)\n\n",
	       mc->fds, mc->threads, mc->locked_kib, m0->locked_kib, mlock_max);

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
	       "pd_last=%ld heap_last=%.0f rss_trim=%ld held_ms=%.0f\n",
	       b->n, b->buffer > 0 ? b->buffer : 4096, m1->rss_kib - m0->rss_kib,
	       m1->private_dirty_kib - m0->private_dirty_kib,
	       ((double)m1->heap_used - (double)m0->heap_used) / 1024.0, mc->rss_kib - m0->rss_kib,
	       mc->private_dirty_kib - m0->private_dirty_kib,
	       ((double)mc->heap_used - (double)m0->heap_used) / 1024.0,
	       b->trimmed.rss_kib - m0->rss_kib, (b->t_held - b->t0) * 1000.0);
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
	                  .phase = WAIT_PORT};
	char dir[] = "/tmp/bench-ping.XXXXXX";
	if (mkdtemp(dir) == NULL)
		die("mkdtemp: %s", strerror(errno));
	snprintf(b.ca_file, sizeof(b.ca_file), "%s/ca.pem", dir);
	pid_t pid = spawn_responder(self, dir, &b.ctl_fd, &b.st_fd);
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
	if (b.st_ev == NULL || b.settle == NULL || b.deadline == NULL)
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
	long rss, pd, heap, rss_last, pd_last, heap_last, rss_trim, held_ms;
	bool ok;
};

static void run_case(const char *self, const struct opts *o, unsigned long n, long buffer,
                     struct result *r)
{
	char sn[24], sb[24], sh[24], sw[24], ss[24], sc[24];
	snprintf(sn, sizeof(sn), "%lu", n);
	snprintf(sb, sizeof(sb), "%ld", buffer);
	snprintf(sh, sizeof(sh), "%lu", o->heartbeat);
	snprintf(sw, sizeof(sw), "%lu", o->window);
	snprintf(ss, sizeof(ss), "%ld", o->settle_ms);
	snprintf(sc, sizeof(sc), "%lu", o->cycles);
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
		execl(self, self, "--accounts", sn, "--buffer", sb, "--heartbeat", sh, "--window",
		      sw, "--settle", ss, "--rounds", sc, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	memset(r, 0, sizeof(*r));
	r->accounts = n;
	r->buffer = buffer;
	FILE *f = fdopen(out[0], "r");
	if (f == NULL)
		die("fdopen: %s", strerror(errno));
	char line[512];
	while (fgets(line, sizeof(line), f) != NULL) {
		fputs("    ", stdout);
		fputs(line, stdout);
		unsigned long acc;
		long buf;
		double heap, heap_last, held;
		if (sscanf(line,
		           "RESULT accounts=%lu buffer=%ld rss=%ld pd=%ld heap=%lf rss_last=%ld "
		           "pd_last=%ld heap_last=%lf rss_trim=%ld held_ms=%lf",
		           &acc, &buf, &r->rss, &r->pd, &heap, &r->rss_last, &r->pd_last,
		           &heap_last, &r->rss_trim, &held) == 10) {
			r->heap = (long)heap;
			r->heap_last = (long)heap_last;
			r->held_ms = (long)held;
			r->ok = true;
		}
	}
	fclose(f);
	int status;
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		r->ok = false;
	fflush(stdout);
}

static int run_all(const struct opts *o, const char *self, const char *cmdline)
{
	static const unsigned long ns[] = {100, 1000, 2000};
	static const long bufs[] = {4096, 16384};
	enum { NN = sizeof(ns) / sizeof(ns[0]), NB = sizeof(bufs) / sizeof(bufs[0]) };
	struct result res[NB][NN];
	rlim_t before, after, hard;
	raise_nofile(&before, &after, &hard);
	printf("command: %s\n", cmdline);
	printf("RLIMIT_NOFILE: soft %llu -> %llu (hard %llu), inherited by every case\n\n",
	       (unsigned long long)before, (unsigned long long)after, (unsigned long long)hard);
	for (size_t bi = 0; bi < NB; bi++)
		for (size_t ni = 0; ni < NN; ni++) {
			memset(&res[bi][ni], 0, sizeof(res[bi][ni]));
			if (after < ns[ni] + FD_SLACK) {
				printf("skipping %lu accounts: RLIMIT_NOFILE %llu is too low\n",
				       ns[ni], (unsigned long long)after);
				continue;
			}
			printf("-- %lu accounts, buffer %ld B\n", ns[ni], bufs[bi]);
			run_case(self, o, ns[ni], bufs[bi], &res[bi][ni]);
		}
	printf("\nKiB per waiting account (RSS growth over the baseline / N); marginal: "
	       "between this N and the one above; after %lu rounds: every Ping answered and "
	       "sent again %lu times\n\n",
	       o->cycles, o->cycles);
	printf("| accounts | curl buffer | RSS | Private_Dirty | heap in use | marginal RSS | "
	       "RSS after %lu rounds | heap in use after %lu rounds | RSS trimmed | "
	       "all held after s |\n",
	       o->cycles, o->cycles);
	printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
	int failed = 0;
	for (size_t bi = 0; bi < NB; bi++)
		for (size_t ni = 0; ni < NN; ni++) {
			const struct result *r = &res[bi][ni];
			if (!r->ok) {
				printf("| %lu | %ld | failed or skipped | | | | | | | |\n", ns[ni],
				       bufs[bi]);
				failed = 1;
				continue;
			}
			char marginal[32] = "";
			if (ni > 0 && res[bi][ni - 1].ok)
				snprintf(marginal, sizeof(marginal), "%.1f",
				         (double)(r->rss - res[bi][ni - 1].rss) /
				             (double)(r->accounts - res[bi][ni - 1].accounts));
			double n = (double)r->accounts;
			printf(
			    "| %lu | %ld | %.1f | %.1f | %.1f | %s | %.1f | %.1f | %.1f | %.2f |\n",
			    r->accounts, r->buffer, (double)r->rss / n, (double)r->pd / n,
			    (double)r->heap / n, marginal, (double)r->rss_last / n,
			    (double)r->heap_last / n, (double)r->rss_trim / n,
			    (double)r->held_ms / 1000.0);
		}
	printf("\ntarget: <= %.0f KiB RSS per waiting account, TLS included\n", TARGET_KIB);
	return failed;
}

static void usage(void)
{
	fprintf(
	    stderr,
	    "usage: bench-ping [--accounts N] [--buffer BYTES] [--heartbeat S] [--window W] "
	    "[--settle MS] [--rounds R]\n"
	    "       bench-ping --all [--heartbeat S] [--window W] [--settle MS] [--rounds R]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	if (secmem_init() < 0)
		die("secmem_init failed");
	if (argc == 5 && strcmp(argv[1], "--responder") == 0) {
		unsigned long ctl, st;
		if (parse_ulong(argv[3], 0, 1 << 20, &ctl) < 0 ||
		    parse_ulong(argv[4], 0, 1 << 20, &st) < 0)
			usage();
		return responder_main(argv[2], (int)ctl, (int)st);
	}
	signal(SIGPIPE, SIG_IGN);
	struct opts o = {.accounts = DEFAULT_ACCOUNTS,
	                 .window = DEFAULT_WINDOW,
	                 .heartbeat = DEFAULT_HEARTBEAT,
	                 .buffer = 0,
	                 .cycles = DEFAULT_ROUNDS,
	                 .settle_ms = DEFAULT_SETTLE_MS};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		unsigned long v;
		if (strcmp(a, "--all") == 0) {
			o.all = true;
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
		else
			usage();
	}
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
