/* bench-relay: what registering, unlocking and keeping accounts costs the
 * relay, and how long a change takes from the mail server's Ping answer to
 * the sealed cache.
 *
 *   bench-relay cpu [N]            (default 2000 accounts)
 *   bench-relay memory [N ...]     (default 1000 5000, then 1000 under an
 *                                   8 MiB RLIMIT_MEMLOCK without CAP_IPC_LOCK)
 *   bench-relay ping [D]           (default 10 deliveries; needs peer.env)
 *   bench-relay [all]              cpu 2000, memory, ping 10: each in its own
 *                                  process
 *   bench-relay memory-one N [--memlock KIB] [--trace]   (one memory run)
 *
 * cpu: on a fresh SQLite store in a temporary directory (TMPDIR or /tmp),
 * one thread: N x account_register() (seal + store, no mail server), N x
 * account_unlock() (open into two isolated guarded blocks), N x
 * account_secrets_free() (the flush), then N x engine_unlock() through an
 * engine with no_sync (device token look-up, back-off check, four
 * non-matching block rules, account_unlock, session bookkeeping), first on
 * locked accounts, then again on unlocked ones, then once with a wrong
 * device key (401, audited, back-off counter). Wall time per call
 * (CLOCK_MONOTONIC) and CPU time of the process (CLOCK_PROCESS_CPUTIME_ID,
 * user/sys from getrusage) over each phase.
 *
 * memory: a fresh process per run registers N accounts, unlocks and drops
 * each once (so SQLite's cache and the malloc arenas are warm), reads its
 * memory (/proc/self/smaps_rollup, /proc/self/status, /proc/self/maps,
 * mallinfo2), unlocks the N accounts in an engine with no_sync, reads
 * again, and prints the growth per unlocked account. Then it unlocks them
 * all once more (nothing new is kept) as a control. --memlock KIB drops
 * CAP_IPC_LOCK and sets RLIMIT_MEMLOCK as halfkeyd has it after switching
 * to its user under Debian's default (8192 KiB).
 *
 * ping: the real sync engine (sync/session.h) against the ActiveSync peer
 * of HALFKEY_TEST_EAS_URL (set -a; . /tmp/halfkey-eas-peer/peer.env): an
 * account registered on a fresh store, a fresh DeviceId, the initial sync,
 * then D messages delivered with $HALFKEY_TEST_DELIVER while the session
 * waits in Ping. The moment the Ping answer arrives is the eas client's
 * debug log line for it (written after the WBXML decode, right before the
 * session handles the answer), caught with hk_log_set_sink(); the end is
 * the session's SYNC_EV_CHANGED (items sealed and committed). Without the
 * environment it prints "skipped" and succeeds.
 *
 * A program, not a test: exit 1 only when a run could not be measured. */
#include "crypto/devtoken.h"
#include "crypto/masterkey.h"
#include "crypto/secmem.h"
#include "eas/client.h"
#include "engine/account.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "net/httpc.h"
#include "relay/api.h"
#include "relay/engine.h"
#include "store/store.h"
#include "sync/session.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_CPU_N      2000ul
#define DEFAULT_DELIVERIES 10ul
#define MAX_ACCOUNTS       100000ul
#define MAX_DELIVERIES     1000ul
#define DEBIAN_MEMLOCK_KIB 8192ul
#define PASSWORD_LEN       20
#define SERVER_URL         "https://mail.bench.example/Microsoft-Server-ActiveSync"
#define PING_HEARTBEAT_S   600u

static char **g_argv;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("bench-relay: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static int parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *v_r)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max)
		return -1;
	*v_r = v;
	return 0;
}

/* The 1-minute load average, as /proc/loadavg has it. */
static void loadavg(char *buf, size_t len)
{
	snprintf(buf, len, "?");
	FILE *f = fopen("/proc/loadavg", "r");
	if (f == NULL)
		return;
	char line[128];
	if (fgets(line, sizeof(line), f) != NULL) {
		char *sp = strchr(line, ' ');
		if (sp != NULL)
			*sp = '\0';
		snprintf(buf, len, "%.15s", line);
	}
	fclose(f);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The p-quantile (0..1) of n values, sorted in place: linear between the
 * two nearest ranks (so p = 0.5 is the median for an even n too). */
static double quantile(double *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	double x = p * (double)(n - 1);
	size_t i = (size_t)x;
	if (i + 1 >= n)
		return v[n - 1];
	return v[i] + (x - (double)i) * (v[i + 1] - v[i]);
}

/* ---- a throw-away data directory ---------------------------------------- */

struct datadir {
	char dir[256];
	char db[300];
	char keyring[300];
};

static void datadir_make(struct datadir *d)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(d->dir, sizeof(d->dir), "%s/hk-bench-relay-XXXXXX",
	         tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	if (mkdtemp(d->dir) == NULL)
		die("mkdtemp %s: %s", d->dir, strerror(errno));
	snprintf(d->db, sizeof(d->db), "%s/halfkey.db", d->dir);
	snprintf(d->keyring, sizeof(d->keyring), "%s/master.key", d->dir);
}

static void datadir_remove(struct datadir *d)
{
	DIR *dir = opendir(d->dir);
	if (dir == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char path[600];
		snprintf(path, sizeof(path), "%s/%s", d->dir, de->d_name);
		unlink(path);
	}
	closedir(dir);
	rmdir(d->dir);
}

/* ---- accounts ---------------------------------------------------------- */

/* What the bench keeps of each registered account: what its device keeps. */
struct bench_account {
	uint8_t token[DEVTOKEN_LEN];
	struct secret *device_key;
	char account_id[STORE_ID_MAX];
};

static struct secret *random_password(void)
{
	static const char alphabet[] =
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!";
	uint8_t r[PASSWORD_LEN];
	secmem_random(r, sizeof(r));
	struct secret *pw = secret_new(PASSWORD_LEN);
	for (size_t i = 0; i < PASSWORD_LEN; i++)
		secret_bytes(pw)[i] = (uint8_t)alphabet[r[i] % (sizeof(alphabet) - 1)];
	secmem_wipe(r, sizeof(r));
	return pw;
}

static void account_names(unsigned long i, char *user, size_t ulen, char *email, size_t elen,
                          char *devid, size_t dlen)
{
	snprintf(user, ulen, "user%05lu", i);
	snprintf(email, elen, "user%05lu@bench.example", i);
	snprintf(devid, dlen, "BENCH%05lu", i);
}

/* account_register() for account i; the wall time of the call in *us_r. */
static void register_one(struct store *store, const struct masterkey *mk, unsigned long i,
                         struct bench_account *a, const struct secret *password, double *us_r)
{
	char user[32], email[64], devid[32];
	account_names(i, user, sizeof(user), email, sizeof(email), devid, sizeof(devid));
	struct account_register_req req = {
	    .server_url = SERVER_URL,
	    .username = user,
	    .email = email,
	    .password = password,
	    .device_key = a->device_key,
	    .eas_device_id = devid,
	    .device_type = "iPhone",
	    .user_agent = "Apple-iPhone15C2/2104.100",
	};
	struct account_register_res res;
	const char *err = NULL;
	int64_t t0 = mono_us();
	int ret = account_register(store, mk, hk_clock_real(), &req, &res, NULL, &err);
	int64_t t1 = mono_us();
	if (ret < 0)
		die("account_register %lu: %s", i, err != NULL ? err : hk_strerror(ret));
	memcpy(a->token, res.token, sizeof(a->token));
	secmem_wipe(res.token, sizeof(res.token));
	snprintf(a->account_id, sizeof(a->account_id), "%s", res.account_id);
	if (us_r != NULL)
		*us_r = (double)(t1 - t0);
}

static struct bench_account *accounts_new(unsigned long n)
{
	struct bench_account *a = calloc(n, sizeof(*a));
	if (a == NULL)
		die("out of memory");
	for (unsigned long i = 0; i < n; i++)
		a[i].device_key = secret_random(HK_KEY_LEN);
	return a;
}

static void accounts_free(struct bench_account *a, unsigned long n)
{
	for (unsigned long i = 0; i < n; i++) {
		secret_free(&a[i].device_key);
		secmem_wipe(a[i].token, sizeof(a[i].token));
	}
	free(a);
}

/* Four block rules that match none of the bench's accounts, so that
 * engine_unlock() reads and checks them every time as it would in a relay
 * with a small policy. */
static void add_block_rules(struct store *store)
{
	static const struct {
		enum store_block_kind kind;
		const char *pattern;
	} rules[] = {
	    {STORE_BLOCK_DOMAIN, "blocked.example"},
	    {STORE_BLOCK_USER_GLOB, "spam*@*"},
	    {STORE_BLOCK_DEVICE_TYPE, "BlackBerry"},
	    {STORE_BLOCK_USER_AGENT, "*EvilClient*"},
	};
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		struct store_block_rule r = {.kind = rules[i].kind, .created_ms = 1};
		snprintf(r.pattern, sizeof(r.pattern), "%s", rules[i].pattern);
		snprintf(r.note, sizeof(r.note), "bench-relay");
		const char *err = NULL;
		if (store_block_add(store, &r, NULL, &err) < 0)
			die("block rule: %s", err);
	}
}

/* ---- the common fixture: store, keyring, loop, httpc, engine ------------ */

struct fixture {
	struct datadir dir;
	struct store *store;
	struct masterkey *mk;
	struct event_base *base;
	struct httpc *http;
	struct engine *engine;
};

static void fixture_open(struct fixture *f, bool with_engine)
{
	const char *err = NULL;
	memset(f, 0, sizeof(*f));
	datadir_make(&f->dir);
	if (masterkey_load_or_create(f->dir.keyring, &f->mk, &err) < 0)
		die("master key: %s", err);
	if (store_open(&store_driver_sqlite, f->dir.db, &f->store, &err) < 0)
		die("store: %s", err);
	f->base = event_base_new();
	if (f->base == NULL || httpc_new(f->base, &f->http) < 0)
		die("event base / httpc");
	if (!with_engine)
		return;
	struct engine_config ec = {
	    .base = f->base,
	    .store = f->store,
	    .mk = f->mk,
	    .clock = hk_clock_real(),
	    .http = f->http,
	    .flush_after_ms = 3 * HK_MS_PER_DAY,
	    .purge_every_ms = 7 * HK_MS_PER_DAY,
	    .no_sync = true,
	};
	if (engine_new(&ec, &f->engine) < 0)
		die("engine_new");
}

static void fixture_close(struct fixture *f)
{
	engine_free(&f->engine);
	httpc_free(&f->http);
	if (f->base != NULL)
		event_base_free(f->base);
	f->base = NULL;
	store_close(&f->store);
	masterkey_free(&f->mk);
	datadir_remove(&f->dir);
}

/* ---- part 1: CPU per register and unlock -------------------------------- */

struct phase {
	const char *name;
	unsigned long n;
	double *lat_us; /* per call, wall */
	double wall0, cpu0;
	struct rusage ru0;
	double wall_s, cpu_s, user_s, sys_s;
	long nivcsw;
	char load[16];
};

static void phase_start(struct phase *p, const char *name, unsigned long n)
{
	memset(p, 0, sizeof(*p));
	p->name = name;
	p->n = n;
	p->lat_us = calloc(n, sizeof(*p->lat_us));
	if (p->lat_us == NULL)
		die("out of memory");
	getrusage(RUSAGE_SELF, &p->ru0);
	p->cpu0 = cpu_s();
	p->wall0 = (double)mono_us() / 1e6;
}

static void phase_end(struct phase *p)
{
	double wall1 = (double)mono_us() / 1e6;
	double cpu1 = cpu_s();
	struct rusage ru1;
	getrusage(RUSAGE_SELF, &ru1);
	p->wall_s = wall1 - p->wall0;
	p->cpu_s = cpu1 - p->cpu0;
	p->user_s = tv_s(ru1.ru_utime) - tv_s(p->ru0.ru_utime);
	p->sys_s = tv_s(ru1.ru_stime) - tv_s(p->ru0.ru_stime);
	p->nivcsw = ru1.ru_nivcsw - p->ru0.ru_nivcsw;
	loadavg(p->load, sizeof(p->load));
}

static void phase_print_header(void)
{
	printf("%-46s %5s %9s %9s %7s %7s %9s %9s %8s %8s %8s %5s\n", "case", "N", "wall",
	       "cpu", "user", "sys", "ops/s", "ops/s", "p50", "p99", "max", "load");
	printf("%-46s %5s %9s %9s %7s %7s %9s %9s %8s %8s %8s %5s\n", "", "", "us/op",
	       "us/op", "us/op", "us/op", "wall", "cpu", "us", "us", "us", "1min");
}

static void phase_print(struct phase *p)
{
	double n = (double)p->n;
	double p50 = quantile(p->lat_us, p->n, 0.50);
	double p99 = quantile(p->lat_us, p->n, 0.99);
	double max = quantile(p->lat_us, p->n, 1.0);
	printf("%-46s %5lu %9.1f %9.1f %7.1f %7.1f %9.0f %9.0f %8.1f %8.1f %8.1f %5s\n",
	       p->name, p->n, p->wall_s * 1e6 / n, p->cpu_s * 1e6 / n, p->user_s * 1e6 / n,
	       p->sys_s * 1e6 / n, n / p->wall_s, n / p->cpu_s, p50, p99, max, p->load);
	fflush(stdout);
	free(p->lat_us);
	p->lat_us = NULL;
}

static int cmd_cpu(unsigned long n)
{
	struct fixture f;
	char load[16];
	fixture_open(&f, true);
	add_block_rules(f.store);
	struct bench_account *acc = accounts_new(n);
	struct secret **passwords = calloc(n, sizeof(*passwords));
	struct account_secrets **secrets = calloc(n, sizeof(*secrets));
	struct secret **keys = calloc(n, sizeof(*keys));
	if (passwords == NULL || secrets == NULL || keys == NULL)
		die("out of memory");
	for (unsigned long i = 0; i < n; i++)
		passwords[i] = random_password();
	loadavg(load, sizeof(load));
	printf("cpu: %lu accounts, one thread, SQLite store in %s (WAL; register commits with "
	       "synchronous=FULL), 4 block rules; load %s at start\n",
	       n, f.dir.dir, load);
	phase_print_header();

	struct phase p;
	phase_start(&p, "account_register (seal + store, no network)", n);
	for (unsigned long i = 0; i < n; i++)
		register_one(f.store, f.mk, i, &acc[i], passwords[i], &p.lat_us[i]);
	phase_end(&p);
	phase_print(&p);

	phase_start(&p, "account_unlock (open into 2 isolated blocks)", n);
	for (unsigned long i = 0; i < n; i++) {
		struct account_unlock_res ur;
		const char *err = NULL;
		int64_t t0 = mono_us();
		int ret = account_unlock(f.store, f.mk, hk_clock_real(), acc[i].token,
		                         DEVTOKEN_LEN, acc[i].device_key, &ur, &secrets[i], &err);
		p.lat_us[i] = (double)(mono_us() - t0);
		if (ret < 0)
			die("account_unlock %lu: %s", i, err != NULL ? err : hk_strerror(ret));
	}
	phase_end(&p);
	phase_print(&p);

	phase_start(&p, "account_secrets_free (flush: wipe + unmap)", n);
	for (unsigned long i = 0; i < n; i++) {
		int64_t t0 = mono_us();
		account_secrets_free(&secrets[i]);
		p.lat_us[i] = (double)(mono_us() - t0);
	}
	phase_end(&p);
	phase_print(&p);

	static const char *const engine_names[] = {
	    "engine_unlock, locked -> unlocked (no_sync)",
	    "engine_unlock, already unlocked (no_sync)",
	};
	for (int pass = 0; pass < 2; pass++) {
		/* the device keys the requests carry: engine_unlock takes them */
		for (unsigned long i = 0; i < n; i++)
			keys[i] = secret_dup(secret_cbytes(acc[i].device_key), HK_KEY_LEN);
		phase_start(&p, engine_names[pass], n);
		for (unsigned long i = 0; i < n; i++) {
			struct engine_result res;
			int64_t t0 = mono_us();
			engine_unlock(f.engine, acc[i].token, DEVTOKEN_LEN, keys[i], &res);
			p.lat_us[i] = (double)(mono_us() - t0);
			keys[i] = NULL;
			if (res.status != 200)
				die("engine_unlock %lu: %d %s", i, res.status, res.detail);
		}
		phase_end(&p);
		phase_print(&p);
	}
	if (engine_unlocked_count(f.engine) != n)
		die("%zu accounts unlocked, not %lu", engine_unlocked_count(f.engine), n);

	/* a wrong key, once per device: the open fails on the GCM tag, a
	 * bad_key audit row, the device's back-off counter (no wait yet) */
	for (unsigned long i = 0; i < n; i++)
		keys[i] = secret_random(HK_KEY_LEN);
	phase_start(&p, "engine_unlock, wrong device key (401)", n);
	for (unsigned long i = 0; i < n; i++) {
		struct engine_result res;
		int64_t t0 = mono_us();
		engine_unlock(f.engine, acc[i].token, DEVTOKEN_LEN, keys[i], &res);
		p.lat_us[i] = (double)(mono_us() - t0);
		keys[i] = NULL;
		if (res.status != 401)
			die("engine_unlock with a wrong key %lu: %d %s", i, res.status, res.detail);
	}
	phase_end(&p);
	phase_print(&p);

	for (unsigned long i = 0; i < n; i++)
		secret_free(&passwords[i]);
	free(passwords);
	free(secrets);
	free(keys);
	accounts_free(acc, n);
	fixture_close(&f);
	return 0;
}

/* ---- part 2: idle memory per unlocked account --------------------------- */

struct mem {
	long rss_kib, pd_kib, locked_kib; /* smaps_rollup: Rss, Private_Dirty, Locked */
	long vmlck_kib;                    /* status: VmLck */
	long maps, maps_none;              /* /proc/self/maps lines; of those "---p" */
	size_t heap;                       /* mallinfo2: bytes in use */
};

static long kib_field(const char *line, const char *name)
{
	size_t n = strlen(name);
	if (strncmp(line, name, n) != 0)
		return -1;
	char *end;
	errno = 0;
	long v = strtol(line + n, &end, 10);
	return errno == 0 && end != line + n ? v : -1;
}

static void mem_read(struct mem *m)
{
	memset(m, 0, sizeof(*m));
	char line[512];
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	if (f == NULL)
		die("/proc/self/smaps_rollup: %s", strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL) {
		long v;
		if ((v = kib_field(line, "Rss:")) >= 0)
			m->rss_kib = v;
		else if ((v = kib_field(line, "Private_Dirty:")) >= 0)
			m->pd_kib = v;
		else if ((v = kib_field(line, "Locked:")) >= 0)
			m->locked_kib = v;
	}
	fclose(f);
	if ((f = fopen("/proc/self/status", "r")) == NULL)
		die("/proc/self/status: %s", strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL) {
		long v = kib_field(line, "VmLck:");
		if (v >= 0)
			m->vmlck_kib = v;
	}
	fclose(f);
	if ((f = fopen("/proc/self/maps", "r")) == NULL)
		die("/proc/self/maps: %s", strerror(errno));
	bool line_start = true;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (line_start) {
			m->maps++;
			const char *sp = strchr(line, ' ');
			if (sp != NULL && strncmp(sp + 1, "---p", 4) == 0)
				m->maps_none++;
		}
		line_start = strchr(line, '\n') != NULL;
	}
	fclose(f);
	m->heap = mallinfo2().uordblks;
}

static long max_map_count(void)
{
	long v = -1;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	char line[64];
	if (f != NULL && fgets(line, sizeof(line), f) != NULL)
		v = strtol(line, NULL, 10);
	if (f != NULL)
		fclose(f);
	return v;
}

/* What halfkeyd has after switching from root to its user: no
 * CAP_IPC_LOCK, and the RLIMIT_MEMLOCK of its unit or shell. */
static void drop_ipc_lock(unsigned long memlock_kib)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d) < 0)
		die("capget: %s", strerror(errno));
	uint32_t bit = UINT32_C(1) << (CAP_IPC_LOCK % 32);
	d[CAP_IPC_LOCK / 32].effective &= ~bit;
	d[CAP_IPC_LOCK / 32].permitted &= ~bit;
	d[CAP_IPC_LOCK / 32].inheritable &= ~bit;
	if (syscall(SYS_capset, &h, d) < 0)
		die("capset: %s", strerror(errno));
	struct rlimit rl = {(rlim_t)memlock_kib * 1024, (rlim_t)memlock_kib * 1024};
	if (setrlimit(RLIMIT_MEMLOCK, &rl) < 0)
		die("setrlimit RLIMIT_MEMLOCK: %s", strerror(errno));
}

static void unlock_all(struct fixture *f, struct bench_account *acc, unsigned long n,
                       struct secret **keys, bool trace)
{
	for (unsigned long i = 0; i < n; i++) {
		struct engine_result res;
		engine_unlock(f->engine, acc[i].token, DEVTOKEN_LEN, keys[i], &res);
		keys[i] = NULL;
		if (res.status != 200)
			die("engine_unlock %lu: %d %s", i, res.status, res.detail);
		if (trace && (i + 1) % 500 == 0) {
			struct mem m;
			mem_read(&m);
			printf("  trace: %6lu unlocked: maps %6ld (---p %6ld), VmLck %7ld KiB, "
			       "Rss %7ld KiB\n",
			       i + 1, m.maps, m.maps_none, m.vmlck_kib, m.rss_kib);
			fflush(stdout);
		}
	}
}

static void mem_print(const char *what, unsigned long n, const struct mem *a,
                      const struct mem *b, const char *load)
{
	double d = (double)n;
	printf("%-26s %5lu %8.2f %8.2f %8.2f %8.2f %7.2f %7.2f %7.3f %8ld %5s\n", what, n,
	       (double)(b->rss_kib - a->rss_kib) / d, (double)(b->pd_kib - a->pd_kib) / d,
	       (double)(b->vmlck_kib - a->vmlck_kib) / d,
	       (double)(b->locked_kib - a->locked_kib) / d, (double)(b->maps - a->maps) / d,
	       (double)(b->maps_none - a->maps_none) / d,
	       ((double)b->heap - (double)a->heap) / 1024.0 / d, b->maps, load);
}

static int cmd_memory_one(unsigned long n, unsigned long memlock_kib, bool trace)
{
	char load[16];
	if (memlock_kib > 0)
		drop_ipc_lock(memlock_kib);
	struct rlimit rl;
	getrlimit(RLIMIT_MEMLOCK, &rl);
	struct fixture f;
	fixture_open(&f, true);
	add_block_rules(f.store);
	struct bench_account *acc = accounts_new(n);
	struct secret **keys = calloc(n, sizeof(*keys));
	if (keys == NULL)
		die("out of memory");
	struct secret *pw = random_password();
	for (unsigned long i = 0; i < n; i++)
		register_one(f.store, f.mk, i, &acc[i], pw, NULL);
	secret_free(&pw);
	/* warm SQLite's cache and the heap with the same work, keeping nothing */
	for (unsigned long i = 0; i < n; i++) {
		struct account_unlock_res ur;
		struct account_secrets *s = NULL;
		const char *err = NULL;
		if (account_unlock(f.store, f.mk, hk_clock_real(), acc[i].token, DEVTOKEN_LEN,
		                   acc[i].device_key, &ur, &s, &err) < 0)
			die("account_unlock %lu: %s", i, err);
		account_secrets_free(&s);
	}
	for (unsigned long i = 0; i < n; i++)
		keys[i] = secret_dup(secret_cbytes(acc[i].device_key), HK_KEY_LEN);

	struct mem m0, m1, m2;
	mem_read(&m0);
	int64_t t0 = mono_us();
	unlock_all(&f, acc, n, keys, trace);
	int64_t t1 = mono_us();
	mem_read(&m1);
	loadavg(load, sizeof(load));
	if (engine_unlocked_count(f.engine) != n)
		die("%zu accounts unlocked, not %lu", engine_unlocked_count(f.engine), n);

	char what[64];
	if (memlock_kib > 0)
		snprintf(what, sizeof(what), "unlock, memlock %lu KiB", memlock_kib);
	else if (rl.rlim_cur == RLIM_INFINITY)
		snprintf(what, sizeof(what), "unlock (root, memlock inf)");
	else
		snprintf(what, sizeof(what), "unlock (root, CAP_IPC_LOCK)");
	mem_print(what, n, &m0, &m1, load);

	/* control: every account unlocked again; nothing new is kept */
	for (unsigned long i = 0; i < n; i++)
		keys[i] = secret_dup(secret_cbytes(acc[i].device_key), HK_KEY_LEN);
	mem_read(&m1);
	unlock_all(&f, acc, n, keys, false);
	mem_read(&m2);
	loadavg(load, sizeof(load));
	mem_print("  control: unlock again", n, &m1, &m2, load);
	printf("  (%lu unlocks in %.2f s; baseline Rss %ld KiB, VmLck %ld KiB, %ld maps; "
	       "after: VmLck %ld KiB; RLIMIT_MEMLOCK %s%lu KiB; vm.max_map_count %ld)\n",
	       n, (double)(t1 - t0) / 1e6, m0.rss_kib, m0.vmlck_kib, m0.maps, m1.vmlck_kib,
	       rl.rlim_cur == RLIM_INFINITY ? "inf " : "",
	       rl.rlim_cur == RLIM_INFINITY ? 0ul : (unsigned long)(rl.rlim_cur / 1024),
	       max_map_count());
	fflush(stdout);
	free(keys);
	accounts_free(acc, n);
	fixture_close(&f);
	return 0;
}

/* Runs this program again with args, in a fresh process; its exit status. */
static int run_self(const char *const *args)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		char *argv[16];
		size_t n = 0;
		argv[n++] = g_argv[0];
		for (; args[n - 1] != NULL && n < 15; n++)
			argv[n] = (char *)(uintptr_t)args[n - 1];
		argv[n] = NULL;
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	int st = 0;
	if (waitpid(pid, &st, 0) != pid)
		return 1;
	if (WIFSIGNALED(st)) {
		fprintf(stderr, "bench-relay: %s %s: killed by signal %d\n", args[0],
		        args[1] != NULL ? args[1] : "", WTERMSIG(st));
		return 1;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

static void memory_header(void)
{
	printf("memory: growth per unlocked account, engine with no_sync (KiB per account "
	       "unless named)\n");
	printf("%-26s %5s %8s %8s %8s %8s %7s %7s %7s %8s %5s\n", "case", "N", "Rss",
	       "PrivDirty", "VmLck", "Locked", "maps", "---p", "heap", "maps", "load");
	printf("%-26s %5s %8s %8s %8s %8s %7s %7s %7s %8s %5s\n", "", "", "", "", "", "",
	       "/acct", "/acct", "KiB", "total", "1min");
	fflush(stdout);
}

static int cmd_memory(const unsigned long *ns, size_t count, bool with_memlock)
{
	int status = 0;
	memory_header();
	for (size_t i = 0; i < count; i++) {
		char nbuf[24];
		snprintf(nbuf, sizeof(nbuf), "%lu", ns[i]);
		const char *args[] = {"memory-one", nbuf, NULL};
		status |= run_self(args);
	}
	if (with_memlock && geteuid() == 0) {
		char kib[24];
		snprintf(kib, sizeof(kib), "%lu", DEBIAN_MEMLOCK_KIB);
		const char *args[] = {"memory-one", "1000", "--memlock", kib, NULL};
		status |= run_self(args);
	}
	return status != 0;
}

/* ---- part 3: from the Ping answer to the sealed cache -------------------- */

struct pingbench {
	struct event_base *base;
	struct sync_session *s;
	char devid[EAS_DEVICE_ID_MAX + 1];
	char ping_prefix[64], sync_prefix[64];
	/* the hook: times of the first Ping-with-changes answer, the first
	 * Sync answer after it, and the first CHANGED after that */
	int64_t t_ping, t_sync, t_changed;
	long ping_ms, sync_ms; /* the client's elapsed time of each call */
	unsigned changed;      /* CHANGED events seen */
	bool done;             /* a terminal event */
	char error[256];
	/* the delivery in flight */
	pid_t child;
	int64_t t_d0, t_d1;
};

static struct pingbench *g_pb;

static long elapsed_ms_of(const char *line)
{
	const char *p = strrchr(line, '(');
	return p != NULL ? strtol(p + 1, NULL, 10) : -1;
}

/* Every log line of the process: the eas client's debug line for each
 * answer is the hook; notices and worse are shown. */
static void log_sink(enum hk_log_level level, const char *line, void *ctx)
{
	(void)ctx;
	struct pingbench *pb = g_pb;
	int64_t now = mono_us();
	if (pb != NULL && level == HK_LOG_DEBUG) {
		size_t pl = strlen(pb->ping_prefix), sl = strlen(pb->sync_prefix);
		if (strncmp(line, pb->ping_prefix, pl) == 0) {
			/* "eas DEV Ping: http 200 status 2 -> ok (N ms, B bytes)" */
			const char *st = strstr(line, " status ");
			long status = st != NULL ? strtol(st + 8, NULL, 10) : -1;
			if (status == 2 && pb->t_ping == 0) {
				pb->t_ping = now;
				pb->ping_ms = elapsed_ms_of(line);
			}
		} else if (strncmp(line, pb->sync_prefix, sl) == 0 && pb->t_ping != 0 &&
		           pb->t_sync == 0) {
			pb->t_sync = now;
			pb->sync_ms = elapsed_ms_of(line);
		}
	}
	if (level >= HK_LOG_NOTICE)
		fprintf(stderr, "bench-relay: log: %s\n", line);
}

static void on_sync_event(const struct sync_event *ev, void *ctx)
{
	struct pingbench *pb = ctx;
	if (ev->kind == SYNC_EV_CHANGED) {
		pb->changed++;
		if (pb->t_changed == 0)
			pb->t_changed = mono_us();
		return;
	}
	pb->done = true;
	snprintf(pb->error, sizeof(pb->error), "%.160s (%.15s, http %ld, status %d)", ev->error,
	         ev->command, ev->http_status, ev->status);
	sync_session_stop(&pb->s);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static void on_sigchld(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct pingbench *pb = arg;
	int st;
	if (pb->child > 0 && waitpid(pb->child, &st, WNOHANG) == pb->child) {
		pb->t_d1 = mono_us();
		pb->child = 0;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			snprintf(pb->error, sizeof(pb->error), "the delivery script failed");
	}
}

static bool pinging(const struct pingbench *pb)
{
	return pb->s != NULL && sync_session_state(pb->s) == SYNC_STATE_PING;
}

/* Runs the loop for up to timeout_ms, until done(pb) if done is given. */
static bool run_until(struct pingbench *pb, bool (*done)(const struct pingbench *),
                      int64_t timeout_ms)
{
	int64_t end = mono_us() + timeout_ms * 1000;
	while (!pb->done && (done == NULL || !done(pb)) && mono_us() < end)
		event_base_loop(pb->base, EVLOOP_ONCE);
	return done != NULL && !pb->done && done(pb);
}

static bool changed_and_back(const struct pingbench *pb)
{
	return pb->t_changed != 0 && pb->child == 0 && pinging(pb);
}

static void hook_reset(struct pingbench *pb)
{
	pb->t_ping = pb->t_sync = pb->t_changed = 0;
	pb->ping_ms = pb->sync_ms = -1;
}

static void random_alnum(char *out, size_t n)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	uint8_t r[64];
	if (n > sizeof(r))
		n = sizeof(r);
	secmem_random(r, n);
	for (size_t i = 0; i < n; i++)
		out[i] = a[r[i] % 36];
	out[n] = '\0';
}

static void deliver_start(struct pingbench *pb, const char *deliver, const char *user,
                          const char *subject)
{
	fflush(NULL);
	pb->t_d0 = mono_us();
	pb->t_d1 = 0;
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		if (fd >= 0)
			dup2(fd, STDOUT_FILENO);
		execlp(deliver, deliver, user, subject, (char *)NULL);
		_exit(127);
	}
	pb->child = pid;
}

struct ping_sample {
	double deliver_ms;   /* deliver.sh: start to exit (LMTP done) */
	double d1_changed;   /* deliver.sh exit -> CHANGED */
	double d0_changed;   /* deliver.sh start -> CHANGED */
	double ping_changed; /* Ping answer -> CHANGED */
	double ping_sync;    /* Ping answer -> Sync answer */
	double sync_changed; /* Sync answer -> CHANGED */
	long sync_ms;        /* the Sync call as the client timed it */
	uint64_t items;
};

static int cmd_ping(unsigned long deliveries)
{
	const char *url = getenv("HALFKEY_TEST_EAS_URL");
	const char *ca = getenv("HALFKEY_TEST_EAS_CA");
	const char *deliver = getenv("HALFKEY_TEST_DELIVER");
	const char *user = getenv("HALFKEY_TEST_USER_B"), *pass = getenv("HALFKEY_TEST_PASS_B");
	if (user == NULL || user[0] == '\0' || pass == NULL) {
		user = getenv("HALFKEY_TEST_USER_A");
		pass = getenv("HALFKEY_TEST_PASS_A");
	}
	if (url == NULL || url[0] == '\0' || user == NULL || user[0] == '\0' || pass == NULL ||
	    deliver == NULL || deliver[0] == '\0') {
		printf("ping: skipped (no ActiveSync peer: set -a; . "
		       "/tmp/halfkey-eas-peer/peer.env; set +a)\n");
		return 0;
	}
	hk_log_set_level(HK_LOG_DEBUG);
	hk_log_set_sink(log_sink, NULL);

	struct fixture f;
	fixture_open(&f, false);
	struct pingbench pb = {.base = f.base};
	g_pb = &pb;
	hook_reset(&pb);
	char rnd[21];
	random_alnum(rnd, 20);
	snprintf(pb.devid, sizeof(pb.devid), "HKBENCH%s", rnd);
	snprintf(pb.ping_prefix, sizeof(pb.ping_prefix), "eas %s Ping: ", pb.devid);
	snprintf(pb.sync_prefix, sizeof(pb.sync_prefix), "eas %s Sync: ", pb.devid);

	/* the account as the relay has it: registered, sealed, unlocked */
	struct secret *password = secret_dup(pass, strlen(pass));
	struct secret *dk = secret_random(HK_KEY_LEN);
	struct account_register_req req = {
	    .server_url = url,
	    .username = user,
	    .password = password,
	    .device_key = dk,
	    .eas_device_id = pb.devid,
	    .device_type = "iPhone",
	    .user_agent = "bench-relay",
	};
	struct account_register_res reg;
	struct account_secrets *secrets = NULL;
	const char *err = NULL;
	if (account_register(f.store, f.mk, hk_clock_real(), &req, &reg, &secrets, &err) < 0)
		die("account_register: %s", err);
	secmem_wipe(reg.token, sizeof(reg.token));
	secret_free(&password);
	secret_free(&dk);

	struct event *tick = event_new(f.base, -1, EV_PERSIST, on_tick, NULL);
	struct event *sig = evsignal_new(f.base, SIGCHLD, on_sigchld, &pb);
	struct timeval tv = {0, 50000};
	if (tick == NULL || sig == NULL || event_add(tick, &tv) < 0 || event_add(sig, NULL) < 0)
		die("events");

	struct sync_env env = {f.base, f.http, f.store, hk_clock_real()};
	struct sync_config cfg = {
	    .account_id = reg.account_id,
	    .url = url,
	    .username = user,
	    .device_id = pb.devid,
	    .ca_file = ca,
	    .timeout_ms = 120000,
	    .heartbeat_s = PING_HEARTBEAT_S,
	    .backoff_min_ms = 500,
	    .backoff_max_ms = 5000,
	};
	char load[16];
	loadavg(load, sizeof(load));
	printf("ping: %s as %s, DeviceId %s, heartbeat %u s, %lu deliveries; load %s at start\n",
	       url, user, pb.devid, PING_HEARTBEAT_S, deliveries, load);
	fflush(stdout);
	int64_t t_start = mono_us();
	if (sync_session_start(&env, &cfg, account_secrets_password(secrets),
	                       account_secrets_dek(secrets), on_sync_event, &pb, &pb.s) < 0)
		die("sync_session_start");
	if (!run_until(&pb, pinging, 180000))
		die("no Ping after the initial sync (%s)", pb.done ? pb.error : "timeout");
	struct sync_stats st;
	sync_session_stats(pb.s, &st);
	printf("initial sync: %.2f s to the first Ping, %llu requests, %llu items, %llu "
	       "commits, %u folders pinged\n",
	       (double)(mono_us() - t_start) / 1e6, (unsigned long long)st.requests,
	       (unsigned long long)st.items_put, (unsigned long long)st.commits,
	       st.ping_folders);
	printf("%3s %9s %10s %10s %10s %10s %10s %9s %5s %5s\n", "#", "deliver", "deliv.exit",
	       "deliv.start", "Ping ans.", "Ping ans.", "Sync ans.", "Sync call", "items",
	       "load");
	printf("%3s %9s %10s %10s %10s %10s %10s %9s %5s %5s\n", "", "script ms",
	       "->CHANGED", "->CHANGED", "->CHANGED", "->Sync ans", "->CHANGED", "client ms", "",
	       "1min");
	fflush(stdout);

	struct ping_sample *samples = calloc(deliveries, sizeof(*samples));
	if (samples == NULL)
		die("out of memory");
	unsigned long got = 0, foreign = 0, invalid = 0;
	char token[9];
	random_alnum(token, 8);
	while (got < deliveries && foreign + invalid < 10 && !pb.done) {
		/* wait in Ping for a random 1.5..6.5 s: the delivery then falls
		 * anywhere in the server's 5 s polling cycle */
		uint32_t r;
		secmem_random(&r, sizeof(r));
		hook_reset(&pb);
		unsigned before = pb.changed;
		run_until(&pb, NULL, 1500 + (int64_t)(r % 5000));
		if (pb.done)
			break;
		if (pb.changed != before || pb.t_ping != 0 || !pinging(&pb)) {
			/* someone else's mail woke this Ping: not ours to time */
			foreign++;
			printf("  (a change not delivered by this run: ignored)\n");
			run_until(&pb, pinging, 60000);
			continue;
		}
		sync_session_stats(pb.s, &st);
		uint64_t items0 = st.items_put;
		char subject[96];
		snprintf(subject, sizeof(subject), "bench-relay %s %lu", token, got + 1);
		deliver_start(&pb, deliver, user, subject);
		if (!run_until(&pb, changed_and_back, 60000) || pb.t_ping == 0 || pb.t_sync == 0 ||
		    pb.t_ping > pb.t_changed) {
			invalid++;
			printf("  (delivery %lu: no Ping answer -> CHANGED sequence within 60 s%s%s)\n",
			       got + 1, pb.error[0] ? ": " : "", pb.error);
			pb.error[0] = '\0';
			run_until(&pb, pinging, 60000);
			continue;
		}
		sync_session_stats(pb.s, &st);
		struct ping_sample *s = &samples[got++];
		s->deliver_ms = (double)(pb.t_d1 - pb.t_d0) / 1e3;
		s->d1_changed = (double)(pb.t_changed - pb.t_d1) / 1e3;
		s->d0_changed = (double)(pb.t_changed - pb.t_d0) / 1e3;
		s->ping_changed = (double)(pb.t_changed - pb.t_ping) / 1e3;
		s->ping_sync = (double)(pb.t_sync - pb.t_ping) / 1e3;
		s->sync_changed = (double)(pb.t_changed - pb.t_sync) / 1e3;
		s->sync_ms = pb.sync_ms;
		s->items = st.items_put - items0;
		loadavg(load, sizeof(load));
		printf("%3lu %9.1f %10.1f %10.1f %10.2f %10.2f %10.2f %9ld %5llu %5s\n", got,
		       s->deliver_ms, s->d1_changed, s->d0_changed, s->ping_changed,
		       s->ping_sync, s->sync_changed, s->sync_ms, (unsigned long long)s->items,
		       load);
		fflush(stdout);
	}
	int status = 0;
	if (pb.done) {
		fprintf(stderr, "bench-relay: the sync session ended: %s\n", pb.error);
		status = 1;
	}
	if (got > 0) {
		double *v = calloc(got, sizeof(*v));
		if (v == NULL)
			die("out of memory");
		static const struct {
			const char *name;
			size_t off;
		} cols[] = {
		    {"Ping answer -> CHANGED (ms)", offsetof(struct ping_sample, ping_changed)},
		    {"  of which Ping answer -> Sync answer", offsetof(struct ping_sample, ping_sync)},
		    {"  of which Sync answer -> CHANGED", offsetof(struct ping_sample, sync_changed)},
		    {"delivery (script exit) -> CHANGED (ms)", offsetof(struct ping_sample, d1_changed)},
		    {"delivery (script start) -> CHANGED (ms)",
		     offsetof(struct ping_sample, d0_changed)},
		    {"deliver.sh run time (ms)", offsetof(struct ping_sample, deliver_ms)},
		};
		printf("%-40s %9s %9s %9s  (n = %lu", "summary", "min", "median", "max", got);
		if (foreign > 0)
			printf(", %lu foreign changes ignored", foreign);
		printf(")\n");
		for (size_t c = 0; c < sizeof(cols) / sizeof(cols[0]); c++) {
			for (unsigned long i = 0; i < got; i++)
				memcpy(&v[i], (const char *)&samples[i] + cols[c].off, sizeof(double));
			double mn = quantile(v, got, 0.0), md = quantile(v, got, 0.5),
			       mx = quantile(v, got, 1.0);
			printf("%-40s %9.2f %9.2f %9.2f\n", cols[c].name, mn, md, mx);
		}
		free(v);
	}
	if (got < deliveries)
		status = 1;
	free(samples);
	g_pb = NULL;
	sync_session_stop(&pb.s);
	event_free(tick);
	event_free(sig);
	account_secrets_free(&secrets);
	hk_log_set_sink(NULL, NULL);
	fixture_close(&f);
	return status;
}

/* ---- main --------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr, "usage: bench-relay [all | cpu [N] | memory [N ...] | ping [DELIVERIES] |\n"
	                "                    memory-one N [--memlock KIB] [--trace]]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	g_argv = argv;
	if (secmem_init() < 0 || api_init_allocators() < 0) {
		fprintf(stderr, "bench-relay: secmem_init failed\n");
		return 1;
	}
	hk_log_init("bench-relay", HK_LOG_STDERR, HK_LOG_NOTICE);
	const char *cmd = argc > 1 ? argv[1] : "all";
	unsigned long v;

	if (strcmp(cmd, "memory-one") == 0) {
		unsigned long memlock = 0;
		bool trace = false;
		if (argc < 3 || parse_ulong(argv[2], 1, MAX_ACCOUNTS, &v) < 0)
			usage();
		for (int i = 3; i < argc; i++) {
			if (strcmp(argv[i], "--trace") == 0)
				trace = true;
			else if (strcmp(argv[i], "--memlock") == 0 && i + 1 < argc &&
			         parse_ulong(argv[i + 1], 1, 1ul << 30, &memlock) == 0)
				i++;
			else
				usage();
		}
		return cmd_memory_one(v, memlock, trace);
	}

	/* the command line, for RESULTS.md */
	printf("$");
	for (int i = 0; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\n");
	fflush(stdout);

	if (strcmp(cmd, "cpu") == 0) {
		v = DEFAULT_CPU_N;
		if (argc > 3 || (argc == 3 && parse_ulong(argv[2], 1, MAX_ACCOUNTS, &v) < 0))
			usage();
		return cmd_cpu(v);
	}
	if (strcmp(cmd, "memory") == 0) {
		unsigned long ns[8] = {1000, 5000};
		size_t count = 2;
		if (argc > 2) {
			if (argc - 2 > 8)
				usage();
			count = 0;
			for (int i = 2; i < argc; i++)
				if (parse_ulong(argv[i], 1, MAX_ACCOUNTS, &ns[count++]) < 0)
					usage();
		}
		return cmd_memory(ns, count, argc <= 2);
	}
	if (strcmp(cmd, "ping") == 0) {
		v = DEFAULT_DELIVERIES;
		if (argc > 3 || (argc == 3 && parse_ulong(argv[2], 1, MAX_DELIVERIES, &v) < 0))
			usage();
		return cmd_ping(v);
	}
	if (strcmp(cmd, "all") == 0 && argc <= 2) {
		int status = 0;
		const char *cpu[] = {"cpu", NULL}, *mem[] = {"memory", NULL},
		           *ping[] = {"ping", NULL};
		status |= run_self(cpu);
		status |= run_self(mem);
		status |= run_self(ping);
		return status != 0;
	}
	usage();
}
