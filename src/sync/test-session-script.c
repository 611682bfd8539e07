/* The sync engine against a scripted in-process ActiveSync server.
 *
 * The server (tests/tls-fixture.h, plain HTTP on 127.0.0.1) runs a small
 * model of a mailbox: folders, items with a change sequence, sync keys that
 * name a point in that sequence (opaque strings to the client; an old key
 * is accepted again, as [MS-ASCMD] requires), windows with MoreAvailable,
 * Changes that carry only what changed, Pings held until something changes.
 * Each test can override single answers (an HTTP status, a command's
 * Status) to drive the engine through every path it acts on, without a
 * real server and in milliseconds. */
#include "crypto/vault.h"
#include "store/store-fault.h"
#include "sync/session.h"
#include "test.h"
#include "tls-fixture.h"

#include <event2/event.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AS  EAS_PAGE_AIRSYNC
#define FH  EAS_PAGE_FOLDERHIERARCHY
#define PG  EAS_PAGE_PING
#define PV  EAS_PAGE_PROVISION
#define EM  EAS_PAGE_EMAIL
#define CAL EAS_PAGE_CALENDAR
#define CON EAS_PAGE_CONTACTS

#define ACCOUNT   "acct-script-0001"
#define MAX_ITEMS 400
#define MAX_COLLS 8
#define MAX_KEYS  4096

static struct event_base *base;
static struct httpc *http;

/* ---- the model mailbox ---- */

struct mitem {
	char id[32];
	char subject[64];
	int read;
	int created, changed; /* sequence numbers */
	bool read_changed;    /* the last change was Read only */
	bool deleted;
};

struct mcoll {
	char id[48];
	char name[32];
	int type;
	struct mitem items[MAX_ITEMS];
	size_t n;
};

struct mkey {
	char key[32];
	int coll; /* -1: folder hierarchy */
	int seq;
};

/* An override: the next `times` answers of cmd (for coll, if set) are this. */
struct override {
	const char *cmd;
	const char *coll; /* Sync: only this collection's part; NULL: the request */
	int http_status;  /* != 0: answer with this HTTP status */
	const char *header;
	const char *body; /* with http_status */
	int status;       /* != 0: this Status */
	int times;
	bool more_nothing; /* Sync, coll: Status 1, MoreAvailable, no items */
	bool hang;         /* never answer */
	bool drop;         /* close the connection */
};

struct model {
	struct mcoll colls[MAX_COLLS];
	size_t n_colls;
	int seq;
	int folder_seq; /* hierarchy changes bump it */
	struct mkey keys[MAX_KEYS];
	size_t n_keys;
	unsigned key_nonce;
	int client_seq[MAX_COLLS]; /* the last key handed out per collection */
	/* the Ping being held */
	struct evhttp_request *ping;
	bool ping_folder[MAX_COLLS];
	struct override ov[8];
	/* what came in */
	unsigned count[8]; /* by command: see cmd_index() */
	char last_cmd[32];
	struct eas_node *last_req; /* decoded body of the last request */
	char last_policy_key[32];
	unsigned sync_zero;     /* collections asked for with SyncKey "0" */
	char provision_key[16]; /* the final key handed out */
	bool need_provision;    /* 449 until provisioned */
	bool provision_forever; /* ... and provisioning never helps */
	bool provision_wipe;    /* Provision answers RemoteWipe */
	bool require_key;       /* 449 unless X-MS-PolicyKey is provision_key */
};

static struct model M;
static struct tfx_server *srv;

enum { C_PROVISION, C_FOLDERSYNC, C_SYNC, C_PING, C_OTHER };

static int cmd_index(const char *cmd)
{
	static const char *const names[] = {"Provision", "FolderSync", "Sync", "Ping"};
	for (int i = 0; i < 4; i++)
		if (strcmp(cmd, names[i]) == 0)
			return i;
	return C_OTHER;
}

static int model_coll(const char *id)
{
	for (size_t i = 0; i < M.n_colls; i++)
		if (strcmp(M.colls[i].id, id) == 0)
			return (int)i;
	return -1;
}

static int add_coll(const char *id, const char *name, int type)
{
	struct mcoll *c = &M.colls[M.n_colls];
	snprintf(c->id, sizeof(c->id), "%s", id);
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->type = type;
	M.folder_seq++;
	return (int)M.n_colls++;
}

static struct mitem *add_item(int coll, const char *subject)
{
	struct mcoll *c = &M.colls[coll];
	struct mitem *it = &c->items[c->n];
	snprintf(it->id, sizeof(it->id), "%d:%zu", coll, c->n + 1);
	snprintf(it->subject, sizeof(it->subject), "%s", subject);
	it->created = it->changed = ++M.seq;
	c->n++;
	return it;
}

static void set_read(int coll, size_t i)
{
	struct mitem *it = &M.colls[coll].items[i];
	it->read = 1;
	it->read_changed = true;
	it->changed = ++M.seq;
}

static void delete_item(int coll, size_t i)
{
	struct mitem *it = &M.colls[coll].items[i];
	it->deleted = true;
	it->changed = ++M.seq;
}

static const char *issue_key(int coll, int seq)
{
	struct mkey *k = &M.keys[M.n_keys++];
	/* opaque on purpose: no counter a client could lean on */
	snprintf(k->key, sizeof(k->key), "%c%u{%x}", coll < 0 ? 'F' : 'S', ++M.key_nonce,
	         (unsigned)(seq * 2654435761u));
	k->coll = coll;
	k->seq = seq;
	return k->key;
}

static int key_seq(int coll, const char *key)
{
	for (size_t i = 0; i < M.n_keys; i++)
		if (M.keys[i].coll == coll && strcmp(M.keys[i].key, key) == 0)
			return M.keys[i].seq;
	return -1;
}

static void model_reset(void)
{
	eas_node_free(&M.last_req);
	memset(&M, 0, sizeof(M));
}

/* ---- answering ---- */

static void reply_tree(struct evhttp_request *req, struct eas_node *root)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	const char *err = NULL;
	if (eas_wbxml_encode(root, &buf, &len, &err) < 0) {
		fprintf(stderr, "  fake server: encode: %s\n", err);
		abort();
	}
	static const char *const headers[] = {"Content-Type: application/vnd.ms-sync.wbxml", NULL};
	struct tfx_reply r = {.status = 200, .headers = headers, .body = buf, .body_len = len};
	tfx_respond(srv, req, &r);
	free(buf);
	eas_node_free(&root);
}

static void reply_body(struct evhttp_request *req, int http_status, const char *header,
                       const char *body)
{
	const char *headers[] = {header, NULL};
	struct tfx_reply r = {.status = http_status,
	                      .headers = header != NULL ? headers : NULL,
	                      .body = body != NULL ? body : "",
	                      .body_len = body != NULL ? strlen(body) : 0};
	tfx_respond(srv, req, &r);
}

static void reply_status(struct evhttp_request *req, int http_status, const char *header)
{
	reply_body(req, http_status, header, NULL);
}

static void add_num(struct eas_node *n, enum eas_page page, const char *name, long v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%ld", v);
	eas_node_add_text(n, page, name, buf);
}

/* The override for cmd (and coll), consumed; NULL if none. */
static struct override *take_override(const char *cmd, const char *coll)
{
	for (size_t i = 0; i < sizeof(M.ov) / sizeof(M.ov[0]); i++) {
		struct override *o = &M.ov[i];
		if (o->times <= 0 || o->cmd == NULL || strcmp(o->cmd, cmd) != 0)
			continue;
		if ((o->coll == NULL) != (coll == NULL) ||
		    (coll != NULL && strcmp(o->coll, coll) != 0))
			continue;
		o->times--;
		return o;
	}
	return NULL;
}

static void add_override(struct override o)
{
	for (size_t i = 0; i < sizeof(M.ov) / sizeof(M.ov[0]); i++)
		if (M.ov[i].times <= 0) {
			M.ov[i] = o;
			return;
		}
	abort();
}

static void on_provision_req(struct evhttp_request *req)
{
	struct eas_node *root = eas_node_new(PV, "Provision");
	add_num(root, PV, "Status", 1);
	if (M.provision_wipe) {
		eas_node_add(root, PV, "RemoteWipe");
		reply_tree(req, root);
		return;
	}
	const struct eas_node *pol = eas_node_find(M.last_req, PV, "Policies", "Policy", NULL);
	const char *ack_key = eas_node_child_text(pol, PV, "PolicyKey");
	struct eas_node *p = eas_node_add(eas_node_add(root, PV, "Policies"), PV, "Policy");
	eas_node_add_text(p, PV, "PolicyType", EAS_POLICY_TYPE);
	add_num(p, PV, "Status", 1);
	if (ack_key == NULL) {
		eas_node_add_text(p, PV, "PolicyKey", "1111"); /* temporary */
	} else {
		if (strcmp(ack_key, "1111") == 0) {
			eas_node_add_text(p, PV, "PolicyKey", M.provision_key);
			M.need_provision = M.provision_forever;
		} else {
			/* a wrong acknowledgement */
			eas_node_free(&root);
			root = eas_node_new(PV, "Provision");
			add_num(root, PV, "Status", 1);
			p = eas_node_add(eas_node_add(root, PV, "Policies"), PV, "Policy");
			eas_node_add_text(p, PV, "PolicyType", EAS_POLICY_TYPE);
			add_num(p, PV, "Status", 5);
		}
	}
	reply_tree(req, root);
}

static void on_foldersync_req(struct evhttp_request *req, struct override *o)
{
	const char *key = eas_node_child_text(M.last_req, FH, "SyncKey");
	struct eas_node *root = eas_node_new(FH, "FolderSync");
	if (o != NULL && o->status != 0) {
		add_num(root, FH, "Status", o->status);
		reply_tree(req, root);
		return;
	}
	int seq = key == NULL ? -1 : strcmp(key, "0") == 0 ? 0 : key_seq(-1, key);
	if (seq < 0) {
		add_num(root, FH, "Status", 9);
		reply_tree(req, root);
		return;
	}
	add_num(root, FH, "Status", 1);
	eas_node_add_text(root, FH, "SyncKey", issue_key(-1, M.folder_seq));
	struct eas_node *ch = eas_node_add(root, FH, "Changes");
	/* the model only ever adds folders: all of them after "0", the ones
	 * numbered past seq otherwise */
	add_num(ch, FH, "Count", (long)M.n_colls - (seq > 0 ? seq : 0));
	for (size_t i = (size_t)(seq > 0 ? seq : 0); i < M.n_colls; i++) {
		struct eas_node *a = eas_node_add(ch, FH, "Add");
		eas_node_add_text(a, FH, "ServerId", M.colls[i].id);
		eas_node_add_text(a, FH, "ParentId", "0");
		eas_node_add_text(a, FH, "DisplayName", M.colls[i].name);
		add_num(a, FH, "Type", M.colls[i].type);
	}
	reply_tree(req, root);
}

static void add_app_data(struct eas_node *parent, const struct mcoll *c, const struct mitem *it,
                         bool partial)
{
	struct eas_node *ad = eas_node_add(parent, AS, "ApplicationData");
	if (partial) {
		add_num(ad, EM, "Read", it->read);
		return;
	}
	if (c->type == EAS_FOLDER_CALENDAR) {
		eas_node_add_text(ad, CAL, "Subject", it->subject);
		eas_node_add_text(ad, CAL, "UID", it->id);
		return;
	}
	if (c->type == EAS_FOLDER_CONTACTS) {
		eas_node_add_text(ad, CON, "FileAs", it->subject);
		return;
	}
	eas_node_add_text(ad, EM, "Subject", it->subject);
	eas_node_add_text(ad, EM, "From", "\"Model\" <model@example.org>");
	add_num(ad, EM, "Read", it->read);
	struct eas_node *body = eas_node_add(ad, EAS_PAGE_AIRSYNCBASE, "Body");
	add_num(body, EAS_PAGE_AIRSYNCBASE, "Type", 1);
	eas_node_add_text(body, EAS_PAGE_AIRSYNCBASE, "Data", "Hello from the model.");
}

static int cmp_changed(const void *a, const void *b)
{
	const struct mitem *x = *(const struct mitem *const *)a,
	                   *y = *(const struct mitem *const *)b;
	return x->changed - y->changed;
}

/* One collection's part of a Sync answer; false when it has nothing to say. */
static bool sync_collection(struct eas_node *colls, const struct eas_node *rc)
{
	const char *id = eas_node_child_text(rc, AS, "CollectionId");
	const char *key = eas_node_child_text(rc, AS, "SyncKey");
	const char *ws = eas_node_child_text(rc, AS, "WindowSize");
	int ci = id != NULL ? model_coll(id) : -1;
	struct override *o = id != NULL ? take_override("Sync", id) : NULL;
	struct eas_node *c;
	if (o != NULL && o->more_nothing && ci >= 0) {
		c = eas_node_add(colls, AS, "Collection");
		eas_node_add_text(c, AS, "SyncKey", issue_key(ci, key_seq(ci, key)));
		eas_node_add_text(c, AS, "CollectionId", id);
		add_num(c, AS, "Status", 1);
		eas_node_add(c, AS, "MoreAvailable");
		return true;
	}
	if (o != NULL || ci < 0 || key == NULL) {
		c = eas_node_add(colls, AS, "Collection");
		eas_node_add_text(c, AS, "CollectionId", id != NULL ? id : "?");
		add_num(c, AS, "Status", o != NULL ? o->status : 8);
		return true;
	}
	struct mcoll *mc = &M.colls[ci];
	if (strcmp(key, "0") == 0) {
		M.sync_zero++;
		c = eas_node_add(colls, AS, "Collection");
		eas_node_add_text(c, AS, "SyncKey", issue_key(ci, 0));
		eas_node_add_text(c, AS, "CollectionId", id);
		add_num(c, AS, "Status", 1);
		M.client_seq[ci] = 0;
		return true;
	}
	int from = key_seq(ci, key);
	if (from < 0) {
		c = eas_node_add(colls, AS, "Collection");
		eas_node_add_text(c, AS, "CollectionId", id);
		add_num(c, AS, "Status", 3);
		return true;
	}
	long window = ws != NULL ? strtol(ws, NULL, 10) : 100;
	struct mitem *changed[MAX_ITEMS];
	size_t n = 0;
	for (size_t i = 0; i < mc->n; i++) {
		struct mitem *it = &mc->items[i];
		if (it->changed > from && !(it->deleted && it->created > from))
			changed[n++] = it;
	}
	M.client_seq[ci] = M.seq;
	if (n == 0)
		return false; /* nothing new: left out of the answer */
	qsort(changed, n, sizeof(changed[0]), cmp_changed);
	size_t take = n < (size_t)window ? n : (size_t)window;
	int to = take < n ? changed[take - 1]->changed : M.seq;
	M.client_seq[ci] = to;
	c = eas_node_add(colls, AS, "Collection");
	eas_node_add_text(c, AS, "SyncKey", issue_key(ci, to));
	eas_node_add_text(c, AS, "CollectionId", id);
	add_num(c, AS, "Status", 1);
	if (take < n)
		eas_node_add(c, AS, "MoreAvailable");
	struct eas_node *cmds = eas_node_add(c, AS, "Commands");
	for (size_t i = 0; i < take; i++) {
		struct mitem *it = changed[i];
		const char *kind = it->deleted ? "Delete" : it->created > from ? "Add" : "Change";
		struct eas_node *cmd = eas_node_add(cmds, AS, kind);
		eas_node_add_text(cmd, AS, "ServerId", it->id);
		if (!it->deleted)
			add_app_data(cmd, mc, it, it->created <= from && it->read_changed);
	}
	return true;
}

static void on_sync_req(struct evhttp_request *req, struct override *o)
{
	struct eas_node *root = eas_node_new(AS, "Sync");
	if (o != NULL && o->status != 0) {
		add_num(root, AS, "Status", o->status);
		reply_tree(req, root);
		return;
	}
	struct eas_node *colls = eas_node_add(root, AS, "Collections");
	bool any = false;
	for (const struct eas_node *rc =
	         eas_node_find(M.last_req, AS, "Collections", "Collection", NULL);
	     rc != NULL; rc = eas_node_next_same(rc))
		any |= sync_collection(colls, rc);
	if (!any) {
		eas_node_free(&root);
		reply_status(req, 200, "Content-Type: application/vnd.ms-sync.wbxml");
		return;
	}
	reply_tree(req, root);
}

/* Answers the held Ping if one of its folders has news. */
static void ping_check(void)
{
	if (M.ping == NULL)
		return;
	struct eas_node *root = eas_node_new(PG, "Ping");
	struct eas_node *folders = NULL;
	for (size_t i = 0; i < M.n_colls; i++) {
		if (!M.ping_folder[i])
			continue;
		bool news = false;
		for (size_t j = 0; j < M.colls[i].n; j++)
			news |= M.colls[i].items[j].changed > M.client_seq[i];
		if (!news)
			continue;
		if (folders == NULL)
			folders = eas_node_add(root, PG, "Folders");
		eas_node_add_text(folders, PG, "Folder", M.colls[i].id);
	}
	if (folders == NULL) {
		eas_node_free(&root);
		return;
	}
	/* Status before Folders is the spec's order; the parser does not care */
	add_num(root, PG, "Status", 2);
	struct evhttp_request *req = M.ping;
	M.ping = NULL;
	reply_tree(req, root);
}

/* Ends the held Ping with a status (1: heartbeat expired). */
static void ping_end(int status)
{
	if (M.ping == NULL)
		return;
	struct eas_node *root = eas_node_new(PG, "Ping");
	add_num(root, PG, "Status", status);
	struct evhttp_request *req = M.ping;
	M.ping = NULL;
	reply_tree(req, root);
}

static void on_ping_req(struct evhttp_request *req, struct override *o)
{
	if (o != NULL && o->status != 0) {
		struct eas_node *root = eas_node_new(PG, "Ping");
		add_num(root, PG, "Status", o->status);
		if (o->status == 5)
			add_num(root, PG, "HeartbeatInterval", 120);
		if (o->status == 6)
			add_num(root, PG, "MaxFolders", 1);
		reply_tree(req, root);
		return;
	}
	if (M.ping != NULL) /* a new Ping ends the older one */
		ping_end(1);
	memset(M.ping_folder, 0, sizeof(M.ping_folder));
	for (const struct eas_node *f = eas_node_find(M.last_req, PG, "Folders", "Folder", NULL);
	     f != NULL; f = eas_node_next_same(f)) {
		int ci = model_coll(eas_node_child_text(f, PG, "Id"));
		if (ci >= 0)
			M.ping_folder[ci] = true;
	}
	M.ping = req;
	ping_check();
}

static void handler(struct tfx_server *s, struct evhttp_request *req, const struct tfx_request *rec,
                    void *ctx)
{
	(void)s;
	(void)ctx;
	char cmd[32] = "";
	const char *q = strstr(rec->uri, "Cmd=");
	if (q != NULL) {
		size_t n = strcspn(q + 4, "&");
		snprintf(cmd, sizeof(cmd), "%.*s", (int)(n < 31 ? n : 31), q + 4);
	}
	snprintf(M.last_cmd, sizeof(M.last_cmd), "%s", cmd);
	const char *pk = tfx_request_header(rec, "X-MS-PolicyKey");
	snprintf(M.last_policy_key, sizeof(M.last_policy_key), "%s", pk != NULL ? pk : "");
	M.count[cmd_index(cmd)]++;
	eas_node_free(&M.last_req);
	const char *err = NULL;
	if (rec->body_len > 0 &&
	    eas_wbxml_decode(rec->body, rec->body_len, 0, &M.last_req, &err) < 0) {
		fprintf(stderr, "  fake server: bad request body: %s\n", err);
		reply_status(req, 400, NULL);
		return;
	}
	struct override *o = take_override(cmd, NULL);
	if (o != NULL && o->hang)
		return;
	if (o != NULL && o->drop) {
		tfx_drop(srv, req, 0);
		return;
	}
	if (o != NULL && o->http_status != 0) {
		reply_body(req, o->http_status, o->header, o->body);
		return;
	}
	if ((M.need_provision ||
	     (M.require_key && strcmp(M.last_policy_key, M.provision_key) != 0)) &&
	    strcmp(cmd, "Provision") != 0) {
		reply_status(req, 449, NULL);
		return;
	}
	switch (cmd_index(cmd)) {
	case C_PROVISION: on_provision_req(req); break;
	case C_FOLDERSYNC: on_foldersync_req(req, o); break;
	case C_SYNC: on_sync_req(req, o); break;
	case C_PING: on_ping_req(req, o); break;
	default: reply_status(req, 501, NULL); break;
	}
}

/* ---- the client side ---- */

struct events {
	struct sync_event ev[64];
	size_t n;
	unsigned changed;
	bool stop_on_terminal; /* stop the session from the callback */
	bool stop_on_changed;
	struct sync_session **session;
};

static void on_event(const struct sync_event *ev, void *ctx)
{
	struct events *e = ctx;
	if (e->n < sizeof(e->ev) / sizeof(e->ev[0]))
		e->ev[e->n++] = *ev;
	if (ev->kind == SYNC_EV_CHANGED)
		e->changed++;
	if ((e->stop_on_terminal && ev->kind != SYNC_EV_CHANGED) ||
	    (e->stop_on_changed && ev->kind == SYNC_EV_CHANGED))
		sync_session_stop(e->session);
}

struct fixture {
	const char *path;
	struct store *store;
	struct secret *dek, *password;
	struct hk_clock clock;
	struct sync_env env;
	struct sync_config cfg;
	struct events events;
	struct sync_session *s;
};

static void tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Runs the loop until done(ctx) or timeout_ms of real time. */
static bool run_until(bool (*done)(void *), void *ctx, long timeout_ms)
{
	struct event *t = event_new(base, -1, EV_PERSIST, tick, NULL);
	struct timeval tv = {0, 5000};
	event_add(t, &tv);
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	bool ok = false;
	for (;;) {
		if (done(ctx)) {
			ok = true;
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		long ms =
		    (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (ms > timeout_ms)
			break;
		event_base_loop(base, EVLOOP_ONCE);
	}
	event_free(t);
	return ok;
}

static bool pinging(void *ctx)
{
	struct fixture *f = ctx;
	return f->s != NULL && sync_session_state(f->s) == SYNC_STATE_PING && M.ping != NULL;
}

static bool waiting(void *ctx)
{
	struct fixture *f = ctx;
	return f->s != NULL && sync_session_state(f->s) == SYNC_STATE_WAIT;
}

static bool stopped(void *ctx)
{
	struct fixture *f = ctx;
	return f->s == NULL || sync_session_state(f->s) == SYNC_STATE_DONE;
}

static bool never(void *ctx)
{
	(void)ctx;
	return false;
}

static void loop_for(long ms)
{
	run_until(never, NULL, ms);
}

static void fixture_open(struct fixture *f, const struct store_driver *drv)
{
	memset(f, 0, sizeof(*f));
	static unsigned seq;
	char name[32];
	snprintf(name, sizeof(name), "script-%u.db", seq++);
	f->path = test_path(name);
	const char *err = NULL;
	if (store_open(drv, f->path, &f->store, &err) < 0) {
		fprintf(stderr, "  store_open: %s\n", err);
		abort();
	}
	struct store_account a = {
	    .state = STORE_ACCOUNT_ACTIVE, .created_ms = 1, .last_activity_ms = 1};
	snprintf(a.id, sizeof(a.id), ACCOUNT);
	snprintf(a.server_url, sizeof(a.server_url), "%s", tfx_server_url(srv, "/eas"));
	snprintf(a.username, sizeof(a.username), "alice");
	struct store_device d = {.created_ms = 1, .last_seen_ms = 1};
	snprintf(d.id, sizeof(d.id), "dev-script-0001");
	snprintf(d.account_id, sizeof(d.account_id), ACCOUNT);
	snprintf(d.eas_device_id, sizeof(d.eas_device_id), "HKSCRIPT0001");
	secmem_random(d.token_hash, sizeof(d.token_hash));
	uint8_t blob[48];
	secmem_random(blob, sizeof(blob));
	struct store_envelope e = {.key_id = 1,
	                           .credential = blob,
	                           .credential_len = sizeof(blob),
	                           .wrapped_dek = blob,
	                           .wrapped_dek_len = sizeof(blob)};
	if (store_account_create(f->store, &a, &d, &e, NULL, &err) < 0) {
		fprintf(stderr, "  account_create: %s\n", err);
		abort();
	}
	f->dek = secret_random(HK_KEY_LEN);
	f->password = secret_dup("secret", 6);
	hk_clock_test_init(&f->clock, INT64_C(1700000000000));
	f->env = (struct sync_env){base, http, f->store, &f->clock};
	f->cfg = (struct sync_config){
	    .account_id = ACCOUNT,
	    .url = tfx_server_url(srv, "/Microsoft-Server-ActiveSync"),
	    .username = "alice",
	    .device_id = "HKSCRIPT0001",
	    .timeout_ms = 10000,
	    .heartbeat_s = 300,
	    .window_size = 100,
	    .backoff_min_ms = 20,
	    .backoff_max_ms = 200,
	};
	f->events.session = &f->s;
}

static bool fixture_start(struct fixture *f)
{
	memset(&f->events.ev, 0, sizeof(f->events.ev));
	f->events.n = 0;
	f->events.changed = 0;
	return CHECK_INT(
	    sync_session_start(&f->env, &f->cfg, f->password, f->dek, on_event, &f->events, &f->s),
	    0);
}

static void fixture_close(struct fixture *f)
{
	sync_session_stop(&f->s);
	store_close(&f->store);
	secret_free(&f->dek);
	secret_free(&f->password);
	ping_end(1);
}

/* A mailbox: Inbox with n_inbox mails, Sent with 3, a calendar with 2
 * events, contacts with 2, notes (not synced by default) with 1, and a
 * generic folder without a class. */
static int inbox, sent, calendar, contacts, notes;

static void standard_model(size_t n_inbox)
{
	model_reset();
	calendar = add_coll("vevent%2Fpersonal", "Calendar", EAS_FOLDER_CALENDAR);
	inbox = add_coll("mail%2FINBOX", "Inbox", EAS_FOLDER_INBOX);
	sent = add_coll("mail%2FSent", "Sent", EAS_FOLDER_SENT);
	contacts = add_coll("vcard/personal", "Contacts", EAS_FOLDER_CONTACTS);
	notes = add_coll("notes", "Notes", EAS_FOLDER_NOTES);
	add_coll("generic", "Other", EAS_FOLDER_GENERIC);
	char subj[64];
	for (size_t i = 0; i < n_inbox; i++) {
		snprintf(subj, sizeof(subj), "Inbox message %zu", i);
		add_item(inbox, subj);
	}
	for (int i = 0; i < 3; i++) {
		snprintf(subj, sizeof(subj), "Sent message %d", i);
		add_item(sent, subj);
	}
	add_item(calendar, "Meeting one");
	add_item(calendar, "Meeting two");
	add_item(contacts, "Doe, Jane");
	add_item(contacts, "Roe, Richard");
	add_item(notes, "A note");
}

/* ---- checks on the cache ---- */

/* Opens the cached item and returns its decoded tree (NULL: not there or
 * not opening). */
static struct eas_node *open_item(struct fixture *f, const char *coll, const char *id,
                                  const struct secret *dek)
{
	struct store_item *item = NULL;
	const char *err = NULL;
	if (store_item_get(f->store, ACCOUNT, coll, id, &item, &err) < 0)
		return NULL;
	char vid[SYNC_VAULT_ID_MAX];
	uint8_t *pt = malloc(item->sealed_len);
	size_t len = 0;
	struct eas_node *root = NULL;
	if (sync_vault_item_id(coll, id, vid, sizeof(vid)) == 0 &&
	    vault_item_open(dek, ACCOUNT, vid, item->sealed, item->sealed_len, pt, item->sealed_len,
	                    &len) == 0 &&
	    eas_wbxml_decode(pt, len, 0, &root, &err) < 0)
		root = NULL;
	free(pt);
	store_item_free(&item);
	return root;
}

/* The cache holds exactly the model's live items of coll, each opening to
 * the model's subject. */
static bool cache_matches(struct fixture *f, int coll)
{
	const struct mcoll *mc = &M.colls[coll];
	struct store_id_list *ids = NULL;
	const char *err = NULL;
	if (!CHECK_INT(store_item_list(f->store, ACCOUNT, mc->id, &ids, &err), 0))
		return false;
	size_t live = 0;
	bool ok = true;
	for (size_t i = 0; i < mc->n; i++) {
		const struct mitem *it = &mc->items[i];
		if (it->deleted)
			continue;
		live++;
		struct eas_node *t = open_item(f, mc->id, it->id, f->dek);
		const char *subj =
		    t == NULL                         ? NULL
		    : mc->type == EAS_FOLDER_CALENDAR ? eas_node_child_text(t, CAL, "Subject")
		    : mc->type == EAS_FOLDER_CONTACTS ? eas_node_child_text(t, CON, "FileAs")
		                                      : eas_node_child_text(t, EM, "Subject");
		if (!CHECK(t != NULL && eas_node_is(t, AS, "ApplicationData")) ||
		    !CHECK_STR(subj, it->subject)) {
			fprintf(stderr, "  ... item %s of %s\n", it->id, mc->id);
			ok = false;
		}
		if (t != NULL && mc->type == EAS_FOLDER_INBOX) {
			const char *read = eas_node_child_text(t, EM, "Read");
			char want[8];
			snprintf(want, sizeof(want), "%d", it->read);
			ok &= CHECK_STR(read, want);
		}
		eas_node_free(&t);
	}
	ok &= CHECK_INT(ids->count, live);
	store_id_list_free(&ids);
	return ok;
}

static int64_t counter(struct fixture *f)
{
	struct store_account a;
	const char *err = NULL;
	if (store_account_get(f->store, ACCOUNT, &a, &err) < 0)
		return -1;
	return a.change_counter;
}

static unsigned stat_of(struct fixture *f, size_t offset)
{
	struct sync_stats st;
	sync_session_stats(f->s, &st);
	return (unsigned)*(const uint64_t *)((const char *)&st + offset);
}
#define STAT(f, field) stat_of(f, offsetof(struct sync_stats, field))

/* ---- tests ---- */

static void test_vault_item_id(void)
{
	char a[SYNC_VAULT_ID_MAX], b[SYNC_VAULT_ID_MAX];
	CHECK_INT(sync_vault_item_id("mail%2FINBOX", "17", a, sizeof(a)), 0);
	CHECK_STR(a, "mail%252FINBOX/17");
	/* the pairs a plain "collection/item" would confuse stay apart */
	CHECK_INT(sync_vault_item_id("a/b", "c", a, sizeof(a)), 0);
	CHECK_INT(sync_vault_item_id("a", "b/c", b, sizeof(b)), 0);
	CHECK_STR(a, "a%2Fb/c");
	CHECK_STR(b, "a/b/c");
	CHECK(strcmp(a, b) != 0);
	CHECK_INT(sync_vault_item_id("", "c", a, sizeof(a)), HK_ERR_INVAL);
	CHECK_INT(sync_vault_item_id("a", "", a, sizeof(a)), HK_ERR_INVAL);
	CHECK_INT(sync_vault_item_id("abc", "d", a, 5), HK_ERR_TOO_LONG);
	CHECK_INT(sync_vault_item_id("abc", "d", a, 6), 0);
	CHECK_STR(a, "abc/d");
	CHECK_INT(sync_vault_item_id("///", "d", a, 11), HK_ERR_TOO_LONG);
	CHECK_INT(sync_vault_item_id("///", "d", a, 12), 0);
	CHECK_STR(a, "%2F%2F%2F/d");
	/* the longest ids fit the documented size */
	char coll[STORE_SERVER_ID_MAX], item[STORE_SERVER_ID_MAX];
	memset(coll, '/', sizeof(coll) - 1);
	coll[sizeof(coll) - 1] = '\0';
	memset(item, 'x', sizeof(item) - 1);
	item[sizeof(item) - 1] = '\0';
	CHECK_INT(sync_vault_item_id(coll, item, a, sizeof(a)), 0);
}

static void test_bad_config(void)
{
	struct fixture f;
	fixture_open(&f, &store_driver_sqlite);
	struct sync_config cfg = f.cfg;
	cfg.account_id = "";
	CHECK_INT(sync_session_start(&f.env, &cfg, f.password, f.dek, on_event, &f.events, &f.s),
	          HK_ERR_INVAL);
	cfg = f.cfg;
	cfg.window_size = 513;
	CHECK_INT(sync_session_start(&f.env, &cfg, f.password, f.dek, on_event, &f.events, &f.s),
	          HK_ERR_INVAL);
	cfg = f.cfg;
	cfg.device_id = "not valid!";
	CHECK_INT(sync_session_start(&f.env, &cfg, f.password, f.dek, on_event, &f.events, &f.s),
	          HK_ERR_INVAL);
	cfg = f.cfg;
	cfg.account_id = "no-such-account";
	CHECK_INT(sync_session_start(&f.env, &cfg, f.password, f.dek, on_event, &f.events, &f.s),
	          HK_ERR_NOT_FOUND);
	struct secret *short_key = secret_random(16);
	CHECK_INT(
	    sync_session_start(&f.env, &f.cfg, f.password, short_key, on_event, &f.events, &f.s),
	    HK_ERR_INVAL);
	secret_free(&short_key);
	CHECK(f.s == NULL);
	CHECK_INT(f.events.n, 0);
	CHECK_INT(tfx_server_count(srv), 0);
	fixture_close(&f);
}

/* The whole first sync: hierarchy, windows, every class, sealed items,
 * then a Ping with the Inbox first. */
static void test_initial_sync(void)
{
	standard_model(250);
	struct fixture f;
	fixture_open(&f, &store_driver_sqlite);
	REQUIRE(fixture_start(&f));
	REQUIRE(run_until(pinging, &f, 20000));

	/* every folder is known, the classes synced have their items */
	struct store_collection *colls = NULL;
	size_t n = 0;
	const char *err = NULL;
	REQUIRE(store_collection_list(f.store, ACCOUNT, &colls, &n, &err) == 0);
	CHECK_INT(n, 6);
	for (size_t i = 0; i < n; i++) {
		bool synced = strcmp(colls[i].collection_id, "notes") != 0 &&
		              strcmp(colls[i].collection_id, "generic") != 0;
		CHECK(synced == (strcmp(colls[i].sync_key, "0") != 0));
	}
	store_list_free(&colls);
	CHECK(cache_matches(&f, inbox));
	CHECK(cache_matches(&f, sent));
	CHECK(cache_matches(&f, calendar));
	CHECK(cache_matches(&f, contacts));
	struct store_id_list *ids = NULL;
	REQUIRE(store_item_list(f.store, ACCOUNT, "notes", &ids, &err) == 0);
	CHECK_INT(ids->count, 0);
	store_id_list_free(&ids);
	CHECK_INT(STAT(&f, items_put), 250 + 3 + 2 + 2);
	CHECK_INT(STAT(&f, syncs_from_zero), 4);
	CHECK_INT(M.sync_zero, 4);
	/* 250 in windows of 100: "0", 100, 100, 50, and the round that finds
	 * nothing more; the small folders ride along in the same requests */
	CHECK_INT(M.count[C_SYNC], 5);
	CHECK_INT(M.count[C_FOLDERSYNC], 1);

	/* the Ping: heartbeat as configured, every synced folder, Inbox first */
	REQUIRE(M.last_req != NULL && eas_node_is(M.last_req, PG, "Ping"));
	CHECK_STR(eas_node_child_text(M.last_req, PG, "HeartbeatInterval"), "300");
	const struct eas_node *fl = eas_node_find(M.last_req, PG, "Folders", "Folder", NULL);
	CHECK_STR(eas_node_child_text(fl, PG, "Id"), "mail%2FINBOX");
	CHECK_STR(eas_node_child_text(fl, PG, "Class"), "Email");
	CHECK_INT(eas_node_count(eas_node_child(M.last_req, PG, "Folders"), PG, "Folder"), 4);
	CHECK(M.ping_folder[calendar] && M.ping_folder[contacts] && M.ping_folder[sent] &&
	      !M.ping_folder[notes]);

	/* one event per committed response, ending at the store's counter */
	CHECK(f.events.changed >= 3);
	REQUIRE(f.events.n > 0);
	CHECK_INT(f.events.ev[f.events.n - 1].kind, SYNC_EV_CHANGED);
	CHECK_INT(f.events.ev[f.events.n - 1].change_counter, counter(&f));
	CHECK_STR(f.events.ev[0].account_id, ACCOUNT);
	for (size_t i = 1; i < f.events.n; i++)
		CHECK(f.events.ev[i].change_counter > f.events.ev[i - 1].change_counter);

	/* sealed: another key opens nothing, a moved item neither, and no
	 * subject is in the file in clear */
	struct secret *wrong = secret_random(HK_KEY_LEN);
	struct eas_node *t = open_item(&f, M.colls[inbox].id, "1:1", wrong);
	CHECK(t == NULL);
	secret_free(&wrong);
	struct store_item *item = NULL;
	REQUIRE(store_item_get(f.store, ACCOUNT, M.colls[inbox].id, "1:1", &item, &err) == 0);
	uint8_t pt[4096];
	size_t len = 0;
	CHECK_INT(vault_item_open(f.dek, ACCOUNT, "mail%252FINBOX/1:2", item->sealed,
	                          item->sealed_len, pt, sizeof(pt), &len),
	          HK_ERR_AUTH);
	CHECK_INT(vault_item_open(f.dek, "other-account", "mail%252FINBOX/1:1", item->sealed,
	                          item->sealed_len, pt, sizeof(pt), &len),
	          HK_ERR_AUTH);
	store_item_free(&item);
	CHECK_INT(test_file_count(f.path, "Inbox message", 13), 0);
	char wal[600];
	snprintf(wal, sizeof(wal), "%s-wal", f.path);
	CHECK_INT(test_file_count(wal, "Inbox message", 13), 0);
	CHECK_INT(test_file_count(wal, "Hello from the model", 20), 0);

	/* stop while the Ping is held: nothing left running, no event after */
	size_t events = f.events.n;
	sync_session_stop(&f.s);
	CHECK(f.s == NULL);
	CHECK_INT(httpc_active(http), 0);
	loop_for(50);
	CHECK_INT(f.events.n, events);
	fixture_close(&f);
}

/* Changes pushed through Ping: an Add, a Read-only Change merged into the
 * cached item, a Delete; then a restart resumes from the stored keys. */
static void test_ping_changes_and_restart(void)
{
	standard_model(20);
	struct fixture f;
	fixture_open(&f, &store_driver_sqlite);
	REQUIRE(fixture_start(&f));
	REQUIRE(run_until(pinging, &f, 20000));
	unsigned syncs = M.count[C_SYNC];
	int64_t before = counter(&f);

	add_item(inbox, "Fresh mail");
	set_read(inbox, 3);
	delete_item(inbox, 5);
	add_item(calendar, "New event");
	ping_check();
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK(M.count[C_SYNC] > syncs);
	CHECK(cache_matches(&f, inbox));
	CHECK(cache_matches(&f, calendar));
	/* the Change carried only Read: the merged item kept everything else */
	struct eas_node *t = open_item(&f, M.colls[inbox].id, M.colls[inbox].items[3].id, f.dek);
	REQUIRE(t != NULL);
	CHECK_STR(eas_node_child_text(t, EM, "Read"), "1");
	CHECK_STR(eas_node_child_text(t, EM, "From"), "\"Model\" <model@example.org>");
	CHECK_STR(eas_node_child_text(eas_node_child(t, EAS_PAGE_AIRSYNCBASE, "Body"),
	                              EAS_PAGE_AIRSYNCBASE, "Data"),
	          "Hello from the model.");
	CHECK_INT(eas_node_count(t, EM, "Read"), 1);
	eas_node_free(&t);
	REQUIRE(f.events.n > 0);
	CHECK_INT(f.events.ev[f.events.n - 1].kind, SYNC_EV_CHANGED);
	CHECK(f.events.ev[f.events.n - 1].change_counter > before);
	CHECK_INT(f.events.ev[f.events.n - 1].change_counter, counter(&f));

	/* heartbeat expiry: just Ping again */
	unsigned pings = M.count[C_PING];
	ping_end(1);
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK_INT(M.count[C_PING], pings + 1);

	/* restart: hierarchy and collections from their stored keys */
	sync_session_stop(&f.s);
	ping_end(1);
	unsigned fs = M.count[C_FOLDERSYNC], zero = M.sync_zero;
	REQUIRE(fixture_start(&f));
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK_INT(M.count[C_FOLDERSYNC], fs + 1);
	CHECK_INT(M.sync_zero, zero);
	CHECK_INT(STAT(&f, syncs_from_zero), 0);
	CHECK_INT(STAT(&f, items_put), 0);
	CHECK(cache_matches(&f, inbox));
	/* changes made while it was away come on the first round */
	sync_session_stop(&f.s);
	ping_end(1);
	add_item(inbox, "While away");
	REQUIRE(fixture_start(&f));
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK_INT(STAT(&f, items_put), 1);
	CHECK(cache_matches(&f, inbox));
	fixture_close(&f);
}

/* Sync Status 3 for one collection: its items go, it restarts from "0" and
 * comes back whole; the others are not touched. */
static void test_sync_invalid_key(void)
{
	standard_model(30);
	struct fixture f;
	fixture_open(&f, &store_driver_sqlite);
	REQUIRE(fixture_start(&f));
	REQUIRE(run_until(pinging, &f, 20000));
	unsigned zero = M.sync_zero;
	add_override(
	    (struct override){.cmd = "Sync", .coll = M.colls[inbox].id, .status = 3, .times = 1});
	add_item(inbox, "Trigger");
	ping_check();
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK_INT(M.sync_zero, zero + 1);
	CHECK(cache_matches(&f, inbox));
	CHECK(cache_matches(&f, calendar));
	CHECK_INT(STAT(&f, syncs_from_zero), 4 + 1);

	/* a key the server does not know answers 3 too (the model's rule) */
	const char *err = NULL;
	struct store_collection c;
	REQUIRE(store_collection_get(f.store, ACCOUNT, M.colls[sent].id, &c, &err) == 0);
	sync_session_stop(&f.s);
	ping_end(1);
	snprintf(c.sync_key, sizeof(c.sync_key), "forgotten");
	REQUIRE(store_collection_put(f.store, ACCOUNT, &c, &err) == 0);
	REQUIRE(fixture_start(&f));
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK_INT(STAT(&f, syncs_from_zero), 1);
	CHECK(cache_matches(&f, sent));
	fixture_close(&f);
}

/* Sync Status 12 and Ping Status 7: the hierarchy first, then on. Sync 13:
 * the full request again. Sync 16 and Ping 8: back off and retry. */
static void test_sync_statuses(void)
{
	standard_model(10);
	struct fixture f;
	fixture_open(&f, &store_driver_sqlite);
	REQUIRE(fixture_start(&f));
	REQUIRE(run_until(pinging, &f, 20000));

	unsigned fs = M.count[C_FOLDERSYNC];
	add_override(
	    (struct override){.cmd = "Sync", .coll = M.colls[inbox].id, .status = 12, .times = 1});
	add_item(inbox, "After 12");
	ping_check();
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK_INT(M.count[C_FOLDERSYNC], fs + 1);
	CHECK(cache_matches(&f, inbox));

	/* a folder added on the server and announced by Ping Status 7 */
	int extra = add_coll("mail%2FNew", "New", EAS_FOLDER_USER_MAIL);
	add_item(extra, "In the new folder");
	add_override((struct override){.cmd = "Ping", .status = 7, .times = 1});
	ping_end(1); /* the next Ping gets the override */
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK_INT(M.count[C_FOLDERSYNC], fs + 2);
	CHECK(cache_matches(&f, extra));
	CHECK(M.ping_folder[extra]);

	/* 13 for the whole request, then for a collection */
	unsigned syncs = M.count[C_SYNC];
	add_override((struct override){.cmd = "Sync", .status = 13, .times = 1});
	add_override(
	    (struct override){.cmd = "Sync", .coll = M.colls[inbox].id, .status = 13, .times = 1});
	add_item(inbox, "After 13");
	ping_check();
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK(M.count[C_SYNC] >= syncs + 3);
	CHECK(cache_matches(&f, inbox));
	CHECK_INT(STAT(&f, backoffs), 0);

	/* 16: retry after a back-off */
	add_override(
	    (struct override){.cmd = "Sync", .coll = M.colls[inbox].id, .status = 16, .times = 2});
	add_item(inbox, "After 16");
	ping_check();
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK_INT(STAT(&f, backoffs), 2);
	CHECK(cache_matches(&f, inbox));

	/* Ping 8: server error, retry later */
	add_override((struct override){.cmd = "Ping", .status = 8, .times = 1});
	ping_end(1);
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK_INT(STAT(&f, backoffs), 3);
	fixture_close(&f);
}

/* Servers that announce what they never deliver are not chased at full
 * speed: Ping "changes" that Sync does not find, Sync "more" with nothing
 * in it. The session backs off and goes on. */
static void test_no_progress_guards(void)
{
	standard_model(5);
	struct fixture f;
	fixture_open(&f, &store_driver_sqlite);
	REQUIRE(fixture_start(&f));
	REQUIRE(run_until(pinging, &f, 20000));
	add_override((struct override){.cmd = "Ping", .status = 2, .times = 10});
	ping_end(1);
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK(STAT(&f, backoffs) >= 1);
	unsigned backoffs = STAT(&f, backoffs);

	add_override((struct override){
	    .cmd = "Sync", .coll = M.colls[inbox].id, .more_nothing = true, .times = 10});
	add_item(inbox, "Behind the empty windows");
	ping_check();
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK(STAT(&f, backoffs) > backoffs);
	CHECK(cache_matches(&f, inbox));
	fixture_close(&f);
}

/* FolderSync Status 9: the whole cache starts over from "0". */
static void test_foldersync_invalid_key(void)
{
	standard_model(15);
	struct fixture f;
	fixture_open(&f, &store_driver_sqlite);
	REQUIRE(fixture_start(&f));
	REQUIRE(run_until(pinging, &f, 20000));
	unsigned zero = M.sync_zero;
	int64_t c0 = counter(&f);
	add_override((struct override){.cmd = "Ping", .status = 7, .times = 1});
	add_override((struct override){.cmd = "FolderSync", .status = 9, .times = 1});
	ping_end(1);
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK_INT(M.sync_zero, zero + 4);
	CHECK(counter(&f) > c0);
	CHECK(cache_matches(&f, inbox));
	CHECK(cache_matches(&f, contacts));
	fixture_close(&f);
}

/* Ping Status 5 (heartbeat), 6 (too many folders: Inbox kept, the others
 * polled at each expiry), 3 (resend it whole). */
static void test_ping_statuses(void)
{
	standard_model(5);
	struct fixture f;
	fixture_open(&f, &store_driver_sqlite);
	f.cfg.heartbeat_s = 30; /* clamped to 60 */
	REQUIRE(fixture_start(&f));
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK_STR(eas_node_child_text(M.last_req, PG, "HeartbeatInterval"), "60");

	add_override((struct override){.cmd = "Ping", .status = 5, .times = 1});
	ping_end(1);
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK_STR(eas_node_child_text(M.last_req, PG, "HeartbeatInterval"), "120");

	add_override((struct override){.cmd = "Ping", .status = 6, .times = 1});
	ping_end(1);
	REQUIRE(run_until(pinging, &f, 20000));
	const struct eas_node *folders = eas_node_child(M.last_req, PG, "Folders");
	CHECK_INT(eas_node_count(folders, PG, "Folder"), 1);
	CHECK_STR(eas_node_child_text(eas_node_child(folders, PG, "Folder"), PG, "Id"),
	          "mail%2FINBOX");
	/* a change in a folder left out shows at the next expiry */
	add_item(calendar, "Polled event");
	unsigned syncs = M.count[C_SYNC];
	ping_check(); /* nothing: the calendar is not pinged */
	CHECK_INT(M.count[C_SYNC], syncs);
	ping_end(1);
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK(M.count[C_SYNC] > syncs);
	CHECK(cache_matches(&f, calendar));

	unsigned pings = M.count[C_PING];
	add_override((struct override){.cmd = "Ping", .status = 3, .times = 1});
	ping_end(1);
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK_INT(M.count[C_PING], pings + 2);
	CHECK(eas_node_child(M.last_req, PG, "Folders") != NULL);

	/* a server that says 3 for ever is not chased at full speed */
	add_override((struct override){.cmd = "Ping", .status = 3, .times = 10});
	ping_end(1);
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK(STAT(&f, backoffs) >= 1);
	fixture_close(&f);
}

/* 449 on a command: the Provision dance, then the command again with the
 * final PolicyKey; a wrong acknowledgement restarts it. */
static void test_provision(void)
{
	standard_model(3);
	M.need_provision = true;
	snprintf(M.provision_key, sizeof(M.provision_key), "4242");
	struct fixture f;
	fixture_open(&f, &store_driver_sqlite);
	REQUIRE(fixture_start(&f));
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK_INT(M.count[C_PROVISION], 2);
	CHECK_STR(M.last_policy_key, "4242");
	CHECK(cache_matches(&f, inbox));
	CHECK_INT(STAT(&f, provisions), 2);

	/* a server that never stops asking: an error, not a loop */
	M.need_provision = M.provision_forever = true;
	ping_end(1);
	REQUIRE(run_until(stopped, &f, 20000));
	REQUIRE(f.events.n > 0);
	CHECK_INT(f.events.ev[f.events.n - 1].kind, SYNC_EV_ERROR);
	CHECK_INT(f.events.ev[f.events.n - 1].action, EAS_ACT_PROVISION);
	CHECK_INT(httpc_active(http), 0);
	fixture_close(&f);
}

static const char *kept_policy_key(struct fixture *f, struct store_device *d)
{
	const char *err = NULL;
	if (!CHECK(store_device_get(f->store, "dev-script-0001", d, &err) == 0))
		return "?";
	return d->policy_key;
}

/* The final PolicyKey is kept on the device row: the next session
 * presents it and does not provision; when the server stops accepting it
 * (a new policy), the session provisions again and keeps the new one. */
static void test_policy_key_kept(void)
{
	standard_model(3);
	M.require_key = true;
	snprintf(M.provision_key, sizeof(M.provision_key), "4242");
	struct fixture f;
	struct store_device d;
	fixture_open(&f, &store_driver_sqlite);
	f.cfg.store_device_id = "dev-script-0001";
	REQUIRE(fixture_start(&f));
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK_INT(M.count[C_PROVISION], 2);
	CHECK_STR(kept_policy_key(&f, &d), "4242");

	/* the next session: the kept key, no provisioning */
	sync_session_stop(&f.s);
	ping_end(1);
	f.cfg.policy_key = kept_policy_key(&f, &d);
	unsigned fs = M.count[C_FOLDERSYNC];
	REQUIRE(fixture_start(&f));
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK_INT(M.count[C_PROVISION], 2);
	CHECK_INT(STAT(&f, provisions), 0);
	CHECK_INT(M.count[C_FOLDERSYNC], fs + 1); /* no 449 first */
	CHECK_STR(M.last_policy_key, "4242");

	/* a new policy on the server: the old key gets 449 */
	sync_session_stop(&f.s);
	ping_end(1);
	snprintf(M.provision_key, sizeof(M.provision_key), "5353");
	f.cfg.policy_key = kept_policy_key(&f, &d);
	REQUIRE(fixture_start(&f));
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK_INT(M.count[C_PROVISION], 4);
	CHECK_STR(kept_policy_key(&f, &d), "5353");
	CHECK_STR(M.last_policy_key, "5353");

	/* no store row named: nothing kept, nothing breaks */
	sync_session_stop(&f.s);
	ping_end(1);
	snprintf(M.provision_key, sizeof(M.provision_key), "6464");
	f.cfg.store_device_id = NULL;
	f.cfg.policy_key = NULL;
	REQUIRE(fixture_start(&f));
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK_STR(kept_policy_key(&f, &d), "5353");
	fixture_close(&f);
}

/* 503 with Retry-After, a dropped connection, a garbled body: wait and
 * retry; Retry-After is honoured over the (short) back-off. */
static void test_transient_failures(void)
{
	standard_model(3);
	struct fixture f;
	fixture_open(&f, &store_driver_sqlite);
	add_override((struct override){
	    .cmd = "FolderSync", .http_status = 503, .header = "Retry-After: 1", .times = 1});
	/* twice: curl itself retries a request once on a fresh connection
	 * when a reused one closes without an answer */
	add_override((struct override){.cmd = "Sync", .drop = true, .times = 2});
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	REQUIRE(fixture_start(&f));
	REQUIRE(run_until(pinging, &f, 20000));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	CHECK(ms >= 1000);
	unsigned backoffs = STAT(&f, backoffs);
	CHECK(backoffs >= 2 && backoffs <= 3);
	CHECK_INT(M.count[C_FOLDERSYNC], 2);
	CHECK(cache_matches(&f, inbox));
	/* the back-off deadline is on the session's clock */
	struct sync_stats st;
	sync_session_stats(f.s, &st);
	CHECK_INT(st.wait_until_ms, 0);

	/* HTTP 500: transient; the session keeps going */
	add_override((struct override){.cmd = "Ping", .http_status = 500, .times = 1});
	ping_end(1);
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK_INT(STAT(&f, backoffs), backoffs + 1);

	/* a body that is not WBXML (a proxy's page): retried too */
	add_override((struct override){.cmd = "Ping",
	                               .http_status = 200,
	                               .header = "Content-Type: text/html",
	                               .body = "<html>Gateway says hello</html>",
	                               .times = 1});
	ping_end(1);
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK_INT(STAT(&f, backoffs), backoffs + 2);
	/* ... but not for ever */
	add_override(
	    (struct override){.cmd = "Ping", .http_status = 200, .body = "garbage", .times = 100});
	ping_end(1);
	REQUIRE(run_until(stopped, &f, 20000));
	CHECK_INT(f.events.ev[f.events.n - 1].kind, SYNC_EV_ERROR);
	CHECK_INT(f.events.ev[f.events.n - 1].action, EAS_ACT_BAD_RESPONSE);
	M.ov[0].times = M.ov[1].times = M.ov[2].times = 0;
	fixture_close(&f);
}

static bool has_event(void *ctx)
{
	struct fixture *f = ctx;
	return f->events.n > 0 && f->events.ev[f->events.n - 1].kind != SYNC_EV_CHANGED;
}

/* 401, 403, a wipe: a terminal event, then silence; the callback may stop
 * the session. */
static void test_terminal_events(void)
{
	static const struct {
		struct override o;
		enum sync_event_kind kind;
		enum eas_action action;
	} cases[] = {
	    {{.cmd = "FolderSync", .http_status = 401, .times = 1},
	     SYNC_EV_AUTH_FAILED,
	     EAS_ACT_AUTH},
	    {{.cmd = "FolderSync", .http_status = 403, .times = 1},
	     SYNC_EV_BLOCKED,
	     EAS_ACT_BLOCKED},
	    {{.cmd = "Sync", .status = 140, .times = 1}, SYNC_EV_WIPE_REQUESTED, EAS_ACT_WIPE},
	    {{.cmd = "Sync", .status = 129, .times = 1}, SYNC_EV_BLOCKED, EAS_ACT_BLOCKED},
	    {{.cmd = "Sync", .coll = "mail%2FINBOX", .status = 126, .times = 1},
	     SYNC_EV_BLOCKED,
	     EAS_ACT_BLOCKED},
	    {{.cmd = "Sync", .status = 4, .times = 1}, SYNC_EV_ERROR, EAS_ACT_BAD_REQUEST},
	    {{.cmd = "FolderSync", .http_status = 501, .times = 1},
	     SYNC_EV_ERROR,
	     EAS_ACT_UNSUPPORTED},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		standard_model(3);
		add_override(cases[i].o);
		struct fixture f;
		fixture_open(&f, &store_driver_sqlite);
		f.events.stop_on_terminal = i % 2 == 0;
		REQUIRE(fixture_start(&f));
		if (!CHECK(run_until(has_event, &f, 20000))) {
			fixture_close(&f);
			continue;
		}
		const struct sync_event *ev = &f.events.ev[f.events.n - 1];
		if (!CHECK_INT(ev->kind, cases[i].kind) || !CHECK_INT(ev->action, cases[i].action))
			fprintf(stderr, "  ... case %zu: %s\n", i, ev->error);
		CHECK(ev->error[0] != '\0');
		CHECK_STR(ev->account_id, ACCOUNT);
		CHECK(f.events.stop_on_terminal == (f.s == NULL));
		if (f.s != NULL)
			CHECK_INT(sync_session_state(f.s), SYNC_STATE_DONE);
		/* no traffic afterwards */
		CHECK_INT(httpc_active(http), 0);
		size_t requests = tfx_server_count(srv), events = f.events.n;
		loop_for(100);
		CHECK_INT(tfx_server_count(srv), requests);
		CHECK_INT(f.events.n, events);
		fixture_close(&f);
	}
	/* 449, and the Provision that follows carries RemoteWipe */
	standard_model(1);
	M.need_provision = M.provision_wipe = true;
	struct fixture f;
	fixture_open(&f, &store_driver_sqlite);
	REQUIRE(fixture_start(&f));
	REQUIRE(run_until(has_event, &f, 20000));
	CHECK_INT(f.events.ev[f.events.n - 1].kind, SYNC_EV_WIPE_REQUESTED);
	CHECK_INT(M.count[C_PROVISION], 1);
	CHECK_INT(httpc_active(http), 0);
	fixture_close(&f);
}

/* A collection the server refuses for good is left alone; the rest syncs. */
static void test_collection_refused(void)
{
	standard_model(5);
	add_override(
	    (struct override){.cmd = "Sync", .coll = "vcard/personal", .status = 4, .times = 1});
	struct fixture f;
	fixture_open(&f, &store_driver_sqlite);
	REQUIRE(fixture_start(&f));
	REQUIRE(run_until(pinging, &f, 20000));
	CHECK(cache_matches(&f, inbox));
	CHECK(!M.ping_folder[contacts]);
	CHECK(M.ping_folder[inbox]);
	CHECK_INT(f.events.ev[f.events.n - 1].kind, SYNC_EV_CHANGED);
	fixture_close(&f);
}

/* A store that fails in the middle of applying a response: that response
 * is not committed, the engine backs off and asks again with the old key,
 * and the cache ends up exactly the server's, no item twice or missing. */
static void test_store_failure(void)
{
	for (unsigned at = 3; at < 60; at += 7) {
		standard_model(120);
		struct fixture f;
		fixture_open(&f, &store_driver_fault);
		REQUIRE(fixture_start(&f));
		REQUIRE(store_fault_set(f.store, at) == 0);
		if (!CHECK(run_until(pinging, &f, 20000))) {
			fprintf(stderr, "  ... fault at step %u\n", at);
			fixture_close(&f);
			break;
		}
		CHECK(cache_matches(&f, inbox));
		CHECK(cache_matches(&f, sent));
		CHECK(cache_matches(&f, calendar));
		CHECK(cache_matches(&f, contacts));
		CHECK_INT(STAT(&f, backoffs), 1);
		fixture_close(&f);
	}
}

/* Stop with a request in flight, and from the callback of a change. */
static void test_stop(void)
{
	standard_model(3);
	add_override((struct override){.cmd = "FolderSync", .hang = true, .times = 1});
	struct fixture f;
	fixture_open(&f, &store_driver_sqlite);
	REQUIRE(fixture_start(&f));
	loop_for(30);
	CHECK_INT(sync_session_state(f.s), SYNC_STATE_FOLDERSYNC);
	CHECK_INT(httpc_active(http), 1);
	sync_session_stop(&f.s);
	CHECK_INT(httpc_active(http), 0);
	sync_session_stop(&f.s); /* NULL-safe */
	loop_for(30);
	CHECK_INT(f.events.n, 0);

	/* from the callback, in the middle of a Sync answer */
	f.events.stop_on_changed = true;
	REQUIRE(fixture_start(&f));
	REQUIRE(run_until(stopped, &f, 20000));
	CHECK(f.s == NULL);
	CHECK_INT(f.events.n, 1);
	CHECK_INT(httpc_active(http), 0);

	/* while waiting to retry: the timer goes with it */
	f.events.stop_on_changed = false;
	add_override((struct override){
	    .cmd = "FolderSync", .http_status = 503, .header = "Retry-After: 1", .times = 1});
	REQUIRE(fixture_start(&f));
	REQUIRE(run_until(waiting, &f, 5000));
	struct sync_stats st;
	sync_session_stats(f.s, &st);
	CHECK_INT(st.wait_until_ms, hk_clock_mono(&f.clock) + 1000); /* the test clock stands */
	unsigned requests = (unsigned)tfx_server_count(srv);
	sync_session_stop(&f.s);
	loop_for(1300);
	CHECK_INT(tfx_server_count(srv), requests);
	CHECK_INT(f.events.n, 0);
	fixture_close(&f);
}

/* Frees what the tests share, so that a leak checker sees only ours. */
static void teardown(void)
{
	model_reset();
	tfx_server_free(&srv);
	httpc_free(&http);
	event_base_free(base);
}

void test_setup(void)
{
	if (secmem_init() < 0)
		abort();
	base = event_base_new();
	if (base == NULL || httpc_new(base, &http) < 0)
		abort();
	struct tfx_server_opts o = {.handler = handler};
	if (tfx_server_new(base, &o, &srv) < 0)
		abort();
	atexit(teardown);
}

TESTS(TEST(test_vault_item_id), TEST(test_bad_config), TEST(test_initial_sync),
      TEST(test_ping_changes_and_restart), TEST(test_sync_invalid_key), TEST(test_sync_statuses),
      TEST(test_foldersync_invalid_key), TEST(test_ping_statuses), TEST(test_provision),
      TEST(test_policy_key_kept),
      TEST(test_transient_failures), TEST(test_terminal_events), TEST(test_collection_refused),
      TEST(test_no_progress_guards), TEST(test_store_failure), TEST(test_stop));
