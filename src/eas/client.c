#include "eas/client.h"

#include "lib/log.h"

#include <curl/curl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WBXML_TYPE "application/vnd.ms-sync.wbxml"
#define USER_Q_MAX 1024

struct eas_client {
	struct httpc *http;
	/* On the heap, not EAS_URL_MAX + USER_Q_MAX inline: 3 KiB of every
	 * unlocked account's memory (bench/bench-ping.c). */
	char *url;
	char *user_q; /* URL-escaped username, curl's (curl_free) */
	char device_id[EAS_DEVICE_ID_MAX + 1];
	char *ca_file;
	char policy_key[EAS_POLICY_KEY_MAX + 1];
	struct secret *auth; /* "Basic base64(user:password)", guarded */
	long timeout_ms;
	size_t body_max;
	long ping_buffer_size;
	bool http2;
	/* HTTP/2 may have carried the Basic value: a call went out over TLS
	 * with HTTP/2 allowed, and no answer showed the server to be HTTP/1
	 * only (or one showed HTTP/2). Then eas_client_free() retires the
	 * connections, whose frame buffers may hold the header block. */
	bool h2_offered, saw_h1, saw_h2;
	struct eas_call *calls;
	struct eas_call *ping;
};

struct eas_call {
	struct eas_client *c;
	struct eas_call *prev, *next;
	struct httpc_call *hc;
	eas_cb *cb;
	void *ctx;
	const char *command;
};

static bool device_id_ok(const char *id)
{
	size_t n = id != NULL ? strlen(id) : 0;
	if (n == 0 || n > EAS_DEVICE_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') ||
		      (id[i] >= '0' && id[i] <= '9')))
			return false;
	return true;
}

static bool url_ok(const char *url)
{
	size_t n = url != NULL ? strnlen(url, EAS_URL_MAX) : 0;
	if (n == 0 || n >= EAS_URL_MAX || strchr(url, '?') != NULL)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)url[i] <= ' ' || url[i] == 0x7f)
			return false;
	return strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0;
}

struct secret *eas_basic_auth(const char *username, const struct secret *password)
{
	size_t ulen = strlen(username), plen = secret_len(password);
	struct secret *raw = secret_new(ulen + 1 + plen);
	memcpy(secret_bytes(raw), username, ulen);
	secret_bytes(raw)[ulen] = ':';
	memcpy(secret_bytes(raw) + ulen + 1, secret_cbytes(password), plen);
	size_t b64 = sodium_base64_encoded_len(secret_len(raw), sodium_base64_VARIANT_ORIGINAL);
	struct secret *val = secret_new(6 + b64); /* includes the NUL */
	memcpy(secret_bytes(val), "Basic ", 6);
	sodium_bin2base64((char *)secret_bytes(val) + 6, b64, secret_cbytes(raw), secret_len(raw),
			  sodium_base64_VARIANT_ORIGINAL);
	secret_truncate(val, 6 + b64 - 1); /* the value, without the NUL */
	secret_free(&raw);
	return val;
}

int eas_client_new(struct httpc *http, const struct eas_client_config *cfg,
		   const struct secret *password, struct eas_client **client_r,
		   const char **error_r)
{
	if (!url_ok(cfg->url)) {
		*error_r = "invalid ActiveSync URL (want http(s)://host/path, no query)";
		return HK_ERR_INVAL;
	}
	if (!device_id_ok(cfg->device_id)) {
		*error_r = "invalid DeviceId (1 to 32 letters and digits)";
		return HK_ERR_INVAL;
	}
	if (cfg->username == NULL || cfg->username[0] == '\0' ||
	    strlen(cfg->username) > USER_Q_MAX / 3 - 1 || strchr(cfg->username, ':') != NULL) {
		*error_r = "invalid username";
		return HK_ERR_INVAL;
	}
	char *q = curl_easy_escape(NULL, cfg->username, 0);
	if (q == NULL)
		abort();
	struct eas_client *c = calloc(1, sizeof(*c));
	if (c == NULL)
		abort();
	c->http = http;
	if ((c->url = strdup(cfg->url)) == NULL)
		abort();
	c->user_q = q;
	snprintf(c->device_id, sizeof(c->device_id), "%s", cfg->device_id);
	if (cfg->ca_file != NULL && (c->ca_file = strdup(cfg->ca_file)) == NULL)
		abort();
	c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : EAS_DEFAULT_TIMEOUT_MS;
	c->body_max = cfg->body_max;
	/* curl keeps a receive buffer for the whole of a Ping, which waits for
	 * minutes and gets a few hundred bytes back: 1 KiB (curl's minimum)
	 * saves 3 KiB per waiting account over 4 KiB (bench/RESULTS.md);
	 * longer answers just take more reads */
	c->ping_buffer_size = cfg->ping_buffer_size > 0 ? cfg->ping_buffer_size : 1024;
	c->http2 = cfg->http2;
	c->auth = eas_basic_auth(cfg->username, password);
	*client_r = c;
	return 0;
}

static void call_unlink(struct eas_call *call)
{
	struct eas_client *c = call->c;
	if (call->prev != NULL)
		call->prev->next = call->next;
	else
		c->calls = call->next;
	if (call->next != NULL)
		call->next->prev = call->prev;
	call->prev = call->next = NULL;
	if (c->ping == call)
		c->ping = NULL;
}

void eas_call_cancel(struct eas_call **callp)
{
	struct eas_call *call = *callp;
	if (call == NULL)
		return;
	*callp = NULL;
	httpc_cancel(&call->hc);
	call_unlink(call);
	free(call);
}

void eas_client_free(struct eas_client **cp)
{
	struct eas_client *c = *cp;
	if (c == NULL)
		return;
	*cp = NULL;
	while (c->calls != NULL) {
		struct eas_call *call = c->calls;
		eas_call_cancel(&call);
	}
	secret_free(&c->auth);
	if (c->h2_offered && (c->saw_h2 || !c->saw_h1))
		httpc_retire(c->http);
	free(c->ca_file);
	free(c->url);
	curl_free(c->user_q);
	free(c);
}

int eas_client_set_policy_key(struct eas_client *c, const char *key)
{
	if (key == NULL)
		key = "";
	size_t n = strlen(key);
	if (n > EAS_POLICY_KEY_MAX || strpbrk(key, "\r\n") != NULL)
		return HK_ERR_INVAL;
	memcpy(c->policy_key, key, n + 1);
	return 0;
}

int eas_client_set_url(struct eas_client *c, const char *url)
{
	if (!url_ok(url))
		return HK_ERR_INVAL;
	char *u = strdup(url);
	if (u == NULL)
		abort();
	free(c->url);
	c->url = u;
	return 0;
}

const char *eas_client_url(const struct eas_client *c)
{
	return c->url;
}

size_t eas_client_active(const struct eas_client *c)
{
	size_t n = 0;
	for (const struct eas_call *call = c->calls; call != NULL; call = call->next)
		n++;
	return n;
}

bool eas_client_ping_active(const struct eas_client *c)
{
	return c->ping != NULL;
}

void eas_client_ping_cancel(struct eas_client *c)
{
	struct eas_call *p = c->ping;
	eas_call_cancel(&p);
}

/* Retry-After is delta-seconds or an HTTP-date (RFC 9110 10.2.3). */
static long parse_retry_after(const char *v)
{
	if (v == NULL || *v == '\0')
		return 0;
	char *end;
	long s = strtol(v, &end, 10);
	if (end != v && *end == '\0')
		return s < 0 ? 0 : (s > 86400 ? 86400 : s);
	time_t t = curl_getdate(v, NULL);
	if (t < 0)
		return 0;
	long d = (long)(t - time(NULL));
	return d < 0 ? 0 : (d > 86400 ? 86400 : d);
}

static int status_of(const struct eas_node *root)
{
	const char *s = eas_node_child_text(root, eas_node_page(root), "Status");
	if (s == NULL || *s == '\0')
		return 0;
	char *end;
	long v = strtol(s, &end, 10);
	return (end != s && *end == '\0' && v > 0 && v < 100000) ? (int)v : -1;
}

static void on_http(const struct httpc_response *r, void *arg)
{
	struct eas_call *call = arg;
	struct eas_client *c = call->c;
	call->hc = NULL; /* invalid from now on (httpc's contract) */
	call_unlink(call);

	struct eas_response er = {
		.command = call->command,
		.transport = r->result,
		.http_status = r->status,
		.http_version = r->http_version,
		.elapsed_ms = r->elapsed_ms,
	};
	c->saw_h1 |= r->http_version == 1;
	c->saw_h2 |= r->http_version == 2;
	if (r->result != HTTPC_OK) {
		er.action = r->result == HTTPC_TOO_LARGE ? EAS_ACT_BAD_RESPONSE
							 : EAS_ACT_UNREACHABLE;
		er.error = r->error != NULL ? r->error : httpc_result_str(r->result);
		goto deliver;
	}
	er.action = eas_http_status_action(r->status);
	er.server_versions = httpc_header(r, "MS-ASProtocolVersions");
	er.server_commands = httpc_header(r, "MS-ASProtocolCommands");
	switch (r->status) {
	case 200:
		break;
	case 401: er.error = "the server refused the credentials (401)"; goto deliver;
	case 403: er.error = "the server forbids this user or device (403)"; goto deliver;
	case 449: er.error = "the server requires provisioning (449)"; goto deliver;
	case 451:
		er.redirect_url = httpc_header(r, "X-MS-Location");
		if (er.redirect_url == NULL || !url_ok(er.redirect_url)) {
			er.redirect_url = NULL;
			er.action = EAS_ACT_BAD_RESPONSE;
			er.error = "451 redirect without a usable X-MS-Location";
		} else {
			er.error = "the server redirects to another URL (451)";
		}
		goto deliver;
	case 429:
	case 503:
		er.action = EAS_ACT_RETRY_LATER;
		er.retry_after_s = parse_retry_after(httpc_header(r, "Retry-After"));
		er.error = "the server is busy";
		goto deliver;
	default: er.error = "unexpected HTTP status"; goto deliver;
	}
	if (r->body_len == 0) {
		er.empty = true;
		goto deliver;
	}
	const char *err = NULL;
	int ret = eas_wbxml_decode(r->body, r->body_len, 0, &er.root, &err);
	if (ret < 0) {
		er.action = EAS_ACT_BAD_RESPONSE;
		er.error = err;
		goto deliver;
	}
	er.status = status_of(er.root);
	if (er.status < 0) {
		er.action = EAS_ACT_BAD_RESPONSE;
		er.error = "non-numeric Status";
	} else if (er.status >= 100) {
		er.action = eas_common_status_action(er.status);
		er.error = eas_common_status_name(er.status);
		if (er.error == NULL)
			er.error = "unknown status";
	}
deliver:
	log_debug("eas %s %s: http/%d %ld status %d -> %s (%ld ms, %zu bytes)", c->device_id,
		  call->command, er.http_version, er.http_status, er.status,
		  eas_action_name(er.action), er.elapsed_ms, r->body_len);
	call->cb(&er, call->ctx);
	eas_node_free(&er.root);
	free(call);
}

/* restartable: the server may get it twice without harm (httpc.h) */
static int start(struct eas_client *c, const char *method, const char *cmd,
		 const struct eas_node *req, long timeout_ms, long buffer_size, bool restartable,
		 eas_cb *cb, void *ctx, struct eas_call **call_r)
{
	char url[EAS_URL_MAX + USER_Q_MAX + 128];
	if (cmd != NULL) {
		for (const char *p = cmd; *p != '\0'; p++)
			if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
				return HK_ERR_INVAL;
		snprintf(url, sizeof(url), "%s?Cmd=%s&User=%s&DeviceId=%s&DeviceType=%s", c->url,
			 cmd, c->user_q, c->device_id, EAS_DEVICE_TYPE);
	} else {
		snprintf(url, sizeof(url), "%s", c->url);
	}
	uint8_t *body = NULL;
	size_t body_len = 0;
	if (req != NULL) {
		const char *err = NULL;
		int ret = eas_wbxml_encode(req, &body, &body_len, &err);
		if (ret < 0) {
			log_err("eas %s: cannot encode request: %s", cmd, err);
			return ret;
		}
	}
	char pk[32 + EAS_POLICY_KEY_MAX];
	const char *headers[3] = {"MS-ASProtocolVersion: " EAS_PROTOCOL_VERSION, NULL, NULL};
	if (c->policy_key[0] != '\0') {
		snprintf(pk, sizeof(pk), "X-MS-PolicyKey: %s", c->policy_key);
		headers[1] = pk;
	}
	struct httpc_request hr = {
		.method = method,
		.url = url,
		.headers = headers,
		.authorization = c->auth,
		.body = body,
		.body_len = body_len,
		.content_type = strcmp(method, "POST") == 0 ? WBXML_TYPE : NULL,
		.user_agent = EAS_USER_AGENT,
		.ca_file = c->ca_file,
		.timeout_ms = timeout_ms > 0 ? timeout_ms : c->timeout_ms,
		.body_max = c->body_max,
		.buffer_size = buffer_size,
		.http2 = c->http2,
		.restartable = restartable,
	};
	struct eas_call *call = calloc(1, sizeof(*call));
	if (call == NULL)
		abort();
	call->c = c;
	call->cb = cb;
	call->ctx = ctx;
	call->command = cmd != NULL ? cmd : "OPTIONS";
	int ret = httpc_start(c->http, &hr, on_http, call, &call->hc);
	free(body); /* curl copied it */
	if (ret < 0) {
		free(call);
		return ret;
	}
	call->next = c->calls;
	if (c->calls != NULL)
		c->calls->prev = call;
	c->calls = call;
	if (call_r != NULL)
		*call_r = call;
	if (c->http2 && strncmp(c->url, "https://", 8) == 0)
		c->h2_offered = true;
	return 0;
}

int eas_client_options(struct eas_client *c, eas_cb *cb, void *ctx, struct eas_call **call_r)
{
	return start(c, "OPTIONS", NULL, NULL, 0, 0, true, cb, ctx, call_r);
}

int eas_client_command(struct eas_client *c, const char *cmd, const struct eas_node *req,
		       long timeout_ms, eas_cb *cb, void *ctx, struct eas_call **call_r)
{
	if (cmd == NULL || *cmd == '\0')
		return HK_ERR_INVAL;
	return start(c, "POST", cmd, req, timeout_ms, 0, false, cb, ctx, call_r);
}

int eas_client_ping(struct eas_client *c, const struct eas_node *req, unsigned heartbeat_s,
		    eas_cb *cb, void *ctx)
{
	/* never two: the superseded Ping goes first, without its callback */
	eas_client_ping_cancel(c);
	long deadline = (long)heartbeat_s * 1000 + EAS_PING_MARGIN_MS;
	struct eas_call *call = NULL;
	/* a Ping sent twice is still one Ping: the server answers the later */
	int ret = start(c, "POST", "Ping", req, deadline, c->ping_buffer_size, true, cb, ctx,
			&call);
	if (ret == 0)
		c->ping = call;
	return ret;
}
