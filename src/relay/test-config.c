/* Tests for halfkeyd's configuration: every key, every default, every
 * error path, the dump's round trip, the mail server allow-list, and that
 * the reference page and the example file agree with the parser. */
#include "relay/config.h"

#include "lib/clock.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef HK_SOURCE_DIR
#error "HK_SOURCE_DIR must name the source tree"
#endif

#define MS_MIN  (60 * HK_MS_PER_SECOND)
#define MS_HOUR (60 * MS_MIN)

/* ---- helpers ------------------------------------------------------------- */

static struct relay_config *parse_at(int line, const char *text)
{
	struct relay_config *cfg = NULL;
	const char *err = NULL;
	int ret = relay_config_parse(text, strlen(text), "t.conf", &cfg, &err);
	if (!test_check_int(ret, 0, "relay_config_parse(...)", "0", __FILE__, line))
		fprintf(stderr, "    error: %s\n", err != NULL ? err : "(none)");
	test_check((ret == 0) == (cfg != NULL), "cfg set iff success", __FILE__, line);
	return cfg;
}
#define PARSE(text) parse_at(__LINE__, (text))

/* Parsing text must fail with code, the message starting with prefix
 * ("t.conf:<line>: <key>: ") and containing needle. */
static void error_at(int line, const char *text, int code, const char *prefix, const char *needle)
{
	struct relay_config *cfg = NULL;
	const char *err = NULL;
	int ret = relay_config_parse(text, strlen(text), "t.conf", &cfg, &err);
	test_check_int(ret, code, "relay_config_parse(...)", "code", __FILE__, line);
	test_check(cfg == NULL, "cfg == NULL on failure", __FILE__, line);
	bool ok = err != NULL && strncmp(err, prefix, strlen(prefix)) == 0 &&
	          (needle == NULL || strstr(err, needle) != NULL);
	if (!test_check(ok, "error text", __FILE__, line))
		fprintf(stderr, "    got: %s\n    want: %s...%s\n", err != NULL ? err : "(none)",
		        prefix, needle != NULL ? needle : "");
	relay_config_free(&cfg);
}
#define ERR(text, code, prefix, needle) error_at(__LINE__, (text), (code), (prefix), (needle))

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		perror(path);
		abort();
	}
	if (write(fd, data, len) != (ssize_t)len)
		abort();
	fchmod(fd, mode);
	close(fd);
}

/* The file's bytes, NUL-terminated (free them). */
static char *read_file(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	char *buf = NULL;
	size_t cap = 0, len = 0;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap * 2 + 8192;
			buf = realloc(buf, cap);
			if (buf == NULL)
				abort();
		}
		size_t r = fread(buf + len, 1, 4096, f);
		len += r;
		if (r == 0)
			break;
	}
	fclose(f);
	buf[len] = '\0';
	if (len_r != NULL)
		*len_r = len;
	return buf;
}

/* relay_config_dump() into memory (free it). */
static char *dump(const struct relay_config *cfg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (f == NULL)
		abort();
	int ret = relay_config_dump(cfg, f);
	CHECK_INT(ret, 0);
	fclose(f);
	return buf;
}

/* Dumps cfg, parses the dump back, and checks the result equals cfg. */
static void round_trip_at(int line, const struct relay_config *cfg)
{
	char *text = dump(cfg);
	struct relay_config *back = NULL;
	const char *err = NULL;
	int ret = relay_config_parse(text, strlen(text), "dump", &back, &err);
	if (!test_check_int(ret, 0, "parse(dump)", "0", __FILE__, line))
		fprintf(stderr, "    error: %s\n%s", err, text);
	if (ret == 0 &&
	    !test_check(relay_config_equal(cfg, back), "dump parses back equal", __FILE__, line))
		fprintf(stderr, "%s", text);
	/* and the dump of the dump is the same text */
	if (back != NULL) {
		char *again = dump(back);
		test_check(strcmp(text, again) == 0, "dump is stable", __FILE__, line);
		free(again);
	}
	relay_config_free(&back);
	free(text);
}
#define ROUND_TRIP(cfg) round_trip_at(__LINE__, (cfg))

static const char full_text[] =
    "# every key, none at its default\n"
    "[relay]\n"
    "node_name = relay-2.example.org\n"
    "data_dir = /srv/halfkey/\n"
    "master_key_file = /etc/halfkey/keys/master.keys\n"
    "control_socket = /run/hk/ctl.sock\n"
    "user = mailrelay\n"
    "group = \"\"\n"
    "\n"
    "[listen]\n"
    "address = 2001:db8::0:1\n"
    "port = 443\n"
    "tls = yes\n"
    "[tls]\n"
    "certificate = \"/etc/ssl/relay cert.pem\"\n"
    "key = /etc/ssl/private/relay.key\n"
    "min_version = 1.3\n"
    "[store]\n"
    "driver = sqlite\n"
    "path = /srv/db/relay.sqlite\n"
    "[lifecycle]\n"
    "flush_after = 72h\n"
    "purge_every = 1d\n"
    "[limits]\n"
    "max_body_size = 1m\n"
    "max_header_size = 16K\n"
    "max_connections = 50000\n"
    "device_requests_per_minute = 120\n"
    "register_per_ip_per_minute = 3\n"
    "request_timeout = 1500ms\n"
    "idle_timeout = 2m\n"
    "[mailserver]\n"
    "ca_file = /etc/halfkey/mail-ca.pem\n"
    "allow = https://Mail.Example.org/Microsoft-Server-ActiveSync *.corp.example.org "
    "eas.example.net\n"
    "default_url = https://mail.example.org/Microsoft-Server-ActiveSync\n"
    "connect_timeout = 5s\n"
    "max_syncing_accounts = 20000\n"
    "ping_heartbeat = 29m\n"
    "http2 = no\n"
    "[log]\n"
    "target = syslog\n"
    "level = debug\n";

/* ---- defaults ------------------------------------------------------------ */

static void check_defaults(const struct relay_config *c)
{
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	CHECK_STR(c->node_name, host);
	CHECK_STR(c->data_dir, "/var/lib/halfkey");
	CHECK_STR(c->master_key_file, "/var/lib/halfkey/master.keys");
	CHECK_STR(c->control_socket, "/run/halfkey/control.sock");
	CHECK_STR(c->user, "halfkey");
	CHECK_STR(c->group, "halfkey");
	CHECK_STR(c->listen_address, "127.0.0.1");
	CHECK_INT(c->listen_port, 8443);
	CHECK(c->tls);
	CHECK_STR(c->tls_certificate, "/etc/halfkey/tls/cert.pem");
	CHECK_STR(c->tls_key, "/etc/halfkey/tls/key.pem");
	CHECK_INT(c->tls_min_version, RELAY_TLS_1_2);
	CHECK_INT(c->store_driver, RELAY_STORE_SQLITE);
	CHECK_STR(c->store_path, "/var/lib/halfkey/halfkey.db");
	CHECK(c->store_conninfo == NULL);
	CHECK_INT(c->flush_after_ms, 3 * HK_MS_PER_DAY);
	CHECK_INT(c->purge_every_ms, 7 * HK_MS_PER_DAY);
	CHECK_INT(c->max_body_size, 64 * 1024);
	CHECK_INT(c->max_header_size, 8 * 1024);
	CHECK_INT(c->max_connections, 1024);
	CHECK_INT(c->device_requests_per_minute, 60);
	CHECK_INT(c->register_per_ip_per_minute, 10);
	CHECK_INT(c->request_timeout_ms, 30 * HK_MS_PER_SECOND);
	CHECK_INT(c->idle_timeout_ms, 60 * HK_MS_PER_SECOND);
	CHECK(c->mail_ca_file == NULL);
	CHECK(c->mail_allow == NULL);
	CHECK_INT(c->mail_allow_count, 0);
	CHECK(c->mail_default_url == NULL);
	CHECK_INT(c->mail_connect_timeout_ms, 15 * HK_MS_PER_SECOND);
	CHECK_INT(c->mail_max_syncing_accounts, 1000);
	CHECK_INT(c->mail_ping_heartbeat_ms, 900 * HK_MS_PER_SECOND);
	CHECK(c->mail_http2);
	CHECK_INT(c->log_target, HK_LOG_STDERR);
	CHECK_INT(c->log_level, HK_LOG_INFO);
}

static void test_defaults(void)
{
	struct relay_config *cfg = NULL;
	const char *err = NULL;
	REQUIRE(relay_config_defaults(&cfg, &err) == 0);
	check_defaults(cfg);
	relay_config_free(&cfg);
	CHECK(cfg == NULL);
	relay_config_free(&cfg); /* freeing NULL is fine */
}

/* A host name that cannot serve as node_name is an error only when the
 * file does not set one. Needs a UTS namespace of its own (root or user
 * namespaces), in a child so that the rest of the run keeps the real name. */
static void test_bad_host_name(void)
{
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		if (unshare(CLONE_NEWUTS) < 0 || sethostname("bad host!", 9) < 0)
			_exit(77);
		struct relay_config *c = NULL;
		const char *err = NULL;
		int ok =
		    relay_config_parse("", 0, "t.conf", &c, &err) == HK_ERR_INVAL && c == NULL &&
		    strcmp(err, "t.conf: relay.node_name: not set, and the host name cannot "
		                "serve: must be 1 to 253 letters, digits, '.', '-' or '_' (not "
		                "first: '-', '.'), got 'bad host!'") == 0;
		ok = ok &&
		     relay_config_parse("[relay]\nnode_name = n\n", 22, "t.conf", &c, &err) == 0;
		relay_config_free(&c);
		_exit(ok ? 0 : 1);
	}
	int status;
	REQUIRE(waitpid(pid, &status, 0) == pid);
	REQUIRE(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		fprintf(stderr, "  (skipped: no UTS namespace for this user)\n");
	else
		CHECK_INT(WEXITSTATUS(status), 0);
}

static void test_empty_and_comments_give_defaults(void)
{
	static const char *const texts[] = {
	    "",
	    "\n\n",
	    "# only comments\n   # indented\n\t\n",
	    "[relay]\n[listen]\n[tls]\n[store]\n[lifecycle]\n[limits]\n[mailserver]\n[log]\n",
	    "[log] # a comment after a section\nlevel = info # the default\n",
	    "[log]\r\nlevel = info\r\n", /* CRLF */
	    "[log]\nlevel = info",       /* no final newline */
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct relay_config *cfg = PARSE(texts[i]);
		if (cfg != NULL)
			check_defaults(cfg);
		relay_config_free(&cfg);
	}
	struct relay_config *cfg = NULL;
	const char *err = NULL;
	CHECK_INT(relay_config_parse(NULL, 0, "t.conf", &cfg, &err), 0);
	relay_config_free(&cfg);
}

/* ---- every key ----------------------------------------------------------- */

static void test_every_key(void)
{
	struct relay_config *c = PARSE(full_text);
	REQUIRE(c != NULL);
	CHECK_STR(c->node_name, "relay-2.example.org");
	CHECK_STR(c->data_dir, "/srv/halfkey"); /* trailing slash dropped */
	CHECK_STR(c->master_key_file, "/etc/halfkey/keys/master.keys");
	CHECK_STR(c->control_socket, "/run/hk/ctl.sock");
	CHECK_STR(c->user, "mailrelay");
	CHECK_STR(c->group, "");                     /* do not switch */
	CHECK_STR(c->listen_address, "2001:db8::1"); /* as inet_ntop writes it */
	CHECK_INT(c->listen_port, 443);
	CHECK(c->tls);
	CHECK_STR(c->tls_certificate, "/etc/ssl/relay cert.pem");
	CHECK_STR(c->tls_key, "/etc/ssl/private/relay.key");
	CHECK_INT(c->tls_min_version, RELAY_TLS_1_3);
	CHECK_INT(c->store_driver, RELAY_STORE_SQLITE);
	CHECK_STR(c->store_path, "/srv/db/relay.sqlite");
	CHECK_INT(c->flush_after_ms, 72 * MS_HOUR);
	CHECK_INT(c->purge_every_ms, HK_MS_PER_DAY);
	CHECK_INT(c->max_body_size, 1024 * 1024);
	CHECK_INT(c->max_header_size, 16 * 1024);
	CHECK_INT(c->max_connections, 50000);
	CHECK_INT(c->device_requests_per_minute, 120);
	CHECK_INT(c->register_per_ip_per_minute, 3);
	CHECK_INT(c->request_timeout_ms, 1500);
	CHECK_INT(c->idle_timeout_ms, 2 * MS_MIN);
	CHECK_STR(c->mail_ca_file, "/etc/halfkey/mail-ca.pem");
	CHECK_STR(c->mail_allow, "https://Mail.Example.org/Microsoft-Server-ActiveSync "
	                         "*.corp.example.org eas.example.net");
	REQUIRE(c->mail_allow_count == 3);
	CHECK_INT(c->mail_allow_list[0].kind, RELAY_ALLOW_URL);
	CHECK_STR(c->mail_allow_list[0].host, "mail.example.org");
	CHECK_INT(c->mail_allow_list[0].port, 443);
	CHECK_STR(c->mail_allow_list[0].path, "/Microsoft-Server-ActiveSync");
	CHECK_INT(c->mail_allow_list[1].kind, RELAY_ALLOW_DOMAIN);
	CHECK_STR(c->mail_allow_list[1].host, "corp.example.org");
	CHECK_INT(c->mail_allow_list[2].kind, RELAY_ALLOW_HOST);
	CHECK_STR(c->mail_allow_list[2].host, "eas.example.net");
	CHECK_STR(c->mail_default_url, "https://mail.example.org/Microsoft-Server-ActiveSync");
	CHECK_INT(c->mail_connect_timeout_ms, 5 * HK_MS_PER_SECOND);
	CHECK_INT(c->mail_max_syncing_accounts, 20000);
	CHECK_INT(c->mail_ping_heartbeat_ms, 29 * MS_MIN);
	CHECK(!c->mail_http2);
	CHECK_INT(c->log_target, HK_LOG_SYSLOG);
	CHECK_INT(c->log_level, HK_LOG_DEBUG);
	relay_config_free(&c);
}

static void test_tls_off_and_pgsql(void)
{
	struct relay_config *c = PARSE("[listen]\naddress = ::1\ntls = no\n"
	                               "[store]\ndriver = pgsql\n"
	                               "conninfo = host=db.example.org dbname=halfkey user=relay "
	                               "passfile=/etc/halfkey/pgpass sslmode=verify-full\n");
	REQUIRE(c != NULL);
	CHECK(!c->tls);
	CHECK(c->tls_certificate == NULL);
	CHECK(c->tls_key == NULL);
	CHECK_STR(c->listen_address, "::1");
	CHECK_INT(c->store_driver, RELAY_STORE_PGSQL);
	CHECK(c->store_path == NULL);
	CHECK_STR(c->store_conninfo, "host=db.example.org dbname=halfkey user=relay "
	                             "passfile=/etc/halfkey/pgpass sslmode=verify-full");
	CHECK_STR(c->master_key_file, "/var/lib/halfkey/master.keys");
	relay_config_free(&c);

	/* every loopback spelling */
	static const char *const loopbacks[] = {"127.0.0.1", "127.1.2.3", "::1",
	                                        "::ffff:127.0.0.1"};
	for (size_t i = 0; i < sizeof(loopbacks) / sizeof(loopbacks[0]); i++) {
		char text[128];
		snprintf(text, sizeof(text), "[listen]\naddress = %s\ntls = no\n", loopbacks[i]);
		c = PARSE(text);
		relay_config_free(&c);
	}
	/* URI conninfo without a password */
	c = PARSE("[store]\ndriver = pgsql\nconninfo = "
	          "\"postgresql://relay@db1:5432,db2/halfkey?sslmode=require&target_session_attrs="
	          "read-write\"\n");
	relay_config_free(&c);
}

static void test_derived_paths(void)
{
	struct relay_config *c = PARSE("[relay]\ndata_dir = /data\n");
	REQUIRE(c != NULL);
	CHECK_STR(c->master_key_file, "/data/master.keys");
	CHECK_STR(c->store_path, "/data/halfkey.db");
	relay_config_free(&c);
	c = PARSE("[relay]\ndata_dir = ///\n");
	REQUIRE(c != NULL);
	CHECK_STR(c->data_dir, "/");
	CHECK_STR(c->master_key_file, "/master.keys");
	relay_config_free(&c);
	/* an explicit path wins over the derived one, in any order */
	c = PARSE("[store]\npath = /db/x.db\n[relay]\ndata_dir = /data\n");
	REQUIRE(c != NULL);
	CHECK_STR(c->store_path, "/db/x.db");
	CHECK_STR(c->master_key_file, "/data/master.keys");
	relay_config_free(&c);
}

static void test_values_and_quoting(void)
{
	ERR("[relay]\nnode_name=n1#x\n", HK_ERR_INVAL,
	    "t.conf:2: relay.node_name: ", "'#' inside an unquoted value");
	struct relay_config *c =
	    PARSE("[relay]\n"
	          "data_dir = \"/srv/with \\\"quotes\\\" and \\\\ and # hash\"   # comment\n"
	          "\tuser\t=\tbob\t\n"
	          "group =   \n"
	          "node_name=n1 # comment\n"
	          "control_socket = \"/run/\xc3\xa9t\xc3\xa9/s\"\n"); /* UTF-8 passes through */
	REQUIRE(c != NULL);
	CHECK_STR(c->data_dir, "/srv/with \"quotes\" and \\ and # hash");
	CHECK_STR(c->user, "bob");
	CHECK_STR(c->group, "");
	CHECK_STR(c->node_name, "n1");
	CHECK_STR(c->control_socket, "/run/\xc3\xa9t\xc3\xa9/s");
	ROUND_TRIP(c);
	relay_config_free(&c);

	/* durations in every unit, sizes in every unit and case */
	static const struct {
		const char *text;
		int64_t ms;
	} durations[] = {{"60000ms", 60000}, {"90s", 90000},    {"2m", 120000},
	                 {"72h", 259200000}, {"7d", 604800000}, {"0001h", 3600000}};
	for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
		char text[128];
		snprintf(text, sizeof(text), "[lifecycle]\npurge_every = %s\n", durations[i].text);
		struct relay_config *d = PARSE(text);
		if (d != NULL)
			CHECK_INT(d->purge_every_ms, durations[i].ms);
		relay_config_free(&d);
	}
	static const struct {
		const char *text;
		size_t bytes;
	} sizes[] = {{"1024", 1024},  {"64k", 65536},  {"64K", 65536},
	             {"1m", 1048576}, {"2M", 2097152}, {"\"3k\"", 3072}};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char text[128];
		snprintf(text, sizeof(text), "[limits]\nmax_body_size = %s\n", sizes[i].text);
		struct relay_config *d = PARSE(text);
		if (d != NULL)
			CHECK_INT(d->max_body_size, sizes[i].bytes);
		relay_config_free(&d);
	}
	/* the bounds themselves are accepted */
	c = PARSE("[lifecycle]\nflush_after = 1m\npurge_every = 365d\n"
	          "[mailserver]\nping_heartbeat = 60s\nconnect_timeout = 5m\n"
	          "[listen]\nport = 1\n[limits]\nmax_connections = 1\nmax_header_size = 1k\n");
	REQUIRE(c != NULL);
	CHECK_INT(c->flush_after_ms, MS_MIN);
	CHECK_INT(c->mail_ping_heartbeat_ms, 60000);
	CHECK_INT(c->listen_port, 1);
	relay_config_free(&c);
	c = PARSE("[listen]\nport = 65535\n[mailserver]\nping_heartbeat = 3540s\n");
	REQUIRE(c != NULL);
	CHECK_INT(c->listen_port, 65535);
	CHECK_INT(c->mail_ping_heartbeat_ms, 3540000);
	relay_config_free(&c);
	/* flush_after longer than purge_every is allowed */
	c = PARSE("[lifecycle]\nflush_after = 30d\npurge_every = 1h\n");
	CHECK(c != NULL);
	relay_config_free(&c);
}

/* The level names agree with lib/log.c's, so log.level means what
 * hk_log_level_parse() means. */
static void test_log_levels_match_lib(void)
{
	static const char *const names[] = {"debug", "info", "notice", "warning", "err"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char text[64];
		snprintf(text, sizeof(text), "[log]\nlevel = %s\n", names[i]);
		struct relay_config *c = PARSE(text);
		enum hk_log_level want;
		REQUIRE(hk_log_level_parse(names[i], &want) == 0);
		if (c != NULL)
			CHECK_INT(c->log_level, want);
		relay_config_free(&c);
	}
}

/* ---- errors --------------------------------------------------------------- */

static void test_syntax_errors(void)
{
	ERR("[listen]\nprot = 1\n", HK_ERR_INVAL, "t.conf:2: listen.prot: ", "unknown key");
	ERR("[listen]\nPort = 1\n", HK_ERR_INVAL, "t.conf:2: listen.Port: ", "unknown key");
	ERR("[tls]\naddress = ::1\n", HK_ERR_INVAL, "t.conf:2: tls.address: ", "unknown key");
	ERR("[listn]\n", HK_ERR_INVAL, "t.conf:1: ", "unknown section [listn]");
	ERR("port = 1\n", HK_ERR_INVAL, "t.conf:1: ", "before any [section]");
	ERR("[listen]\nport = 1\n\nport = 2\n", HK_ERR_EXISTS,
	    "t.conf:4: listen.port: ", "duplicate key (first set at line 2)");
	ERR("[listen]\nport = 1\n[log]\n[listen]\n", HK_ERR_EXISTS,
	    "t.conf:4: ", "section [listen] already opened at line 1");
	ERR("[listen\n", HK_ERR_INVAL, "t.conf:1: ", "expected '[section]'");
	ERR("[]\n", HK_ERR_INVAL, "t.conf:1: ", "expected '[section]'");
	ERR("[listen] x\n", HK_ERR_INVAL, "t.conf:1: ", "unexpected text after '[listen]'");
	ERR("[listen]\nport 8443\n", HK_ERR_INVAL, "t.conf:2: ", "expected '[section]' or 'key");
	ERR("[listen]\n= 8443\n", HK_ERR_INVAL, "t.conf:2: ", "expected '[section]' or 'key");
	ERR("[relay]\ndata_dir = \"/srv\n", HK_ERR_INVAL,
	    "t.conf:2: relay.data_dir: ", "unterminated quoted value");
	ERR("[relay]\ndata_dir = \"/srv\\\n", HK_ERR_INVAL,
	    "t.conf:2: relay.data_dir: ", "unterminated quoted value");
	ERR("[relay]\ndata_dir = \"/srv\\n\"\n", HK_ERR_INVAL,
	    "t.conf:2: relay.data_dir: ", "unknown escape '\\n'");
	ERR("[relay]\ndata_dir = \"/srv\" x\n", HK_ERR_INVAL,
	    "t.conf:2: relay.data_dir: ", "unexpected text after the closing");
	ERR("[relay]\ndata_dir = /srv#1\n", HK_ERR_INVAL,
	    "t.conf:2: relay.data_dir: ", "'#' inside an unquoted value");
	ERR("[relay]\ndata_dir = /s\"rv\n", HK_ERR_INVAL,
	    "t.conf:2: relay.data_dir: ", "'\"' inside an unquoted value");
	ERR("[relay]\ndata_dir = /srv\x01\n", HK_ERR_INVAL, "t.conf:2: ", "control character 0x01");
	ERR("[relay]\ndata_dir = /srv\x7f\n", HK_ERR_INVAL, "t.conf:2: ", "control character 0x7f");
	ERR("[relay]\r\r\n", HK_ERR_INVAL, "t.conf:1: ", "control character 0x0d");
	/* a NUL byte: strlen() would stop at it, so pass the length */
	static const char nul[] = "[relay]\nuser = a\0b\n";
	struct relay_config *c = NULL;
	const char *err = NULL;
	CHECK_INT(relay_config_parse(nul, sizeof(nul) - 1, "t.conf", &c, &err), HK_ERR_INVAL);
	CHECK(c == NULL);
	CHECK(err != NULL && strstr(err, "t.conf:2: control character 0x00") != NULL);
}

static void test_value_errors(void)
{
	/* durations */
	ERR("[lifecycle]\nflush_after = 3\n", HK_ERR_INVAL,
	    "t.conf:2: lifecycle.flush_after: ", "must be a number with a unit (ms, s, m, h, d)");
	ERR("[lifecycle]\nflush_after = 3w\n", HK_ERR_INVAL,
	    "t.conf:2: lifecycle.flush_after: ", "with a unit");
	ERR("[lifecycle]\nflush_after = 3 d\n", HK_ERR_INVAL,
	    "t.conf:2: lifecycle.flush_after: ", "with a unit");
	ERR("[lifecycle]\nflush_after = -3d\n", HK_ERR_INVAL,
	    "t.conf:2: lifecycle.flush_after: ", "with a unit");
	ERR("[lifecycle]\nflush_after = +3d\n", HK_ERR_INVAL,
	    "t.conf:2: lifecycle.flush_after: ", "with a unit");
	ERR("[lifecycle]\nflush_after = d\n", HK_ERR_INVAL,
	    "t.conf:2: lifecycle.flush_after: ", "with a unit");
	ERR("[lifecycle]\nflush_after =\n", HK_ERR_INVAL,
	    "t.conf:2: lifecycle.flush_after: ", "got ''");
	ERR("[lifecycle]\nflush_after = 59s\n", HK_ERR_INVAL,
	    "t.conf:2: lifecycle.flush_after: ", "must be between 1m and 365d, got '59s'");
	ERR("[lifecycle]\nflush_after = 0d\n", HK_ERR_INVAL,
	    "t.conf:2: lifecycle.flush_after: ", "between 1m and 365d");
	ERR("[lifecycle]\npurge_every = 366d\n", HK_ERR_INVAL,
	    "t.conf:2: lifecycle.purge_every: ", "between 1m and 365d");
	ERR("[lifecycle]\npurge_every = 0ms\n", HK_ERR_INVAL,
	    "t.conf:2: lifecycle.purge_every: ", "between 1m and 365d");
	ERR("[lifecycle]\npurge_every = 99999999999999999999d\n", HK_ERR_INVAL,
	    "t.conf:2: lifecycle.purge_every: ", "between");
	ERR("[lifecycle]\npurge_every = 9999999999999999d\n", HK_ERR_INVAL,
	    "t.conf:2: lifecycle.purge_every: ", "between");
	ERR("[limits]\nrequest_timeout = 999ms\n", HK_ERR_INVAL,
	    "t.conf:2: limits.request_timeout: ", "between 1s and 1h");
	ERR("[mailserver]\nping_heartbeat = 59s\n", HK_ERR_INVAL,
	    "t.conf:2: mailserver.ping_heartbeat: ", "between 1m and 59m");
	ERR("[mailserver]\nping_heartbeat = 3541s\n", HK_ERR_INVAL,
	    "t.conf:2: mailserver.ping_heartbeat: ", "between 1m and 59m");
	ERR("[mailserver]\nping_heartbeat = 900500ms\n", HK_ERR_INVAL,
	    "t.conf:2: mailserver.ping_heartbeat: ", "whole seconds");
	/* sizes */
	ERR("[limits]\nmax_body_size = 64kb\n", HK_ERR_INVAL,
	    "t.conf:2: limits.max_body_size: ", "optionally with k, m or g");
	ERR("[limits]\nmax_body_size = 64t\n", HK_ERR_INVAL,
	    "t.conf:2: limits.max_body_size: ", "optionally with k, m or g");
	ERR("[limits]\nmax_body_size = 1023\n", HK_ERR_INVAL,
	    "t.conf:2: limits.max_body_size: ", "between 1k and 64m");
	ERR("[limits]\nmax_body_size = 18014398509481984k\n", HK_ERR_INVAL,
	    "t.conf:2: limits.max_body_size: ", "between");
	ERR("[limits]\nmax_header_size = 1g\n", HK_ERR_INVAL,
	    "t.conf:2: limits.max_header_size: ", "between 1k and 1m");
	/* whole numbers and ports */
	ERR("[listen]\nport = 0\n", HK_ERR_INVAL,
	    "t.conf:2: listen.port: ", "must be a port number 1..65535, got '0'");
	ERR("[listen]\nport = 65536\n", HK_ERR_INVAL, "t.conf:2: listen.port: ", "1..65535");
	ERR("[listen]\nport = -1\n", HK_ERR_INVAL, "t.conf:2: listen.port: ", "1..65535");
	ERR("[listen]\nport = 84 43\n", HK_ERR_INVAL, "t.conf:2: listen.port: ", "1..65535");
	ERR("[listen]\nport = https\n", HK_ERR_INVAL, "t.conf:2: listen.port: ", "1..65535");
	ERR("[listen]\nport = 0x20fb\n", HK_ERR_INVAL, "t.conf:2: listen.port: ", "1..65535");
	ERR("[listen]\nport = 8443s\n", HK_ERR_INVAL, "t.conf:2: listen.port: ", "1..65535");
	ERR("[limits]\nmax_connections = 0\n", HK_ERR_INVAL,
	    "t.conf:2: limits.max_connections: ", "a whole number 1..1048576");
	ERR("[limits]\ndevice_requests_per_minute = 18446744073709551616\n", HK_ERR_INVAL,
	    "t.conf:2: limits.device_requests_per_minute: ", "1..1000000");
	ERR("[limits]\nregister_per_ip_per_minute = 0\n", HK_ERR_INVAL,
	    "t.conf:2: limits.register_per_ip_per_minute: ", "1..100000");
	ERR("[mailserver]\nmax_syncing_accounts = 1000001\n", HK_ERR_INVAL,
	    "t.conf:2: mailserver.max_syncing_accounts: ", "1..1000000");
	/* booleans and names */
	ERR("[listen]\ntls = true\n", HK_ERR_INVAL,
	    "t.conf:2: listen.tls: ", "must be yes or no, got 'true'");
	ERR("[listen]\ntls = YES\n", HK_ERR_INVAL, "t.conf:2: listen.tls: ", "yes or no");
	ERR("[tls]\nmin_version = 1.1\n", HK_ERR_INVAL,
	    "t.conf:2: tls.min_version: ", "must be one of 1.2, 1.3, got '1.1'");
	ERR("[store]\ndriver = mysql\n", HK_ERR_INVAL,
	    "t.conf:2: store.driver: ", "one of sqlite, pgsql");
	ERR("[log]\ntarget = file\n", HK_ERR_INVAL,
	    "t.conf:2: log.target: ", "one of stderr, syslog");
	ERR("[log]\nlevel = warn\n", HK_ERR_INVAL,
	    "t.conf:2: log.level: ", "one of debug, info, notice, warning, err");
	ERR("[relay]\nuser = -root\n", HK_ERR_INVAL, "t.conf:2: relay.user: ", "user or group");
	ERR("[relay]\ngroup = \"a b\"\n", HK_ERR_INVAL, "t.conf:2: relay.group: ", "user or group");
	ERR("[relay]\nuser = abcdefghijklmnopqrstuvwxyz0123456\n", HK_ERR_TOO_LONG,
	    "t.conf:2: relay.user: ", "longer than 32 bytes");
	ERR("[relay]\nnode_name =\n", HK_ERR_INVAL, "t.conf:2: relay.node_name: ", "1 to 253");
	ERR("[relay]\nnode_name = a/b\n", HK_ERR_INVAL, "t.conf:2: relay.node_name: ", "1 to 253");
	/* addresses */
	ERR("[listen]\naddress = localhost\n", HK_ERR_INVAL,
	    "t.conf:2: listen.address: ", "numeric IPv4 or IPv6");
	ERR("[listen]\naddress = [::1]\n", HK_ERR_INVAL,
	    "t.conf:2: listen.address: ", "without brackets");
	ERR("[listen]\naddress = 127.0.0.1:8443\n", HK_ERR_INVAL,
	    "t.conf:2: listen.address: ", "numeric");
	ERR("[listen]\naddress = 1.2.3\n", HK_ERR_INVAL, "t.conf:2: listen.address: ", "numeric");
}

static void test_path_errors(void)
{
	ERR("[relay]\ndata_dir = var/lib/halfkey\n", HK_ERR_INVAL,
	    "t.conf:2: relay.data_dir: ", "must be an absolute path, got 'var/lib/halfkey'");
	ERR("[relay]\ndata_dir =\n", HK_ERR_INVAL, "t.conf:2: relay.data_dir: ", "absolute path");
	ERR("[relay]\nmaster_key_file = ./master.keys\n", HK_ERR_INVAL,
	    "t.conf:2: relay.master_key_file: ", "absolute path");
	ERR("[relay]\nmaster_key_file = /etc/halfkey/\n", HK_ERR_INVAL,
	    "t.conf:2: relay.master_key_file: ", "names a directory");
	ERR("[tls]\ncertificate = cert.pem\n", HK_ERR_INVAL,
	    "t.conf:2: tls.certificate: ", "absolute path");
	ERR("[tls]\nkey = ~/key.pem\n", HK_ERR_INVAL, "t.conf:2: tls.key: ", "absolute path");
	ERR("[store]\npath = halfkey.db\n", HK_ERR_INVAL,
	    "t.conf:2: store.path: ", "absolute path");
	ERR("[mailserver]\nca_file = ca.pem\n", HK_ERR_INVAL,
	    "t.conf:2: mailserver.ca_file: ", "absolute path");
	ERR("[relay]\ncontrol_socket = run/control.sock\n", HK_ERR_INVAL,
	    "t.conf:2: relay.control_socket: ", "absolute path");

	/* sun_path holds 107 bytes and a NUL */
	char text[2 * RELAY_CONFIG_PATH_MAX];
	char path[RELAY_CONFIG_PATH_MAX + 2];
	memset(path, 'a', sizeof(path));
	path[0] = '/';
	path[107] = '\0';
	snprintf(text, sizeof(text), "[relay]\ncontrol_socket = %s\n", path);
	struct relay_config *c = PARSE(text);
	relay_config_free(&c);
	path[107] = 'a';
	path[108] = '\0';
	snprintf(text, sizeof(text), "[relay]\ncontrol_socket = %s\n", path);
	ERR(text, HK_ERR_TOO_LONG, "t.conf:2: relay.control_socket: ", "longer than 107 bytes");
	/* paths: RELAY_CONFIG_PATH_MAX */
	memset(path + 1, 'a', sizeof(path) - 1);
	path[RELAY_CONFIG_PATH_MAX] = '\0';
	snprintf(text, sizeof(text), "[relay]\nmaster_key_file = %s\n", path);
	c = PARSE(text);
	relay_config_free(&c);
	path[RELAY_CONFIG_PATH_MAX] = 'a';
	path[RELAY_CONFIG_PATH_MAX + 1] = '\0';
	snprintf(text, sizeof(text), "[relay]\nmaster_key_file = %s\n", path);
	ERR(text, HK_ERR_TOO_LONG, "t.conf:2: relay.master_key_file: ", "longer than 1024 bytes");
	/* a data_dir too long to hold its derived files names data_dir */
	memset(path + 1, 'a', sizeof(path) - 1);
	path[RELAY_CONFIG_PATH_MAX - 11] = '\0'; /* halfkey.db fits, master.keys does not */
	snprintf(text, sizeof(text), "[relay]\ndata_dir = %s\n", path);
	ERR(text, HK_ERR_TOO_LONG, "t.conf:2: relay.data_dir: ", "too long to hold master.keys");
	memset(path + 1, 'a', sizeof(path) - 1);
	path[RELAY_CONFIG_PATH_MAX - 5] = '\0'; /* neither fits */
	snprintf(text, sizeof(text), "[relay]\ndata_dir = %s\n", path);
	ERR(text, HK_ERR_TOO_LONG, "t.conf:2: relay.data_dir: ", "too long to hold halfkey.db");
}

static void test_cross_key_errors(void)
{
	ERR("[listen]\naddress = 0.0.0.0\ntls = no\n", HK_ERR_INVAL,
	    "t.conf:3: listen.tls: ", "only allowed when listen.address is a loopback address");
	ERR("[listen]\ntls = no\naddress = ::\n", HK_ERR_INVAL,
	    "t.conf:2: listen.tls: ", "got '::'");
	ERR("[listen]\ntls = no\naddress = 192.0.2.1\n", HK_ERR_INVAL,
	    "t.conf:2: listen.tls: ", "loopback");
	ERR("[listen]\ntls = no\naddress = ::ffff:192.0.2.1\n", HK_ERR_INVAL,
	    "t.conf:2: listen.tls: ", "loopback");
	ERR("[listen]\ntls = no\n[tls]\ncertificate = /c.pem\n", HK_ERR_INVAL,
	    "t.conf:4: tls.certificate: ", "not used with listen.tls = no");
	ERR("[tls]\nkey = /k.pem\n[listen]\ntls = no\n", HK_ERR_INVAL,
	    "t.conf:2: tls.key: ", "not used with listen.tls = no");
	ERR("[listen]\ntls = no\n[tls]\nmin_version = 1.3\n", HK_ERR_INVAL,
	    "t.conf:4: tls.min_version: ", "not used");
	ERR("[store]\ndriver = pgsql\n", HK_ERR_INVAL,
	    "t.conf:2: store.driver: ", "pgsql needs store.conninfo");
	ERR("[store]\ndriver = pgsql\npath = /x.db\nconninfo = dbname=x\n", HK_ERR_INVAL,
	    "t.conf:3: store.path: ", "not used with store.driver = pgsql");
	ERR("[store]\nconninfo = dbname=x\n", HK_ERR_INVAL,
	    "t.conf:2: store.conninfo: ", "not used with store.driver = sqlite");
	ERR("[mailserver]\nallow = *.example.org\ndefault_url = https://mail.example.net/\n",
	    HK_ERR_INVAL, "t.conf:3: mailserver.default_url: ", "not allowed by mailserver.allow");
}

static void test_conninfo_secrets_refused(void)
{
	static const char *const bad[] = {
	    "host=db password=hunter2",
	    "host=db  password = 'hunter 2'",
	    "host=db sslpassword=hunter2",
	    "postgresql://relay:hunter2@db/halfkey",
	    "postgres://relay:@db/halfkey",
	    "postgresql://db/halfkey?password=hunter2",
	    "postgresql://db/halfkey?sslmode=require&password=hunter2",
	    "postgresql://db/halfkey?%70assword=hunter2",
	    "postgresql://db/halfkey?%70%61%73%73%77%6f%72%64=hunter2",
	    "dbname='host=db password=hunter2'",
	    "dbname=postgresql://u:hunter2@db/x",
	    "",
	    "   ",
	    "host",
	    "host db",
	    "host='db",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[256];
		snprintf(text, sizeof(text), "[store]\ndriver = pgsql\nconninfo = \"%s\"\n",
		         bad[i]);
		struct relay_config *c = NULL;
		const char *err = NULL;
		int ret = relay_config_parse(text, strlen(text), "t.conf", &c, &err);
		if (!CHECK_INT(ret, HK_ERR_INVAL))
			fprintf(stderr, "    conninfo: %s\n", bad[i]);
		CHECK(c == NULL);
		CHECK(err != NULL && strncmp(err, "t.conf:3: store.conninfo: ", 26) == 0);
		/* the error never repeats the value */
		CHECK(err != NULL && strstr(err, "hunter") == NULL);
		relay_config_free(&c);
	}
	ERR("[store]\ndriver = pgsql\nconninfo = host=db password=x\n", HK_ERR_INVAL,
	    "t.conf:3: store.conninfo: ", "must not hold a password");
	/* words that only look like it */
	static const char *const good[] = {
	    "host=db passfile=/etc/halfkey/pgpass",
	    "host=db application_name='password=x'",
	    "postgresql://relay@db/halfkey?passfile=/p",
	    "postgresql://db/pass:word",
	    "dbname=halfkey user=password",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char text[256];
		snprintf(text, sizeof(text), "[store]\ndriver = pgsql\nconninfo = \"%s\"\n",
		         good[i]);
		struct relay_config *c = PARSE(text);
		if (c != NULL)
			CHECK_STR(c->store_conninfo, good[i]);
		relay_config_free(&c);
	}
}

static void test_line_and_size_bounds(void)
{
	/* a line of exactly RELAY_CONFIG_LINE_MAX bytes is fine; one more is not */
	size_t cap = RELAY_CONFIG_LINE_MAX + 64;
	char *text = malloc(cap);
	REQUIRE(text != NULL);
	for (size_t extra = 0; extra <= 1; extra++) {
		size_t n = 0;
		n += (size_t)snprintf(text, cap, "[relay]\n");
		size_t start = n;
		n += (size_t)snprintf(text + n, cap - n, "# ");
		while (n - start < RELAY_CONFIG_LINE_MAX + extra)
			text[n++] = 'x';
		text[n++] = '\n';
		text[n] = '\0';
		struct relay_config *c = NULL;
		const char *err = NULL;
		int ret = relay_config_parse(text, n, "t.conf", &c, &err);
		if (extra == 0) {
			CHECK_INT(ret, 0);
		} else {
			CHECK_INT(ret, HK_ERR_TOO_LONG);
			CHECK(err != NULL &&
			      strcmp(err, "t.conf:2: line longer than 4096 bytes") == 0);
		}
		relay_config_free(&c);
	}
	free(text);

	/* a value that fits its line as read but not once the dump quotes it
	 * (found by fuzz-config): refused, so that every dump reads back */
	text = malloc(cap);
	REQUIRE(text != NULL);
	for (size_t value_len = RELAY_CONFIG_LINE_MAX - 13; value_len <= RELAY_CONFIG_LINE_MAX - 11;
	     value_len++) {
		size_t n =
		    (size_t)snprintf(text, cap, "[store]\ndriver = pgsql\nconninfo = dbname=");
		for (size_t i = strlen("dbname="); i < value_len; i++)
			text[n++] = 'x';
		text[n] = '\0';
		struct relay_config *c = NULL;
		const char *err = NULL;
		/* "conninfo = \"" value "\"" is value_len + 13 bytes */
		int ret = relay_config_parse(text, n, "t.conf", &c, &err);
		if (value_len + 13 <= RELAY_CONFIG_LINE_MAX) {
			CHECK_INT(ret, 0);
			if (c != NULL)
				ROUND_TRIP(c);
		} else {
			CHECK_INT(ret, HK_ERR_TOO_LONG);
			CHECK(err != NULL &&
			      strstr(err, "t.conf:3: store.conninfo: too long: written "
			                  "back quoted") != NULL);
		}
		relay_config_free(&c);
	}
	/* escapes count twice: an unquoted backslash is written back as two */
	size_t n = (size_t)snprintf(text, cap, "[store]\ndriver = pgsql\nconninfo = dbname=");
	memset(text + n, '\\', 2100);
	text[n + 2100] = '\0';
	ERR(text, HK_ERR_TOO_LONG, "t.conf:3: store.conninfo: ", "too long: written back");
	free(text);

	/* the whole text: RELAY_CONFIG_FILE_MAX bytes at most */
	size_t big = RELAY_CONFIG_FILE_MAX + 1;
	char *buf = malloc(big);
	REQUIRE(buf != NULL);
	for (size_t i = 0; i < big; i++)
		buf[i] = (i % 64 == 63) ? '\n' : '#';
	struct relay_config *c = NULL;
	const char *err = NULL;
	CHECK_INT(relay_config_parse(buf, big - 1, "t.conf", &c, &err), 0);
	relay_config_free(&c);
	CHECK_INT(relay_config_parse(buf, big, "t.conf", &c, &err), HK_ERR_TOO_LONG);
	CHECK(c == NULL);
	CHECK(err != NULL && strcmp(err, "t.conf: larger than 1048576 bytes") == 0);

	/* and through a file */
	const char *path = test_path("big.conf");
	write_file(path, buf, big, 0600);
	CHECK_INT(relay_config_load(path, &c, &err), HK_ERR_TOO_LONG);
	CHECK(c == NULL);
	write_file(path, buf, big - 1, 0600);
	CHECK_INT(relay_config_load(path, &c, &err), 0);
	CHECK(c != NULL);
	relay_config_free(&c);
	free(buf);
}

/* ---- files ----------------------------------------------------------------- */

static void test_load_files(void)
{
	struct relay_config *c = NULL;
	const char *err = NULL;
	const char *path = test_path("halfkeyd.conf");

	/* an explicit path must exist */
	CHECK_INT(relay_config_load(test_path("absent.conf"), &c, &err), HK_ERR_NOT_FOUND);
	CHECK(c == NULL);
	CHECK(err != NULL && strstr(err, "absent.conf: cannot open: ") != NULL);

	/* an empty file gives the defaults */
	write_file(path, "", 0, 0644);
	REQUIRE(relay_config_load(path, &c, &err) == 0);
	check_defaults(c);
	relay_config_free(&c);

	/* errors name the file */
	write_file(path, "[listen]\nport = 0\n", 18, 0640);
	CHECK_INT(relay_config_load(path, &c, &err), HK_ERR_INVAL);
	CHECK(c == NULL);
	char want[600];
	snprintf(want, sizeof(want), "%s:2: listen.port: ", path);
	CHECK(err != NULL && strncmp(err, want, strlen(want)) == 0);

	/* a file others may write is refused */
	write_file(path, "", 0, 0646);
	CHECK_INT(relay_config_load(path, &c, &err), HK_ERR_PERM);
	CHECK(err != NULL && strstr(err, "others may write it (mode 0646)") != NULL);
	CHECK(c == NULL);

	/* a directory is not a config file */
	CHECK_INT(relay_config_load(test_tmpdir(), &c, &err), HK_ERR_INVAL);
	CHECK(err != NULL && strstr(err, "not a regular file") != NULL);

	/* a FIFO is refused without blocking */
	const char *fifo = test_path("fifo.conf");
	REQUIRE(mkfifo(fifo, 0600) == 0);
	CHECK_INT(relay_config_load(fifo, &c, &err), HK_ERR_INVAL);
	CHECK(err != NULL && strstr(err, "not a regular file") != NULL);

	/* the full config from a file */
	write_file(path, full_text, sizeof(full_text) - 1, 0600);
	REQUIRE(relay_config_load(path, &c, &err) == 0);
	CHECK_STR(c->node_name, "relay-2.example.org");
	relay_config_free(&c);

	/* no path: the default file, which may be absent */
	if (access(RELAY_CONFIG_DEFAULT_PATH, F_OK) != 0 && errno == ENOENT) {
		REQUIRE(relay_config_load(NULL, &c, &err) == 0);
		check_defaults(c);
		relay_config_free(&c);
	} else {
		fprintf(stderr, "  (skipped the absent-default-file case: %s exists)\n",
		        RELAY_CONFIG_DEFAULT_PATH);
	}
}

/* ---- dump ------------------------------------------------------------------ */

static void test_dump_round_trip(void)
{
	struct relay_config *c = NULL;
	const char *err = NULL;
	REQUIRE(relay_config_defaults(&c, &err) == 0);
	ROUND_TRIP(c);
	char *text = dump(c);
	/* spot checks of the canonical forms */
	CHECK(strstr(text, "\n[listen]\naddress = \"127.0.0.1\"\nport = 8443\ntls = yes\n") !=
	      NULL);
	CHECK(strstr(text, "flush_after = 3d\npurge_every = 7d\n") != NULL);
	CHECK(strstr(text, "max_body_size = 64k\n") != NULL);
	CHECK(strstr(text, "ping_heartbeat = 15m\n") != NULL);
	CHECK(strstr(text, "path = \"/var/lib/halfkey/halfkey.db\"\n") != NULL);
	CHECK(strstr(text, "# conninfo: not used with store.driver = sqlite\n") != NULL);
	CHECK(strstr(text, "ca_file = \"\"  # the system trust store\n") != NULL);
	CHECK(strstr(text, "It holds no secrets") != NULL);
	free(text);
	relay_config_free(&c);

	c = PARSE(full_text);
	REQUIRE(c != NULL);
	ROUND_TRIP(c);
	text = dump(c);
	CHECK(strstr(text, "request_timeout = 1500ms\n") != NULL);
	CHECK(strstr(text, "flush_after = 3d\n") != NULL); /* 72h */
	CHECK(strstr(text, "certificate = \"/etc/ssl/relay cert.pem\"\n") != NULL);
	free(text);
	relay_config_free(&c);

	c = PARSE("[listen]\naddress = 127.0.0.2\ntls = no\n[store]\ndriver = pgsql\n"
	          "conninfo = \"host=db application_name='a \\\"b\\\" \\\\c'\"\n"
	          "[relay]\nuser =\ngroup = \"\"\ndata_dir = /\n"
	          "[mailserver]\nallow = \"  \"\n");
	REQUIRE(c != NULL);
	CHECK(c->mail_allow == NULL); /* blanks only: not set */
	ROUND_TRIP(c);
	text = dump(c);
	CHECK(strstr(text, "[tls]\n# certificate: not used with listen.tls = no\n") != NULL);
	CHECK(strstr(text, "# path: not used with store.driver = pgsql\n") != NULL);
	CHECK(strstr(text, "conninfo = \"host=db application_name='a \\\"b\\\" \\\\c'\"\n") !=
	      NULL);
	free(text);
	relay_config_free(&c);

	/* a failing stream is an error */
	c = PARSE("");
	REQUIRE(c != NULL);
	FILE *ro = fopen("/dev/null", "r");
	REQUIRE(ro != NULL);
	CHECK_INT(relay_config_dump(c, ro), HK_ERR_IO);
	fclose(ro);
	relay_config_free(&c);
}

static void test_equal(void)
{
	struct relay_config *a = PARSE(full_text);
	struct relay_config *b = PARSE(full_text);
	struct relay_config *d = PARSE("");
	REQUIRE(a != NULL && b != NULL && d != NULL);
	CHECK(relay_config_equal(a, b));
	CHECK(!relay_config_equal(a, d));
	b->mail_max_syncing_accounts++;
	CHECK(!relay_config_equal(a, b));
	b->mail_max_syncing_accounts--;
	b->tls = false;
	CHECK(!relay_config_equal(a, b));
	relay_config_free(&a);
	relay_config_free(&b);
	relay_config_free(&d);
}

/* ---- the mail server allow-list --------------------------------------------- */

static void test_mailserver_allowed(void)
{
	struct relay_config *open = PARSE("");
	REQUIRE(open != NULL);
	/* with no list: any https URL, nothing else */
	CHECK(relay_config_mailserver_allowed(open, "https://anything.example/x"));
	CHECK(relay_config_mailserver_allowed(open, "https://[2001:db8::1]:8443/"));
	CHECK(!relay_config_mailserver_allowed(open, "http://mail.example.org/"));
	CHECK(!relay_config_mailserver_allowed(open, "ftp://mail.example.org/"));
	CHECK(!relay_config_mailserver_allowed(open, "mail.example.org"));
	CHECK(!relay_config_mailserver_allowed(open, "https://"));
	CHECK(!relay_config_mailserver_allowed(open, "https://user:pw@mail.example.org/"));
	CHECK(!relay_config_mailserver_allowed(open, "https://mail.example.org/?x=1"));
	CHECK(!relay_config_mailserver_allowed(open, "https://mail.example.org/#f"));
	CHECK(!relay_config_mailserver_allowed(open, "https://mail.example.org:0/"));
	CHECK(!relay_config_mailserver_allowed(open, "https://mail.example.org:65536/"));
	CHECK(!relay_config_mailserver_allowed(open, "https://mail.example.org:/"));
	CHECK(!relay_config_mailserver_allowed(open, "https://mail example.org/"));
	CHECK(!relay_config_mailserver_allowed(open, "https://-mail.example.org/"));
	CHECK(!relay_config_mailserver_allowed(open, "https://mail..example.org/"));
	CHECK(!relay_config_mailserver_allowed(open, "https://[::1/"));
	CHECK(!relay_config_mailserver_allowed(open, "https://[::1]x/"));
	CHECK(!relay_config_mailserver_allowed(open, NULL));
	CHECK(!relay_config_mailserver_allowed(NULL, "https://mail.example.org/"));
	char longurl[RELAY_CONFIG_URL_MAX + 16];
	snprintf(longurl, sizeof(longurl), "https://mail.example.org/");
	size_t prefix = strlen(longurl);
	memset(longurl + prefix, 'a', sizeof(longurl) - prefix - 1);
	longurl[RELAY_CONFIG_URL_MAX + 1] = '\0';
	CHECK(!relay_config_mailserver_allowed(open, longurl));
	longurl[RELAY_CONFIG_URL_MAX] = '\0';
	CHECK(relay_config_mailserver_allowed(open, longurl));
	relay_config_free(&open);

	struct relay_config *c = PARSE(
	    "[mailserver]\nallow = https://Mail.Example.org/Microsoft-Server-ActiveSync "
	    "https://eas.example.net:8443 *.corp.example.org sogo.example.com [2001:db8::5]\n");
	REQUIRE(c != NULL);
	static const struct {
		const char *url;
		bool ok;
	} cases[] = {
	    {"https://mail.example.org/Microsoft-Server-ActiveSync", true},
	    {"HTTPS://MAIL.EXAMPLE.ORG/Microsoft-Server-ActiveSync", true},
	    {"https://mail.example.org./Microsoft-Server-ActiveSync", true},
	    {"https://mail.example.org:443/Microsoft-Server-ActiveSync", true},
	    {"https://mail.example.org:8443/Microsoft-Server-ActiveSync", false},
	    {"https://mail.example.org/microsoft-server-activesync", false},
	    {"https://mail.example.org/Microsoft-Server-ActiveSync/x", false},
	    {"https://mail.example.org/", false},
	    {"https://mail.example.org.evil.net/Microsoft-Server-ActiveSync", false},
	    {"https://mail.example.org@evil.net/Microsoft-Server-ActiveSync", false},
	    {"https://evil.net\\@mail.example.org/Microsoft-Server-ActiveSync", false},
	    {"https://eas.example.net:8443", true},
	    {"https://eas.example.net:8443/", true},
	    {"https://eas.example.net/", false},
	    {"https://a.corp.example.org/eas", true},
	    {"https://a.b.CORP.example.org:444/", true},
	    {"https://corp.example.org/", false},
	    {"https://xcorp.example.org/", false},
	    {"https://corp.example.org.evil.net/", false},
	    {"https://sogo.example.com/SOGo/Microsoft-Server-ActiveSync", true},
	    {"https://sogo.example.com:9443/", true},
	    {"https://x.sogo.example.com/", false},
	    {"https://[2001:db8::5]/", true},
	    {"https://[2001:DB8::5]:8443/x", true},
	    {"http://sogo.example.com/", false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!CHECK(relay_config_mailserver_allowed(c, cases[i].url) == cases[i].ok))
			fprintf(stderr, "    url: %s\n", cases[i].url);
	}
	relay_config_free(&c);

	ERR("[mailserver]\nallow = http://mail.example.org/\n", HK_ERR_INVAL,
	    "t.conf:2: mailserver.allow: ", "'http://mail.example.org/' is not an https://");
	ERR("[mailserver]\nallow = mail.example.org *\n", HK_ERR_INVAL,
	    "t.conf:2: mailserver.allow: ", "'*' is not");
	ERR("[mailserver]\nallow = mail.*.org\n", HK_ERR_INVAL,
	    "t.conf:2: mailserver.allow: ", "is not");
	ERR("[mailserver]\nallow = *.\n", HK_ERR_INVAL, "t.conf:2: mailserver.allow: ", "is not");
	ERR("[mailserver]\nallow = https://u:p@mail.example.org/\n", HK_ERR_INVAL,
	    "t.conf:2: mailserver.allow: ", "is not");
	ERR("[mailserver]\nallow = https://mail.example.org/?a\n", HK_ERR_INVAL,
	    "t.conf:2: mailserver.allow: ", "is not");
	ERR("[mailserver]\nallow = mail.example.org:443\n", HK_ERR_INVAL,
	    "t.conf:2: mailserver.allow: ", "is not");
	ERR("[mailserver]\ndefault_url = http://mail.example.org/\n", HK_ERR_INVAL,
	    "t.conf:2: mailserver.default_url: ", "must be an https://");
	ERR("[mailserver]\ndefault_url = mail.example.org\n", HK_ERR_INVAL,
	    "t.conf:2: mailserver.default_url: ", "must be an https://");

	/* at most RELAY_CONFIG_ALLOW_MAX entries */
	char text[RELAY_CONFIG_LINE_MAX];
	size_t n = (size_t)snprintf(text, sizeof(text), "[mailserver]\nallow =");
	for (int i = 0; i < RELAY_CONFIG_ALLOW_MAX; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, " h%d.example.org", i);
	snprintf(text + n, sizeof(text) - n, "\n");
	c = PARSE(text);
	CHECK(c != NULL && c->mail_allow_count == RELAY_CONFIG_ALLOW_MAX);
	relay_config_free(&c);
	snprintf(text + n, sizeof(text) - n, " one-more.example.org\n");
	ERR(text, HK_ERR_INVAL, "t.conf:2: mailserver.allow: ", "more than 64 entries");
}

/* ---- smaller edges ------------------------------------------------------------ */

static void test_edges(void)
{
	ERR("[limits]\nmax_body_size = k\n", HK_ERR_INVAL,
	    "t.conf:2: limits.max_body_size: ", "optionally with k, m or g");
	ERR("[limits]\nmax_body_size = -1\n", HK_ERR_INVAL,
	    "t.conf:2: limits.max_body_size: ", "optionally with k, m or g");
	/* errors quote at most 64 bytes of a value */
	char text[256];
	char yes[101];
	memset(yes, 'y', 100);
	yes[100] = '\0';
	snprintf(text, sizeof(text), "[listen]\ntls = %s\n", yes);
	char want[128];
	snprintf(want, sizeof(want), "got '%.64s...'", yes);
	ERR(text, HK_ERR_INVAL, "t.conf:2: listen.tls: ", want);
	/* sizes that are no whole KiB are written in bytes */
	struct relay_config *c = PARSE("[limits]\nmax_body_size = 1500\n");
	REQUIRE(c != NULL);
	char *out = dump(c);
	CHECK(strstr(out, "\nmax_body_size = 1500\n") != NULL);
	free(out);
	ROUND_TRIP(c);
	relay_config_free(&c);
	/* more URLs the matcher refuses */
	c = PARSE("");
	REQUIRE(c != NULL);
	CHECK(!relay_config_mailserver_allowed(c, "https://h:8a/"));
	CHECK(!relay_config_mailserver_allowed(c, "https://h:123456/"));
	CHECK(!relay_config_mailserver_allowed(
	    c, "https://[1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb]/"));
	CHECK(!relay_config_mailserver_allowed(c, "https://[::1]:/"));
	CHECK(!relay_config_mailserver_allowed(c, "https://h/\"x"));
	CHECK(!relay_config_mailserver_allowed(c, "https://h/\xc3\xa9"));
	CHECK(relay_config_mailserver_allowed(c, "https://h:0443/"));
	relay_config_free(&c);
	/* a URI parameter that is not a password, with a bad escape */
	c = PARSE("[store]\ndriver = pgsql\nconninfo = postgresql://db/x?%zz=1&%7=2\n");
	relay_config_free(&c);
	/* allow-list entries: a bad domain, a URL too long */
	ERR("[mailserver]\nallow = *.-bad.org\n", HK_ERR_INVAL,
	    "t.conf:2: mailserver.allow: ", "'*.-bad.org' is not");
	char *big = malloc(RELAY_CONFIG_LINE_MAX);
	REQUIRE(big != NULL);
	size_t n = (size_t)snprintf(big, RELAY_CONFIG_LINE_MAX, "[mailserver]\nallow = https://h/");
	memset(big + n, 'a', RELAY_CONFIG_URL_MAX);
	big[n + RELAY_CONFIG_URL_MAX] = '\0';
	ERR(big, HK_ERR_INVAL, "t.conf:2: mailserver.allow: ", "is not an https://");
	free(big);
	/* the name defaults; a length without a buffer */
	const char *err = NULL;
	CHECK_INT(relay_config_parse("[x]\n", 4, NULL, &c, &err), HK_ERR_INVAL);
	CHECK(err != NULL && strncmp(err, "(config):1: ", 12) == 0);
	CHECK_INT(relay_config_parse(NULL, 5, "t.conf", &c, &err), HK_ERR_INVAL);
	CHECK(c == NULL);
}

/* ---- the reference page and the example file --------------------------------- */

/* Every key name, read from the dump of the defaults ("name = " and
 * "# name: not used" lines), as "section.key" in keys_r. */
static size_t all_keys(char keys_r[][64], size_t max)
{
	struct relay_config *c = NULL;
	const char *err = NULL;
	if (relay_config_parse("[listen]\ntls = no\n", 18, "t", &c, &err) < 0)
		abort();
	char *text = dump(c);
	relay_config_free(&c);
	size_t n = 0;
	char section[24] = "";
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char name[32];
		size_t len;
		if (line[0] == '[') {
			len = strcspn(line + 1, "]");
			snprintf(section, sizeof(section), "%.*s", (int)len, line + 1);
			continue;
		}
		const char *p = line;
		if (strncmp(p, "# ", 2) == 0 && strstr(p, ": not used") != NULL)
			p += 2;
		else if (p[0] == '#')
			continue;
		len = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_");
		if (len == 0 || len >= sizeof(name) || n == max)
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)len, p);
		snprintf(keys_r[n++], 64, "%s.%s", section, name);
	}
	free(text);
	return n;
}

static void test_docs_cover_every_key(void)
{
	char keys[64][64];
	size_t n = all_keys(keys, 64);
	CHECK(n >= 30);
	char *doc = read_file(HK_SOURCE_DIR "/docs/halfkeyd.conf.md", NULL);
	char *example = read_file(HK_SOURCE_DIR "/packaging/halfkeyd.conf.example", NULL);
	REQUIRE(doc != NULL && example != NULL);
	for (size_t i = 0; i < n; i++) {
		char want[80];
		/* the reference page has a heading per key: ### `section.key` */
		snprintf(want, sizeof(want), "### `%s`", keys[i]);
		if (!CHECK(strstr(doc, want) != NULL))
			fprintf(stderr, "    not documented: %s\n", keys[i]);
		/* the example shows each key, commented out: "#key =" for its
		 * default, "# key =" for an example value */
		char want2[80];
		snprintf(want, sizeof(want), "\n#%s =", strchr(keys[i], '.') + 1);
		snprintf(want2, sizeof(want2), "\n# %s =", strchr(keys[i], '.') + 1);
		if (!CHECK(strstr(example, want) != NULL || strstr(example, want2) != NULL))
			fprintf(stderr, "    not in the example: %s\n", keys[i]);
	}
	free(doc);
	free(example);
}

/* The example file parses, and with every "#key = value" line uncommented
 * (those show defaults) it still gives exactly the defaults. */
static void test_example_file(void)
{
	struct relay_config *c = NULL, *d = NULL;
	const char *err = NULL;
	const char *path = HK_SOURCE_DIR "/packaging/halfkeyd.conf.example";
	if (!CHECK_INT(relay_config_load(path, &c, &err), 0))
		fprintf(stderr, "    %s\n", err);
	REQUIRE(c != NULL);
	REQUIRE(relay_config_defaults(&d, &err) == 0);
	CHECK(relay_config_equal(c, d));
	relay_config_free(&c);

	size_t len;
	char *text = read_file(path, &len);
	REQUIRE(text != NULL);
	size_t uncommented = 0;
	for (size_t i = 0; i + 1 < len; i++) {
		if (text[i] == '#' && (i == 0 || text[i - 1] == '\n') && text[i + 1] >= 'a' &&
		    text[i + 1] <= 'z') {
			text[i] = ' ';
			uncommented++;
		}
	}
	CHECK(uncommented >= 25);
	int ret = relay_config_parse(text, len, "example, uncommented", &c, &err);
	if (!CHECK_INT(ret, 0))
		fprintf(stderr, "    %s\n", err);
	if (c != NULL) {
		if (!CHECK(relay_config_equal(c, d))) {
			char *a = dump(c);
			fprintf(stderr, "%s", a);
			free(a);
		}
	}
	relay_config_free(&c);
	relay_config_free(&d);
	free(text);
}

/* The reference page's examples (its ``` blocks that begin with a
 * [section]) are valid configurations. */
static void test_doc_examples_parse(void)
{
	char *doc = read_file(HK_SOURCE_DIR "/docs/halfkeyd.conf.md", NULL);
	REQUIRE(doc != NULL);
	size_t examples = 0;
	for (char *p = strstr(doc, "```\n"); p != NULL; p = strstr(p, "```\n")) {
		char *body = p + 4;
		char *end = strstr(body, "```\n");
		if (end == NULL)
			break;
		if (body[0] == '[') {
			struct relay_config *c = NULL;
			const char *err = NULL;
			int ret = relay_config_parse(body, (size_t)(end - body), "doc", &c, &err);
			if (!CHECK_INT(ret, 0))
				fprintf(stderr, "    %s\n", err);
			relay_config_free(&c);
			examples++;
		}
		p = end + 4;
	}
	CHECK(examples >= 3);
	free(doc);
}

TESTS(TEST(test_defaults), TEST(test_bad_host_name), TEST(test_empty_and_comments_give_defaults),
      TEST(test_every_key), TEST(test_tls_off_and_pgsql), TEST(test_derived_paths),
      TEST(test_values_and_quoting), TEST(test_log_levels_match_lib), TEST(test_syntax_errors),
      TEST(test_value_errors), TEST(test_path_errors), TEST(test_cross_key_errors),
      TEST(test_conninfo_secrets_refused), TEST(test_line_and_size_bounds), TEST(test_load_files),
      TEST(test_dump_round_trip), TEST(test_equal), TEST(test_mailserver_allowed), TEST(test_edges),
      TEST(test_docs_cover_every_key), TEST(test_doc_examples_parse), TEST(test_example_file));
