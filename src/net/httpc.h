/* An asynchronous HTTP(S) client on the caller's libevent loop.
 *
 * libcurl's multi interface does HTTP and TLS (OpenSSL); this module only
 * connects curl's socket and timer callbacks to libevent, bounds every
 * transfer (time, response size, header size), and turns what happened into
 * a result the caller can act on. Many transfers run at once on one thread;
 * there is no thread per account.
 *
 * Contract (libuv's): if httpc_start() fails, the callback is never called;
 * if it succeeds, the callback is called exactly once, unless the call is
 * cancelled first with httpc_cancel(), after which it is never called.
 * The call handle is invalid from the moment its callback starts: a caller
 * that keeps it must forget it there. The callback may start or cancel
 * other calls; it must not free the httpc.
 *
 * Secrets: an Authorization header value is passed as a guarded secret and
 * copied only into curl's own memory, which the wiping allocator zeroes on
 * free (crypto/wipealloc.h); curl's verbose output is never enabled. */
#ifndef HK_HTTPC_H
#define HK_HTTPC_H

#include "crypto/secmem.h"
#include "lib/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct httpc;
struct httpc_call;

#define HTTPC_MAX_HEADERS 32
#define HTTPC_HEADER_BYTES_MAX (16 * 1024) /* all response header lines, together */
#define HTTPC_DEFAULT_BODY_MAX (32u * 1024 * 1024)

/* What became of a transfer, before looking at the HTTP status. */
enum httpc_result {
	HTTPC_OK = 0,	      /* a complete HTTP response arrived (any status) */
	HTTPC_TIMEOUT,	      /* connect or whole-transfer deadline passed */
	HTTPC_CONNECT_FAILED, /* refused, unreachable, closed or reset before the response ended */
	HTTPC_RESOLVE_FAILED, /* host name did not resolve */
	HTTPC_TLS_FAILED,     /* handshake failed or the peer's certificate did not verify */
	HTTPC_TOO_LARGE,      /* response body or headers over their maximum */
	HTTPC_PROTOCOL_ERROR, /* malformed HTTP */
	HTTPC_CANCELLED,      /* never reported to a callback; for logs */
	HTTPC_FAILED,	      /* anything else */
};

struct httpc_header {
	const char *name;
	const char *value;
};

struct httpc_request {
	const char *method; /* "GET", "POST", "OPTIONS": an HTTP token */
	const char *url;
	/* Extra headers, "Name: value" each, NULL-terminated; not secret. */
	const char *const *headers;
	/* Full Authorization header value ("Basic ..."), or NULL. */
	const struct secret *authorization;
	const uint8_t *body; /* sent with any method; NULL only when body_len is 0 */
	size_t body_len;
	const char *content_type; /* NULL: no Content-Type header */
	const char *user_agent;	  /* no CR or LF */
	const char *ca_file;	  /* NULL: the system's trust store; else only this file */
	long connect_timeout_ms;  /* 0: 30 s */
	long timeout_ms;	  /* whole transfer; 0: 120 s */
	size_t body_max;	  /* 0: HTTPC_DEFAULT_BODY_MAX; at most SIZE_MAX / 2 */
	long buffer_size;	  /* curl receive buffer; 0: curl's default (16 KiB) */
	/* true: HTTP/2 when the server offers it in the TLS handshake (ALPN),
	 * and then calls to the same server share one connection, each its own
	 * stream with its own Authorization; else HTTP/1.1. false: HTTP/1.1,
	 * one connection per call in flight.
	 * Such calls over TLS go to curl in waves, in the order they were
	 * started: while one is opening a connection, the next wait for it
	 * and then join it, up to a connection's worth (curl 7.88 would give
	 * each its own connection instead, bench/RESULTS.md); a call waits at
	 * most until that one is connected or has failed.
	 * libnghttp2 has no allocator hook reachable through curl: its copies
	 * of the header list are wiped only by a process-wide zeroing free
	 * (crypto/wipefree.c, in halfkeyd), and the HPACK-encoded header block
	 * of the last request sent stays in the connection's frame buffer
	 * until the connection closes: a caller that wipes a credential it
	 * sent over HTTP/2 calls httpc_retire(). */
	bool http2;
	/* true: the server may get this request twice without harm (a Ping,
	 * OPTIONS). When httpc_retire() retires the connection it waits on
	 * before any answer has come, it is sent again on a new connection;
	 * the caller sees one call and one callback as before. false: it
	 * finishes on the retired connection. */
	bool restartable;
	/* For tests that must reach a named host (TLS verified against that
	 * name) on a loopback fixture: curl CONNECT_TO entries,
	 * "HOST:PORT:CONNECT-TO-HOST:CONNECT-TO-PORT", NULL-terminated.
	 * NULL: connect where the URL says. */
	const char *const *connect_to;
};

struct httpc_response {
	enum httpc_result result;
	const char *error; /* short description when result != HTTPC_OK; no secrets */
	long status;	   /* HTTP status, 0 when no response */
	int http_version;  /* 1 (HTTP/1.x) or 2 (HTTP/2); 0 when no response */
	const struct httpc_header *headers;
	size_t header_count;
	const uint8_t *body; /* NUL-terminated for convenience; body_len excludes it */
	size_t body_len;
	long elapsed_ms;
};

typedef void httpc_cb(const struct httpc_response *resp, void *ctx);

int httpc_new(struct event_base *base, struct httpc **httpc_r) HK_WARN_UNUSED;
/* Cancels every call still running (their callbacks are not called). */
void httpc_free(struct httpc **httpc);

int httpc_start(struct httpc *httpc, const struct httpc_request *req, httpc_cb *cb, void *ctx,
		struct httpc_call **call_r) HK_WARN_UNUSED;
/* Stops the call; its callback will not be called. NULL-safe; sets *call NULL. */
void httpc_cancel(struct httpc_call **call);

/* The first header of that name (case-insensitive), or NULL. */
const char *httpc_header(const struct httpc_response *resp, const char *name);

const char *httpc_result_str(enum httpc_result r);

/* Number of calls in flight (for tests and stats). */
size_t httpc_active(const struct httpc *httpc);

/* Retires every connection open now, so that none of them outlives a
 * credential the caller has just wiped (over HTTP/2 a connection keeps the
 * last request's header block, Authorization included). Calls started
 * afterwards open new connections; calls still waiting for their answer
 * move to them if restartable (sent again there, the callback unaffected),
 * the others finish where they are; a retired connection is closed as soon
 * as its last call has ended, and its memory goes back wiped. The moved
 * calls go in waves, as new HTTP/2 calls do (httpc_request.http2); until
 * its wave, a call keeps waiting where it is. Takes effect
 * from the event loop: retires asked for in one turn of the loop make one.
 * Calls of other accounts on the same connections pay with a new request
 * (a Ping sent again), so callers retire only after HTTP/2 was in use. */
void httpc_retire(struct httpc *httpc);

struct httpc_stats {
	uint64_t retires;      /* httpc_retire() that took effect */
	uint64_t restarted;    /* calls moved to a new connection */
	uint64_t waves;	       /* groups of calls admitted together (see http2 above) */
	uint64_t pools_freed;  /* retired connection sets closed */
	uint64_t pools_retired; /* retired, with calls still finishing */
};
void httpc_get_stats(const struct httpc *httpc, struct httpc_stats *stats_r);

#endif
