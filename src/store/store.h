/* The relay's persistent store: accounts, devices, credential envelopes,
 * sync state, the sealed cache, push subscriptions, block rules, the audit
 * log and leases.
 *
 * The store never sees a plaintext secret: envelopes and cached items arrive
 * already sealed (crypto/envelope.h) and are kept as opaque bytes; device
 * tokens arrive as their SHA-256. Nothing the store logs or returns as error
 * text carries blob content.
 *
 * The store never reads a clock: every function that stamps a time takes it
 * as an int64 Unix-milliseconds argument from the caller (lib/clock.h).
 *
 * Writes that must not be seen half done are one call each and one
 * transaction each: creating an account (account + device + envelope),
 * deleting, wiping and purging an account, cache writes (items + the
 * account's change counter), applying a Sync response (a collection's items
 * + its sync key + the change counter). A failure or a crash in the middle
 * leaves the store as it was before the call.
 *
 * Conventions: every fallible function returns 0 or a negative HK_ERR_*
 * code (lib/error.h) and sets *error_r to a short text naming what failed.
 * The text lives in the store handle and is valid until the next call on the
 * same handle (store_open's until the next store_open in the same thread).
 * Common codes: HK_ERR_NOT_FOUND (no such row, or a row it refers to is
 * missing), HK_ERR_EXISTS (a unique key is taken), HK_ERR_INVAL (bad
 * argument), HK_ERR_TOO_LONG (a string or blob over its maximum below),
 * HK_ERR_BUSY (database locked, lease held), HK_ERR_STORE (database failure),
 * HK_ERR_FAULT (injected by the fault driver).
 *
 * Strings in row structs are fixed-size and NUL-terminated; "" stands for
 * SQL NULL where a column is optional, and a time of 0 for "never". Blobs
 * are borrowed on input; on output they live in one allocation with their
 * struct, freed by that struct's _free(). Lists are arrays of fixed-size
 * structs in one allocation (NULL when empty), freed with
 * store_list_free(&array). On failure nothing is allocated for the caller
 * and outputs are not to be used (purge's partial count excepted).
 *
 * A store handle is used by one thread at a time. */
#ifndef HK_STORE_H
#define HK_STORE_H

#include "lib/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Field sizes, terminating NUL included. Longer input is HK_ERR_TOO_LONG. */
#define STORE_ID_MAX 64		 /* account, device and push subscription ids */
#define STORE_URL_MAX 2048	 /* server URL, push endpoint */
#define STORE_NAME_MAX 256	 /* username, email, device id/type, patterns */
#define STORE_USER_AGENT_MAX 512
#define STORE_SERVER_ID_MAX 512	 /* the mail server's collection and item ids */
#define STORE_SYNC_KEY_MAX 256
#define STORE_POLICY_KEY_MAX 16	 /* ActiveSync PolicyKey: up to 10 digits */
#define STORE_DISPLAY_NAME_MAX 1024
#define STORE_NODE_MAX 64	 /* lease holder name */
#define STORE_PUSH_TYPE_MAX 32
#define STORE_DETAIL_MAX 512	 /* audit detail, block rule note */

#define STORE_SALT_LEN 16
#define STORE_TOKEN_HASH_LEN 32

/* Blob maxima, in bytes. */
#define STORE_ENVELOPE_MAX 4096	 /* each of credential and wrapped DEK */
#define STORE_ITEM_MAX (16 * 1024 * 1024)
#define STORE_PUSH_PARAMS_MAX 2048

/* The most rows one paged list call (accounts, audit) returns. */
#define STORE_LIST_MAX 1000
/* The other lists return all rows, up to this many; more is
 * HK_ERR_TOO_LONG rather than a silently shortened list. */
#define STORE_UNPAGED_MAX 1000000

struct store;

enum store_account_state {
	STORE_ACCOUNT_ACTIVE = 1,	     /* unlocked or unlockable, syncing */
	STORE_ACCOUNT_FLUSHED,		     /* secrets wiped from memory; needs unlock */
	STORE_ACCOUNT_REREGISTER_NEEDED,     /* the mail server refused the password */
	STORE_ACCOUNT_WIPED,		     /* remote wipe: content gone, devices tombstoned */
};

struct store_account {
	char id[STORE_ID_MAX];
	char server_url[STORE_URL_MAX];
	char username[STORE_NAME_MAX];
	char email[STORE_NAME_MAX]; /* "" if unknown */
	uint8_t salt[STORE_SALT_LEN];
	enum store_account_state state;
	int64_t created_ms;
	int64_t last_activity_ms;
	int64_t flushed_ms;	    /* 0 unless the state is flushed */
	int64_t change_counter;	    /* bumped by every cache write */
	char folder_sync_key[STORE_SYNC_KEY_MAX]; /* "" before the first FolderSync */
};

/* One row of store_account_list(). */
struct store_account_entry {
	struct store_account account;
	unsigned device_count;
};

struct store_device {
	char id[STORE_ID_MAX];
	char account_id[STORE_ID_MAX];
	char eas_device_id[STORE_NAME_MAX]; /* the DeviceId the device presented */
	char device_type[STORE_NAME_MAX];
	char user_agent[STORE_USER_AGENT_MAX];
	uint8_t token_hash[STORE_TOKEN_HASH_LEN]; /* SHA-256 of the device token */
	int64_t created_ms;
	int64_t last_seen_ms;
	int64_t tombstoned_ms; /* 0 = live; else when its account was wiped */
	/* the mail server's PolicyKey for this device's partnership: digits,
	 * "" before provisioning or when the server has no policy */
	char policy_key[STORE_POLICY_KEY_MAX];
};

/* A device's credential envelope and wrapped data key (crypto/envelope.h),
 * both opaque here. */
struct store_envelope {
	uint32_t key_id; /* the master key both are sealed under */
	const uint8_t *credential;
	size_t credential_len;
	const uint8_t *wrapped_dek;
	size_t wrapped_dek_len;
	int64_t updated_ms;
};

/* Sync state of one collection (folder) of an account. Ids and sync keys are
 * the mail server's opaque strings, kept byte for byte. */
struct store_collection {
	char collection_id[STORE_SERVER_ID_MAX];
	char parent_id[STORE_SERVER_ID_MAX]; /* "" or "0" at the top, as the server says */
	char sync_key[STORE_SYNC_KEY_MAX];
	char display_name[STORE_DISPLAY_NAME_MAX];
	int32_t type; /* the server's folder type (EAS FolderType) */
};

/* A sealed cache item. */
struct store_item {
	const char *collection_id;
	const char *item_id;
	const uint8_t *sealed;
	size_t sealed_len;
	int64_t updated_ms;
};

/* A list of item ids, freed by store_id_list_free(). */
struct store_id_list {
	size_t count;
	char **ids;
};

/* What one Sync response did to one collection: its new sync key and the
 * items it added, changed and removed (store_sync_apply()). */
struct store_sync_batch {
	const char *collection_id;
	const char *sync_key;	       /* the collection's new sync key */
	bool clear;		       /* first remove every cached item of the
					* collection (the server restarted it
					* from sync key "0") */
	const struct store_item *puts; /* each with this collection_id */
	size_t n_puts;
	const char *const *deletes; /* item ids; ids not cached are skipped */
	size_t n_deletes;
};

struct store_push_sub {
	char id[STORE_ID_MAX];
	char account_id[STORE_ID_MAX];
	char type[STORE_PUSH_TYPE_MAX]; /* "webpush", "apns", "fcm", "webhook" */
	char endpoint[STORE_URL_MAX];
	uint8_t params[STORE_PUSH_PARAMS_MAX]; /* keys, tokens: opaque */
	size_t params_len;
	int64_t created_ms;
	int64_t expires_ms; /* 0 = never */
};

enum store_block_kind {
	STORE_BLOCK_USER_GLOB = 1,
	STORE_BLOCK_DOMAIN,
	STORE_BLOCK_DEVICE_TYPE,
	STORE_BLOCK_DEVICE_ID,
	STORE_BLOCK_USER_AGENT,
};

struct store_block_rule {
	int64_t id; /* set by the store; never reused */
	enum store_block_kind kind;
	char pattern[STORE_NAME_MAX];
	char note[STORE_DETAIL_MAX];
	int64_t created_ms;
};

enum store_audit_event {
	STORE_AUDIT_UNKNOWN = 0, /* read back only: a name this build does not know */
	STORE_AUDIT_REGISTER,
	STORE_AUDIT_REGISTER_REFUSED,
	STORE_AUDIT_UNLOCK,
	STORE_AUDIT_BAD_KEY,
	STORE_AUDIT_FLUSH,
	STORE_AUDIT_PURGE,
	STORE_AUDIT_WIPE,
	STORE_AUDIT_DELETE,
	STORE_AUDIT_BLOCK,
};

/* One audit row. Never a secret in any field. */
struct store_audit {
	int64_t id; /* set by the store, increasing */
	int64_t time_ms;
	enum store_audit_event event;
	char account_id[STORE_ID_MAX]; /* "" if none; not a reference: rows outlive accounts */
	char device[STORE_NAME_MAX];	/* "" if none; the EAS DeviceId */
	char detail[STORE_DETAIL_MAX];
};

struct store_stats {
	int64_t accounts;
	int64_t devices;
	int64_t envelopes;
	int64_t collections;
	int64_t items;
	int64_t push_subs;
	int64_t block_rules;
	int64_t leases;
	int64_t audit;
};

/* Called by a driver before each SQL statement it runs (transaction
 * control included, rollback excepted). A negative return makes that
 * statement fail with that code; inside a transaction the driver then rolls
 * back. The fault driver uses it to fail every internal step in turn. */
typedef int store_step_hook_fn(void *ctx);

/* A store driver. The public functions below check their arguments and
 * dispatch here, so a driver may assume valid arguments (strings within
 * their maxima, non-NULL outputs, known enum values). */
struct store_driver {
	const char *name;

	int (*open)(const char *params, struct store **store_r, const char **error_r);
	void (*close)(struct store *store);
	/* NULL if the driver cannot run a step hook; hook NULL removes it. */
	void (*set_step_hook)(struct store *store, store_step_hook_fn *hook, void *ctx);

	int (*account_create)(struct store *store, const struct store_account *account,
			      const struct store_device *device,
			      const struct store_envelope *envelope,
			      const struct store_audit *audit, const char **error_r);
	int (*account_get)(struct store *store, const char *id, struct store_account *account_r,
			   const char **error_r);
	int (*account_find)(struct store *store, const char *server_url, const char *username,
			    const char *eas_device_id, struct store_account *account_r,
			    const char **error_r);
	int (*account_list)(struct store *store, const char *after_id, unsigned limit,
			    struct store_account_entry **entries_r, size_t *count_r,
			    const char **error_r);
	int (*account_set_state)(struct store *store, const char *id,
				 enum store_account_state state, int64_t now_ms,
				 const char **error_r);
	int (*account_delete)(struct store *store, const char *id,
			      const struct store_audit *audit, const char **error_r);
	int (*account_wipe)(struct store *store, const char *id, int64_t now_ms,
			    const struct store_audit *audit, const char **error_r);
	int (*account_purge_inactive)(struct store *store, int64_t before_ms, int64_t now_ms,
				      unsigned *count_r, const char **error_r);

	int (*device_get)(struct store *store, const char *id, struct store_device *device_r,
			  const char **error_r);
	int (*device_get_by_token)(struct store *store,
				   const uint8_t token_hash[STORE_TOKEN_HASH_LEN],
				   struct store_device *device_r, const char **error_r);
	int (*device_list)(struct store *store, const char *account_id,
			   struct store_device **devices_r, size_t *count_r, const char **error_r);
	int (*device_touch)(struct store *store, const char *id, int64_t now_ms,
			    const char **error_r);
	int (*device_unlocked)(struct store *store, const char *id, int64_t now_ms,
			       const struct store_audit *audit, const char **error_r);
	int (*device_set_policy_key)(struct store *store, const char *id, const char *policy_key,
				     const char **error_r);

	int (*envelope_get)(struct store *store, const char *device_id,
			    struct store_envelope **envelope_r, const char **error_r);
	int (*envelope_replace)(struct store *store, const char *device_id,
				const struct store_envelope *envelope, const char **error_r);

	int (*collection_put)(struct store *store, const char *account_id,
			      const struct store_collection *collection, const char **error_r);
	int (*collection_get)(struct store *store, const char *account_id,
			      const char *collection_id, struct store_collection *collection_r,
			      const char **error_r);
	int (*collection_list)(struct store *store, const char *account_id,
			       struct store_collection **collections_r, size_t *count_r,
			       const char **error_r);
	int (*collection_delete)(struct store *store, const char *account_id,
				 const char *collection_id, const char **error_r);
	int (*folder_sync_key_set)(struct store *store, const char *account_id,
				   const char *sync_key, const char **error_r);
	int (*cache_clear)(struct store *store, const char *account_id, const char **error_r);

	int (*item_put)(struct store *store, const char *account_id,
			const struct store_item *items, size_t count, int64_t *change_r,
			const char **error_r);
	int (*item_get)(struct store *store, const char *account_id, const char *collection_id,
			const char *item_id, struct store_item **item_r, const char **error_r);
	int (*item_delete)(struct store *store, const char *account_id,
			   const char *collection_id, const char *item_id, int64_t *change_r,
			   const char **error_r);
	int (*item_list)(struct store *store, const char *account_id, const char *collection_id,
			 struct store_id_list **ids_r, const char **error_r);
	int (*sync_apply)(struct store *store, const char *account_id,
			  const struct store_sync_batch *batch, int64_t *change_r,
			  const char **error_r);

	int (*push_add)(struct store *store, const struct store_push_sub *sub,
			const char **error_r);
	int (*push_list)(struct store *store, const char *account_id,
			 struct store_push_sub **subs_r, size_t *count_r, const char **error_r);
	int (*push_delete)(struct store *store, const char *id, const char **error_r);
	int (*push_delete_expired)(struct store *store, int64_t now_ms, unsigned *count_r,
				   const char **error_r);

	int (*block_add)(struct store *store, const struct store_block_rule *rule,
			 int64_t *id_r, const char **error_r);
	int (*block_list)(struct store *store, struct store_block_rule **rules_r,
			  size_t *count_r, const char **error_r);
	int (*block_remove)(struct store *store, int64_t id, const char **error_r);

	int (*audit_append)(struct store *store, const struct store_audit *entry,
			    int64_t *id_r, const char **error_r);
	int (*audit_list)(struct store *store, int64_t since_ms, const char *account_id,
			  unsigned limit, struct store_audit **entries_r, size_t *count_r,
			  const char **error_r);

	int (*lease_acquire)(struct store *store, const char *account_id, const char *node,
			     int64_t now_ms, int64_t ttl_ms, const char **error_r);
	int (*lease_renew)(struct store *store, const char *account_id, const char *node,
			   int64_t now_ms, int64_t ttl_ms, const char **error_r);
	int (*lease_release)(struct store *store, const char *account_id, const char *node,
			     const char **error_r);

	int (*stats)(struct store *store, struct store_stats *stats_r, const char **error_r);
};

/* params: the path of the database file (created 0600 if missing). */
extern const struct store_driver store_driver_sqlite;
/* Wraps the SQLite driver (same params) and fails a chosen step:
 * store-fault.h. */
extern const struct store_driver store_driver_fault;

/* Opens a store with drv. On failure *store_r is untouched. */
int store_open(const struct store_driver *drv, const char *params, struct store **store_r,
	       const char **error_r) HK_WARN_UNUSED;
/* Closes the store and sets *store to NULL. NULL-safe. */
void store_close(struct store **store);

/* Names as stored and printed ("active", "user_glob", "bad_key", ...).
 * The parsers return 0 or HK_ERR_INVAL. */
const char *store_account_state_name(enum store_account_state state);
int store_account_state_parse(const char *name, enum store_account_state *state_r)
	HK_WARN_UNUSED;
const char *store_block_kind_name(enum store_block_kind kind);
int store_block_kind_parse(const char *name, enum store_block_kind *kind_r) HK_WARN_UNUSED;
const char *store_audit_event_name(enum store_audit_event event);
/* Unknown names parse to STORE_AUDIT_UNKNOWN (never an error). */
enum store_audit_event store_audit_event_parse(const char *name);

/* Frees an array returned by a list function and sets the pointer to NULL. */
void store_list_free_array(void *array);
#define store_list_free(array_pp)                  \
	do {                                       \
		store_list_free_array(*(array_pp)); \
		*(array_pp) = NULL;                \
	} while (0)

/* ---- accounts ---- */

/* Registers an account with its first device and that device's envelope,
 * all or nothing; device->account_id must equal account->id. audit (may be
 * NULL) is appended in the same transaction. HK_ERR_EXISTS if the account
 * id, device id or token hash is taken, or if an account for the same
 * server_url and username already has a device with this eas_device_id. */
int store_account_create(struct store *store, const struct store_account *account,
			 const struct store_device *device, const struct store_envelope *envelope,
			 const struct store_audit *audit, const char **error_r) HK_WARN_UNUSED;
int store_account_get(struct store *store, const char *id, struct store_account *account_r,
		      const char **error_r) HK_WARN_UNUSED;
/* The account registered for this server, user and EAS DeviceId. */
int store_account_find(struct store *store, const char *server_url, const char *username,
		       const char *eas_device_id, struct store_account *account_r,
		       const char **error_r) HK_WARN_UNUSED;
/* Up to limit (1..STORE_LIST_MAX) accounts with ids after after_id ("" to
 * start), in id order. */
int store_account_list(struct store *store, const char *after_id, unsigned limit,
		       struct store_account_entry **entries_r, size_t *count_r,
		       const char **error_r) HK_WARN_UNUSED;
/* Sets the state. Flushed stamps flushed_ms = now_ms; active clears it. */
int store_account_set_state(struct store *store, const char *id, enum store_account_state state,
			    int64_t now_ms, const char **error_r) HK_WARN_UNUSED;
/* Deletes the account and everything that hangs off it (devices,
 * envelopes, sync state, cached items, push subscriptions, lease) in one
 * transaction; audit rows stay, and audit (may be NULL) is appended in the
 * same transaction. Deleted bytes are zeroed in the database file. */
int store_account_delete(struct store *store, const char *id, const struct store_audit *audit,
			 const char **error_r) HK_WARN_UNUSED;
/* Remote wipe, in one transaction: deletes envelopes, sync state, cached
 * items, push subscriptions and lease; tombstones the devices (now_ms);
 * sets the state to wiped. The account and device rows stay so that the
 * device's next request can be answered "wiped". */
int store_account_wipe(struct store *store, const char *id, int64_t now_ms,
		       const struct store_audit *audit, const char **error_r) HK_WARN_UNUSED;
/* Deletes, as store_account_delete() with a "purge" audit row stamped
 * now_ms, every account whose last activity is before before_ms, except
 * wiped ones (their tombstones must outlive the purge so that the device
 * learns of the wipe; delete them explicitly). Each account is its own
 * transaction: an error stops the loop with the accounts purged so far in
 * *count_r. */
int store_account_purge_inactive(struct store *store, int64_t before_ms, int64_t now_ms,
				 unsigned *count_r, const char **error_r) HK_WARN_UNUSED;

/* ---- devices ---- */

int store_device_get(struct store *store, const char *id, struct store_device *device_r,
		     const char **error_r) HK_WARN_UNUSED;
/* Looks a device up by the SHA-256 of its token. The caller still compares
 * the hash in constant time before trusting the row. */
int store_device_get_by_token(struct store *store,
			      const uint8_t token_hash[STORE_TOKEN_HASH_LEN],
			      struct store_device *device_r, const char **error_r) HK_WARN_UNUSED;
/* All devices of an account, in id order. */
int store_device_list(struct store *store, const char *account_id,
		      struct store_device **devices_r, size_t *count_r,
		      const char **error_r) HK_WARN_UNUSED;
/* Records activity: the device's last_seen_ms and its account's
 * last_activity_ms become now_ms (never moving backwards), in one
 * transaction. */
int store_device_touch(struct store *store, const char *id, int64_t now_ms,
		       const char **error_r) HK_WARN_UNUSED;
/* Records an unlock, all in one transaction: the touch above; the
 * device's account becomes active again if it was flushed or needed
 * re-registering (a wiped one stays wiped); and audit (required) is
 * appended. So an unlock is never recorded without its audit entry. */
int store_device_unlocked(struct store *store, const char *id, int64_t now_ms,
			  const struct store_audit *audit, const char **error_r) HK_WARN_UNUSED;
/* Records the mail server's PolicyKey for the device ("" forgets it):
 * 1 to 10 digits, else HK_ERR_INVAL. */
int store_device_set_policy_key(struct store *store, const char *id, const char *policy_key,
				const char **error_r) HK_WARN_UNUSED;

/* ---- envelopes ---- */

/* *envelope_r: one allocation, freed with store_envelope_free(). */
int store_envelope_get(struct store *store, const char *device_id,
		       struct store_envelope **envelope_r, const char **error_r) HK_WARN_UNUSED;
/* Replaces a device's envelope (re-wrap under a new master key).
 * HK_ERR_NOT_FOUND if the device has none (unknown or wiped). */
int store_envelope_replace(struct store *store, const char *device_id,
			   const struct store_envelope *envelope,
			   const char **error_r) HK_WARN_UNUSED;
void store_envelope_free(struct store_envelope **envelope);

/* ---- sync state ---- */

/* Inserts or updates a collection's sync state. */
int store_collection_put(struct store *store, const char *account_id,
			 const struct store_collection *collection,
			 const char **error_r) HK_WARN_UNUSED;
int store_collection_get(struct store *store, const char *account_id, const char *collection_id,
			 struct store_collection *collection_r,
			 const char **error_r) HK_WARN_UNUSED;
/* All collections of an account, in id order. */
int store_collection_list(struct store *store, const char *account_id,
			  struct store_collection **collections_r, size_t *count_r,
			  const char **error_r) HK_WARN_UNUSED;
/* Deletes a collection and its cached items. */
int store_collection_delete(struct store *store, const char *account_id,
			    const char *collection_id, const char **error_r) HK_WARN_UNUSED;
/* Sets the account's folder-hierarchy sync key ("" resets it). */
int store_folder_sync_key_set(struct store *store, const char *account_id, const char *sync_key,
			      const char **error_r) HK_WARN_UNUSED;
/* Forgets everything synced for the account, in one transaction: all its
 * collections and cached items and its folder sync key, so that the next
 * sync starts from zero. Bumps the change counter. */
int store_cache_clear(struct store *store, const char *account_id,
		      const char **error_r) HK_WARN_UNUSED;

/* ---- sealed cache items ---- */

/* Inserts or replaces count (>= 1) items of the account in one
 * transaction, and bumps the account's change counter once; *change_r (may
 * be NULL) gets its new value. All or nothing: HK_ERR_NOT_FOUND if a
 * collection is unknown. */
int store_item_put(struct store *store, const char *account_id, const struct store_item *items,
		   size_t count, int64_t *change_r, const char **error_r) HK_WARN_UNUSED;
/* *item_r: one allocation, freed with store_item_free(). */
int store_item_get(struct store *store, const char *account_id, const char *collection_id,
		   const char *item_id, struct store_item **item_r,
		   const char **error_r) HK_WARN_UNUSED;
/* Deletes one item and bumps the change counter, in one transaction. */
int store_item_delete(struct store *store, const char *account_id, const char *collection_id,
		      const char *item_id, int64_t *change_r, const char **error_r) HK_WARN_UNUSED;
/* The ids of all items in a collection, in id order; *ids_r is a list
 * (maybe of 0 ids) on success. */
int store_item_list(struct store *store, const char *account_id, const char *collection_id,
		    struct store_id_list **ids_r, const char **error_r) HK_WARN_UNUSED;
void store_item_free(struct store_item **item);
void store_id_list_free(struct store_id_list **list);

/* Applies one Sync response to one collection in one transaction: removes
 * the collection's items if batch->clear, then the deleted ids, then
 * inserts or replaces the puts (so an id in both lists ends up put), and
 * sets the collection's sync key. The change counter is bumped once when an
 * item was written or removed and left alone otherwise (a response that
 * only moved the key changes no content); *change_r (may be NULL) gets its
 * value after the call either way. All or nothing: HK_ERR_NOT_FOUND if the
 * collection is unknown. One transaction because a crash between the items
 * and the key would lose changes (key stored, items not) or replay them
 * (items stored, the old key sent again). */
int store_sync_apply(struct store *store, const char *account_id,
		     const struct store_sync_batch *batch, int64_t *change_r,
		     const char **error_r) HK_WARN_UNUSED;

/* ---- push subscriptions ---- */

int store_push_add(struct store *store, const struct store_push_sub *sub,
		   const char **error_r) HK_WARN_UNUSED;
/* All subscriptions of an account, in id order. */
int store_push_list(struct store *store, const char *account_id, struct store_push_sub **subs_r,
		    size_t *count_r, const char **error_r) HK_WARN_UNUSED;
int store_push_delete(struct store *store, const char *id, const char **error_r) HK_WARN_UNUSED;
/* Deletes subscriptions with 0 < expires_ms <= now_ms. */
int store_push_delete_expired(struct store *store, int64_t now_ms, unsigned *count_r,
			      const char **error_r) HK_WARN_UNUSED;

/* ---- block rules (matching is the relay's) ---- */

/* rule->id is ignored; *id_r (may be NULL) gets the new id. HK_ERR_EXISTS
 * for a duplicate kind and pattern. */
int store_block_add(struct store *store, const struct store_block_rule *rule, int64_t *id_r,
		    const char **error_r) HK_WARN_UNUSED;
/* All rules, in id order (never truncated: a rule left out would not be
 * enforced). */
int store_block_list(struct store *store, struct store_block_rule **rules_r, size_t *count_r,
		     const char **error_r) HK_WARN_UNUSED;
int store_block_remove(struct store *store, int64_t id, const char **error_r) HK_WARN_UNUSED;

/* ---- audit log (append-only, also in SQL) ---- */

/* entry->id is ignored; *id_r (may be NULL) gets the new id. */
int store_audit_append(struct store *store, const struct store_audit *entry, int64_t *id_r,
		       const char **error_r) HK_WARN_UNUSED;
/* Up to limit (1..STORE_LIST_MAX) entries with time_ms >= since_ms, of one
 * account (or all if account_id is NULL), oldest first. */
int store_audit_list(struct store *store, int64_t since_ms, const char *account_id,
		     unsigned limit, struct store_audit **entries_r, size_t *count_r,
		     const char **error_r) HK_WARN_UNUSED;

/* ---- leases: which node syncs an account ---- */

/* Takes the account's lease for node until now_ms + ttl_ms if it is free,
 * expired (expiry <= now_ms) or already node's. HK_ERR_BUSY if another node
 * holds it; HK_ERR_NOT_FOUND if the account is unknown. */
int store_lease_acquire(struct store *store, const char *account_id, const char *node,
			int64_t now_ms, int64_t ttl_ms, const char **error_r) HK_WARN_UNUSED;
/* Extends node's lease, expired or not, as long as nobody took it.
 * HK_ERR_BUSY if another node holds it now, HK_ERR_NOT_FOUND if there is no
 * lease: either way node lost it and must stop syncing the account. */
int store_lease_renew(struct store *store, const char *account_id, const char *node,
		      int64_t now_ms, int64_t ttl_ms, const char **error_r) HK_WARN_UNUSED;
/* Drops node's lease. HK_ERR_NOT_FOUND if node does not hold it. */
int store_lease_release(struct store *store, const char *account_id, const char *node,
			const char **error_r) HK_WARN_UNUSED;

/* Row counts. */
int store_stats(struct store *store, struct store_stats *stats_r,
		const char **error_r) HK_WARN_UNUSED;

#endif
