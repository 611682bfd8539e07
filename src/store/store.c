/* The store's public face: argument checks, then dispatch to the driver.
 * Checking here means every driver gets the same contract (lengths within
 * the header's maxima, known enum values, non-NULL outputs) and no driver
 * repeats the checks. */
#include "store/store-private.h"

#include "lib/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int store_error(struct store *store, int code, const char **error_r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(store->error, sizeof(store->error), fmt, ap);
	va_end(ap);
	*error_r = store->error;
	return code;
}

void *store_xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb == 0 ? 1 : nmemb, size == 0 ? 1 : size);
	if (p == NULL) {
		log_err("store: out of memory");
		abort();
	}
	return p;
}

void *store_xreallocarray(void *p, size_t nmemb, size_t size)
{
	void *q = reallocarray(p, nmemb == 0 ? 1 : nmemb, size == 0 ? 1 : size);
	if (q == NULL) {
		log_err("store: out of memory");
		abort();
	}
	return q;
}

/* ---- names ---- */

static const char *const account_state_names[] = {
	[STORE_ACCOUNT_ACTIVE] = "active",
	[STORE_ACCOUNT_FLUSHED] = "flushed",
	[STORE_ACCOUNT_REREGISTER_NEEDED] = "reregister_needed",
	[STORE_ACCOUNT_WIPED] = "wiped",
};

static const char *const block_kind_names[] = {
	[STORE_BLOCK_USER_GLOB] = "user_glob",
	[STORE_BLOCK_DOMAIN] = "domain",
	[STORE_BLOCK_DEVICE_TYPE] = "device_type",
	[STORE_BLOCK_DEVICE_ID] = "device_id",
	[STORE_BLOCK_USER_AGENT] = "user_agent",
};

static const char *const audit_event_names[] = {
	[STORE_AUDIT_UNKNOWN] = "unknown",
	[STORE_AUDIT_REGISTER] = "register",
	[STORE_AUDIT_REGISTER_REFUSED] = "register_refused",
	[STORE_AUDIT_UNLOCK] = "unlock",
	[STORE_AUDIT_BAD_KEY] = "bad_key",
	[STORE_AUDIT_FLUSH] = "flush",
	[STORE_AUDIT_PURGE] = "purge",
	[STORE_AUDIT_WIPE] = "wipe",
	[STORE_AUDIT_DELETE] = "delete",
	[STORE_AUDIT_BLOCK] = "block",
};

#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

/* Index of name in a table whose slot 0 may be unused; -1 if absent. */
static int name_index(const char *const *names, size_t n, size_t first, const char *name)
{
	for (size_t i = first; i < n; i++)
		if (names[i] != NULL && strcmp(names[i], name) == 0)
			return (int)i;
	return -1;
}

const char *store_account_state_name(enum store_account_state state)
{
	if ((unsigned)state >= N_ELEMENTS(account_state_names) ||
	    account_state_names[state] == NULL)
		return NULL;
	return account_state_names[state];
}

int store_account_state_parse(const char *name, enum store_account_state *state_r)
{
	int i = name_index(account_state_names, N_ELEMENTS(account_state_names), 1, name);
	if (i < 0)
		return HK_ERR_INVAL;
	*state_r = (enum store_account_state)i;
	return 0;
}

const char *store_block_kind_name(enum store_block_kind kind)
{
	if ((unsigned)kind >= N_ELEMENTS(block_kind_names) || block_kind_names[kind] == NULL)
		return NULL;
	return block_kind_names[kind];
}

int store_block_kind_parse(const char *name, enum store_block_kind *kind_r)
{
	int i = name_index(block_kind_names, N_ELEMENTS(block_kind_names), 1, name);
	if (i < 0)
		return HK_ERR_INVAL;
	*kind_r = (enum store_block_kind)i;
	return 0;
}

const char *store_audit_event_name(enum store_audit_event event)
{
	if ((unsigned)event >= N_ELEMENTS(audit_event_names))
		return NULL;
	return audit_event_names[event];
}

enum store_audit_event store_audit_event_parse(const char *name)
{
	int i = name_index(audit_event_names, N_ELEMENTS(audit_event_names), 1, name);
	return i < 0 ? STORE_AUDIT_UNKNOWN : (enum store_audit_event)i;
}

/* ---- frees ---- */

void store_list_free_array(void *array)
{
	free(array);
}

void store_envelope_free(struct store_envelope **envelope)
{
	free(*envelope);
	*envelope = NULL;
}

void store_item_free(struct store_item **item)
{
	free(*item);
	*item = NULL;
}

void store_id_list_free(struct store_id_list **list)
{
	if (*list == NULL)
		return;
	for (size_t i = 0; i < (*list)->count; i++)
		free((*list)->ids[i]);
	free((*list)->ids);
	free(*list);
	*list = NULL;
}

/* ---- argument checks ---- */

/* A required string: non-NULL, non-empty, shorter than max. */
static int check_key(struct store *store, const char *s, size_t max, const char *what,
		     const char **error_r)
{
	if (s == NULL || s[0] == '\0')
		return store_error(store, HK_ERR_INVAL, error_r, "%s missing", what);
	if (strnlen(s, max) >= max)
		return store_error(store, HK_ERR_TOO_LONG, error_r, "%s too long", what);
	return 0;
}

/* An optional string: non-NULL, may be empty, shorter than max. */
static int check_str(struct store *store, const char *s, size_t max, const char *what,
		     const char **error_r)
{
	if (s == NULL)
		return store_error(store, HK_ERR_INVAL, error_r, "%s missing", what);
	if (strnlen(s, max) >= max)
		return store_error(store, HK_ERR_TOO_LONG, error_r, "%s too long", what);
	return 0;
}

/* A blob of 1..max bytes. */
static int check_blob(struct store *store, const void *p, size_t len, size_t max,
		      const char *what, const char **error_r)
{
	if (p == NULL || len == 0)
		return store_error(store, HK_ERR_INVAL, error_r, "%s missing", what);
	if (len > max)
		return store_error(store, HK_ERR_TOO_LONG, error_r, "%s too long", what);
	return 0;
}

/* Fixed-size fields of row structs are checked as strings bounded by their
 * array size, so an unterminated array is refused rather than overread. */
#define CHECK_KEY(store, field, what, error_r) \
	check_key(store, field, sizeof(field), what, error_r)
#define CHECK_STR(store, field, what, error_r) \
	check_str(store, field, sizeof(field), what, error_r)

static int check_account(struct store *store, const struct store_account *a,
			 const char **error_r)
{
	int ret;
	if ((ret = CHECK_KEY(store, a->id, "account id", error_r)) < 0 ||
	    (ret = CHECK_KEY(store, a->server_url, "server url", error_r)) < 0 ||
	    (ret = CHECK_KEY(store, a->username, "username", error_r)) < 0 ||
	    (ret = CHECK_STR(store, a->email, "email", error_r)) < 0 ||
	    (ret = CHECK_STR(store, a->folder_sync_key, "folder sync key", error_r)) < 0)
		return ret;
	if (store_account_state_name(a->state) == NULL)
		return store_error(store, HK_ERR_INVAL, error_r, "unknown account state");
	return 0;
}

/* An ActiveSync PolicyKey as the X-MS-PolicyKey header carries it: "" or
 * 1 to 10 digits. */
static int check_policy_key(struct store *store, const char *key, const char **error_r)
{
	size_t n = key != NULL ? strnlen(key, STORE_POLICY_KEY_MAX) : STORE_POLICY_KEY_MAX;
	if (n > 10 || strspn(key, "0123456789") != n)
		return store_error(store, HK_ERR_INVAL, error_r,
				   "policy key must be 1 to 10 digits, or empty");
	return 0;
}

static int check_device(struct store *store, const struct store_device *d, const char **error_r)
{
	int ret;
	if ((ret = CHECK_KEY(store, d->id, "device id", error_r)) < 0 ||
	    (ret = CHECK_KEY(store, d->account_id, "device account id", error_r)) < 0 ||
	    (ret = CHECK_KEY(store, d->eas_device_id, "EAS device id", error_r)) < 0 ||
	    (ret = CHECK_STR(store, d->device_type, "device type", error_r)) < 0 ||
	    (ret = CHECK_STR(store, d->user_agent, "user agent", error_r)) < 0 ||
	    (ret = check_policy_key(store, d->policy_key, error_r)) < 0)
		return ret;
	return 0;
}

static int check_envelope(struct store *store, const struct store_envelope *e,
			  const char **error_r)
{
	int ret;
	if (e == NULL)
		return store_error(store, HK_ERR_INVAL, error_r, "envelope missing");
	if ((ret = check_blob(store, e->credential, e->credential_len, STORE_ENVELOPE_MAX,
			      "credential envelope", error_r)) < 0 ||
	    (ret = check_blob(store, e->wrapped_dek, e->wrapped_dek_len, STORE_ENVELOPE_MAX,
			      "wrapped data key", error_r)) < 0)
		return ret;
	return 0;
}

static int check_audit(struct store *store, const struct store_audit *e, const char **error_r)
{
	int ret;
	if (e->event == STORE_AUDIT_UNKNOWN || store_audit_event_name(e->event) == NULL)
		return store_error(store, HK_ERR_INVAL, error_r, "unknown audit event");
	if ((ret = CHECK_STR(store, e->account_id, "audit account id", error_r)) < 0 ||
	    (ret = CHECK_STR(store, e->device, "audit device", error_r)) < 0 ||
	    (ret = CHECK_STR(store, e->detail, "audit detail", error_r)) < 0)
		return ret;
	return 0;
}

static int check_limit(struct store *store, unsigned limit, const char **error_r)
{
	if (limit == 0 || limit > STORE_LIST_MAX)
		return store_error(store, HK_ERR_INVAL, error_r, "list limit out of range");
	return 0;
}

static int check_out(struct store *store, const void *p, const char **error_r)
{
	if (p == NULL)
		return store_error(store, HK_ERR_INVAL, error_r, "output pointer missing");
	return 0;
}

#define ACCOUNT_ID(store, id, error_r) check_key(store, id, STORE_ID_MAX, "account id", error_r)
#define COLLECTION_ID(store, id, error_r) \
	check_key(store, id, STORE_SERVER_ID_MAX, "collection id", error_r)

/* ---- lifecycle ---- */

int store_open(const struct store_driver *drv, const char *params, struct store **store_r,
	       const char **error_r)
{
	if (drv == NULL || params == NULL || store_r == NULL) {
		*error_r = "store_open: missing argument";
		return HK_ERR_INVAL;
	}
	struct store *store = NULL;
	int ret = drv->open(params, &store, error_r);
	if (ret < 0)
		return ret;
	*store_r = store;
	return 0;
}

void store_close(struct store **store)
{
	if (*store == NULL)
		return;
	(*store)->drv->close(*store);
	*store = NULL;
}

/* ---- accounts ---- */

int store_account_create(struct store *store, const struct store_account *account,
			 const struct store_device *device, const struct store_envelope *envelope,
			 const struct store_audit *audit, const char **error_r)
{
	int ret;
	if (account == NULL || device == NULL)
		return store_error(store, HK_ERR_INVAL, error_r, "account or device missing");
	if ((ret = check_account(store, account, error_r)) < 0 ||
	    (ret = check_device(store, device, error_r)) < 0 ||
	    (ret = check_envelope(store, envelope, error_r)) < 0 ||
	    (audit != NULL && (ret = check_audit(store, audit, error_r)) < 0))
		return ret;
	if (strcmp(account->id, device->account_id) != 0)
		return store_error(store, HK_ERR_INVAL, error_r,
				   "device belongs to another account");
	return store->drv->account_create(store, account, device, envelope, audit, error_r);
}

int store_account_get(struct store *store, const char *id, struct store_account *account_r,
		      const char **error_r)
{
	int ret;
	if ((ret = ACCOUNT_ID(store, id, error_r)) < 0 ||
	    (ret = check_out(store, account_r, error_r)) < 0)
		return ret;
	return store->drv->account_get(store, id, account_r, error_r);
}

int store_account_find(struct store *store, const char *server_url, const char *username,
		       const char *eas_device_id, struct store_account *account_r,
		       const char **error_r)
{
	int ret;
	if ((ret = check_key(store, server_url, STORE_URL_MAX, "server url", error_r)) < 0 ||
	    (ret = check_key(store, username, STORE_NAME_MAX, "username", error_r)) < 0 ||
	    (ret = check_key(store, eas_device_id, STORE_NAME_MAX, "EAS device id", error_r)) <
		    0 ||
	    (ret = check_out(store, account_r, error_r)) < 0)
		return ret;
	return store->drv->account_find(store, server_url, username, eas_device_id, account_r,
					error_r);
}

int store_account_list(struct store *store, const char *after_id, unsigned limit,
		       struct store_account_entry **entries_r, size_t *count_r,
		       const char **error_r)
{
	int ret;
	if ((ret = check_str(store, after_id, STORE_ID_MAX, "after id", error_r)) < 0 ||
	    (ret = check_limit(store, limit, error_r)) < 0 ||
	    (ret = check_out(store, entries_r, error_r)) < 0 ||
	    (ret = check_out(store, count_r, error_r)) < 0)
		return ret;
	return store->drv->account_list(store, after_id, limit, entries_r, count_r, error_r);
}

int store_account_set_state(struct store *store, const char *id, enum store_account_state state,
			    int64_t now_ms, const char **error_r)
{
	int ret;
	if ((ret = ACCOUNT_ID(store, id, error_r)) < 0)
		return ret;
	if (store_account_state_name(state) == NULL)
		return store_error(store, HK_ERR_INVAL, error_r, "unknown account state");
	return store->drv->account_set_state(store, id, state, now_ms, error_r);
}

int store_account_delete(struct store *store, const char *id, const struct store_audit *audit,
			 const char **error_r)
{
	int ret;
	if ((ret = ACCOUNT_ID(store, id, error_r)) < 0 ||
	    (audit != NULL && (ret = check_audit(store, audit, error_r)) < 0))
		return ret;
	return store->drv->account_delete(store, id, audit, error_r);
}

int store_account_wipe(struct store *store, const char *id, int64_t now_ms,
		       const struct store_audit *audit, const char **error_r)
{
	int ret;
	if ((ret = ACCOUNT_ID(store, id, error_r)) < 0 ||
	    (audit != NULL && (ret = check_audit(store, audit, error_r)) < 0))
		return ret;
	return store->drv->account_wipe(store, id, now_ms, audit, error_r);
}

int store_account_purge_inactive(struct store *store, int64_t before_ms, int64_t now_ms,
				 unsigned *count_r, const char **error_r)
{
	int ret;
	if ((ret = check_out(store, count_r, error_r)) < 0)
		return ret;
	*count_r = 0;
	return store->drv->account_purge_inactive(store, before_ms, now_ms, count_r, error_r);
}

/* ---- devices ---- */

int store_device_get(struct store *store, const char *id, struct store_device *device_r,
		     const char **error_r)
{
	int ret;
	if ((ret = check_key(store, id, STORE_ID_MAX, "device id", error_r)) < 0 ||
	    (ret = check_out(store, device_r, error_r)) < 0)
		return ret;
	return store->drv->device_get(store, id, device_r, error_r);
}

int store_device_get_by_token(struct store *store,
			      const uint8_t token_hash[STORE_TOKEN_HASH_LEN],
			      struct store_device *device_r, const char **error_r)
{
	int ret;
	if ((ret = check_out(store, token_hash, error_r)) < 0 ||
	    (ret = check_out(store, device_r, error_r)) < 0)
		return ret;
	return store->drv->device_get_by_token(store, token_hash, device_r, error_r);
}

int store_device_list(struct store *store, const char *account_id,
		      struct store_device **devices_r, size_t *count_r, const char **error_r)
{
	int ret;
	if ((ret = ACCOUNT_ID(store, account_id, error_r)) < 0 ||
	    (ret = check_out(store, devices_r, error_r)) < 0 ||
	    (ret = check_out(store, count_r, error_r)) < 0)
		return ret;
	return store->drv->device_list(store, account_id, devices_r, count_r, error_r);
}

int store_device_touch(struct store *store, const char *id, int64_t now_ms,
		       const char **error_r)
{
	int ret;
	if ((ret = check_key(store, id, STORE_ID_MAX, "device id", error_r)) < 0)
		return ret;
	return store->drv->device_touch(store, id, now_ms, error_r);
}

int store_device_unlocked(struct store *store, const char *id, int64_t now_ms,
			  const struct store_audit *audit, const char **error_r)
{
	int ret;
	if ((ret = check_key(store, id, STORE_ID_MAX, "device id", error_r)) < 0)
		return ret;
	if (audit == NULL)
		return store_error(store, HK_ERR_INVAL, error_r, "an unlock needs its audit entry");
	if ((ret = check_audit(store, audit, error_r)) < 0)
		return ret;
	return store->drv->device_unlocked(store, id, now_ms, audit, error_r);
}

int store_device_set_policy_key(struct store *store, const char *id, const char *policy_key,
				const char **error_r)
{
	int ret;
	if ((ret = check_key(store, id, STORE_ID_MAX, "device id", error_r)) < 0 ||
	    (ret = check_policy_key(store, policy_key, error_r)) < 0)
		return ret;
	return store->drv->device_set_policy_key(store, id, policy_key, error_r);
}

/* ---- envelopes ---- */

int store_envelope_get(struct store *store, const char *device_id,
		       struct store_envelope **envelope_r, const char **error_r)
{
	int ret;
	if ((ret = check_key(store, device_id, STORE_ID_MAX, "device id", error_r)) < 0 ||
	    (ret = check_out(store, envelope_r, error_r)) < 0)
		return ret;
	return store->drv->envelope_get(store, device_id, envelope_r, error_r);
}

int store_envelope_replace(struct store *store, const char *device_id,
			   const struct store_envelope *envelope, const char **error_r)
{
	int ret;
	if ((ret = check_key(store, device_id, STORE_ID_MAX, "device id", error_r)) < 0 ||
	    (ret = check_envelope(store, envelope, error_r)) < 0)
		return ret;
	return store->drv->envelope_replace(store, device_id, envelope, error_r);
}

/* ---- sync state ---- */

int store_collection_put(struct store *store, const char *account_id,
			 const struct store_collection *collection, const char **error_r)
{
	int ret;
	if ((ret = ACCOUNT_ID(store, account_id, error_r)) < 0 ||
	    (ret = check_out(store, collection, error_r)) < 0 ||
	    (ret = CHECK_KEY(store, collection->collection_id, "collection id", error_r)) < 0 ||
	    (ret = CHECK_STR(store, collection->parent_id, "parent id", error_r)) < 0 ||
	    (ret = CHECK_STR(store, collection->sync_key, "sync key", error_r)) < 0 ||
	    (ret = CHECK_STR(store, collection->display_name, "display name", error_r)) < 0)
		return ret;
	return store->drv->collection_put(store, account_id, collection, error_r);
}

int store_collection_get(struct store *store, const char *account_id, const char *collection_id,
			 struct store_collection *collection_r, const char **error_r)
{
	int ret;
	if ((ret = ACCOUNT_ID(store, account_id, error_r)) < 0 ||
	    (ret = COLLECTION_ID(store, collection_id, error_r)) < 0 ||
	    (ret = check_out(store, collection_r, error_r)) < 0)
		return ret;
	return store->drv->collection_get(store, account_id, collection_id, collection_r,
					  error_r);
}

int store_collection_list(struct store *store, const char *account_id,
			  struct store_collection **collections_r, size_t *count_r,
			  const char **error_r)
{
	int ret;
	if ((ret = ACCOUNT_ID(store, account_id, error_r)) < 0 ||
	    (ret = check_out(store, collections_r, error_r)) < 0 ||
	    (ret = check_out(store, count_r, error_r)) < 0)
		return ret;
	return store->drv->collection_list(store, account_id, collections_r, count_r, error_r);
}

int store_collection_delete(struct store *store, const char *account_id,
			    const char *collection_id, const char **error_r)
{
	int ret;
	if ((ret = ACCOUNT_ID(store, account_id, error_r)) < 0 ||
	    (ret = COLLECTION_ID(store, collection_id, error_r)) < 0)
		return ret;
	return store->drv->collection_delete(store, account_id, collection_id, error_r);
}

int store_folder_sync_key_set(struct store *store, const char *account_id, const char *sync_key,
			      const char **error_r)
{
	int ret;
	if ((ret = ACCOUNT_ID(store, account_id, error_r)) < 0 ||
	    (ret = check_str(store, sync_key, STORE_SYNC_KEY_MAX, "sync key", error_r)) < 0)
		return ret;
	return store->drv->folder_sync_key_set(store, account_id, sync_key, error_r);
}

int store_cache_clear(struct store *store, const char *account_id, const char **error_r)
{
	int ret;
	if ((ret = ACCOUNT_ID(store, account_id, error_r)) < 0)
		return ret;
	return store->drv->cache_clear(store, account_id, error_r);
}

/* ---- items ---- */

int store_item_put(struct store *store, const char *account_id, const struct store_item *items,
		   size_t count, int64_t *change_r, const char **error_r)
{
	int ret;
	if ((ret = ACCOUNT_ID(store, account_id, error_r)) < 0 ||
	    (ret = check_out(store, items, error_r)) < 0)
		return ret;
	if (count == 0)
		return store_error(store, HK_ERR_INVAL, error_r, "no items");
	for (size_t i = 0; i < count; i++) {
		if ((ret = COLLECTION_ID(store, items[i].collection_id, error_r)) < 0 ||
		    (ret = check_key(store, items[i].item_id, STORE_SERVER_ID_MAX, "item id",
				     error_r)) < 0 ||
		    (ret = check_blob(store, items[i].sealed, items[i].sealed_len,
				      STORE_ITEM_MAX, "sealed item", error_r)) < 0)
			return ret;
	}
	return store->drv->item_put(store, account_id, items, count, change_r, error_r);
}

int store_item_get(struct store *store, const char *account_id, const char *collection_id,
		   const char *item_id, struct store_item **item_r, const char **error_r)
{
	int ret;
	if ((ret = ACCOUNT_ID(store, account_id, error_r)) < 0 ||
	    (ret = COLLECTION_ID(store, collection_id, error_r)) < 0 ||
	    (ret = check_key(store, item_id, STORE_SERVER_ID_MAX, "item id", error_r)) < 0 ||
	    (ret = check_out(store, item_r, error_r)) < 0)
		return ret;
	return store->drv->item_get(store, account_id, collection_id, item_id, item_r, error_r);
}

int store_item_delete(struct store *store, const char *account_id, const char *collection_id,
		      const char *item_id, int64_t *change_r, const char **error_r)
{
	int ret;
	if ((ret = ACCOUNT_ID(store, account_id, error_r)) < 0 ||
	    (ret = COLLECTION_ID(store, collection_id, error_r)) < 0 ||
	    (ret = check_key(store, item_id, STORE_SERVER_ID_MAX, "item id", error_r)) < 0)
		return ret;
	return store->drv->item_delete(store, account_id, collection_id, item_id, change_r,
				       error_r);
}

int store_item_list(struct store *store, const char *account_id, const char *collection_id,
		    struct store_id_list **ids_r, const char **error_r)
{
	int ret;
	if ((ret = ACCOUNT_ID(store, account_id, error_r)) < 0 ||
	    (ret = COLLECTION_ID(store, collection_id, error_r)) < 0 ||
	    (ret = check_out(store, ids_r, error_r)) < 0)
		return ret;
	return store->drv->item_list(store, account_id, collection_id, ids_r, error_r);
}

int store_sync_apply(struct store *store, const char *account_id,
		     const struct store_sync_batch *batch, int64_t *change_r,
		     const char **error_r)
{
	int ret;
	if ((ret = ACCOUNT_ID(store, account_id, error_r)) < 0 ||
	    (ret = check_out(store, batch, error_r)) < 0 ||
	    (ret = COLLECTION_ID(store, batch->collection_id, error_r)) < 0 ||
	    (ret = check_key(store, batch->sync_key, STORE_SYNC_KEY_MAX, "sync key", error_r)) <
		    0)
		return ret;
	if ((batch->n_puts > 0 && batch->puts == NULL) ||
	    (batch->n_deletes > 0 && batch->deletes == NULL))
		return store_error(store, HK_ERR_INVAL, error_r, "item list missing");
	for (size_t i = 0; i < batch->n_puts; i++) {
		const struct store_item *it = &batch->puts[i];
		if (it->collection_id == NULL || strcmp(it->collection_id, batch->collection_id) != 0)
			return store_error(store, HK_ERR_INVAL, error_r,
					   "item of another collection");
		if ((ret = check_key(store, it->item_id, STORE_SERVER_ID_MAX, "item id",
				     error_r)) < 0 ||
		    (ret = check_blob(store, it->sealed, it->sealed_len, STORE_ITEM_MAX,
				      "sealed item", error_r)) < 0)
			return ret;
	}
	for (size_t i = 0; i < batch->n_deletes; i++)
		if ((ret = check_key(store, batch->deletes[i], STORE_SERVER_ID_MAX, "item id",
				     error_r)) < 0)
			return ret;
	return store->drv->sync_apply(store, account_id, batch, change_r, error_r);
}

/* ---- push subscriptions ---- */

int store_push_add(struct store *store, const struct store_push_sub *sub, const char **error_r)
{
	int ret;
	if ((ret = check_out(store, sub, error_r)) < 0 ||
	    (ret = CHECK_KEY(store, sub->id, "push subscription id", error_r)) < 0 ||
	    (ret = CHECK_KEY(store, sub->account_id, "account id", error_r)) < 0 ||
	    (ret = CHECK_KEY(store, sub->type, "push type", error_r)) < 0 ||
	    (ret = CHECK_KEY(store, sub->endpoint, "push endpoint", error_r)) < 0)
		return ret;
	if (sub->params_len > sizeof(sub->params))
		return store_error(store, HK_ERR_TOO_LONG, error_r, "push params too long");
	return store->drv->push_add(store, sub, error_r);
}

int store_push_list(struct store *store, const char *account_id, struct store_push_sub **subs_r,
		    size_t *count_r, const char **error_r)
{
	int ret;
	if ((ret = ACCOUNT_ID(store, account_id, error_r)) < 0 ||
	    (ret = check_out(store, subs_r, error_r)) < 0 ||
	    (ret = check_out(store, count_r, error_r)) < 0)
		return ret;
	return store->drv->push_list(store, account_id, subs_r, count_r, error_r);
}

int store_push_delete(struct store *store, const char *id, const char **error_r)
{
	int ret;
	if ((ret = check_key(store, id, STORE_ID_MAX, "push subscription id", error_r)) < 0)
		return ret;
	return store->drv->push_delete(store, id, error_r);
}

int store_push_delete_expired(struct store *store, int64_t now_ms, unsigned *count_r,
			      const char **error_r)
{
	int ret;
	if ((ret = check_out(store, count_r, error_r)) < 0)
		return ret;
	*count_r = 0;
	return store->drv->push_delete_expired(store, now_ms, count_r, error_r);
}

/* ---- block rules ---- */

int store_block_add(struct store *store, const struct store_block_rule *rule, int64_t *id_r,
		    const char **error_r)
{
	int ret;
	if ((ret = check_out(store, rule, error_r)) < 0 ||
	    (ret = CHECK_KEY(store, rule->pattern, "block pattern", error_r)) < 0 ||
	    (ret = CHECK_STR(store, rule->note, "block note", error_r)) < 0)
		return ret;
	if (store_block_kind_name(rule->kind) == NULL)
		return store_error(store, HK_ERR_INVAL, error_r, "unknown block rule kind");
	return store->drv->block_add(store, rule, id_r, error_r);
}

int store_block_list(struct store *store, struct store_block_rule **rules_r, size_t *count_r,
		     const char **error_r)
{
	int ret;
	if ((ret = check_out(store, rules_r, error_r)) < 0 ||
	    (ret = check_out(store, count_r, error_r)) < 0)
		return ret;
	return store->drv->block_list(store, rules_r, count_r, error_r);
}

int store_block_remove(struct store *store, int64_t id, const char **error_r)
{
	return store->drv->block_remove(store, id, error_r);
}

/* ---- audit ---- */

int store_audit_append(struct store *store, const struct store_audit *entry, int64_t *id_r,
		       const char **error_r)
{
	int ret;
	if ((ret = check_out(store, entry, error_r)) < 0 ||
	    (ret = check_audit(store, entry, error_r)) < 0)
		return ret;
	return store->drv->audit_append(store, entry, id_r, error_r);
}

int store_audit_list(struct store *store, int64_t since_ms, const char *account_id,
		     unsigned limit, struct store_audit **entries_r, size_t *count_r,
		     const char **error_r)
{
	int ret;
	if ((account_id != NULL && (ret = ACCOUNT_ID(store, account_id, error_r)) < 0) ||
	    (ret = check_limit(store, limit, error_r)) < 0 ||
	    (ret = check_out(store, entries_r, error_r)) < 0 ||
	    (ret = check_out(store, count_r, error_r)) < 0)
		return ret;
	return store->drv->audit_list(store, since_ms, account_id, limit, entries_r, count_r,
				      error_r);
}

/* ---- leases ---- */

static int check_lease(struct store *store, const char *account_id, const char *node,
		       const char **error_r)
{
	int ret;
	if ((ret = ACCOUNT_ID(store, account_id, error_r)) < 0 ||
	    (ret = check_key(store, node, STORE_NODE_MAX, "node", error_r)) < 0)
		return ret;
	return 0;
}

static int check_ttl(struct store *store, int64_t now_ms, int64_t ttl_ms, const char **error_r)
{
	if (ttl_ms <= 0 || now_ms > INT64_MAX - ttl_ms)
		return store_error(store, HK_ERR_INVAL, error_r, "lease ttl out of range");
	return 0;
}

int store_lease_acquire(struct store *store, const char *account_id, const char *node,
			int64_t now_ms, int64_t ttl_ms, const char **error_r)
{
	int ret;
	if ((ret = check_lease(store, account_id, node, error_r)) < 0 ||
	    (ret = check_ttl(store, now_ms, ttl_ms, error_r)) < 0)
		return ret;
	return store->drv->lease_acquire(store, account_id, node, now_ms, ttl_ms, error_r);
}

int store_lease_renew(struct store *store, const char *account_id, const char *node,
		      int64_t now_ms, int64_t ttl_ms, const char **error_r)
{
	int ret;
	if ((ret = check_lease(store, account_id, node, error_r)) < 0 ||
	    (ret = check_ttl(store, now_ms, ttl_ms, error_r)) < 0)
		return ret;
	return store->drv->lease_renew(store, account_id, node, now_ms, ttl_ms, error_r);
}

int store_lease_release(struct store *store, const char *account_id, const char *node,
			const char **error_r)
{
	int ret;
	if ((ret = check_lease(store, account_id, node, error_r)) < 0)
		return ret;
	return store->drv->lease_release(store, account_id, node, error_r);
}

int store_stats(struct store *store, struct store_stats *stats_r, const char **error_r)
{
	int ret;
	if ((ret = check_out(store, stats_r, error_r)) < 0)
		return ret;
	return store->drv->stats(store, stats_r, error_r);
}
