/* halfkeyctl: the administrator's command line for a running halfkeyd, over
 * its control socket (relay/control.h; usage in docs/halfkeyctl.md).
 *
 * Exit status: 0 done; 1 the daemon answered with an error (on stderr);
 * 2 usage error; 3 the daemon could not be reached or did not answer. */
#include "relay/control-client.h"
#include "relay/json-build.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { EXIT_DONE = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

static const char usage_text[] =
	"usage: halfkeyctl [-s SOCKET] [--json] COMMAND [ARGS]\n"
	"\n"
	"Administers a running halfkeyd over its local control socket.\n"
	"\n"
	"Options:\n"
	"  -s, --socket SOCKET  control socket (default: $" CONTROL_SOCKET_ENV ", else\n"
	"                       " CONTROL_SOCKET_DEFAULT ")\n"
	"  --json               print the daemon's JSON answer as is, one line per answer\n"
	"  -h, --help           this text\n"
	"  --version            halfkeyctl's version\n"
	"\n"
	"Commands:\n"
	"  accounts [--after ID] [--limit N]\n"
	"      List accounts: id, user, state (active, flushed, reregister_needed,\n"
	"      wiped), whether unlocked now, last activity, devices, next flush.\n"
	"      Without --after/--limit every page is fetched (1000 accounts each).\n"
	"  account ID\n"
	"      One account with its devices (EAS DeviceId, type, User-Agent, last\n"
	"      seen, whether tombstoned by a wipe).\n"
	"  wipe ID\n"
	"      Remote wipe: delete the account's credentials and cached content now,\n"
	"      tombstone its devices; each device wipes itself on its next contact.\n"
	"  flush ID\n"
	"      Wipe the unlocked account's password and keys from memory now; the\n"
	"      device must unlock again.\n"
	"  purge\n"
	"      Run the purge job now: delete accounts inactive past flush_after.\n"
	"  block-add KIND PATTERN [NOTE]\n"
	"      Refuse registration and unlock matching the rule. KIND is one of\n"
	"      user_glob (shell glob on username or email), domain (of username or\n"
	"      email), device_type, device_id (EAS DeviceId), user_agent (glob).\n"
	"      Put -- before a PATTERN that starts with --.\n"
	"  block-list\n"
	"      List block rules.\n"
	"  block-remove RULE-ID\n"
	"      Delete a block rule.\n"
	"  audit [--since TIME] [--account ID] [--limit N]\n"
	"      Audit entries from TIME on, oldest first (default: from the start,\n"
	"      100 entries; at most 1000). TIME is Unix milliseconds, or UTC as\n"
	"      YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ.\n"
	"  stats\n"
	"      Row counts, unlocked and syncing accounts, uptime.\n"
	"\n"
	"Times are printed in UTC (ISO 8601). Exit status: 0 done, 1 the daemon\n"
	"refused the request (its message on stderr), 2 usage error, 3 the daemon\n"
	"could not be reached.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("halfkeyctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs("\nTry 'halfkeyctl --help'.\n", stderr);
	va_end(ap);
	return EXIT_USAGE;
}

/* ---- JSON helpers ---------------------------------------------------- */

static const char *jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s != NULL ? s : "-";
}

static long long jint(const json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

static const char *jbool(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_true(v) ? "yes" : json_is_false(v) ? "no" : "-";
}

/* A time field (Unix ms or null) as UTC ISO 8601, or "-". */
static const char *jtime(const json_t *o, const char *key, char buf[32])
{
	json_t *v = json_object_get(o, key);
	if (!json_is_integer(v))
		return "-";
	time_t t = (time_t)(json_integer_value(v) / 1000);
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return "?";
	return buf;
}

/* ms as "Nd HH:MM:SS". */
static const char *duration(long long ms, char *buf, size_t len)
{
	long long s = ms / 1000;
	snprintf(buf, len, "%lldd %02lld:%02lld:%02lld", s / 86400, s / 3600 % 24, s / 60 % 60,
		 s % 60);
	return buf;
}

static const char *jnum(const json_t *o, const char *key, char buf[32])
{
	json_t *v = json_object_get(o, key);
	if (!json_is_integer(v))
		return "-";
	snprintf(buf, 32, "%lld", (long long)json_integer_value(v));
	return buf;
}

/* ---- tables ---------------------------------------------------------- */

#define TABLE_COLS_MAX 8

struct table {
	size_t ncols, nrows, cap;
	char **cells; /* nrows * ncols */
	bool header;
};

/* Text from the daemon may hold anything: control characters become '?'. */
static char *cell_dup(const char *s)
{
	size_t n = strlen(s);
	char *d = malloc(n + 1);
	if (d == NULL)
		abort();
	for (size_t i = 0; i <= n; i++)
		d[i] = (i < n && ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)) ? '?' : s[i];
	return d;
}

/* Display width: UTF-8 continuation bytes take no column. */
static size_t cell_width(const char *s)
{
	size_t w = 0;
	for (; *s != '\0'; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

static void table_add(struct table *t, ...)
{
	if (t->nrows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->cells = realloc(t->cells, t->cap * t->ncols * sizeof(*t->cells));
		if (t->cells == NULL)
			abort();
	}
	va_list ap;
	va_start(ap, t);
	for (size_t i = 0; i < t->ncols; i++)
		t->cells[t->nrows * t->ncols + i] = cell_dup(va_arg(ap, const char *));
	va_end(ap);
	t->nrows++;
}

static void table_print(struct table *t)
{
	size_t width[TABLE_COLS_MAX] = {0};
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t i = 0; i < t->ncols; i++) {
			size_t w = cell_width(t->cells[r * t->ncols + i]);
			if (w > width[i])
				width[i] = w;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t i = 0; i < t->ncols; i++) {
			const char *s = t->cells[r * t->ncols + i];
			fputs(s, stdout);
			if (i + 1 < t->ncols)
				printf("%*s", (int)(width[i] - cell_width(s) + 2), "");
		}
		putchar('\n');
	}
}

static void table_free(struct table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = t->cap = 0;
}

/* ---- argument parsing ------------------------------------------------ */

static bool parse_ll(const char *s, long long min, long long max, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* Unix ms, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC). */
static bool parse_time(const char *s, long long *ms_r)
{
	if (parse_ll(s, 0, INT64_MAX, ms_r))
		return true;
	struct tm tm = {0};
	int y, mo, d, h = 0, mi = 0, sec = 0, used = 0;
	size_t n = strlen(s);
	if (n == 10) {
		if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &used) != 3 || used != 10)
			return false;
	} else if (n == 20 && s[10] == 'T' && s[19] == 'Z') {
		if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &y, &mo, &d, &h, &mi, &sec, &used) !=
			    6 ||
		    used != 20)
			return false;
	} else {
		return false;
	}
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return false;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return false;
	*ms_r = (long long)t * 1000;
	return true;
}

/* "--name VALUE" or "--name=VALUE" at argv[*i]; advances *i. */
static bool option_value(int argc, char **argv, int *i, const char *name, const char **value)
{
	size_t n = strlen(name);
	const char *a = argv[*i];
	if (strncmp(a, name, n) != 0)
		return false;
	if (a[n] == '=') {
		*value = a + n + 1;
		return true;
	}
	if (a[n] != '\0')
		return false;
	if (*i + 1 >= argc) {
		*value = NULL;
		return true;
	}
	*value = argv[++*i];
	return true;
}

/* ---- commands ---------------------------------------------------------- */

struct command {
	const char *name;
	int min_args, max_args; /* positional */
	const char *const *positional; /* field names of the positional arguments */
	const char *const *options;    /* "--x" options taking a value */
	void (*print)(const json_t *ans);
};

static void print_account_rows(struct table *t, const json_t *ans)
{
	json_t *list = json_object_get(ans, "accounts");
	size_t i;
	json_t *a;
	json_array_foreach(list, i, a)
	{
		char t1[32], t2[32], n[32];
		table_add(t, jstr(a, "id"), jstr(a, "username"), jstr(a, "state"),
			  jbool(a, "unlocked"), jtime(a, "last_activity_ms", t1),
			  jnum(a, "devices", n), jtime(a, "next_flush_ms", t2));
	}
}

static void print_account(const json_t *ans)
{
	const json_t *a = json_object_get(ans, "account");
	char b[32];
	struct table kv = {.ncols = 2};
	table_add(&kv, "account", jstr(a, "id"));
	table_add(&kv, "user", jstr(a, "username"));
	table_add(&kv, "email", jstr(a, "email"));
	table_add(&kv, "server", jstr(a, "server"));
	table_add(&kv, "state", jstr(a, "state"));
	table_add(&kv, "unlocked", jbool(a, "unlocked"));
	table_add(&kv, "created", jtime(a, "created_ms", b));
	table_add(&kv, "last activity", jtime(a, "last_activity_ms", b));
	table_add(&kv, "flushed", jtime(a, "flushed_ms", b));
	table_add(&kv, "next flush", jtime(a, "next_flush_ms", b));
	table_add(&kv, "devices", jnum(a, "devices", b));
	table_print(&kv);
	table_free(&kv);

	json_t *devs = json_object_get(ans, "devices");
	if (json_array_size(devs) == 0)
		return;
	putchar('\n');
	struct table t = {.ncols = 7};
	table_add(&t, "DEVICE", "EAS DEVICE ID", "TYPE", "USER AGENT", "CREATED", "LAST SEEN",
		  "TOMBSTONED");
	size_t i;
	json_t *d;
	json_array_foreach(devs, i, d)
	{
		char t1[32], t2[32], t3[32];
		table_add(&t, jstr(d, "id"), jstr(d, "eas_device_id"), jstr(d, "device_type"),
			  jstr(d, "user_agent"), jtime(d, "created_ms", t1),
			  jtime(d, "last_seen_ms", t2), jtime(d, "tombstoned_ms", t3));
	}
	table_print(&t);
	table_free(&t);
}

static void print_detail(const json_t *ans)
{
	const char *account = json_string_value(json_object_get(ans, "account"));
	if (account != NULL)
		printf("%s: ", account);
	printf("%s\n", jstr(ans, "detail"));
}

static void print_rule_added(const json_t *ans)
{
	const json_t *r = json_object_get(ans, "rule");
	char *pattern = cell_dup(jstr(r, "pattern"));
	printf("block rule %lld added: %s %s\n", jint(r, "id"), jstr(r, "kind"), pattern);
	free(pattern);
}

static void print_rules(const json_t *ans)
{
	json_t *list = json_object_get(ans, "rules");
	if (json_array_size(list) == 0) {
		puts("no block rules");
		return;
	}
	struct table t = {.ncols = 5};
	table_add(&t, "ID", "KIND", "PATTERN", "CREATED", "NOTE");
	size_t i;
	json_t *r;
	json_array_foreach(list, i, r)
	{
		char id[32], c[32];
		table_add(&t, jnum(r, "id", id), jstr(r, "kind"), jstr(r, "pattern"),
			  jtime(r, "created_ms", c), jstr(r, "note"));
	}
	table_print(&t);
	table_free(&t);
}

static void print_rule_removed(const json_t *ans)
{
	printf("block rule %lld removed\n", jint(ans, "id"));
}

static void print_audit(const json_t *ans)
{
	json_t *list = json_object_get(ans, "entries");
	if (json_array_size(list) == 0) {
		puts("no audit entries");
		return;
	}
	struct table t = {.ncols = 6};
	table_add(&t, "ID", "TIME", "EVENT", "ACCOUNT", "DEVICE", "DETAIL");
	size_t i;
	json_t *e;
	json_array_foreach(list, i, e)
	{
		char id[32], tm[32];
		table_add(&t, jnum(e, "id", id), jtime(e, "time_ms", tm), jstr(e, "event"),
			  jstr(e, "account"), jstr(e, "device"), jstr(e, "detail"));
	}
	table_print(&t);
	table_free(&t);
}

static void print_stats(const json_t *ans)
{
	const json_t *s = json_object_get(ans, "stats");
	static const char *const counts[] = {
	    "accounts",	    "unlocked", "syncing",    "sync_waiting", "devices", "envelopes",
	    "collections", "items",    "push_subs", "block_rules",  "leases",  "audit",
	    NULL};
	struct table t = {.ncols = 2};
	char b[32];
	for (size_t i = 0; counts[i] != NULL; i++)
		table_add(&t, counts[i], jnum(s, counts[i], b));
	char d[48];
	table_add(&t, "started", jtime(s, "started_ms", b));
	table_add(&t, "uptime", duration(jint(s, "uptime_ms"), d, sizeof(d)));
	table_add(&t, "flush_after", duration(jint(s, "flush_after_ms"), d, sizeof(d)));
	table_add(&t, "version", jstr(s, "version"));
	table_print(&t);
	table_free(&t);
}

static const char *const id_arg[] = {"id", NULL};
static const char *const block_add_args[] = {"kind", "pattern", "note", NULL};
static const char *const accounts_opts[] = {"--after", "--limit", NULL};
static const char *const audit_opts[] = {"--since", "--account", "--limit", NULL};
static const char *const no_names[] = {NULL};

static const struct command commands[] = {
	{"accounts", 0, 0, no_names, accounts_opts, NULL}, /* printed by run_accounts */
	{"account", 1, 1, id_arg, no_names, print_account},
	{"wipe", 1, 1, id_arg, no_names, print_detail},
	{"flush", 1, 1, id_arg, no_names, print_detail},
	{"purge", 0, 0, no_names, no_names, print_detail},
	{"block-add", 2, 3, block_add_args, no_names, print_rule_added},
	{"block-list", 0, 0, no_names, no_names, print_rules},
	{"block-remove", 1, 1, id_arg, no_names, print_rule_removed},
	{"audit", 0, 0, no_names, audit_opts, print_audit},
	{"stats", 0, 0, no_names, no_names, print_stats},
};

/* Builds the request from the command's arguments; EXIT_USAGE on error. */
static int build_request(const struct command *k, int argc, char **argv, json_t *req)
{
	int npos = 0;
	bool options_done = false;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *v = NULL;
		if (!options_done && strcmp(a, "--") == 0) {
			options_done = true; /* what follows is positional, even "--x" */
			continue;
		}
		if (!options_done && a[0] == '-' && a[1] == '-' && a[2] != '\0') {
			const char *opt = NULL;
			for (size_t o = 0; k->options[o] != NULL && opt == NULL; o++)
				if (option_value(argc, argv, &i, k->options[o], &v))
					opt = k->options[o];
			if (opt == NULL)
				return usage_error("%s: unknown option %s", k->name, a);
			if (v == NULL)
				return usage_error("%s: %s needs a value", k->name, opt);
			long long n;
			if (strcmp(opt, "--limit") == 0) {
				if (!parse_ll(v, 1, CONTROL_PAGE_MAX, &n))
					return usage_error("%s: --limit must be 1 to %d", k->name,
							   CONTROL_PAGE_MAX);
				jset(req, "limit", json_integer(n));
			} else if (strcmp(opt, "--since") == 0) {
				if (!parse_time(v, &n))
					return usage_error("%s: --since takes Unix milliseconds or "
							   "YYYY-MM-DD[THH:MM:SSZ]",
							   k->name);
				jset(req, "since", json_integer(n));
			} else { /* --after, --account */
				json_t *s = json_string(v);
				if (s == NULL)
					return usage_error("%s: %s is not valid UTF-8", k->name,
							   opt);
				jset(req, opt + 2, s);
			}
			continue;
		}
		if (npos >= k->max_args)
			return usage_error("%s: unexpected argument %s", k->name, a);
		const char *field = k->positional[npos++];
		if (strcmp(k->name, "block-remove") == 0) {
			long long n;
			if (!parse_ll(a, 1, INT64_MAX, &n))
				return usage_error("block-remove: the rule id must be a positive "
						   "integer");
			jset(req, field, json_integer(n));
		} else {
			json_t *s = json_string(a);
			if (s == NULL)
				return usage_error("%s: %s is not valid UTF-8", k->name, field);
			jset(req, field, s);
		}
	}
	if (npos < k->min_args)
		return usage_error("%s: missing %s", k->name, k->positional[npos]);
	return EXIT_DONE;
}

/* Prints an answer; the exit status it means. */
static int finish(const json_t *ans, const char *line, bool json,
		  void (*print)(const json_t *ans))
{
	bool ok = json_is_true(json_object_get(ans, "ok"));
	if (json)
		printf("%s\n", line);
	if (!ok) {
		char *msg = cell_dup(jstr(ans, "error"));
		fprintf(stderr, "halfkeyctl: %s\n", msg);
		free(msg);
		return EXIT_REFUSED;
	}
	if (!json && print != NULL)
		print(ans);
	return EXIT_DONE;
}

static int call(struct control_client *c, const json_t *req, json_t **ans_r, char **line_r)
{
	const char *err;
	if (control_client_call(c, req, ans_r, line_r, &err) < 0) {
		fprintf(stderr, "halfkeyctl: %s\n", err);
		return EXIT_UNREACHABLE;
	}
	return EXIT_DONE;
}

/* accounts: all pages unless the caller asked for one. */
static int run_accounts(struct control_client *c, json_t *req, bool json)
{
	bool all = json_object_get(req, "after") == NULL && json_object_get(req, "limit") == NULL;
	struct table t = {.ncols = 7};
	table_add(&t, "ACCOUNT", "USER", "STATE", "UNLOCKED", "LAST ACTIVITY", "DEVICES",
		  "NEXT FLUSH");
	int status;
	for (;;) {
		json_t *ans = NULL;
		char *line = NULL;
		if ((status = call(c, req, &ans, &line)) != EXIT_DONE)
			break;
		status = finish(ans, line, json, NULL);
		const char *next = json_string_value(json_object_get(ans, "next"));
		if (status == EXIT_DONE && !json)
			print_account_rows(&t, ans);
		bool more = status == EXIT_DONE && all && next != NULL;
		if (more)
			jset(req, "after", json_string(next));
		else if (status == EXIT_DONE && !json && next != NULL)
			fprintf(stderr, "halfkeyctl: more accounts follow: --after %s\n", next);
		json_decref(ans);
		free(line);
		if (!more)
			break;
	}
	if (status == EXIT_DONE && !json) {
		if (t.nrows > 1)
			table_print(&t);
		else
			puts("no accounts");
	}
	table_free(&t);
	return status;
}

int main(int argc, char **argv)
{
	const char *socket_path = getenv(CONTROL_SOCKET_ENV);
	bool json = false;
	int i = 1;
	if (socket_path == NULL || *socket_path == '\0')
		socket_path = CONTROL_SOCKET_DEFAULT;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i], *v = NULL;
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(usage_text, stdout);
			return EXIT_DONE;
		}
		if (strcmp(a, "--version") == 0) {
#ifdef HK_VERSION
			puts("halfkeyctl " HK_VERSION);
#else
			puts("halfkeyctl");
#endif
			return EXIT_DONE;
		}
		if (strcmp(a, "--json") == 0) {
			json = true;
		} else if (strcmp(a, "-s") == 0 || option_value(argc, argv, &i, "--socket", &v) ||
			   strncmp(a, "-s", 2) == 0) {
			if (strcmp(a, "-s") == 0)
				v = i + 1 < argc ? argv[++i] : NULL;
			else if (a[1] == 's')
				v = a + 2; /* -sPATH */
			if (v == NULL || *v == '\0')
				return usage_error("%s needs a socket path", a);
			socket_path = v;
		} else {
			return usage_error("unknown option %s", a);
		}
	}
	if (i >= argc)
		return usage_error("no command given");
	const char *name = argv[i++];
	if (strcmp(name, "help") == 0) {
		fputs(usage_text, stdout);
		return EXIT_DONE;
	}
	const struct command *k = NULL;
	for (size_t n = 0; n < sizeof(commands) / sizeof(commands[0]) && k == NULL; n++)
		if (strcmp(commands[n].name, name) == 0)
			k = &commands[n];
	if (k == NULL)
		return usage_error("unknown command %s", name);

	json_t *req = jobj();
	jset(req, "cmd", json_string(k->name));
	int status = build_request(k, argc - i, argv + i, req);
	if (status != EXIT_DONE) {
		json_decref(req);
		return status;
	}
	struct control_client *c = NULL;
	const char *err;
	if (control_client_connect(socket_path, &c, &err) < 0) {
		fprintf(stderr, "halfkeyctl: %s\n", err);
		json_decref(req);
		return EXIT_UNREACHABLE;
	}
	if (strcmp(k->name, "accounts") == 0) {
		status = run_accounts(c, req, json);
	} else {
		json_t *ans = NULL;
		char *line = NULL;
		status = call(c, req, &ans, &line);
		if (status == EXIT_DONE)
			status = finish(ans, line, json, k->print);
		json_decref(ans);
		free(line);
	}
	control_client_close(&c);
	json_decref(req);
	if (fflush(stdout) != 0 && status == EXIT_DONE) {
		fprintf(stderr, "halfkeyctl: writing the output: %s\n", strerror(errno));
		status = EXIT_REFUSED;
	}
	return status;
}
