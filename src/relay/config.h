/* halfkeyd's configuration file: format, parser, checks and dump.
 *
 * The file (halfkeyd.conf(5), docs/halfkeyd.conf.md) is line-based:
 *
 *   # comment
 *   [section]
 *   key = value            # optional trailing comment
 *   key = "quoted \"value\" with \\ escapes"
 *
 * Every key lives in one section; unknown sections and keys, a key given
 * twice and a section opened twice are errors, so a typo never falls back
 * to a default silently. Values are typed (durations with a unit, sizes,
 * ports, yes/no, absolute paths, numeric addresses, https URLs) and range
 * checked; settings that contradict each other are errors.
 *
 * Config parsing is apart from runtime: this module reads text into a plain
 * struct and checks it. It opens no socket, resolves no name and touches no
 * file but the one it is asked to read; whether the files the config names
 * exist is for the daemon to find out when it opens them.
 *
 * The file holds no secrets: the master keys live in relay.master_key_file,
 * the TLS private key in the file tls.key names, and store.conninfo is
 * refused when it carries a password (use passfile= or ~/.pgpass). So
 * errors may quote values (conninfo excepted) and relay_config_dump() may
 * print everything.
 *
 * Errors: functions return 0 or a negative HK_ERR_* code and set *error_r
 * to "<file>:<line>: <section>.<key>: <what is wrong>" (line and key left
 * out where there is none). The text lives in a thread-local buffer, valid
 * until the next relay_config_* call in the same thread. */
#ifndef HK_RELAY_CONFIG_H
#define HK_RELAY_CONFIG_H

#include "lib/error.h"
#include "lib/log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Read when halfkeyd is started without a path; may be absent. */
#define RELAY_CONFIG_DEFAULT_PATH "/etc/halfkey/halfkeyd.conf"

#define RELAY_CONFIG_FILE_MAX  (1024 * 1024) /* bytes in the file */
#define RELAY_CONFIG_LINE_MAX  4096          /* bytes in a line, without its newline */
#define RELAY_CONFIG_PATH_MAX  1024          /* bytes in a path value */
#define RELAY_CONFIG_ALLOW_MAX 64            /* entries in mailserver.allow */
#define RELAY_CONFIG_URL_MAX   2048          /* bytes in a mail server URL */
#define RELAY_CONFIG_ERROR_MAX 512           /* bytes of error text, with the NUL */

enum relay_store_driver { RELAY_STORE_SQLITE, RELAY_STORE_PGSQL };

enum relay_tls_version { RELAY_TLS_1_2, RELAY_TLS_1_3 };

/* One entry of mailserver.allow. */
enum relay_allow_kind {
	RELAY_ALLOW_URL,    /* https://host[:port][/path]: that URL only */
	RELAY_ALLOW_HOST,   /* host: any https URL on that host, any port */
	RELAY_ALLOW_DOMAIN, /* *.domain: any https URL on a host below domain */
};

struct relay_allow {
	enum relay_allow_kind kind;
	char *host;    /* lower case; for DOMAIN the part after "*." */
	uint16_t port; /* URL only (443 when the URL names none) */
	char *path;    /* URL only; "/" when the URL names none */
};

/* The effective configuration. Plain data: read it, do not write it. Every
 * string is NUL-terminated, free of control characters and owned by the
 * struct; NULL means "not set" where the comment says so. */
struct relay_config {
	/* [relay] */
	char *node_name;       /* lease owner name; default: the host name */
	char *data_dir;        /* absolute, no trailing slash */
	char *master_key_file; /* default <data_dir>/master.keys */
	char *control_socket;  /* absolute; fits in sockaddr_un */
	char *user;            /* "" = do not switch user */
	char *group;           /* "" = do not switch group */

	/* [listen] */
	char *listen_address; /* numeric IPv4 or IPv6, as inet_ntop writes it */
	uint16_t listen_port;
	bool tls; /* false only on a loopback address */

	/* [tls]: certificate and key are NULL when tls is false */
	char *tls_certificate;
	char *tls_key;
	enum relay_tls_version tls_min_version;

	/* [store] */
	enum relay_store_driver store_driver;
	char *store_path;     /* sqlite only (else NULL); default <data_dir>/halfkey.db */
	char *store_conninfo; /* pgsql only (else NULL); libpq conninfo, no password */

	/* [lifecycle] */
	int64_t flush_after_ms;
	int64_t purge_every_ms;

	/* [limits] */
	size_t max_body_size;
	size_t max_header_size;
	uint32_t max_connections;
	uint32_t device_requests_per_minute;
	uint32_t register_per_ip_per_minute;
	int64_t request_timeout_ms;
	int64_t idle_timeout_ms;

	/* [mailserver] */
	char *mail_ca_file;                  /* NULL: the system trust store */
	char *mail_allow;                    /* the list as written; NULL: any https URL */
	struct relay_allow *mail_allow_list; /* mail_allow parsed */
	size_t mail_allow_count;
	char *mail_default_url; /* NULL: registrations must name a server */
	int64_t mail_connect_timeout_ms;
	uint32_t mail_max_syncing_accounts;
	int64_t mail_ping_heartbeat_ms; /* whole seconds, 60 s .. 3540 s */
	bool mail_http2; /* HTTP/2 to mail servers that offer it */

	/* [log] */
	enum hk_log_target log_target;
	enum hk_log_level log_level;
};

/* Reads and checks the file at path. path NULL means
 * RELAY_CONFIG_DEFAULT_PATH, which may be absent (then *cfg_r holds the
 * defaults); a path given explicitly must exist. The file must be a regular
 * file of at most RELAY_CONFIG_FILE_MAX bytes that others cannot write. */
int relay_config_load(const char *path, struct relay_config **cfg_r,
                      const char **error_r) HK_WARN_UNUSED;

/* Parses and checks len bytes of configuration text; name is used in error
 * messages (the file name). An empty buffer gives the defaults. */
int relay_config_parse(const char *buf, size_t len, const char *name, struct relay_config **cfg_r,
                       const char **error_r) HK_WARN_UNUSED;

/* The defaults, as an empty file gives them. Fails only when the host name
 * cannot serve as the default node_name. */
int relay_config_defaults(struct relay_config **cfg_r, const char **error_r) HK_WARN_UNUSED;

/* Writes the effective configuration as a file that relay_config_parse()
 * reads back to an equal config: every key, derived defaults spelled out,
 * keys that do not apply as comments (for `halfkeyd --check-config`). */
int relay_config_dump(const struct relay_config *cfg, FILE *out) HK_WARN_UNUSED;

/* True when every setting of a equals b's. */
bool relay_config_equal(const struct relay_config *a, const struct relay_config *b);

/* Whether a registration may use the mail server at url (untrusted input):
 * url must be an https URL without user info, query or fragment, of at most
 * RELAY_CONFIG_URL_MAX bytes, and match mailserver.allow when that is set.
 * Host names compare without regard to case or one trailing dot. */
bool relay_config_mailserver_allowed(const struct relay_config *cfg, const char *url);

void relay_config_free(struct relay_config **cfg);

#endif
