/* The admin control socket: see control.h for the protocol.
 *
 * One struct conn per client on a bufferevent. Requests are answered one at
 * a time: a line is read only when the previous answer has been written
 * out, so a client that sends without reading stalls itself (the input
 * stops at the read high-water mark) instead of growing our buffers. */
#include "relay/control.h"

#include "crypto/wipealloc.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "relay/engine.h"
#include "relay/json-build.h"
#include "store/store.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define ERROR_TEXT_MAX 512
#define ACCEPT_RETRY_MS 1000
#define AUDIT_LIMIT_DEFAULT 100

struct conn {
	struct conn *prev, *next;
	struct control *ctl;
	struct bufferevent *bev;
	uid_t uid;
	pid_t pid;
	bool discarding; /* skipping the rest of an over-long line */
	bool eof;	 /* the client closed its side: answer what is buffered, then close */
	bool closing;	 /* close once the output is written */
};

struct control {
	struct control_ctx ctx;
	struct event_base *base;
	struct evconnlistener *listener;
	struct event *retry; /* re-enables accepting after an accept() failure */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev; /* of the socket file we made, so that we remove only that */
	ino_t ino;
	struct conn *conns;
	unsigned nconns;
};

static _Thread_local char error_text[ERROR_TEXT_MAX];

static int fail(int code, const char **error_r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(int code, const char **error_r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(error_text, sizeof(error_text), fmt, ap);
	va_end(ap);
	*error_r = error_text;
	return code;
}

/* ---- jansson -------------------------------------------------------- */

static pthread_once_t json_once = PTHREAD_ONCE_INIT;

static void json_init_once(void)
{
	json_set_alloc_funcs(wipealloc_malloc, wipealloc_free);
}

void control_json_init(void)
{
	if (pthread_once(&json_once, json_init_once) != 0)
		abort();
}

/* Out of memory aborts (STYLE), as in relay/json-build.h. */
static json_t *jint(int64_t v)
{
	json_t *j = json_integer((json_int_t)v);
	if (j == NULL)
		abort();
	return j;
}

/* Stored text is not always valid UTF-8 (a User-Agent is whatever the
 * device sent); jansson refuses such strings, so bytes >= 0x80 become '?'
 * then. */
static json_t *jstr(const char *s)
{
	json_t *j = json_string(s);
	if (j != NULL)
		return j;
	size_t n = strlen(s);
	char *copy = malloc(n + 1);
	if (copy == NULL)
		abort();
	for (size_t i = 0; i < n; i++)
		copy[i] = (unsigned char)s[i] >= 0x80 ? '?' : s[i];
	copy[n] = '\0';
	j = json_string(copy);
	free(copy);
	if (j == NULL)
		abort();
	return j;
}

/* A time: Unix ms, or null for 0 ("never"). */
static json_t *jtime(int64_t ms)
{
	return ms == 0 ? json_null() : jint(ms);
}

static json_t *answer_ok(void)
{
	json_t *j = jobj();
	jset(j, "ok", json_true());
	return j;
}

static json_t *answer_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static json_t *answer_error(const char *fmt, ...)
{
	char text[ERROR_TEXT_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	json_t *j = jobj();
	jset(j, "ok", json_false());
	jset(j, "error", jstr(text));
	return j;
}

/* ---- request arguments ---------------------------------------------- */

/* A string argument of fewer than max bytes, without control characters.
 * Absent: *out = NULL (an error if required). false: *err_r is the answer. */
static bool arg_str(json_t *req, const char *key, bool required, size_t max, const char **out,
		    json_t **err_r)
{
	json_t *v = json_object_get(req, key);
	*out = NULL;
	if (v == NULL || json_is_null(v)) {
		if (required) {
			*err_r = answer_error("missing argument \"%s\"", key);
			return false;
		}
		return true;
	}
	if (!json_is_string(v)) {
		*err_r = answer_error("argument \"%s\" must be a string", key);
		return false;
	}
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	if (n == 0 && required) {
		*err_r = answer_error("argument \"%s\" must not be empty", key);
		return false;
	}
	if (n >= max) {
		*err_r = answer_error("argument \"%s\" is too long (at most %zu bytes)", key,
				      max - 1);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch == 0x7f) {
			*err_r = answer_error("argument \"%s\" holds a control character", key);
			return false;
		}
	}
	*out = s;
	return true;
}

/* An integer argument in [min, max]; def when absent. */
static bool arg_int(json_t *req, const char *key, bool required, int64_t min, int64_t max,
		    int64_t def, int64_t *out, json_t **err_r)
{
	json_t *v = json_object_get(req, key);
	*out = def;
	if (v == NULL || json_is_null(v)) {
		if (required) {
			*err_r = answer_error("missing argument \"%s\"", key);
			return false;
		}
		return true;
	}
	if (!json_is_integer(v)) {
		*err_r = answer_error("argument \"%s\" must be an integer", key);
		return false;
	}
	json_int_t i = json_integer_value(v);
	if (i < min || i > max) {
		*err_r = answer_error("argument \"%s\" must be between %lld and %lld", key,
				      (long long)min, (long long)max);
		return false;
	}
	*out = (int64_t)i;
	return true;
}

/* ---- answers built from store rows ---------------------------------- */

static json_t *account_json(const struct control *ctl, const struct store_account *a,
			    unsigned devices)
{
	bool unlocked = engine_is_unlocked(ctl->ctx.engine, a->id);
	json_t *j = jobj();
	jset(j, "id", jstr(a->id));
	jset(j, "username", jstr(a->username));
	jset(j, "email", a->email[0] != '\0' ? jstr(a->email) : json_null());
	jset(j, "server", jstr(a->server_url));
	const char *state = store_account_state_name(a->state);
	jset(j, "state", jstr(state != NULL ? state : "unknown"));
	jset(j, "unlocked", json_boolean(unlocked));
	jset(j, "created_ms", jtime(a->created_ms));
	jset(j, "last_activity_ms", jtime(a->last_activity_ms));
	jset(j, "flushed_ms", jtime(a->flushed_ms));
	jset(j, "devices", jint(devices));
	jset(j, "next_flush_ms",
	     unlocked ? jint(a->last_activity_ms + ctl->ctx.flush_after_ms) : json_null());
	return j;
}

static json_t *device_json(const struct store_device *d)
{
	json_t *j = jobj();
	jset(j, "id", jstr(d->id));
	jset(j, "eas_device_id", jstr(d->eas_device_id));
	jset(j, "device_type", jstr(d->device_type));
	jset(j, "user_agent", d->user_agent[0] != '\0' ? jstr(d->user_agent) : json_null());
	jset(j, "created_ms", jtime(d->created_ms));
	jset(j, "last_seen_ms", jtime(d->last_seen_ms));
	jset(j, "tombstoned", json_boolean(d->tombstoned_ms != 0));
	jset(j, "tombstoned_ms", jtime(d->tombstoned_ms));
	return j;
}

static json_t *rule_json(const struct store_block_rule *r)
{
	json_t *j = jobj();
	const char *kind = store_block_kind_name(r->kind);
	jset(j, "id", jint(r->id));
	jset(j, "kind", jstr(kind != NULL ? kind : "unknown"));
	jset(j, "pattern", jstr(r->pattern));
	jset(j, "note", r->note[0] != '\0' ? jstr(r->note) : json_null());
	jset(j, "created_ms", jtime(r->created_ms));
	return j;
}

static json_t *audit_json(const struct store_audit *a)
{
	json_t *j = jobj();
	const char *ev = store_audit_event_name(a->event);
	jset(j, "id", jint(a->id));
	jset(j, "time_ms", jint(a->time_ms));
	jset(j, "event", jstr(ev != NULL ? ev : "unknown"));
	jset(j, "account", a->account_id[0] != '\0' ? jstr(a->account_id) : json_null());
	jset(j, "device", a->device[0] != '\0' ? jstr(a->device) : json_null());
	jset(j, "detail", a->detail[0] != '\0' ? jstr(a->detail) : json_null());
	return j;
}

/* An engine result as an answer: ok with its detail on 2xx. */
static json_t *engine_answer(const struct engine_result *res, const char *account_id)
{
	if (res->status < 200 || res->status > 299)
		return answer_error("%s", res->detail[0] != '\0' ? res->detail : "failed");
	json_t *j = answer_ok();
	if (account_id != NULL)
		jset(j, "account", jstr(account_id));
	jset(j, "detail", jstr(res->detail));
	return j;
}

/* ---- commands ------------------------------------------------------- */

/* The account the request's "id" names, into *acct: true; else false with
 * the answer to send in *ans (bad argument, no such account, store failure). */
static bool arg_account(struct control *ctl, json_t *req, const char **id_r,
			struct store_account *acct, json_t **ans)
{
	const char *err;
	if (!arg_str(req, "id", true, STORE_ID_MAX, id_r, ans))
		return false;
	int ret = store_account_get(ctl->ctx.store, *id_r, acct, &err);
	if (ret == HK_ERR_NOT_FOUND)
		*ans = answer_error("no such account: %s", *id_r);
	else if (ret < 0)
		*ans = answer_error("store failure: %s", err);
	return ret == 0;
}

static json_t *cmd_accounts(struct conn *c, json_t *req)
{
	struct control *ctl = c->ctl;
	const char *after, *err;
	int64_t limit;
	json_t *ans = NULL;
	if (!arg_str(req, "after", false, STORE_ID_MAX, &after, &ans) ||
	    !arg_int(req, "limit", false, 1, CONTROL_PAGE_MAX, CONTROL_PAGE_MAX, &limit, &ans))
		return ans;
	struct store_account_entry *rows = NULL;
	size_t n = 0;
	if (store_account_list(ctl->ctx.store, after != NULL ? after : "", (unsigned)limit, &rows,
			       &n, &err) < 0)
		return answer_error("store failure: %s", err);
	json_t *list = jarr();
	for (size_t i = 0; i < n; i++)
		jpush(list, account_json(ctl, &rows[i].account, rows[i].device_count));
	ans = answer_ok();
	jset(ans, "accounts", list);
	if (n > 0 && n == (size_t)limit)
		jset(ans, "next", jstr(rows[n - 1].account.id));
	store_list_free(&rows);
	return ans;
}

static json_t *cmd_account(struct conn *c, json_t *req)
{
	struct control *ctl = c->ctl;
	const char *id, *err;
	json_t *ans = NULL;
	struct store_account acct;
	if (!arg_account(ctl, req, &id, &acct, &ans))
		return ans;
	struct store_device *devs = NULL;
	size_t n = 0;
	if (store_device_list(ctl->ctx.store, id, &devs, &n, &err) < 0)
		return answer_error("store failure: %s", err);
	json_t *list = jarr();
	for (size_t i = 0; i < n; i++)
		jpush(list, device_json(&devs[i]));
	store_list_free(&devs);
	ans = answer_ok();
	jset(ans, "account", account_json(ctl, &acct, (unsigned)n));
	jset(ans, "devices", list);
	return ans;
}

static json_t *cmd_wipe(struct conn *c, json_t *req)
{
	const char *id;
	json_t *ans = NULL;
	if (!arg_str(req, "id", true, STORE_ID_MAX, &id, &ans))
		return ans;
	log_notice("control: uid %u pid %d: wipe %s", (unsigned)c->uid, (int)c->pid, id);
	struct engine_result res;
	engine_admin_wipe(c->ctl->ctx.engine, id, &res);
	if (res.status == 404)
		return answer_error("no such account: %s", id);
	return engine_answer(&res, id);
}

static json_t *cmd_flush(struct conn *c, json_t *req)
{
	struct control *ctl = c->ctl;
	const char *id;
	json_t *ans = NULL;
	/* the engine only knows unlocked accounts: tell "unknown" apart */
	struct store_account acct;
	if (!arg_account(ctl, req, &id, &acct, &ans))
		return ans;
	log_notice("control: uid %u pid %d: flush %s", (unsigned)c->uid, (int)c->pid, id);
	struct engine_result res;
	engine_admin_flush(ctl->ctx.engine, id, &res);
	return engine_answer(&res, id);
}

static json_t *cmd_purge(struct conn *c, json_t *req)
{
	(void)req;
	log_notice("control: uid %u pid %d: purge", (unsigned)c->uid, (int)c->pid);
	struct engine_result res;
	engine_admin_purge(c->ctl->ctx.engine, &res);
	return engine_answer(&res, NULL);
}

static json_t *cmd_block_add(struct conn *c, json_t *req)
{
	struct control *ctl = c->ctl;
	const char *kind, *pattern, *note, *err;
	json_t *ans = NULL;
	if (!arg_str(req, "kind", true, STORE_NAME_MAX, &kind, &ans) ||
	    !arg_str(req, "pattern", true, STORE_NAME_MAX, &pattern, &ans) ||
	    !arg_str(req, "note", false, STORE_DETAIL_MAX, &note, &ans))
		return ans;
	struct store_block_rule rule = {.created_ms = hk_clock_now(ctl->ctx.clock)};
	if (store_block_kind_parse(kind, &rule.kind) < 0)
		return answer_error("unknown block rule kind \"%s\" (user_glob, domain, "
				    "device_type, device_id, user_agent)",
				    kind);
	snprintf(rule.pattern, sizeof(rule.pattern), "%s", pattern);
	snprintf(rule.note, sizeof(rule.note), "%s", note != NULL ? note : "");
	int ret = store_block_add(ctl->ctx.store, &rule, &rule.id, &err);
	if (ret == HK_ERR_EXISTS)
		return answer_error("a %s rule for that pattern exists already", kind);
	if (ret < 0)
		return answer_error("store failure: %s", err);
	log_notice("control: uid %u pid %d: block rule %lld added (%s)", (unsigned)c->uid,
		   (int)c->pid, (long long)rule.id, kind);
	ans = answer_ok();
	jset(ans, "rule", rule_json(&rule));
	return ans;
}

static json_t *cmd_block_list(struct conn *c, json_t *req)
{
	(void)req;
	const char *err;
	struct store_block_rule *rules = NULL;
	size_t n = 0;
	if (store_block_list(c->ctl->ctx.store, &rules, &n, &err) < 0)
		return answer_error("store failure: %s", err);
	json_t *list = jarr();
	for (size_t i = 0; i < n; i++)
		jpush(list, rule_json(&rules[i]));
	store_list_free(&rules);
	json_t *ans = answer_ok();
	jset(ans, "rules", list);
	return ans;
}

static json_t *cmd_block_remove(struct conn *c, json_t *req)
{
	const char *err;
	int64_t id;
	json_t *ans = NULL;
	if (!arg_int(req, "id", true, 1, INT64_MAX, 0, &id, &ans))
		return ans;
	int ret = store_block_remove(c->ctl->ctx.store, id, &err);
	if (ret == HK_ERR_NOT_FOUND)
		return answer_error("no such block rule: %lld", (long long)id);
	if (ret < 0)
		return answer_error("store failure: %s", err);
	log_notice("control: uid %u pid %d: block rule %lld removed", (unsigned)c->uid,
		   (int)c->pid, (long long)id);
	ans = answer_ok();
	jset(ans, "id", jint(id));
	return ans;
}

static json_t *cmd_audit(struct conn *c, json_t *req)
{
	const char *account, *err;
	int64_t since, limit;
	json_t *ans = NULL;
	if (!arg_int(req, "since", false, 0, INT64_MAX, 0, &since, &ans) ||
	    !arg_str(req, "account", false, STORE_ID_MAX, &account, &ans) ||
	    !arg_int(req, "limit", false, 1, CONTROL_PAGE_MAX, AUDIT_LIMIT_DEFAULT, &limit, &ans))
		return ans;
	struct store_audit *rows = NULL;
	size_t n = 0;
	if (store_audit_list(c->ctl->ctx.store, since, account, (unsigned)limit, &rows, &n,
			     &err) < 0)
		return answer_error("store failure: %s", err);
	json_t *list = jarr();
	for (size_t i = 0; i < n; i++)
		jpush(list, audit_json(&rows[i]));
	store_list_free(&rows);
	ans = answer_ok();
	jset(ans, "entries", list);
	return ans;
}

static json_t *cmd_stats(struct conn *c, json_t *req)
{
	(void)req;
	const struct control_ctx *ctx = &c->ctl->ctx;
	const char *err;
	struct store_stats st;
	if (store_stats(ctx->store, &st, &err) < 0)
		return answer_error("store failure: %s", err);
	int64_t now = hk_clock_now(ctx->clock);
	json_t *s = jobj();
	jset(s, "accounts", jint(st.accounts));
	jset(s, "devices", jint(st.devices));
	jset(s, "envelopes", jint(st.envelopes));
	jset(s, "collections", jint(st.collections));
	jset(s, "items", jint(st.items));
	jset(s, "push_subs", jint(st.push_subs));
	jset(s, "block_rules", jint(st.block_rules));
	jset(s, "leases", jint(st.leases));
	jset(s, "audit", jint(st.audit));
	jset(s, "unlocked", jint((int64_t)engine_unlocked_count(ctx->engine)));
	jset(s, "syncing", jint((int64_t)engine_syncing_count(ctx->engine)));
	jset(s, "sync_waiting", jint((int64_t)engine_sync_waiting_count(ctx->engine)));
	jset(s, "started_ms", jint(ctx->started_ms));
	jset(s, "uptime_ms", jint(now > ctx->started_ms ? now - ctx->started_ms : 0));
	jset(s, "now_ms", jint(now));
	jset(s, "flush_after_ms", jint(ctx->flush_after_ms));
#ifdef HK_VERSION
	jset(s, "version", jstr(HK_VERSION));
#endif
	json_t *ans = answer_ok();
	jset(ans, "stats", s);
	return ans;
}

struct command {
	const char *name;
	json_t *(*fn)(struct conn *c, json_t *req);
	const char *fields[4]; /* allowed besides "cmd"; NULL-terminated */
};

static const struct command commands[] = {
	{"accounts", cmd_accounts, {"after", "limit", NULL}},
	{"account", cmd_account, {"id", NULL}},
	{"wipe", cmd_wipe, {"id", NULL}},
	{"flush", cmd_flush, {"id", NULL}},
	{"purge", cmd_purge, {NULL}},
	{"block-add", cmd_block_add, {"kind", "pattern", "note", NULL}},
	{"block-list", cmd_block_list, {NULL}},
	{"block-remove", cmd_block_remove, {"id", NULL}},
	{"audit", cmd_audit, {"since", "account", "limit", NULL}},
	{"stats", cmd_stats, {NULL}},
};

static json_t *dispatch(struct conn *c, json_t *req)
{
	json_t *cmd = json_object_get(req, "cmd");
	if (cmd == NULL)
		return answer_error("missing \"cmd\"");
	if (!json_is_string(cmd))
		return answer_error("\"cmd\" must be a string");
	const char *name = json_string_value(cmd);
	const struct command *k = NULL;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]) && k == NULL; i++)
		if (strcmp(commands[i].name, name) == 0)
			k = &commands[i];
	if (k == NULL)
		return answer_error("unknown command \"%.64s\"", name);
	const char *key;
	json_t *val;
	json_object_foreach(req, key, val)
	{
		bool known = strcmp(key, "cmd") == 0;
		for (size_t i = 0; !known && k->fields[i] != NULL; i++)
			known = strcmp(key, k->fields[i]) == 0;
		if (!known)
			return answer_error("unknown argument \"%.64s\" for %s", key, k->name);
	}
	return k->fn(c, req);
}

/* ---- connections ---------------------------------------------------- */

static int dump_to_evbuffer(const char *buf, size_t size, void *data)
{
	return evbuffer_add(data, buf, size);
}

/* Queues one answer line (compact JSON never holds a raw newline). */
static void send_answer(struct conn *c, json_t *ans)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	if (json_dump_callback(ans, dump_to_evbuffer, out, JSON_COMPACT) < 0 ||
	    evbuffer_add(out, "\n", 1) < 0)
		abort(); /* out of memory */
}

static void handle_line(struct conn *c, const char *line, size_t len)
{
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return; /* a blank line is no request */
	json_error_t jerr;
	json_t *ans;
	json_t *req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (req == NULL)
		ans = answer_error("malformed request: %s (column %d)", jerr.text, jerr.column);
	else if (!json_is_object(req))
		ans = answer_error("a request must be a JSON object");
	else
		ans = dispatch(c, req);
	json_decref(req);
	send_answer(c, ans);
	json_decref(ans);
}

static void answer_too_long(struct conn *c)
{
	json_t *ans = answer_error("request line too long (at most %d bytes)", CONTROL_LINE_MAX);
	send_answer(c, ans);
	json_decref(ans);
}

static void conn_free(struct conn *c)
{
	struct control *ctl = c->ctl;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		ctl->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	bufferevent_free(c->bev); /* closes the socket */
	ctl->nconns--;
	free(c);
}

/* Answers buffered request lines while no answer waits to be written, then
 * closes the connection if it is done. The last thing every callback does:
 * c may be gone afterwards. */
static void conn_process(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer *out = bufferevent_get_output(c->bev);
	while (!c->closing && evbuffer_get_length(out) == 0) {
		size_t eol_len = 0;
		struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
		size_t avail = evbuffer_get_length(in);
		if (eol.pos < 0) {
			if (c->discarding) {
				evbuffer_drain(in, avail);
			} else if (avail > CONTROL_LINE_MAX) {
				evbuffer_drain(in, avail);
				c->discarding = true;
				answer_too_long(c);
			}
			break;
		}
		size_t len = (size_t)eol.pos;
		if (c->discarding) {
			c->discarding = false;
		} else if (len > CONTROL_LINE_MAX) {
			answer_too_long(c);
		} else {
			const char *line = len > 0 ? (const char *)evbuffer_pullup(in, (ssize_t)len)
						   : "";
			if (line == NULL)
				abort(); /* out of memory */
			handle_line(c, line, len);
		}
		evbuffer_drain(in, len + eol_len);
	}
	if (evbuffer_get_length(out) == 0 && (c->closing || c->eof))
		conn_free(c);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_process(arg);
}

/* Called when the output has been written out entirely. */
static void on_write(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_process(arg);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	if ((what & BEV_EVENT_EOF) != 0 && (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) == 0) {
		c->eof = true;
		bufferevent_disable(bev, EV_READ);
		conn_process(c);
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) != 0)
		log_debug("control: closing idle connection of uid %u pid %d", (unsigned)c->uid,
			  (int)c->pid);
	conn_free(c);
}

static bool peer_allowed(uid_t uid)
{
	return uid == 0 || uid == geteuid();
}

/* Best effort, on a socket we are about to close without a bufferevent. */
static void refuse_now(int fd, const char *why)
{
	char line[128];
	int n = snprintf(line, sizeof(line), "{\"ok\":false,\"error\":\"%s\"}\n", why);
	if (n > 0 && (size_t)n < sizeof(line) &&
	    send(fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("control: could not tell a refused client why: %s", strerror(errno));
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	(void)l;
	(void)sa;
	(void)salen;
	struct control *ctl = arg;
	struct ucred cr;
	socklen_t crlen = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0 || crlen != sizeof(cr)) {
		log_warn("control: cannot read peer credentials: %s", strerror(errno));
		close(fd);
		return;
	}
	if (ctl->nconns >= CONTROL_CONN_MAX) {
		log_warn("control: %u connections open; refusing uid %u pid %d", ctl->nconns,
			 (unsigned)cr.uid, (int)cr.pid);
		refuse_now(fd, "too many connections");
		close(fd);
		return;
	}
	struct conn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		abort();
	c->ctl = ctl;
	c->uid = cr.uid;
	c->pid = cr.pid;
	c->bev = bufferevent_socket_new(ctl->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		log_err("control: cannot set up a connection");
		close(fd);
		free(c);
		return;
	}
	c->next = ctl->conns;
	if (ctl->conns != NULL)
		ctl->conns->prev = c;
	ctl->conns = c;
	ctl->nconns++;

	int64_t ms = ctl->ctx.idle_timeout_ms > 0 ? ctl->ctx.idle_timeout_ms
						  : CONTROL_IDLE_TIMEOUT_MS;
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
			     .tv_usec = (suseconds_t)(ms % 1000) * 1000};
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	/* a full line plus its '\n' fits; beyond that the line is too long */
	bufferevent_setwatermark(c->bev, EV_READ, 0, CONTROL_LINE_MAX + 1);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	if (!peer_allowed(cr.uid)) {
		log_warn("control: refused uid %u pid %d: only root and uid %u may connect",
			 (unsigned)cr.uid, (int)cr.pid, (unsigned)geteuid());
		json_t *ans = answer_error("permission denied: only root and uid %u may use "
					   "the control socket",
					   (unsigned)geteuid());
		send_answer(c, ans);
		json_decref(ans);
		c->closing = true;
		bufferevent_enable(c->bev, EV_WRITE);
		return;
	}
	log_debug("control: connection from uid %u pid %d", (unsigned)cr.uid, (int)cr.pid);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct control *ctl = arg;
	if (evconnlistener_enable(ctl->listener) < 0)
		log_err("control: cannot resume accepting connections");
}

/* accept() failed for want of file descriptors or memory: pause instead of
 * spinning on a listener that stays readable. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
	struct control *ctl = arg;
	int err = EVUTIL_SOCKET_ERROR();
	log_err("control: accept: %s; pausing for %d ms", strerror(err), ACCEPT_RETRY_MS);
	evconnlistener_disable(l);
	struct timeval tv = {.tv_sec = ACCEPT_RETRY_MS / 1000,
			     .tv_usec = (ACCEPT_RETRY_MS % 1000) * 1000};
	if (evtimer_add(ctl->retry, &tv) < 0)
		log_err("control: cannot schedule accepting again");
}

/* ---- the socket file ------------------------------------------------ */

/* The directory must exist, belong to root or us, and not be
 * world-writable: else another user could replace the socket. */
static int check_dir(const char *path, const char **error_r)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *slash = strrchr(path, '/');
	size_t n = (size_t)(slash - path);
	if (n == 0)
		n = 1; /* "/sock": the root directory */
	memcpy(dir, path, n);
	dir[n] = '\0';
	struct stat st;
	if (stat(dir, &st) < 0)
		return fail(HK_ERR_IO, error_r, "control socket directory %s: %s", dir,
			    strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return fail(HK_ERR_PERM, error_r, "%s is not a directory", dir);
	if (st.st_uid != 0 && st.st_uid != geteuid())
		return fail(HK_ERR_PERM, error_r,
			    "control socket directory %s belongs to uid %u, not to root or "
			    "the daemon (uid %u)",
			    dir, (unsigned)st.st_uid, (unsigned)geteuid());
	if ((st.st_mode & S_IWOTH) != 0)
		return fail(HK_ERR_PERM, error_r,
			    "control socket directory %s is world-writable", dir);
	return 0;
}

/* Removes a socket file that nobody listens on (a dead daemon's); refuses
 * anything else at path. */
static int clear_stale(const struct sockaddr_un *sa, const char **error_r)
{
	struct stat st;
	if (lstat(sa->sun_path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return fail(HK_ERR_IO, error_r, "%s: %s", sa->sun_path, strerror(errno));
	}
	if (!S_ISSOCK(st.st_mode))
		return fail(HK_ERR_EXISTS, error_r,
			    "%s exists and is not a socket; not replacing it", sa->sun_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(HK_ERR_IO, error_r, "socket: %s", strerror(errno));
	int ret = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	int err = errno;
	close(fd);
	if (ret == 0 || err == EAGAIN || err == EINPROGRESS)
		return fail(HK_ERR_BUSY, error_r, "%s is in use by another process (is halfkeyd "
				 "already running?)",
			    sa->sun_path);
	if (err != ECONNREFUSED)
		return fail(HK_ERR_IO, error_r, "cannot probe %s: %s", sa->sun_path, strerror(err));
	if (unlink(sa->sun_path) < 0 && errno != ENOENT)
		return fail(HK_ERR_IO, error_r, "cannot remove stale socket %s: %s", sa->sun_path,
			    strerror(errno));
	log_notice("control: removed stale socket %s", sa->sun_path);
	return 0;
}

/* A listening socket at sa, mode 0600 from the start (umask), owned by us. */
static int make_socket(struct control *ctl, const struct sockaddr_un *sa, int *fd_r,
		       const char **error_r)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(HK_ERR_IO, error_r, "socket: %s", strerror(errno));
	/* umask is per process: control_new() runs at start-up, before any
	 * other thread creates files */
	mode_t old = umask(0177);
	int ret = bind(fd, (const struct sockaddr *)sa, sizeof(*sa));
	int err = errno;
	umask(old);
	if (ret < 0) {
		close(fd);
		return fail(HK_ERR_IO, error_r, "bind %s: %s", sa->sun_path, strerror(err));
	}
	struct stat st;
	if (chmod(sa->sun_path, 0600) < 0 || lstat(sa->sun_path, &st) < 0) {
		err = errno;
		unlink(sa->sun_path);
		close(fd);
		return fail(HK_ERR_IO, error_r, "%s: %s", sa->sun_path, strerror(err));
	}
	if (!S_ISSOCK(st.st_mode) || (st.st_mode & 07777) != 0600 || st.st_uid != geteuid()) {
		unlink(sa->sun_path);
		close(fd);
		return fail(HK_ERR_PERM, error_r, "%s: unexpected owner or mode after bind",
			    sa->sun_path);
	}
	ctl->dev = st.st_dev;
	ctl->ino = st.st_ino;
	*fd_r = fd;
	return 0;
}

int control_new(struct event_base *base, const char *path, const struct control_ctx *ctx,
		struct control **control_r, const char **error_r)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (base == NULL || path == NULL || ctx == NULL || ctx->engine == NULL ||
	    ctx->store == NULL || ctx->clock == NULL || ctx->flush_after_ms <= 0)
		return fail(HK_ERR_INVAL, error_r, "control: incomplete context");
	size_t len = strlen(path);
	if (path[0] != '/' || len < 2 || path[len - 1] == '/')
		return fail(HK_ERR_INVAL, error_r, "control socket path %s is not an absolute file "
				 "path",
			    path);
	if (len >= sizeof(sa.sun_path))
		return fail(HK_ERR_INVAL, error_r, "control socket path is too long (at most %zu "
				 "bytes)",
			    sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, len + 1);
	control_json_init();

	int ret;
	if ((ret = check_dir(path, error_r)) < 0 || (ret = clear_stale(&sa, error_r)) < 0)
		return ret;
	struct control *ctl = calloc(1, sizeof(*ctl));
	if (ctl == NULL)
		abort();
	ctl->ctx = *ctx;
	ctl->base = base;
	memcpy(ctl->path, sa.sun_path, len + 1);
	int fd = -1;
	if ((ret = make_socket(ctl, &sa, &fd, error_r)) < 0) {
		free(ctl);
		return ret;
	}
	ctl->retry = evtimer_new(base, on_retry, ctl);
	ctl->listener = evconnlistener_new(base, on_accept, ctl,
					   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
					   CONTROL_CONN_MAX, fd);
	if (ctl->retry == NULL || ctl->listener == NULL) {
		if (ctl->listener == NULL)
			close(fd);
		control_free(&ctl);
		return fail(HK_ERR_IO, error_r, "control: cannot listen on %s", path);
	}
	evconnlistener_set_error_cb(ctl->listener, on_accept_error);
	log_info("control: listening on %s", path);
	*control_r = ctl;
	return 0;
}

void control_free(struct control **cp)
{
	struct control *ctl = *cp;
	if (ctl == NULL)
		return;
	*cp = NULL;
	while (ctl->conns != NULL)
		conn_free(ctl->conns);
	if (ctl->listener != NULL)
		evconnlistener_free(ctl->listener);
	if (ctl->retry != NULL)
		event_free(ctl->retry);
	/* remove the file only if it is still ours (not a successor's) */
	struct stat st;
	if (ctl->ino != 0 && lstat(ctl->path, &st) == 0 && st.st_dev == ctl->dev &&
	    st.st_ino == ctl->ino && unlink(ctl->path) < 0)
		log_warn("control: cannot remove %s: %s", ctl->path, strerror(errno));
	free(ctl);
}

unsigned control_connection_count(const struct control *ctl)
{
	return ctl->nconns;
}
