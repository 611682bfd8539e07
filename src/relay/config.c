#include "relay/config.h"

#include "lib/clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MS_MINUTE        (60 * HK_MS_PER_SECOND)
#define MS_HOUR          (60 * MS_MINUTE)
#define MS_DAY           HK_MS_PER_DAY
#define KIB              ((int64_t)1024)
#define MIB              (1024 * KIB)
#define ECHO_MAX         64  /* bytes of a value quoted in an error */
#define NODE_NAME_MAX    253 /* a DNS name */
#define ACCOUNT_NAME_MAX 32  /* user and group names */
#define SOCKET_PATH_MAX  (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

/* ---- the keys ------------------------------------------------------------ */

enum section {
	SEC_RELAY,
	SEC_LISTEN,
	SEC_TLS,
	SEC_STORE,
	SEC_LIFECYCLE,
	SEC_LIMITS,
	SEC_MAILSERVER,
	SEC_LOG,
	SEC_COUNT
};

static const char *const section_names[SEC_COUNT] = {
    [SEC_RELAY] = "relay",
    [SEC_LISTEN] = "listen",
    [SEC_TLS] = "tls",
    [SEC_STORE] = "store",
    [SEC_LIFECYCLE] = "lifecycle",
    [SEC_LIMITS] = "limits",
    [SEC_MAILSERVER] = "mailserver",
    [SEC_LOG] = "log",
};

/* One id per key, in file (and dump) order; sections stay together. */
enum key_id {
	KEY_NODE_NAME,
	KEY_DATA_DIR,
	KEY_MASTER_KEY_FILE,
	KEY_CONTROL_SOCKET,
	KEY_USER,
	KEY_GROUP,
	KEY_LISTEN_ADDRESS,
	KEY_LISTEN_PORT,
	KEY_LISTEN_TLS,
	KEY_TLS_CERTIFICATE,
	KEY_TLS_KEY,
	KEY_TLS_MIN_VERSION,
	KEY_STORE_DRIVER,
	KEY_STORE_PATH,
	KEY_STORE_CONNINFO,
	KEY_FLUSH_AFTER,
	KEY_PURGE_EVERY,
	KEY_MAX_BODY_SIZE,
	KEY_MAX_HEADER_SIZE,
	KEY_MAX_CONNECTIONS,
	KEY_DEVICE_REQUESTS,
	KEY_REGISTER_PER_IP,
	KEY_REQUEST_TIMEOUT,
	KEY_IDLE_TIMEOUT,
	KEY_MAIL_CA_FILE,
	KEY_MAIL_ALLOW,
	KEY_MAIL_DEFAULT_URL,
	KEY_MAIL_CONNECT_TIMEOUT,
	KEY_MAIL_MAX_SYNCING,
	KEY_MAIL_PING_HEARTBEAT,
	KEY_MAIL_HTTP2,
	KEY_LOG_TARGET,
	KEY_LOG_LEVEL,
	KEY_COUNT
};

enum kind {
	K_STRING,   /* char *, checked by the key's check function */
	K_PATH,     /* char *, absolute */
	K_DURATION, /* int64_t milliseconds; the value needs a unit */
	K_SIZE,     /* size_t bytes; optional k, m, g suffix (binary) */
	K_UINT,     /* uint32_t */
	K_PORT,     /* uint16_t, 1..65535 */
	K_BOOL,     /* bool, yes or no */
	K_ENUM,     /* an enum, stored as int; one of names[] */
};

#define F_OPTIONAL  0x01 /* an empty value means "not set" (NULL) */
#define F_WHOLE_SEC 0x02 /* durations: whole seconds only */
#define F_DIR       0x04 /* paths: a directory (trailing slashes dropped) */
#define F_IF_TLS    0x08 /* only with listen.tls = yes */
#define F_IF_SQLITE 0x10 /* only with store.driver = sqlite */
#define F_IF_PGSQL  0x20 /* only with store.driver = pgsql */

struct relay_config_key {
	enum section section;
	const char *name; /* "section.key" */
	enum kind kind;
	unsigned flags;
	size_t offset;
	/* numbers: the bounds; strings and paths: the maximum length (0: the
	 * path maximum) in max */
	int64_t min, max;
	const char *const *names; /* K_ENUM: the value names, index = value */
	size_t name_count;
	/* K_STRING: checks (and may rewrite) *value; on failure writes why */
	int (*check)(struct relay_config *cfg, char **value, char *why, size_t why_len);
	const char *def;   /* the default, as it would be written; NULL: none or derived */
	const char *unset; /* F_OPTIONAL: what not setting it means (dump comment) */
};

static int check_node_name(struct relay_config *cfg, char **value, char *why, size_t why_len);
static int check_account(struct relay_config *cfg, char **value, char *why, size_t why_len);
static int check_address(struct relay_config *cfg, char **value, char *why, size_t why_len);
static int check_conninfo(struct relay_config *cfg, char **value, char *why, size_t why_len);
static int check_allow(struct relay_config *cfg, char **value, char *why, size_t why_len);
static int check_url(struct relay_config *cfg, char **value, char *why, size_t why_len);

static const char *const tls_version_names[] = {[RELAY_TLS_1_2] = "1.2", [RELAY_TLS_1_3] = "1.3"};
static const char *const driver_names[] = {
    [RELAY_STORE_SQLITE] = "sqlite", [RELAY_STORE_PGSQL] = "pgsql"};
static const char *const log_target_names[] = {
    [HK_LOG_STDERR] = "stderr", [HK_LOG_SYSLOG] = "syslog"};
/* The names lib/log.c's hk_log_level_parse() takes (a test holds them equal). */
static const char *const log_level_names[] = {[HK_LOG_DEBUG] = "debug",
                                              [HK_LOG_INFO] = "info",
                                              [HK_LOG_NOTICE] = "notice",
                                              [HK_LOG_WARNING] = "warning",
                                              [HK_LOG_ERR] = "err"};

#define KEY(sec, key_name, key_kind, key_flags, field, ...)                                        \
	{                                                                                          \
		.section = (sec), .name = (key_name), .kind = (key_kind), .flags = (key_flags),    \
		.offset = offsetof(struct relay_config, field), __VA_ARGS__                        \
	}
#define NAMES(a) .names = (a), .name_count = sizeof(a) / sizeof((a)[0])

static const struct relay_config_key keys[KEY_COUNT] = {
    [KEY_NODE_NAME] = KEY(SEC_RELAY, "relay.node_name", K_STRING, 0, node_name,
                          .max = NODE_NAME_MAX, .check = check_node_name),
    [KEY_DATA_DIR] =
        KEY(SEC_RELAY, "relay.data_dir", K_PATH, F_DIR, data_dir, .def = "/var/lib/halfkey"),
    [KEY_MASTER_KEY_FILE] = KEY(SEC_RELAY, "relay.master_key_file", K_PATH, 0, master_key_file,
                                .def = NULL /* <data_dir>/master.keys */),
    [KEY_CONTROL_SOCKET] = KEY(SEC_RELAY, "relay.control_socket", K_PATH, 0, control_socket,
                               .max = SOCKET_PATH_MAX, .def = "/run/halfkey/control.sock"),
    [KEY_USER] = KEY(SEC_RELAY, "relay.user", K_STRING, 0, user, .max = ACCOUNT_NAME_MAX,
                     .check = check_account, .def = "halfkey"),
    [KEY_GROUP] = KEY(SEC_RELAY, "relay.group", K_STRING, 0, group, .max = ACCOUNT_NAME_MAX,
                      .check = check_account, .def = "halfkey"),

    [KEY_LISTEN_ADDRESS] = KEY(SEC_LISTEN, "listen.address", K_STRING, 0, listen_address,
                               .max = INET6_ADDRSTRLEN, .check = check_address, .def = "127.0.0.1"),
    [KEY_LISTEN_PORT] = KEY(SEC_LISTEN, "listen.port", K_PORT, 0, listen_port, .min = 1,
                            .max = 65535, .def = "8443"),
    [KEY_LISTEN_TLS] = KEY(SEC_LISTEN, "listen.tls", K_BOOL, 0, tls, .def = "yes"),

    [KEY_TLS_CERTIFICATE] = KEY(SEC_TLS, "tls.certificate", K_PATH, F_IF_TLS, tls_certificate,
                                .def = "/etc/halfkey/tls/cert.pem"),
    [KEY_TLS_KEY] =
        KEY(SEC_TLS, "tls.key", K_PATH, F_IF_TLS, tls_key, .def = "/etc/halfkey/tls/key.pem"),
    [KEY_TLS_MIN_VERSION] = KEY(SEC_TLS, "tls.min_version", K_ENUM, F_IF_TLS, tls_min_version,
                                NAMES(tls_version_names), .def = "1.2"),

    [KEY_STORE_DRIVER] = KEY(SEC_STORE, "store.driver", K_ENUM, 0, store_driver,
                             NAMES(driver_names), .def = "sqlite"),
    [KEY_STORE_PATH] = KEY(SEC_STORE, "store.path", K_PATH, F_IF_SQLITE, store_path,
                           .def = NULL /* <data_dir>/halfkey.db */),
    [KEY_STORE_CONNINFO] = KEY(SEC_STORE, "store.conninfo", K_STRING, F_IF_PGSQL, store_conninfo,
                               .max = RELAY_CONFIG_LINE_MAX, .check = check_conninfo),

    [KEY_FLUSH_AFTER] = KEY(SEC_LIFECYCLE, "lifecycle.flush_after", K_DURATION, 0, flush_after_ms,
                            .min = MS_MINUTE, .max = 365 * MS_DAY, .def = "3d"),
    [KEY_PURGE_EVERY] = KEY(SEC_LIFECYCLE, "lifecycle.purge_every", K_DURATION, 0, purge_every_ms,
                            .min = MS_MINUTE, .max = 365 * MS_DAY, .def = "7d"),

    [KEY_MAX_BODY_SIZE] = KEY(SEC_LIMITS, "limits.max_body_size", K_SIZE, 0, max_body_size,
                              .min = KIB, .max = 64 * MIB, .def = "64k"),
    [KEY_MAX_HEADER_SIZE] = KEY(SEC_LIMITS, "limits.max_header_size", K_SIZE, 0, max_header_size,
                                .min = KIB, .max = MIB, .def = "8k"),
    [KEY_MAX_CONNECTIONS] = KEY(SEC_LIMITS, "limits.max_connections", K_UINT, 0, max_connections,
                                .min = 1, .max = 1048576, .def = "1024"),
    [KEY_DEVICE_REQUESTS] = KEY(SEC_LIMITS, "limits.device_requests_per_minute", K_UINT, 0,
                                device_requests_per_minute, .min = 1, .max = 1000000, .def = "60"),
    [KEY_REGISTER_PER_IP] = KEY(SEC_LIMITS, "limits.register_per_ip_per_minute", K_UINT, 0,
                                register_per_ip_per_minute, .min = 1, .max = 100000, .def = "10"),
    [KEY_REQUEST_TIMEOUT] =
        KEY(SEC_LIMITS, "limits.request_timeout", K_DURATION, 0, request_timeout_ms,
            .min = HK_MS_PER_SECOND, .max = MS_HOUR, .def = "30s"),
    [KEY_IDLE_TIMEOUT] = KEY(SEC_LIMITS, "limits.idle_timeout", K_DURATION, 0, idle_timeout_ms,
                             .min = HK_MS_PER_SECOND, .max = MS_HOUR, .def = "60s"),

    [KEY_MAIL_CA_FILE] = KEY(SEC_MAILSERVER, "mailserver.ca_file", K_PATH, F_OPTIONAL, mail_ca_file,
                             .unset = "the system trust store"),
    [KEY_MAIL_ALLOW] = KEY(SEC_MAILSERVER, "mailserver.allow", K_STRING, F_OPTIONAL, mail_allow,
                           .max = RELAY_CONFIG_LINE_MAX, .check = check_allow,
                           .unset = "any https URL: an open relay"),
    [KEY_MAIL_DEFAULT_URL] = KEY(SEC_MAILSERVER, "mailserver.default_url", K_STRING, F_OPTIONAL,
                                 mail_default_url, .max = RELAY_CONFIG_URL_MAX, .check = check_url,
                                 .unset = "none: registrations must name their server"),
    [KEY_MAIL_CONNECT_TIMEOUT] =
        KEY(SEC_MAILSERVER, "mailserver.connect_timeout", K_DURATION, 0, mail_connect_timeout_ms,
            .min = HK_MS_PER_SECOND, .max = 5 * MS_MINUTE, .def = "15s"),
    [KEY_MAIL_MAX_SYNCING] =
        KEY(SEC_MAILSERVER, "mailserver.max_syncing_accounts", K_UINT, 0, mail_max_syncing_accounts,
            .min = 1, .max = 1000000, .def = "1000"),
    [KEY_MAIL_PING_HEARTBEAT] =
        KEY(SEC_MAILSERVER, "mailserver.ping_heartbeat", K_DURATION, F_WHOLE_SEC,
            mail_ping_heartbeat_ms, .min = 60 * HK_MS_PER_SECOND, .max = 3540 * HK_MS_PER_SECOND,
            .def = "900s"),
    [KEY_MAIL_HTTP2] = KEY(SEC_MAILSERVER, "mailserver.http2", K_BOOL, 0, mail_http2, .def = "yes"),

    [KEY_LOG_TARGET] =
        KEY(SEC_LOG, "log.target", K_ENUM, 0, log_target, NAMES(log_target_names), .def = "stderr"),
    [KEY_LOG_LEVEL] =
        KEY(SEC_LOG, "log.level", K_ENUM, 0, log_level, NAMES(log_level_names), .def = "info"),
};

/* K_ENUM fields are read and written as int. */
_Static_assert(sizeof(enum relay_tls_version) == sizeof(int), "enum size");
_Static_assert(sizeof(enum relay_store_driver) == sizeof(int), "enum size");
_Static_assert(sizeof(enum hk_log_target) == sizeof(int), "enum size");
_Static_assert(sizeof(enum hk_log_level) == sizeof(int), "enum size");

#define FIELD(cfg, k, type)  ((type *)(void *)((char *)(cfg) + (k)->offset))
#define CFIELD(cfg, k, type) ((type const *)(const void *)((const char *)(cfg) + (k)->offset))

/* ---- memory and errors ---------------------------------------------------- */

static _Thread_local char errbuf[RELAY_CONFIG_ERROR_MAX];

static char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (p == NULL)
		abort();
	return p;
}

static char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (p == NULL)
		abort();
	return p;
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);
	if (p == NULL)
		abort();
	return p;
}

struct parse_state {
	const char *name; /* for messages: the file name */
	unsigned line;    /* the current line, 1-based */
	struct relay_config *cfg;
	unsigned key_line[KEY_COUNT];     /* where each key was set; 0: not set */
	unsigned section_line[SEC_COUNT]; /* where each section was opened */
	int section;                      /* the open section; -1 before the first */
};

/* Formats "<name>:<line>: <key>: <message>" (line 0 and key NULL left out)
 * into errbuf, sets *error_r, returns err. */
static int fail(const char **error_r, const char *name, unsigned line, const char *key, int err,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int fail(const char **error_r, const char *name, unsigned line, const char *key, int err,
                const char *fmt, ...)
{
	char msg[RELAY_CONFIG_ERROR_MAX - 64]; /* leaves room for the file name */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	char where[32] = "";
	if (line > 0)
		snprintf(where, sizeof(where), ":%u", line);
	snprintf(errbuf, sizeof(errbuf), "%s%s: %s%s%s", name, where, key != NULL ? key : "",
	         key != NULL ? ": " : "", msg);
	if (error_r != NULL)
		*error_r = errbuf;
	return err;
}

/* A value as errors quote it: at most ECHO_MAX bytes. Values never hold
 * control characters (the line check refuses them). */
static const char *echo(const char *v, char *buf, size_t len)
{
	size_t n = strlen(v);
	if (n <= ECHO_MAX)
		snprintf(buf, len, "'%s'", v);
	else
		snprintf(buf, len, "'%.*s...'", ECHO_MAX, v);
	return buf;
}

/* ---- value syntax --------------------------------------------------------- */

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

static const char *skip_space(const char *s)
{
	while (is_space(*s))
		s++;
	return s;
}

static bool is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.';
}

/* A decimal number at s (a digit first: no sign, no space); *end_r after it. */
static int parse_u64(const char *s, uint64_t *v_r, const char **end_r)
{
	if (*s < '0' || *s > '9')
		return HK_ERR_INVAL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return HK_ERR_TOO_LONG;
	*v_r = v;
	*end_r = end;
	return 0;
}

static const struct {
	const char *unit;
	int64_t ms;
} duration_units[] = {
    {"d", MS_DAY}, {"h", MS_HOUR}, {"m", MS_MINUTE}, {"s", HK_MS_PER_SECOND}, {"ms", 1},
};

/* "<number><unit>", unit one of ms s m h d. */
static int parse_duration(const char *s, int64_t *ms_r)
{
	uint64_t n;
	const char *unit;
	int ret = parse_u64(s, &n, &unit);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++) {
		if (strcmp(unit, duration_units[i].unit) != 0)
			continue;
		if (n > (uint64_t)(INT64_MAX / duration_units[i].ms))
			return HK_ERR_TOO_LONG;
		*ms_r = (int64_t)n * duration_units[i].ms;
		return 0;
	}
	return HK_ERR_INVAL;
}

/* The largest unit that divides ms exactly: "3d", "90s", "1500ms". */
static const char *format_duration(int64_t ms, char *buf, size_t len)
{
	for (size_t i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++) {
		if (ms % duration_units[i].ms == 0) {
			snprintf(buf, len, "%" PRId64 "%s", ms / duration_units[i].ms,
			         duration_units[i].unit);
			break;
		}
	}
	return buf;
}

static const struct {
	char unit;
	uint64_t bytes;
} size_units[] = {
    {'g', 1024 * 1024 * 1024},
    {'m', 1024 * 1024},
    {'k', 1024},
};

/* "<number>[k|m|g]" (either case), binary multiples. */
static int parse_size(const char *s, uint64_t *bytes_r)
{
	uint64_t n;
	const char *unit;
	int ret = parse_u64(s, &n, &unit);
	if (ret < 0)
		return ret;
	if (*unit == '\0') {
		*bytes_r = n;
		return 0;
	}
	if (unit[1] != '\0')
		return HK_ERR_INVAL;
	for (size_t i = 0; i < sizeof(size_units) / sizeof(size_units[0]); i++) {
		if ((*unit | 0x20) != size_units[i].unit)
			continue;
		if (n > UINT64_MAX / size_units[i].bytes)
			return HK_ERR_TOO_LONG;
		*bytes_r = n * size_units[i].bytes;
		return 0;
	}
	return HK_ERR_INVAL;
}

static const char *format_size(uint64_t bytes, char *buf, size_t len)
{
	for (size_t i = 0; i < sizeof(size_units) / sizeof(size_units[0]); i++) {
		if (bytes != 0 && bytes % size_units[i].bytes == 0) {
			snprintf(buf, len, "%" PRIu64 "%c", bytes / size_units[i].bytes,
			         size_units[i].unit);
			return buf;
		}
	}
	snprintf(buf, len, "%" PRIu64, bytes);
	return buf;
}

/* ---- host names and URLs -------------------------------------------------- */

static bool is_host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

/* A DNS name (letters, digits, '-', '_'; labels 1..63, no '-' at either
 * end; at most 253 bytes) or an IPv4 address written as one. */
static bool valid_dns_name(const char *h, size_t n)
{
	if (n == 0 || n > NODE_NAME_MAX)
		return false;
	size_t label = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || h[i] == '.') {
			if (label == 0 || label > 63 || h[i - label] == '-' || h[i - 1] == '-')
				return false;
			label = 0;
		} else if (is_host_char(h[i])) {
			label++;
		} else {
			return false;
		}
	}
	return true;
}

/* A DNS name or a bracketed IPv6 address ("[::1]"). */
static bool valid_host(const char *h, size_t n)
{
	if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
		char a[INET6_ADDRSTRLEN];
		struct in6_addr in6;
		if (n - 2 >= sizeof(a))
			return false;
		memcpy(a, h + 1, n - 2);
		a[n - 2] = '\0';
		return inet_pton(AF_INET6, a, &in6) == 1;
	}
	return valid_dns_name(h, n);
}

struct url_parts {
	const char *host; /* not NUL-terminated; without one trailing dot */
	size_t host_len;
	uint16_t port;    /* 443 when the URL names none */
	const char *path; /* to the end of the URL; "" when none */
};

/* Splits an https URL: "https://" host [":" port] [path]. Refuses user
 * info, a query or fragment, and bytes that have no place unencoded in a
 * URL, so that what we match is what a client would connect to. */
static int url_split(const char *url, struct url_parts *u)
{
	size_t len = strnlen(url, RELAY_CONFIG_URL_MAX + 1);
	if (len > RELAY_CONFIG_URL_MAX || strncasecmp(url, "https://", 8) != 0)
		return HK_ERR_INVAL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)url[i];
		if (c <= ' ' || c >= 0x7f || c == '\\' || c == '?' || c == '#' || c == '"')
			return HK_ERR_INVAL;
	}
	const char *a = url + 8;
	const char *a_end = a + strcspn(a, "/");
	if (memchr(a, '@', (size_t)(a_end - a)) != NULL)
		return HK_ERR_INVAL;
	const char *h_end;
	if (*a == '[') {
		const char *rb = memchr(a, ']', (size_t)(a_end - a));
		if (rb == NULL)
			return HK_ERR_INVAL;
		h_end = rb + 1;
	} else {
		h_end = memchr(a, ':', (size_t)(a_end - a));
		if (h_end == NULL)
			h_end = a_end;
	}
	u->host = a;
	u->host_len = (size_t)(h_end - a);
	if (u->host_len > 1 && *a != '[' && a[u->host_len - 1] == '.')
		u->host_len--;
	if (!valid_host(u->host, u->host_len))
		return HK_ERR_INVAL;
	u->port = 443;
	if (h_end < a_end) {
		if (*h_end != ':' || a_end - h_end < 2 || a_end - h_end > 6)
			return HK_ERR_INVAL;
		unsigned port = 0;
		for (const char *p = h_end + 1; p < a_end; p++) {
			if (*p < '0' || *p > '9')
				return HK_ERR_INVAL;
			port = port * 10 + (unsigned)(*p - '0');
		}
		if (port == 0 || port > 65535)
			return HK_ERR_INVAL;
		u->port = (uint16_t)port;
	}
	u->path = a_end;
	return 0;
}

static bool host_equal(const char *a, size_t a_len, const char *b)
{
	return a_len == strlen(b) && strncasecmp(a, b, a_len) == 0;
}

static char *lower_dup(const char *s, size_t n)
{
	char *d = xstrndup(s, n);
	for (char *p = d; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + ('a' - 'A'));
	return d;
}

static void allow_list_free(struct relay_allow **list, size_t *count)
{
	for (size_t i = 0; i < *count; i++) {
		free((*list)[i].host);
		free((*list)[i].path);
	}
	free(*list);
	*list = NULL;
	*count = 0;
}

/* ---- key checks (K_STRING) ------------------------------------------------ */

static int check_node_name(struct relay_config *cfg, char **value, char *why, size_t why_len)
{
	(void)cfg;
	const char *v = *value;
	size_t n = strlen(v);
	bool ok = n > 0 && n <= NODE_NAME_MAX && v[0] != '-' && v[0] != '.';
	for (size_t i = 0; ok && i < n; i++)
		ok = is_host_char(v[i]) || v[i] == '.';
	if (!ok) {
		char e[ECHO_MAX + 8];
		snprintf(why, why_len,
		         "must be 1 to %d letters, digits, '.', '-' or '_' (not first: '-', '.'), "
		         "got %s",
		         NODE_NAME_MAX, echo(v, e, sizeof(e)));
		return HK_ERR_INVAL;
	}
	return 0;
}

/* A user or group name; "" means "do not switch". */
static int check_account(struct relay_config *cfg, char **value, char *why, size_t why_len)
{
	(void)cfg;
	const char *v = *value;
	bool ok = v[0] != '-';
	for (const char *p = v; ok && *p != '\0'; p++)
		ok = is_host_char(*p) || *p == '.';
	if (!ok) {
		char e[ECHO_MAX + 8];
		snprintf(why, why_len,
		         "must be a user or group name (letters, digits, '.', '-', '_'; not "
		         "first: '-') or empty, got %s",
		         echo(v, e, sizeof(e)));
		return HK_ERR_INVAL;
	}
	return 0;
}

/* A numeric IPv4 or IPv6 address; rewritten as inet_ntop writes it, so
 * that equal addresses compare equal. */
static int check_address(struct relay_config *cfg, char **value, char *why, size_t why_len)
{
	(void)cfg;
	unsigned char addr[sizeof(struct in6_addr)];
	char text[INET6_ADDRSTRLEN];
	int af = strchr(*value, ':') != NULL ? AF_INET6 : AF_INET;
	if (inet_pton(af, *value, addr) != 1 || inet_ntop(af, addr, text, sizeof(text)) == NULL) {
		char e[ECHO_MAX + 8];
		snprintf(why, why_len,
		         "must be a numeric IPv4 or IPv6 address (IPv6 without brackets; no host "
		         "names), got %s",
		         echo(*value, e, sizeof(e)));
		return HK_ERR_INVAL;
	}
	free(*value);
	*value = xstrdup(text);
	return 0;
}

static bool is_loopback(const char *address)
{
	struct in_addr in4;
	struct in6_addr in6;
	if (inet_pton(AF_INET, address, &in4) == 1)
		return (ntohl(in4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, address, &in6) != 1)
		return false;
	if (IN6_IS_ADDR_LOOPBACK(&in6))
		return true;
	return IN6_IS_ADDR_V4MAPPED(&in6) && in6.s6_addr[12] == 127;
}

static bool conninfo_secret_keyword(const char *k, size_t n)
{
	return (n == 8 && memcmp(k, "password", 8) == 0) ||
	       (n == 11 && memcmp(k, "sslpassword", 11) == 0);
}

static bool conninfo_is_uri(const char *s)
{
	return strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
		return (c | 0x20) - 'a' + 10;
	return -1;
}

#define CONNINFO_PASSWORD                                                                          \
	"must not hold a password (this file is not a secret): use passfile=, ~/.pgpass or "       \
	"PGPASSFILE"

/* A URI as libpq reads it: postgresql://[user[:password]@][hosts][/db][?params].
 * Only the password matters here; libpq checks the rest when it connects. */
static int check_conninfo_uri(const char *s, char *why, size_t why_len)
{
	const char *p = s + strcspn(s, "/") + 2; /* after "://" */
	/* libpq takes user info up to an '@' that comes before any '/' */
	const char *q = p + strcspn(p, "@/");
	if (*q == '@' && memchr(p, ':', (size_t)(q - p)) != NULL)
		goto password;
	const char *params = strchr(p, '?');
	while (params != NULL) {
		params++;
		size_t klen = strcspn(params, "=&");
		char key[16];
		size_t n = 0;
		/* libpq percent-decodes parameter names */
		for (size_t i = 0; i < klen && n < sizeof(key); i++, n++) {
			int hi, lo;
			if (params[i] == '%' && i + 2 < klen &&
			    (hi = hex_digit(params[i + 1])) >= 0 &&
			    (lo = hex_digit(params[i + 2])) >= 0) {
				key[n] = (char)(hi << 4 | lo);
				i += 2;
			} else {
				key[n] = params[i];
			}
		}
		if (conninfo_secret_keyword(key, n))
			goto password;
		params = strchr(params, '&');
	}
	return 0;
password:
	snprintf(why, why_len, CONNINFO_PASSWORD);
	return HK_ERR_INVAL;
}

/* keyword = value pairs as libpq reads them: values bare or in single
 * quotes, a backslash escaping the next character in either. A dbname value
 * may itself be a connection string (libpq expands it in some calls), so it
 * is checked too, one level deep. */
static int check_conninfo_text(const char *s, int depth, char *why, size_t why_len)
{
	if (conninfo_is_uri(s))
		return check_conninfo_uri(s, why, why_len);
	const char *p = skip_space(s);
	if (*p == '\0') {
		snprintf(why, why_len,
		         "must not be empty: libpq keyword=value pairs or a "
		         "postgresql:// URI");
		return HK_ERR_INVAL;
	}
	while (*p != '\0') {
		const char *kw = p;
		while (*p != '\0' && !is_space(*p) && *p != '=')
			p++;
		size_t kw_len = (size_t)(p - kw);
		p = skip_space(p);
		if (kw_len == 0 || *p != '=') {
			snprintf(why, why_len,
			         "must be libpq keyword=value pairs or a "
			         "postgresql:// URI");
			return HK_ERR_INVAL;
		}
		p = skip_space(p + 1);
		char value[RELAY_CONFIG_LINE_MAX + 1];
		size_t n = 0;
		bool quoted = *p == '\'';
		if (quoted)
			p++;
		for (;;) {
			if (*p == '\0') {
				if (quoted) {
					snprintf(why, why_len, "unterminated quote in a value");
					return HK_ERR_INVAL;
				}
				break;
			}
			if ((quoted && *p == '\'') || (!quoted && is_space(*p))) {
				p++;
				break;
			}
			if (*p == '\\' && p[1] != '\0')
				p++;
			if (n < sizeof(value) - 1)
				value[n++] = *p;
			p++;
		}
		value[n] = '\0';
		if (conninfo_secret_keyword(kw, kw_len)) {
			snprintf(why, why_len, CONNINFO_PASSWORD);
			return HK_ERR_INVAL;
		}
		if (depth == 0 && kw_len == 6 && memcmp(kw, "dbname", 6) == 0 &&
		    (strchr(value, '=') != NULL || conninfo_is_uri(value))) {
			int ret = check_conninfo_text(value, 1, why, why_len);
			if (ret < 0)
				return ret;
		}
		p = skip_space(p);
	}
	return 0;
}

static int check_conninfo(struct relay_config *cfg, char **value, char *why, size_t why_len)
{
	(void)cfg;
	return check_conninfo_text(*value, 0, why, why_len);
}

static int allow_entry(const char *e, size_t n, struct relay_allow *a)
{
	if (n > 3 && memmem(e, n, "://", 3) != NULL) {
		char url[RELAY_CONFIG_URL_MAX + 1];
		struct url_parts u;
		if (n > RELAY_CONFIG_URL_MAX)
			return HK_ERR_INVAL;
		memcpy(url, e, n);
		url[n] = '\0';
		if (url_split(url, &u) < 0)
			return HK_ERR_INVAL;
		a->kind = RELAY_ALLOW_URL;
		a->host = lower_dup(u.host, u.host_len);
		a->port = u.port;
		a->path = xstrdup(*u.path == '\0' ? "/" : u.path);
		return 0;
	}
	if (n > 2 && e[0] == '*' && e[1] == '.') {
		if (!valid_dns_name(e + 2, n - 2))
			return HK_ERR_INVAL;
		a->kind = RELAY_ALLOW_DOMAIN;
		a->host = lower_dup(e + 2, n - 2);
		return 0;
	}
	if (!valid_host(e, n))
		return HK_ERR_INVAL;
	a->kind = RELAY_ALLOW_HOST;
	a->host = lower_dup(e, n);
	return 0;
}

/* Whitespace-separated entries: https URLs, host names, *.domain patterns. */
static int check_allow(struct relay_config *cfg, char **value, char *why, size_t why_len)
{
	struct relay_allow *list = xcalloc(RELAY_CONFIG_ALLOW_MAX, sizeof(*list));
	size_t count = 0;
	const char *p = skip_space(*value);
	while (*p != '\0') {
		size_t n = strcspn(p, " \t");
		if (count == RELAY_CONFIG_ALLOW_MAX) {
			snprintf(why, why_len, "more than %d entries", RELAY_CONFIG_ALLOW_MAX);
			goto fail;
		}
		if (allow_entry(p, n, &list[count]) < 0) {
			snprintf(why, why_len,
			         "'%.*s' is not an https://host[:port][/path] URL, a host name or "
			         "a *.domain pattern",
			         n > ECHO_MAX ? ECHO_MAX : (int)n, p);
			goto fail;
		}
		count++;
		p = skip_space(p + n);
	}
	allow_list_free(&cfg->mail_allow_list, &cfg->mail_allow_count);
	if (count == 0) { /* only blanks: as if not set */
		free(list);
		free(*value);
		*value = NULL;
		return 0;
	}
	cfg->mail_allow_list = list;
	cfg->mail_allow_count = count;
	return 0;
fail:
	allow_list_free(&list, &count);
	return HK_ERR_INVAL;
}

static int check_url(struct relay_config *cfg, char **value, char *why, size_t why_len)
{
	(void)cfg;
	struct url_parts u;
	if (url_split(*value, &u) < 0) {
		char e[ECHO_MAX + 8];
		snprintf(why, why_len,
		         "must be an https://host[:port][/path] URL without user info, query or "
		         "fragment, got %s",
		         echo(*value, e, sizeof(e)));
		return HK_ERR_INVAL;
	}
	return 0;
}

/* ---- setting a value ------------------------------------------------------ */

/* The length of the line relay_config_dump() writes for k = v. Paths and
 * checked values are never longer than what was read, so checking what
 * is read keeps every dump line within RELAY_CONFIG_LINE_MAX. */
static size_t dump_line_len(const struct relay_config_key *k, const char *v)
{
	size_t n = strlen(strchr(k->name, '.') + 1) + strlen(" = \"\"");
	for (; *v != '\0'; v++)
		n += (*v == '"' || *v == '\\') ? 2 : 1;
	return n;
}

static void set_string(struct relay_config *cfg, const struct relay_config_key *k, char *v)
{
	char **field = FIELD(cfg, k, char *);
	free(*field);
	*field = v;
}

static int set_path(struct parse_state *st, const struct relay_config_key *k, const char *v,
                    const char **error_r, char **out)
{
	size_t n = strlen(v);
	size_t max = k->max > 0 ? (size_t)k->max : RELAY_CONFIG_PATH_MAX;
	char e[ECHO_MAX + 8];
	if (v[0] != '/')
		return fail(error_r, st->name, st->line, k->name, HK_ERR_INVAL,
		            "must be an absolute path, got %s", echo(v, e, sizeof(e)));
	if (n > max)
		return fail(error_r, st->name, st->line, k->name, HK_ERR_TOO_LONG,
		            "path longer than %zu bytes", max);
	if (k->flags & F_DIR) {
		while (n > 1 && v[n - 1] == '/')
			n--;
	} else if (v[n - 1] == '/') {
		return fail(error_r, st->name, st->line, k->name, HK_ERR_INVAL,
		            "names a directory, not a file: %s", echo(v, e, sizeof(e)));
	}
	*out = xstrndup(v, n);
	return 0;
}

static int set_number(struct parse_state *st, const struct relay_config_key *k, const char *v,
                      const char **error_r)
{
	struct relay_config *cfg = st->cfg;
	char e[ECHO_MAX + 8], lo[32], hi[32];
	uint64_t u = 0;
	int64_t ms = 0;
	int ret;
	switch (k->kind) {
	case K_DURATION:
		ret = parse_duration(v, &ms);
		if (ret == HK_ERR_INVAL)
			return fail(error_r, st->name, st->line, k->name, ret,
			            "must be a number with a unit (ms, s, m, h, d), e.g. '90s' or "
			            "'3d', got %s",
			            echo(v, e, sizeof(e)));
		if (ret < 0 || ms < k->min || ms > k->max)
			return fail(error_r, st->name, st->line, k->name, HK_ERR_INVAL,
			            "must be between %s and %s, got %s",
			            format_duration(k->min, lo, sizeof(lo)),
			            format_duration(k->max, hi, sizeof(hi)), echo(v, e, sizeof(e)));
		if ((k->flags & F_WHOLE_SEC) && ms % HK_MS_PER_SECOND != 0)
			return fail(error_r, st->name, st->line, k->name, HK_ERR_INVAL,
			            "must be whole seconds, got %s", echo(v, e, sizeof(e)));
		*FIELD(cfg, k, int64_t) = ms;
		return 0;
	case K_SIZE:
		ret = parse_size(v, &u);
		if (ret == HK_ERR_INVAL)
			return fail(error_r, st->name, st->line, k->name, ret,
			            "must be a number of bytes, optionally with k, m or g (KiB, "
			            "MiB, GiB), got %s",
			            echo(v, e, sizeof(e)));
		if (ret < 0 || u < (uint64_t)k->min || u > (uint64_t)k->max)
			return fail(error_r, st->name, st->line, k->name, HK_ERR_INVAL,
			            "must be between %s and %s, got %s",
			            format_size((uint64_t)k->min, lo, sizeof(lo)),
			            format_size((uint64_t)k->max, hi, sizeof(hi)),
			            echo(v, e, sizeof(e)));
		*FIELD(cfg, k, size_t) = (size_t)u;
		return 0;
	case K_UINT:
	case K_PORT: {
		const char *end = v;
		ret = parse_u64(v, &u, &end);
		if (ret < 0 || *end != '\0' || u < (uint64_t)k->min || u > (uint64_t)k->max)
			return fail(error_r, st->name, st->line, k->name, HK_ERR_INVAL,
			            "must be %s %" PRId64 "..%" PRId64 ", got %s",
			            k->kind == K_PORT ? "a port number" : "a whole number", k->min,
			            k->max, echo(v, e, sizeof(e)));
		if (k->kind == K_PORT)
			*FIELD(cfg, k, uint16_t) = (uint16_t)u;
		else
			*FIELD(cfg, k, uint32_t) = (uint32_t)u;
		return 0;
	}
	default: abort();
	}
}

/* Checks v and stores it in the key's field; on failure the field keeps
 * its value and *error_r says why. */
static int set_value(struct parse_state *st, enum key_id id, const char *v, const char **error_r)
{
	const struct relay_config_key *k = &keys[id];
	struct relay_config *cfg = st->cfg;
	char e[ECHO_MAX + 8];

	if ((k->flags & F_OPTIONAL) && *v == '\0') {
		if (id == KEY_MAIL_ALLOW)
			allow_list_free(&cfg->mail_allow_list, &cfg->mail_allow_count);
		set_string(cfg, k, NULL);
		return 0;
	}
	switch (k->kind) {
	case K_PATH: {
		char *s = NULL;
		int ret = set_path(st, k, v, error_r, &s);
		if (ret < 0)
			return ret;
		set_string(cfg, k, s);
		return 0;
	}
	case K_STRING: {
		char why[RELAY_CONFIG_ERROR_MAX];
		if (strlen(v) > (size_t)k->max)
			return fail(error_r, st->name, st->line, k->name, HK_ERR_TOO_LONG,
			            "longer than %" PRId64 " bytes", k->max);
		/* the dump writes it quoted and escaped, and must read back */
		if (dump_line_len(k, v) > RELAY_CONFIG_LINE_MAX)
			return fail(error_r, st->name, st->line, k->name, HK_ERR_TOO_LONG,
			            "too long: written back quoted, its line would exceed %d bytes",
			            RELAY_CONFIG_LINE_MAX);
		char *s = xstrdup(v);
		int ret = k->check(cfg, &s, why, sizeof(why));
		if (ret < 0) {
			free(s);
			return fail(error_r, st->name, st->line, k->name, ret, "%s", why);
		}
		set_string(cfg, k, s);
		return 0;
	}
	case K_BOOL:
		if (strcmp(v, "yes") == 0 || strcmp(v, "no") == 0) {
			*FIELD(cfg, k, bool) = v[0] == 'y';
			return 0;
		}
		return fail(error_r, st->name, st->line, k->name, HK_ERR_INVAL,
		            "must be yes or no, got %s", echo(v, e, sizeof(e)));
	case K_ENUM: {
		char choices[128] = "";
		for (size_t i = 0; i < k->name_count; i++) {
			if (strcmp(v, k->names[i]) == 0) {
				*FIELD(cfg, k, int) = (int)i;
				return 0;
			}
			size_t used = strlen(choices);
			snprintf(choices + used, sizeof(choices) - used, "%s%s", i > 0 ? ", " : "",
			         k->names[i]);
		}
		return fail(error_r, st->name, st->line, k->name, HK_ERR_INVAL,
		            "must be one of %s, got %s", choices, echo(v, e, sizeof(e)));
	}
	case K_DURATION:
	case K_SIZE:
	case K_UINT:
	case K_PORT: return set_number(st, k, v, error_r);
	default: abort();
	}
}

/* ---- lines ---------------------------------------------------------------- */

static int parse_section(struct parse_state *st, const char *s, const char **error_r)
{
	const char *name = ++s;
	while (is_name_char(*s))
		s++;
	size_t n = (size_t)(s - name);
	if (n == 0 || *s != ']')
		return fail(error_r, st->name, st->line, NULL, HK_ERR_INVAL,
		            "expected '[section]' (a name of letters, digits and '_')");
	s = skip_space(s + 1);
	if (*s != '\0' && *s != '#')
		return fail(error_r, st->name, st->line, NULL, HK_ERR_INVAL,
		            "unexpected text after '[%.*s]'", (int)n, name);
	for (int i = 0; i < SEC_COUNT; i++) {
		if (strlen(section_names[i]) != n || memcmp(section_names[i], name, n) != 0)
			continue;
		if (st->section_line[i] != 0)
			return fail(error_r, st->name, st->line, NULL, HK_ERR_EXISTS,
			            "section [%s] already opened at line %u (keep each section "
			            "in one place)",
			            section_names[i], st->section_line[i]);
		st->section_line[i] = st->line;
		st->section = i;
		return 0;
	}
	return fail(error_r, st->name, st->line, NULL, HK_ERR_INVAL, "unknown section [%.*s]",
	            (int)(n > ECHO_MAX ? ECHO_MAX : n), name);
}

/* The value at s, unquoted, into out (at least strlen(s) + 1 bytes). */
static int parse_value(struct parse_state *st, const char *key, const char *s, char *out,
                       const char **error_r)
{
	size_t n = 0;
	if (*s == '"') {
		for (s++; *s != '"'; s++) {
			if (*s == '\0')
				return fail(error_r, st->name, st->line, key, HK_ERR_INVAL,
				            "unterminated quoted value (no closing '\"')");
			if (*s == '\\') {
				s++;
				if (*s == '\0')
					return fail(error_r, st->name, st->line, key, HK_ERR_INVAL,
					            "unterminated quoted value (no closing '\"')");
				if (*s != '"' && *s != '\\')
					return fail(error_r, st->name, st->line, key, HK_ERR_INVAL,
					            "unknown escape '\\%c' (only \\\" and \\\\)",
					            *s);
			}
			out[n++] = *s;
		}
		s = skip_space(s + 1);
		if (*s != '\0' && *s != '#')
			return fail(error_r, st->name, st->line, key, HK_ERR_INVAL,
			            "unexpected text after the closing '\"'");
		out[n] = '\0';
		return 0;
	}
	for (; *s != '\0'; s++) {
		if (*s == '#') {
			if (n == 0 || is_space(s[-1]))
				break; /* a comment */
			return fail(error_r, st->name, st->line, key, HK_ERR_INVAL,
			            "'#' inside an unquoted value: quote the value, or put a space "
			            "before the comment");
		}
		if (*s == '"')
			return fail(error_r, st->name, st->line, key, HK_ERR_INVAL,
			            "'\"' inside an unquoted value: quote the whole value");
		out[n++] = *s;
	}
	while (n > 0 && is_space(out[n - 1]))
		n--;
	out[n] = '\0';
	return 0;
}

static int parse_line(struct parse_state *st, const char *s, const char **error_r)
{
	s = skip_space(s);
	if (*s == '\0' || *s == '#')
		return 0;
	if (*s == '[')
		return parse_section(st, s, error_r);

	const char *key = s;
	while (is_name_char(*s))
		s++;
	size_t key_len = (size_t)(s - key);
	s = skip_space(s);
	if (key_len == 0 || *s != '=')
		return fail(error_r, st->name, st->line, NULL, HK_ERR_INVAL,
		            "expected '[section]' or 'key = value'");
	s = skip_space(s + 1);
	int shown = (int)(key_len > ECHO_MAX ? ECHO_MAX : key_len);
	if (st->section < 0)
		return fail(error_r, st->name, st->line, NULL, HK_ERR_INVAL,
		            "key '%.*s' before any [section]", shown, key);

	const char *sec = section_names[st->section];
	size_t sec_len = strlen(sec);
	int id = -1;
	for (int i = 0; i < KEY_COUNT; i++) {
		if ((int)keys[i].section == st->section &&
		    strlen(keys[i].name) == sec_len + 1 + key_len &&
		    memcmp(keys[i].name + sec_len + 1, key, key_len) == 0) {
			id = i;
			break;
		}
	}
	if (id < 0) {
		char full[ECHO_MAX * 2];
		snprintf(full, sizeof(full), "%s.%.*s", sec, shown, key);
		return fail(error_r, st->name, st->line, full, HK_ERR_INVAL,
		            "unknown key (see halfkeyd.conf(5))");
	}
	if (st->key_line[id] != 0)
		return fail(error_r, st->name, st->line, keys[id].name, HK_ERR_EXISTS,
		            "duplicate key (first set at line %u)", st->key_line[id]);

	char value[RELAY_CONFIG_LINE_MAX + 1];
	int ret = parse_value(st, keys[id].name, s, value, error_r);
	if (ret < 0)
		return ret;
	st->key_line[id] = st->line;
	return set_value(st, (enum key_id)id, value, error_r);
}

static int parse_lines(struct parse_state *st, const char *buf, size_t len, const char **error_r)
{
	const char *p = buf, *end = buf + len;
	char line[RELAY_CONFIG_LINE_MAX + 1];
	while (p < end) {
		st->line++;
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl != NULL ? nl : end) - p);
		if (n > 0 && p[n - 1] == '\r')
			n--; /* CRLF files read as LF files */
		if (n > RELAY_CONFIG_LINE_MAX)
			return fail(error_r, st->name, st->line, NULL, HK_ERR_TOO_LONG,
			            "line longer than %d bytes", RELAY_CONFIG_LINE_MAX);
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)p[i];
			if ((c < 0x20 && c != '\t') || c == 0x7f)
				return fail(error_r, st->name, st->line, NULL, HK_ERR_INVAL,
				            "control character 0x%02x", c);
		}
		memcpy(line, p, n);
		line[n] = '\0';
		int ret = parse_line(st, line, error_r);
		if (ret < 0)
			return ret;
		p = nl != NULL ? nl + 1 : end;
	}
	return 0;
}

/* ---- after the last line -------------------------------------------------- */

static bool key_applies(const struct relay_config *cfg, enum key_id id, const char **why_r)
{
	unsigned f = keys[id].flags;
	if ((f & F_IF_TLS) && !cfg->tls) {
		*why_r = "listen.tls = no";
		return false;
	}
	if ((f & F_IF_SQLITE) && cfg->store_driver != RELAY_STORE_SQLITE) {
		*why_r = "store.driver = pgsql";
		return false;
	}
	if ((f & F_IF_PGSQL) && cfg->store_driver != RELAY_STORE_PGSQL) {
		*why_r = "store.driver = sqlite";
		return false;
	}
	return true;
}

/* *field = dir/leaf unless the file set it. */
static int derive_path(struct parse_state *st, char **field, const char *leaf, const char **error_r)
{
	if (*field != NULL)
		return 0;
	const char *dir = st->cfg->data_dir;
	const char *sep = strcmp(dir, "/") == 0 ? "" : "/";
	if (strlen(dir) + strlen(sep) + strlen(leaf) > RELAY_CONFIG_PATH_MAX)
		return fail(error_r, st->name, st->key_line[KEY_DATA_DIR], keys[KEY_DATA_DIR].name,
		            HK_ERR_TOO_LONG, "too long to hold %s (over %d bytes)", leaf,
		            RELAY_CONFIG_PATH_MAX);
	size_t len = strlen(dir) + strlen(sep) + strlen(leaf) + 1;
	*field = xcalloc(1, len);
	snprintf(*field, len, "%s%s%s", dir, sep, leaf);
	return 0;
}

static int default_node_name(struct parse_state *st, const char **error_r)
{
	char host[NODE_NAME_MAX + 2];
	char why[RELAY_CONFIG_ERROR_MAX];
	if (gethostname(host, sizeof(host)) < 0)
		return fail(error_r, st->name, 0, keys[KEY_NODE_NAME].name, HK_ERR_IO,
		            "not set, and the host name cannot be read: %s", strerror(errno));
	host[sizeof(host) - 1] = '\0';
	char *v = xstrdup(host);
	if (check_node_name(st->cfg, &v, why, sizeof(why)) < 0) {
		free(v);
		return fail(error_r, st->name, 0, keys[KEY_NODE_NAME].name, HK_ERR_INVAL,
		            "not set, and the host name cannot serve: %s", why);
	}
	st->cfg->node_name = v;
	return 0;
}

/* Checks that span keys, and fills the defaults that depend on others. */
static int finish(struct parse_state *st, const char **error_r)
{
	struct relay_config *cfg = st->cfg;
	const char *why;
	for (int i = 0; i < KEY_COUNT; i++) {
		if (st->key_line[i] != 0 && !key_applies(cfg, (enum key_id)i, &why))
			return fail(error_r, st->name, st->key_line[i], keys[i].name, HK_ERR_INVAL,
			            "not used with %s: remove it", why);
	}
	if (!cfg->tls && !is_loopback(cfg->listen_address))
		return fail(error_r, st->name, st->key_line[KEY_LISTEN_TLS],
		            keys[KEY_LISTEN_TLS].name, HK_ERR_INVAL,
		            "'no' is only allowed when listen.address is a loopback address "
		            "(127.0.0.0/8, ::1), for a reverse proxy on this host; got '%s'",
		            cfg->listen_address);
	if (!cfg->tls) {
		free(cfg->tls_certificate);
		free(cfg->tls_key);
		cfg->tls_certificate = cfg->tls_key = NULL;
	}
	if (cfg->store_driver == RELAY_STORE_PGSQL) {
		if (cfg->store_conninfo == NULL)
			return fail(error_r, st->name, st->key_line[KEY_STORE_DRIVER],
			            keys[KEY_STORE_DRIVER].name, HK_ERR_INVAL,
			            "pgsql needs store.conninfo");
	} else {
		int ret = derive_path(st, &cfg->store_path, "halfkey.db", error_r);
		if (ret < 0)
			return ret;
	}
	int ret = derive_path(st, &cfg->master_key_file, "master.keys", error_r);
	if (ret < 0)
		return ret;
	if (cfg->mail_default_url != NULL &&
	    !relay_config_mailserver_allowed(cfg, cfg->mail_default_url))
		return fail(error_r, st->name, st->key_line[KEY_MAIL_DEFAULT_URL],
		            keys[KEY_MAIL_DEFAULT_URL].name, HK_ERR_INVAL,
		            "not allowed by mailserver.allow");
	if (cfg->node_name == NULL)
		return default_node_name(st, error_r);
	return 0;
}

/* ---- API ------------------------------------------------------------------ */

static struct relay_config *config_new(void)
{
	struct relay_config *cfg = xcalloc(1, sizeof(*cfg));
	struct parse_state st = {.name = "(defaults)", .cfg = cfg, .section = -1};
	for (int i = 0; i < KEY_COUNT; i++) {
		const char *err;
		if (keys[i].def != NULL && set_value(&st, (enum key_id)i, keys[i].def, &err) < 0)
			abort(); /* a default the parser refuses: a bug caught by every test */
	}
	return cfg;
}

int relay_config_parse(const char *buf, size_t len, const char *name, struct relay_config **cfg_r,
                       const char **error_r)
{
	*cfg_r = NULL;
	if (name == NULL)
		name = "(config)";
	if (len > RELAY_CONFIG_FILE_MAX)
		return fail(error_r, name, 0, NULL, HK_ERR_TOO_LONG, "larger than %d bytes",
		            RELAY_CONFIG_FILE_MAX);
	if (buf == NULL && len > 0)
		return fail(error_r, name, 0, NULL, HK_ERR_INVAL, "no buffer");
	struct parse_state st = {.name = name, .cfg = config_new(), .section = -1};
	int ret = parse_lines(&st, buf, len, error_r);
	if (ret == 0)
		ret = finish(&st, error_r);
	if (ret < 0) {
		relay_config_free(&st.cfg);
		return ret;
	}
	*cfg_r = st.cfg;
	return 0;
}

int relay_config_defaults(struct relay_config **cfg_r, const char **error_r)
{
	return relay_config_parse("", 0, "(defaults)", cfg_r, error_r);
}

int relay_config_load(const char *path, struct relay_config **cfg_r, const char **error_r)
{
	bool optional = path == NULL;
	if (path == NULL)
		path = RELAY_CONFIG_DEFAULT_PATH;
	*cfg_r = NULL;
	/* O_NONBLOCK: a FIFO put in the file's place must not hang start-up */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT && optional)
			return relay_config_defaults(cfg_r, error_r);
		return fail(error_r, path, 0, NULL, errno == ENOENT ? HK_ERR_NOT_FOUND : HK_ERR_IO,
		            "cannot open: %s", strerror(errno));
	}
	struct stat sb;
	int ret;
	char *buf = NULL;
	size_t got = 0;
	if (fstat(fd, &sb) < 0) {
		ret = fail(error_r, path, 0, NULL, HK_ERR_IO, "cannot stat: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		ret = fail(error_r, path, 0, NULL, HK_ERR_INVAL, "not a regular file");
		goto out;
	}
	/* the file decides which user the relay runs as and where its keys are */
	if (sb.st_mode & S_IWOTH) {
		ret = fail(error_r, path, 0, NULL, HK_ERR_PERM,
		           "others may write it (mode %04o): chmod o-w",
		           (unsigned)sb.st_mode & 07777);
		goto out;
	}
	if (sb.st_size > RELAY_CONFIG_FILE_MAX) {
		ret = fail(error_r, path, 0, NULL, HK_ERR_TOO_LONG, "larger than %d bytes",
		           RELAY_CONFIG_FILE_MAX);
		goto out;
	}
	/* one byte over the maximum, in case the file grew since fstat */
	buf = xcalloc(1, RELAY_CONFIG_FILE_MAX + 1);
	while (got <= RELAY_CONFIG_FILE_MAX) {
		ssize_t r = read(fd, buf + got, RELAY_CONFIG_FILE_MAX + 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = fail(error_r, path, 0, NULL, HK_ERR_IO, "cannot read: %s",
			           strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	ret = relay_config_parse(buf, got, path, cfg_r, error_r);
out:
	free(buf);
	close(fd);
	return ret;
}

/* Writes v in double quotes, escaping '"' and '\'. */
static void put_quoted(const char *v, FILE *out)
{
	fputc('"', out);
	for (; *v != '\0'; v++) {
		if (*v == '"' || *v == '\\')
			fputc('\\', out);
		fputc(*v, out);
	}
	fputc('"', out);
}

int relay_config_dump(const struct relay_config *cfg, FILE *out)
{
	fputs("# halfkeyd effective configuration; see halfkeyd.conf(5).\n"
	      "# It holds no secrets: the master keys are in relay.master_key_file, the TLS\n"
	      "# private key in the file tls.key names, and store.conninfo never holds a\n"
	      "# password.\n",
	      out);
	int section = -1;
	for (int i = 0; i < KEY_COUNT; i++) {
		const struct relay_config_key *k = &keys[i];
		const char *short_name = strchr(k->name, '.') + 1;
		char buf[32];
		const char *why;
		if ((int)k->section != section) {
			section = (int)k->section;
			fprintf(out, "\n[%s]\n", section_names[section]);
		}
		if (!key_applies(cfg, (enum key_id)i, &why)) {
			fprintf(out, "# %s: not used with %s\n", short_name, why);
			continue;
		}
		fprintf(out, "%s = ", short_name);
		switch (k->kind) {
		case K_STRING:
		case K_PATH: {
			const char *s = *CFIELD(cfg, k, char *);
			put_quoted(s != NULL ? s : "", out);
			if (s == NULL && k->unset != NULL)
				fprintf(out, "  # %s", k->unset);
			break;
		}
		case K_DURATION:
			fputs(format_duration(*CFIELD(cfg, k, int64_t), buf, sizeof(buf)), out);
			break;
		case K_SIZE:
			fputs(format_size(*CFIELD(cfg, k, size_t), buf, sizeof(buf)), out);
			break;
		case K_UINT: fprintf(out, "%" PRIu32, *CFIELD(cfg, k, uint32_t)); break;
		case K_PORT: fprintf(out, "%u", (unsigned)*CFIELD(cfg, k, uint16_t)); break;
		case K_BOOL: fputs(*CFIELD(cfg, k, bool) ? "yes" : "no", out); break;
		case K_ENUM: {
			int v = *CFIELD(cfg, k, int);
			fputs(v >= 0 && (size_t)v < k->name_count ? k->names[v] : "?", out);
			break;
		}
		default: abort();
		}
		fputc('\n', out);
	}
	if (fflush(out) != 0 || ferror(out))
		return HK_ERR_IO;
	return 0;
}

static bool string_equal(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

bool relay_config_equal(const struct relay_config *a, const struct relay_config *b)
{
	for (int i = 0; i < KEY_COUNT; i++) {
		const struct relay_config_key *k = &keys[i];
		bool eq;
		switch (k->kind) {
		case K_STRING:
		case K_PATH: eq = string_equal(*CFIELD(a, k, char *), *CFIELD(b, k, char *)); break;
		case K_DURATION: eq = *CFIELD(a, k, int64_t) == *CFIELD(b, k, int64_t); break;
		case K_SIZE: eq = *CFIELD(a, k, size_t) == *CFIELD(b, k, size_t); break;
		case K_UINT: eq = *CFIELD(a, k, uint32_t) == *CFIELD(b, k, uint32_t); break;
		case K_PORT: eq = *CFIELD(a, k, uint16_t) == *CFIELD(b, k, uint16_t); break;
		case K_BOOL: eq = *CFIELD(a, k, bool) == *CFIELD(b, k, bool); break;
		case K_ENUM: eq = *CFIELD(a, k, int) == *CFIELD(b, k, int); break;
		default: abort();
		}
		if (!eq)
			return false;
	}
	/* mail_allow_list is mail_allow parsed: equal text, equal list */
	return true;
}

bool relay_config_mailserver_allowed(const struct relay_config *cfg, const char *url)
{
	struct url_parts u;
	if (cfg == NULL || url == NULL || url_split(url, &u) < 0)
		return false;
	if (cfg->mail_allow_count == 0)
		return true;
	const char *path = *u.path == '\0' ? "/" : u.path;
	for (size_t i = 0; i < cfg->mail_allow_count; i++) {
		const struct relay_allow *a = &cfg->mail_allow_list[i];
		size_t n = strlen(a->host);
		switch (a->kind) {
		case RELAY_ALLOW_URL:
			if (host_equal(u.host, u.host_len, a->host) && u.port == a->port &&
			    strcmp(path, a->path) == 0)
				return true;
			break;
		case RELAY_ALLOW_HOST:
			if (host_equal(u.host, u.host_len, a->host))
				return true;
			break;
		case RELAY_ALLOW_DOMAIN:
			if (u.host_len > n + 1 && u.host[u.host_len - n - 1] == '.' &&
			    strncasecmp(u.host + u.host_len - n, a->host, n) == 0)
				return true;
			break;
		default: break;
		}
	}
	return false;
}

void relay_config_free(struct relay_config **cfg)
{
	if (*cfg == NULL)
		return;
	for (int i = 0; i < KEY_COUNT; i++)
		if (keys[i].kind == K_STRING || keys[i].kind == K_PATH)
			free(*FIELD(*cfg, &keys[i], char *));
	allow_list_free(&(*cfg)->mail_allow_list, &(*cfg)->mail_allow_count);
	free(*cfg);
	*cfg = NULL;
}
