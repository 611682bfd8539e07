/* halfkeyd: the Halfkey relay.
 *
 *   halfkeyd [-c FILE] [--check-config] [--version] [--help]
 *
 * Runs in the foreground (a service manager supervises it), logs to
 * stderr or syslog as configured, tells systemd when it is ready
 * (NOTIFY_SOCKET, Type=notify), drops to the configured user after binding,
 * and shuts down cleanly on SIGTERM or SIGINT: unlocked accounts' secrets
 * are wiped before exit. */
#include "crypto/masterkey.h"
#include "crypto/secmem.h"
#include "lib/log.h"
#include "relay/api.h"
#include "relay/config.h"
#include "relay/control.h"
#include "relay/engine.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stddef.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define TICK_SECONDS 60

static void usage(FILE *out)
{
	fprintf(out, "usage: halfkeyd [-c FILE] [--check-config] [--version] [--help]\n"
		     "  -c, --config FILE   configuration file (default " RELAY_CONFIG_DEFAULT_PATH
		     ")\n"
		     "      --check-config  check the configuration, print the effective one, exit\n"
		     "      --version       print the version and exit\n");
}

/* systemd's readiness protocol: one datagram to $NOTIFY_SOCKET. */
static void notify_ready(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (path == NULL || (path[0] != '/' && path[0] != '@') || strlen(path) >= 108)
		return;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(path);
	memcpy(sa.sun_path, path, n);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0'; /* abstract namespace */
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	static const char msg[] = "READY=1\nSTATUS=serving";
	if (sendto(fd, msg, sizeof(msg) - 1, 0, (struct sockaddr *)&sa,
		   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
		log_warn("cannot notify the service manager: %s", strerror(errno));
	close(fd);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	log_notice("signal %d: shutting down", (int)sig);
	event_base_loopexit(arg, NULL);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	engine_tick(arg);
}

static bool allowed(const char *url, void *ctx)
{
	return relay_config_mailserver_allowed(ctx, url);
}

/* The data directory and the files the relay keeps in it belong to the
 * user it runs as, so that it can still write them after dropping root. */
static int prepare_data_dir(const struct relay_config *cfg, uid_t uid, gid_t gid)
{
	if (mkdir(cfg->data_dir, 0700) < 0 && errno != EEXIST) {
		log_err("cannot create %s: %s", cfg->data_dir, strerror(errno));
		return -1;
	}
	if (uid == (uid_t)-1)
		return 0;
	char p[RELAY_CONFIG_PATH_MAX + 16];
	const char *files[] = {"", "/halfkey.db", "/halfkey.db-wal", "/halfkey.db-shm"};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", cfg->data_dir, files[i]);
		if (lchown(p, uid, gid) < 0 && errno != ENOENT)
			log_warn("cannot give %s to the relay user: %s", p, strerror(errno));
	}
	if (cfg->store_path != NULL) {
		const char *sfx[] = {"", "-wal", "-shm"};
		for (size_t i = 0; i < 3; i++) {
			snprintf(p, sizeof(p), "%s%s", cfg->store_path, sfx[i]);
			if (lchown(p, uid, gid) < 0 && errno != ENOENT)
				log_warn("cannot give %s to the relay user: %s", p, strerror(errno));
		}
	}
	if (lchown(cfg->master_key_file, uid, gid) < 0 && errno != ENOENT)
		log_warn("cannot give %s to the relay user: %s", cfg->master_key_file,
			 strerror(errno));
	return 0;
}

/* The control socket's directory (e.g. /run/halfkey): made when missing,
 * mode 0755, owned by the relay user so that it can bind after dropping
 * root. */
static int prepare_socket_dir(const struct relay_config *cfg, uid_t uid, gid_t gid)
{
	char dir[RELAY_CONFIG_PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", cfg->control_socket);
	char *slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return 0;
	*slash = '\0';
	bool created = mkdir(dir, 0755) == 0;
	if (!created && errno != EEXIST) {
		log_err("cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	if (uid != (uid_t)-1 && created && lchown(dir, uid, gid) < 0)
		log_warn("cannot give %s to the relay user: %s", dir, strerror(errno));
	return 0;
}

static int lookup_user(const struct relay_config *cfg, uid_t *uid_r, gid_t *gid_r)
{
	*uid_r = (uid_t)-1;
	*gid_r = (gid_t)-1;
	if (cfg->user == NULL || cfg->user[0] == '\0' || geteuid() != 0)
		return 0;
	struct passwd *pw = getpwnam(cfg->user);
	if (pw == NULL) {
		log_err("user %s does not exist (create it, or set user = \"\")", cfg->user);
		return -1;
	}
	*uid_r = pw->pw_uid;
	*gid_r = pw->pw_gid;
	if (cfg->group != NULL && cfg->group[0] != '\0') {
		struct group *gr = getgrnam(cfg->group);
		if (gr == NULL) {
			log_err("group %s does not exist", cfg->group);
			return -1;
		}
		*gid_r = gr->gr_gid;
	}
	return 0;
}

static int drop_privileges(const struct relay_config *cfg, uid_t uid, gid_t gid)
{
	if (uid == (uid_t)-1)
		return 0;
	if (initgroups(cfg->user, gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
		log_err("cannot switch to user %s: %s", cfg->user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		log_err("could regain root after dropping it: refusing to run");
		return -1;
	}
	/* setuid made the process dumpable again */
	if (secmem_harden_process() < 0)
		return -1;
	log_info("running as %s", cfg->user);
	return 0;
}

/* Each device connection and each syncing account's mail-server
 * connection takes a descriptor; the soft limit is often 1024. Raised as
 * far as the hard limit allows (root may raise that too), with a warning
 * when the limits cannot all be reached. */
static void raise_nofile(const struct relay_config *cfg)
{
	rlim_t want = (rlim_t)cfg->max_connections + cfg->mail_max_syncing_accounts + 256;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
		return;
	struct rlimit nl = {want, rl.rlim_max >= want ? rl.rlim_max : want};
	if (setrlimit(RLIMIT_NOFILE, &nl) < 0) {
		nl.rlim_max = rl.rlim_max;
		nl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &nl) < 0)
			nl.rlim_cur = rl.rlim_cur;
	}
	if (nl.rlim_cur < want)
		log_warn("open files limited to %llu, fewer than limits.max_connections + "
			 "mailserver.max_syncing_accounts + 256 = %llu: raise LimitNOFILE",
			 (unsigned long long)nl.rlim_cur, (unsigned long long)want);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check-config", no_argument, NULL, 'C'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *config_path = NULL;
	bool check_only = false;
	int c;
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config_path = optarg; break;
		case 'C': check_only = true; break;
		case 'V': printf("halfkeyd %s\n", HK_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	hk_log_init("halfkeyd", HK_LOG_STDERR, HK_LOG_INFO);
	/* before anything allocates in OpenSSL, curl, SQLite, libevent, jansson */
	if (secmem_init() < 0 || api_init_allocators() < 0 || secmem_harden_process() < 0) {
		fprintf(stderr, "halfkeyd: cannot set up guarded memory\n");
		return 1;
	}
	struct relay_config *cfg = NULL;
	const char *err = NULL;
	if (relay_config_load(config_path, &cfg, &err) < 0) {
		fprintf(stderr, "halfkeyd: %s\n", err);
		return 2;
	}
	if (check_only) {
		int r = relay_config_dump(cfg, stdout);
		relay_config_free(&cfg);
		return r < 0 ? 1 : 0;
	}
	hk_log_init("halfkeyd", cfg->log_target, cfg->log_level);

	int rc = 1;
	struct masterkey *mk = NULL;
	struct store *store = NULL;
	SSL_CTX *ssl = NULL;
	struct event_base *base = NULL;
	struct httpc *http = NULL, *verify_http = NULL;
	struct engine *engine = NULL;
	struct api *api = NULL;
	struct control *ctl = NULL;
	struct event *sigterm = NULL, *sigint = NULL, *tick = NULL;
	uid_t uid;
	gid_t gid;

	if (cfg->store_driver != RELAY_STORE_SQLITE) {
		log_err("store driver pgsql is not available in this build yet; use sqlite");
		goto out;
	}
	if (lookup_user(cfg, &uid, &gid) < 0 || prepare_data_dir(cfg, (uid_t)-1, gid) < 0)
		goto out;
	if (masterkey_load_or_create(cfg->master_key_file, &mk, &err) < 0) {
		log_err("%s: %s", cfg->master_key_file, err);
		goto out;
	}
	if (store_open(&store_driver_sqlite, cfg->store_path, &store, &err) < 0) {
		log_err("%s: %s", cfg->store_path, err);
		goto out;
	}
	if (cfg->tls && api_ssl_ctx_new(cfg->tls_certificate, cfg->tls_key,
					cfg->tls_min_version == RELAY_TLS_1_3, &ssl, &err) < 0) {
		log_err("TLS: %s", err);
		goto out;
	}
	raise_nofile(cfg);
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	/* one client for sync, one for registrations' credential checks
	 * (engine.h: verify_http) */
	if (base == NULL || httpc_new(base, &http) < 0 || httpc_new(base, &verify_http) < 0)
		goto out;
	struct engine_config ec = {
		.base = base,
		.store = store,
		.mk = mk,
		.clock = hk_clock_real(),
		.http = http,
		.verify_http = verify_http,
		.ca_file = cfg->mail_ca_file,
		.default_server = cfg->mail_default_url,
		.server_allowed = allowed,
		.server_allowed_ctx = cfg,
		.flush_after_ms = cfg->flush_after_ms,
		.purge_every_ms = cfg->purge_every_ms,
		.eas_timeout_ms = cfg->mail_connect_timeout_ms,
		.heartbeat_s = (unsigned)(cfg->mail_ping_heartbeat_ms / 1000),
		.max_syncing = cfg->mail_max_syncing_accounts,
		.http2 = cfg->mail_http2,
	};
	if (engine_new(&ec, &engine) < 0)
		goto out;
	struct api_config ac = {
		.base = base,
		.engine = engine,
		.clock = hk_clock_real(),
		.ssl_ctx = ssl,
		.address = cfg->listen_address,
		.port = cfg->listen_port,
		.max_body = cfg->max_body_size,
		.max_headers = cfg->max_header_size,
		.timeout_s = (int)(cfg->request_timeout_ms / 1000),
		.register_per_minute = cfg->register_per_ip_per_minute,
		.requests_per_minute = cfg->device_requests_per_minute,
		.max_connections = cfg->max_connections,
	};
	if (api_start(&ac, &api, &err) < 0) {
		log_err("%s (%s port %u)", err, cfg->listen_address, cfg->listen_port);
		goto out;
	}
	if (prepare_data_dir(cfg, uid, gid) < 0 || prepare_socket_dir(cfg, uid, gid) < 0 ||
	    drop_privileges(cfg, uid, gid) < 0)
		goto out;
	struct control_ctx cc = {
		.engine = engine,
		.store = store,
		.clock = hk_clock_real(),
		.flush_after_ms = cfg->flush_after_ms,
		.started_ms = hk_clock_now(hk_clock_real()),
	};
	if (control_new(base, cfg->control_socket, &cc, &ctl, &err) < 0) {
		log_err("control socket %s: %s", cfg->control_socket, err);
		goto out;
	}

	sigterm = evsignal_new(base, SIGTERM, on_signal, base);
	sigint = evsignal_new(base, SIGINT, on_signal, base);
	tick = event_new(base, -1, EV_PERSIST, on_tick, engine);
	struct timeval tv = {TICK_SECONDS, 0};
	if (sigterm == NULL || sigint == NULL || tick == NULL || evsignal_add(sigterm, NULL) < 0 ||
	    evsignal_add(sigint, NULL) < 0 || event_add(tick, &tv) < 0)
		goto out;
	log_notice("halfkeyd %s listening on %s port %u (%s)", HK_VERSION, cfg->listen_address,
		   api_port(api), cfg->tls ? "TLS" : "plain HTTP, loopback");
	notify_ready();
	event_base_dispatch(base);
	rc = 0;
out:
	if (tick != NULL)
		event_free(tick);
	if (sigterm != NULL)
		event_free(sigterm);
	if (sigint != NULL)
		event_free(sigint);
	control_free(&ctl);
	engine_free(&engine); /* wipes every unlocked account; before the API */
	api_free(&api);
	httpc_free(&http);
	httpc_free(&verify_http);
	if (base != NULL)
		event_base_free(base);
	if (ssl != NULL)
		SSL_CTX_free(ssl);
	store_close(&store);
	masterkey_free(&mk);
	relay_config_free(&cfg);
	log_notice("halfkeyd stopped");
	return rc;
}
