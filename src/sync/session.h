/* The sync engine of one unlocked account (DESIGN §5).
 *
 * A session keeps one account's ActiveSync mailbox mirrored into the sealed
 * cache of the store, on the caller's libevent loop, with no thread of its
 * own. It is a state machine with at most one request in flight:
 *
 *   [Provision, only when the server asks: 449 or Status 142-144]
 *   -> FolderSync from the stored folder sync key ("0" the first time):
 *      the hierarchy's Adds/Updates/Deletes go to the store's collections
 *   -> Sync every collection of a synced class from its stored sync key,
 *      window by window, until the server has nothing more for it
 *   -> Ping all synced collections; on a change, Sync the changed ones and
 *      Ping again
 *
 * Each Add or Change is the item's AirSync:ApplicationData subtree encoded
 * back to WBXML (lossless; the JMAP layer parses it when it reads the
 * item), sealed with vault_item_seal() under the account's data key. A
 * server Change carries only the properties that changed ([MS-ASCMD]
 * 2.2.3.24), so it is merged into the cached item: every top-level element
 * of the Change replaces the cached elements of the same name, the others
 * stay. Delete and SoftDelete remove the item. One Sync response of one
 * collection is committed with its new sync key in one transaction
 * (store_sync_apply()), so a crash neither loses nor replays changes, and a
 * restart resumes from the stored keys without downloading again.
 *
 * Cache layout
 *   store collection_id = the server's CollectionId (FolderSync ServerId)
 *   store item_id       = the server's item ServerId in that collection
 *   sealed under the vault item id sync_vault_item_id(collection, item)
 *   plaintext           = WBXML 1.3 document whose root is
 *                         AirSync:ApplicationData
 * Ids and sync keys are the server's opaque strings, kept byte for byte.
 *
 * What the server answers is classified by eas/status.h and acted on by
 * action, never by a server's quirks: 401 -> SYNC_EV_AUTH_FAILED, 403 and
 * the blocking statuses -> SYNC_EV_BLOCKED, a wipe request ->
 * SYNC_EV_WIPE_REQUESTED, a request the server calls malformed or a command
 * it lacks -> SYNC_EV_ERROR; each of these ends the session's work (no call
 * in flight, no timer, the client's credentials wiped) and the owner then
 * calls sync_session_stop(). 451 is followed (for this session only),
 * transient failures (503/429 with their Retry-After, 5xx statuses, no
 * answer at all, a store failure) are retried after an exponential back-off
 * with full jitter. Sync status 3 restarts that collection from "0",
 * FolderSync status 9 restarts the whole cache, Sync 12 / Ping 7 refresh the
 * hierarchy first, Sync 13 / Ping 3 resend the full request, Ping 5 adopts
 * the server's heartbeat, Ping 6 pings fewer folders (the Inbox first; the
 * others are then synced each time a heartbeat expires). A collection the
 * server refuses with any other status is left alone for the rest of the
 * session (logged); the others go on.
 *
 * Secrets: the password is read once, by eas_client_new(), which keeps only
 * its guarded Basic value; sync_session_stop() (and any terminal event)
 * frees the client, which wipes it. The data key is borrowed: the owner
 * keeps *dek alive and unchanged until sync_session_stop() returns; the
 * session makes no copy of it.
 *
 * Events reach the owner through one callback with a plain struct that
 * points into nothing (DESIGN §12: the engine's message shape). The
 * callback may call sync_session_stop() on this session; nothing is
 * delivered after sync_session_stop(). */
#ifndef HK_SYNC_SESSION_H
#define HK_SYNC_SESSION_H

#include "crypto/secmem.h"
#include "eas/client.h"
#include "eas/commands.h"
#include "lib/clock.h"
#include "store/store.h"

#include <stdbool.h>
#include <stdint.h>

struct event_base;

/* Ping heartbeat, seconds: the default and the range [MS-ASCMD] 2.2.3.79.1
 * allows. Values outside it are clamped, the server's too (Ping Status 5). */
#define SYNC_HEARTBEAT_DEFAULT_S 900u
#define SYNC_HEARTBEAT_MIN_S     60u
#define SYNC_HEARTBEAT_MAX_S     3540u
/* Items per collection per Sync response (WindowSize, 1..512). */
#define SYNC_WINDOW_DEFAULT 100u
/* Bytes of a body kept in the cache (TruncationSize); the rest, and MIME,
 * is fetched on demand. */
#define SYNC_BODY_TRUNCATION_DEFAULT (512u * 1024)
/* Collections in one Sync request (lowered when the server says Status 15). */
#define SYNC_BATCH_DEFAULT 16u
/* Back-off: the first ceiling and the largest; full jitter in between. */
#define SYNC_BACKOFF_MIN_MS_DEFAULT INT64_C(5000)
#define SYNC_BACKOFF_MAX_MS_DEFAULT INT64_C(900000)

/* Classes a session syncs (Sync/Ping Class of the folder type). */
#define SYNC_CLASS_EMAIL     0x01u
#define SYNC_CLASS_CALENDAR  0x02u
#define SYNC_CLASS_CONTACTS  0x04u
#define SYNC_CLASS_TASKS     0x08u
#define SYNC_CLASS_NOTES     0x10u
#define SYNC_CLASSES_DEFAULT (SYNC_CLASS_EMAIL | SYNC_CLASS_CALENDAR | SYNC_CLASS_CONTACTS)

/* What every session of the relay shares; all must outlive the sessions. */
struct sync_env {
	struct event_base *base;
	struct httpc *http;
	struct store *store;
	const struct hk_clock *clock; /* item stamps and back-off deadlines */
};

/* One account's settings. Strings are copied. 0 / NULL means the default. */
struct sync_config {
	const char *account_id; /* required: the store's account */
	const char *url;        /* required: https://host/Microsoft-Server-ActiveSync */
	const char *username;   /* required: as the server expects it */
	const char *device_id;  /* required: the account's stable EAS DeviceId */
	/* The store's device row of that DeviceId: where the PolicyKey the
	 * server hands out is kept, and policy_key the one kept there ("" or
	 * NULL: none yet). NULL store_device_id: nothing is kept. */
	const char *store_device_id;
	const char *policy_key;
	const char *ca_file;    /* NULL: the system's trust store */
	bool http2;             /* HTTP/2 when offered (net/httpc.h) */
	long timeout_ms;        /* per command but Ping; 0: the client's default */
	unsigned heartbeat_s;   /* clamped to SYNC_HEARTBEAT_MIN_S..MAX_S */
	uint32_t window_size;   /* 1..512 */
	uint32_t body_truncation;
	unsigned batch_max;          /* collections per Sync request */
	unsigned classes;            /* SYNC_CLASS_* */
	enum eas_filter mail_filter; /* EAS_FILTER_UNSET: everything */
	enum eas_filter calendar_filter;
	int64_t backoff_min_ms;
	int64_t backoff_max_ms;
};

enum sync_event_kind {
	SYNC_EV_CHANGED = 1,    /* the cache changed: change_counter is its new value */
	SYNC_EV_AUTH_FAILED,    /* 401: flush the account, ask for a re-register */
	SYNC_EV_BLOCKED,        /* 403 or a blocking status: the server refuses this
	                         * user or device until an admin acts; purge */
	SYNC_EV_WIPE_REQUESTED, /* the server asks for a remote wipe of this device */
	SYNC_EV_ERROR,          /* anything else permanent; error says what */
};

/* An event, message-shaped: no pointer into the session. */
struct sync_event {
	enum sync_event_kind kind;
	char account_id[STORE_ID_MAX];
	int64_t change_counter; /* the account's change counter (CHANGED: after the
	                         * change; else the last one reported) */
	/* For the terminal events: what ended the session. */
	char command[16];       /* "Sync", "Ping", ...; "" if no command */
	enum eas_action action; /* the classification behind it; EAS_ACT_OK when
	                         * the server was not the cause (the store
	                         * kept failing) */
	long http_status;       /* 0 if none */
	int status;             /* the ActiveSync Status, 0 if none */
	char error[256];        /* a short description; never a secret */
};

typedef void sync_event_cb(const struct sync_event *ev, void *ctx);

/* The explicit states; a session is in exactly one. */
enum sync_state {
	SYNC_STATE_PROVISION = 1, /* Provision (policy request) in flight */
	SYNC_STATE_PROVISION_ACK, /* Provision (acknowledgement) in flight */
	SYNC_STATE_FOLDERSYNC,    /* FolderSync in flight */
	SYNC_STATE_SYNC,          /* Sync in flight */
	SYNC_STATE_PING,          /* Ping in flight: waiting for the server to push */
	SYNC_STATE_WAIT,          /* nothing in flight, a timer set (back-off, or an
	                           * account with nothing to ping) */
	SYNC_STATE_DONE,          /* a terminal event was reported; nothing runs */
};

const char *sync_state_name(enum sync_state state);

/* Counters, for tests, logs and halfkeyctl. */
struct sync_stats {
	uint64_t requests; /* commands sent, all kinds */
	uint64_t provisions, foldersyncs, syncs, pings;
	uint64_t syncs_from_zero; /* collections requested with SyncKey "0" */
	uint64_t items_put;       /* items written (Add, Change) */
	uint64_t items_deleted;   /* Delete and SoftDelete applied */
	uint64_t commits;         /* store_sync_apply() calls that succeeded */
	uint64_t backoffs;        /* waits after a failure */
	unsigned heartbeat_s;     /* the heartbeat in use */
	unsigned ping_folders;    /* folders in the last Ping */
	int64_t wait_until_ms;    /* monotonic end of the current wait; 0: none */
};

struct sync_session;

/* Starts syncing: loads the account's sync state from env->store, makes the
 * EAS client (reading password once) and sends the first request. Contract
 * of net/httpc.h: if this fails, cb is never called and nothing is left
 * running (HK_ERR_INVAL for a bad config, the store's code when the account
 * cannot be read); else events come until sync_session_stop(). */
int sync_session_start(const struct sync_env *env, const struct sync_config *cfg,
                       const struct secret *password, const struct secret *dek, sync_event_cb *cb,
                       void *ctx, struct sync_session **s_r) HK_WARN_UNUSED;

/* Stops at once: cancels the request in flight and the timer, wipes the
 * client's credentials, frees the session and sets *s NULL. No callback
 * comes after it, also when called from the callback. NULL-safe. */
void sync_session_stop(struct sync_session **s);

enum sync_state sync_session_state(const struct sync_session *s);
void sync_session_stats(const struct sync_session *s, struct sync_stats *stats_r);

/* The vault item id of an item (vault_item_seal()/vault_item_open()): the
 * collection id with every '%' written "%25" and every '/' written "%2F",
 * then '/', then the item's ServerId as is. Escaping the collection id
 * makes the first unescaped '/' the separator, so two different
 * (collection, item) pairs never share an id and a sealed item cannot be
 * moved between them. out_size >= SYNC_VAULT_ID_MAX is always enough;
 * HK_ERR_TOO_LONG if out is too small, HK_ERR_INVAL for an empty id. */
#define SYNC_VAULT_ID_MAX (3 * STORE_SERVER_ID_MAX + STORE_SERVER_ID_MAX + 1)
int sync_vault_item_id(const char *collection_id, const char *server_id, char *out,
                       size_t out_size) HK_WARN_UNUSED;

/* ---- back-off arithmetic (public for tests) ---- */

/* Consecutive failures and the deadline they set. */
struct sync_backoff {
	int64_t min_ms, max_ms;
	unsigned failures; /* since the last success */
	int64_t until_ms;  /* monotonic end of the last delay; 0: none */
};

void sync_backoff_init(struct sync_backoff *b, int64_t min_ms, int64_t max_ms);
/* One more failure: returns the delay before the next try, uniform in
 * [0, min(max_ms, min_ms * 2^(failures before this one))] ("full jitter"),
 * from rnd (uniformly random bits), but never less than retry_after_s
 * seconds when the server sent Retry-After; sets until_ms to the clock's
 * monotonic reading plus the delay. */
int64_t sync_backoff_next(struct sync_backoff *b, const struct hk_clock *clock, long retry_after_s,
                          uint64_t rnd);
/* A success: the next failure starts from min_ms again. */
void sync_backoff_reset(struct sync_backoff *b);

#endif
