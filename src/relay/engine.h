/* The relay's engine: unlocked accounts, their lifecycle, and the device
 * operations the API offers (register, unlock, activity, delete) plus the
 * admin ones (wipe, flush, purge, block rules).
 *
 * Message-shaped (DESIGN §12): every operation takes a plain request struct
 * and answers with a plain result struct — no pointers into engine state —
 * so that the internet-facing API can later move into its own process and
 * reach the engine over a socketpair with the same calls. Secrets cross
 * this boundary only as guarded `struct secret`s whose ownership passes to
 * the engine, which wipes them.
 *
 * Results carry an HTTP-like status and an RFC 7807 problem type so that
 * the API layer only formats them. */
#ifndef HK_RELAY_ENGINE_H
#define HK_RELAY_ENGINE_H

#include "crypto/masterkey.h"
#include "crypto/secmem.h"
#include "lib/clock.h"
#include "net/httpc.h"
#include "store/store.h"

#define ENGINE_TOKEN_B64_MAX 64

struct engine;

struct engine_config {
	struct event_base *base; /* the loop sync sessions run on */
	struct store *store;
	const struct masterkey *mk;
	const struct hk_clock *clock;
	struct httpc *http; /* the sync sessions' */
	/* Registrations' credential checks; NULL: http. Its own client keeps
	 * the connection retire that follows a check over HTTP/2 (httpc.h,
	 * eas_client_free) off the syncing accounts' connections: anyone may
	 * attempt a registration, and each retire there would send every
	 * waiting Ping again. */
	struct httpc *verify_http;
	const char *ca_file;	       /* mail-server trust; NULL: system store */
	const char *default_server;    /* for registrations without a server, or NULL */
	/* Whether registrations may use this mail server URL (untrusted
	 * input); NULL: any https URL. */
	bool (*server_allowed)(const char *url, void *ctx);
	void *server_allowed_ctx;
	int64_t flush_after_ms;
	int64_t purge_every_ms;
	long eas_timeout_ms;
	unsigned heartbeat_s; /* Ping heartbeat; 0: the sync engine's default */
	bool no_sync;	      /* unlock without syncing (tests of the lifecycle alone) */
	/* At most this many accounts sync at once (0: no limit). Accounts
	 * unlocked past it stay unlocked and wait, in unlock order, for one
	 * that syncs to stop (flushed, deleted, wiped, or stopped on an
	 * error). */
	size_t max_syncing;
	bool http2; /* HTTP/2 to mail servers that offer it (net/httpc.h) */
};

/* What every operation answers. status 2xx on success. */
struct engine_result {
	int status;		 /* HTTP status for the API */
	const char *type;	 /* problem type URI ("about:blank" or "urn:halfkey:...") */
	char detail[256];	 /* human-readable, no secrets */
	char account_id[STORE_ID_MAX];
	char device_id[STORE_ID_MAX];
	char token[ENGINE_TOKEN_B64_MAX]; /* register only: base64url device token */
};

struct engine_register_req {
	char server_url[STORE_URL_MAX]; /* "" for the default server */
	char username[STORE_NAME_MAX];
	char email[STORE_NAME_MAX];
	char device_id[STORE_NAME_MAX];	 /* the device's own id; also its EAS DeviceId */
	char device_type[STORE_NAME_MAX];
	char user_agent[STORE_USER_AGENT_MAX];
	struct secret *password;   /* owned by the engine from the call on */
	struct secret *device_key; /* owned by the engine from the call on */
};

typedef void engine_cb(const struct engine_result *res, void *ctx);

int engine_new(const struct engine_config *cfg, struct engine **engine_r) HK_WARN_UNUSED;
/* Wipes every unlocked account's secrets and cancels pending registrations
 * (their callbacks are not called). */
void engine_free(struct engine **engine);

/* Checks block rules, verifies the password with the mail server, and only
 * if it is accepted stores the sealed envelope. cb gets 201 with the
 * account id and token, or the refusal: 401 (mail server refused the
 * password), 403 (blocked by rule or by the server), 502 (mail server
 * unreachable or answered nonsense), 400 (bad request), 409 (this device
 * is already registered). Refusals store nothing but an audit row. The
 * request's secrets are wiped whatever happens. Returns <0 only when the
 * operation could not start (then cb is not called; secrets still wiped). */
int engine_register(struct engine *e, struct engine_register_req *req, engine_cb *cb,
		    void *ctx) HK_WARN_UNUSED;

/* Opens the account in guarded memory (or, when already unlocked, checks
 * the key) and records activity. 200, or 401 (unknown token / wrong key,
 * with per-device back-off: 429 while it lasts), 403 wiped, 403 blocked,
 * 400. device_key is wiped. */
void engine_unlock(struct engine *e, const uint8_t *token, size_t token_len,
		   struct secret *device_key, struct engine_result *res);
/* Any authenticated request: records activity. 200, 401, 403 wiped. */
void engine_touch(struct engine *e, const uint8_t *token, size_t token_len,
		  struct engine_result *res);
/* The user's "delete account": everything of the account, at once. */
void engine_delete(struct engine *e, const uint8_t *token, size_t token_len,
		   struct engine_result *res);

/* Lifecycle, driven by the clock: flushes accounts idle for flush_after,
 * and every purge_every purges accounts inactive past flush_after. The
 * daemon calls it from a timer; tests call it after moving the test clock. */
void engine_tick(struct engine *e);

/* Admin. */
void engine_admin_wipe(struct engine *e, const char *account_id, struct engine_result *res);
void engine_admin_flush(struct engine *e, const char *account_id, struct engine_result *res);
void engine_admin_purge(struct engine *e, struct engine_result *res);

/* Accounts whose sync session runs right now. */
size_t engine_syncing_count(const struct engine *e);
/* Unlocked accounts waiting for a sync slot (max_syncing). */
size_t engine_sync_waiting_count(const struct engine *e);

/* Unlocked accounts right now. */
size_t engine_unlocked_count(const struct engine *e);
bool engine_is_unlocked(const struct engine *e, const char *account_id);

#endif
