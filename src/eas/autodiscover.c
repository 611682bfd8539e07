#include "eas/autodiscover.h"

#include "lib/clock.h"
#include "lib/log.h"

#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include <libxml/xmlstring.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define AUTODISCOVER_PATH          "/autodiscover/autodiscover.xml"
#define REQUEST_TYPE               "text/xml; charset=utf-8"
#define DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define DEFAULT_ATTEMPT_TIMEOUT_MS 30000L
#define DEFAULT_TOTAL_TIMEOUT_MS   120000L
#define LOCAL_PART_MAX             64
#define DOMAIN_LEN_MAX             253
#define LABEL_MAX                  63

/* ---- addresses and the request ----------------------------------------- */

/* A DNS name of two or more labels of letters, digits and inner hyphens,
 * whose last label is not all digits (no IPv4 literal in disguise). */
static bool domain_ok(const char *d)
{
	size_t n = strlen(d), label = 0, labels = 0;
	bool digits = true, last_digits = false;
	if (n == 0 || n > DOMAIN_LEN_MAX)
		return false;
	for (size_t i = 0; i <= n; i++) {
		char c = d[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > LABEL_MAX || d[i - 1] == '-' ||
			    d[i - label] == '-')
				return false;
			labels++;
			last_digits = digits;
			label = 0;
			digits = true;
			continue;
		}
		bool digit = c >= '0' && c <= '9';
		if (!digit && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && c != '-')
			return false;
		digits = digits && digit;
		label++;
	}
	return labels >= 2 && !last_digits;
}

int autodiscover_address_check(const char *address, const char **domain_r, const char **error_r)
{
	size_t n = address != NULL ? strnlen(address, AUTODISCOVER_ADDR_MAX) : 0;
	if (n == 0 || n >= AUTODISCOVER_ADDR_MAX) {
		*error_r = "the address is empty or too long";
		return HK_ERR_INVAL;
	}
	const char *at = strrchr(address, '@');
	if (at == NULL || at == address || (size_t)(at - address) > LOCAL_PART_MAX) {
		*error_r = "the address is not local@domain (local part of 1 to 64 bytes)";
		return HK_ERR_INVAL;
	}
	for (const char *p = address; p < at; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			*error_r = "the address has a control character";
			return HK_ERR_INVAL;
		}
	}
	if (!xmlCheckUTF8((const xmlChar *)address)) {
		*error_r = "the address is not UTF-8";
		return HK_ERR_INVAL;
	}
	if (!domain_ok(at + 1)) {
		*error_r = "the address's domain is not a DNS name";
		return HK_ERR_INVAL;
	}
	*domain_r = at + 1;
	return 0;
}

/* A bounded string builder: once something did not fit, nothing more is
 * added and over stays set. */
struct out {
	char *buf;
	size_t size, len;
	bool over;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->over || o->size == 0 || n > o->size - 1 - o->len) {
		o->over = true;
		return;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

static void put_escaped(struct out *o, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '&': put(o, "&amp;", 5); break;
		case '<': put(o, "&lt;", 4); break;
		case '>': put(o, "&gt;", 4); break;
		case '"': put(o, "&quot;", 6); break;
		case '\'': put(o, "&apos;", 6); break;
		default: put(o, s, 1); break;
		}
	}
}

int autodiscover_request_build(const char *address, char *buf, size_t size, size_t *len_r,
                               const char **error_r)
{
	static const char head[] = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	                           "<Autodiscover xmlns=\"" AUTODISCOVER_REQUEST_NS "\">\n"
	                           "<Request>\n"
	                           "<EMailAddress>";
	static const char tail[] =
	    "</EMailAddress>\n"
	    "<AcceptableResponseSchema>" AUTODISCOVER_MOBILESYNC_NS "</AcceptableResponseSchema>\n"
	    "</Request>\n"
	    "</Autodiscover>\n";
	const char *domain;
	int ret = autodiscover_address_check(address, &domain, error_r);
	if (ret < 0)
		return ret;
	struct out o = {.buf = buf, .size = size};
	put(&o, head, sizeof(head) - 1);
	put_escaped(&o, address);
	put(&o, tail, sizeof(tail) - 1);
	if (o.over) {
		*error_r = "the request does not fit its buffer";
		return HK_ERR_TOO_LONG;
	}
	*len_r = o.len;
	return 0;
}

bool autodiscover_host_in_domain(const char *host, const char *domain)
{
	size_t h = strlen(host), d = strlen(domain);
	if (d == 0 || h < d || strcasecmp(host + h - d, domain) != 0)
		return false;
	return h == d || host[h - d - 1] == '.';
}

/* Resolves url against base (NULL: url must be absolute) with curl's URL
 * parser, and accepts it only as https with a host, no user information,
 * no query unless allow_query, printable ASCII only. The fragment is
 * dropped. The normalised URL goes to out (EAS_URL_MAX bytes), its host,
 * lower-cased, to host_r (AUTODISCOVER_DOMAIN_MAX bytes) unless NULL. */
static int url_check(const char *base, const char *url, bool allow_query, char *out, char *host_r,
                     const char **error_r)
{
	size_t n = strnlen(url, EAS_URL_MAX);
	if (n == 0 || n >= EAS_URL_MAX) {
		*error_r = "the URL is empty or too long";
		return HK_ERR_INVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)url[i] <= ' ' || (unsigned char)url[i] >= 0x7f) {
			*error_r = "the URL has a space, a control or a non-ASCII character";
			return HK_ERR_INVAL;
		}
	}
	CURLU *u = curl_url();
	if (u == NULL)
		abort();
	char *scheme = NULL, *part = NULL, *host = NULL, *full = NULL;
	int ret = HK_ERR_INVAL;
	if ((base != NULL && curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK) ||
	    curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
		*error_r = "not a URL";
		goto out;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    strcasecmp(scheme, "https") != 0) {
		*error_r = "not an https URL";
		goto out;
	}
	if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK) {
		*error_r = "the URL carries user information";
		goto out;
	}
	if (!allow_query && curl_url_get(u, CURLUPART_QUERY, &part, 0) == CURLUE_OK) {
		*error_r = "the URL has a query";
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0' ||
	    strlen(host) >= AUTODISCOVER_DOMAIN_MAX) {
		*error_r = "the URL has no usable host";
		goto out;
	}
	if (curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK || strlen(full) >= EAS_URL_MAX) {
		*error_r = "the URL is too long";
		goto out;
	}
	memcpy(out, full, strlen(full) + 1);
	if (host_r != NULL) {
		size_t i = 0;
		for (; host[i] != '\0'; i++)
			host_r[i] = (host[i] >= 'A' && host[i] <= 'Z') ? (char)(host[i] - 'A' + 'a')
			                                               : host[i];
		host_r[i] = '\0';
	}
	ret = 0;
out:
	curl_free(scheme);
	curl_free(part);
	curl_free(host);
	curl_free(full);
	curl_url_cleanup(u);
	return ret;
}

int autodiscover_step_url(enum autodiscover_step step, const char *domain, char *buf, size_t size)
{
	int n;
	switch (step) {
	case AUTODISCOVER_STEP_DOMAIN:
		n = snprintf(buf, size, "https://%s" AUTODISCOVER_PATH, domain);
		break;
	case AUTODISCOVER_STEP_AUTODISCOVER_HOST:
		n = snprintf(buf, size, "https://autodiscover.%s" AUTODISCOVER_PATH, domain);
		break;
	case AUTODISCOVER_STEP_HTTP_REDIRECT:
		n = snprintf(buf, size, "http://autodiscover.%s" AUTODISCOVER_PATH, domain);
		break;
	case AUTODISCOVER_STEP_GIVEN:
	case AUTODISCOVER_STEP_END:
	default: return HK_ERR_INVAL;
	}
	return n > 0 && (size_t)n < size ? 0 : HK_ERR_TOO_LONG;
}

/* ---- the response parser ----------------------------------------------- */

/* Set while parsing: anything DTD-like stops the parser at once, before
 * the internal subset (where entities would be declared) is read. */
struct parse_guard {
	bool dtd;
};

static void guard_stop(void *ctx)
{
	xmlParserCtxtPtr c = ctx;
	((struct parse_guard *)c->_private)->dtd = true;
	xmlStopParser(c);
}

static void on_subset(void *ctx, const xmlChar *name, const xmlChar *external_id,
                      const xmlChar *system_id)
{
	(void)name;
	(void)external_id;
	(void)system_id;
	guard_stop(ctx);
}

static void on_entity_decl(void *ctx, const xmlChar *name, int type, const xmlChar *public_id,
                           const xmlChar *system_id, xmlChar *content)
{
	(void)name;
	(void)type;
	(void)public_id;
	(void)system_id;
	(void)content;
	guard_stop(ctx);
}

static xmlParserInputPtr on_resolve(void *ctx, const xmlChar *public_id, const xmlChar *system_id)
{
	(void)public_id;
	(void)system_id;
	guard_stop(ctx);
	return NULL;
}

static void on_xml_error(void *ctx, xmlErrorPtr err)
{
	(void)ctx;
	(void)err; /* the caller gets one static reason; libxml2 prints nothing */
}

static void xml_quiet(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void xml_init(void)
{
	xmlInitParser();
}

static bool is_xml_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* UTF-8 only, so that no server picks an iconv converter for us (glibc's
 * have had remotely reachable bugs): no NUL byte (so libxml2 detects no
 * UTF-16 or UCS-4), a start that is '<', white space or the UTF-8 BOM (so
 * no EBCDIC), and the declared encoding ignored (XML_PARSE_IGNORE_ENC).
 * Autodiscover answers are UTF-8 in practice. */
static bool utf8_body(const uint8_t *body, size_t len)
{
	if (memchr(body, '\0', len) != NULL)
		return false;
	if (len >= 3 && body[0] == 0xEF && body[1] == 0xBB && body[2] == 0xBF)
		return true;
	return body[0] == '<' || is_xml_space((char)body[0]);
}

/* Well-formed, namespace-aware, no DTD, no network: the document or an error. */
static int read_doc(const uint8_t *body, size_t len, xmlDocPtr *doc_r, const char **error_r)
{
	pthread_once(&xml_once, xml_init);
	xmlParserCtxtPtr c = xmlCreateMemoryParserCtxt((const char *)body, (int)len);
	if (c == NULL)
		abort();
	/* Not XML_PARSE_NOENT (entities stay unexpanded), not DTDLOAD,
	 * DTDATTR, DTDVALID, XINCLUDE or HUGE (libxml2's default limits on
	 * depth and node sizes stay on). */
	xmlCtxtUseOptions(c, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
	                         XML_PARSE_NOCDATA | XML_PARSE_IGNORE_ENC);
	struct parse_guard guard = {0};
	c->_private = &guard;
	c->sax->internalSubset = on_subset;
	c->sax->externalSubset = on_subset;
	c->sax->entityDecl = on_entity_decl;
	c->sax->resolveEntity = on_resolve;
	c->sax->serror = on_xml_error;
	c->sax->error = NULL;
	c->sax->warning = NULL;
	c->sax->fatalError = NULL;
	c->vctxt.error = NULL;
	c->vctxt.warning = NULL;

	/* Encoding and I/O errors bypass the context and go to libxml2's
	 * per-thread generic handler (stderr): silenced for this parse only. */
	xmlGenericErrorFunc saved = xmlGenericError;
	void *saved_ctx = xmlGenericErrorContext;
	xmlSetGenericErrorFunc(NULL, xml_quiet);
	int ret = 0;
	int rc = xmlParseDocument(c);
	xmlSetGenericErrorFunc(saved_ctx, saved);
	xmlDocPtr doc = c->myDoc;
	c->myDoc = NULL;
	if (guard.dtd) {
		*error_r = "a DTD (refused: no DOCTYPE, no entities)";
		ret = HK_ERR_INVAL;
	} else if (rc != 0 || !c->wellFormed || doc == NULL) {
		*error_r = "not well-formed XML";
		ret = HK_ERR_INVAL;
	} else if (doc->intSubset != NULL || doc->extSubset != NULL) {
		*error_r = "a DTD (refused: no DOCTYPE, no entities)";
		ret = HK_ERR_INVAL;
	}
	xmlFreeParserCtxt(c);
	if (ret < 0) {
		xmlFreeDoc(doc);
		return ret;
	}
	*doc_r = doc;
	return 0;
}

static bool is_el(const xmlNode *n, const char *name, const char *ns)
{
	return n->type == XML_ELEMENT_NODE && n->ns != NULL && n->ns->href != NULL &&
	       xmlStrEqual(n->name, (const xmlChar *)name) &&
	       xmlStrEqual(n->ns->href, (const xmlChar *)ns);
}

/* The child element name in ns, or NULL; more than one is an error. */
static int one_child(const xmlNode *parent, const char *name, const char *ns,
                     const xmlNode **child_r, const char **error_r)
{
	*child_r = NULL;
	for (const xmlNode *n = parent->children; n != NULL; n = n->next) {
		if (!is_el(n, name, ns))
			continue;
		if (*child_r != NULL) {
			*error_r = "an element that may appear once appears twice";
			return HK_ERR_INVAL;
		}
		*child_r = n;
	}
	return 0;
}

/* n, shortened so that it does not end inside a UTF-8 sequence. */
static size_t utf8_whole(const char *s, size_t n)
{
	size_t i = n;
	while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
		i--;
	if (i == 0)
		return 0;
	unsigned char lead = (unsigned char)s[i - 1];
	size_t need = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
	return n - (i - 1) >= need ? n : i - 1;
}

/* The text directly inside el (NULL: none), trimmed of XML white space,
 * into buf: text and CDATA children; comments and processing instructions
 * skipped; an element inside is an error. Longer than size - 1 bytes: cut
 * (at a character boundary) when cut, else an error. */
static int text_of(const xmlNode *el, char *buf, size_t size, bool cut, const char **error_r)
{
	size_t len = 0;
	bool over = false;
	buf[0] = '\0';
	if (el == NULL)
		return 0;
	for (const xmlNode *n = el->children; n != NULL && !over; n = n->next) {
		if (n->type == XML_ELEMENT_NODE || n->type == XML_ENTITY_REF_NODE) {
			*error_r = "markup inside a text element";
			return HK_ERR_INVAL;
		}
		if ((n->type != XML_TEXT_NODE && n->type != XML_CDATA_SECTION_NODE) ||
		    n->content == NULL)
			continue;
		const char *p = (const char *)n->content;
		size_t k = strlen(p);
		while (len == 0 && k > 0 && is_xml_space(*p)) {
			p++;
			k--;
		}
		if (k > size - 1 - len) {
			over = true;
			k = size - 1 - len;
		}
		memcpy(buf + len, p, k);
		len += k;
	}
	if (over && !cut) {
		buf[0] = '\0';
		*error_r = "a text element is too long";
		return HK_ERR_TOO_LONG;
	}
	if (over)
		len = utf8_whole(buf, len);
	while (len > 0 && is_xml_space(buf[len - 1]))
		len--;
	buf[len] = '\0';
	return 0;
}

/* An optional non-negative integer element: -1 when absent or empty. */
static int code_of(const xmlNode *el, long *code_r, const char **error_r)
{
	char buf[16];
	int ret = text_of(el, buf, sizeof(buf), false, error_r);
	if (ret < 0)
		return ret;
	size_t n = strlen(buf);
	if (n == 0) {
		*code_r = -1;
		return 0;
	}
	if (n > 9 || strspn(buf, "0123456789") != n) {
		*error_r = "a status code is not a number";
		return HK_ERR_INVAL;
	}
	*code_r = strtol(buf, NULL, 10);
	return 0;
}

/* ErrorCode or Status, Message, DebugData of an Error element. */
static int parse_error(const xmlNode *err, const char *code_name, struct autodiscover_result *r,
                       const char **error_r)
{
	const char *ns = (const char *)err->ns->href;
	const xmlNode *code, *msg, *debug;
	int ret = one_child(err, code_name, ns, &code, error_r);
	if (ret == 0)
		ret = one_child(err, "Message", ns, &msg, error_r);
	if (ret == 0)
		ret = one_child(err, "DebugData", ns, &debug, error_r);
	if (ret == 0)
		ret = code_of(code, &r->code, error_r);
	if (ret == 0)
		ret = text_of(msg, r->message, sizeof(r->message), true, error_r);
	if (ret == 0)
		ret = text_of(debug, r->debug_data, sizeof(r->debug_data), true, error_r);
	return ret;
}

/* The first Server of Type MobileSync: its Url (or, without one, its Name). */
static int parse_settings(const xmlNode *settings, struct autodiscover_result *r,
                          const char **error_r)
{
	const char *ns = AUTODISCOVER_MOBILESYNC_NS;
	for (const xmlNode *srv = settings->children; srv != NULL; srv = srv->next) {
		if (!is_el(srv, "Server", ns))
			continue;
		const xmlNode *type, *url, *name;
		char kind[32], text[EAS_URL_MAX];
		int ret = one_child(srv, "Type", ns, &type, error_r);
		if (ret == 0)
			ret = one_child(srv, "Url", ns, &url, error_r);
		if (ret == 0)
			ret = one_child(srv, "Name", ns, &name, error_r);
		if (ret == 0)
			ret = text_of(type, kind, sizeof(kind), true, error_r);
		if (ret < 0)
			return ret;
		if (strcmp(kind, "MobileSync") != 0)
			continue;
		ret = text_of(url, text, sizeof(text), false, error_r);
		if (ret == 0 && text[0] == '\0')
			ret = text_of(name, text, sizeof(text), false, error_r);
		if (ret < 0)
			return ret;
		if (text[0] == '\0') {
			*error_r = "the MobileSync server has no URL";
			return HK_ERR_INVAL;
		}
		ret = url_check(NULL, text, false, r->url, NULL, error_r);
		if (ret < 0)
			return ret;
		r->kind = AUTODISCOVER_SETTINGS;
		return 0;
	}
	*error_r = "Settings name no MobileSync server";
	return HK_ERR_NOT_FOUND;
}

/* Redirect holds an address ([MS-ASCMD] 2.2.3.147); an https URL there is
 * taken as a redirect to another Autodiscover URL. */
static int parse_redirect(const xmlNode *redirect, struct autodiscover_result *r,
                          const char **error_r)
{
	char text[EAS_URL_MAX];
	const char *domain;
	int ret = text_of(redirect, text, sizeof(text), false, error_r);
	if (ret < 0)
		return ret;
	if (strstr(text, "://") != NULL) {
		ret = url_check(NULL, text, true, r->url, NULL, error_r);
		if (ret < 0)
			return ret;
		r->kind = AUTODISCOVER_REDIRECT_URL;
		return 0;
	}
	ret = autodiscover_address_check(text, &domain, error_r);
	if (ret < 0)
		return ret;
	memcpy(r->address, text, strlen(text) + 1);
	r->kind = AUTODISCOVER_REDIRECT_ADDR;
	return 0;
}

/* Response in the MobileSync namespace: User, then exactly one of
 * Action's Redirect, Settings or Error. */
static int parse_mobilesync(const xmlNode *resp, struct autodiscover_result *r,
                            const char **error_r)
{
	const char *ns = AUTODISCOVER_MOBILESYNC_NS;
	const xmlNode *user, *action, *name = NULL, *email = NULL;
	const xmlNode *redirect = NULL, *settings = NULL, *err = NULL;
	int ret = one_child(resp, "User", ns, &user, error_r);
	if (ret == 0)
		ret = one_child(resp, "Action", ns, &action, error_r);
	if (ret == 0 && user != NULL)
		ret = one_child(user, "DisplayName", ns, &name, error_r);
	if (ret == 0 && user != NULL)
		ret = one_child(user, "EMailAddress", ns, &email, error_r);
	if (ret == 0)
		ret = text_of(name, r->display_name, sizeof(r->display_name), true, error_r);
	if (ret == 0)
		ret = text_of(email, r->email, sizeof(r->email), true, error_r);
	if (ret < 0)
		return ret;
	if (action == NULL) {
		*error_r = "the response has no Action";
		return HK_ERR_INVAL;
	}
	ret = one_child(action, "Redirect", ns, &redirect, error_r);
	if (ret == 0)
		ret = one_child(action, "Settings", ns, &settings, error_r);
	if (ret == 0)
		ret = one_child(action, "Error", ns, &err, error_r);
	if (ret < 0)
		return ret;
	if ((redirect != NULL) + (settings != NULL) + (err != NULL) != 1) {
		*error_r = "Action holds not exactly one of Redirect, Settings, Error";
		return HK_ERR_INVAL;
	}
	if (redirect != NULL)
		return parse_redirect(redirect, r, error_r);
	if (settings != NULL)
		return parse_settings(settings, r, error_r);
	r->kind = AUTODISCOVER_ACTION_ERROR;
	return parse_error(err, "Status", r, error_r);
}

static int parse_doc(const xmlDoc *doc, struct autodiscover_result *r, const char **error_r)
{
	const xmlNode *root = xmlDocGetRootElement(doc);
	if (root == NULL || !is_el(root, "Autodiscover", AUTODISCOVER_RESPONSE_NS)) {
		*error_r = "not an Autodiscover response (root element or namespace)";
		return HK_ERR_INVAL;
	}
	/* The schema's choice: a MobileSync Response, or the generic one
	 * carrying only an Error (ErrorCode 600, 601). */
	const xmlNode *ms, *generic, *err;
	int ret = one_child(root, "Response", AUTODISCOVER_MOBILESYNC_NS, &ms, error_r);
	if (ret == 0)
		ret = one_child(root, "Response", AUTODISCOVER_RESPONSE_NS, &generic, error_r);
	if (ret < 0)
		return ret;
	if ((ms != NULL) == (generic != NULL)) {
		*error_r = "not exactly one Response";
		return HK_ERR_INVAL;
	}
	const xmlNode *resp = ms != NULL ? ms : generic;
	/* [MS-ASCMD] 4.2's own 600 example puts that Error in the MobileSync
	 * Response: accepted in either. */
	ret = one_child(resp, "Error", (const char *)resp->ns->href, &err, error_r);
	if (ret < 0)
		return ret;
	if (err != NULL) {
		r->kind = AUTODISCOVER_ERROR;
		return parse_error(err, "ErrorCode", r, error_r);
	}
	if (generic != NULL) {
		*error_r = "a generic Response without an Error";
		return HK_ERR_INVAL;
	}
	return parse_mobilesync(ms, r, error_r);
}

int autodiscover_response_parse(const uint8_t *body, size_t len, struct autodiscover_result *r,
                                const char **error_r)
{
	memset(r, 0, sizeof(*r));
	r->code = -1;
	if (len == 0) {
		*error_r = "an empty response";
		return HK_ERR_TRUNCATED;
	}
	if (len > AUTODISCOVER_BODY_MAX) {
		*error_r = "a response over 64 KiB";
		return HK_ERR_TOO_LONG;
	}
	if (!utf8_body(body, len)) {
		*error_r = "not a UTF-8 XML document";
		return HK_ERR_INVAL;
	}
	xmlDocPtr doc = NULL;
	int ret = read_doc(body, len, &doc, error_r);
	if (ret < 0)
		return ret;
	ret = parse_doc(doc, r, error_r);
	xmlFreeDoc(doc);
	if (ret < 0) {
		memset(r, 0, sizeof(*r));
		r->code = -1;
	}
	return ret;
}

/* ---- the driver -------------------------------------------------------- */

struct autodiscover {
	struct httpc *http;
	autodiscover_cb *cb;
	void *ctx;
	struct httpc_call *call;
	struct secret *auth; /* "Basic ...", isolated */
	char *ca_file;
	const char *const *connect_to;
	long connect_timeout_ms, attempt_timeout_ms;
	int64_t started_ms, deadline_ms; /* monotonic */

	enum autodiscover_step first;            /* GIVEN or DOMAIN */
	enum autodiscover_step step;             /* the candidate being tried, or that led to url */
	char domain[AUTODISCOVER_DOMAIN_MAX];    /* of the first address: the trust boundary */
	char given_url[EAS_URL_MAX];             /* start_url, checked */
	char address[AUTODISCOVER_ADDR_MAX];     /* asked now */
	char new_address[AUTODISCOVER_ADDR_MAX]; /* CONFIRM_ADDRESS */
	char url[EAS_URL_MAX];                   /* requested now */
	char target[EAS_URL_MAX];                /* CONFIRM_REDIRECT */
	bool post;
	uint8_t body[AUTODISCOVER_REQUEST_MAX];
	size_t body_len;
	unsigned redirects;
	struct autodiscover_attempt *last_attempt; /* the last one recorded, if it was */
	char error[256];

	struct autodiscover_result result;
	struct autodiscover_attempt attempts[AUTODISCOVER_ATTEMPTS_MAX];
	size_t attempt_count, attempts_total;
};

const char *autodiscover_status_str(enum autodiscover_status s)
{
	switch (s) {
	case AUTODISCOVER_FOUND: return "found";
	case AUTODISCOVER_CONFIRM_REDIRECT: return "redirect to another domain, to confirm";
	case AUTODISCOVER_CONFIRM_ADDRESS:
		return "redirect to an address in another domain, to confirm";
	case AUTODISCOVER_AUTH_FAILED: return "credentials refused";
	case AUTODISCOVER_SERVER_ERROR: return "the Autodiscover server reported an error";
	case AUTODISCOVER_REDIRECT_LOOP: return "too many redirects";
	case AUTODISCOVER_NOT_FOUND: return "no Autodiscover service found";
	case AUTODISCOVER_TIMEOUT: return "timed out";
	case AUTODISCOVER_FAILED: return "failed";
	}
	return "failed";
}

static int64_t mono_ms(void)
{
	return hk_clock_mono(hk_clock_real());
}

/* The candidate after step: the discovery order as a table. */
static enum autodiscover_step next_step(enum autodiscover_step step)
{
	switch (step) {
	case AUTODISCOVER_STEP_DOMAIN: return AUTODISCOVER_STEP_AUTODISCOVER_HOST;
	case AUTODISCOVER_STEP_AUTODISCOVER_HOST: return AUTODISCOVER_STEP_HTTP_REDIRECT;
	case AUTODISCOVER_STEP_GIVEN:
	case AUTODISCOVER_STEP_HTTP_REDIRECT:
	case AUTODISCOVER_STEP_END:
	default: return AUTODISCOVER_STEP_END;
	}
}

static void ad_free(struct autodiscover *ad)
{
	httpc_cancel(&ad->call);
	secret_free(&ad->auth);
	free(ad->ca_file);
	free(ad);
}

void autodiscover_cancel(struct autodiscover **adp)
{
	struct autodiscover *ad = *adp;
	if (ad == NULL)
		return;
	*adp = NULL;
	ad_free(ad);
}

/* Reports the outcome and frees ad: the last thing done with it. */
static void finish(struct autodiscover *ad, enum autodiscover_status status, const char *error,
                   const struct autodiscover_result *result)
{
	struct autodiscover_outcome o = {
	    .status = status,
	    .error = status == AUTODISCOVER_FOUND ? NULL : error,
	    .address = ad->address,
	    .result = result,
	    .redirects = ad->redirects,
	    .attempts = ad->attempts,
	    .attempt_count = ad->attempt_count,
	    .attempts_total = ad->attempts_total,
	    .elapsed_ms = (long)(mono_ms() - ad->started_ms),
	};
	if (status == AUTODISCOVER_FOUND)
		o.url = result->url;
	else if (status == AUTODISCOVER_CONFIRM_REDIRECT)
		o.url = ad->target;
	else if (status == AUTODISCOVER_CONFIRM_ADDRESS)
		o.address = ad->new_address;
	log_debug("autodiscover %s: %s after %zu attempts, %u redirects (%ld ms)", ad->domain,
	          autodiscover_status_str(status), ad->attempts_total, ad->redirects, o.elapsed_ms);
	ad->cb(&o, ad->ctx);
	ad_free(ad);
}

static void on_http(const struct httpc_response *resp, void *arg);

/* Starts one attempt at url: POST with the request and the credentials,
 * or the bare GET; within the whole discovery's deadline. */
static int send_request(struct autodiscover *ad, const char *url, bool post)
{
	/* Credentials never travel in the clear, whatever led here. */
	if (post && strncmp(url, "https://", 8) != 0)
		return HK_ERR_INVAL;
	int64_t left = ad->deadline_ms - mono_ms();
	long timeout = ad->attempt_timeout_ms < left ? ad->attempt_timeout_ms : (long)left;
	long connect = ad->connect_timeout_ms < timeout ? ad->connect_timeout_ms : timeout;
	if (left <= 0)
		return HK_ERR_BUSY;
	size_t n = strlen(url);
	if (n >= sizeof(ad->url))
		return HK_ERR_TOO_LONG;
	memmove(ad->url, url, n + 1);
	ad->post = post;
	struct httpc_request req = {
	    .method = post ? "POST" : "GET",
	    .url = ad->url,
	    .authorization = post ? ad->auth : NULL,
	    .body = post ? ad->body : NULL,
	    .body_len = post ? ad->body_len : 0,
	    .content_type = post ? REQUEST_TYPE : NULL,
	    .user_agent = EAS_USER_AGENT,
	    .ca_file = ad->ca_file,
	    .connect_timeout_ms = connect,
	    .timeout_ms = timeout,
	    .body_max = AUTODISCOVER_BODY_MAX,
	    .connect_to = ad->connect_to,
	};
	return httpc_start(ad->http, &req, on_http, ad, &ad->call);
}

/* From a callback: sends, or ends the discovery when that is not possible. */
static void proceed(struct autodiscover *ad, const char *url, bool post)
{
	int ret = send_request(ad, url, post);
	if (ret == HK_ERR_BUSY)
		finish(ad, AUTODISCOVER_TIMEOUT, "Autodiscover ran out of time", NULL);
	else if (ret < 0)
		finish(ad, AUTODISCOVER_FAILED, "cannot start an HTTP request", NULL);
}

/* Sends the current step's request. */
static void begin_step(struct autodiscover *ad)
{
	char url[EAS_URL_MAX];
	if (ad->step == AUTODISCOVER_STEP_GIVEN) {
		proceed(ad, ad->given_url, true);
		return;
	}
	if (autodiscover_step_url(ad->step, ad->domain, url, sizeof(url)) < 0) {
		finish(ad, AUTODISCOVER_FAILED, "cannot build a candidate URL", NULL);
		return;
	}
	proceed(ad, url, ad->step != AUTODISCOVER_STEP_HTTP_REDIRECT);
}

/* This candidate (or the redirect it led to) gave nothing: the next one. */
static void fail_over(struct autodiscover *ad, const char *why)
{
	if (ad->last_attempt != NULL)
		ad->last_attempt->note = why;
	if (mono_ms() >= ad->deadline_ms) {
		finish(ad, AUTODISCOVER_TIMEOUT, "Autodiscover ran out of time", NULL);
		return;
	}
	ad->step = next_step(ad->step);
	if (ad->step != AUTODISCOVER_STEP_END) {
		begin_step(ad);
		return;
	}
	snprintf(ad->error, sizeof(ad->error), "no Autodiscover service answered (last: %s)", why);
	finish(ad, AUTODISCOVER_NOT_FOUND, ad->error, NULL);
}

static bool take_redirect(struct autodiscover *ad)
{
	if (ad->redirects >= AUTODISCOVER_REDIRECTS_MAX) {
		finish(ad, AUTODISCOVER_REDIRECT_LOOP, "more than 10 redirects", NULL);
		return false;
	}
	ad->redirects++;
	return true;
}

/* An HTTP redirect or a Redirect URL: followed inside the domain, handed
 * to the caller outside it, refused when not https. */
static void follow_url(struct autodiscover *ad, const char *location)
{
	char url[EAS_URL_MAX], host[AUTODISCOVER_DOMAIN_MAX];
	const char *err = NULL;
	if (!take_redirect(ad))
		return;
	if (url_check(ad->url, location, true, url, host, &err) < 0) {
		fail_over(ad, "a redirect to a URL refused (not https, or malformed)");
		return;
	}
	if (!autodiscover_host_in_domain(host, ad->domain)) {
		memcpy(ad->target, url, strlen(url) + 1);
		finish(ad, AUTODISCOVER_CONFIRM_REDIRECT,
		       "a redirect to another domain: ask the user before using it", NULL);
		return;
	}
	proceed(ad, url, true);
}

/* A Redirect to another address: a restart inside the domain, handed to
 * the caller outside it. */
static void follow_address(struct autodiscover *ad, const char *address)
{
	const char *domain, *err = NULL;
	if (!take_redirect(ad))
		return;
	if (strcasecmp(address, ad->address) == 0) {
		finish(ad, AUTODISCOVER_REDIRECT_LOOP, "a Redirect to the address already asked",
		       NULL);
		return;
	}
	if (autodiscover_address_check(address, &domain, &err) < 0) {
		fail_over(ad, "a Redirect to an invalid address");
		return;
	}
	if (!autodiscover_host_in_domain(domain, ad->domain)) {
		memcpy(ad->new_address, address, strlen(address) + 1);
		finish(ad, AUTODISCOVER_CONFIRM_ADDRESS,
		       "a Redirect to an address in another domain: ask the user first",
		       &ad->result);
		return;
	}
	memmove(ad->address, address, strlen(address) + 1);
	if (autodiscover_request_build(ad->address, (char *)ad->body, sizeof(ad->body),
	                               &ad->body_len, &err) < 0) {
		finish(ad, AUTODISCOVER_FAILED, err, NULL);
		return;
	}
	ad->step = ad->first;
	begin_step(ad);
}

/* Location of a redirect response, or NULL. */
static const char *redirect_location(const struct httpc_response *resp, bool post)
{
	switch (resp->status) {
	case 301:
	case 302:
	case 303:
	case 307:
	case 308: return httpc_header(resp, "Location");
	case 451:
		/* ActiveSync's own redirect ([MS-ASHTTP] 3.2.5.1.1), answering a POST */
		if (!post)
			return NULL;
		return httpc_header(resp, "X-MS-Location") != NULL
		           ? httpc_header(resp, "X-MS-Location")
		           : httpc_header(resp, "Location");
	default: return NULL;
	}
}

static void on_answer(struct autodiscover *ad, const struct httpc_response *resp)
{
	const char *err = NULL;
	if (ad->post && resp->status == 401) {
		finish(ad, AUTODISCOVER_AUTH_FAILED, "the server refused the credentials (401)",
		       NULL);
		return;
	}
	const char *location = redirect_location(resp, ad->post);
	if (location != NULL) {
		follow_url(ad, location);
		return;
	}
	if (!ad->post) {
		fail_over(ad, "no redirect at the http Autodiscover URL");
		return;
	}
	if (resp->status != 200) {
		fail_over(ad, "an HTTP status other than 200, 401 or a redirect");
		return;
	}
	if (autodiscover_response_parse(resp->body, resp->body_len, &ad->result, &err) < 0) {
		fail_over(ad, err);
		return;
	}
	switch (ad->result.kind) {
	case AUTODISCOVER_SETTINGS: finish(ad, AUTODISCOVER_FOUND, NULL, &ad->result); return;
	case AUTODISCOVER_REDIRECT_ADDR: {
		char address[AUTODISCOVER_ADDR_MAX];
		memcpy(address, ad->result.address, sizeof(address));
		follow_address(ad, address);
		return;
	}
	case AUTODISCOVER_REDIRECT_URL: {
		char url[EAS_URL_MAX];
		memcpy(url, ad->result.url, sizeof(url));
		follow_url(ad, url);
		return;
	}
	case AUTODISCOVER_ACTION_ERROR:
	case AUTODISCOVER_ERROR:
		finish(ad, AUTODISCOVER_SERVER_ERROR,
		       ad->result.message[0] != '\0' ? ad->result.message
		                                     : "the Autodiscover server reported an error",
		       &ad->result);
		return;
	default: fail_over(ad, "an unknown kind of answer"); return;
	}
}

static void note_attempt(struct autodiscover *ad, const struct httpc_response *resp)
{
	ad->attempts_total++;
	ad->last_attempt = NULL;
	if (ad->attempt_count == AUTODISCOVER_ATTEMPTS_MAX)
		return;
	struct autodiscover_attempt *a = &ad->attempts[ad->attempt_count++];
	ad->last_attempt = a;
	size_t n = strnlen(ad->url, sizeof(a->url) - 1); /* cut: a log, not a URL to use */
	memcpy(a->url, ad->url, n);
	a->url[n] = '\0';
	a->post = ad->post;
	a->transport = resp->result;
	a->http_status = resp->status;
	a->note = resp->result != HTTPC_OK ? httpc_result_str(resp->result) : "answered";
	log_debug("autodiscover %s: %s %s -> %s, HTTP %ld", ad->domain, ad->post ? "POST" : "GET",
	          ad->url, httpc_result_str(resp->result), resp->status);
}

static void on_http(const struct httpc_response *resp, void *arg)
{
	struct autodiscover *ad = arg;
	ad->call = NULL; /* invalid from now on (httpc's contract) */
	note_attempt(ad, resp);
	if (resp->result != HTTPC_OK) {
		fail_over(ad, httpc_result_str(resp->result));
		return;
	}
	on_answer(ad, resp);
}

int autodiscover_start(struct httpc *http, const struct autodiscover_config *cfg,
                       const struct secret *password, autodiscover_cb *cb, void *ctx,
                       struct autodiscover **ad_r, const char **error_r)
{
	const char *domain, *username = cfg->username != NULL ? cfg->username : cfg->address;
	char given[EAS_URL_MAX];
	int ret = autodiscover_address_check(cfg->address, &domain, error_r);
	if (ret < 0)
		return ret;
	if (cb == NULL || password == NULL || username[0] == '\0' ||
	    strlen(username) >= AUTODISCOVER_ADDR_MAX || strchr(username, ':') != NULL) {
		*error_r = "invalid username (empty, too long, or with ':')";
		return HK_ERR_INVAL;
	}
	if (cfg->start_url != NULL &&
	    (ret = url_check(NULL, cfg->start_url, true, given, NULL, error_r)) < 0)
		return ret;

	struct autodiscover *ad = calloc(1, sizeof(*ad));
	if (ad == NULL)
		abort();
	ad->http = http;
	ad->cb = cb;
	ad->ctx = ctx;
	ad->connect_to = cfg->connect_to;
	ad->connect_timeout_ms =
	    cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
	ad->attempt_timeout_ms =
	    cfg->attempt_timeout_ms > 0 ? cfg->attempt_timeout_ms : DEFAULT_ATTEMPT_TIMEOUT_MS;
	ad->started_ms = mono_ms();
	ad->deadline_ms = ad->started_ms + (cfg->total_timeout_ms > 0 ? cfg->total_timeout_ms
	                                                              : DEFAULT_TOTAL_TIMEOUT_MS);
	for (size_t i = 0; domain[i] != '\0'; i++)
		ad->domain[i] = (domain[i] >= 'A' && domain[i] <= 'Z')
		                    ? (char)(domain[i] - 'A' + 'a')
		                    : domain[i];
	memcpy(ad->address, cfg->address, strlen(cfg->address) + 1);
	if (cfg->start_url != NULL)
		memcpy(ad->given_url, given, strlen(given) + 1);
	ad->first = cfg->start_url != NULL ? AUTODISCOVER_STEP_GIVEN : AUTODISCOVER_STEP_DOMAIN;
	ad->step = ad->first;
	if (cfg->ca_file != NULL && (ad->ca_file = strdup(cfg->ca_file)) == NULL)
		abort();
	ret = autodiscover_request_build(ad->address, (char *)ad->body, sizeof(ad->body),
	                                 &ad->body_len, error_r);
	if (ret < 0)
		goto fail;
	ad->auth = eas_basic_auth(username, password);

	char url[EAS_URL_MAX];
	if (ad->step == AUTODISCOVER_STEP_GIVEN)
		memcpy(url, ad->given_url, sizeof(url));
	else if ((ret = autodiscover_step_url(ad->step, ad->domain, url, sizeof(url))) < 0) {
		*error_r = "cannot build a candidate URL";
		goto fail;
	}
	ret = send_request(ad, url, true);
	if (ret < 0) {
		*error_r = "cannot start an HTTP request";
		goto fail;
	}
	*ad_r = ad;
	return 0;
fail:
	ad_free(ad);
	return ret;
}
