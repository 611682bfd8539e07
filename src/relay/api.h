/* The device API over HTTPS (DESIGN §4), on libevent's evhttp with
 * OpenSSL bufferevents: no hand-written HTTP parser.
 *
 *   POST   /register   {server|email, username, password, device_id,
 *                        device_type, device_key}          -> 201 {account_id, device_id, token}
 *   POST   /unlock     Bearer token, {device_key}           -> 200 {account_id, state}
 *   POST   /ping       Bearer token                         -> 200 {state}
 *   DELETE /account    Bearer token                         -> 204
 *   GET    /health                                          -> 200 {status: "ok"}
 *
 * Errors are RFC 7807 problem details (application/problem+json). Every
 * input is bounded: body and header sizes, request time (slow clients are
 * cut off), registrations per source address and requests per device per
 * minute. Request bodies that carry a password or a device key are copied
 * into guarded memory and parsed there; libevent's and jansson's own
 * buffers are zeroed on free by the wiping allocator (api_init_allocators).
 *
 * The API reaches the engine only through relay/engine.h's message-shaped
 * calls (DESIGN §12). */
#ifndef HK_RELAY_API_H
#define HK_RELAY_API_H

#include "lib/error.h"
#include "relay/engine.h"

#include <openssl/ssl.h>
#include <stdint.h>

struct event_base;
struct api;

struct api_config {
	struct event_base *base;
	struct engine *engine;
	const struct hk_clock *clock;
	SSL_CTX *ssl_ctx;	   /* NULL: plain HTTP (loopback only, behind a TLS proxy) */
	const char *address;	   /* e.g. "127.0.0.1" */
	uint16_t port;		   /* 0: any (tests) */
	size_t max_body;	   /* bytes */
	size_t max_headers;	   /* bytes */
	int timeout_s;		   /* per request read/write */
	unsigned register_per_minute; /* per source address */
	unsigned requests_per_minute; /* per device token */
	/* Open TLS connections at most (0: no limit); at the limit the server
	 * stops accepting until one closes. Not enforced without TLS (the TLS
	 * proxy in front limits then). */
	size_t max_connections;
};

/* Installs the wiping allocator into libevent and jansson. Must run before
 * either allocates (right after secmem_init). */
int api_init_allocators(void) HK_WARN_UNUSED;

/* A server TLS context: TLS 1.2 minimum (1.3 when min_tls13), the
 * certificate chain and key from PEM files. */
int api_ssl_ctx_new(const char *cert_file, const char *key_file, bool min_tls13,
		    SSL_CTX **ctx_r, const char **error_r) HK_WARN_UNUSED;

int api_start(const struct api_config *cfg, struct api **api_r, const char **error_r)
	HK_WARN_UNUSED;
uint16_t api_port(const struct api *api);
/* Open TLS connections right now. */
size_t api_connections(const struct api *api);
void api_free(struct api **api);

#endif
