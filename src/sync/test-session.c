/* The sync engine against the project's real ActiveSync server
 * (scripts/eas-peer), from the environment: HALFKEY_TEST_EAS_URL,
 * HALFKEY_TEST_EAS_CA, HALFKEY_TEST_USER_A/PASS_A and HALFKEY_TEST_DELIVER.
 * Exits 77 (skipped) without HALFKEY_TEST_EAS_URL.
 *
 * The mailboxes are shared and keep the mail of every test that ever ran:
 * each test uses a fresh random DeviceId (a fresh sync partnership), puts a
 * random token in the subjects it delivers, and never assumes a count. Only
 * the protocol is assumed, never this server's ids, ordering or timing.
 *
 * Also here: the back-off arithmetic on the test clock (a unit test). */
#include "crypto/vault.h"
#include "sync/session.h"
#include "test.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct event_base *base;
static struct httpc *http;
static const char *url, *ca, *user, *pass, *deliver;

/* ---- helpers ---- */

static void random_alnum(char *out, size_t n)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	uint8_t r[64];
	secmem_random(r, n);
	for (size_t i = 0; i < n; i++)
		out[i] = a[r[i] % 36];
	out[n] = '\0';
}

static long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Runs the loop until done(ctx) or timeout_ms. */
static bool run_until(bool (*done)(void *), void *ctx, long timeout_ms)
{
	struct event *t = event_new(base, -1, EV_PERSIST, tick, NULL);
	struct timeval tv = {0, 20000};
	event_add(t, &tv);
	long start = now_ms();
	bool ok;
	while (!(ok = done(ctx)) && now_ms() - start <= timeout_ms)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
	return ok;
}

static bool never(void *ctx)
{
	(void)ctx;
	return false;
}

/* $HALFKEY_TEST_DELIVER USER SUBJECT: a new message in USER's INBOX. */
static bool deliver_mail(const char *to, const char *subject)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		/* its "subject=..." lines would only clutter the log */
		if (freopen("/dev/null", "w", stdout) == NULL)
			_exit(126);
		execlp(deliver, deliver, to, subject, (char *)NULL);
		_exit(127);
	}
	int status = 0;
	return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	       WEXITSTATUS(status) == 0;
}

struct events {
	struct sync_event ev[256];
	size_t n;
	bool stop_on_terminal;
	struct sync_session **session;
	/* CHANGED: a check run at each, and whether it passed */
	bool (*on_change)(void *ctx);
	void *change_ctx;
	bool change_seen;
};

static void on_event(const struct sync_event *ev, void *ctx)
{
	struct events *e = ctx;
	if (e->n < sizeof(e->ev) / sizeof(e->ev[0]))
		e->ev[e->n++] = *ev;
	if (ev->kind == SYNC_EV_CHANGED && e->on_change != NULL && !e->change_seen)
		e->change_seen = e->on_change(e->change_ctx);
	if (e->stop_on_terminal && ev->kind != SYNC_EV_CHANGED)
		sync_session_stop(e->session);
}

struct fixture {
	char path[512];
	char account_id[40];
	char device_id[EAS_DEVICE_ID_MAX + 1];
	struct store *store;
	struct secret *dek, *password;
	struct hk_clock clock;
	struct sync_env env;
	struct sync_config cfg;
	struct events events;
	struct sync_session *s;
};

static bool fixture_open(struct fixture *f, const char *password)
{
	memset(f, 0, sizeof(*f));
	char rnd[21];
	random_alnum(rnd, 20);
	snprintf(f->account_id, sizeof(f->account_id), "acct-%s", rnd);
	random_alnum(rnd, 20);
	snprintf(f->device_id, sizeof(f->device_id), "HKSYNC%s", rnd);
	snprintf(f->path, sizeof(f->path), "%s", test_path(f->account_id));
	const char *err = NULL;
	if (!CHECK_INT(store_open(&store_driver_sqlite, f->path, &f->store, &err), 0))
		return false;
	struct store_account a = {
	    .state = STORE_ACCOUNT_ACTIVE, .created_ms = 1, .last_activity_ms = 1};
	snprintf(a.id, sizeof(a.id), "%s", f->account_id);
	snprintf(a.server_url, sizeof(a.server_url), "%s", url);
	snprintf(a.username, sizeof(a.username), "%s", user);
	secmem_random(a.salt, sizeof(a.salt));
	struct store_device d = {.created_ms = 1, .last_seen_ms = 1};
	snprintf(d.id, sizeof(d.id), "dev-%s", f->device_id);
	snprintf(d.account_id, sizeof(d.account_id), "%s", f->account_id);
	snprintf(d.eas_device_id, sizeof(d.eas_device_id), "%s", f->device_id);
	snprintf(d.device_type, sizeof(d.device_type), EAS_DEVICE_TYPE);
	secmem_random(d.token_hash, sizeof(d.token_hash));
	/* the envelopes are not what this test is about: random stand-ins */
	uint8_t blob[64];
	secmem_random(blob, sizeof(blob));
	struct store_envelope e = {.key_id = 1,
	                           .credential = blob,
	                           .credential_len = sizeof(blob),
	                           .wrapped_dek = blob,
	                           .wrapped_dek_len = sizeof(blob)};
	if (!CHECK_INT(store_account_create(f->store, &a, &d, &e, NULL, &err), 0))
		return false;
	f->dek = secret_random(HK_KEY_LEN);
	f->password = secret_dup(password, strlen(password));
	hk_clock_test_init(&f->clock, INT64_C(1800000000000));
	f->env = (struct sync_env){base, http, f->store, &f->clock};
	f->cfg = (struct sync_config){
	    .account_id = f->account_id,
	    .url = url,
	    .username = user,
	    .device_id = f->device_id,
	    .ca_file = ca,
	    .timeout_ms = 120000,
	    .heartbeat_s = 120,
	    .backoff_min_ms = 500,
	    .backoff_max_ms = 5000,
	};
	f->events.session = &f->s;
	return true;
}

static bool fixture_start(struct fixture *f)
{
	f->events.n = 0;
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
}

static bool pinging(void *ctx)
{
	struct fixture *f = ctx;
	return f->s == NULL || sync_session_state(f->s) == SYNC_STATE_PING ||
	       sync_session_state(f->s) == SYNC_STATE_DONE;
}

static bool terminal(void *ctx)
{
	struct fixture *f = ctx;
	for (size_t i = 0; i < f->events.n; i++)
		if (f->events.ev[i].kind != SYNC_EV_CHANGED)
			return true;
	return false;
}

/* Runs until the session waits on its Ping, reporting how it went. */
static bool until_pinging(struct fixture *f, long timeout_ms, const char *what)
{
	long t0 = now_ms();
	bool ok = run_until(pinging, f, timeout_ms);
	if (!CHECK(ok && f->s != NULL && sync_session_state(f->s) == SYNC_STATE_PING)) {
		for (size_t i = 0; i < f->events.n; i++)
			if (f->events.ev[i].kind != SYNC_EV_CHANGED)
				fprintf(stderr, "  event %d: %s\n", f->events.ev[i].kind,
				        f->events.ev[i].error);
		return false;
	}
	struct sync_stats st;
	sync_session_stats(f->s, &st);
	fprintf(stderr,
	        "  %s: pinging after %ld ms: %llu requests (%llu Sync), %llu items put, "
	        "%llu deleted, %u folders pinged\n",
	        what, now_ms() - t0, (unsigned long long)st.requests, (unsigned long long)st.syncs,
	        (unsigned long long)st.items_put, (unsigned long long)st.items_deleted,
	        st.ping_folders);
	return true;
}

/* ---- walking the cache ---- */

/* "collection id" US "item id", sorted, for bsearch */
struct id_set {
	char **keys;
	size_t n, cap;
};

static int key_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *item_key(const char *coll, const char *id)
{
	size_t n = strlen(coll) + strlen(id) + 2;
	char *k = malloc(n);
	if (k == NULL)
		abort();
	snprintf(k, n, "%s\x1f%s", coll, id);
	return k;
}

static bool id_set_has(const struct id_set *set, const char *coll, const char *id)
{
	char *k = item_key(coll, id);
	bool has = set->n > 0 && bsearch(&k, set->keys, set->n, sizeof(*set->keys), key_cmp);
	free(k);
	return has;
}

static void id_set_free(struct id_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		free(set->keys[i]);
	free(set->keys);
	memset(set, 0, sizeof(*set));
}

struct walk {
	struct id_set *record; /* collects every item's key */
	const struct id_set *before;
	size_t stamped_before; /* items with stamp that are in before */
	size_t items, opened, wrong_key_opened;
	const char *token; /* count items whose Subject holds it */
	size_t token_hits;
	const struct secret *wrong;
	int64_t stamp; /* count items with this updated_ms */
	size_t stamped;
};

static bool open_one(struct fixture *f, const char *coll, const char *id,
                     const struct store_item *item, const struct secret *dek,
                     struct eas_node **root_r)
{
	char vid[SYNC_VAULT_ID_MAX];
	uint8_t *pt = malloc(item->sealed_len);
	size_t len = 0;
	const char *err = NULL;
	bool ok = pt != NULL && sync_vault_item_id(coll, id, vid, sizeof(vid)) == 0 &&
	          vault_item_open(dek, f->account_id, vid, item->sealed, item->sealed_len, pt,
	                          item->sealed_len, &len) == 0;
	if (ok && root_r != NULL)
		ok = eas_wbxml_decode(pt, len, 0, root_r, &err) == 0;
	free(pt);
	return ok;
}

/* Opens every cached item of the account. */
static void walk_cache(struct fixture *f, struct walk *w)
{
	struct store_collection *colls = NULL;
	size_t n = 0;
	const char *err = NULL;
	if (!CHECK_INT(store_collection_list(f->store, f->account_id, &colls, &n, &err), 0))
		return;
	for (size_t c = 0; c < n; c++) {
		struct store_id_list *ids = NULL;
		if (!CHECK_INT(store_item_list(f->store, f->account_id, colls[c].collection_id,
		                               &ids, &err),
		               0))
			break;
		for (size_t i = 0; i < ids->count; i++) {
			struct store_item *item = NULL;
			if (!CHECK_INT(store_item_get(f->store, f->account_id,
			                              colls[c].collection_id, ids->ids[i], &item,
			                              &err),
			               0))
				continue;
			w->items++;
			if (item->updated_ms == w->stamp) {
				w->stamped++;
				if (w->before != NULL &&
				    id_set_has(w->before, colls[c].collection_id, ids->ids[i]))
					w->stamped_before++;
			}
			if (w->record != NULL) {
				struct id_set *r = w->record;
				if (r->n == r->cap) {
					r->cap = r->cap == 0 ? 256 : r->cap * 2;
					r->keys = realloc(r->keys, r->cap * sizeof(*r->keys));
					if (r->keys == NULL)
						abort();
				}
				r->keys[r->n++] = item_key(colls[c].collection_id, ids->ids[i]);
			}
			struct eas_node *root = NULL;
			if (open_one(f, colls[c].collection_id, ids->ids[i], item, f->dek, &root) &&
			    eas_node_is(root, EAS_PAGE_AIRSYNC, "ApplicationData"))
				w->opened++;
			const char *subject = eas_node_child_text(root, EAS_PAGE_EMAIL, "Subject");
			if (w->token != NULL && subject != NULL &&
			    strstr(subject, w->token) != NULL)
				w->token_hits++;
			eas_node_free(&root);
			if (w->wrong != NULL &&
			    open_one(f, colls[c].collection_id, ids->ids[i], item, w->wrong, NULL))
				w->wrong_key_opened++;
			store_item_free(&item);
		}
		store_id_list_free(&ids);
	}
	store_list_free(&colls);
	if (w->record != NULL && w->record->n > 0)
		qsort(w->record->keys, w->record->n, sizeof(*w->record->keys), key_cmp);
}

/* ---- tests ---- */

/* The first sync fills the sealed cache: every item opens with the data
 * key under its own id, no other key opens any, and nothing of the mail is
 * in the database file in clear. */
static void test_initial_sync_sealed(void)
{
	struct fixture f;
	if (!fixture_open(&f, pass))
		goto out;
	char token[17], subject[96];
	random_alnum(token, 16);
	snprintf(subject, sizeof(subject), "Halfkey sync initial %s", token);
	REQUIRE(deliver_mail(user, subject));
	if (!fixture_start(&f) || !until_pinging(&f, 600000, "initial sync"))
		goto out;

	struct sync_stats st;
	sync_session_stats(f.s, &st);
	CHECK(st.items_put > 0);
	CHECK(st.commits > 0);
	CHECK(st.ping_folders > 0);
	struct secret *wrong = secret_random(HK_KEY_LEN);
	struct walk w = {.token = token, .wrong = wrong};
	walk_cache(&f, &w);
	secret_free(&wrong);
	fprintf(stderr, "  %zu items cached, %zu open, %zu with the token\n", w.items, w.opened,
	        w.token_hits);
	CHECK(w.items > 0);
	CHECK_INT(w.opened, w.items);
	CHECK_INT(w.wrong_key_opened, 0);
	CHECK_INT(w.token_hits, 1);

	/* every collection of a synced class has a key; the hierarchy too */
	struct store_collection *colls = NULL;
	size_t n = 0;
	const char *err = NULL;
	REQUIRE(store_collection_list(f.store, f.account_id, &colls, &n, &err) == 0);
	size_t synced = 0;
	for (size_t i = 0; i < n; i++) {
		const char *cls = eas_folder_class(colls[i].type);
		if (cls != NULL && (strcmp(cls, "Email") == 0 || strcmp(cls, "Calendar") == 0 ||
		                    strcmp(cls, "Contacts") == 0)) {
			synced++;
			CHECK(strcmp(colls[i].sync_key, "0") != 0);
		}
	}
	store_list_free(&colls);
	CHECK(synced > 0);
	struct store_account a;
	REQUIRE(store_account_get(f.store, f.account_id, &a, &err) == 0);
	CHECK(a.folder_sync_key[0] != '\0' && strcmp(a.folder_sync_key, "0") != 0);
	CHECK(a.change_counter > 0);
	REQUIRE(f.events.n > 0);
	CHECK_INT(f.events.ev[f.events.n - 1].change_counter, a.change_counter);

	/* nothing in clear: not the subject, not the sender's address */
	char wal[600];
	snprintf(wal, sizeof(wal), "%s-wal", f.path);
	CHECK_INT(test_file_count(f.path, token, strlen(token)), 0);
	CHECK_INT(test_file_count(wal, token, strlen(token)), 0);
	CHECK_INT(test_file_count(f.path, "Halfkey test message", 20), 0);
	CHECK_INT(test_file_count(wal, "Halfkey test message", 20), 0);
out:
	fixture_close(&f);
}

struct token_check {
	struct fixture *f;
	const char *token;
	int64_t after;
};

static bool token_cached(void *ctx)
{
	struct token_check *t = ctx;
	struct walk w = {.token = t->token};
	walk_cache(t->f, &w);
	return w.token_hits > 0;
}

static bool change_seen(void *ctx)
{
	struct fixture *f = ctx;
	return f->events.change_seen;
}

/* A message delivered on the server reaches the sealed cache through
 * Ping: a SYNC_EV_CHANGED with a higher counter, and the new item opens to
 * a tree whose Subject holds the token. */
static void test_delivery_via_ping(void)
{
	struct fixture f;
	if (!fixture_open(&f, pass))
		goto out;
	if (!fixture_start(&f) || !until_pinging(&f, 600000, "initial sync"))
		goto out;
	/* let the server settle on the Ping it just got */
	run_until(never, NULL, 1000);
	REQUIRE(f.s != NULL && sync_session_state(f.s) == SYNC_STATE_PING);
	struct sync_stats st;
	sync_session_stats(f.s, &st);
	uint64_t pings = st.pings;
	size_t events_before = f.events.n;
	int64_t before = f.events.n > 0 ? f.events.ev[f.events.n - 1].change_counter : 0;

	char token[17], subject[96];
	random_alnum(token, 16);
	snprintf(subject, sizeof(subject), "Halfkey sync push %s", token);
	struct token_check tc = {&f, token, before};
	f.events.on_change = token_cached;
	f.events.change_ctx = &tc;
	long t0 = now_ms();
	REQUIRE(deliver_mail(user, subject));
	bool seen = run_until(change_seen, &f, 180000);
	long took = now_ms() - t0;
	fprintf(stderr, "  delivery -> SYNC_EV_CHANGED with the token: %ld ms\n", took);
	REQUIRE(CHECK(seen));
	/* it came through the Ping that was waiting, without trouble */
	sync_session_stats(f.s, &st);
	CHECK_INT(st.backoffs, 0);
	CHECK(st.pings >= pings);
	bool higher = false;
	for (size_t i = events_before; i < f.events.n; i++)
		higher |= f.events.ev[i].kind == SYNC_EV_CHANGED &&
		          f.events.ev[i].change_counter > before;
	CHECK(higher);
	/* and the session settles on a Ping again */
	CHECK(until_pinging(&f, 120000, "after the delivery"));
	struct walk w = {.token = token};
	walk_cache(&f, &w);
	CHECK_INT(w.token_hits, 1);
out:
	fixture_close(&f);
}

/* A restart with the same store and DeviceId resumes from the stored sync
 * keys: no collection starts from "0", no item already cached is
 * downloaded again. */
static void test_restart_resumes(void)
{
	struct fixture f;
	struct id_set first = {0};
	if (!fixture_open(&f, pass))
		goto out;
	/* at least one item to not download again */
	char token[17], subject[96];
	random_alnum(token, 16);
	snprintf(subject, sizeof(subject), "Halfkey sync restart %s", token);
	REQUIRE(deliver_mail(user, subject));
	if (!fixture_start(&f) || !until_pinging(&f, 600000, "first session"))
		goto out;
	struct sync_stats st1, st2;
	sync_session_stats(f.s, &st1);
	sync_session_stop(&f.s);
	CHECK_INT(httpc_active(http), 0);
	struct walk w1 = {.record = &first, .token = token};
	walk_cache(&f, &w1);
	CHECK_INT(w1.token_hits, 1);

	/* the second session stamps its writes with another time */
	hk_clock_test_advance(&f.clock, HK_MS_PER_DAY);
	int64_t t2 = hk_clock_now(&f.clock);
	if (!fixture_start(&f) || !until_pinging(&f, 600000, "second session"))
		goto out;
	sync_session_stats(f.s, &st2);
	CHECK_INT(st2.syncs_from_zero, 0);
	CHECK(st1.syncs_from_zero > 0);
	/* every item the second session wrote is one the first did not have
	 * (other tests may deliver mail in between: those are fine) */
	struct walk w2 = {.stamp = t2, .before = &first, .token = token};
	walk_cache(&f, &w2);
	fprintf(stderr,
	        "  first session: %llu puts, %zu items; second: %llu puts (%zu items written, "
	        "%zu of them cached before), %zu items\n",
	        (unsigned long long)st1.items_put, w1.items, (unsigned long long)st2.items_put,
	        w2.stamped, w2.stamped_before, w2.items);
	CHECK(w2.stamped <= st2.items_put);
	CHECK_INT(w2.stamped_before, 0);
	CHECK_INT(w2.token_hits, 1);
	CHECK(st1.items_put > 0);
out:
	id_set_free(&first);
	fixture_close(&f);
}

/* A wrong password: SYNC_EV_AUTH_FAILED, then nothing more on the wire. */
static void test_wrong_password(void)
{
	for (int stop_in_callback = 0; stop_in_callback <= 1; stop_in_callback++) {
		struct fixture f;
		if (!fixture_open(&f, "definitely-not-the-password")) {
			fixture_close(&f);
			return;
		}
		f.events.stop_on_terminal = stop_in_callback;
		if (!fixture_start(&f) || !CHECK(run_until(terminal, &f, 60000))) {
			fixture_close(&f);
			return;
		}
		REQUIRE(f.events.n == 1);
		const struct sync_event *ev = &f.events.ev[0];
		CHECK_INT(ev->kind, SYNC_EV_AUTH_FAILED);
		CHECK_INT(ev->action, EAS_ACT_AUTH);
		CHECK_INT(ev->http_status, 401);
		CHECK_STR(ev->command, "FolderSync");
		CHECK_STR(ev->account_id, f.account_id);
		CHECK_INT(httpc_active(http), 0);
		struct sync_stats st = {0};
		if (stop_in_callback) {
			CHECK(f.s == NULL);
		} else {
			CHECK_INT(sync_session_state(f.s), SYNC_STATE_DONE);
			sync_session_stats(f.s, &st);
			CHECK_INT(st.requests, 1);
		}
		run_until(never, NULL, 2000);
		CHECK_INT(httpc_active(http), 0);
		CHECK_INT(f.events.n, 1);
		if (f.s != NULL) {
			struct sync_stats later;
			sync_session_stats(f.s, &later);
			CHECK_INT(later.requests, st.requests);
		}
		fixture_close(&f);
	}
}

/* Stop cancels at once, whatever is in flight, and no callback follows. */
static void test_stop_cancels(void)
{
	struct fixture f;
	if (!fixture_open(&f, pass))
		goto out;
	/* the FolderSync on the wire */
	if (!fixture_start(&f))
		goto out;
	CHECK_INT(sync_session_state(f.s), SYNC_STATE_FOLDERSYNC);
	CHECK_INT(httpc_active(http), 1);
	run_until(never, NULL, 5); /* let it really go out */
	sync_session_stop(&f.s);
	CHECK(f.s == NULL);
	CHECK_INT(httpc_active(http), 0);
	run_until(never, NULL, 1000);
	CHECK_INT(f.events.n, 0);

	/* the Ping the server holds */
	if (!fixture_start(&f) || !until_pinging(&f, 600000, "to the Ping"))
		goto out;
	CHECK_INT(httpc_active(http), 1);
	size_t events = f.events.n;
	sync_session_stop(&f.s);
	CHECK_INT(httpc_active(http), 0);
	run_until(never, NULL, 1000);
	CHECK_INT(f.events.n, events);
out:
	fixture_close(&f);
}

/* The back-off: full jitter under a ceiling that doubles from the minimum
 * to the maximum, Retry-After as a floor, deadlines on the clock given. */
static void test_backoff_arithmetic(void)
{
	struct hk_clock clock;
	hk_clock_test_init(&clock, INT64_C(1700000000000));
	hk_clock_test_advance(&clock, 12345);
	struct sync_backoff b;
	sync_backoff_init(&b, 5000, 900000);
	CHECK_INT(b.failures, 0);
	CHECK_INT(b.until_ms, 0);

	/* rnd = ceiling gives the ceiling, ceiling + 1 gives 0 */
	static const int64_t ceilings[] = {5000,   10000,  20000,  40000,  80000, 160000,
	                                   320000, 640000, 900000, 900000, 900000};
	for (size_t i = 0; i < sizeof(ceilings) / sizeof(ceilings[0]); i++) {
		struct sync_backoff c = b;
		CHECK_INT(sync_backoff_next(&c, &clock, 0, (uint64_t)ceilings[i] + 1), 0);
		CHECK_INT(sync_backoff_next(&b, &clock, 0, (uint64_t)ceilings[i]), ceilings[i]);
		CHECK_INT(b.until_ms, hk_clock_mono(&clock) + ceilings[i]);
		CHECK_INT(b.failures, i + 1);
	}
	/* the deadline follows the clock */
	hk_clock_test_advance(&clock, 60000);
	CHECK_INT(sync_backoff_next(&b, &clock, 0, 7), 7);
	CHECK_INT(b.until_ms, hk_clock_mono(&clock) + 7);
	/* far past the cap: no overflow, still the maximum */
	for (int i = 0; i < 200; i++)
		CHECK(sync_backoff_next(&b, &clock, 0, UINT64_MAX) <= 900000);
	CHECK_INT(sync_backoff_next(&b, &clock, 0, 900000), 900000);

	/* Retry-After is a floor over the jitter, not a ceiling */
	sync_backoff_reset(&b);
	CHECK_INT(b.failures, 0);
	CHECK_INT(b.until_ms, 0);
	CHECK_INT(sync_backoff_next(&b, &clock, 30, 0), 30000);
	CHECK_INT(b.until_ms, hk_clock_mono(&clock) + 30000);
	CHECK_INT(sync_backoff_next(&b, &clock, 3, 10000), 10000);  /* ceiling now 10 s */
	CHECK_INT(sync_backoff_next(&b, &clock, 3600, 1), 3600000); /* above the cap too */

	/* after a success, from the minimum again */
	sync_backoff_reset(&b);
	CHECK_INT(sync_backoff_next(&b, &clock, 0, 5000), 5000);
	CHECK_INT(sync_backoff_next(&b, &clock, 0, 10000), 10000);

	/* full jitter: spread over the whole range */
	int64_t sum = 0, lo = INT64_MAX, hi = 0;
	for (int i = 0; i < 2000; i++) {
		struct sync_backoff c;
		sync_backoff_init(&c, 5000, 900000);
		c.failures = 3; /* ceiling 40 s */
		uint64_t rnd;
		secmem_random(&rnd, sizeof(rnd));
		int64_t d = sync_backoff_next(&c, &clock, 0, rnd);
		CHECK(d >= 0 && d <= 40000);
		sum += d;
		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
	}
	CHECK(sum / 2000 > 17000 && sum / 2000 < 23000);
	CHECK(lo < 2000 && hi > 38000);

	/* nonsense limits are made sane */
	sync_backoff_init(&b, 0, -5);
	CHECK_INT(b.min_ms, 1);
	CHECK_INT(b.max_ms, 1);
	CHECK(sync_backoff_next(&b, &clock, 0, UINT64_MAX) <= 1);
}

/* ---- setup ---- */

static void teardown(void)
{
	httpc_free(&http);
	if (base != NULL)
		event_base_free(base);
}

void test_setup(void)
{
	if (secmem_init() < 0)
		abort();
	url = getenv("HALFKEY_TEST_EAS_URL");
	ca = getenv("HALFKEY_TEST_EAS_CA");
	user = getenv("HALFKEY_TEST_USER_A");
	pass = getenv("HALFKEY_TEST_PASS_A");
	deliver = getenv("HALFKEY_TEST_DELIVER");
	if (url == NULL || *url == '\0' || user == NULL || pass == NULL || deliver == NULL ||
	    *deliver == '\0') {
		printf("test-session: HALFKEY_TEST_EAS_URL/USER_A/PASS_A/DELIVER not set: "
		       "skipped\n");
		exit(77);
	}
	if (ca != NULL && *ca == '\0')
		ca = NULL;
	base = event_base_new();
	if (base == NULL || httpc_new(base, &http) < 0)
		abort();
	atexit(teardown);
}

TESTS(TEST(test_backoff_arithmetic), TEST(test_wrong_password), TEST(test_stop_cancels),
      TEST(test_initial_sync_sealed), TEST(test_delivery_via_ping), TEST(test_restart_resumes));
