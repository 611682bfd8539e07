/* Test fixture: a throwaway PKI and a tiny in-process HTTP(S) server.
 *
 * tfx_pki_create() makes, with OpenSSL 3 and no external tool, a CA and a
 * server certificate it signed (EC P-256, SAN IP:127.0.0.1 and
 * DNS:localhost, extendedKeyUsage serverAuth), plus an unrelated "other"
 * CA for verification-failure tests, and writes them as PEM files.
 *
 * tfx_server_new() serves HTTP or HTTPS on 127.0.0.1 (ephemeral port) from
 * the caller's event_base, built on libevent's evhttp (plus
 * bufferevent_openssl for TLS): no HTTP parsing of its own. Every request
 * is recorded (method, URI, headers, body; tfx_server_last()) and then
 * handed to the test's handler, which ends it in one of three ways:
 *   - tfx_respond(): any status, headers and body, now or after a delay,
 *     with Content-Length or chunked;
 *   - tfx_drop(): close the connection without a response (after a delay,
 *     so a partial reply written with evhttp_send_reply_start/chunk goes
 *     out first);
 *   - nothing: the request hangs until the client gives up or the server
 *     is freed.
 * The handler must not end a request through evhttp_send_reply() or
 * evhttp_send_reply_end() itself: the server tracks unanswered requests so
 * that tfx_server_free() releases them.
 *
 * Recorded requests are wiped (OPENSSL_cleanse) when replaced and when the
 * server is freed, so the fixture adds no copy of a secret to the heap: a
 * test can scan process memory for one afterwards (libevent's own buffers
 * too, if the test gave libevent the wiping allocator with
 * event_set_mem_functions() before anything else). The server ignores
 * SIGPIPE process-wide (writing to a peer that left must not kill a test).
 *
 * Single-threaded, like the loop it runs on. Errors are negative HK_ERR_*. */
#ifndef HK_TLS_FIXTURE_H
#define HK_TLS_FIXTURE_H

#include "lib/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evhttp_request;
struct tfx_server;

#define TFX_PATH_MAX 512

struct tfx_pki {
	char ca_file[TFX_PATH_MAX];	  /* <dir>/ca.pem */
	char ca_key_file[TFX_PATH_MAX];	  /* <dir>/ca.key, for tfx_pki_issue() */
	char cert_file[TFX_PATH_MAX];	  /* <dir>/server.pem: IP:127.0.0.1, DNS:localhost */
	char key_file[TFX_PATH_MAX];	  /* <dir>/server.key */
	char other_ca_file[TFX_PATH_MAX]; /* <dir>/other-ca.pem: signed nothing here */
};

/* Creates the CA, the server certificate and the other CA in dir (which
 * must exist). Valid from an hour ago for two days. */
int tfx_pki_create(const char *dir, struct tfx_pki *pki_r) HK_WARN_UNUSED;

/* Issues one more server certificate from pki's CA with the given
 * subjectAltName ("DNS:other.invalid", "IP:127.0.0.2,DNS:x"), written to
 * <dir>/<name>.pem and <dir>/<name>.key; paths into cert_r and key_r
 * (TFX_PATH_MAX bytes each). */
int tfx_pki_issue(const struct tfx_pki *pki, const char *name, const char *san,
		  char *cert_r, char *key_r) HK_WARN_UNUSED;

/* ---- server ----------------------------------------------------------- */

#define TFX_MAX_HEADERS 64
#define TFX_HEADER_BYTES (16 * 1024)
#define TFX_BODY_MAX (4u * 1024 * 1024)

struct tfx_header {
	const char *name;
	const char *value;
};

/* A request as the server received it. */
struct tfx_request {
	char method[16]; /* "GET", "POST", "OPTIONS", ... */
	char uri[2048];	 /* as sent: path and query */
	struct tfx_header headers[TFX_MAX_HEADERS];
	size_t header_count;
	uint8_t *body; /* NUL-terminated; body_len excludes the NUL */
	size_t body_len;
	bool truncated; /* something above did not fit: treat as a test failure */
	char header_buf[TFX_HEADER_BYTES];
	size_t header_buf_len;
};

/* Called for every request, after it was recorded; rec is the record. */
typedef void tfx_handler(struct tfx_server *srv, struct evhttp_request *req,
			 const struct tfx_request *rec, void *ctx);

struct tfx_server_opts {
	const char *cert_file; /* with key_file: HTTPS; both NULL: plain HTTP */
	const char *key_file;
	const char *address; /* NULL: "127.0.0.1" */
	tfx_handler *handler; /* NULL: 200 "ok" to everything */
	void *ctx;
};

int tfx_server_new(struct event_base *base, const struct tfx_server_opts *opts,
		   struct tfx_server **srv_r) HK_WARN_UNUSED;
/* Stops listening, closes every connection, releases unanswered requests
 * and pending timers, wipes the records. NULL-safe; sets *srv NULL. */
void tfx_server_free(struct tfx_server **srv);

uint16_t tfx_server_port(const struct tfx_server *srv);
/* "http(s)://<address>:<port><path>" in one of 8 rotating static buffers
 * (test convenience, like test_path()). */
const char *tfx_server_url(const struct tfx_server *srv, const char *path);
/* The last request received (all zero before the first). */
const struct tfx_request *tfx_server_last(const struct tfx_server *srv);
/* Requests received so far. */
size_t tfx_server_count(const struct tfx_server *srv);
/* Requests handed to the handler and not yet answered or dropped. */
size_t tfx_server_pending(const struct tfx_server *srv);

/* First header of that name (case-insensitive), or NULL; and how many. */
const char *tfx_request_header(const struct tfx_request *rec, const char *name);
size_t tfx_request_header_count(const struct tfx_request *rec, const char *name);

struct tfx_reply {
	int status;		    /* 0: 200 */
	const char *const *headers; /* "Name: value" each, NULL-terminated */
	const void *body;
	size_t body_len;
	bool chunked;  /* Transfer-Encoding: chunked, no Content-Length */
	long delay_ms; /* > 0: reply after this long, from a timer */
};

/* Answers req (from the handler or later). reply is copied. */
void tfx_respond(struct tfx_server *srv, struct evhttp_request *req,
		 const struct tfx_reply *reply);
/* Closes req's connection without (the rest of) a response after
 * delay_ms (0: on the next loop turn). */
void tfx_drop(struct tfx_server *srv, struct evhttp_request *req, long delay_ms);

#endif
