/* The per-account sync engine: see session.h for the contract.
 *
 * Shape: one request in flight at most. send_next() looks at what is owed
 * (provisioning, then the hierarchy, then collections marked pending, else
 * the Ping) and sends it; on_response() dispatches the answer by state;
 * every handler ends by calling next() (send what is owed now), wait_retry()
 * (back off, then next()), or finish() (a terminal event). A handler that
 * reported an event returns at once when emit() says the owner stopped the
 * session from its callback. */
#include "sync/session.h"

#include "crypto/vault.h"
#include "eas/provision.h"
#include "lib/log.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Answers in a row that only asked us to resend (Sync 13, Ping 3/5/6, a
 * redirect, a provisioning round) before we stop trusting them and back off:
 * a server that loops must not make us loop at full speed. */
#define SYNC_MAX_SPINS 6
/* Garbled answers or store failures in a row before SYNC_EV_ERROR. */
#define SYNC_MAX_FAILURES 8
/* Provisioning rounds without progress in between before SYNC_EV_ERROR. */
#define SYNC_MAX_PROVISIONS 3
/* 451 redirects without progress in between. */
#define SYNC_MAX_REDIRECTS 3
/* Characters of the plain-text preview asked for with every email. */
#define SYNC_PREVIEW_CHARS 255

/* One collection as the session sees it. */
struct sync_coll {
	char id[STORE_SERVER_ID_MAX];
	char sync_key[STORE_SYNC_KEY_MAX];
	const char *class_name; /* "Email", ...: static; NULL: not synced */
	int32_t type;
	bool pending;    /* owes a Sync */
	bool in_request; /* part of the Sync in flight */
	bool sent_zero;  /* ... and was sent with SyncKey "0" */
	bool pinged;     /* in the last Ping */
	bool disabled;   /* refused by the server: left alone this session */
};

enum wait_reason { WAIT_BACKOFF, WAIT_IDLE };

struct sync_session {
	struct sync_env env;
	const struct secret *dek; /* borrowed */
	char account_id[STORE_ID_MAX];
	char store_device_id[STORE_ID_MAX]; /* "" when the PolicyKey is not kept */
	sync_event_cb *cb;
	void *ctx;
	bool *gone; /* while the callback runs: set when it stops the session */

	struct eas_client *client;
	struct eas_call *call; /* the command in flight, except a Ping */
	struct event *timer;
	enum sync_state state;
	enum wait_reason wait_reason;

	/* settings */
	unsigned heartbeat_s;
	uint32_t window_size;
	unsigned batch_max;
	unsigned classes;
	struct eas_body_pref mail_prefs[2];
	struct eas_body_pref other_prefs[1];
	struct eas_sync_options mail_opts, calendar_opts, other_opts;

	/* work owed */
	bool need_provision;
	bool need_foldersync;
	char folder_key[STORE_SYNC_KEY_MAX];
	struct sync_coll *colls;
	size_t n_colls;
	unsigned ping_max; /* Ping Status 6's limit; 0: none */

	/* loop guards */
	unsigned spins, failures, provisions, redirects;
	unsigned empty_rounds; /* Ping said "changes", Sync found none */
	struct sync_backoff backoff;

	int64_t change_counter; /* the last one reported */
	struct sync_stats stats;
};

static const char *const state_names[] = {
    [SYNC_STATE_PROVISION] = "provision",
    [SYNC_STATE_PROVISION_ACK] = "provision-ack",
    [SYNC_STATE_FOLDERSYNC] = "foldersync",
    [SYNC_STATE_SYNC] = "sync",
    [SYNC_STATE_PING] = "ping",
    [SYNC_STATE_WAIT] = "wait",
    [SYNC_STATE_DONE] = "done",
};

const char *sync_state_name(enum sync_state state)
{
	if ((unsigned)state >= sizeof(state_names) / sizeof(state_names[0]) ||
	    state_names[state] == NULL)
		return "unknown";
	return state_names[state];
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
	if (p == NULL)
		abort();
	return p;
}

/* ---- back-off ---- */

void sync_backoff_init(struct sync_backoff *b, int64_t min_ms, int64_t max_ms)
{
	b->min_ms = min_ms > 0 ? min_ms : 1;
	b->max_ms = max_ms >= b->min_ms ? max_ms : b->min_ms;
	b->failures = 0;
	b->until_ms = 0;
}

int64_t sync_backoff_next(struct sync_backoff *b, const struct hk_clock *clock, long retry_after_s,
                          uint64_t rnd)
{
	/* min * 2^failures, stopping at max before it can overflow */
	int64_t ceiling = b->min_ms;
	for (unsigned i = 0; i < b->failures && ceiling < b->max_ms; i++)
		ceiling = ceiling > b->max_ms / 2 ? b->max_ms : ceiling * 2;
	if (ceiling > b->max_ms)
		ceiling = b->max_ms;
	int64_t delay = (int64_t)(rnd % ((uint64_t)ceiling + 1));
	if (retry_after_s > 0 && delay < (int64_t)retry_after_s * 1000)
		delay = (int64_t)retry_after_s * 1000;
	if (b->failures < 64)
		b->failures++;
	b->until_ms = hk_clock_mono(clock) + delay;
	return delay;
}

void sync_backoff_reset(struct sync_backoff *b)
{
	b->failures = 0;
	b->until_ms = 0;
}

/* ---- ids ---- */

int sync_vault_item_id(const char *collection_id, const char *server_id, char *out, size_t out_size)
{
	if (collection_id == NULL || server_id == NULL || *collection_id == '\0' ||
	    *server_id == '\0')
		return HK_ERR_INVAL;
	size_t n = 0;
	for (const char *p = collection_id; *p != '\0'; p++) {
		const char *esc = *p == '%' ? "%25" : *p == '/' ? "%2F" : NULL;
		size_t len = esc != NULL ? 3 : 1;
		if (n + len >= out_size)
			return HK_ERR_TOO_LONG;
		memcpy(out + n, esc != NULL ? esc : p, len);
		n += len;
	}
	size_t slen = strlen(server_id);
	if (n + 1 + slen >= out_size)
		return HK_ERR_TOO_LONG;
	out[n++] = '/';
	memcpy(out + n, server_id, slen + 1);
	return 0;
}

/* ---- events ---- */

/* Delivers ev; false when the owner stopped the session from the callback
 * (the session is freed: touch nothing). */
static bool emit(struct sync_session *s, struct sync_event *ev)
{
	bool gone = false;
	snprintf(ev->account_id, sizeof(ev->account_id), "%s", s->account_id);
	s->gone = &gone;
	s->cb(ev, s->ctx);
	if (gone)
		return false;
	s->gone = NULL;
	return true;
}

/* Reports a cache change if the counter moved past the last one reported. */
static bool report_change(struct sync_session *s, int64_t counter)
{
	if (counter <= s->change_counter)
		return true;
	s->change_counter = counter;
	struct sync_event ev = {.kind = SYNC_EV_CHANGED, .change_counter = counter};
	return emit(s, &ev);
}

/* Ends the session's work for good and reports why. Nothing runs after
 * it; the caller returns at once. */
static void finish(struct sync_session *s, enum sync_event_kind kind, const struct eas_response *r,
                   enum eas_action action, const char *error)
{
	struct sync_event ev = {
	    .kind = kind,
	    .change_counter = s->change_counter,
	    .action = action,
	};
	if (r != NULL) {
		snprintf(ev.command, sizeof(ev.command), "%s", r->command);
		ev.http_status = r->http_status;
		ev.status = r->status;
	}
	snprintf(ev.error, sizeof(ev.error), "%s", error != NULL ? error : eas_action_name(action));
	log_notice("sync %s: %s: %s", s->account_id, eas_action_name(action), ev.error);
	eas_call_cancel(&s->call);
	eas_client_free(&s->client); /* cancels a Ping, wipes the Basic value */
	evtimer_del(s->timer);
	s->stats.wait_until_ms = 0;
	s->state = SYNC_STATE_DONE;
	emit(s, &ev);
}

static void fail(struct sync_session *s, const struct eas_response *r, enum eas_action action,
                 const char *error)
{
	finish(s, SYNC_EV_ERROR, r, action, error);
}

/* ---- collections ---- */

static const char *class_of(const struct sync_session *s, int type)
{
	const char *c = eas_folder_class(type);
	static const struct {
		const char *name;
		unsigned flag;
	} classes[] = {
	    {"Email", SYNC_CLASS_EMAIL},       {"Calendar", SYNC_CLASS_CALENDAR},
	    {"Contacts", SYNC_CLASS_CONTACTS}, {"Tasks", SYNC_CLASS_TASKS},
	    {"Notes", SYNC_CLASS_NOTES},
	};
	for (size_t i = 0; c != NULL && i < sizeof(classes) / sizeof(classes[0]); i++)
		if (strcmp(c, classes[i].name) == 0)
			return (s->classes & classes[i].flag) != 0 ? classes[i].name : NULL;
	return NULL;
}

static struct sync_coll *find_coll(struct sync_session *s, const char *id)
{
	for (size_t i = 0; i < s->n_colls; i++)
		if (strcmp(s->colls[i].id, id) == 0)
			return &s->colls[i];
	return NULL;
}

/* Reads the account's collections from the store, keeping what the
 * session knew of those it had (pending, disabled); a new one owes a Sync,
 * and with all_pending every one does. */
static int load_collections(struct sync_session *s, bool all_pending, const char **error_r)
{
	struct store_collection *list = NULL;
	size_t n = 0;
	int ret = store_collection_list(s->env.store, s->account_id, &list, &n, error_r);
	if (ret < 0)
		return ret;
	struct sync_coll *colls = xcalloc(n, sizeof(*colls));
	for (size_t i = 0; i < n; i++) {
		struct sync_coll *c = &colls[i];
		memcpy(c->id, list[i].collection_id, sizeof(c->id));
		memcpy(c->sync_key, list[i].sync_key, sizeof(c->sync_key));
		if (c->sync_key[0] == '\0')
			snprintf(c->sync_key, sizeof(c->sync_key), "0");
		c->type = list[i].type;
		c->class_name = class_of(s, c->type);
		const struct sync_coll *old = find_coll(s, c->id);
		if (old != NULL && !all_pending) {
			c->pending = old->pending;
			c->disabled = old->disabled;
		} else {
			c->pending = c->class_name != NULL;
		}
	}
	store_list_free(&list);
	free(s->colls);
	s->colls = colls;
	s->n_colls = n;
	return 0;
}

/* ---- sending ---- */

static void on_response(struct eas_response *r, void *arg);
static void next(struct sync_session *s);
static void wait_timer(struct sync_session *s, int64_t delay_ms, enum wait_reason why);

static int send_command(struct sync_session *s, const char *cmd, struct eas_node *req,
                        enum sync_state state)
{
	int ret = eas_client_command(s->client, cmd, req, 0, on_response, s, &s->call);
	eas_node_free(&req);
	if (ret < 0)
		return ret;
	s->state = state;
	s->stats.requests++;
	return 0;
}

static int send_provision(struct sync_session *s, enum sync_state step, const char *temp_key)
{
	struct eas_node *req = NULL;
	const char *err = NULL;
	int ret;
	if (step == SYNC_STATE_PROVISION) {
		/* the policy request goes without a key */
		if ((ret = eas_client_set_policy_key(s->client, "")) < 0 ||
		    (ret = eas_provision_build(&eas_relay_device_info, &req, &err)) < 0)
			return ret;
	} else if ((ret = eas_provision_build_ack(temp_key, EAS_POLICY_ACK_OK, &req, &err)) < 0) {
		log_err("sync %s: Provision: %s", s->account_id, err);
		return ret;
	}
	s->stats.provisions++;
	return send_command(s, "Provision", req, step);
}

static int send_foldersync(struct sync_session *s)
{
	struct eas_node *req = NULL;
	const char *err = NULL;
	int ret = eas_foldersync_build(s->folder_key, &req, &err);
	if (ret < 0) {
		log_err("sync %s: FolderSync: %s", s->account_id, err);
		return ret;
	}
	s->stats.foldersyncs++;
	return send_command(s, "FolderSync", req, SYNC_STATE_FOLDERSYNC);
}

static const struct eas_sync_options *options_for(const struct sync_session *s,
                                                  const char *class_name)
{
	if (strcmp(class_name, "Email") == 0)
		return &s->mail_opts;
	if (strcmp(class_name, "Calendar") == 0)
		return &s->calendar_opts;
	return &s->other_opts;
}

static int send_sync(struct sync_session *s)
{
	struct eas_sync_collection_req *reqs = xcalloc(s->batch_max, sizeof(*reqs));
	size_t n = 0;
	for (size_t i = 0; i < s->n_colls; i++)
		s->colls[i].in_request = s->colls[i].sent_zero = false;
	for (size_t i = 0; i < s->n_colls && n < s->batch_max; i++) {
		struct sync_coll *c = &s->colls[i];
		if (!c->pending || c->disabled || c->class_name == NULL)
			continue;
		c->in_request = true;
		c->sent_zero = strcmp(c->sync_key, "0") == 0;
		s->stats.syncs_from_zero += c->sent_zero;
		reqs[n++] = (struct eas_sync_collection_req){
		    .sync_key = c->sync_key,
		    .collection_id = c->id,
		    .window_size = s->window_size,
		    .options = options_for(s, c->class_name),
		    .n_options = 1,
		};
	}
	struct eas_sync_req req = {.collections = reqs, .n_collections = n};
	struct eas_node *root = NULL;
	const char *err = NULL;
	int ret = eas_sync_build(&req, &root, &err);
	free(reqs);
	if (ret < 0) {
		log_err("sync %s: Sync: %s", s->account_id, err);
		return ret;
	}
	s->stats.syncs++;
	return send_command(s, "Sync", root, SYNC_STATE_SYNC);
}

static bool pingable(const struct sync_coll *c)
{
	return c->class_name != NULL && !c->disabled && strcmp(c->sync_key, "0") != 0;
}

/* Pings every synced collection, the Inbox first so that a server limit
 * (Ping Status 6) keeps it; those left out are polled at each heartbeat. */
static int send_ping(struct sync_session *s)
{
	size_t n = 0, max = s->n_colls;
	if (s->ping_max > 0 && s->ping_max < max)
		max = s->ping_max;
	if (max > EAS_PING_MAX_FOLDERS)
		max = EAS_PING_MAX_FOLDERS;
	struct eas_ping_folder *folders = xcalloc(max, sizeof(*folders));
	for (int inbox = 1; inbox >= 0; inbox--)
		for (size_t i = 0; i < s->n_colls; i++) {
			struct sync_coll *c = &s->colls[i];
			if (inbox)
				c->pinged = false;
			if (n >= max || !pingable(c) || c->pinged ||
			    (c->type == EAS_FOLDER_INBOX) != (inbox == 1))
				continue;
			c->pinged = true;
			folders[n++] = (struct eas_ping_folder){c->id, c->class_name};
		}
	if (n == 0) {
		/* nothing to watch: look at the hierarchy again after a heartbeat */
		free(folders);
		log_info("sync %s: no folder to ping", s->account_id);
		wait_timer(s, (int64_t)s->heartbeat_s * 1000, WAIT_IDLE);
		return 0;
	}
	struct eas_node *req = NULL;
	const char *err = NULL;
	int ret = eas_ping_build(s->heartbeat_s, folders, n, &req, &err);
	free(folders);
	if (ret < 0) {
		log_err("sync %s: Ping: %s", s->account_id, err);
		return ret;
	}
	ret = eas_client_ping(s->client, req, s->heartbeat_s, on_response, s);
	eas_node_free(&req);
	if (ret < 0)
		return ret;
	s->state = SYNC_STATE_PING;
	s->stats.requests++;
	s->stats.pings++;
	s->stats.ping_folders = (unsigned)n;
	s->stats.heartbeat_s = s->heartbeat_s;
	return 0;
}

/* Sends what is owed now. */
static int send_next(struct sync_session *s)
{
	if (s->need_provision)
		return send_provision(s, SYNC_STATE_PROVISION, NULL);
	if (s->need_foldersync)
		return send_foldersync(s);
	for (size_t i = 0; i < s->n_colls; i++)
		if (s->colls[i].pending && !s->colls[i].disabled && s->colls[i].class_name != NULL)
			return send_sync(s);
	return send_ping(s);
}

static void next(struct sync_session *s)
{
	int ret = send_next(s);
	if (ret < 0) {
		/* our own request could not be built or sent: a bug, not the
		 * server's doing; do not loop on it */
		char msg[128];
		snprintf(msg, sizeof(msg), "cannot send the next request: %s", hk_strerror(ret));
		finish(s, SYNC_EV_ERROR, NULL, EAS_ACT_BAD_REQUEST, msg);
	}
}

/* ---- waiting ---- */

static void wait_timer(struct sync_session *s, int64_t delay_ms, enum wait_reason why)
{
	struct timeval tv = {.tv_sec = (time_t)(delay_ms / 1000),
	                     .tv_usec = (suseconds_t)(delay_ms % 1000) * 1000};
	s->state = SYNC_STATE_WAIT;
	s->wait_reason = why;
	s->stats.wait_until_ms = hk_clock_mono(s->env.clock) + delay_ms;
	evtimer_add(s->timer, &tv);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct sync_session *s = arg;
	(void)fd;
	(void)what;
	s->stats.wait_until_ms = 0;
	if (s->state != SYNC_STATE_WAIT) {
		log_err("sync %s: timer in state %s", s->account_id, sync_state_name(s->state));
		return;
	}
	if (s->wait_reason == WAIT_IDLE)
		s->need_foldersync = true;
	next(s);
}

/* Backs off after a transient failure, then sends what is owed. */
static void wait_retry(struct sync_session *s, long retry_after_s, const char *why)
{
	uint64_t rnd;
	secmem_random(&rnd, sizeof(rnd));
	int64_t delay = sync_backoff_next(&s->backoff, s->env.clock, retry_after_s, rnd);
	s->stats.backoffs++;
	log_info("sync %s: %s; retrying in %lld ms", s->account_id, why, (long long)delay);
	wait_timer(s, delay, WAIT_BACKOFF);
}

/* An answer that asks us to go again at once: fine a few times in a row. */
static void spin(struct sync_session *s, const char *why)
{
	if (++s->spins > SYNC_MAX_SPINS) {
		s->spins = 0;
		wait_retry(s, 0, why);
		return;
	}
	next(s);
}

/* A garbled answer or a store failure: back off, and give up when it
 * does not go away. action: EAS_ACT_BAD_RESPONSE for the server's doing,
 * EAS_ACT_OK when the server was fine and our side failed. */
static void failure(struct sync_session *s, const struct eas_response *r, enum eas_action action,
                    const char *why)
{
	if (++s->failures > SYNC_MAX_FAILURES) {
		fail(s, r, action, why);
		return;
	}
	wait_retry(s, 0, why);
}

/* The server did what we asked: the loop guards start over. */
static void progress(struct sync_session *s)
{
	s->spins = s->failures = s->provisions = s->redirects = 0;
	sync_backoff_reset(&s->backoff);
}

/* ---- acting on an answer ---- */

/* Restarts one collection from SyncKey "0": its items go with its key, in
 * one transaction. */
static int reset_collection(struct sync_session *s, struct sync_coll *c, int64_t *change_r,
                            const char **error_r)
{
	struct store_sync_batch b = {.collection_id = c->id, .sync_key = "0", .clear = true};
	int ret = store_sync_apply(s->env.store, s->account_id, &b, change_r, error_r);
	if (ret < 0)
		return ret;
	log_notice("sync %s: collection %s restarts from SyncKey 0", s->account_id, c->id);
	snprintf(c->sync_key, sizeof(c->sync_key), "0");
	c->pending = true;
	return 0;
}

/* Restarts the whole cache from FolderSync "0". */
static int restart_hierarchy(struct sync_session *s, const char **error_r)
{
	int ret = store_cache_clear(s->env.store, s->account_id, error_r);
	if (ret < 0)
		return ret;
	log_notice("sync %s: folder hierarchy restarts from SyncKey 0", s->account_id);
	snprintf(s->folder_key, sizeof(s->folder_key), "0");
	s->need_foldersync = true;
	free(s->colls);
	s->colls = NULL;
	s->n_colls = 0;
	return 0;
}

/* Acts on what a command's answer (or its Status) asks for, when the
 * command's own handler has nothing specific to do about it. */
static void act(struct sync_session *s, const struct eas_response *r, enum eas_action action,
                const char *why)
{
	const char *err = NULL;
	switch (action) {
	case EAS_ACT_OK: next(s); return;
	case EAS_ACT_AUTH: finish(s, SYNC_EV_AUTH_FAILED, r, action, why); return;
	case EAS_ACT_BLOCKED: finish(s, SYNC_EV_BLOCKED, r, action, why); return;
	case EAS_ACT_WIPE: finish(s, SYNC_EV_WIPE_REQUESTED, r, action, why); return;
	case EAS_ACT_PROVISION:
		if (++s->provisions > SYNC_MAX_PROVISIONS) {
			fail(s, r, action, "the server keeps asking for provisioning");
			return;
		}
		s->need_provision = true;
		next(s);
		return;
	case EAS_ACT_REDIRECT:
		if (r == NULL || r->redirect_url == NULL || ++s->redirects > SYNC_MAX_REDIRECTS ||
		    eas_client_set_url(s->client, r->redirect_url) < 0) {
			fail(s, r, action, "unusable or endless 451 redirects");
			return;
		}
		log_notice("sync %s: redirected to %s", s->account_id, r->redirect_url);
		next(s);
		return;
	case EAS_ACT_RETRY_LATER:
	case EAS_ACT_UNREACHABLE: wait_retry(s, r != NULL ? r->retry_after_s : 0, why); return;
	case EAS_ACT_RESYNC:
		/* sync state lost on the server (132-136, or the command's own) */
		if (s->state == SYNC_STATE_FOLDERSYNC) {
			if (restart_hierarchy(s, &err) < 0) {
				failure(s, r, EAS_ACT_OK, err);
				return;
			}
			spin(s, "the hierarchy keeps restarting");
			return;
		}
		if (s->state == SYNC_STATE_SYNC) {
			int64_t change = 0;
			for (size_t i = 0; i < s->n_colls; i++) {
				if (s->colls[i].in_request &&
				    reset_collection(s, &s->colls[i], &change, &err) < 0) {
					failure(s, r, EAS_ACT_OK, err);
					return;
				}
			}
			if (!report_change(s, change))
				return;
			spin(s, "collections keep restarting");
			return;
		}
		s->need_foldersync = true;
		spin(s, why);
		return;
	case EAS_ACT_FOLDER_SYNC:
		s->need_foldersync = true;
		spin(s, why);
		return;
	case EAS_ACT_BAD_RESPONSE:
	case EAS_ACT_NOT_FOUND:
	case EAS_ACT_QUOTA:
	case EAS_ACT_REJECTED: failure(s, r, action, why); return;
	case EAS_ACT_BAD_REQUEST:
	case EAS_ACT_UNSUPPORTED:
	default: fail(s, r, action, why); return;
	}
}

/* ---- Provision ---- */

static void on_provision(struct sync_session *s, struct eas_response *r)
{
	struct eas_provision_result pr;
	const char *err = NULL;
	if (r->root == NULL || eas_provision_parse(r->root, &pr, &err) < 0) {
		failure(s, r, EAS_ACT_BAD_RESPONSE, err != NULL ? err : "empty Provision response");
		return;
	}
	enum eas_provision_next n = eas_provision_next(
		&pr, s->state == SYNC_STATE_PROVISION ? EAS_PROVISION_REQUEST : EAS_PROVISION_ACK);
	switch (n) {
	case EAS_PROVISION_NEXT_WIPE:
		finish(s, SYNC_EV_WIPE_REQUESTED, r, EAS_ACT_WIPE,
		       "the server requested a remote wipe");
		return;
	case EAS_PROVISION_NEXT_RESTART:
		/* a refused acknowledgement: from the policy request again */
		act(s, r, EAS_ACT_PROVISION, "the server refused the policy acknowledgement");
		return;
	case EAS_PROVISION_NEXT_REFUSED:
		act(s, r, pr.action, "Provision refused");
		return;
	case EAS_PROVISION_NEXT_ACK:
	case EAS_PROVISION_NEXT_DONE:
		break;
	}
	if (pr.policy_key[0] != '\0' && eas_client_set_policy_key(s->client, pr.policy_key) < 0) {
		failure(s, r, EAS_ACT_BAD_RESPONSE, "unusable PolicyKey");
		return;
	}
	if (n == EAS_PROVISION_NEXT_ACK) {
		/* the first key is temporary: acknowledge it for the final one */
		if (send_provision(s, SYNC_STATE_PROVISION_ACK, pr.policy_key) < 0)
			fail(s, r, EAS_ACT_BAD_REQUEST, "cannot send the policy acknowledgement");
		return;
	}
	/* the final key, or no policy for this client (the policy request's
	 * answer: "" forgets an old key), kept for the next session; an
	 * acknowledgement answered without a key leaves the kept one. A key
	 * not kept costs a provisioning round next time, nothing more. */
	if (s->store_device_id[0] != '\0' &&
	    (pr.policy_key[0] != '\0' || s->state == SYNC_STATE_PROVISION) &&
	    store_device_set_policy_key(s->env.store, s->store_device_id, pr.policy_key, &err) < 0)
		log_notice("sync %s: PolicyKey not kept: %s", s->account_id, err);
	s->need_provision = false;
	next(s);
}

/* ---- FolderSync ---- */

/* Copies src into a fixed field, cutting at a UTF-8 character boundary. */
static void copy_text(char *dst, size_t size, const char *src)
{
	size_t n = src != NULL ? strlen(src) : 0;
	if (n >= size) {
		n = size - 1;
		while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--;
	}
	if (n > 0)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

static int apply_folder_change(struct sync_session *s, const struct eas_folder_change *fc,
                               const char **error_r)
{
	struct store_collection c;
	int ret;
	if (strlen(fc->server_id) >= sizeof(c.collection_id) ||
	    (fc->parent_id != NULL && strlen(fc->parent_id) >= sizeof(c.parent_id))) {
		log_warn("sync %s: folder id too long, skipped", s->account_id);
		return 0;
	}
	if (fc->kind == EAS_CHANGE_DELETE) {
		ret = store_collection_delete(s->env.store, s->account_id, fc->server_id, error_r);
		return ret == HK_ERR_NOT_FOUND ? 0 : ret;
	}
	/* An Add of a folder we have (a FolderSync replayed after a crash
	 * between its folders and its key) or an Update keeps the sync key. */
	ret = store_collection_get(s->env.store, s->account_id, fc->server_id, &c, error_r);
	if (ret == HK_ERR_NOT_FOUND) {
		memset(&c, 0, sizeof(c));
		snprintf(c.collection_id, sizeof(c.collection_id), "%s", fc->server_id);
		snprintf(c.sync_key, sizeof(c.sync_key), "0");
	} else if (ret < 0) {
		return ret;
	}
	snprintf(c.parent_id, sizeof(c.parent_id), "%s",
	         fc->parent_id != NULL ? fc->parent_id : "");
	copy_text(c.display_name, sizeof(c.display_name), fc->display_name);
	c.type = fc->type;
	return store_collection_put(s->env.store, s->account_id, &c, error_r);
}

/* The folders first, the key last: a crash in between replays the same
 * changes, which apply_folder_change() takes twice without harm. */
static int apply_folders(struct sync_session *s, const struct eas_foldersync_result *fr,
                         const char **error_r)
{
	int ret;
	if (fr->sync_key == NULL || fr->sync_key[0] == '\0' ||
	    strlen(fr->sync_key) >= sizeof(s->folder_key)) {
		*error_r = "FolderSync without a usable SyncKey";
		return HK_ERR_INVAL;
	}
	for (size_t i = 0; i < fr->n_changes; i++)
		if ((ret = apply_folder_change(s, &fr->changes[i], error_r)) < 0)
			return ret;
	if ((ret = store_folder_sync_key_set(s->env.store, s->account_id, fr->sync_key, error_r)) <
	    0)
		return ret;
	snprintf(s->folder_key, sizeof(s->folder_key), "%s", fr->sync_key);
	return 0;
}

static void on_foldersync(struct sync_session *s, struct eas_response *r)
{
	struct eas_foldersync_result *fr = NULL;
	const char *err = NULL;
	if (r->root == NULL || eas_foldersync_parse(r->root, &fr, &err) < 0) {
		failure(s, r, EAS_ACT_BAD_RESPONSE,
		        err != NULL ? err : "empty FolderSync response");
		return;
	}
	if (fr->action != EAS_ACT_OK) {
		enum eas_action a = fr->action;
		eas_foldersync_result_free(&fr);
		act(s, r, a, "FolderSync refused");
		return;
	}
	int ret = apply_folders(s, fr, &err);
	size_t n_changes = fr->n_changes;
	eas_foldersync_result_free(&fr);
	struct store_account a;
	if (ret == HK_ERR_INVAL) { /* the answer's key */
		failure(s, r, EAS_ACT_BAD_RESPONSE, err);
		return;
	}
	if (ret < 0 || (ret = load_collections(s, false, &err)) < 0 ||
	    (ret = store_account_get(s->env.store, s->account_id, &a, &err)) < 0) {
		failure(s, r, EAS_ACT_OK, err);
		return;
	}
	log_debug("sync %s: FolderSync: %zu changes, %zu collections", s->account_id, n_changes,
	          s->n_colls);
	s->need_foldersync = false;
	progress(s);
	if (!report_change(s, a.change_counter))
		return;
	next(s);
}

/* ---- Sync ---- */

/* A deep copy of n under parent. */
static void copy_node(struct eas_node *parent, const struct eas_node *n)
{
	enum eas_page page = eas_node_page(n);
	const char *name = eas_node_name(n);
	size_t len = 0;
	const uint8_t *bytes;
	if (name == NULL)
		return;
	switch (eas_node_content(n)) {
	case EAS_CONTENT_TEXT: {
		const char *text = eas_node_text(n);
		if (text != NULL) {
			eas_node_add_text(parent, page, name, text);
			break;
		}
		bytes = eas_node_bytes(n, &len); /* text with a NUL byte */
		eas_node_add_opaque(parent, page, name, bytes, len);
		break;
	}
	case EAS_CONTENT_OPAQUE:
		bytes = eas_node_bytes(n, &len);
		eas_node_add_opaque(parent, page, name, bytes, len);
		break;
	case EAS_CONTENT_NONE:
	default: {
		struct eas_node *copy = eas_node_add(parent, page, name);
		for (const struct eas_node *c = eas_node_first(n); c != NULL; c = eas_node_next(c))
			copy_node(copy, c);
		break;
	}
	}
}

static bool has_child_like(const struct eas_node *parent, const struct eas_node *n)
{
	return eas_node_child(parent, eas_node_page(n), eas_node_name(n)) != NULL;
}

/* The cached item (base, may be NULL) with a server Change applied: each
 * top-level element of the Change replaces the base's elements of that
 * name; the base's other elements stay. */
static struct eas_node *merge_change(const struct eas_node *base, const struct eas_node *change)
{
	struct eas_node *out = eas_node_new(EAS_PAGE_AIRSYNC, "ApplicationData");
	for (const struct eas_node *c = eas_node_first(base); c != NULL; c = eas_node_next(c))
		if (!has_child_like(change, c))
			copy_node(out, c);
	for (const struct eas_node *c = eas_node_first(change); c != NULL; c = eas_node_next(c))
		copy_node(out, c);
	return out;
}

/* The cached item's tree, or NULL when it is not cached or cannot be
 * opened (then the Change alone is kept, and said so in the log). */
static struct eas_node *load_item(struct sync_session *s, const struct sync_coll *c,
                                  const char *server_id, const char *vault_id)
{
	struct store_item *item = NULL;
	struct eas_node *root = NULL;
	const char *err = NULL;
	int ret = store_item_get(s->env.store, s->account_id, c->id, server_id, &item, &err);
	if (ret < 0) {
		if (ret != HK_ERR_NOT_FOUND)
			log_warn("sync %s: reading an item to merge a change: %s", s->account_id,
			         err);
		return NULL;
	}
	size_t cap = item->sealed_len, len = 0;
	uint8_t *pt = xcalloc(cap, 1);
	ret = vault_item_open(s->dek, s->account_id, vault_id, item->sealed, item->sealed_len, pt,
	                      cap, &len);
	if (ret == 0)
		ret = eas_wbxml_decode(pt, len, 0, &root, &err);
	if (ret < 0)
		log_warn("sync %s: a cached item of %s does not open (%s); the change replaces it",
		         s->account_id, c->id, hk_strerror(ret));
	free(pt);
	store_item_free(&item);
	return root;
}

/* One server command, and where it stands in its document. */
struct op {
	const struct eas_sync_item *item;
	size_t index;
};

static int op_cmp(const void *a, const void *b)
{
	const struct op *x = a, *y = b;
	int c = strcmp(x->item->server_id, y->item->server_id);
	if (c != 0)
		return c;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* What one collection's commands come to, ready for store_sync_apply(). */
struct batch {
	struct store_item *puts;
	uint8_t **sealed;
	size_t n_puts;
	const char **deletes;
	size_t n_deletes;
};

static void batch_free(struct batch *b)
{
	for (size_t i = 0; i < b->n_puts; i++)
		free(b->sealed[i]);
	free(b->sealed);
	free(b->puts);
	free(b->deletes);
	memset(b, 0, sizeof(*b));
}

/* Seals tree as the item server_id of c and adds it to b. */
static int add_put(struct sync_session *s, const struct sync_coll *c, const char *server_id,
                   const char *vault_id, const struct eas_node *tree, struct batch *b,
                   const char **error_r)
{
	uint8_t *pt = NULL;
	size_t len = 0;
	int ret = eas_wbxml_encode(tree, &pt, &len, error_r);
	if (ret < 0)
		return ret;
	if (ENVELOPE_SIZE(len) > STORE_ITEM_MAX) {
		log_warn("sync %s: an item of %s is over %d bytes sealed: not cached",
		         s->account_id, c->id, STORE_ITEM_MAX);
		free(pt);
		return 0;
	}
	uint8_t *sealed = xcalloc(ENVELOPE_SIZE(len), 1);
	size_t sealed_len = 0;
	ret = vault_item_seal(s->dek, s->account_id, vault_id, pt, len, sealed, ENVELOPE_SIZE(len),
	                      &sealed_len);
	free(pt);
	if (ret < 0) {
		free(sealed);
		*error_r = "cannot seal an item";
		return ret;
	}
	b->sealed[b->n_puts] = sealed;
	b->puts[b->n_puts++] = (struct store_item){
	    .collection_id = c->id,
	    .item_id = server_id,
	    .sealed = sealed,
	    .sealed_len = sealed_len,
	    .updated_ms = hk_clock_now(s->env.clock),
	};
	return 0;
}

/* Folds the commands of one item (ops[0..n), in document order) into
 * what the cache must end up with: a put, a delete, or nothing. */
static int fold_item(struct sync_session *s, const struct sync_coll *c, const struct op *ops,
                     size_t n, struct batch *b, const char **error_r)
{
	const char *server_id = ops[0].item->server_id;
	char vault_id[SYNC_VAULT_ID_MAX];
	int ret = sync_vault_item_id(c->id, server_id, vault_id, sizeof(vault_id));
	if (ret < 0) {
		*error_r = "item id too long";
		return ret;
	}
	const struct eas_node *tree = NULL; /* the item's content now */
	struct eas_node *owned = NULL;      /* when tree is ours */
	bool loaded = false, deleted = false;
	for (size_t i = 0; i < n; i++) {
		const struct eas_sync_item *it = ops[i].item;
		switch (it->kind) {
		case EAS_SYNC_ITEM_ADD:
			if (it->app_data == NULL)
				break;
			eas_node_free(&owned);
			tree = it->app_data;
			deleted = false;
			loaded = true;
			break;
		case EAS_SYNC_ITEM_CHANGE: {
			if (it->app_data == NULL)
				break;
			if (!loaded && !deleted) {
				owned = load_item(s, c, server_id, vault_id);
				tree = owned;
				loaded = true;
			}
			struct eas_node *merged = merge_change(tree, it->app_data);
			eas_node_free(&owned);
			tree = owned = merged;
			deleted = false;
			break;
		}
		case EAS_SYNC_ITEM_DELETE:
		case EAS_SYNC_ITEM_SOFT_DELETE:
			eas_node_free(&owned);
			tree = NULL;
			deleted = true;
			loaded = true;
			break;
		case EAS_SYNC_ITEM_FETCH:
		default: break;
		}
	}
	ret = 0;
	if (tree != NULL)
		ret = add_put(s, c, server_id, vault_id, tree, b, error_r);
	else if (deleted)
		b->deletes[b->n_deletes++] = server_id;
	eas_node_free(&owned);
	return ret;
}

/* Commits one collection's answer: its items and its new key together. */
static int apply_collection(struct sync_session *s, struct sync_coll *c,
                            const struct eas_sync_collection *col, int64_t *change_r,
                            const char **error_r)
{
	struct batch b = {0};
	struct op *ops = xcalloc(col->n_commands, sizeof(*ops));
	size_t n = 0;
	int ret = 0;
	for (size_t i = 0; i < col->n_commands; i++)
		if (col->commands[i].server_id != NULL)
			ops[n++] = (struct op){&col->commands[i], i};
	/* one fold per item: the same ServerId may come more than once */
	qsort(ops, n, sizeof(*ops), op_cmp);
	b.puts = xcalloc(n, sizeof(*b.puts));
	b.sealed = xcalloc(n, sizeof(*b.sealed));
	b.deletes = xcalloc(n, sizeof(*b.deletes));
	for (size_t i = 0, j; i < n && ret == 0; i = j) {
		for (j = i + 1; j < n; j++)
			if (strcmp(ops[j].item->server_id, ops[i].item->server_id) != 0)
				break;
		ret = fold_item(s, c, ops + i, j - i, &b, error_r);
	}
	if (ret == 0) {
		struct store_sync_batch sb = {
		    .collection_id = c->id,
		    .sync_key = col->sync_key,
		    .puts = b.puts,
		    .n_puts = b.n_puts,
		    .deletes = b.deletes,
		    .n_deletes = b.n_deletes,
		};
		ret = store_sync_apply(s->env.store, s->account_id, &sb, change_r, error_r);
	}
	if (ret == 0) {
		s->stats.commits++;
		s->stats.items_put += b.n_puts;
		s->stats.items_deleted += b.n_deletes;
		snprintf(c->sync_key, sizeof(c->sync_key), "%s", col->sync_key);
	}
	batch_free(&b);
	free(ops);
	return ret;
}

/* What became of the Sync as a whole, after each collection's part. */
struct sync_outcome {
	bool progress;                 /* at least one collection moved on */
	bool retry;                    /* a collection asked to come back later */
	const char *failed;            /* a store or sealing failure: stop, back off */
	enum eas_action failed_action; /* OK: ours; BAD_RESPONSE: the server's */
	int64_t change;                /* the change counter after the commits */
};

/* Handles one collection of a Sync answer. false when a terminal event
 * ended the session (the caller returns at once). */
static bool on_sync_collection(struct sync_session *s, struct eas_response *r,
                               const struct eas_sync_collection *col, struct sync_outcome *out)
{
	struct sync_coll *c = find_coll(s, col->collection_id);
	const char *err = NULL;
	if (c == NULL || !c->in_request) {
		log_info("sync %s: Sync answered for a collection not asked for", s->account_id);
		return true;
	}
	switch (col->action) {
	case EAS_ACT_OK:
		if (col->sync_key == NULL || strlen(col->sync_key) >= sizeof(c->sync_key)) {
			out->failed = "Sync without a usable SyncKey";
			out->failed_action = EAS_ACT_BAD_RESPONSE;
			return true;
		}
		if (apply_collection(s, c, col, &out->change, &err) < 0) {
			out->failed = err;
			return true;
		}
		/* Done when an answer brought nothing and the server has nothing
		 * more; the answer to "0" never counts (it carries no items).
		 * A server may hand out a new key after a window of changes
		 * and only then say "nothing new": one more round costs little
		 * and depends on no server's habits. */
		c->pending = c->sent_zero || col->more_available || col->n_commands > 0;
		if (col->n_commands > 0)
			s->empty_rounds = 0;
		/* "more" with nothing in it is no step forward */
		out->progress |= c->sent_zero || col->n_commands > 0 || !c->pending;
		return true;
	case EAS_ACT_RESYNC:
		if (reset_collection(s, c, &out->change, &err) < 0)
			out->failed = err;
		else
			out->progress = true;
		return true;
	case EAS_ACT_FOLDER_SYNC:
	case EAS_ACT_NOT_FOUND: s->need_foldersync = true; return true;
	case EAS_ACT_RETRY_LATER: out->retry = true; return true;
	case EAS_ACT_PROVISION: s->need_provision = true; return true;
	case EAS_ACT_AUTH:
	case EAS_ACT_BLOCKED:
	case EAS_ACT_WIPE: act(s, r, col->action, "Sync refused"); return false;
	case EAS_ACT_BAD_REQUEST:
		if (col->status == EAS_SYNC_INCOMPLETE_REQUEST)
			return true; /* the full request again: every one we send is */
		__attribute__((fallthrough));
	default:
		log_warn("sync %s: collection %s refused (Sync status %d, %s): left alone",
		         s->account_id, c->id, col->status, eas_action_name(col->action));
		c->disabled = true;
		return true;
	}
}

static void on_sync(struct sync_session *s, struct eas_response *r)
{
	if (r->empty) {
		/* "nothing new" for every collection asked for */
		for (size_t i = 0; i < s->n_colls; i++)
			if (s->colls[i].in_request)
				s->colls[i].pending = false;
		progress(s);
		next(s);
		return;
	}
	struct eas_sync_result *res = NULL;
	const char *err = NULL;
	if (r->root == NULL || eas_sync_parse(r->root, &res, &err) < 0) {
		failure(s, r, EAS_ACT_BAD_RESPONSE, err != NULL ? err : "empty Sync response");
		return;
	}
	if (res->action != EAS_ACT_OK) {
		/* a Status for the whole request */
		int status = res->status;
		enum eas_action a = res->action;
		uint32_t limit = res->has_limit ? res->limit : 0;
		eas_sync_result_free(&res);
		if (status == EAS_SYNC_INCOMPLETE_REQUEST) {
			spin(s, "the server keeps asking for the full Sync");
		} else if (status == EAS_SYNC_TOO_MANY_COLLECTIONS) {
			s->batch_max = limit > 0 && limit < s->batch_max ? limit
			               : s->batch_max > 1                ? s->batch_max / 2
			                                                 : 1;
			spin(s, "the server keeps refusing the number of collections");
		} else {
			act(s, r, a, "Sync refused");
		}
		return;
	}
	struct sync_outcome out = {.change = s->change_counter};
	/* Collections left out of the answer have nothing new ([MS-ASCMD]
	 * 2.2.3.29.2: only collections with changes or errors come back). */
	for (size_t i = 0; i < s->n_colls; i++)
		if (s->colls[i].in_request)
			s->colls[i].pending = false;
	for (size_t i = 0; i < res->n_collections && out.failed == NULL; i++) {
		struct sync_coll *c = find_coll(s, res->collections[i].collection_id);
		if (c != NULL && c->in_request)
			c->pending = true; /* until its part says otherwise */
		if (!on_sync_collection(s, r, &res->collections[i], &out)) {
			eas_sync_result_free(&res);
			return;
		}
	}
	if (out.failed != NULL) {
		/* the collections not committed keep their old keys, which the
		 * server accepts again ([MS-ASCMD] 2.2.3.166.4) */
		for (size_t i = 0; i < res->n_collections; i++) {
			struct sync_coll *c = find_coll(s, res->collections[i].collection_id);
			if (c != NULL && c->in_request)
				c->pending = true;
		}
	}
	eas_sync_result_free(&res);
	if (!report_change(s, out.change))
		return;
	if (out.failed != NULL) {
		failure(s, r, out.failed_action, out.failed);
		return;
	}
	if (out.progress)
		progress(s);
	if (out.retry)
		wait_retry(s, r->retry_after_s, "a collection asked to retry later");
	else if (!out.progress)
		spin(s, "the server keeps answering Sync without moving on");
	else
		next(s);
}

/* ---- Ping ---- */

static void on_ping(struct sync_session *s, struct eas_response *r)
{
	struct eas_ping_result *pr = NULL;
	const char *err = NULL;
	if (r->root == NULL || eas_ping_parse(r->root, &pr, &err) < 0) {
		failure(s, r, EAS_ACT_BAD_RESPONSE, err != NULL ? err : "empty Ping response");
		return;
	}
	int status = pr->status;
	switch (status) {
	case EAS_PING_EXPIRED:
		/* nothing changed; collections a server limit kept out of the
		 * Ping are polled now */
		for (size_t i = 0; i < s->n_colls; i++)
			if (pingable(&s->colls[i]) && !s->colls[i].pinged)
				s->colls[i].pending = true;
		s->empty_rounds = 0;
		progress(s);
		next(s);
		break;
	case EAS_PING_CHANGES: {
		size_t marked = 0;
		for (size_t i = 0; i < pr->n_folders; i++) {
			struct sync_coll *c = find_coll(s, pr->folders[i]);
			if (c != NULL && pingable(c)) {
				c->pending = true;
				marked++;
			}
		}
		if (marked == 0) /* no usable list: look at everything pinged */
			for (size_t i = 0; i < s->n_colls; i++)
				if (s->colls[i].pinged)
					s->colls[i].pending = true;
		if (++s->empty_rounds > SYNC_MAX_SPINS) {
			/* changes announced that no Sync finds: not at full speed */
			s->empty_rounds = 0;
			wait_retry(s, 0, "the server reports changes that Sync does not find");
			break;
		}
		progress(s);
		next(s);
		break;
	}
	case EAS_PING_MISSING_PARAMS:
		/* every Ping we send is complete: just send it again */
		spin(s, "the server keeps asking for the full Ping");
		break;
	case EAS_PING_BAD_HEARTBEAT: {
		unsigned hb = pr->heartbeat_interval;
		if (hb == 0)
			hb = s->heartbeat_s;
		hb = hb < SYNC_HEARTBEAT_MIN_S   ? SYNC_HEARTBEAT_MIN_S
		     : hb > SYNC_HEARTBEAT_MAX_S ? SYNC_HEARTBEAT_MAX_S
		                                 : hb;
		log_info("sync %s: heartbeat %u s -> %u s (server's)", s->account_id,
		         s->heartbeat_s, hb);
		s->heartbeat_s = hb;
		spin(s, "the server keeps refusing the heartbeat");
		break;
	}
	case EAS_PING_TOO_MANY_FOLDERS: {
		unsigned was = s->stats.ping_folders;
		unsigned max = pr->max_folders;
		if (max == 0 || max >= was)
			max = was > 1 ? was / 2 : 1;
		log_info("sync %s: Ping limited to %u folders", s->account_id, max);
		s->ping_max = max;
		spin(s, "the server keeps refusing the number of folders");
		break;
	}
	case EAS_PING_FOLDER_SYNC:
		s->need_foldersync = true;
		spin(s, "the server keeps asking for a FolderSync");
		break;
	default: act(s, r, pr->action, "Ping refused"); break;
	}
	eas_ping_result_free(&pr);
}

/* ---- dispatch ---- */

static void on_response(struct eas_response *r, void *arg)
{
	struct sync_session *s = arg;
	s->call = NULL;
	if (r->action != EAS_ACT_OK) {
		/* transport, HTTP status or a common Status (>= 100) */
		act(s, r, r->action, r->error);
		return;
	}
	switch (s->state) {
	case SYNC_STATE_PROVISION:
	case SYNC_STATE_PROVISION_ACK: on_provision(s, r); break;
	case SYNC_STATE_FOLDERSYNC: on_foldersync(s, r); break;
	case SYNC_STATE_SYNC: on_sync(s, r); break;
	case SYNC_STATE_PING: on_ping(s, r); break;
	case SYNC_STATE_WAIT:
	case SYNC_STATE_DONE:
	default:
		log_err("sync %s: an answer in state %s", s->account_id, sync_state_name(s->state));
		break;
	}
}

/* ---- life cycle ---- */

static int check_config(const struct sync_config *cfg)
{
	if (cfg == NULL || cfg->account_id == NULL || cfg->account_id[0] == '\0' ||
	    strlen(cfg->account_id) >= STORE_ID_MAX || cfg->url == NULL || cfg->username == NULL ||
	    cfg->device_id == NULL || cfg->window_size > 512 ||
	    cfg->batch_max > EAS_MAX_COLLECTIONS || cfg->backoff_min_ms < 0 ||
	    cfg->backoff_max_ms < 0 ||
	    (cfg->backoff_max_ms > 0 && cfg->backoff_max_ms < cfg->backoff_min_ms) ||
	    (unsigned)cfg->mail_filter > EAS_FILTER_INCOMPLETE ||
	    (unsigned)cfg->calendar_filter > EAS_FILTER_INCOMPLETE)
		return HK_ERR_INVAL;
	return 0;
}

/* Options per class: a plain-text preview plus the body in its native
 * form (the server picks among the preferences it supports), cut at the
 * truncation size; other classes take plain text. No FilterType unless
 * configured: some servers return nothing for a contacts folder given one. */
static void set_options(struct sync_session *s, const struct sync_config *cfg)
{
	uint32_t trunc =
	    cfg->body_truncation > 0 ? cfg->body_truncation : SYNC_BODY_TRUNCATION_DEFAULT;
	s->mail_prefs[0] = (struct eas_body_pref){
	    .type = EAS_BODY_PLAIN, .truncation_size = trunc, .preview = SYNC_PREVIEW_CHARS};
	s->mail_prefs[1] = (struct eas_body_pref){
	    .type = EAS_BODY_HTML, .truncation_size = trunc, .preview = SYNC_PREVIEW_CHARS};
	s->other_prefs[0] =
	    (struct eas_body_pref){.type = EAS_BODY_PLAIN, .truncation_size = trunc};
	s->mail_opts = (struct eas_sync_options){
	    .filter = cfg->mail_filter, .body_prefs = s->mail_prefs, .n_body_prefs = 2};
	s->calendar_opts = (struct eas_sync_options){
	    .filter = cfg->calendar_filter, .body_prefs = s->other_prefs, .n_body_prefs = 1};
	s->other_opts = (struct eas_sync_options){.body_prefs = s->other_prefs, .n_body_prefs = 1};
}

static void session_free(struct sync_session *s)
{
	eas_call_cancel(&s->call);
	eas_client_free(&s->client);
	if (s->timer != NULL)
		event_free(s->timer);
	free(s->colls);
	free(s);
}

int sync_session_start(const struct sync_env *env, const struct sync_config *cfg,
                       const struct secret *password, const struct secret *dek, sync_event_cb *cb,
                       void *ctx, struct sync_session **s_r)
{
	int ret = check_config(cfg);
	if (ret < 0 || env == NULL || env->base == NULL || env->http == NULL ||
	    env->store == NULL || env->clock == NULL || password == NULL || dek == NULL ||
	    secret_len(dek) != HK_KEY_LEN || cb == NULL || s_r == NULL)
		return HK_ERR_INVAL;

	struct sync_session *s = xcalloc(1, sizeof(*s));
	s->env = *env;
	s->dek = dek;
	s->cb = cb;
	s->ctx = ctx;
	snprintf(s->account_id, sizeof(s->account_id), "%s", cfg->account_id);
	snprintf(s->store_device_id, sizeof(s->store_device_id), "%s",
	         cfg->store_device_id != NULL ? cfg->store_device_id : "");
	unsigned hb = cfg->heartbeat_s > 0 ? cfg->heartbeat_s : SYNC_HEARTBEAT_DEFAULT_S;
	s->heartbeat_s = hb < SYNC_HEARTBEAT_MIN_S   ? SYNC_HEARTBEAT_MIN_S
	                 : hb > SYNC_HEARTBEAT_MAX_S ? SYNC_HEARTBEAT_MAX_S
	                                             : hb;
	s->window_size = cfg->window_size > 0 ? cfg->window_size : SYNC_WINDOW_DEFAULT;
	s->batch_max = cfg->batch_max > 0 ? cfg->batch_max : SYNC_BATCH_DEFAULT;
	s->classes = cfg->classes > 0 ? cfg->classes : SYNC_CLASSES_DEFAULT;
	set_options(s, cfg);
	sync_backoff_init(
	    &s->backoff,
	    cfg->backoff_min_ms > 0 ? cfg->backoff_min_ms : SYNC_BACKOFF_MIN_MS_DEFAULT,
	    cfg->backoff_max_ms > 0 ? cfg->backoff_max_ms : SYNC_BACKOFF_MAX_MS_DEFAULT);
	s->stats.heartbeat_s = s->heartbeat_s;

	struct store_account a;
	const char *err = NULL;
	if ((ret = store_account_get(env->store, s->account_id, &a, &err)) < 0 ||
	    (ret = load_collections(s, true, &err)) < 0) {
		log_notice("sync %s: %s", s->account_id, err);
		session_free(s);
		return ret;
	}
	s->change_counter = a.change_counter;
	snprintf(s->folder_key, sizeof(s->folder_key), "%s",
	         a.folder_sync_key[0] != '\0' ? a.folder_sync_key : "0");
	/* the hierarchy first, every time: it may have changed while we were
	 * away, and the request is small */
	s->need_foldersync = true;

	struct eas_client_config ec = {
	    .url = cfg->url,
	    .username = cfg->username,
	    .device_id = cfg->device_id,
	    .ca_file = cfg->ca_file,
	    .timeout_ms = cfg->timeout_ms,
	    .http2 = cfg->http2,
	};
	if ((ret = eas_client_new(env->http, &ec, password, &s->client, &err)) < 0) {
		log_notice("sync %s: %s", s->account_id, err);
		session_free(s);
		return ret;
	}
	/* the partnership's PolicyKey from before: no provisioning unless the
	 * server asks again (449, or a status saying so) */
	if (cfg->policy_key != NULL && cfg->policy_key[0] != '\0' &&
	    eas_client_set_policy_key(s->client, cfg->policy_key) < 0)
		log_notice("sync %s: stored PolicyKey unusable: provisioning afresh", s->account_id);
	s->timer = evtimer_new(env->base, on_timer, s);
	if (s->timer == NULL)
		abort();
	if ((ret = send_next(s)) < 0) {
		session_free(s);
		return ret;
	}
	*s_r = s;
	return 0;
}

void sync_session_stop(struct sync_session **sp)
{
	struct sync_session *s = *sp;
	if (s == NULL)
		return;
	*sp = NULL;
	if (s->gone != NULL)
		*s->gone = true;
	session_free(s);
}

enum sync_state sync_session_state(const struct sync_session *s)
{
	return s->state;
}

void sync_session_stats(const struct sync_session *s, struct sync_stats *stats_r)
{
	*stats_r = s->stats;
}
