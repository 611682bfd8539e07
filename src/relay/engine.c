#include "relay/engine.h"

#include "crypto/devtoken.h"
#include "engine/account.h"
#include "engine/verify.h"
#include "lib/log.h"
#include "sync/session.h"

#include <event2/event.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BUCKETS 1024
/* Bad device keys: after this many in a row, the device waits. */
#define BACKOFF_FREE_TRIES 3
#define BACKOFF_MAX_MS (15 * 60 * 1000)

#define PT_BLOCKED "urn:halfkey:blocked"
#define PT_WIPED "urn:halfkey:wiped"
#define PT_REFUSED "urn:halfkey:mail-server-refused"
#define PT_SERVER_BLOCKED "urn:halfkey:mail-server-blocked"
#define PT_UNREACHABLE "urn:halfkey:mail-server-unreachable"
#define PT_BAD_KEY "urn:halfkey:bad-device-key"
#define PT_BACKOFF "urn:halfkey:too-many-attempts"
#define PT_EXISTS "urn:halfkey:already-registered"
#define PT_BLANK "about:blank"

/* An unlocked account. */
struct session {
	struct session *next;
	char account_id[STORE_ID_MAX];
	char device_id[STORE_ID_MAX];
	struct account_secrets *secrets;
	struct sync_session *sync; /* borrows secrets' DEK: stopped before they go */
	int64_t last_activity_ms;
	/* in the engine's queue for a sync slot (max_syncing) */
	bool waiting;
	struct session *wait_prev, *wait_next;
};

/* Bad-key back-off of one device (by device row id). */
struct backoff {
	struct backoff *next;
	char device_id[STORE_ID_MAX];
	unsigned failures;
	int64_t until_ms;
};

struct pending {
	struct pending *prev, *next;
	struct engine *e;
	struct verify *verify;
	struct engine_register_req req; /* secrets still owned here */
	char eas_device_id[STORE_NAME_MAX];
	engine_cb *cb;
	void *ctx;
};

struct engine {
	struct engine_config cfg;
	struct session *sessions[BUCKETS];
	struct backoff *backoffs[BUCKETS];
	size_t unlocked;
	struct pending *pending;
	int64_t next_purge_ms;
	size_t syncing;
	/* unlocked accounts waiting for a sync slot, oldest first */
	struct session *wait_head, *wait_tail;
	size_t waiting;
	/* admits waiting accounts from the loop, never from inside a caller
	 * that is stopping a sync (a sync event callback, engine_free) */
	struct event *admit_ev;
	bool cap_logged;
};

static unsigned bucket_of(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (; *s != '\0'; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h % BUCKETS;
}

static void result(struct engine_result *r, int status, const char *type, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void result(struct engine_result *r, int status, const char *type, const char *fmt, ...)
{
	r->status = status;
	r->type = type;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
	va_end(ap);
}

static void audit(struct engine *e, enum store_audit_event ev, const char *account_id,
		  const char *device, const char *detail)
{
	struct store_audit a = {.time_ms = hk_clock_now(e->cfg.clock), .event = ev};
	snprintf(a.account_id, sizeof(a.account_id), "%s", account_id ? account_id : "");
	snprintf(a.device, sizeof(a.device), "%s", device ? device : "");
	snprintf(a.detail, sizeof(a.detail), "%s", detail ? detail : "");
	const char *err;
	if (store_audit_append(e->cfg.store, &a, NULL, &err) < 0)
		log_err("audit: cannot record %s for %s: %s", store_audit_event_name(ev),
			a.account_id, err);
}

/* ---- sessions -------------------------------------------------------- */

static struct session **session_slot(struct engine *e, const char *account_id)
{
	struct session **pp = &e->sessions[bucket_of(account_id)];
	while (*pp != NULL && strcmp((*pp)->account_id, account_id) != 0)
		pp = &(*pp)->next;
	return pp;
}

static struct session *session_get(struct engine *e, const char *account_id)
{
	return *session_slot(e, account_id);
}

static void wait_remove(struct engine *e, struct session *s)
{
	if (!s->waiting)
		return;
	if (s->wait_prev != NULL)
		s->wait_prev->wait_next = s->wait_next;
	else
		e->wait_head = s->wait_next;
	if (s->wait_next != NULL)
		s->wait_next->wait_prev = s->wait_prev;
	else
		e->wait_tail = s->wait_prev;
	s->wait_prev = s->wait_next = NULL;
	s->waiting = false;
	e->waiting--;
}

static void wait_append(struct engine *e, struct session *s)
{
	s->wait_prev = e->wait_tail;
	s->wait_next = NULL;
	if (e->wait_tail != NULL)
		e->wait_tail->wait_next = s;
	else
		e->wait_head = s;
	e->wait_tail = s;
	s->waiting = true;
	e->waiting++;
}

static void sync_stop(struct engine *e, struct session *s)
{
	wait_remove(e, s);
	if (s->sync == NULL)
		return;
	sync_session_stop(&s->sync); /* before the DEK it borrows goes */
	e->syncing--;
	if (e->wait_head != NULL && e->admit_ev != NULL)
		event_active(e->admit_ev, EV_TIMEOUT, 0);
}

static void session_drop(struct engine *e, const char *account_id)
{
	struct session **pp = session_slot(e, account_id);
	struct session *s = *pp;
	if (s == NULL)
		return;
	*pp = s->next;
	sync_stop(e, s);
	account_secrets_free(&s->secrets); /* wipes password and DEK */
	free(s);
	e->unlocked--;
}

static void flush_session(struct engine *e, const char *account_id, const char *why);

/* What the mail server said while syncing. Called from inside the sync
 * session: stopping it here is allowed (sync/session.h). */
static void on_sync_event(const struct sync_event *ev, void *ctx)
{
	struct engine *e = ctx;
	struct session *s = session_get(e, ev->account_id);
	const char *err;
	char id[STORE_ID_MAX];
	snprintf(id, sizeof(id), "%s", ev->account_id);
	switch (ev->kind) {
	case SYNC_EV_CHANGED:
		log_debug("account %s: cache changed (state %lld)", id,
			  (long long)ev->change_counter);
		return;
	case SYNC_EV_AUTH_FAILED:
		/* the password changed on the server: forget it, ask the device */
		flush_session(e, id, "mail server refused the password");
		if (store_account_set_state(e->cfg.store, id, STORE_ACCOUNT_REREGISTER_NEEDED,
					    hk_clock_now(e->cfg.clock), &err) < 0)
			log_warn("account %s: %s", id, err);
		return;
	case SYNC_EV_BLOCKED: {
		log_notice("account %s: the mail server blocks it (%s): purging", id, ev->error);
		struct store_audit a = {.time_ms = hk_clock_now(e->cfg.clock),
					.event = STORE_AUDIT_PURGE};
		snprintf(a.account_id, sizeof(a.account_id), "%s", id);
		snprintf(a.detail, sizeof(a.detail), "blocked by the mail server");
		session_drop(e, id);
		if (store_account_delete(e->cfg.store, id, &a, &err) < 0)
			log_err("account %s: purge failed: %s", id, err);
		return;
	}
	case SYNC_EV_WIPE_REQUESTED: {
		log_notice("account %s: the mail server requests a remote wipe", id);
		struct store_audit a = {.time_ms = hk_clock_now(e->cfg.clock),
					.event = STORE_AUDIT_WIPE};
		snprintf(a.account_id, sizeof(a.account_id), "%s", id);
		snprintf(a.detail, sizeof(a.detail), "requested by the mail server");
		session_drop(e, id);
		if (store_account_wipe(e->cfg.store, id, hk_clock_now(e->cfg.clock), &a, &err) < 0)
			log_err("account %s: wipe failed: %s", id, err);
		return;
	}
	case SYNC_EV_ERROR:
	default:
		log_err("account %s: sync stopped: %s", id, ev->error);
		if (s != NULL)
			sync_stop(e, s);
		return;
	}
}

/* Starts syncing an unlocked account (no-op when disabled or running);
 * queues it when max_syncing accounts sync already. */
static void sync_start(struct engine *e, struct session *s)
{
	if (e->cfg.no_sync || s->sync != NULL || s->waiting || e->cfg.base == NULL)
		return;
	if (e->cfg.max_syncing > 0 && e->syncing >= e->cfg.max_syncing) {
		wait_append(e, s);
		/* once per time the cap is reached, not once per account */
		if (!e->cap_logged)
			log_warn("%zu accounts sync (mailserver.max_syncing_accounts): "
				 "account %s and any unlocked after it wait for a slot",
				 e->syncing, s->account_id);
		e->cap_logged = true;
		return;
	}
	struct store_account acct;
	struct store_device dev;
	const char *err;
	if (store_account_get(e->cfg.store, s->account_id, &acct, &err) < 0 ||
	    store_device_get(e->cfg.store, s->device_id, &dev, &err) < 0) {
		log_err("account %s: cannot start syncing: %s", s->account_id, err);
		return;
	}
	struct sync_env env = {e->cfg.base, e->cfg.http, e->cfg.store, e->cfg.clock};
	struct sync_config cfg = {
		.account_id = acct.id,
		.url = acct.server_url,
		.username = acct.username,
		.device_id = dev.eas_device_id,
		.store_device_id = dev.id,
		.policy_key = dev.policy_key,
		.ca_file = e->cfg.ca_file,
		.http2 = e->cfg.http2,
		.timeout_ms = e->cfg.eas_timeout_ms,
		.heartbeat_s = e->cfg.heartbeat_s,
	};
	int ret = sync_session_start(&env, &cfg, account_secrets_password(s->secrets),
				     account_secrets_dek(s->secrets), on_sync_event, e, &s->sync);
	if (ret < 0) {
		log_err("account %s: cannot start syncing: %s", s->account_id, hk_strerror(ret));
		return;
	}
	e->syncing++;
}

size_t engine_syncing_count(const struct engine *e)
{
	return e->syncing;
}

size_t engine_sync_waiting_count(const struct engine *e)
{
	return e->waiting;
}

/* A sync stopped: start waiting accounts while there is room. */
static void on_admit(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct engine *e = arg;
	while (e->wait_head != NULL &&
	       (e->cfg.max_syncing == 0 || e->syncing < e->cfg.max_syncing)) {
		struct session *s = e->wait_head;
		wait_remove(e, s);
		sync_start(e, s); /* when it cannot start (logged), the next one may */
	}
	if (e->wait_head == NULL)
		e->cap_logged = false;
}

static void session_add(struct engine *e, const char *account_id, const char *device_id,
			struct account_secrets **secrets)
{
	struct session *s = session_get(e, account_id);
	if (s != NULL) {
		/* already unlocked: keep the secrets it has, drop the new copy */
		account_secrets_free(secrets);
		s->last_activity_ms = hk_clock_now(e->cfg.clock);
		sync_start(e, s); /* again, if it had stopped on an error */
		return;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		abort();
	snprintf(s->account_id, sizeof(s->account_id), "%s", account_id);
	snprintf(s->device_id, sizeof(s->device_id), "%s", device_id);
	s->secrets = *secrets;
	*secrets = NULL;
	s->last_activity_ms = hk_clock_now(e->cfg.clock);
	unsigned b = bucket_of(account_id);
	s->next = e->sessions[b];
	e->sessions[b] = s;
	e->unlocked++;
	sync_start(e, s);
}

size_t engine_unlocked_count(const struct engine *e)
{
	return e->unlocked;
}

bool engine_is_unlocked(const struct engine *e, const char *account_id)
{
	return session_get((struct engine *)(uintptr_t)e, account_id) != NULL;
}

/* ---- back-off for bad device keys ------------------------------------ */

static struct backoff *backoff_get(struct engine *e, const char *device_id, bool create)
{
	unsigned b = bucket_of(device_id);
	for (struct backoff *p = e->backoffs[b]; p != NULL; p = p->next)
		if (strcmp(p->device_id, device_id) == 0)
			return p;
	if (!create)
		return NULL;
	struct backoff *p = calloc(1, sizeof(*p));
	if (p == NULL)
		abort();
	snprintf(p->device_id, sizeof(p->device_id), "%s", device_id);
	p->next = e->backoffs[b];
	e->backoffs[b] = p;
	return p;
}

static void backoff_clear(struct engine *e, const char *device_id)
{
	struct backoff **pp = &e->backoffs[bucket_of(device_id)];
	while (*pp != NULL && strcmp((*pp)->device_id, device_id) != 0)
		pp = &(*pp)->next;
	if (*pp != NULL) {
		struct backoff *p = *pp;
		*pp = p->next;
		free(p);
	}
}

static void backoff_fail(struct engine *e, const char *device_id)
{
	struct backoff *p = backoff_get(e, device_id, true);
	p->failures++;
	if (p->failures >= BACKOFF_FREE_TRIES) {
		int64_t d = 1000;
		for (unsigned i = BACKOFF_FREE_TRIES; i < p->failures && d < BACKOFF_MAX_MS; i++)
			d *= 2;
		p->until_ms = hk_clock_now(e->cfg.clock) + (d < BACKOFF_MAX_MS ? d : BACKOFF_MAX_MS);
	}
}

/* ---- block rules ----------------------------------------------------- */

static const char *domain_of(const char *user)
{
	const char *at = strrchr(user, '@');
	return at != NULL ? at + 1 : NULL;
}

/* 1: blocked (rule described in why), 0: allowed, <0: store error. */
static int blocked(struct engine *e, const char *username, const char *email,
		   const char *device_type, const char *device_id, const char *user_agent,
		   char *why, size_t why_len)
{
	struct store_block_rule *rules = NULL;
	size_t n = 0;
	const char *err;
	int ret = store_block_list(e->cfg.store, &rules, &n, &err);
	if (ret < 0)
		return ret;
	const char *udom = domain_of(username), *edom = email ? domain_of(email) : NULL;
	int hit = 0;
	for (size_t i = 0; i < n && !hit; i++) {
		const char *p = rules[i].pattern;
		switch (rules[i].kind) {
		case STORE_BLOCK_USER_GLOB:
			hit = fnmatch(p, username, FNM_CASEFOLD) == 0 ||
			      (email && *email && fnmatch(p, email, FNM_CASEFOLD) == 0);
			break;
		case STORE_BLOCK_DOMAIN:
			hit = (udom && strcasecmp(udom, p) == 0) ||
			      (edom && strcasecmp(edom, p) == 0);
			break;
		case STORE_BLOCK_DEVICE_TYPE: hit = strcasecmp(device_type, p) == 0; break;
		case STORE_BLOCK_DEVICE_ID: hit = strcmp(device_id, p) == 0; break;
		case STORE_BLOCK_USER_AGENT:
			hit = user_agent && fnmatch(p, user_agent, FNM_CASEFOLD) == 0;
			break;
		default: break;
		}
		if (hit)
			snprintf(why, why_len, "blocked by rule %lld (%s %s)",
				 (long long)rules[i].id, store_block_kind_name(rules[i].kind), p);
	}
	store_list_free(&rules);
	return hit;
}

/* ---- register -------------------------------------------------------- */

static void pending_free(struct pending *p)
{
	struct engine *e = p->e;
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		e->pending = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	verify_cancel(&p->verify);
	secret_free(&p->req.password);
	secret_free(&p->req.device_key);
	free(p);
}

static void refuse(struct engine *e, const struct engine_register_req *req, const char *why)
{
	char detail[STORE_DETAIL_MAX];
	snprintf(detail, sizeof(detail), "%.128s@%.200s: %.160s", req->username, req->server_url,
		 why);
	audit(e, STORE_AUDIT_REGISTER_REFUSED, NULL, req->device_id, detail);
}

static void on_verified(const struct verify_res *vr, void *ctx)
{
	struct pending *p = ctx;
	struct engine *e = p->e;
	struct engine_result res = {0};
	p->verify = NULL; /* invalid from now on */

	switch (vr->action) {
	case EAS_ACT_OK: break;
	case EAS_ACT_AUTH:
		result(&res, 401, PT_REFUSED, "the mail server refused the credentials");
		break;
	case EAS_ACT_BLOCKED:
	case EAS_ACT_WIPE:
		result(&res, 403, PT_SERVER_BLOCKED, "the mail server does not let this "
						     "user or device sync (%s)",
		       eas_action_name(vr->action));
		break;
	default:
		result(&res, 502, PT_UNREACHABLE, "the mail server could not be used: %s (%s)",
		       eas_action_name(vr->action), vr->error);
		break;
	}
	if (vr->action != EAS_ACT_OK) {
		refuse(e, &p->req, eas_action_name(vr->action));
		log_notice("register %s@%s refused: %s", p->req.username, vr->url,
			   eas_action_name(vr->action));
		p->cb(&res, p->ctx);
		pending_free(p);
		return;
	}

	struct account_register_req ar = {
		.server_url = vr->url,
		.username = p->req.username,
		.email = p->req.email[0] ? p->req.email : NULL,
		.password = p->req.password,
		.device_key = p->req.device_key,
		.eas_device_id = p->eas_device_id,
		.policy_key = vr->policy_key,
		.device_type = p->req.device_type,
		.user_agent = p->req.user_agent,
	};
	struct account_register_res reg;
	struct account_secrets *secrets = NULL;
	const char *err = NULL;
	int ret = account_register(e->cfg.store, e->cfg.mk, e->cfg.clock, &ar, &reg, &secrets,
				   &err);
	if (ret == HK_ERR_EXISTS) {
		result(&res, 409, PT_EXISTS, "this device is already registered for this user");
	} else if (ret < 0) {
		log_err("register: storing the account failed: %s", err);
		result(&res, 500, PT_BLANK, "the account could not be stored");
	} else {
		result(&res, 201, PT_BLANK, "registered");
		snprintf(res.account_id, sizeof(res.account_id), "%s", reg.account_id);
		snprintf(res.device_id, sizeof(res.device_id), "%s", reg.device_id);
		sodium_bin2base64(res.token, sizeof(res.token), reg.token, sizeof(reg.token),
				  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		secmem_wipe(reg.token, sizeof(reg.token));
		session_add(e, reg.account_id, reg.device_id, &secrets);
	}
	account_secrets_free(&secrets);
	p->cb(&res, p->ctx);
	secmem_wipe(res.token, sizeof(res.token));
	pending_free(p);
}

static bool alnum_id(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 32)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9')))
			return false;
	return true;
}

static bool server_allowed(const struct engine *e, const char *url)
{
	if (strncmp(url, "https://", 8) != 0)
		return false;
	return e->cfg.server_allowed == NULL ||
	       e->cfg.server_allowed(url, e->cfg.server_allowed_ctx);
}

int engine_register(struct engine *e, struct engine_register_req *req, engine_cb *cb,
		    void *ctx)
{
	struct engine_result res = {0};
	struct pending *p = calloc(1, sizeof(*p));
	if (p == NULL)
		abort();
	p->e = e;
	p->cb = cb;
	p->ctx = ctx;
	p->req = *req; /* takes the secrets */
	req->password = req->device_key = NULL;
	p->next = e->pending;
	if (e->pending != NULL)
		e->pending->prev = p;
	e->pending = p;

	struct engine_register_req *r = &p->req;
	if (r->server_url[0] == '\0' && e->cfg.default_server != NULL)
		snprintf(r->server_url, sizeof(r->server_url), "%s", e->cfg.default_server);
	if (r->username[0] == '\0' || r->server_url[0] == '\0' || r->device_type[0] == '\0' ||
	    !alnum_id(r->device_id) || r->password == NULL || secret_len(r->password) == 0 ||
	    secret_len(r->password) > 1024 || r->device_key == NULL ||
	    secret_len(r->device_key) != HK_KEY_LEN) {
		result(&res, 400, PT_BLANK, "invalid registration request");
		goto answer;
	}
	if (!server_allowed(e, r->server_url)) {
		result(&res, 403, PT_BLOCKED, "this relay does not serve that mail server");
		refuse(e, r, "server not allowed");
		goto answer;
	}
	char why[STORE_DETAIL_MAX];
	int b = blocked(e, r->username, r->email, r->device_type, r->device_id, r->user_agent,
			why, sizeof(why));
	if (b != 0) {
		if (b > 0) {
			result(&res, 403, PT_BLOCKED, "registration blocked by the relay's policy");
			refuse(e, r, why);
			audit(e, STORE_AUDIT_BLOCK, NULL, r->device_id, why);
		} else {
			result(&res, 500, PT_BLANK, "store failure");
		}
		goto answer;
	}
	snprintf(p->eas_device_id, sizeof(p->eas_device_id), "%s", r->device_id);
	struct verify_req vr = {
		.url = r->server_url,
		.username = r->username,
		.password = r->password,
		.device_id = p->eas_device_id,
		.ca_file = e->cfg.ca_file,
		.http2 = e->cfg.http2,
		.timeout_ms = e->cfg.eas_timeout_ms,
	};
	if (verify_start(e->cfg.verify_http != NULL ? e->cfg.verify_http : e->cfg.http, &vr,
			 on_verified, p, &p->verify) < 0) {
		result(&res, 400, PT_BLANK, "invalid mail server URL, username or device id");
		goto answer;
	}
	return 0;
answer:
	cb(&res, ctx);
	pending_free(p);
	return 0;
}

/* ---- token-authenticated operations ---------------------------------- */

/* Finds the device of a token; fills res and returns false when there is
 * none (401) or it was wiped (403). */
static bool device_of(struct engine *e, const uint8_t *token, size_t token_len,
		      struct store_device *dev, struct engine_result *res)
{
	uint8_t hash[DEVTOKEN_HASH_LEN];
	const char *err;
	if (devtoken_hash(token, token_len, hash) < 0) {
		result(res, 500, PT_BLANK, "internal error");
		return false;
	}
	int ret = store_device_get_by_token(e->cfg.store, hash, dev, &err);
	if (ret == HK_ERR_NOT_FOUND || (ret == 0 && !devtoken_verify(token, token_len,
								     dev->token_hash))) {
		result(res, 401, PT_BLANK, "unknown device token");
		return false;
	}
	if (ret < 0) {
		result(res, 500, PT_BLANK, "store failure");
		return false;
	}
	if (dev->tombstoned_ms != 0) {
		result(res, 403, PT_WIPED, "this account was wiped");
		return false;
	}
	return true;
}

void engine_unlock(struct engine *e, const uint8_t *token, size_t token_len,
		   struct secret *device_key, struct engine_result *res)
{
	struct store_device dev;
	struct store_account acct;
	struct account_secrets *secrets = NULL;
	struct account_unlock_res ur;
	const char *err = NULL;
	memset(res, 0, sizeof(*res));
	if (!device_of(e, token, token_len, &dev, res))
		goto out;
	struct backoff *bo = backoff_get(e, dev.id, false);
	int64_t now = hk_clock_now(e->cfg.clock);
	if (bo != NULL && bo->until_ms > now) {
		result(res, 429, PT_BACKOFF, "too many wrong device keys; retry in %lld s",
		       (long long)((bo->until_ms - now + 999) / 1000));
		goto out;
	}
	if (store_account_get(e->cfg.store, dev.account_id, &acct, &err) < 0) {
		result(res, 500, PT_BLANK, "store failure");
		goto out;
	}
	char why[STORE_DETAIL_MAX];
	int b = blocked(e, acct.username, acct.email, dev.device_type, dev.eas_device_id,
			dev.user_agent, why, sizeof(why));
	if (b != 0) {
		if (b > 0) {
			audit(e, STORE_AUDIT_BLOCK, acct.id, dev.eas_device_id, why);
			result(res, 403, PT_BLOCKED, "blocked by the relay's policy");
		} else {
			result(res, 500, PT_BLANK, "store failure");
		}
		goto out;
	}
	/* already unlocked: the key is checked (the envelope opens with it)
	 * but the secrets are not kept twice, which saves the guarded block */
	bool unlocked = session_get(e, dev.account_id) != NULL;
	int ret = account_unlock(e->cfg.store, e->cfg.mk, e->cfg.clock, token, token_len,
				 device_key, &ur, unlocked ? NULL : &secrets, &err);
	switch (ret) {
	case 0:
		backoff_clear(e, dev.id);
		session_add(e, ur.account_id, ur.device_id, &secrets);
		result(res, 200, PT_BLANK, "unlocked");
		snprintf(res->account_id, sizeof(res->account_id), "%s", ur.account_id);
		snprintf(res->device_id, sizeof(res->device_id), "%s", ur.device_id);
		break;
	case HK_ERR_AUTH:
		backoff_fail(e, dev.id);
		result(res, 401, PT_BAD_KEY, "wrong device key");
		break;
	case HK_ERR_STATE: result(res, 403, PT_WIPED, "this account was wiped"); break;
	case HK_ERR_INVAL: result(res, 400, PT_BLANK, "the device key must be 32 bytes"); break;
	default:
		log_err("unlock of %s failed: %s", dev.account_id, err ? err : hk_strerror(ret));
		result(res, 500, PT_BLANK, "unlock failed");
		break;
	}
out:
	account_secrets_free(&secrets);
	secret_free(&device_key);
}

void engine_touch(struct engine *e, const uint8_t *token, size_t token_len,
		  struct engine_result *res)
{
	struct store_device dev;
	const char *err;
	memset(res, 0, sizeof(*res));
	if (!device_of(e, token, token_len, &dev, res))
		return;
	int64_t now = hk_clock_now(e->cfg.clock);
	if (store_device_touch(e->cfg.store, dev.id, now, &err) < 0) {
		result(res, 500, PT_BLANK, "store failure");
		return;
	}
	struct session *s = session_get(e, dev.account_id);
	if (s != NULL)
		s->last_activity_ms = now;
	result(res, 200, PT_BLANK, s != NULL ? "unlocked" : "locked");
	snprintf(res->account_id, sizeof(res->account_id), "%s", dev.account_id);
	snprintf(res->device_id, sizeof(res->device_id), "%s", dev.id);
}

void engine_delete(struct engine *e, const uint8_t *token, size_t token_len,
		   struct engine_result *res)
{
	struct store_device dev;
	const char *err;
	memset(res, 0, sizeof(*res));
	if (!device_of(e, token, token_len, &dev, res))
		return;
	struct store_audit a = {.time_ms = hk_clock_now(e->cfg.clock), .event = STORE_AUDIT_DELETE};
	snprintf(a.account_id, sizeof(a.account_id), "%s", dev.account_id);
	snprintf(a.device, sizeof(a.device), "%s", dev.eas_device_id);
	if (store_account_delete(e->cfg.store, dev.account_id, &a, &err) < 0) {
		result(res, 500, PT_BLANK, "the account could not be deleted");
		return;
	}
	session_drop(e, dev.account_id);
	backoff_clear(e, dev.id);
	log_info("account %s deleted by its device", dev.account_id);
	result(res, 204, PT_BLANK, "deleted");
	snprintf(res->account_id, sizeof(res->account_id), "%s", dev.account_id);
}

/* ---- lifecycle and admin --------------------------------------------- */

static void flush_session(struct engine *e, const char *account_id, const char *why)
{
	char id[STORE_ID_MAX];
	const char *err;
	snprintf(id, sizeof(id), "%s", account_id);
	session_drop(e, id);
	if (store_account_set_state(e->cfg.store, id, STORE_ACCOUNT_FLUSHED,
				    hk_clock_now(e->cfg.clock), &err) < 0)
		log_warn("flush %s: %s", id, err);
	audit(e, STORE_AUDIT_FLUSH, id, NULL, why);
	log_info("account %s flushed (%s)", id, why);
}

void engine_tick(struct engine *e)
{
	int64_t now = hk_clock_now(e->cfg.clock);
	for (unsigned b = 0; b < BUCKETS; b++) {
		struct session *s = e->sessions[b];
		while (s != NULL) {
			struct session *next = s->next;
			if (now - s->last_activity_ms >= e->cfg.flush_after_ms)
				flush_session(e, s->account_id, "inactive");
			s = next;
		}
		/* expired back-offs go too */
		struct backoff **pp = &e->backoffs[b];
		while (*pp != NULL) {
			if ((*pp)->until_ms != 0 && (*pp)->until_ms + BACKOFF_MAX_MS < now) {
				struct backoff *old = *pp;
				*pp = old->next;
				free(old);
			} else {
				pp = &(*pp)->next;
			}
		}
	}
	if (now >= e->next_purge_ms) {
		struct engine_result r;
		engine_admin_purge(e, &r);
		e->next_purge_ms = now + e->cfg.purge_every_ms;
	}
}

void engine_admin_purge(struct engine *e, struct engine_result *res)
{
	int64_t now = hk_clock_now(e->cfg.clock);
	unsigned n = 0;
	const char *err;
	memset(res, 0, sizeof(*res));
	int ret = store_account_purge_inactive(e->cfg.store, now - e->cfg.flush_after_ms, now, &n,
					       &err);
	/* a purged account was inactive past flush_after, so it has no session;
	 * drop any that a clock jump left behind all the same */
	for (unsigned b = 0; b < BUCKETS; b++) {
		struct session *s = e->sessions[b];
		while (s != NULL) {
			struct session *next = s->next;
			struct store_account acct;
			if (store_account_get(e->cfg.store, s->account_id, &acct, &err) ==
			    HK_ERR_NOT_FOUND)
				session_drop(e, s->account_id);
			s = next;
		}
	}
	if (ret < 0) {
		result(res, 500, PT_BLANK, "purge stopped after %u accounts: %s", n, err);
		return;
	}
	if (n > 0)
		log_notice("purge: %u inactive account(s) removed", n);
	result(res, 200, PT_BLANK, "%u account(s) purged", n);
}

void engine_admin_wipe(struct engine *e, const char *account_id, struct engine_result *res)
{
	const char *err;
	memset(res, 0, sizeof(*res));
	struct store_audit a = {.time_ms = hk_clock_now(e->cfg.clock), .event = STORE_AUDIT_WIPE};
	snprintf(a.account_id, sizeof(a.account_id), "%s", account_id);
	int ret = store_account_wipe(e->cfg.store, account_id, hk_clock_now(e->cfg.clock), &a,
				     &err);
	if (ret == HK_ERR_NOT_FOUND) {
		result(res, 404, PT_BLANK, "no such account");
		return;
	}
	if (ret < 0) {
		result(res, 500, PT_BLANK, "wipe failed: %s", err);
		return;
	}
	session_drop(e, account_id);
	log_notice("account %s wiped by the administrator", account_id);
	result(res, 200, PT_BLANK, "wiped");
}

void engine_admin_flush(struct engine *e, const char *account_id, struct engine_result *res)
{
	memset(res, 0, sizeof(*res));
	if (session_get(e, account_id) == NULL) {
		result(res, 404, PT_BLANK, "account not unlocked");
		return;
	}
	flush_session(e, account_id, "administrator");
	result(res, 200, PT_BLANK, "flushed");
}

int engine_new(const struct engine_config *cfg, struct engine **engine_r)
{
	if (cfg->store == NULL || cfg->mk == NULL || cfg->clock == NULL || cfg->http == NULL ||
	    cfg->flush_after_ms <= 0 || cfg->purge_every_ms <= 0)
		return HK_ERR_INVAL;
	struct engine *e = calloc(1, sizeof(*e));
	if (e == NULL)
		abort();
	e->cfg = *cfg;
	e->next_purge_ms = hk_clock_now(cfg->clock) + cfg->purge_every_ms;
	if (cfg->base != NULL) {
		e->admit_ev = event_new(cfg->base, -1, 0, on_admit, e);
		if (e->admit_ev == NULL) {
			free(e);
			return HK_ERR_NOMEM;
		}
	}
	*engine_r = e;
	return 0;
}

void engine_free(struct engine **ep)
{
	struct engine *e = *ep;
	if (e == NULL)
		return;
	*ep = NULL;
	if (e->admit_ev != NULL)
		event_free(e->admit_ev); /* no admissions while sessions go */
	e->admit_ev = NULL;
	while (e->pending != NULL)
		pending_free(e->pending);
	for (unsigned b = 0; b < BUCKETS; b++) {
		while (e->sessions[b] != NULL)
			session_drop(e, e->sessions[b]->account_id);
		while (e->backoffs[b] != NULL) {
			struct backoff *p = e->backoffs[b];
			e->backoffs[b] = p->next;
			free(p);
		}
	}
	free(e);
}
