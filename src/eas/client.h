/* The ActiveSync HTTP client of one account ([MS-ASHTTP]).
 *
 * Frames commands (POST <url>?Cmd=...&User=...&DeviceId=...&DeviceType=...,
 * MS-ASProtocolVersion, X-MS-PolicyKey, WBXML body), sends them through the
 * shared asynchronous HTTP client (net/httpc.h) on the caller's event loop,
 * decodes the WBXML answer and classifies what happened into one action
 * (eas/status.h) for the caller to act on. Command bodies are built and
 * parsed by eas/commands.h; this layer knows nothing of their content.
 *
 * Identity, fixed and documented so that mail-server admins can allow or
 * block the relay: User-Agent "Halfkey/<version>", DeviceType "Halfkey",
 * and a DeviceId that is stable per registered device.
 *
 * The password is used once, in eas_client_new(), to build the Basic
 * authorization value in guarded memory; the client keeps only that, and
 * wipes it in eas_client_free(). It is handed to curl per request as a
 * guarded secret (curl's copies are zeroed on free by the wiping allocator).
 *
 * One Ping per account: eas_client_ping() cancels a Ping still in flight
 * before it sends the new one, so two are never outstanding.
 *
 * Async contract as in net/httpc.h: if a call fails to start, its callback
 * is never called; otherwise exactly once, unless cancelled first. */
#ifndef HK_EAS_CLIENT_H
#define HK_EAS_CLIENT_H

#include "crypto/secmem.h"
#include "eas/status.h"
#include "eas/wbxml.h"
#include "net/httpc.h"

#define EAS_USER_AGENT "Halfkey/" HK_VERSION
#define EAS_DEVICE_TYPE "Halfkey"
#define EAS_PROTOCOL_VERSION "14.1"
#define EAS_DEVICE_ID_MAX 32
#define EAS_POLICY_KEY_MAX 64
#define EAS_URL_MAX 2048
#define EAS_DEFAULT_TIMEOUT_MS 120000L
/* Ping waits up to its heartbeat; the HTTP deadline adds this margin. */
#define EAS_PING_MARGIN_MS 60000L

struct eas_client_config {
	const char *url;       /* https://host/Microsoft-Server-ActiveSync */
	const char *username;  /* as the server expects it (login or address) */
	const char *device_id; /* 1..32 letters and digits, stable per device */
	const char *ca_file;   /* PEM CA bundle, or NULL for the system's */
	long timeout_ms;       /* per command except Ping; 0: EAS_DEFAULT_TIMEOUT_MS */
	size_t body_max;       /* largest response accepted; 0: httpc's default */
	long ping_buffer_size; /* curl receive buffer for Pings; 0: 1 KiB */
	bool http2;            /* HTTP/2 when the server offers it (net/httpc.h) */
};

struct eas_client;
struct eas_call;

struct eas_response {
	const char *command;	    /* "Sync", ... (static) */
	enum eas_action action;	    /* what to do: EAS_ACT_OK or the reason not */
	enum httpc_result transport; /* HTTPC_OK unless no HTTP answer came */
	long http_status;	    /* 0 when there was no answer */
	int http_version;	    /* 1 or 2; 0 when there was no answer */
	int status;		    /* the top-level Status element, 0 if none */
	bool empty;		    /* HTTP 200 with an empty body (e.g. Sync: no changes) */
	struct eas_node *root;	    /* decoded body; the callback may take it (set NULL) */
	long retry_after_s;	    /* 503/429 Retry-After in seconds, 0 if none */
	const char *redirect_url;   /* 451 X-MS-Location, else NULL */
	const char *server_versions; /* MS-ASProtocolVersions (OPTIONS), else NULL */
	const char *server_commands; /* MS-ASProtocolCommands (OPTIONS), else NULL */
	const char *error;	    /* a short description when action != OK; no secrets */
	long elapsed_ms;
};

typedef void eas_cb(struct eas_response *resp, void *ctx);

int eas_client_new(struct httpc *http, const struct eas_client_config *cfg,
		   const struct secret *password, struct eas_client **client_r,
		   const char **error_r) HK_WARN_UNUSED;
/* Cancels the client's calls (no callbacks) and wipes its credentials.
 * When HTTP/2 may have carried them, it also retires the shared client's
 * connections (httpc_retire(): libnghttp2 keeps the last header block sent
 * on a connection until it closes); other accounts' waiting Pings move to
 * new connections. */
void eas_client_free(struct eas_client **client);

/* The PolicyKey from Provision ("" or NULL: none, header not sent). */
int eas_client_set_policy_key(struct eas_client *c, const char *key) HK_WARN_UNUSED;
/* A new endpoint after a 451 redirect. */
int eas_client_set_url(struct eas_client *c, const char *url) HK_WARN_UNUSED;
/* The endpoint; valid until the next eas_client_set_url() or the free. */
const char *eas_client_url(const struct eas_client *c);

/* OPTIONS: which versions and commands the server offers. */
int eas_client_options(struct eas_client *c, eas_cb *cb, void *ctx, struct eas_call **call_r)
	HK_WARN_UNUSED;
/* Any command: cmd is its name ("FolderSync"); req may be NULL for an empty
 * body (an empty Ping). timeout_ms 0 means the configured timeout. */
int eas_client_command(struct eas_client *c, const char *cmd, const struct eas_node *req,
		       long timeout_ms, eas_cb *cb, void *ctx, struct eas_call **call_r)
	HK_WARN_UNUSED;
/* Ping with the HTTP deadline heartbeat_s + EAS_PING_MARGIN_MS; cancels
 * the account's previous Ping if it is still waiting. */
int eas_client_ping(struct eas_client *c, const struct eas_node *req, unsigned heartbeat_s,
		    eas_cb *cb, void *ctx) HK_WARN_UNUSED;
/* True while a Ping is outstanding. */
bool eas_client_ping_active(const struct eas_client *c);
void eas_client_ping_cancel(struct eas_client *c);

/* Stops a call: its callback is never called. NULL-safe; sets *call NULL. */
void eas_call_cancel(struct eas_call **call);

/* The Authorization value "Basic " + base64(username ":" password), built
 * in guarded memory (without a NUL). It comes from the secure-heap arena,
 * not a mapping of its own: a client keeps it for as long as its account
 * syncs, and a mapping would add 8 KiB RSS to every waiting account
 * (bench/RESULTS.md); when the arena is full it gets one. The caller frees
 * it with secret_free(). username must not contain ':' (RFC 7617). */
struct secret *eas_basic_auth(const char *username, const struct secret *password);

/* Number of this client's calls in flight. */
size_t eas_client_active(const struct eas_client *c);

#endif
