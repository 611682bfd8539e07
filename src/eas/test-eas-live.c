/* Integration tests of the ActiveSync client (eas/client.h) and of the
 * command builders and parsers (eas/commands.h) against a real ActiveSync
 * server, protocol version 14.1 ([MS-ASCMD], [MS-ASPROV], [MS-ASHTTP]).
 *
 * Written to the protocol, never to one server: ids and SyncKeys are opaque,
 * nothing is assumed about ordering or timing. A change made on the server
 * is awaited with Ping (or by polling IMAP) under a generous deadline, never
 * with a fixed sleep; Sync is repeated until the server has nothing more
 * (no MoreAvailable and a round without items). Every case uses a fresh
 * DeviceId, and every message it delivers carries a random per-run token in
 * its subject, because the mailboxes are shared with other runs and other
 * tests: existing mail is never counted. Messages a case creates are
 * removed again at its end (best effort, over IMAP or EAS).
 *
 * Environment:
 *   HALFKEY_TEST_EAS_URL    the endpoint, https://host/Microsoft-Server-ActiveSync;
 *                           unset: nothing to test against, exit 77 (skipped)
 *   HALFKEY_TEST_EAS_CA     a PEM CA file that verifies the server; empty or
 *                           unset: the system's trust store
 *   HALFKEY_TEST_USER_A, HALFKEY_TEST_PASS_A, HALFKEY_TEST_ADDR_A
 *   HALFKEY_TEST_USER_B, HALFKEY_TEST_PASS_B, HALFKEY_TEST_ADDR_B
 *                           two test accounts: login, password, mail address
 *   HALFKEY_TEST_DELIVER    a command (run through /bin/sh, so it may carry
 *                           arguments) that puts new mail into a user's INBOX:
 *                           `$HALFKEY_TEST_DELIVER USER [SUBJECT|-]`, "-"
 *                           reading an RFC 5322 message from stdin;
 *                           HALFKEY_DELIVER_COUNT=N in its environment
 *                           delivers N messages, subjects suffixed " [i/N]"
 *   HALFKEY_TEST_IMAP_URL   optional: the same mailboxes over IMAP, same
 *                           logins (imap://host:port); unset: the cases that
 *                           check flags, deletes and moves server-side skip
 *   HALFKEY_TEST_IMAP_CA    optional: CA file for an imaps:// URL
 *   HALFKEY_TEST_IMAP_TRASH optional: the IMAP name of the Deleted Items
 *                           folder (default: its ActiveSync DisplayName)
 *   HALFKEY_TEST_CREATE_ITEM optional: a command creating calendar events and
 *                           contacts on the server:
 *                           `$HALFKEY_TEST_CREATE_ITEM USER event|contact [UID] [SUMMARY]`
 *                           (prints uid= and summary=), `... USER
 *                           delete-event|delete-contact UID`; unset: the
 *                           calendar/contacts case skips
 *   HALFKEY_TEST_VERBOSE=1  the client's debug log on stderr
 * scripts/eas-peer/README.md describes the project's own server (SOGo), and
 * scripts/check.sh brings it up and sets these before running the
 * integration tests. */
#include "crypto/secmem.h"
#include "eas/client.h"
#include "eas/commands.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "net/httpc.h"
#include "test.h"
#include "tls-fixture.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Deadlines bound a hang; a passing run takes a fraction of them. */
#define CMD_TIMEOUT_MS     180000L /* one command (a 50-message Sync window included) */
#define SETTLE_DEADLINE_MS 300000  /* Sync until the server has nothing more */
#define EVENT_DEADLINE_MS  120000  /* a server-side change reaches us */
#define PING_HEARTBEAT_S   120u    /* Pings that wait for a change */
#define IDLE_HEARTBEAT_S   10u     /* the idle Ping that must expire */
#define BULK_COUNT         200
#define BULK_WINDOW        50
#define OUT_MAX            65536

struct acct {
	const char *user, *pass, *addr;
};

static struct {
	struct event_base *base;
	struct event *tick;
	struct httpc *http;
	const char *url, *ca;
	struct acct a, b;
	const char *imap, *imap_ca, *imap_trash, *create_item;
	char token[16]; /* random per run: "hk" + 10 hex digits */
	int options;    /* 0 not asked yet, 1 the server offers 14.1, -1 not, -2 no answer */
	char versions[256];
	char commands[1024];
	struct tfx_pki pki;
	bool pki_made;
} L;

/* ---- time and output ---------------------------------------------------- */

static int64_t mono_ms(void)
{
	return hk_clock_mono(hk_clock_real());
}

static int64_t case_t0;

static void begin(const char *what)
{
	case_t0 = mono_ms();
	fprintf(stderr, "== %s\n", what);
}

/* One progress line: seconds since the case began, then the message. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "  [%6.2fs] ", (double)(mono_ms() - case_t0) / 1000.0);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v != NULL && *v != '\0' ? v : NULL;
}

static void random_hex(char *out, size_t hex_digits)
{
	uint8_t b[32];
	static const char digits[] = "0123456789abcdef";
	size_t n = (hex_digits + 1) / 2;
	if (n > sizeof(b))
		abort();
	secmem_random(b, n);
	for (size_t i = 0; i < hex_digits; i++)
		out[i] = digits[(b[i / 2] >> (i % 2 ? 0 : 4)) & 0xf];
	out[hex_digits] = '\0';
}

/* ---- the loop ----------------------------------------------------------- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Runs the loop until *flag is set or ms have passed; returns *flag. */
static bool run_until(const bool *flag, long ms)
{
	int64_t end = mono_ms() + ms;
	while (!*flag && mono_ms() < end)
		event_base_loop(L.base, EVLOOP_ONCE);
	return *flag;
}

/* Runs the loop for ms: gives what must not happen the chance to happen. */
static void run_for(long ms)
{
	bool never = false;
	(void)run_until(&never, ms);
}

/* ---- commands as synchronous steps -------------------------------------- */

struct result {
	bool done;
	int calls; /* how often the callback ran */
	enum eas_action action;
	enum httpc_result transport;
	long http_status;
	int http_version;
	int status;
	bool empty;
	struct eas_node *root;
	char versions[256];
	char commands[1024];
	char error[256];
	long elapsed_ms;
};

static void result_reset(struct result *r)
{
	eas_node_free(&r->root);
	memset(r, 0, sizeof(*r));
}

static void on_result(struct eas_response *resp, void *ctx)
{
	struct result *r = ctx;
	r->calls++;
	r->done = true;
	r->action = resp->action;
	r->transport = resp->transport;
	r->http_status = resp->http_status;
	r->http_version = resp->http_version;
	r->status = resp->status;
	r->empty = resp->empty;
	r->elapsed_ms = resp->elapsed_ms;
	eas_node_free(&r->root);
	r->root = resp->root; /* taken */
	resp->root = NULL;
	snprintf(r->versions, sizeof(r->versions), "%s",
	         resp->server_versions != NULL ? resp->server_versions : "");
	snprintf(r->commands, sizeof(r->commands), "%s",
	         resp->server_commands != NULL ? resp->server_commands : "");
	snprintf(r->error, sizeof(r->error), "%s", resp->error != NULL ? resp->error : "");
}

static void result_say(const char *what, const struct result *r)
{
	say("%s: %s, HTTP %ld, Status %d%s -> %s%s%s (%ld ms)", what,
	    httpc_result_str(r->transport), r->http_status, r->status, r->empty ? ", empty" : "",
	    eas_action_name(r->action), r->error[0] != '\0' ? ": " : "", r->error, r->elapsed_ms);
}

struct session {
	const struct acct *acct;
	char device_id[EAS_DEVICE_ID_MAX + 1];
	struct eas_client *c;
	struct eas_foldersync_result *fs;
	bool acked; /* Provision went through the acknowledgement step */
	char policy_key[16];
};

/* A client for acct (password pw) on url with a fresh random DeviceId. */
static bool session_new_at(struct session *s, const struct acct *a, const char *pw, const char *url,
                           const char *ca)
{
	memset(s, 0, sizeof(*s));
	s->acct = a;
	memcpy(s->device_id, "HkLive", 6);
	random_hex(s->device_id + 6, 20);
	struct eas_client_config cfg = {
	    .url = url,
	    .username = a->user,
	    .device_id = s->device_id,
	    .ca_file = ca,
	    .timeout_ms = CMD_TIMEOUT_MS,
	};
	struct secret *p = secret_dup(pw, strlen(pw));
	const char *err = NULL;
	int ret = eas_client_new(L.http, &cfg, p, &s->c, &err);
	secret_free(&p);
	if (!CHECK(ret == 0)) {
		fprintf(stderr, "  eas_client_new: %s\n", err != NULL ? err : "?");
		return false;
	}
	return true;
}

static bool session_new(struct session *s, const struct acct *a)
{
	return session_new_at(s, a, a->pass, L.url, L.ca);
}

static void session_close(struct session *s)
{
	if (s->c != NULL)
		CHECK_INT(eas_client_active(s->c), 0);
	eas_client_free(&s->c);
	eas_foldersync_result_free(&s->fs);
}

/* Sends cmd with *req (freed here; NULL: empty body) and waits for the
 * answer. False (and a failed check) when it could not start or no answer
 * came in time. */
static bool call_cmd(struct session *s, const char *cmd, struct eas_node **req, long timeout_ms,
                     struct result *r)
{
	result_reset(r);
	struct eas_call *call = NULL;
	int ret = eas_client_command(s->c, cmd, req != NULL ? *req : NULL, timeout_ms, on_result, r,
	                             &call);
	if (req != NULL)
		eas_node_free(req);
	if (!CHECK(ret == 0))
		return false;
	if (!run_until(&r->done, (timeout_ms > 0 ? timeout_ms : CMD_TIMEOUT_MS) + 30000)) {
		eas_call_cancel(&call);
		fprintf(stderr, "  %s: no answer in time\n", cmd);
		CHECK(!"command answered in time");
		return false;
	}
	return true;
}

static bool call_options(struct session *s, struct result *r)
{
	result_reset(r);
	struct eas_call *call = NULL;
	if (!CHECK(eas_client_options(s->c, on_result, r, &call) == 0))
		return false;
	if (!run_until(&r->done, CMD_TIMEOUT_MS + 30000)) {
		eas_call_cancel(&call);
		CHECK(!"OPTIONS answered in time");
		return false;
	}
	result_say("OPTIONS", r);
	return true;
}

/* True when the comma-separated list holds want as one of its items. */
static bool list_has(const char *list, const char *want)
{
	size_t n = strlen(want);
	for (const char *p = list; p != NULL && *p != '\0';) {
		while (*p == ' ' || *p == ',')
			p++;
		const char *e = p;
		while (*e != '\0' && *e != ',')
			e++;
		const char *t = e;
		while (t > p && t[-1] == ' ')
			t--;
		if ((size_t)(t - p) == n && strncmp(p, want, n) == 0)
			return true;
		p = e;
	}
	return false;
}

/* Asks the server once per run which versions and commands it offers; the
 * cases need 14.1, the one version the client speaks. */
static int server_options(void)
{
	if (L.options != 0)
		return L.options;
	struct session s;
	if (!session_new(&s, &L.a))
		return L.options = -2;
	struct result r = {0};
	if (call_options(&s, &r) && r.action == EAS_ACT_OK) {
		snprintf(L.versions, sizeof(L.versions), "%s", r.versions);
		snprintf(L.commands, sizeof(L.commands), "%s", r.commands);
		L.options = list_has(L.versions, EAS_PROTOCOL_VERSION) ? 1 : -1;
	} else {
		L.options = -2;
	}
	result_reset(&r);
	session_close(&s);
	return L.options;
}

#define NEED_SERVER()                                                                              \
	do {                                                                                       \
		int o_ = server_options();                                                         \
		if (o_ == -1)                                                                      \
			SKIP("the server offers ActiveSync %s, not %s, the version the client "    \
			     "speaks",                                                             \
			     L.versions, EAS_PROTOCOL_VERSION);                                    \
		REQUIRE(o_ == 1);                                                                  \
	} while (0)

static const struct eas_device_info devinfo = {
    .model = "Halfkey integration test",
    .friendly_name = "Halfkey test-eas-live",
    .os = "Linux",
    .os_language = "English",
    .user_agent = EAS_USER_AGENT,
};

/* The Provision dance of [MS-ASPROV] 3.1.5.1: the policy request, then,
 * when a policy came with a temporary PolicyKey, its acknowledgement, whose
 * answer carries the final key. Policy Status 2 (no policy for this
 * client) is a final answer without a key. The key, if any, is set on the
 * client for every later command. */
static bool session_provision(struct session *s)
{
	const char *err = NULL;
	struct eas_node *req = NULL;
	if (!CHECK(eas_provision_build(&devinfo, &req, &err) == 0))
		return false;
	struct result r = {0};
	bool ok = false;
	if (!call_cmd(s, "Provision", &req, 0, &r))
		goto out;
	result_say("Provision", &r);
	if (!CHECK(r.action == EAS_ACT_OK) || !CHECK(r.root != NULL))
		goto out;
	struct eas_provision_result pr;
	if (!CHECK(eas_provision_parse(r.root, &pr, &err) == 0)) {
		fprintf(stderr, "  provision parse: %s\n", err);
		goto out;
	}
	say("Provision: Status %d, policy %s, Policy Status %d, PolicyKey \"%s\"", pr.status,
	    pr.has_policy ? pr.policy_type : "(none)", pr.policy_status, pr.policy_key);
	if (!CHECK(!pr.remote_wipe) || !CHECK_INT(pr.status, EAS_PROVISION_OK) ||
	    !CHECK(pr.has_policy))
		goto out;
	if (pr.policy_status == EAS_POLICY_NONE) {
		/* final: nothing to acknowledge */
		CHECK_INT(pr.action, EAS_ACT_OK);
		snprintf(s->policy_key, sizeof(s->policy_key), "%s", pr.policy_key);
	} else {
		if (!CHECK_INT(pr.policy_status, EAS_POLICY_OK) || !CHECK(pr.policy_key[0] != '\0'))
			goto out;
		/* the temporary key goes in the acknowledgement and in its header */
		if (!CHECK(eas_client_set_policy_key(s->c, pr.policy_key) == 0) ||
		    !CHECK(eas_provision_build_ack(pr.policy_key, EAS_POLICY_ACK_OK, &req, &err) ==
		           0))
			goto out;
		if (!call_cmd(s, "Provision", &req, 0, &r))
			goto out;
		result_say("Provision (acknowledgement)", &r);
		if (!CHECK(r.action == EAS_ACT_OK) || !CHECK(r.root != NULL))
			goto out;
		if (!CHECK(eas_provision_parse(r.root, &pr, &err) == 0))
			goto out;
		say("acknowledged: Status %d, Policy Status %d, final PolicyKey \"%s\"", pr.status,
		    pr.policy_status, pr.policy_key);
		if (!CHECK_INT(pr.status, EAS_PROVISION_OK) ||
		    !CHECK_INT(pr.policy_status, EAS_POLICY_OK) || !CHECK(pr.policy_key[0] != '\0'))
			goto out;
		s->acked = true;
		snprintf(s->policy_key, sizeof(s->policy_key), "%s", pr.policy_key);
	}
	ok = CHECK(eas_client_set_policy_key(s->c, s->policy_key) == 0);
out:
	result_reset(&r);
	return ok;
}

/* FolderSync from "0": the whole hierarchy, kept in s->fs. */
static bool session_foldersync(struct session *s)
{
	const char *err = NULL;
	struct eas_node *req = NULL;
	if (!CHECK(eas_foldersync_build("0", &req, &err) == 0))
		return false;
	struct result r = {0};
	bool ok = false;
	if (!call_cmd(s, "FolderSync", &req, 0, &r))
		goto out;
	result_say("FolderSync", &r);
	if (!CHECK(r.action == EAS_ACT_OK) || !CHECK(r.root != NULL))
		goto out;
	eas_foldersync_result_free(&s->fs);
	if (!CHECK(eas_foldersync_parse(r.root, &s->fs, &err) == 0)) {
		fprintf(stderr, "  foldersync parse: %s\n", err);
		goto out;
	}
	say("FolderSync: Status %d, %zu folders, SyncKey \"%s\"", s->fs->status, s->fs->n_changes,
	    s->fs->sync_key != NULL ? s->fs->sync_key : "(none)");
	ok = CHECK_INT(s->fs->status, EAS_FOLDERSYNC_OK) && CHECK(s->fs->sync_key != NULL);
out:
	result_reset(&r);
	return ok;
}

static bool session_open(struct session *s, const struct acct *a)
{
	if (!session_new(s, a))
		return false;
	say("session for %s, fresh DeviceId %s", a->user, s->device_id);
	return session_provision(s) && session_foldersync(s);
}

/* The first folder of that type and how many there are. */
static const struct eas_folder_change *folder_of_type(const struct session *s, int type,
                                                      size_t *count_r)
{
	const struct eas_folder_change *first = NULL;
	size_t n = 0;
	for (size_t i = 0; s->fs != NULL && i < s->fs->n_changes; i++) {
		const struct eas_folder_change *f = &s->fs->changes[i];
		if (f->kind == EAS_CHANGE_ADD && f->type == type) {
			if (first == NULL)
				first = f;
			n++;
		}
	}
	if (count_r != NULL)
		*count_r = n;
	return first;
}

/* ---- Sync --------------------------------------------------------------- */

struct coll {
	char id[EAS_ID_MAX + 1];
	char key[EAS_ID_MAX + 1];
	char name[256];
	int type;
};

static bool coll_init(struct coll *c, const struct session *s, int type)
{
	memset(c, 0, sizeof(*c));
	const struct eas_folder_change *f = folder_of_type(s, type, NULL);
	if (!CHECK(f != NULL)) {
		fprintf(stderr, "  no folder of type %d\n", type);
		return false;
	}
	snprintf(c->id, sizeof(c->id), "%s", f->server_id);
	snprintf(c->name, sizeof(c->name), "%s", f->display_name != NULL ? f->display_name : "");
	snprintf(c->key, sizeof(c->key), "0");
	c->type = type;
	return true;
}

/* One server change, copied out of a Sync response. */
struct ev {
	enum eas_sync_item_kind kind;
	char *server_id;
	char *text; /* Email and Calendar Subject, Contacts FileAs */
	char *alt;  /* Contacts "FirstName LastName" */
	char *from;
	int read; /* -1 absent */
	bool has_flag;
	int flag_status; /* -1 absent */
};

struct evs {
	struct ev *v;
	size_t n, cap;
};

static char *dup_or_null(const char *s)
{
	if (s == NULL)
		return NULL;
	char *d = strdup(s);
	if (d == NULL)
		abort();
	return d;
}

static void evs_free(struct evs *e)
{
	for (size_t i = 0; i < e->n; i++) {
		free(e->v[i].server_id);
		free(e->v[i].text);
		free(e->v[i].alt);
		free(e->v[i].from);
	}
	free(e->v);
	memset(e, 0, sizeof(*e));
}

static void evs_push(struct evs *e, const struct ev *x)
{
	if (e->n == e->cap) {
		size_t cap = e->cap == 0 ? 64 : e->cap * 2;
		struct ev *v = realloc(e->v, cap * sizeof(*v));
		if (v == NULL)
			abort();
		e->v = v;
		e->cap = cap;
	}
	e->v[e->n++] = *x;
}

static const char *kind_name(enum eas_sync_item_kind k)
{
	switch (k) {
	case EAS_SYNC_ITEM_ADD: return "Add";
	case EAS_SYNC_ITEM_CHANGE: return "Change";
	case EAS_SYNC_ITEM_DELETE: return "Delete";
	case EAS_SYNC_ITEM_SOFT_DELETE: return "SoftDelete";
	case EAS_SYNC_ITEM_FETCH: return "Fetch";
	default: return "?";
	}
}

/* Copies what the tests look at out of one item's ApplicationData. */
static bool ev_fill(struct ev *x, const struct eas_node *app, int folder_type)
{
	x->read = -1;
	x->flag_status = -1;
	if (app == NULL)
		return true;
	if (eas_folder_is_mail(folder_type)) {
		struct eas_email *m = NULL;
		const char *err = NULL;
		if (!CHECK(eas_email_parse(app, &m, &err) == 0)) {
			fprintf(stderr, "  email parse: %s\n", err);
			return false;
		}
		x->text = dup_or_null(m->subject);
		x->from = dup_or_null(m->from);
		x->read = m->read;
		x->has_flag = m->has_flag;
		x->flag_status = m->flag_status;
		eas_email_free(&m);
	} else if (folder_type == EAS_FOLDER_CALENDAR || folder_type == EAS_FOLDER_USER_CALENDAR) {
		x->text = dup_or_null(eas_node_child_text(app, EAS_PAGE_CALENDAR, "Subject"));
	} else if (folder_type == EAS_FOLDER_CONTACTS || folder_type == EAS_FOLDER_USER_CONTACTS) {
		x->text = dup_or_null(eas_node_child_text(app, EAS_PAGE_CONTACTS, "FileAs"));
		const char *fn = eas_node_child_text(app, EAS_PAGE_CONTACTS, "FirstName");
		const char *ln = eas_node_child_text(app, EAS_PAGE_CONTACTS, "LastName");
		char buf[1024];
		snprintf(buf, sizeof(buf), "%s%s%s", fn != NULL ? fn : "",
		         fn != NULL && ln != NULL ? " " : "", ln != NULL ? ln : "");
		x->alt = dup_or_null(buf);
	}
	return true;
}

/* What one Sync round brought. */
struct round {
	bool empty;     /* HTTP 200, empty body: no changes */
	bool more;      /* MoreAvailable */
	size_t n_items; /* server Commands */
	size_t n_bad;   /* Responses entries with a Status other than 1 */
	size_t n_responses;
};

static struct eas_body_pref plain_pref = {.type = EAS_BODY_PLAIN, .truncation_size = 512};

/* One Sync of collection c from its current key with our commands (may be
 * none); the server's changes are appended to out, the new key stored. */
static bool sync_round(struct session *s, struct coll *c, uint32_t window,
                       const struct eas_sync_command *cmds, size_t n_cmds,
                       enum eas_opt_bool deletes_as_moves, struct evs *out, struct round *rd)
{
	memset(rd, 0, sizeof(*rd));
	struct eas_sync_options opt = {.body_prefs = &plain_pref, .n_body_prefs = 1};
	bool mail = eas_folder_is_mail(c->type);
	struct eas_sync_collection_req cr = {
	    .sync_key = c->key,
	    .collection_id = c->id,
	    .deletes_as_moves = deletes_as_moves,
	    .window_size = window,
	    .options = mail ? &opt : NULL,
	    .n_options = mail ? 1 : 0,
	    .commands = cmds,
	    .n_commands = n_cmds,
	};
	struct eas_sync_req req = {.collections = &cr, .n_collections = 1};
	struct eas_node *root = NULL;
	const char *err = NULL;
	if (!CHECK(eas_sync_build(&req, &root, &err) == 0)) {
		fprintf(stderr, "  sync build: %s\n", err);
		return false;
	}
	char old_key[EAS_ID_MAX + 1];
	snprintf(old_key, sizeof(old_key), "%s", c->key);
	struct result r = {0};
	struct eas_sync_result *sr = NULL;
	bool ok = false;
	if (!call_cmd(s, "Sync", &root, 0, &r))
		goto out;
	if (r.action != EAS_ACT_OK) {
		result_say("Sync", &r);
		CHECK(r.action == EAS_ACT_OK);
		goto out;
	}
	if (r.empty) {
		/* "no changes" ([MS-ASCMD] 2.2.1.21): only valid when we sent
		 * no commands, whose answer would carry a new key */
		rd->empty = true;
		say("Sync %s (key %s): nothing new, empty response (%ld ms)", c->name, old_key,
		    r.elapsed_ms);
		ok = CHECK_INT(n_cmds, 0);
		goto out;
	}
	if (!CHECK(eas_sync_parse(r.root, &sr, &err) == 0)) {
		fprintf(stderr, "  sync parse: %s\n", err);
		goto out;
	}
	if (!CHECK_INT(sr->action, EAS_ACT_OK)) {
		fprintf(stderr, "  Sync Status %d\n", sr->status);
		goto out;
	}
	const struct eas_sync_collection *col = NULL;
	for (size_t i = 0; i < sr->n_collections; i++)
		if (strcmp(sr->collections[i].collection_id, c->id) == 0)
			col = &sr->collections[i];
	if (!CHECK(col != NULL))
		goto out;
	if (!CHECK_INT(col->status, EAS_SYNC_OK) || !CHECK(col->sync_key != NULL))
		goto out;
	snprintf(c->key, sizeof(c->key), "%s", col->sync_key);
	rd->more = col->more_available;
	rd->n_items = col->n_commands;
	rd->n_responses = col->n_responses;
	size_t kinds[5] = {0};
	for (size_t i = 0; i < col->n_commands; i++) {
		const struct eas_sync_item *it = &col->commands[i];
		struct ev x = {.kind = it->kind, .server_id = dup_or_null(it->server_id)};
		if (!ev_fill(&x, it->app_data, c->type)) {
			free(x.server_id);
			goto out;
		}
		evs_push(out, &x);
		if ((size_t)it->kind < 5)
			kinds[it->kind]++;
	}
	for (size_t i = 0; i < col->n_responses; i++) {
		const struct eas_sync_item *it = &col->responses[i];
		if (it->status != EAS_SYNC_OK) {
			rd->n_bad++;
			say("  response %s %s: Status %d (%s)", kind_name(it->kind),
			    it->server_id != NULL ? it->server_id : "-", it->status,
			    eas_action_name(it->action));
		}
	}
	say("Sync %s (key %s -> %s): %zu items (%zu Add, %zu Change, %zu Delete, %zu "
	    "SoftDelete)%s%s (%ld ms)",
	    c->name, old_key, c->key, rd->n_items, kinds[EAS_SYNC_ITEM_ADD],
	    kinds[EAS_SYNC_ITEM_CHANGE], kinds[EAS_SYNC_ITEM_DELETE],
	    kinds[EAS_SYNC_ITEM_SOFT_DELETE], rd->more ? ", MoreAvailable" : "",
	    rd->n_responses > 0 ? ", with Responses" : "", r.elapsed_ms);
	ok = true;
out:
	eas_sync_result_free(&sr);
	result_reset(&r);
	return ok;
}

/* Syncs c until the server has nothing more: a round that is not the
 * first from key "0", has no MoreAvailable and brings no items. (After a
 * round with items a server may still have a key to hand out: [MS-ASCMD]
 * allows it to answer the next round with no items and a new key.) The
 * largest batch is reported in *max_batch_r. */
static bool sync_settle(struct session *s, struct coll *c, uint32_t window, struct evs *out,
                        size_t *max_batch_r)
{
	int64_t t0 = mono_ms(), end = t0 + SETTLE_DEADLINE_MS;
	size_t rounds = 0, items = 0;
	for (;;) {
		bool from_zero = strcmp(c->key, "0") == 0;
		struct round rd;
		if (!sync_round(s, c, window, NULL, 0, EAS_OPT_UNSET, out, &rd))
			return false;
		rounds++;
		items += rd.n_items;
		if (max_batch_r != NULL && rd.n_items > *max_batch_r)
			*max_batch_r = rd.n_items;
		if (!from_zero && !rd.more && rd.n_items == 0)
			break;
		if (mono_ms() > end || rounds > 1000) {
			CHECK(!"Sync settled before the deadline");
			return false;
		}
	}
	say("Sync %s settled: %zu rounds, %zu items, %lld ms", c->name, rounds, items,
	    (long long)(mono_ms() - t0));
	return true;
}

/* ---- Ping --------------------------------------------------------------- */

struct ping_out {
	int status;
	bool names[4];      /* which of the pinged collections the answer names */
	uint32_t heartbeat; /* Status 5: the allowed value */
};

/* One Ping on colls with heartbeat hb, waited for. */
static bool ping_once(struct session *s, struct coll *const *colls, size_t n, unsigned hb,
                      struct ping_out *po)
{
	memset(po, 0, sizeof(*po));
	struct eas_ping_folder f[4];
	if (n > 4)
		abort();
	for (size_t i = 0; i < n; i++) {
		f[i].id = colls[i]->id;
		f[i].class_name = eas_folder_class(colls[i]->type);
	}
	struct eas_node *req = NULL;
	const char *err = NULL;
	if (!CHECK(eas_ping_build(hb, f, n, &req, &err) == 0))
		return false;
	struct result r = {0};
	int ret = eas_client_ping(s->c, req, hb, on_result, &r);
	eas_node_free(&req);
	if (!CHECK(ret == 0))
		return false;
	bool ok = false;
	struct eas_ping_result *pr = NULL;
	if (!run_until(&r.done, (long)hb * 1000 + EAS_PING_MARGIN_MS + 30000)) {
		eas_client_ping_cancel(s->c);
		CHECK(!"Ping answered in time");
		goto out;
	}
	if (!CHECK_INT(r.action, EAS_ACT_OK) || !CHECK(r.root != NULL)) {
		result_say("Ping", &r);
		goto out;
	}
	if (!CHECK(eas_ping_parse(r.root, &pr, &err) == 0)) {
		fprintf(stderr, "  ping parse: %s\n", err);
		goto out;
	}
	po->status = pr->status;
	po->heartbeat = pr->heartbeat_interval;
	for (size_t i = 0; i < pr->n_folders; i++)
		for (size_t j = 0; j < n; j++)
			if (strcmp(pr->folders[i], colls[j]->id) == 0)
				po->names[j] = true;
	say("Ping (heartbeat %u s): Status %d, %zu folders named%s (%ld ms)", hb, pr->status,
	    pr->n_folders, po->names[0] ? ", the first pinged one among them" : "", r.elapsed_ms);
	ok = true;
out:
	eas_ping_result_free(&pr);
	result_reset(&r);
	return ok;
}

typedef bool evs_pred(const struct evs *e, void *ctx);

/* Syncs c until pred holds for what came since this call, waiting with
 * Ping for changes between rounds; gives up after EVENT_DEADLINE_MS. */
static bool await_sync(struct session *s, struct coll *c, struct evs *got, evs_pred *pred,
                       void *ctx)
{
	int64_t t0 = mono_ms(), end = t0 + EVENT_DEADLINE_MS;
	unsigned hb = 60;
	for (;;) {
		if (!sync_settle(s, c, 100, got, NULL))
			return false;
		if (pred(got, ctx)) {
			say("awaited change seen after %lld ms", (long long)(mono_ms() - t0));
			return true;
		}
		if (mono_ms() > end)
			break;
		struct coll *one[1] = {c};
		struct ping_out po;
		if (!ping_once(s, one, 1, hb, &po))
			return false;
		if (po.status == EAS_PING_BAD_HEARTBEAT && po.heartbeat > 0)
			hb = po.heartbeat;
		else if (!CHECK(po.status == EAS_PING_EXPIRED || po.status == EAS_PING_CHANGES))
			return false;
	}
	CHECK(!"the awaited change arrived before the deadline");
	return false;
}

/* ---- running the environment's commands --------------------------------- */

/* Runs `$var args...` through /bin/sh, so that the variable may hold a
 * command with arguments as it would in a shell; extra_env ("NAME=value")
 * is added to the environment, stdin comes from in_path (NULL: /dev/null).
 * Its stdout goes into out (NUL-terminated, cut at out_max; NULL:
 * discarded). With bg_r the command runs in the background: *bg_r gets
 * its pid, reap it with wait_child(). True when it started and, unless in
 * the background, exited 0. */
static bool run_env_cmd(const char *var, const char *const *args, const char *extra_env,
                        const char *in_path, char *out, size_t out_max, pid_t *bg_r)
{
	char script[128];
	snprintf(script, sizeof(script), "exec $%s \"$@\"", var);
	const char *argv[16] = {"/bin/sh", "-c", script, "sh"};
	size_t ac = 4;
	for (size_t i = 0; args[i] != NULL && ac < 15; i++)
		argv[ac++] = args[i];
	argv[ac] = NULL;

	size_t ne = 0;
	while (environ[ne] != NULL)
		ne++;
	char **envp = calloc(ne + 2, sizeof(*envp));
	if (envp == NULL)
		abort();
	size_t k = 0;
	size_t name_len = extra_env != NULL ? (size_t)(strchr(extra_env, '=') - extra_env) + 1 : 0;
	for (size_t i = 0; i < ne; i++)
		if (extra_env == NULL || strncmp(environ[i], extra_env, name_len) != 0)
			envp[k++] = environ[i];
	if (extra_env != NULL)
		envp[k++] = (char *)(uintptr_t)extra_env;
	envp[k] = NULL;

	int pfd[2] = {-1, -1};
	if (out != NULL && pipe2(pfd, O_CLOEXEC) < 0)
		abort();
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, in_path != NULL ? in_path : "/dev/null", O_RDONLY,
	                                 0);
	if (out != NULL)
		posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	else
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	/* no connection of ours (a waiting Ping...) lives on in the child */
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	pid_t pid;
	int ret = posix_spawn(&pid, "/bin/sh", &fa, NULL, (char *const *)(uintptr_t)argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	free(envp);
	if (out != NULL)
		close(pfd[1]);
	if (ret != 0) {
		fprintf(stderr, "  cannot run $%s: %s\n", var, strerror(ret));
		if (out != NULL)
			close(pfd[0]);
		return CHECK(ret == 0);
	}
	if (out != NULL) {
		size_t len = 0;
		for (;;) {
			char buf[4096];
			ssize_t got = read(pfd[0], buf, sizeof(buf));
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0)
				break;
			size_t take = (size_t)got;
			if (take > out_max - 1 - len)
				take = out_max - 1 - len;
			memcpy(out + len, buf, take);
			len += take;
		}
		out[len] = '\0';
		close(pfd[0]);
	}
	if (bg_r != NULL) {
		*bg_r = pid;
		return true;
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			abort();
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "  $%s %s ... failed (status 0x%x)\n", var, args[0], (unsigned)st);
		return CHECK(!"the environment's command succeeded");
	}
	return true;
}

static bool wait_child(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			abort();
	return CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* Delivers count messages with subject to a (count > 1: " [i/count]" is
 * appended by the command). */
static bool deliver(const struct acct *a, const char *subject, unsigned count)
{
	int64_t t0 = mono_ms();
	char n[64];
	snprintf(n, sizeof(n), "HALFKEY_DELIVER_COUNT=%u", count);
	const char *args[] = {a->user, subject, NULL};
	bool ok = run_env_cmd("HALFKEY_TEST_DELIVER", args, n, NULL, NULL, 0, NULL);
	say("delivered %u message%s \"%s\" to %s (%lld ms)", count, count > 1 ? "s" : "", subject,
	    a->user, (long long)(mono_ms() - t0));
	return ok;
}

/* The value of "key=" in the KEY=value lines of out, copied into v. */
static bool kv_get(const char *out, const char *key, char *v, size_t v_max)
{
	size_t n = strlen(key);
	for (const char *p = out; p != NULL && *p != '\0';) {
		const char *e = strchr(p, '\n');
		size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
		if (len > n && strncmp(p, key, n) == 0 && p[n] == '=') {
			snprintf(v, v_max, "%.*s", (int)(len - n - 1), p + n + 1);
			return true;
		}
		p = e != NULL ? e + 1 : NULL;
	}
	return false;
}

/* ---- IMAP (server-side view), with libcurl ------------------------------ */

struct buf {
	char *p;
	size_t len, max;
};

static size_t buf_write(char *data, size_t size, size_t nmemb, void *ud)
{
	struct buf *b = ud;
	size_t n = size * nmemb, take = n;
	if (take > b->max - 1 - b->len)
		take = b->max - 1 - b->len;
	memcpy(b->p + b->len, data, take);
	b->len += take;
	b->p[b->len] = '\0';
	return n;
}

/* Runs one IMAP command as a in mailbox (selected first; NULL: none); the
 * untagged answer lines go into out. */
static bool imap_do(const struct acct *a, const char *mailbox, const char *command, char *out,
                    size_t out_max)
{
	CURL *e = curl_easy_init();
	if (e == NULL)
		abort();
	char url[1024];
	char *mb = mailbox != NULL ? curl_easy_escape(e, mailbox, 0) : NULL;
	size_t ul = strlen(L.imap);
	while (ul > 0 && L.imap[ul - 1] == '/')
		ul--;
	snprintf(url, sizeof(url), "%.*s/%s", (int)ul, L.imap, mb != NULL ? mb : "");
	curl_free(mb);
	struct buf b = {.p = out, .max = out_max};
	out[0] = '\0';
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "imap,imaps");
	curl_easy_setopt(e, CURLOPT_USERNAME, a->user);
	curl_easy_setopt(e, CURLOPT_PASSWORD, a->pass);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, command);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, buf_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 60000L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	if (L.imap_ca != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, L.imap_ca);
	CURLcode rc = curl_easy_perform(e);
	curl_easy_cleanup(e);
	if (rc != CURLE_OK) {
		fprintf(stderr, "  IMAP %s in %s: %s\n", command, mailbox != NULL ? mailbox : "-",
		        curl_easy_strerror(rc));
		return false;
	}
	return true;
}

/* UIDs of the messages in mailbox whose Subject contains needle; count or
 * -1. A message flagged \Deleted is deleted in IMAP's terms, awaiting only
 * an EXPUNGE (which a server may run later): with live_only such messages
 * are left out. */
static int imap_search_in(const struct acct *a, const char *mailbox, const char *needle,
                          bool live_only, unsigned long *uids, size_t max)
{
	char cmd[256], out[OUT_MAX];
	snprintf(cmd, sizeof(cmd), "UID SEARCH %sSUBJECT \"%s\"", live_only ? "UNDELETED " : "",
	         needle);
	if (!imap_do(a, mailbox, cmd, out, sizeof(out)))
		return -1;
	int n = 0;
	const char *p = strstr(out, "* SEARCH");
	if (p == NULL)
		return 0;
	p += 8;
	while (*p == ' ') {
		char *end;
		unsigned long u = strtoul(p + 1, &end, 10);
		if (end == p + 1)
			break;
		if ((size_t)n < max)
			uids[n] = u;
		n++;
		p = end;
	}
	return n;
}

/* The messages that are there, not deleted. */
static int imap_search(const struct acct *a, const char *mailbox, const char *needle,
                       unsigned long *uids, size_t max)
{
	return imap_search_in(a, mailbox, needle, true, uids, max);
}

/* The FLAGS of one message, e.g. "\Seen \Flagged"; false if none found. */
static bool imap_flags(const struct acct *a, const char *mailbox, unsigned long uid, char *flags,
                       size_t max)
{
	char cmd[64], out[4096];
	snprintf(cmd, sizeof(cmd), "UID FETCH %lu FLAGS", uid);
	if (!imap_do(a, mailbox, cmd, out, sizeof(out)))
		return false;
	const char *p = strstr(out, "FLAGS (");
	if (p == NULL)
		return false;
	p += 7;
	const char *e = strchr(p, ')');
	if (e == NULL)
		return false;
	snprintf(flags, max, "%.*s", (int)(e - p), p);
	return true;
}

static bool has_word(const char *list, const char *w)
{
	size_t n = strlen(w);
	for (const char *p = list; (p = strstr(p, w)) != NULL; p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
			return true;
	return false;
}

/* Expunges the messages of mailbox whose Subject contains needle (clean
 * up after a case; UIDPLUS's UID EXPUNGE touches only those). */
static void imap_purge(const struct acct *a, const char *mailbox, const char *needle)
{
	if (L.imap == NULL)
		return;
	unsigned long uids[BULK_COUNT + 16];
	int n = imap_search_in(a, mailbox, needle, false, uids, BULK_COUNT + 16);
	if (n <= 0)
		return;
	size_t m = (size_t)n < BULK_COUNT + 16 ? (size_t)n : BULK_COUNT + 16;
	char *set = malloc(m * 24 + 1);
	if (set == NULL)
		abort();
	size_t len = 0;
	for (size_t i = 0; i < m; i++)
		len += (size_t)snprintf(set + len, 24, "%s%lu", i > 0 ? "," : "", uids[i]);
	char *cmd = malloc(len + 64), out[4096];
	if (cmd == NULL)
		abort();
	snprintf(cmd, len + 64, "UID STORE %s +FLAGS.SILENT (\\Deleted)", set);
	bool ok = imap_do(a, mailbox, cmd, out, sizeof(out));
	snprintf(cmd, len + 64, "UID EXPUNGE %s", set);
	ok = ok && imap_do(a, mailbox, cmd, out, sizeof(out));
	say("clean-up: %s %zu message%s \"%s\" from %s's %s", ok ? "removed" : "could not remove",
	    m, m > 1 ? "s" : "", needle, a->user, mailbox);
	free(cmd);
	free(set);
}

#define NEED_IMAP()                                                                                \
	do {                                                                                       \
		if (L.imap == NULL)                                                                \
			SKIP("HALFKEY_TEST_IMAP_URL is not set: no server-side view of the "       \
			     "mailboxes to check against");                                        \
	} while (0)

/* ---- searching what came ------------------------------------------------ */

static bool contains(const char *hay, const char *needle)
{
	return hay != NULL && strstr(hay, needle) != NULL;
}

/* The ServerId of the one Add whose text contains needle, NULL when there
 * is none; *count_r says how many there were. */
static const char *add_with(const struct evs *e, size_t from, const char *needle, size_t *count_r)
{
	const char *id = NULL;
	size_t n = 0;
	for (size_t i = from; i < e->n; i++)
		if (e->v[i].kind == EAS_SYNC_ITEM_ADD &&
		    (contains(e->v[i].text, needle) || contains(e->v[i].alt, needle))) {
			id = e->v[i].server_id;
			n++;
		}
	if (count_r != NULL)
		*count_r = n;
	return id;
}

struct want_add {
	const char *needle;
};

static bool pred_add(const struct evs *e, void *ctx)
{
	const struct want_add *w = ctx;
	return add_with(e, 0, w->needle, NULL) != NULL;
}

struct want_gone {
	const char *server_id;
	bool soft_ok;
};

static bool pred_gone(const struct evs *e, void *ctx)
{
	const struct want_gone *w = ctx;
	for (size_t i = 0; i < e->n; i++)
		if (e->v[i].server_id != NULL && strcmp(e->v[i].server_id, w->server_id) == 0 &&
		    (e->v[i].kind == EAS_SYNC_ITEM_DELETE ||
		     (w->soft_ok && e->v[i].kind == EAS_SYNC_ITEM_SOFT_DELETE)))
			return true;
	return false;
}

/* The latest Read and Flag state a series of Changes gave one item. */
struct want_state {
	const char *server_id;
	int read;      /* wanted Read */
	bool flagged;  /* wanted: FlagStatus 2 (true) or no active flag */
	int seen_read; /* latest Read seen, -1 none */
	int seen_flag; /* latest: 1 active, 0 cleared, -1 no Flag element seen */
};

static bool pred_state(const struct evs *e, void *ctx)
{
	struct want_state *w = ctx;
	w->seen_read = -1;
	w->seen_flag = -1;
	for (size_t i = 0; i < e->n; i++) {
		const struct ev *x = &e->v[i];
		if (x->kind != EAS_SYNC_ITEM_CHANGE || x->server_id == NULL ||
		    strcmp(x->server_id, w->server_id) != 0)
			continue;
		if (x->read >= 0)
			w->seen_read = x->read;
		if (x->has_flag)
			w->seen_flag = x->flag_status == 2 ? 1 : 0;
	}
	return w->seen_read == w->read && w->seen_flag == (w->flagged ? 1 : 0);
}

/* Without IMAP, what a case delivered is deleted again through the
 * client: a Sync Delete of every Add whose text carries tag. */
static void eas_cleanup(struct session *s, struct coll *c, const struct evs *e, const char *tag)
{
	if (L.imap != NULL || s->c == NULL || c->id[0] == '\0' || strcmp(c->key, "0") == 0)
		return;
	size_t n = 0;
	struct eas_sync_command *cmds = calloc(e->n + 1, sizeof(*cmds));
	if (cmds == NULL)
		abort();
	for (size_t i = 0; i < e->n; i++)
		if (e->v[i].kind == EAS_SYNC_ITEM_ADD && contains(e->v[i].text, tag))
			cmds[n++] = (struct eas_sync_command){.kind = EAS_SYNC_CMD_DELETE,
			                                      .server_id = e->v[i].server_id};
	struct evs ignored = {0};
	struct round rd;
	if (n > 0 && sync_round(s, c, 100, cmds, n, EAS_OPT_FALSE, &ignored, &rd))
		say("clean-up: deleted %zu message%s \"%s\" through Sync", n, n > 1 ? "s" : "",
		    tag);
	evs_free(&ignored);
	free(cmds);
}

/* ---- the cases ---------------------------------------------------------- */

/* 1. A wrong password is refused with HTTP 401, classified as AUTH and
 * nothing else; OPTIONS with the right one answers 200 and lists 14.1. */
static void test_auth_and_options(void)
{
	begin("wrong password -> 401 / AUTH; OPTIONS -> 200 with the server's versions");
	struct session s;
	char bad[256];
	snprintf(bad, sizeof(bad), "%s-wrong-%s", L.a.pass, L.token);
	REQUIRE(session_new_at(&s, &L.a, bad, L.url, L.ca));
	struct result r = {0};
	if (call_options(&s, &r)) {
		CHECK_INT(r.transport, HTTPC_OK);
		CHECK_INT(r.http_status, 401);
		CHECK_INT(r.action, EAS_ACT_AUTH);
		CHECK(r.root == NULL);
	}
	struct eas_node *req = NULL;
	const char *err = NULL;
	if (CHECK(eas_provision_build(&devinfo, &req, &err) == 0) &&
	    call_cmd(&s, "Provision", &req, 0, &r)) {
		result_say("Provision with a wrong password", &r);
		CHECK_INT(r.transport, HTTPC_OK);
		CHECK_INT(r.http_status, 401);
		CHECK_INT(r.action, EAS_ACT_AUTH);
		CHECK_INT(r.status, 0);
		CHECK(r.root == NULL);
	}
	if (CHECK(eas_foldersync_build("0", &req, &err) == 0) &&
	    call_cmd(&s, "FolderSync", &req, 0, &r)) {
		result_say("FolderSync with a wrong password", &r);
		CHECK_INT(r.http_status, 401);
		CHECK_INT(r.action, EAS_ACT_AUTH);
	}
	result_reset(&r);
	session_close(&s);

	REQUIRE(session_new(&s, &L.a));
	bool ok = call_options(&s, &r);
	if (ok) {
		CHECK_INT(r.transport, HTTPC_OK);
		CHECK_INT(r.http_status, 200);
		CHECK_INT(r.action, EAS_ACT_OK);
		say("MS-ASProtocolVersions: %s", r.versions);
		say("MS-ASProtocolCommands: %s", r.commands);
		CHECK(r.versions[0] != '\0');
	}
	bool has = ok && list_has(r.versions, EAS_PROTOCOL_VERSION);
	char versions[256];
	snprintf(versions, sizeof(versions), "%s", r.versions);
	result_reset(&r);
	session_close(&s);
	if (ok && !has)
		SKIP("the server offers ActiveSync %s, not %s: the client speaks only %s, so the "
		     "version assertion and the other cases are skipped",
		     versions, EAS_PROTOCOL_VERSION, EAS_PROTOCOL_VERSION);
	CHECK(has);
}

/* 2. Provision (with the acknowledgement when a policy is returned), then
 * FolderSync from 0 finds the Inbox, mail, calendar and contacts folders by
 * Type; TLS verification failure and a refused connection are UNREACHABLE,
 * never success. */
static void test_provision_foldersync_failures(void)
{
	begin("Provision dance, FolderSync from 0; TLS failure and refused connection");
	NEED_SERVER();
	struct session s;
	REQUIRE(session_new(&s, &L.a));
	say("DeviceId %s", s.device_id);
	if (!session_provision(&s)) {
		session_close(&s);
		return;
	}
	say("provisioned %s; PolicyKey %s",
	    s.acked ? "with the acknowledgement step"
	            : "in one step (no policy, nothing to acknowledge)",
	    s.policy_key[0] != '\0' ? s.policy_key : "(none: no X-MS-PolicyKey header)");
	if (!session_foldersync(&s)) {
		session_close(&s);
		return;
	}
	size_t n_inbox = 0, n_cal = 0, n_con = 0, n_mail = 0;
	const struct eas_folder_change *inbox = folder_of_type(&s, EAS_FOLDER_INBOX, &n_inbox);
	(void)folder_of_type(&s, EAS_FOLDER_CALENDAR, &n_cal);
	(void)folder_of_type(&s, EAS_FOLDER_CONTACTS, &n_con);
	for (size_t i = 0; i < s.fs->n_changes; i++) {
		const struct eas_folder_change *f = &s.fs->changes[i];
		say("  folder Type %2d %-24s id %s parent %s", f->type,
		    f->display_name != NULL ? f->display_name : "(null)",
		    f->server_id != NULL ? f->server_id : "(null)",
		    f->parent_id != NULL ? f->parent_id : "(null)");
		CHECK_INT(f->kind, EAS_CHANGE_ADD);
		CHECK(f->server_id != NULL && f->server_id[0] != '\0');
		CHECK(f->parent_id != NULL);
		CHECK(f->display_name != NULL);
		if (eas_folder_is_mail(f->type))
			n_mail++;
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(s.fs->changes[j].server_id, f->server_id) != 0);
	}
	CHECK_INT(n_inbox, 1);
	CHECK(inbox != NULL && inbox->display_name != NULL);
	CHECK(n_mail >= 1);
	CHECK(n_cal >= 1);
	CHECK(n_con >= 1);
	if (s.fs->has_count)
		CHECK_INT(s.fs->count, s.fs->n_changes);
	say("%zu folders: %zu mail (Inbox %s), %zu calendar, %zu contacts", s.fs->n_changes, n_mail,
	    inbox != NULL ? inbox->server_id : "-", n_cal, n_con);
	session_close(&s);

	/* an unrelated CA: the server's certificate must not verify */
	if (strncmp(L.url, "https://", 8) == 0) {
		if (!L.pki_made) {
			REQUIRE(tfx_pki_create(test_tmpdir(), &L.pki) == 0);
			L.pki_made = true;
		}
		REQUIRE(session_new_at(&s, &L.a, L.a.pass, L.url, L.pki.other_ca_file));
		struct result r = {0};
		if (call_options(&s, &r)) {
			CHECK_INT(r.transport, HTTPC_TLS_FAILED);
			CHECK_INT(r.action, EAS_ACT_UNREACHABLE);
			CHECK_INT(r.http_status, 0);
			CHECK(r.root == NULL);
		}
		struct eas_node *req = NULL;
		const char *err = NULL;
		if (CHECK(eas_foldersync_build("0", &req, &err) == 0) &&
		    call_cmd(&s, "FolderSync", &req, 0, &r)) {
			result_say("FolderSync with the wrong CA", &r);
			CHECK_INT(r.transport, HTTPC_TLS_FAILED);
			CHECK_INT(r.action, EAS_ACT_UNREACHABLE);
		}
		result_reset(&r);
		session_close(&s);
	} else {
		say("the endpoint is plain http: no TLS verification to fail");
	}

	/* a closed port: bound but not listening, so it stays closed */
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	if (!CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) ||
	    !CHECK(getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)) {
		close(fd);
		return;
	}
	char url[128];
	snprintf(url, sizeof(url), "https://127.0.0.1:%u/Microsoft-Server-ActiveSync",
	         (unsigned)ntohs(sa.sin_port));
	say("connecting to %s (closed)", url);
	if (session_new_at(&s, &L.a, L.a.pass, url, L.ca)) {
		struct result r = {0};
		if (call_options(&s, &r)) {
			CHECK_INT(r.transport, HTTPC_CONNECT_FAILED);
			CHECK_INT(r.action, EAS_ACT_UNREACHABLE);
			CHECK_INT(r.http_status, 0);
		}
		result_reset(&r);
		session_close(&s);
	}
	close(fd);
}

/* The i of a deliver subject "... <tag> [i/N]", 0 if it has none. */
static unsigned bulk_index(const char *subject, const char *tag, unsigned n)
{
	const char *p = subject != NULL ? strstr(subject, tag) : NULL;
	if (p == NULL || (p = strstr(p, " [")) == NULL)
		return 0;
	char *end;
	unsigned long i = strtoul(p + 2, &end, 10);
	if (end == p + 2 || *end != '/')
		return 0;
	unsigned long of = strtoul(end + 1, &end, 10);
	if (*end != ']' || of != n || i < 1 || i > n)
		return 0;
	return (unsigned)i;
}

/* 3. An initial Sync of an Inbox holding 200 new messages, WindowSize 50:
 * each of them exactly once, no ServerId twice, no batch over 50. */
static void test_initial_sync_window(void)
{
	begin("initial Sync of 200 delivered messages with WindowSize 50");
	NEED_SERVER();
	char tag[64], subject[128];
	snprintf(tag, sizeof(tag), "%sbulk", L.token);
	snprintf(subject, sizeof(subject), "Halfkey live %s", tag);
	REQUIRE(deliver(&L.b, subject, BULK_COUNT));

	struct session s;
	struct evs got = {0};
	struct coll inbox = {0};
	if (!session_open(&s, &L.b) || !coll_init(&inbox, &s, EAS_FOLDER_INBOX))
		goto out;
	size_t max_batch = 0;
	int64_t t0 = mono_ms();
	if (!sync_settle(&s, &inbox, BULK_WINDOW, &got, &max_batch))
		goto out;
	say("initial sync: %zu items in %lld ms, largest batch %zu", got.n,
	    (long long)(mono_ms() - t0), max_batch);
	CHECK(max_batch <= BULK_WINDOW);

	unsigned seen[BULK_COUNT + 1] = {0};
	size_t adds = 0, dup_ids = 0, other = 0;
	for (size_t i = 0; i < got.n; i++) {
		const struct ev *x = &got.v[i];
		if (x->kind != EAS_SYNC_ITEM_ADD) {
			other++;
			continue;
		}
		adds++;
		CHECK(x->server_id != NULL);
		for (size_t j = 0; j < i; j++)
			if (got.v[j].kind == EAS_SYNC_ITEM_ADD &&
			    strcmp(got.v[j].server_id, x->server_id) == 0)
				dup_ids++;
		unsigned k = bulk_index(x->text, tag, BULK_COUNT);
		if (k > 0)
			seen[k]++;
	}
	size_t missing = 0, twice = 0;
	for (unsigned k = 1; k <= BULK_COUNT; k++) {
		if (seen[k] == 0)
			missing++;
		else if (seen[k] > 1)
			twice++;
	}
	say("%zu Adds (%zu other commands), %zu ServerIds repeated; of our %u messages: %zu "
	    "missing, %zu more than once",
	    adds, other, dup_ids, BULK_COUNT, missing, twice);
	CHECK_INT(dup_ids, 0);
	CHECK_INT(missing, 0);
	CHECK_INT(twice, 0);
	CHECK(adds >= BULK_COUNT);
out:
	eas_cleanup(&s, &inbox, &got, tag);
	evs_free(&got);
	session_close(&s);
	imap_purge(&L.b, "INBOX", tag);
}

/* 4. Ping reports a new message in the Inbox (Status 2 naming it) and the
 * next Syncs bring exactly that message; an idle Ping expires (Status 1). */
static void test_ping(void)
{
	begin("Ping: Status 2 for a delivery, then Sync brings it; idle Ping expires");
	NEED_SERVER();
	char tag[64], subject[128];
	snprintf(tag, sizeof(tag), "%sping", L.token);
	snprintf(subject, sizeof(subject), "Halfkey live %s", tag);
	struct session s;
	struct evs got = {0};
	struct coll inbox = {0};
	pid_t child = -1;
	if (!session_open(&s, &L.a) || !coll_init(&inbox, &s, EAS_FOLDER_INBOX) ||
	    !sync_settle(&s, &inbox, 100, &got, NULL))
		goto out;
	size_t known = got.n;
	struct coll *one[1] = {&inbox};
	int64_t end = mono_ms() + EVENT_DEADLINE_MS, t_deliver = 0;
	size_t found = 0, changes_seen = 0;
	while (found == 0 && mono_ms() < end) {
		/* the Ping goes out first, the delivery follows while it waits */
		struct eas_ping_folder f = {.id = inbox.id, .class_name = "Email"};
		struct eas_node *req = NULL;
		const char *err = NULL;
		if (!CHECK(eas_ping_build(PING_HEARTBEAT_S, &f, 1, &req, &err) == 0))
			goto out;
		struct result r = {0};
		int ret = eas_client_ping(s.c, req, PING_HEARTBEAT_S, on_result, &r);
		eas_node_free(&req);
		if (!CHECK(ret == 0))
			goto out;
		if (child < 0) {
			const char *args[] = {L.a.user, subject, NULL};
			if (!run_env_cmd("HALFKEY_TEST_DELIVER", args, "HALFKEY_DELIVER_COUNT=1",
			                 NULL, NULL, 0, &child)) {
				eas_client_ping_cancel(s.c);
				goto out;
			}
			t_deliver = mono_ms();
			say("Ping sent; delivering \"%s\" in the background", subject);
		}
		if (!run_until(&r.done,
		               (long)PING_HEARTBEAT_S * 1000 + EAS_PING_MARGIN_MS + 30000)) {
			eas_client_ping_cancel(s.c);
			CHECK(!"Ping answered in time");
			goto out;
		}
		struct eas_ping_result *pr = NULL;
		bool ok = CHECK_INT(r.action, EAS_ACT_OK) && CHECK(r.root != NULL) &&
		          CHECK(eas_ping_parse(r.root, &pr, &err) == 0);
		result_reset(&r);
		if (!ok) {
			eas_ping_result_free(&pr);
			goto out;
		}
		bool names_inbox = false;
		for (size_t i = 0; i < pr->n_folders; i++)
			names_inbox |= strcmp(pr->folders[i], inbox.id) == 0;
		say("Ping: Status %d%s, %lld ms after the delivery started", pr->status,
		    names_inbox ? ", naming the Inbox" : "", (long long)(mono_ms() - t_deliver));
		int st = pr->status;
		eas_ping_result_free(&pr);
		if (st == EAS_PING_EXPIRED)
			continue;
		if (!CHECK_INT(st, EAS_PING_CHANGES) || !CHECK(names_inbox))
			goto out;
		changes_seen++;
		size_t before = got.n;
		if (!sync_settle(&s, &inbox, 100, &got, NULL))
			goto out;
		(void)add_with(&got, before, tag, &found);
	}
	/* exactly once, over all the rounds since the initial sync */
	(void)add_with(&got, known, tag, &found);
	CHECK_INT(found, 1);
	/* nothing else new: no item we already had comes again as an Add.
	 * (The mailbox is shared: whatever else came is someone else's
	 * doing meanwhile, and is listed.) */
	size_t foreign = 0;
	for (size_t i = known; i < got.n; i++) {
		const struct ev *x = &got.v[i];
		if (x->kind == EAS_SYNC_ITEM_ADD)
			for (size_t j = 0; j < known; j++)
				CHECK(strcmp(got.v[j].server_id, x->server_id) != 0);
		if (contains(x->text, tag))
			continue;
		foreign++;
		say("  also: %s %s \"%s\"", kind_name(x->kind), x->server_id,
		    x->text != NULL ? x->text : "");
	}
	say("the delivery came with %zu Ping(s) reporting changes; %zu other new item(s)",
	    changes_seen, foreign);

	/* idle: a short heartbeat runs out (or the server names its minimum) */
	unsigned hb = IDLE_HEARTBEAT_S;
	bool expired = false;
	/* in a shared mailbox others' changes may answer it first: Ping
	 * again until one runs out, within the deadline */
	int64_t idle_end = mono_ms() + EVENT_DEADLINE_MS;
	while (!expired && mono_ms() < idle_end) {
		struct ping_out po;
		int64_t t0 = mono_ms();
		if (!ping_once(&s, one, 1, hb, &po))
			goto out;
		if (po.status == EAS_PING_EXPIRED) {
			expired = true;
			say("idle Ping expired after %lld ms (heartbeat %u s)",
			    (long long)(mono_ms() - t0), hb);
		} else if (po.status == EAS_PING_BAD_HEARTBEAT) {
			say("the server wants a heartbeat of %u s", po.heartbeat);
			if (!CHECK(po.heartbeat > 0) || !CHECK(po.heartbeat <= 600))
				goto out;
			hb = po.heartbeat;
		} else if (po.status == EAS_PING_CHANGES) {
			say("someone changed the Inbox meanwhile: sync and Ping again");
			if (!sync_settle(&s, &inbox, 100, &got, NULL))
				goto out;
		} else {
			CHECK_INT(po.status, EAS_PING_EXPIRED);
			goto out;
		}
	}
	CHECK(expired);
out:
	if (child > 0)
		CHECK(wait_child(child));
	eas_cleanup(&s, &inbox, &got, tag);
	evs_free(&got);
	session_close(&s);
	imap_purge(&L.a, "INBOX", tag);
}

/* 5. Read flag both ways: our Sync Change Read=1 sets \Seen on the server;
 * \Flagged and \Seen changed over IMAP come back as a Change. */
static void test_read_flag(void)
{
	begin("Read/Flag: ours -> server (\\Seen), server -> ours (Change)");
	NEED_SERVER();
	NEED_IMAP();
	char tag[64], subject[128];
	snprintf(tag, sizeof(tag), "%sread", L.token);
	snprintf(subject, sizeof(subject), "Halfkey live %s", tag);
	REQUIRE(deliver(&L.a, subject, 1));
	struct session s;
	struct evs got = {0};
	struct coll inbox = {0};
	char sid[EAS_ID_MAX + 1];
	if (!session_open(&s, &L.a) || !coll_init(&inbox, &s, EAS_FOLDER_INBOX) ||
	    !sync_settle(&s, &inbox, 100, &got, NULL))
		goto out;
	size_t n = 0;
	const char *id = add_with(&got, 0, tag, &n);
	if (!CHECK_INT(n, 1) || !CHECK(id != NULL))
		goto out;
	snprintf(sid, sizeof(sid), "%s", id);
	for (size_t i = 0; i < got.n; i++)
		if (strcmp(got.v[i].server_id, sid) == 0)
			CHECK_INT(got.v[i].read, 0);

	unsigned long uid[4];
	if (!CHECK_INT(imap_search(&L.a, "INBOX", tag, uid, 4), 1))
		goto out;
	char flags[256];
	if (CHECK(imap_flags(&L.a, "INBOX", uid[0], flags, sizeof(flags))))
		say("IMAP UID %lu flags before: (%s)", uid[0], flags);
	CHECK(!has_word(flags, "\\Seen"));

	/* ours -> server */
	struct eas_email_change ch = {.read = EAS_OPT_TRUE};
	struct eas_sync_command cmd = {
	    .kind = EAS_SYNC_CMD_CHANGE, .server_id = sid, .change = &ch};
	struct round rd;
	if (!sync_round(&s, &inbox, 100, &cmd, 1, EAS_OPT_UNSET, &got, &rd))
		goto out;
	CHECK_INT(rd.n_bad, 0);
	if (CHECK(imap_flags(&L.a, "INBOX", uid[0], flags, sizeof(flags))))
		say("IMAP flags after our Change Read=1: (%s)", flags);
	CHECK(has_word(flags, "\\Seen"));
	if (!sync_settle(&s, &inbox, 100, &got, NULL))
		goto out;

	/* server -> ours: flagged and unread */
	char out[4096], c[128];
	snprintf(c, sizeof(c), "UID STORE %lu +FLAGS (\\Flagged)", uid[0]);
	CHECK(imap_do(&L.a, "INBOX", c, out, sizeof(out)));
	snprintf(c, sizeof(c), "UID STORE %lu -FLAGS (\\Seen)", uid[0]);
	CHECK(imap_do(&L.a, "INBOX", c, out, sizeof(out)));
	say("IMAP: +\\Flagged -\\Seen on UID %lu", uid[0]);
	struct evs later = {0};
	struct want_state w = {.server_id = sid, .read = 0, .flagged = true};
	bool seen = await_sync(&s, &inbox, &later, pred_state, &w);
	say("Change for %s: Read %d, Flag %s", sid, w.seen_read,
	    w.seen_flag < 0 ? "absent"
	    : w.seen_flag   ? "active"
	                    : "cleared");
	CHECK(seen);
	evs_free(&later);

	/* and back: read, flag cleared */
	snprintf(c, sizeof(c), "UID STORE %lu +FLAGS (\\Seen)", uid[0]);
	CHECK(imap_do(&L.a, "INBOX", c, out, sizeof(out)));
	snprintf(c, sizeof(c), "UID STORE %lu -FLAGS (\\Flagged)", uid[0]);
	CHECK(imap_do(&L.a, "INBOX", c, out, sizeof(out)));
	say("IMAP: +\\Seen -\\Flagged on UID %lu", uid[0]);
	w = (struct want_state){.server_id = sid, .read = 1, .flagged = false};
	seen = await_sync(&s, &inbox, &later, pred_state, &w);
	say("Change for %s: Read %d, Flag %s", sid, w.seen_read,
	    w.seen_flag < 0 ? "absent"
	    : w.seen_flag   ? "active"
	                    : "cleared");
	CHECK(seen);
	evs_free(&later);
out:
	evs_free(&got);
	session_close(&s);
	imap_purge(&L.a, "INBOX", tag);
}

/* 6. Deletes and moves both ways. */
static void test_delete_move(void)
{
	begin("Delete and move: Sync Delete (as move / for good), MoveItems, server-side delete");
	NEED_SERVER();
	NEED_IMAP();
	static const char *const what[] = {"delmove", "delhard", "move", "srvdel"};
	enum { DEL_MOVE, DEL_HARD, MOVE, SRV_DEL, N_MSG };
	char tag[N_MSG][64], subject[512], sid[N_MSG][EAS_ID_MAX + 1];
	for (int i = 0; i < N_MSG; i++) {
		snprintf(tag[i], sizeof(tag[i]), "%s%s", L.token, what[i]);
		snprintf(subject, sizeof(subject), "Halfkey live %s", tag[i]);
		REQUIRE(deliver(&L.a, subject, 1));
	}
	struct session s;
	struct evs got = {0};
	struct coll inbox = {0}, trash = {0};
	const char *trash_imap = L.imap_trash;
	if (!session_open(&s, &L.a) || !coll_init(&inbox, &s, EAS_FOLDER_INBOX) ||
	    !coll_init(&trash, &s, EAS_FOLDER_DELETED) || !sync_settle(&s, &inbox, 100, &got, NULL))
		goto out;
	if (trash_imap == NULL)
		trash_imap = trash.name;
	say("Deleted Items: EAS id %s, IMAP \"%s\"", trash.id, trash_imap);
	for (int i = 0; i < N_MSG; i++) {
		size_t n = 0;
		const char *id = add_with(&got, 0, tag[i], &n);
		if (!CHECK_INT(n, 1) || !CHECK(id != NULL))
			goto out;
		snprintf(sid[i], sizeof(sid[i]), "%s", id);
	}
	unsigned long uid[4];

	/* Sync Delete, DeletesAsMoves 1: into Deleted Items */
	struct eas_sync_command del = {.kind = EAS_SYNC_CMD_DELETE, .server_id = sid[DEL_MOVE]};
	struct round rd;
	if (!sync_round(&s, &inbox, 100, &del, 1, EAS_OPT_TRUE, &got, &rd))
		goto out;
	CHECK_INT(rd.n_bad, 0);
	int in_inbox = imap_search(&L.a, "INBOX", tag[DEL_MOVE], uid, 4);
	int in_trash = imap_search(&L.a, trash_imap, tag[DEL_MOVE], uid, 4);
	say("Delete with DeletesAsMoves=1: %d left in INBOX, %d in %s", in_inbox, in_trash,
	    trash_imap);
	CHECK_INT(in_inbox, 0);
	CHECK_INT(in_trash, 1);

	/* Sync Delete, DeletesAsMoves 0: gone from the Inbox; [MS-ASCMD]
	 * 2.2.3.47 says "permanently deleted", but where a server keeps a
	 * copy is its business: only reported */
	del.server_id = sid[DEL_HARD];
	if (!sync_round(&s, &inbox, 100, &del, 1, EAS_OPT_FALSE, &got, &rd))
		goto out;
	CHECK_INT(rd.n_bad, 0);
	in_inbox = imap_search(&L.a, "INBOX", tag[DEL_HARD], uid, 4);
	in_trash = imap_search(&L.a, trash_imap, tag[DEL_HARD], uid, 4);
	say("Delete with DeletesAsMoves=0: %d left in INBOX, %d in %s%s", in_inbox, in_trash,
	    trash_imap,
	    in_trash > 0 ? " (the server kept a copy although the request asked for a "
	                   "permanent delete)"
	                 : "");
	CHECK_INT(in_inbox, 0);

	/* MoveItems to Deleted Items */
	struct eas_move_req mv = {
	    .src_msg_id = sid[MOVE], .src_fld_id = inbox.id, .dst_fld_id = trash.id};
	struct eas_node *req = NULL;
	const char *err = NULL;
	struct result r = {0};
	struct eas_moveitems_result *mr = NULL;
	if (CHECK(eas_moveitems_build(&mv, 1, &req, &err) == 0) &&
	    call_cmd(&s, "MoveItems", &req, 0, &r)) {
		result_say("MoveItems", &r);
		if (CHECK_INT(r.action, EAS_ACT_OK) && CHECK(r.root != NULL) &&
		    CHECK(eas_moveitems_parse(r.root, &mr, &err) == 0) &&
		    CHECK_INT(mr->n_responses, 1)) {
			say("MoveItems: Status %d, SrcMsgId %s, DstMsgId %s",
			    mr->responses[0].status, mr->responses[0].src_msg_id,
			    mr->responses[0].dst_msg_id != NULL ? mr->responses[0].dst_msg_id
			                                        : "(none)");
			CHECK_INT(mr->responses[0].status, EAS_MOVE_OK);
			CHECK_INT(mr->responses[0].action, EAS_ACT_OK);
			CHECK_STR(mr->responses[0].src_msg_id, sid[MOVE]);
			CHECK(mr->responses[0].dst_msg_id != NULL &&
			      mr->responses[0].dst_msg_id[0] != '\0');
		}
	}
	eas_moveitems_result_free(&mr);
	result_reset(&r);
	CHECK_INT(imap_search(&L.a, "INBOX", tag[MOVE], uid, 4), 0);
	CHECK_INT(imap_search(&L.a, trash_imap, tag[MOVE], uid, 4), 1);

	/* what we did is not handed back to us as new */
	size_t before = got.n;
	if (!sync_settle(&s, &inbox, 100, &got, NULL))
		goto out;
	for (size_t i = before; i < got.n; i++)
		for (int k = 0; k < SRV_DEL; k++)
			CHECK(!(got.v[i].kind == EAS_SYNC_ITEM_ADD &&
			        strcmp(got.v[i].server_id, sid[k]) == 0));

	/* server side: \Deleted + expunge over IMAP -> Delete in the next Sync */
	if (!CHECK_INT(imap_search(&L.a, "INBOX", tag[SRV_DEL], uid, 4), 1))
		goto out;
	char out_[4096], c[128];
	snprintf(c, sizeof(c), "UID STORE %lu +FLAGS (\\Deleted)", uid[0]);
	CHECK(imap_do(&L.a, "INBOX", c, out_, sizeof(out_)));
	snprintf(c, sizeof(c), "UID EXPUNGE %lu", uid[0]);
	CHECK(imap_do(&L.a, "INBOX", c, out_, sizeof(out_)));
	say("IMAP: UID %lu expunged", uid[0]);
	struct evs later = {0};
	struct want_gone g = {.server_id = sid[SRV_DEL], .soft_ok = true};
	CHECK(await_sync(&s, &inbox, &later, pred_gone, &g));
	evs_free(&later);
out:
	evs_free(&got);
	session_close(&s);
	for (int i = 0; i < N_MSG; i++) {
		imap_purge(&L.a, "INBOX", tag[i]);
		imap_purge(&L.a, trash_imap != NULL ? trash_imap : "Trash", tag[i]);
	}
}

/* 7. SendMail from A to B: an empty 200; B gets it. Without recipients the
 * server answers with a failure Status. */
static void test_sendmail(void)
{
	begin("SendMail A -> B, and without recipients");
	NEED_SERVER();
	char tag[64], mime[2048], date[64], cid[33];
	snprintf(tag, sizeof(tag), "%ssend", L.token);
	struct session sa, sb;
	struct evs got = {0};
	struct coll inbox_b = {0};
	bool a_open = false;
	if (!session_open(&sb, &L.b) || !coll_init(&inbox_b, &sb, EAS_FOLDER_INBOX) ||
	    !sync_settle(&sb, &inbox_b, 100, &got, NULL))
		goto out;
	a_open = session_open(&sa, &L.a);
	if (!a_open)
		goto out;

	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	const char *domain = strchr(L.a.addr, '@');
	random_hex(cid, 32);
	int len = snprintf(mime, sizeof(mime),
	                   "From: Halfkey Live A <%s>\r\n"
	                   "To: Halfkey Live B <%s>\r\n"
	                   "Subject: Halfkey live %s\r\n"
	                   "Date: %s\r\n"
	                   "Message-ID: <%s.%s%s>\r\n"
	                   "MIME-Version: 1.0\r\n"
	                   "Content-Type: text/plain; charset=utf-8\r\n"
	                   "Content-Transfer-Encoding: 8bit\r\n"
	                   "\r\n"
	                   "Sent by test-eas-live through SendMail.\r\n%sbody\r\n",
	                   L.a.addr, L.b.addr, tag, date, tag, cid,
	                   domain != NULL ? domain : "@halfkey.invalid", tag);
	REQUIRE(len > 0 && (size_t)len < sizeof(mime));
	struct eas_node *req = NULL;
	const char *err = NULL;
	struct result r = {0};
	if (!CHECK(eas_sendmail_build(cid, false, mime, (size_t)len, &req, &err) == 0) ||
	    !call_cmd(&sa, "SendMail", &req, 0, &r))
		goto out;
	result_say("SendMail", &r);
	CHECK_INT(r.http_status, 200);
	CHECK_INT(r.action, EAS_ACT_OK);
	CHECK(r.empty);
	if (r.root != NULL) {
		struct eas_compose_result cr;
		if (eas_compose_parse(r.root, &cr, &err) == 0)
			say("SendMail answered Status %d", cr.status);
	}
	result_reset(&r);

	/* B sees it */
	struct evs later = {0};
	struct want_add w = {.needle = tag};
	if (CHECK(await_sync(&sb, &inbox_b, &later, pred_add, &w))) {
		size_t n = 0;
		(void)add_with(&later, 0, tag, &n);
		CHECK_INT(n, 1);
		for (size_t i = 0; i < later.n; i++)
			if (later.v[i].kind == EAS_SYNC_ITEM_ADD &&
			    contains(later.v[i].text, tag)) {
				say("B got \"%s\" from %s", later.v[i].text,
				    later.v[i].from != NULL ? later.v[i].from : "(no From)");
				CHECK(later.v[i].from != NULL &&
				      strcasestr(later.v[i].from, L.a.addr) != NULL);
			}
	}
	eas_cleanup(&sb, &inbox_b, &later, tag);
	evs_free(&later);

	/* no recipient */
	random_hex(cid, 32);
	len = snprintf(mime, sizeof(mime),
	               "From: Halfkey Live A <%s>\r\n"
	               "Subject: Halfkey live %snorcpt\r\n"
	               "Date: %s\r\n"
	               "Message-ID: <%snorcpt.%s%s>\r\n"
	               "MIME-Version: 1.0\r\n"
	               "Content-Type: text/plain; charset=utf-8\r\n"
	               "\r\n"
	               "nobody to send this to\r\n",
	               L.a.addr, tag, date, tag, cid, domain != NULL ? domain : "@halfkey.invalid");
	REQUIRE(len > 0 && (size_t)len < sizeof(mime));
	if (!CHECK(eas_sendmail_build(cid, false, mime, (size_t)len, &req, &err) == 0) ||
	    !call_cmd(&sa, "SendMail", &req, 0, &r))
		goto out;
	result_say("SendMail without recipients", &r);
	CHECK(r.action != EAS_ACT_OK);
	CHECK(r.action != EAS_ACT_UNREACHABLE && r.action != EAS_ACT_BAD_RESPONSE);
	CHECK(!r.empty);
	if (r.root != NULL) {
		struct eas_compose_result cr;
		if (CHECK(eas_compose_parse(r.root, &cr, &err) == 0)) {
			say("failure Status %d (%s) -> %s", cr.status,
			    eas_common_status_name(cr.status) != NULL
			        ? eas_common_status_name(cr.status)
			        : "command-specific",
			    eas_action_name(cr.action));
			CHECK(cr.status != 0 && cr.status != 1);
			CHECK(cr.action != EAS_ACT_OK);
			CHECK_INT(cr.action, r.action);
		}
	} else {
		/* an HTTP-level refusal is a classified failure too */
		CHECK(r.http_status != 200);
	}
	result_reset(&r);
out:
	evs_free(&got);
	session_close(&sb);
	if (a_open)
		session_close(&sa);
	imap_purge(&L.b, "INBOX", tag);
}

/* 8. ItemOperations Fetch of a synced message as MIME. */
static void test_fetch_mime(void)
{
	begin("ItemOperations Fetch of a synced message as MIME");
	NEED_SERVER();
	char tag[64], body[256], mime[2048], path[512];
	snprintf(tag, sizeof(tag), "%smime", L.token);
	snprintf(body, sizeof(body), "The body text of %s, fetched whole.", tag);
	int len = snprintf(mime, sizeof(mime),
	                   "From: Halfkey Test Sender <sender@halfkey.invalid>\r\n"
	                   "To: <%s>\r\n"
	                   "Subject: Halfkey live %s\r\n"
	                   "Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
	                   "Message-ID: <%s@halfkey.invalid>\r\n"
	                   "MIME-Version: 1.0\r\n"
	                   "Content-Type: text/plain; charset=utf-8\r\n"
	                   "\r\n"
	                   "%s\r\n",
	                   L.a.addr, tag, tag, body);
	REQUIRE(len > 0 && (size_t)len < sizeof(mime));
	snprintf(path, sizeof(path), "%s", test_path("fetch.eml"));
	FILE *f = fopen(path, "wb");
	REQUIRE(f != NULL);
	bool wrote = fwrite(mime, 1, (size_t)len, f) == (size_t)len;
	REQUIRE(fclose(f) == 0 && wrote);
	int64_t t0 = mono_ms();
	const char *args[] = {L.a.user, "-", NULL};
	REQUIRE(run_env_cmd("HALFKEY_TEST_DELIVER", args, NULL, path, NULL, 0, NULL));
	say("delivered our own MIME message to %s (%lld ms)", L.a.user,
	    (long long)(mono_ms() - t0));

	struct session s;
	struct evs got = {0};
	struct coll inbox = {0};
	struct result r = {0};
	struct eas_itemops_result *ir = NULL;
	if (!session_open(&s, &L.a) || !coll_init(&inbox, &s, EAS_FOLDER_INBOX) ||
	    !sync_settle(&s, &inbox, 100, &got, NULL))
		goto out;
	size_t n = 0;
	const char *sid = add_with(&got, 0, tag, &n);
	if (!CHECK_INT(n, 1) || !CHECK(sid != NULL))
		goto out;
	struct eas_body_pref mp = {.type = EAS_BODY_MIME};
	struct eas_fetch_req fr = {
	    .collection_id = inbox.id,
	    .server_id = sid,
	    .mime_support = EAS_MIME_ALWAYS,
	    .body_pref = &mp,
	};
	struct eas_node *req = NULL;
	const char *err = NULL;
	if (!CHECK(eas_itemops_build_fetch(&fr, 1, &req, &err) == 0) ||
	    !call_cmd(&s, "ItemOperations", &req, 0, &r))
		goto out;
	result_say("ItemOperations", &r);
	if (!CHECK_INT(r.action, EAS_ACT_OK) || !CHECK(r.root != NULL) ||
	    !CHECK(eas_itemops_parse(r.root, &ir, &err) == 0))
		goto out;
	CHECK_INT(ir->status, EAS_ITEMOPS_OK);
	if (!CHECK_INT(ir->n_fetches, 1))
		goto out;
	const struct eas_fetch_result *fe = &ir->fetches[0];
	CHECK_INT(fe->status, EAS_ITEMOPS_OK);
	CHECK_STR(fe->server_id, sid);
	if (!CHECK(fe->data != NULL))
		goto out;
	say("fetched %zu bytes of MIME", fe->data_len);
	char want[160];
	snprintf(want, sizeof(want), "Subject: Halfkey live %s", tag);
	CHECK(memmem(fe->data, fe->data_len, want, strlen(want)) != NULL);
	CHECK(memmem(fe->data, fe->data_len, body, strlen(body)) != NULL);
	struct eas_email *m = NULL;
	if (CHECK(fe->properties != NULL) && CHECK(eas_email_parse(fe->properties, &m, &err) == 0))
		CHECK_INT(m->body.type, EAS_BODY_MIME);
	eas_email_free(&m);
out:
	eas_itemops_result_free(&ir);
	result_reset(&r);
	eas_cleanup(&s, &inbox, &got, tag);
	evs_free(&got);
	session_close(&s);
	imap_purge(&L.a, "INBOX", tag);
}

/* Runs the create-item command: kind, uid, summary; output into out. */
static bool create_item(const char *kind, const char *uid, const char *summary, char *out,
                        size_t out_max)
{
	int64_t t0 = mono_ms();
	const char *args[] = {L.a.user, kind, uid, summary, NULL};
	bool ok = run_env_cmd("HALFKEY_TEST_CREATE_ITEM", args, NULL, NULL, out, out_max, NULL);
	say("create-item %s %s (%lld ms)", kind, uid, (long long)(mono_ms() - t0));
	return ok;
}

/* 9. Events and contacts created on the server are synced with their
 * summary / name; deleting them on the server is a Delete. */
static void test_calendar_contacts(void)
{
	begin("calendar event and contact created / deleted on the server");
	if (L.create_item == NULL)
		SKIP("HALFKEY_TEST_CREATE_ITEM is not set: no way to create calendar events and "
		     "contacts on the server");
	NEED_SERVER();
	char ev_uid[64], ev_sum[128], ct_uid[64], ct_fn[128], out[4096], v[256];
	snprintf(ev_uid, sizeof(ev_uid), "%sevent", L.token);
	snprintf(ev_sum, sizeof(ev_sum), "Halfkey live %s event", L.token);
	snprintf(ct_uid, sizeof(ct_uid), "%scontact", L.token);
	snprintf(ct_fn, sizeof(ct_fn), "Halfkey Live %scontact", L.token);
	struct session s;
	struct evs got = {0};
	struct coll cal = {0}, con = {0};
	bool ev_made = false, ct_made = false;
	if (!session_open(&s, &L.a) || !coll_init(&cal, &s, EAS_FOLDER_CALENDAR) ||
	    !coll_init(&con, &s, EAS_FOLDER_CONTACTS) || !sync_settle(&s, &cal, 100, &got, NULL) ||
	    !sync_settle(&s, &con, 100, &got, NULL))
		goto out;

	/* the event */
	if (!create_item("event", ev_uid, ev_sum, out, sizeof(out)))
		goto out;
	ev_made = true;
	CHECK(kv_get(out, "uid", v, sizeof(v)) && strcmp(v, ev_uid) == 0);
	CHECK(kv_get(out, "summary", v, sizeof(v)) && strcmp(v, ev_sum) == 0);
	struct evs later = {0};
	struct want_add wa = {.needle = ev_sum};
	char ev_sid[EAS_ID_MAX + 1] = "";
	if (CHECK(await_sync(&s, &cal, &later, pred_add, &wa))) {
		size_t n = 0;
		const char *id = add_with(&later, 0, ev_sum, &n);
		CHECK_INT(n, 1);
		snprintf(ev_sid, sizeof(ev_sid), "%s", id);
		for (size_t i = 0; i < later.n; i++)
			if (strcmp(later.v[i].server_id, ev_sid) == 0 && later.v[i].text != NULL)
				CHECK_STR(later.v[i].text, ev_sum);
		say("event synced: ServerId %s, Subject \"%s\"", ev_sid, ev_sum);
	}
	evs_free(&later);

	/* the contact */
	if (!create_item("contact", ct_uid, ct_fn, out, sizeof(out)))
		goto out;
	ct_made = true;
	CHECK(kv_get(out, "summary", v, sizeof(v)) && strcmp(v, ct_fn) == 0);
	struct want_add wc = {.needle = ct_fn};
	char ct_sid[EAS_ID_MAX + 1] = "";
	if (CHECK(await_sync(&s, &con, &later, pred_add, &wc))) {
		size_t n = 0;
		const char *id = add_with(&later, 0, ct_fn, &n);
		CHECK_INT(n, 1);
		snprintf(ct_sid, sizeof(ct_sid), "%s", id);
		for (size_t i = 0; i < later.n; i++)
			if (strcmp(later.v[i].server_id, ct_sid) == 0)
				say("contact synced: ServerId %s, FileAs \"%s\", name \"%s\"",
				    ct_sid, later.v[i].text != NULL ? later.v[i].text : "",
				    later.v[i].alt != NULL ? later.v[i].alt : "");
	}
	evs_free(&later);

	/* deleted on the server */
	if (ev_sid[0] != '\0') {
		if (create_item("delete-event", ev_uid, NULL, out, sizeof(out))) {
			ev_made = false;
			struct want_gone g = {.server_id = ev_sid, .soft_ok = false};
			CHECK(await_sync(&s, &cal, &later, pred_gone, &g));
			evs_free(&later);
		}
	}
	if (ct_sid[0] != '\0') {
		if (create_item("delete-contact", ct_uid, NULL, out, sizeof(out))) {
			ct_made = false;
			struct want_gone g = {.server_id = ct_sid, .soft_ok = false};
			CHECK(await_sync(&s, &con, &later, pred_gone, &g));
			evs_free(&later);
		}
	}
out:
	if (ev_made)
		(void)create_item("delete-event", ev_uid, NULL, out, sizeof(out));
	if (ct_made)
		(void)create_item("delete-contact", ct_uid, NULL, out, sizeof(out));
	evs_free(&got);
	session_close(&s);
}

/* ---- TCP connections of this process, from /proc/net/tcp{,6} ------------ */

#define TCP_ESTABLISHED 1

struct tcp_conn {
	unsigned long inode;
	unsigned lport, rport;
	int state;
};

/* Inodes of this process's sockets. */
static size_t my_socket_inodes(unsigned long *ino, size_t max)
{
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL)
		return 0;
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL && n < max) {
		char p[300], link[64];
		snprintf(p, sizeof(p), "/proc/self/fd/%s", e->d_name);
		ssize_t l = readlink(p, link, sizeof(link) - 1);
		if (l <= 0)
			continue;
		link[l] = '\0';
		if (strncmp(link, "socket:[", 8) == 0)
			ino[n++] = strtoul(link + 8, NULL, 10);
	}
	closedir(d);
	return n;
}

/* The port after the last ':' of "ADDR:PORT" (hex). */
static unsigned hex_port(const char *field, size_t len)
{
	const char *colon = NULL;
	for (size_t i = 0; i < len; i++)
		if (field[i] == ':')
			colon = field + i;
	return colon != NULL ? (unsigned)strtoul(colon + 1, NULL, 16) : 0;
}

/* Every TCP row (v4 and v6) whose local or remote port is port. */
static size_t tcp_rows(unsigned port, struct tcp_conn *out, size_t max)
{
	static const char *const files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
	size_t n = 0;
	for (size_t fi = 0; fi < 2; fi++) {
		FILE *f = fopen(files[fi], "r");
		if (f == NULL)
			continue;
		char line[512];
		bool header = true;
		while (fgets(line, sizeof(line), f) != NULL) {
			if (header) {
				header = false;
				continue;
			}
			/* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
			const char *col[10];
			size_t clen[10], nc = 0;
			for (char *p = line; *p != '\0' && nc < 10;) {
				while (*p == ' ')
					p++;
				if (*p == '\0' || *p == '\n')
					break;
				col[nc] = p;
				while (*p != ' ' && *p != '\0' && *p != '\n')
					p++;
				clen[nc] = (size_t)(p - col[nc]);
				nc++;
			}
			if (nc < 10)
				continue;
			struct tcp_conn c = {
			    .lport = hex_port(col[1], clen[1]),
			    .rport = hex_port(col[2], clen[2]),
			    .state = (int)strtol(col[3], NULL, 16),
			    .inode = strtoul(col[9], NULL, 10),
			};
			if ((c.lport == port || c.rport == port) && n < max)
				out[n++] = c;
		}
		fclose(f);
	}
	return n;
}

/* This process's connections to the server's port. */
static size_t my_conns(unsigned port, struct tcp_conn *out, size_t max)
{
	unsigned long ino[256];
	size_t ni = my_socket_inodes(ino, 256);
	struct tcp_conn rows[512];
	size_t nr = tcp_rows(port, rows, 512), n = 0;
	for (size_t i = 0; i < nr; i++) {
		if (rows[i].rport != port || rows[i].inode == 0)
			continue;
		for (size_t j = 0; j < ni; j++)
			if (ino[j] == rows[i].inode && n < max)
				out[n++] = rows[i];
	}
	return n;
}

/* The state of the server's end of our connection from local port
 * client_port, when the server runs on this host; -1 when it has none. */
static int server_end_state(unsigned port, unsigned client_port)
{
	struct tcp_conn rows[512];
	size_t nr = tcp_rows(port, rows, 512);
	for (size_t i = 0; i < nr; i++)
		if (rows[i].lport == port && rows[i].rport == client_port)
			return rows[i].state;
	return -1;
}

static bool conn_in(const struct tcp_conn *set, size_t n, unsigned long inode)
{
	for (size_t i = 0; i < n; i++)
		if (set[i].inode == inode)
			return true;
	return false;
}

/* Our established connections to port that are not in before[]. */
static size_t new_established(unsigned port, const struct tcp_conn *before, size_t nb,
                              struct tcp_conn *out, size_t max)
{
	struct tcp_conn now[64];
	size_t n = my_conns(port, now, 64), k = 0;
	for (size_t i = 0; i < n; i++)
		if (now[i].state == TCP_ESTABLISHED && !conn_in(before, nb, now[i].inode) &&
		    k < max)
			out[k++] = now[i];
	return k;
}

static unsigned url_port(const char *url)
{
	CURLU *u = curl_url();
	if (u == NULL)
		abort();
	unsigned port = 0;
	char *p = NULL;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) == CURLUE_OK)
		port = (unsigned)strtoul(p, NULL, 10);
	curl_free(p);
	curl_url_cleanup(u);
	return port;
}

/* 10. Never two Pings per account: a second eas_client_ping() cancels the
 * first, whose callback never runs and whose connection is closed. */
static void test_one_ping(void)
{
	begin("one Ping per account: a second Ping supersedes the first");
	NEED_SERVER();
	unsigned port = url_port(L.url);
	REQUIRE(port > 0);
	struct session s;
	struct evs got = {0};
	struct coll inbox = {0};
	struct httpc *h2 = NULL;
	struct eas_client *c2 = NULL;
	struct eas_node *req = NULL;
	struct result r1 = {0}, r2 = {0}, r3 = {0};
	if (!session_open(&s, &L.a) || !coll_init(&inbox, &s, EAS_FOLDER_INBOX) ||
	    !sync_settle(&s, &inbox, 100, &got, NULL))
		goto out;

	/* the Pings go through a client of their own on its own connection
	 * pool (same account, same DeviceId), so that their connections can be
	 * told apart from the ones the setup left idle */
	if (!CHECK(httpc_new(L.base, &h2) == 0))
		goto out;
	/* HTTP/1.1: a connection per Ping is what this case counts; test 12
	 * covers HTTP/2, where a Ping is a stream */
	struct eas_client_config cfg = {
	    .url = L.url, .username = L.a.user, .device_id = s.device_id, .ca_file = L.ca};
	struct secret *pw = secret_dup(L.a.pass, strlen(L.a.pass));
	const char *err = NULL;
	int ret = eas_client_new(h2, &cfg, pw, &c2, &err);
	secret_free(&pw);
	if (!CHECK(ret == 0) || !CHECK(eas_client_set_policy_key(c2, s.policy_key) == 0))
		goto out;
	struct eas_ping_folder f = {.id = inbox.id, .class_name = "Email"};
	if (!CHECK(eas_ping_build(PING_HEARTBEAT_S, &f, 1, &req, &err) == 0))
		goto out;

	struct tcp_conn before[64], c1 = {0}, tmp[8];
	size_t nb = 0;
	bool waiting = false;
	for (int attempt = 0; attempt < 3 && !waiting; attempt++) {
		nb = my_conns(port, before, 64);
		result_reset(&r1);
		if (!CHECK(eas_client_ping(c2, req, PING_HEARTBEAT_S, on_result, &r1) == 0))
			goto out;
		int64_t t0 = mono_ms(), end = t0 + 30000;
		size_t k = 0;
		while ((k = new_established(port, before, nb, tmp, 8)) == 0 && !r1.done &&
		       mono_ms() < end)
			event_base_loop(L.base, EVLOOP_ONCE);
		if (!CHECK_INT(k, 1))
			goto out;
		c1 = tmp[0];
		say("Ping 1 on its connection (local port %u) after %lld ms", c1.lport,
		    (long long)(mono_ms() - t0));
		/* the server holds a Ping until something changes: it must still
		 * be waiting a moment later */
		run_for(2000);
		if (!r1.done) {
			waiting = true;
			break;
		}
		result_say("Ping 1 returned early (a change by someone else?)", &r1);
		if (!sync_settle(&s, &inbox, 100, &got, NULL))
			goto out;
	}
	if (!CHECK(waiting))
		goto out;
	CHECK(eas_client_ping_active(c2));
	CHECK_INT(eas_client_active(c2), 1);
	int srv = server_end_state(port, c1.lport);
	say("Ping 1 waiting; the server's end of its connection is %s", srv < 0 ? "not on this host"
	                                                                : srv == TCP_ESTABLISHED
	                                                                    ? "established"
	                                                                    : "in another state");

	/* the second Ping */
	if (!CHECK(eas_client_ping(c2, req, PING_HEARTBEAT_S, on_result, &r2) == 0))
		goto out;
	CHECK_INT(eas_client_active(c2), 1);
	CHECK(eas_client_ping_active(c2));
	CHECK_INT(httpc_active(h2), 1);
	/* our end of the first connection is gone or closing at once */
	struct tcp_conn now[64];
	size_t nn = my_conns(port, now, 64);
	bool c1_open = false;
	for (size_t i = 0; i < nn; i++)
		if (now[i].inode == c1.inode && now[i].state == TCP_ESTABLISHED)
			c1_open = true;
	CHECK(!c1_open);
	/* the server sees it closed (when it runs here, from its end) */
	if (srv >= 0) {
		int64_t t0 = mono_ms(), end = t0 + 30000;
		int st = server_end_state(port, c1.lport);
		while (st == TCP_ESTABLISHED && mono_ms() < end) {
			event_base_loop(L.base, EVLOOP_ONCE);
			st = server_end_state(port, c1.lport);
		}
		say("the server's end of Ping 1's connection: %s after %lld ms",
		    st < 0                  ? "closed and gone"
		    : st == TCP_ESTABLISHED ? "still established"
		                            : "closing",
		    (long long)(mono_ms() - t0));
		CHECK(st != TCP_ESTABLISHED);
	}
	/* the second Ping waits on a connection of its own; never two */
	int64_t t0 = mono_ms(), end = t0 + 30000;
	size_t k = 0;
	while ((k = new_established(port, before, nb, tmp, 8)) == 0 && !r2.done && mono_ms() < end)
		event_base_loop(L.base, EVLOOP_ONCE);
	CHECK_INT(k, 1);
	if (k == 1)
		say("Ping 2 on local port %u", tmp[0].lport);
	int64_t watch_end = mono_ms() + 3000;
	while (mono_ms() < watch_end && !r2.done) {
		event_base_loop(L.base, EVLOOP_ONCE);
		CHECK(new_established(port, before, nb, tmp, 8) <= 1);
		CHECK(eas_client_active(c2) <= 1);
	}
	CHECK_INT(r1.calls, 0);

	/* the Ping to cancel must be waiting: if a change by someone else
	 * (the mailbox is shared) answered it, Ping again */
	struct result *cur = &r2;
	for (int attempt = 0; cur->done && attempt < 3; attempt++) {
		result_say("a Ping answered meanwhile (someone changed the Inbox); Ping again",
		           cur);
		CHECK_INT(cur->action, EAS_ACT_OK);
		if (!sync_settle(&s, &inbox, 100, &got, NULL))
			goto out;
		/* the set-up client may have connected anew meanwhile: not a Ping */
		nb = my_conns(port, before, 64);
		cur = &r3;
		result_reset(cur);
		if (!CHECK(eas_client_ping(c2, req, PING_HEARTBEAT_S, on_result, cur) == 0))
			goto out;
		run_for(2000);
	}
	if (!CHECK(!cur->done))
		goto out;

	/* cancelled: nothing in flight, no callback, no connection */
	eas_client_ping_cancel(c2);
	CHECK(!eas_client_ping_active(c2));
	CHECK_INT(eas_client_active(c2), 0);
	CHECK_INT(httpc_active(h2), 0);
	t0 = mono_ms();
	end = t0 + 10000;
	while ((k = new_established(port, before, nb, tmp, 8)) != 0 && mono_ms() < end)
		event_base_loop(L.base, EVLOOP_ONCE);
	CHECK_INT(k, 0);
	run_for(1000);
	CHECK_INT(r1.calls, 0);
	CHECK_INT(cur->calls, 0);
	say("after the cancel: %zu calls in flight, %zu Ping connections", eas_client_active(c2),
	    k);
out:
	eas_node_free(&req);
	eas_client_free(&c2);
	httpc_free(&h2);
	result_reset(&r1);
	result_reset(&r2);
	result_reset(&r3);
	evs_free(&got);
	session_close(&s);
}

/* 12. HTTP/2, when the server offers it: the commands of several accounts
 * share one connection, each stream with its own Authorization; a Ping
 * held on it does not hold up another account's command; a superseded
 * Ping is a reset stream (its callback never runs) and the connection
 * stays for the others. */
#define H2_CLIENTS 8

static bool h2_client(struct httpc *h, const struct acct *a, const char *device_id,
                      const char *policy_key, struct eas_client **c_r)
{
	struct eas_client_config cfg = {.url = L.url,
	                                .username = a->user,
	                                .device_id = device_id,
	                                .ca_file = L.ca,
	                                .http2 = true};
	struct secret *pw = secret_dup(a->pass, strlen(a->pass));
	const char *err = NULL;
	int ret = eas_client_new(h, &cfg, pw, c_r, &err);
	secret_free(&pw);
	if (!CHECK(ret == 0))
		return false;
	return policy_key == NULL || CHECK(eas_client_set_policy_key(*c_r, policy_key) == 0);
}

/* User A's Ping held on h over HTTP/2 (cases 12 and 13): a session for A
 * (its DeviceId and PolicyKey), the Inbox settled, a client on h sending a
 * Ping. False when that failed, or when the Ping returned early: then the
 * case is skipped, it needs a quiet Inbox. */
static bool h2_hold_ping(struct httpc *h, struct session *s, struct coll *inbox, struct evs *got,
                         struct eas_client **pc, struct eas_node **req, struct result *p)
{
	if (!session_open(s, &L.a) || !coll_init(inbox, s, EAS_FOLDER_INBOX) ||
	    !sync_settle(s, inbox, 100, got, NULL) ||
	    !h2_client(h, &L.a, s->device_id, s->policy_key, pc))
		return false;
	struct eas_ping_folder f = {.id = inbox->id, .class_name = "Email"};
	const char *err = NULL;
	if (!CHECK(eas_ping_build(PING_HEARTBEAT_S, &f, 1, req, &err) == 0) ||
	    !CHECK(eas_client_ping(*pc, *req, PING_HEARTBEAT_S, on_result, p) == 0))
		return false;
	run_for(2000);
	if (p->done) {
		result_say("the Ping returned early (someone changed the Inbox)", p);
		test_skip("the Inbox changed under the Ping: this case needs a quiet mailbox");
		return false;
	}
	return true;
}

static void test_http2_shared(void)
{
	begin("HTTP/2: accounts share a connection; a superseded Ping is a reset stream");
	NEED_SERVER();
	unsigned port = url_port(L.url);
	REQUIRE(port > 0);
	struct httpc *h = NULL;
	struct eas_client *c[H2_CLIENTS] = {0}, *pc = NULL;
	struct result r[H2_CLIENTS], p1 = {0}, p2 = {0}, ob = {0};
	memset(r, 0, sizeof(r));
	struct session s = {0};
	struct eas_node *req = NULL;
	struct evs got = {0};
	struct coll inbox = {0};
	struct tcp_conn before[64], tmp[8];
	if (!CHECK(httpc_new(L.base, &h) == 0))
		goto out;
	size_t nb = my_conns(port, before, 64);

	/* OPTIONS of both users, all started at once */
	for (int i = 0; i < H2_CLIENTS; i++) {
		char dev[EAS_DEVICE_ID_MAX + 1] = "HkH2";
		random_hex(dev + 4, 20);
		if (!h2_client(h, i % 2 == 0 ? &L.a : &L.b, dev, NULL, &c[i]) ||
		    !CHECK(eas_client_options(c[i], on_result, &r[i], NULL) == 0))
			goto out;
	}
	int64_t end = mono_ms() + CMD_TIMEOUT_MS;
	for (int i = 0; i < H2_CLIENTS; i++)
		while (!r[i].done && mono_ms() < end)
			event_base_loop(L.base, EVLOOP_ONCE);
	for (int i = 0; i < H2_CLIENTS; i++)
		if (!CHECK(r[i].done) || !CHECK_INT(r[i].action, EAS_ACT_OK))
			goto out;
	if (r[0].http_version != 2) {
		test_skip("the server answers HTTP/%d: it does not offer HTTP/2 (ALPN h2), so "
		          "only HTTP/1.1 is tested",
		          r[0].http_version);
		goto out;
	}
	for (int i = 0; i < H2_CLIENTS; i++)
		CHECK_INT(r[i].http_version, 2);
	size_t k = new_established(port, before, nb, tmp, 8);
	say("%d OPTIONS of two users over HTTP/2 on %zu connection(s)", H2_CLIENTS, k);
	CHECK_INT(k, 1);

	/* a Ping of user A held on that connection */
	if (!h2_hold_ping(h, &s, &inbox, &got, &pc, &req, &p1))
		goto out;
	/* user B's command goes through beside it */
	if (!CHECK(eas_client_options(c[1], on_result, &ob, NULL) == 0))
		goto out;
	end = mono_ms() + CMD_TIMEOUT_MS;
	while (!ob.done && mono_ms() < end)
		event_base_loop(L.base, EVLOOP_ONCE);
	CHECK(ob.done);
	CHECK_INT(ob.action, EAS_ACT_OK);
	CHECK_INT(ob.http_version, 2);
	CHECK(!p1.done);
	/* the second Ping supersedes the first: a new stream, never two */
	if (!CHECK(eas_client_ping(pc, req, PING_HEARTBEAT_S, on_result, &p2) == 0))
		goto out;
	CHECK_INT(eas_client_active(pc), 1);
	CHECK_INT(httpc_active(h), 1);
	int64_t watch_end = mono_ms() + 3000;
	while (mono_ms() < watch_end && !p2.done) {
		event_base_loop(L.base, EVLOOP_ONCE);
		CHECK(eas_client_active(pc) <= 1);
	}
	CHECK_INT(p1.calls, 0);
	k = new_established(port, before, nb, tmp, 8);
	say("two Pings in turn and an OPTIONS beside them: %zu connection(s)", k);
	CHECK_INT(k, 1);
	/* cancelled: nothing in flight, no callback; the connection stays */
	eas_client_ping_cancel(pc);
	CHECK_INT(httpc_active(h), 0);
	run_for(1000);
	CHECK_INT(p1.calls, 0);
	CHECK(p2.calls == 0 || p2.done); /* answered before the cancel, or never */
	CHECK_INT(new_established(port, before, nb, tmp, 8), 1);
out:
	eas_node_free(&req);
	eas_client_free(&pc);
	for (int i = 0; i < H2_CLIENTS; i++) {
		eas_client_free(&c[i]);
		result_reset(&r[i]);
	}
	httpc_free(&h);
	result_reset(&p1);
	result_reset(&p2);
	result_reset(&ob);
	evs_free(&got);
	if (s.c != NULL)
		session_close(&s);
}

/* 13. A retire: an account whose Basic value went over HTTP/2 is freed, so
 * the shared connections are replaced (httpc_retire). Another account's
 * Ping held on the old connection moves to a new one, sent again: the old
 * connection closes, the Ping's callback has not run, and the moved Ping
 * still answers a delivery, once. */
static void test_http2_retire(void)
{
	begin("HTTP/2: a freed account retires the connection; another's held Ping moves and answers");
	NEED_SERVER();
	char tag[64], subject[128];
	snprintf(tag, sizeof(tag), "%sretire", L.token);
	snprintf(subject, sizeof(subject), "Halfkey live %s", tag);
	unsigned port = url_port(L.url);
	REQUIRE(port > 0);
	struct httpc *h = NULL;
	struct eas_client *cb = NULL, *pc = NULL;
	struct result rb = {0}, p = {0};
	struct session s = {0};
	struct eas_node *req = NULL;
	struct evs got = {0};
	struct coll inbox = {0};
	struct tcp_conn before[64], c1[8], c2[8];
	pid_t child = -1;
	if (!CHECK(httpc_new(L.base, &h) == 0))
		goto out;
	size_t nb = my_conns(port, before, 64);

	/* user B's client has sent its credential over HTTP/2 */
	char dev[EAS_DEVICE_ID_MAX + 1] = "HkRt";
	random_hex(dev + 4, 20);
	if (!h2_client(h, &L.b, dev, NULL, &cb) ||
	    !CHECK(eas_client_options(cb, on_result, &rb, NULL) == 0) ||
	    !run_until(&rb.done, CMD_TIMEOUT_MS) || !CHECK_INT(rb.action, EAS_ACT_OK))
		goto out;
	if (rb.http_version != 2) {
		test_skip("the server answers HTTP/%d: it does not offer HTTP/2 (ALPN h2)",
		          rb.http_version);
		goto out;
	}
	/* user A's Ping held on the same connection */
	if (!h2_hold_ping(h, &s, &inbox, &got, &pc, &req, &p))
		goto out;
	size_t k = new_established(port, before, nb, c1, 8);
	CHECK_INT(k, 1);

	/* B goes: the connection that carried B's Authorization is retired */
	eas_client_free(&cb);
	struct httpc_stats st = {0};
	int64_t end = mono_ms() + 10000;
	while (st.pools_freed == 0 && mono_ms() < end) {
		event_base_loop(L.base, EVLOOP_ONCE);
		httpc_get_stats(h, &st);
	}
	CHECK_INT(st.retires, 1);
	CHECK_INT(st.restarted, 1);
	CHECK_INT(st.pools_freed, 1);
	CHECK_INT(st.pools_retired, 0);
	CHECK(!p.done);
	CHECK_INT(httpc_active(h), 1);
	CHECK_INT(eas_client_active(pc), 1);
	run_for(500);
	k = new_established(port, before, nb, c2, 8);
	say("after the retire: %zu connection(s), local port %u -> %u", k, k > 0 ? c1[0].lport : 0,
	    k > 0 ? c2[0].lport : 0);
	if (CHECK_INT(k, 1))
		CHECK(c2[0].lport != c1[0].lport); /* the old one closed, a new one carries the Ping */

	/* the moved Ping is live on the server: a delivery answers it, once */
	const char *args[] = {L.a.user, subject, NULL};
	if (!run_env_cmd("HALFKEY_TEST_DELIVER", args, "HALFKEY_DELIVER_COUNT=1", NULL, NULL, 0,
	                 &child))
		goto out;
	if (!CHECK(run_until(&p.done, (long)PING_HEARTBEAT_S * 1000 + EAS_PING_MARGIN_MS + 30000)))
		goto out;
	run_for(500);
	CHECK_INT(p.calls, 1);
	struct eas_ping_result *pr = NULL;
	const char *err = NULL;
	if (CHECK_INT(p.action, EAS_ACT_OK) && CHECK(p.root != NULL) &&
	    CHECK(eas_ping_parse(p.root, &pr, &err) == 0)) {
		say("the moved Ping answered: Status %d", pr->status);
		CHECK_INT(pr->status, EAS_PING_CHANGES);
		CHECK_INT(p.http_version, 2);
	}
	eas_ping_result_free(&pr);
out:
	if (child > 0)
		CHECK(wait_child(child));
	eas_node_free(&req);
	eas_client_free(&cb);
	eas_client_free(&pc);
	httpc_free(&h);
	result_reset(&rb);
	result_reset(&p);
	if (s.c != NULL) {
		eas_cleanup(&s, &inbox, &got, tag);
		session_close(&s);
	}
	evs_free(&got);
	imap_purge(&L.a, "INBOX", tag);
}

/* 11. Settings UserInformation names the user's address. */
static void test_settings_userinfo(void)
{
	begin("Settings UserInformation Get");
	NEED_SERVER();
	if (!list_has(L.commands, "Settings"))
		SKIP("the server does not list Settings in MS-ASProtocolCommands (%s)", L.commands);
	struct session s;
	REQUIRE(session_new(&s, &L.a));
	say("session for %s, fresh DeviceId %s (Provision only)", L.a.user, s.device_id);
	struct result r = {0};
	struct eas_settings_result *sr = NULL;
	struct eas_node *req = NULL;
	const char *err = NULL;
	bool found = false;
	if (!session_provision(&s) || !CHECK(eas_settings_build(NULL, true, &req, &err) == 0) ||
	    !call_cmd(&s, "Settings", &req, 0, &r))
		goto out;
	result_say("Settings", &r);
	if (!CHECK_INT(r.action, EAS_ACT_OK) || !CHECK(r.root != NULL) ||
	    !CHECK(eas_settings_parse(r.root, &sr, &err) == 0))
		goto out;
	CHECK_INT(sr->status, EAS_SETTINGS_OK);
	if (!sr->has_user_info) {
		test_skip("the server answered Settings without UserInformation");
		goto out;
	}
	/* UserInformation/Status: 1, or absent (SOGo leaves it out) */
	if (sr->user_info_status == 0)
		say("UserInformation came without its Status element");
	else
		CHECK_INT(sr->user_info_status, EAS_SETTINGS_OK);
	for (size_t i = 0; i < sr->n_smtp_addresses; i++) {
		say("SMTPAddress %s", sr->smtp_addresses[i]);
		found |= strcasecmp(sr->smtp_addresses[i], L.a.addr) == 0;
	}
	for (size_t i = 0; i < sr->n_accounts; i++) {
		const struct eas_settings_account *a = &sr->accounts[i];
		say("Account %s: \"%s\", primary %s, %zu addresses",
		    a->account_id != NULL ? a->account_id : "(primary)",
		    a->user_display_name != NULL ? a->user_display_name : "",
		    a->primary_smtp != NULL ? a->primary_smtp : "(none)", a->n_smtp_addresses);
		found |= a->primary_smtp != NULL && strcasecmp(a->primary_smtp, L.a.addr) == 0;
		for (size_t j = 0; j < a->n_smtp_addresses; j++)
			found |= strcasecmp(a->smtp_addresses[j], L.a.addr) == 0;
	}
	CHECK(found);
out:
	eas_settings_result_free(&sr);
	result_reset(&r);
	session_close(&s);
}

/* ---- set-up ------------------------------------------------------------- */

static void teardown(void)
{
	httpc_free(&L.http);
	if (L.tick != NULL)
		event_free(L.tick);
	if (L.base != NULL)
		event_base_free(L.base);
	L.tick = NULL;
	L.base = NULL;
}

static const char *need_env(const char *name)
{
	const char *v = env(name);
	if (v == NULL) {
		fprintf(stderr,
		        "test-eas-live: HALFKEY_TEST_EAS_URL is set but %s is not; see the "
		        "comment at the top of src/eas/test-eas-live.c\n",
		        name);
		exit(1);
	}
	return v;
}

void test_setup(void)
{
	if (secmem_init() < 0)
		abort();
	L.url = env("HALFKEY_TEST_EAS_URL");
	if (L.url == NULL) {
		fprintf(stderr, "test-eas-live: HALFKEY_TEST_EAS_URL is not set, so there is no "
		                "ActiveSync server to test against: skipped (scripts/check.sh "
		                "brings up the project's peer and sets it)\n");
		exit(77);
	}
	L.ca = env("HALFKEY_TEST_EAS_CA");
	L.a = (struct acct){need_env("HALFKEY_TEST_USER_A"), need_env("HALFKEY_TEST_PASS_A"),
	                    need_env("HALFKEY_TEST_ADDR_A")};
	L.b = (struct acct){need_env("HALFKEY_TEST_USER_B"), need_env("HALFKEY_TEST_PASS_B"),
	                    need_env("HALFKEY_TEST_ADDR_B")};
	(void)need_env("HALFKEY_TEST_DELIVER");
	L.imap = env("HALFKEY_TEST_IMAP_URL");
	L.imap_ca = env("HALFKEY_TEST_IMAP_CA");
	L.imap_trash = env("HALFKEY_TEST_IMAP_TRASH");
	L.create_item = env("HALFKEY_TEST_CREATE_ITEM");
	hk_log_init("test-eas-live", HK_LOG_STDERR,
	            env("HALFKEY_TEST_VERBOSE") != NULL ? HK_LOG_DEBUG : HK_LOG_WARNING);
	signal(SIGPIPE, SIG_IGN);
	memcpy(L.token, "hk", 2);
	random_hex(L.token + 2, 10);
	L.base = event_base_new();
	if (L.base == NULL)
		abort();
	/* wakes EVLOOP_ONCE now and then so deadlines are checked */
	L.tick = event_new(L.base, -1, EV_PERSIST, on_tick, NULL);
	struct timeval tv = {0, 50000};
	if (L.tick == NULL || event_add(L.tick, &tv) < 0 || httpc_new(L.base, &L.http) < 0)
		abort();
	atexit(teardown);
	fprintf(stderr, "test-eas-live: %s as %s and %s, run token %s%s%s\n", L.url, L.a.user,
	        L.b.user, L.token, L.imap != NULL ? ", IMAP " : "", L.imap != NULL ? L.imap : "");
}

TESTS(TEST(test_auth_and_options), TEST(test_provision_foldersync_failures),
      TEST(test_initial_sync_window), TEST(test_ping), TEST(test_read_flag), TEST(test_delete_move),
      TEST(test_sendmail), TEST(test_fetch_mime), TEST(test_calendar_contacts), TEST(test_one_ping),
      TEST(test_settings_userinfo), TEST(test_http2_shared),
      TEST(test_http2_retire));
