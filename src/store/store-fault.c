/* The fault driver: forwards every call to a wrapped SQLite store and,
 * through the SQLite driver's step hook, counts the SQL statements that
 * reach the database, failing the chosen one. Counting statements rather
 * than calls is what lets a test fail a multi-step operation at each of its
 * steps in turn and check that nothing of it stayed behind. */
#include "store/store-fault.h"

#include "store/store-private.h"

#include <stdlib.h>

struct fault_store {
	struct store store;
	struct store *inner;
	unsigned fail_at; /* 0 = never */
	unsigned steps;
};

static struct fault_store *fs(struct store *store)
{
	return (struct fault_store *)store;
}

static struct store *inner(struct store *store)
{
	return fs(store)->inner;
}

static int fault_step(void *ctx)
{
	struct fault_store *f = ctx;
	if (++f->steps == f->fail_at)
		return HK_ERR_FAULT;
	return 0;
}

int store_fault_set(struct store *store, unsigned fail_at)
{
	if (store == NULL || store->drv != &store_driver_fault)
		return HK_ERR_INVAL;
	fs(store)->fail_at = fail_at;
	fs(store)->steps = 0;
	return 0;
}

unsigned store_fault_steps(const struct store *store)
{
	if (store == NULL || store->drv != &store_driver_fault)
		return 0;
	return ((const struct fault_store *)store)->steps;
}

static void fault_close(struct store *store)
{
	struct fault_store *f = fs(store);
	store_close(&f->inner);
	free(f);
}

static int fault_open(const char *params, struct store **store_r, const char **error_r)
{
	struct store *wrapped = NULL;
	int ret = store_open(&store_driver_sqlite, params, &wrapped, error_r);
	if (ret < 0)
		return ret;
	struct fault_store *f = store_xcalloc(1, sizeof(*f));
	f->store.drv = &store_driver_fault;
	f->inner = wrapped;
	wrapped->drv->set_step_hook(wrapped, fault_step, f);
	*store_r = &f->store;
	return 0;
}

/* Faults come from the wrapped store, whose error text is the one to
 * return: every forwarder passes error_r straight through. */

static int fault_account_create(struct store *store, const struct store_account *account,
				const struct store_device *device,
				const struct store_envelope *envelope,
				const struct store_audit *audit, const char **error_r)
{
	return store_account_create(inner(store), account, device, envelope, audit, error_r);
}

static int fault_account_get(struct store *store, const char *id,
			     struct store_account *account_r, const char **error_r)
{
	return store_account_get(inner(store), id, account_r, error_r);
}

static int fault_account_find(struct store *store, const char *server_url, const char *username,
			      const char *eas_device_id, struct store_account *account_r,
			      const char **error_r)
{
	return store_account_find(inner(store), server_url, username, eas_device_id, account_r,
				  error_r);
}

static int fault_account_list(struct store *store, const char *after_id, unsigned limit,
			      struct store_account_entry **entries_r, size_t *count_r,
			      const char **error_r)
{
	return store_account_list(inner(store), after_id, limit, entries_r, count_r, error_r);
}

static int fault_account_set_state(struct store *store, const char *id,
				   enum store_account_state state, int64_t now_ms,
				   const char **error_r)
{
	return store_account_set_state(inner(store), id, state, now_ms, error_r);
}

static int fault_account_delete(struct store *store, const char *id,
				const struct store_audit *audit, const char **error_r)
{
	return store_account_delete(inner(store), id, audit, error_r);
}

static int fault_account_wipe(struct store *store, const char *id, int64_t now_ms,
			      const struct store_audit *audit, const char **error_r)
{
	return store_account_wipe(inner(store), id, now_ms, audit, error_r);
}

static int fault_account_purge_inactive(struct store *store, int64_t before_ms, int64_t now_ms,
					unsigned *count_r, const char **error_r)
{
	return store_account_purge_inactive(inner(store), before_ms, now_ms, count_r, error_r);
}

static int fault_device_get(struct store *store, const char *id, struct store_device *device_r,
			    const char **error_r)
{
	return store_device_get(inner(store), id, device_r, error_r);
}

static int fault_device_get_by_token(struct store *store,
				     const uint8_t token_hash[STORE_TOKEN_HASH_LEN],
				     struct store_device *device_r, const char **error_r)
{
	return store_device_get_by_token(inner(store), token_hash, device_r, error_r);
}

static int fault_device_list(struct store *store, const char *account_id,
			     struct store_device **devices_r, size_t *count_r,
			     const char **error_r)
{
	return store_device_list(inner(store), account_id, devices_r, count_r, error_r);
}

static int fault_device_touch(struct store *store, const char *id, int64_t now_ms,
			      const char **error_r)
{
	return store_device_touch(inner(store), id, now_ms, error_r);
}

static int fault_device_unlocked(struct store *store, const char *id, int64_t now_ms,
				 const struct store_audit *audit, const char **error_r)
{
	return store_device_unlocked(inner(store), id, now_ms, audit, error_r);
}

static int fault_device_set_policy_key(struct store *store, const char *id,
				       const char *policy_key, const char **error_r)
{
	return store_device_set_policy_key(inner(store), id, policy_key, error_r);
}

static int fault_envelope_get(struct store *store, const char *device_id,
			      struct store_envelope **envelope_r, const char **error_r)
{
	return store_envelope_get(inner(store), device_id, envelope_r, error_r);
}

static int fault_envelope_replace(struct store *store, const char *device_id,
				  const struct store_envelope *envelope, const char **error_r)
{
	return store_envelope_replace(inner(store), device_id, envelope, error_r);
}

static int fault_collection_put(struct store *store, const char *account_id,
				const struct store_collection *collection, const char **error_r)
{
	return store_collection_put(inner(store), account_id, collection, error_r);
}

static int fault_collection_get(struct store *store, const char *account_id,
				const char *collection_id,
				struct store_collection *collection_r, const char **error_r)
{
	return store_collection_get(inner(store), account_id, collection_id, collection_r,
				    error_r);
}

static int fault_collection_list(struct store *store, const char *account_id,
				 struct store_collection **collections_r, size_t *count_r,
				 const char **error_r)
{
	return store_collection_list(inner(store), account_id, collections_r, count_r, error_r);
}

static int fault_collection_delete(struct store *store, const char *account_id,
				   const char *collection_id, const char **error_r)
{
	return store_collection_delete(inner(store), account_id, collection_id, error_r);
}

static int fault_folder_sync_key_set(struct store *store, const char *account_id,
				     const char *sync_key, const char **error_r)
{
	return store_folder_sync_key_set(inner(store), account_id, sync_key, error_r);
}

static int fault_cache_clear(struct store *store, const char *account_id, const char **error_r)
{
	return store_cache_clear(inner(store), account_id, error_r);
}

static int fault_item_put(struct store *store, const char *account_id,
			  const struct store_item *items, size_t count, int64_t *change_r,
			  const char **error_r)
{
	return store_item_put(inner(store), account_id, items, count, change_r, error_r);
}

static int fault_item_get(struct store *store, const char *account_id,
			  const char *collection_id, const char *item_id,
			  struct store_item **item_r, const char **error_r)
{
	return store_item_get(inner(store), account_id, collection_id, item_id, item_r, error_r);
}

static int fault_item_delete(struct store *store, const char *account_id,
			     const char *collection_id, const char *item_id, int64_t *change_r,
			     const char **error_r)
{
	return store_item_delete(inner(store), account_id, collection_id, item_id, change_r,
				 error_r);
}

static int fault_item_list(struct store *store, const char *account_id,
			   const char *collection_id, struct store_id_list **ids_r,
			   const char **error_r)
{
	return store_item_list(inner(store), account_id, collection_id, ids_r, error_r);
}

static int fault_sync_apply(struct store *store, const char *account_id,
			    const struct store_sync_batch *batch, int64_t *change_r,
			    const char **error_r)
{
	return store_sync_apply(inner(store), account_id, batch, change_r, error_r);
}

static int fault_push_add(struct store *store, const struct store_push_sub *sub,
			  const char **error_r)
{
	return store_push_add(inner(store), sub, error_r);
}

static int fault_push_list(struct store *store, const char *account_id,
			   struct store_push_sub **subs_r, size_t *count_r, const char **error_r)
{
	return store_push_list(inner(store), account_id, subs_r, count_r, error_r);
}

static int fault_push_delete(struct store *store, const char *id, const char **error_r)
{
	return store_push_delete(inner(store), id, error_r);
}

static int fault_push_delete_expired(struct store *store, int64_t now_ms, unsigned *count_r,
				     const char **error_r)
{
	return store_push_delete_expired(inner(store), now_ms, count_r, error_r);
}

static int fault_block_add(struct store *store, const struct store_block_rule *rule,
			   int64_t *id_r, const char **error_r)
{
	return store_block_add(inner(store), rule, id_r, error_r);
}

static int fault_block_list(struct store *store, struct store_block_rule **rules_r,
			    size_t *count_r, const char **error_r)
{
	return store_block_list(inner(store), rules_r, count_r, error_r);
}

static int fault_block_remove(struct store *store, int64_t id, const char **error_r)
{
	return store_block_remove(inner(store), id, error_r);
}

static int fault_audit_append(struct store *store, const struct store_audit *entry,
			      int64_t *id_r, const char **error_r)
{
	return store_audit_append(inner(store), entry, id_r, error_r);
}

static int fault_audit_list(struct store *store, int64_t since_ms, const char *account_id,
			    unsigned limit, struct store_audit **entries_r, size_t *count_r,
			    const char **error_r)
{
	return store_audit_list(inner(store), since_ms, account_id, limit, entries_r, count_r,
				error_r);
}

static int fault_lease_acquire(struct store *store, const char *account_id, const char *node,
			       int64_t now_ms, int64_t ttl_ms, const char **error_r)
{
	return store_lease_acquire(inner(store), account_id, node, now_ms, ttl_ms, error_r);
}

static int fault_lease_renew(struct store *store, const char *account_id, const char *node,
			     int64_t now_ms, int64_t ttl_ms, const char **error_r)
{
	return store_lease_renew(inner(store), account_id, node, now_ms, ttl_ms, error_r);
}

static int fault_lease_release(struct store *store, const char *account_id, const char *node,
			       const char **error_r)
{
	return store_lease_release(inner(store), account_id, node, error_r);
}

static int fault_stats(struct store *store, struct store_stats *stats_r, const char **error_r)
{
	return store_stats(inner(store), stats_r, error_r);
}

const struct store_driver store_driver_fault = {
	.name = "fault",
	.open = fault_open,
	.close = fault_close,
	.set_step_hook = NULL,
	.account_create = fault_account_create,
	.account_get = fault_account_get,
	.account_find = fault_account_find,
	.account_list = fault_account_list,
	.account_set_state = fault_account_set_state,
	.account_delete = fault_account_delete,
	.account_wipe = fault_account_wipe,
	.account_purge_inactive = fault_account_purge_inactive,
	.device_get = fault_device_get,
	.device_get_by_token = fault_device_get_by_token,
	.device_list = fault_device_list,
	.device_touch = fault_device_touch,
	.device_unlocked = fault_device_unlocked,
	.device_set_policy_key = fault_device_set_policy_key,
	.envelope_get = fault_envelope_get,
	.envelope_replace = fault_envelope_replace,
	.collection_put = fault_collection_put,
	.collection_get = fault_collection_get,
	.collection_list = fault_collection_list,
	.collection_delete = fault_collection_delete,
	.folder_sync_key_set = fault_folder_sync_key_set,
	.cache_clear = fault_cache_clear,
	.item_put = fault_item_put,
	.item_get = fault_item_get,
	.item_delete = fault_item_delete,
	.item_list = fault_item_list,
	.sync_apply = fault_sync_apply,
	.push_add = fault_push_add,
	.push_list = fault_push_list,
	.push_delete = fault_push_delete,
	.push_delete_expired = fault_push_delete_expired,
	.block_add = fault_block_add,
	.block_list = fault_block_list,
	.block_remove = fault_block_remove,
	.audit_append = fault_audit_append,
	.audit_list = fault_audit_list,
	.lease_acquire = fault_lease_acquire,
	.lease_renew = fault_lease_renew,
	.lease_release = fault_lease_release,
	.stats = fault_stats,
};
