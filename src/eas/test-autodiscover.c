/* Autodiscover: the request builder and the response parser on
 * real-looking and hostile documents ([MS-ASCMD] 4.2 examples, every
 * answer kind, malformed XML, XXE and entity expansion, oversize), and the
 * driver against in-process TLS servers on 127.0.0.1 (tests/tls-fixture.h)
 * reached under their real names through curl's CONNECT_TO: the discovery
 * order when a candidate fails, 401, redirects (HTTP, 451, address, loops,
 * to another domain, to http), timeouts and cancellation. Deadlines only
 * bound a hang; no test depends on the machine's speed. */
#include "crypto/secmem.h"
#include "eas/autodiscover.h"
#include "lib/clock.h"
#include "net/httpc.h"
#include "test.h"
#include "tls-fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/http.h>
#include <fcntl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEADLINE_MS 120000

#define MS_NS      AUTODISCOVER_MOBILESYNC_NS
#define RS_NS      AUTODISCOVER_RESPONSE_NS
#define AS_URL     "https://mail.example.test/Microsoft-Server-ActiveSync"
#define USER       "alice@example.test"
#define PASSWORD   "s3cret"
#define AUTH_VALUE "Basic YWxpY2VAZXhhbXBsZS50ZXN0OnMzY3JldA==" /* alice@example.test:s3cret */

static struct tfx_pki pki;
/* example.test, autodiscover.example.test, mail.example.test */
static char ex_cert[TFX_PATH_MAX], ex_key[TFX_PATH_MAX];
/* autodiscover.other.test */
static char other_cert[TFX_PATH_MAX], other_key[TFX_PATH_MAX];

void test_setup(void)
{
	if (secmem_init() < 0)
		abort();
	unsetenv("http_proxy");
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("all_proxy");
	unsetenv("ALL_PROXY");
	if (tfx_pki_create(test_tmpdir(), &pki) < 0 ||
	    tfx_pki_issue(&pki, "example",
	                  "DNS:example.test,DNS:autodiscover.example.test,DNS:mail.example.test",
	                  ex_cert, ex_key) < 0 ||
	    tfx_pki_issue(&pki, "other", "DNS:autodiscover.other.test", other_cert, other_key) < 0)
		abort();
}

static int64_t mono_ms(void)
{
	return hk_clock_mono(hk_clock_real());
}

/* ---- documents ---------------------------------------------------------- */

/* [MS-ASCMD] 4.2.4, with the whitespace around the URLs as printed there. */
static const char doc_settings[] =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
    "<Autodiscover xmlns=\"" RS_NS "\">\n"
    "  <Response xmlns=\"" MS_NS "\">\n"
    "    <Culture>en:us</Culture>\n"
    "    <User>\n"
    "      <DisplayName>Chris Gray</DisplayName>\n"
    "      <EMailAddress>chris@woodgrovebank.com</EMailAddress>\n"
    "    </User>\n"
    "    <Action>\n"
    "      <Settings>\n"
    "        <Server>\n"
    "          <Type>CertEnroll</Type>\n"
    "          <Url>https://cert.woodgrovebank.com/CertEnroll</Url>\n"
    "          <Name />\n"
    "          <ServerData>CertEnrollTemplate</ServerData>\n"
    "        </Server>\n"
    "        <Server>\n"
    "          <Type>MobileSync</Type>\n"
    "          <Url>\n"
    "            https://loandept.woodgrovebank.com/Microsoft-Server-ActiveSync\n"
    "          </Url>\n"
    "          <Name>\n"
    "            https://loandept.woodgrovebank.com/Microsoft-Server-ActiveSync\n"
    "          </Name>\n"
    "        </Server>\n"
    "      </Settings>\n"
    "    </Action>\n"
    "  </Response>\n"
    "</Autodiscover>\n";

/* [MS-ASCMD] 4.2.2 */
static const char doc_action_error[] =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
    "<Autodiscover xmlns=\"" RS_NS "\">\n"
    " <Response xmlns=\"" MS_NS "\">\n"
    "  <Culture>en:us</Culture>\n"
    "  <User><EMailAddress>chris@woodgrovebank.com</EMailAddress></User>\n"
    "  <Action>\n"
    "   <Error>\n"
    "    <Status>2</Status>\n"
    "    <Message>The directory service could not be reached</Message>\n"
    "    <DebugData>MailUser</DebugData>\n"
    "   </Error>\n"
    "  </Action>\n"
    " </Response>\n"
    "</Autodiscover>\n";

/* [MS-ASCMD] 4.2.3 as the schema (6.4) has it: the generic Response. */
static const char doc_error_600[] = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
                                    "<Autodiscover xmlns=\"" RS_NS "\">\n"
                                    " <Response>\n"
                                    "  <Error Time=\"16:56:32.6164027\" Id=\"1054084152\">\n"
                                    "   <ErrorCode>600</ErrorCode>\n"
                                    "   <Message>Invalid Request</Message>\n"
                                    "   <DebugData />\n"
                                    "  </Error>\n"
                                    " </Response>\n"
                                    "</Autodiscover>\n";

/* ... and as 4.2.3's example prints it, in the MobileSync Response. */
static const char doc_error_601[] =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
    "<Autodiscover xmlns=\"" RS_NS "\">\n"
    " <Response xmlns=\"" MS_NS "\">\n"
    "  <Error Time=\"16:56:32.6164027\" Id=\"1054084152\">\n"
    "   <ErrorCode>601</ErrorCode>\n"
    "   <Message>Provider is not available</Message>\n"
    "   <DebugData>no provider for the requested schema</DebugData>\n"
    "  </Error>\n"
    " </Response>\n"
    "</Autodiscover>\n";

static const char doc_redirect_addr[] =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
    "<Autodiscover xmlns=\"" RS_NS "\">\n"
    " <Response xmlns=\"" MS_NS "\">\n"
    "  <Culture>en:us</Culture>\n"
    "  <User><EMailAddress>chris@woodgrovebank.com</EMailAddress></User>\n"
    "  <Action><Redirect>chris@contoso.com</Redirect></Action>\n"
    " </Response>\n"
    "</Autodiscover>\n";

static int parse_str(const char *doc, struct autodiscover_result *r, const char **err)
{
	*err = NULL;
	return autodiscover_response_parse((const uint8_t *)doc, strlen(doc), r, err);
}

/* A MobileSync response whose Action holds action (a fragment). */
static const char *ms_doc(char *buf, size_t size, const char *action)
{
	int n = snprintf(buf, size,
	                 "<?xml version=\"1.0\"?><Autodiscover xmlns=\"" RS_NS "\">"
	                 "<Response xmlns=\"" MS_NS "\"><User><DisplayName>A</DisplayName>"
	                 "<EMailAddress>alice@example.test</EMailAddress></User>"
	                 "<Action>%s</Action></Response></Autodiscover>",
	                 action);
	if (n < 0 || (size_t)n >= size)
		abort();
	return buf;
}

static const char *settings_doc(char *buf, size_t size, const char *url)
{
	static char action[3 * EAS_URL_MAX];
	int n = snprintf(action, sizeof(action),
	                 "<Settings><Server><Type>MobileSync</Type><Url>%s</Url><Name>%s</Name>"
	                 "</Server></Settings>",
	                 url, url);
	if (n < 0 || (size_t)n >= sizeof(action))
		abort();
	return ms_doc(buf, size, action);
}

/* ---- the parser ---------------------------------------------------------- */

static void test_parse_settings(void)
{
	struct autodiscover_result r;
	const char *err;
	REQUIRE(parse_str(doc_settings, &r, &err) == 0);
	CHECK_INT(r.kind, AUTODISCOVER_SETTINGS);
	CHECK_STR(r.url, "https://loandept.woodgrovebank.com/Microsoft-Server-ActiveSync");
	CHECK_STR(r.display_name, "Chris Gray");
	CHECK_STR(r.email, "chris@woodgrovebank.com");
	CHECK_INT(r.code, -1);

	/* Name stands in for a missing Url; CDATA is text */
	char buf[8192];
	REQUIRE(parse_str(ms_doc(buf, sizeof(buf),
	                         "<Settings><Server><Type>MobileSync</Type><Name><![CDATA["
	                         "https://eas.example.test/Microsoft-Server-ActiveSync]]></Name>"
	                         "</Server></Settings>"),
	                  &r, &err) == 0);
	CHECK_STR(r.url, "https://eas.example.test/Microsoft-Server-ActiveSync");

	/* prefixes do not matter, namespaces do */
	static const char prefixed[] =
	    "<a:Autodiscover xmlns:a=\"" RS_NS "\"><m:Response xmlns:m=\"" MS_NS "\">"
	    "<m:Action><m:Settings><m:Server><m:Type>MobileSync</m:Type>"
	    "<m:Url>https://p.example.test/eas</m:Url></m:Server></m:Settings></m:Action>"
	    "</m:Response></a:Autodiscover>";
	REQUIRE(parse_str(prefixed, &r, &err) == 0);
	CHECK_STR(r.url, "https://p.example.test/eas");
	CHECK_STR(r.display_name, "");

	/* an element of the right name in another namespace does not count */
	REQUIRE(parse_str(ms_doc(buf, sizeof(buf),
	                         "<Settings><Server><Type>MobileSync</Type>"
	                         "<x:Url xmlns:x=\"urn:evil\">https://evil.test/</x:Url>"
	                         "<Url>https://good.example.test/eas</Url></Server></Settings>"),
	                  &r, &err) == 0);
	CHECK_STR(r.url, "https://good.example.test/eas");
	CHECK(parse_str(ms_doc(buf, sizeof(buf),
	                       "<Settings><Server><Type>MobileSync</Type>"
	                       "<x:Url xmlns:x=\"urn:evil\">https://evil.test/</x:Url>"
	                       "</Server></Settings>"),
	                &r, &err) < 0);
	CHECK_STR(r.url, "");

	/* no MobileSync server at all */
	CHECK_INT(parse_str(ms_doc(buf, sizeof(buf),
	                           "<Settings><Server><Type>CertEnroll</Type>"
	                           "<Url>https://cert.example.test/</Url></Server></Settings>"),
	                    &r, &err),
	          HK_ERR_NOT_FOUND);
	CHECK(err != NULL);
}

/* A MobileSync URL carries the password next: https only, nothing odd. */
static void test_parse_settings_url_checks(void)
{
	static const char *const bad[] = {
	    "http://mail.example.test/Microsoft-Server-ActiveSync",
	    "https://user:pw@mail.example.test/Microsoft-Server-ActiveSync",
	    "https://mail.example.test/Microsoft-Server-ActiveSync?Cmd=Sync",
	    "file:///etc/passwd",
	    "/Microsoft-Server-ActiveSync",
	    "mail.example.test/Microsoft-Server-ActiveSync",
	    "https://mail.example.test/a b",
	    "https://mail.example.test/&#x7f;",
	    "https://mail.example.test/&#xe9;",
	    "javascript:alert(1)",
	};
	char buf[8192];
	struct autodiscover_result r;
	const char *err;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = parse_str(settings_doc(buf, sizeof(buf), bad[i]), &r, &err);
		if (!CHECK(ret < 0))
			fprintf(stderr, "  accepted: %s -> %s\n", bad[i], r.url);
		CHECK(err != NULL);
		CHECK_STR(r.url, "");
	}
	/* longer than EAS_URL_MAX */
	static char big[EAS_URL_MAX + 64], doc[4 * EAS_URL_MAX];
	int n = snprintf(big, sizeof(big), "https://mail.example.test/");
	memset(big + n, 'a', sizeof(big) - 1 - (size_t)n);
	big[sizeof(big) - 1] = '\0';
	CHECK_INT(parse_str(settings_doc(doc, sizeof(doc), big), &r, &err), HK_ERR_TOO_LONG);
	/* a fragment is dropped, the case of the scheme does not matter */
	REQUIRE(parse_str(settings_doc(buf, sizeof(buf), "HTTPS://Mail.Example.Test/eas#frag"), &r,
	                  &err) == 0);
	CHECK(strstr(r.url, "#") == NULL);
	CHECK(strncmp(r.url, "https://", 8) == 0);
}

static void test_parse_redirects(void)
{
	struct autodiscover_result r;
	const char *err;
	REQUIRE(parse_str(doc_redirect_addr, &r, &err) == 0);
	CHECK_INT(r.kind, AUTODISCOVER_REDIRECT_ADDR);
	CHECK_STR(r.address, "chris@contoso.com");
	CHECK_STR(r.url, "");

	char buf[8192];
	REQUIRE(parse_str(ms_doc(buf, sizeof(buf),
	                         "<Redirect> https://autodiscover.contoso.com/autodiscover/"
	                         "autodiscover.xml </Redirect>"),
	                  &r, &err) == 0);
	CHECK_INT(r.kind, AUTODISCOVER_REDIRECT_URL);
	CHECK_STR(r.url, "https://autodiscover.contoso.com/autodiscover/autodiscover.xml");

	static const char *const bad[] = {
	    "<Redirect>http://autodiscover.contoso.com/autodiscover/autodiscover.xml</Redirect>",
	    "<Redirect>not an address</Redirect>",
	    "<Redirect>chris@127.0.0.1</Redirect>",
	    "<Redirect>chris@localhost</Redirect>",
	    "<Redirect></Redirect>",
	    "<Redirect>a@example.test</Redirect><Redirect>b@example.test</Redirect>",
	    ("<Redirect>a@example.test</Redirect><Settings><Server><Type>MobileSync</Type>"
	     "<Url>https://x.example.test/</Url></Server></Settings>"),
	    "<Redirect><b>a@example.test</b></Redirect>",
	    "",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (!CHECK(parse_str(ms_doc(buf, sizeof(buf), bad[i]), &r, &err) < 0))
			fprintf(stderr, "  accepted: %s\n", bad[i]);
		CHECK(err != NULL);
		CHECK_INT(r.kind, 0);
	}
}

static void test_parse_errors(void)
{
	struct autodiscover_result r;
	const char *err;
	REQUIRE(parse_str(doc_error_600, &r, &err) == 0);
	CHECK_INT(r.kind, AUTODISCOVER_ERROR);
	CHECK_INT(r.code, 600);
	CHECK_STR(r.message, "Invalid Request");
	CHECK_STR(r.debug_data, "");

	REQUIRE(parse_str(doc_error_601, &r, &err) == 0);
	CHECK_INT(r.kind, AUTODISCOVER_ERROR);
	CHECK_INT(r.code, 601);
	CHECK_STR(r.message, "Provider is not available");
	CHECK_STR(r.debug_data, "no provider for the requested schema");

	REQUIRE(parse_str(doc_action_error, &r, &err) == 0);
	CHECK_INT(r.kind, AUTODISCOVER_ACTION_ERROR);
	CHECK_INT(r.code, 2);
	CHECK_STR(r.message, "The directory service could not be reached");
	CHECK_STR(r.debug_data, "MailUser");
	CHECK_STR(r.email, "chris@woodgrovebank.com");

	/* non-numeric codes, a generic Response without an Error */
	static const char bad_code[] =
	    "<Autodiscover xmlns=\"" RS_NS "\"><Response><Error>"
	    "<ErrorCode>6OO</ErrorCode></Error></Response></Autodiscover>";
	CHECK(parse_str(bad_code, &r, &err) < 0);
	static const char huge_code[] =
	    "<Autodiscover xmlns=\"" RS_NS "\"><Response><Error>"
	    "<ErrorCode>99999999999999999999</ErrorCode></Error></Response></Autodiscover>";
	CHECK(parse_str(huge_code, &r, &err) < 0);
	static const char no_error[] = "<Autodiscover xmlns=\"" RS_NS "\"><Response>"
	                               "<Action/></Response></Autodiscover>";
	CHECK(parse_str(no_error, &r, &err) < 0);
}

/* Text is cut at a character boundary, never mid-sequence. */
static void test_parse_long_text(void)
{
	static char name[3000], action[4096], doc[8192];
	size_t n = 0;
	while (n + 2 < 1200) {
		memcpy(name + n, "\xc3\xa9", 2); /* é */
		n += 2;
	}
	name[n] = '\0';
	int k = snprintf(action, sizeof(action),
	                 "<Error><Status>3</Status><Message>x%s</Message></Error>", name);
	REQUIRE(k > 0 && (size_t)k < sizeof(action));
	struct autodiscover_result r;
	const char *err;
	REQUIRE(parse_str(ms_doc(doc, sizeof(doc), action), &r, &err) == 0);
	size_t len = strlen(r.message);
	CHECK(len > 0 && len < AUTODISCOVER_TEXT_MAX);
	CHECK(len % 2 == 1); /* "x" + whole two-byte characters */
	CHECK(xmlCheckUTF8((const xmlChar *)r.message));
}

static void test_parse_malformed(void)
{
	static const char *const bad[] = {
	    "",
	    "   ",
	    "not xml at all",
	    "<html><body><h1>Welcome to example.test</h1></body></html>",
	    ("<?xml version=\"1.0\"?><Autodiscover xmlns=\"" RS_NS "\"><Response xmlns=\"" MS_NS
	     "\"><Action><Settings>"),
	    "<Autodiscover xmlns=\"" RS_NS "\"><Response xmlns=\"" MS_NS "\"></Autodiscover>",
	    /* no namespace, the wrong one, the request's */
	    ("<Autodiscover><Response><Action><Redirect>a@example.test</Redirect></Action>"
	     "</Response></Autodiscover>"),
	    ("<Autodiscover xmlns=\"urn:other\"><Response xmlns=\"" MS_NS "\"><Action>"
	     "<Redirect>a@example.test</Redirect></Action></Response></Autodiscover>"),
	    ("<Autodiscover xmlns=\"" AUTODISCOVER_REQUEST_NS "\"><Request><EMailAddress>"
	     "a@example.test</EMailAddress></Request></Autodiscover>"),
	    /* two Responses, no Action, an Action with nothing */
	    ("<Autodiscover xmlns=\"" RS_NS "\"><Response xmlns=\"" MS_NS "\"><Action>"
	     "<Redirect>a@example.test</Redirect></Action></Response><Response xmlns=\"" MS_NS
	     "\"><Action><Redirect>b@example.test</Redirect></Action></Response></Autodiscover>"),
	    ("<Autodiscover xmlns=\"" RS_NS "\"><Response xmlns=\"" MS_NS "\"><User/>"
	     "</Response></Autodiscover>"),
	    ("<Autodiscover xmlns=\"" RS_NS "\"><Response xmlns=\"" MS_NS "\"><Action/>"
	     "</Response></Autodiscover>"),
	    /* two Urls in one Server */
	    ("<Autodiscover xmlns=\"" RS_NS "\"><Response xmlns=\"" MS_NS "\"><Action><Settings>"
	     "<Server><Type>MobileSync</Type><Url>https://a.example.test/</Url>"
	     "<Url>https://b.example.test/</Url></Server></Settings></Action></Response>"
	     "</Autodiscover>"),
	    /* an undeclared entity, an undeclared prefix, a NUL byte (below) */
	    ("<Autodiscover xmlns=\"" RS_NS "\"><Response xmlns=\"" MS_NS "\"><Action>"
	     "<Redirect>&xxe;</Redirect></Action></Response></Autodiscover>"),
	    "<Autodiscover xmlns=\"" RS_NS "\"><x:Response><Action/></x:Response></Autodiscover>",
	    /* two roots */
	    "<Autodiscover xmlns=\"" RS_NS "\"/><Autodiscover xmlns=\"" RS_NS "\"/>",
	};
	struct autodiscover_result r;
	const char *err;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (!CHECK(parse_str(bad[i], &r, &err) < 0))
			fprintf(stderr, "  accepted: %s\n", bad[i]);
		CHECK(err != NULL);
		CHECK_INT(r.kind, 0);
		CHECK_INT(r.code, -1);
	}
	/* every prefix of a valid document is refused, and none crashes */
	size_t len = strlen(doc_settings);
	for (size_t cut = 0; cut + 20 < len; cut += 7) {
		err = NULL;
		CHECK(autodiscover_response_parse((const uint8_t *)doc_settings, cut, &r, &err) <
		      0);
		CHECK(err != NULL);
	}
	/* a NUL inside */
	char withnul[sizeof(doc_settings)];
	memcpy(withnul, doc_settings, sizeof(withnul));
	withnul[200] = '\0';
	CHECK(autodiscover_response_parse((const uint8_t *)withnul, sizeof(withnul) - 1, &r, &err) <
	      0);
}

static void test_parse_oversize(void)
{
	size_t max = AUTODISCOVER_BODY_MAX;
	char *doc = malloc(max + 2);
	REQUIRE(doc != NULL);
	/* a valid document padded with a comment to exactly the limit */
	char head[8192];
	settings_doc(head, sizeof(head), AS_URL);
	size_t hl = strlen(head);
	memcpy(doc, head, hl);
	memcpy(doc + hl, "<!--", 4);
	memset(doc + hl + 4, 'x', max - hl - 7);
	memcpy(doc + max - 3, "-->", 3);
	struct autodiscover_result r;
	const char *err = NULL;
	CHECK_INT(autodiscover_response_parse((const uint8_t *)doc, max, &r, &err), 0);
	CHECK_STR(r.url, AS_URL);
	/* one byte more */
	memcpy(doc + max - 3, "x-->", 4);
	CHECK_INT(autodiscover_response_parse((const uint8_t *)doc, max + 1, &r, &err),
	          HK_ERR_TOO_LONG);
	CHECK(err != NULL);
	free(doc);

	/* deep nesting stops at libxml2's depth limit, without recursion here */
	size_t depth = 5000;
	char *deep = malloc(depth * 7 + 256);
	REQUIRE(deep != NULL);
	size_t n = (size_t)snprintf(deep, 256, "<Autodiscover xmlns=\"" RS_NS "\">");
	for (size_t i = 0; i < depth; i++) {
		memcpy(deep + n, "<a>", 3);
		n += 3;
	}
	CHECK(autodiscover_response_parse((const uint8_t *)deep, n, &r, &err) < 0);
	free(deep);
}

/* A listening socket that nothing should connect to. */
static int listener(uint16_t *port_r)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		abort();
	*port_r = ntohs(a.sin_port);
	return fd;
}

static bool nobody_connected(int fd)
{
	int c = accept(fd, NULL, NULL);
	if (c >= 0) {
		close(c);
		return false;
	}
	return errno == EAGAIN; /* EWOULDBLOCK on Linux */
}

/* No DTD is accepted, so no entity is declared, expanded or fetched. */
static void test_parse_xxe(void)
{
	const char *secret_path = test_path("xxe-secret.txt");
	FILE *f = fopen(secret_path, "w");
	REQUIRE(f != NULL);
	fputs("https://leak.example.test/TOPSECRET", f);
	fclose(f);
	uint16_t port;
	int lfd = listener(&port);

	char docs[8][1024];
	const char *tail = "<Autodiscover xmlns=\"" RS_NS "\"><Response xmlns=\"" MS_NS "\">"
	                   "<Action><Settings><Server><Type>MobileSync</Type><Url>&xxe;</Url>"
	                   "</Server></Settings></Action></Response></Autodiscover>";
	/* external entity from a file */
	snprintf(docs[0], sizeof(docs[0]),
	         "<?xml version=\"1.0\"?><!DOCTYPE Autodiscover [<!ENTITY xxe SYSTEM "
	         "\"file://%s\">]>%s",
	         secret_path, tail);
	/* external entity over the network */
	snprintf(docs[1], sizeof(docs[1]),
	         "<!DOCTYPE Autodiscover [<!ENTITY xxe SYSTEM \"http://127.0.0.1:%u/x\">]>%s", port,
	         tail);
	/* external DTD over the network */
	snprintf(docs[2], sizeof(docs[2]),
	         "<!DOCTYPE Autodiscover SYSTEM \"http://127.0.0.1:%u/evil.dtd\">%s", port, tail);
	/* a parameter entity pulling a DTD */
	snprintf(docs[3], sizeof(docs[3]),
	         "<!DOCTYPE Autodiscover [<!ENTITY %% p SYSTEM \"http://127.0.0.1:%u/p.dtd\"> %%p;"
	         "]>%s",
	         port, tail);
	/* an internal entity */
	snprintf(docs[4], sizeof(docs[4]),
	         "<!DOCTYPE Autodiscover [<!ENTITY xxe \"https://evil.test/eas\">]>%s", tail);
	/* a public identifier, an empty internal subset */
	snprintf(docs[5], sizeof(docs[5]),
	         "<!DOCTYPE Autodiscover PUBLIC \"-//X//Y\" \"http://127.0.0.1:%u/pub.dtd\">%s",
	         port, tail);
	snprintf(docs[6], sizeof(docs[6]), "<!DOCTYPE Autodiscover []>%s", tail);
	/* XInclude is not processed: the include stays an unknown element */
	char settings[4096];
	settings_doc(settings, sizeof(settings), AS_URL);
	char *resp = strstr(settings, "<User>");
	REQUIRE(resp != NULL);
	snprintf(docs[7], sizeof(docs[7]),
	         "%.*s<xi:include xmlns:xi=\"http://www.w3.org/2001/"
	         "XInclude\" href=\"file://%s\" parse=\"text\"/>%s",
	         (int)(resp - settings), settings, secret_path, resp);

	struct autodiscover_result r;
	const char *err;
	for (size_t i = 0; i < 7; i++) {
		int64_t t0 = mono_ms();
		if (!CHECK(parse_str(docs[i], &r, &err) < 0))
			fprintf(stderr, "  accepted: %s -> %s\n", docs[i], r.url);
		/* refused by the DOCTYPE guard itself, not by luck further on */
		CHECK(err != NULL && strstr(err, "DTD") != NULL);
		CHECK(strstr(r.url, "TOPSECRET") == NULL && strstr(r.url, "evil") == NULL);
		CHECK(mono_ms() - t0 < 5000);
	}
	REQUIRE(parse_str(docs[7], &r, &err) == 0);
	CHECK_STR(r.url, AS_URL);
	CHECK(nobody_connected(lfd));
	close(lfd);
}

/* Entity expansion bombs die at the DOCTYPE, at once. */
static void test_parse_billion_laughs(void)
{
	static const char bomb[] =
	    "<?xml version=\"1.0\"?>\n<!DOCTYPE Autodiscover [\n"
	    " <!ENTITY a \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\">\n"
	    " <!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\n"
	    " <!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">\n"
	    " <!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">\n"
	    " <!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\">\n"
	    " <!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\">\n"
	    " <!ENTITY g \"&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;\">\n"
	    "]>\n<Autodiscover xmlns=\"" RS_NS "\"><Response xmlns=\"" MS_NS "\"><Action>"
	    "<Error><Message>&g;</Message></Error></Action></Response></Autodiscover>";
	struct autodiscover_result r;
	const char *err;
	int64_t t0 = mono_ms();
	CHECK(parse_str(bomb, &r, &err) < 0);
	CHECK(err != NULL && strstr(err, "DTD") != NULL);
	CHECK(mono_ms() - t0 < 2000);
	CHECK_STR(r.message, "");
}

/* libxml2 reports bad encodings through its process-wide handler, which
 * prints to stderr: the parser silences it, so nothing a server sends
 * reaches stderr past the log. */
static void test_parse_quiet(void)
{
	static const char *const docs[] = {
	    "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n<a>\xbe\xbe\xbe\xbe\xbe</a>",
	    "<?xml version=\"1.0\" encoding=\"ISO-2022-JP\"?><a>\xff\xff\xff\xff</a>",
	    "<?xml version=\"1.0\" encoding=\"UTF-7\"?><a>\xff\xff\xff\xff</a>",
	    "<?xml version=\"1.0\" encoding=\"SHIFT_JIS\"?><a>\x81\xff\x81\xff</a>",
	    "<?xml version=\"1.0\" encoding=\"no-such-charset\"?><a/>",
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><a>\xc3\x28\xff</a>",
	    "\xff\xfe<\x00a\x00>\x00\x00\xd8",
	};
	const char *path = test_path("stderr.txt");
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	REQUIRE(saved >= 0 && fd >= 0);
	dup2(fd, STDERR_FILENO);
	close(fd);
	struct autodiscover_result r;
	const char *err;
	int refused = 0;
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
		refused += parse_str(docs[i], &r, &err) < 0;
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	CHECK_INT(refused, sizeof(docs) / sizeof(docs[0]));
	CHECK_INT(test_file_count(path, "error", 5), 0);
	CHECK_INT(test_file_count(path, "\n", 1), 0);

	/* UTF-8 only: the declaration is ignored, other encodings refused */
	char doc[8192];
	settings_doc(doc, sizeof(doc), AS_URL);
	char *decl_end = strstr(doc, "?>");
	REQUIRE(decl_end != NULL);
	char latin[8192 + 64];
	snprintf(latin, sizeof(latin), "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"%s", decl_end);
	REQUIRE(parse_str(latin, &r, &err) == 0);
	CHECK_STR(r.url, AS_URL);
	char bom[8192 + 3];
	snprintf(bom, sizeof(bom), "\xef\xbb\xbf%s", doc);
	REQUIRE(parse_str(bom, &r, &err) == 0);
	CHECK_STR(r.url, AS_URL);
	static const uint8_t utf16[] = {0xff, 0xfe, '<', 0, 'a', 0, '/', 0, '>', 0};
	CHECK(autodiscover_response_parse(utf16, sizeof(utf16), &r, &err) < 0);
	CHECK(err != NULL && strstr(err, "UTF-8") != NULL);
	static const uint8_t ebcdic[] = {0x4c, 0x6f, 0xa7, 0x94, 0x93, 0x6e};
	CHECK(autodiscover_response_parse(ebcdic, sizeof(ebcdic), &r, &err) < 0);
}

/* ---- the request and the pure helpers ----------------------------------- */

static void test_request_build(void)
{
	char buf[AUTODISCOVER_REQUEST_MAX];
	size_t len = 0;
	const char *err = NULL;
	REQUIRE(autodiscover_request_build(USER, buf, sizeof(buf), &len, &err) == 0);
	CHECK_INT(len, strlen(buf));
	CHECK(strstr(buf, "<EMailAddress>" USER "</EMailAddress>") != NULL);

	/* a local part full of XML's special characters reads back unchanged */
	static const char tricky[] = "o'b<r>i&e\"n]]>&amp;@Example.test";
	REQUIRE(autodiscover_request_build(tricky, buf, sizeof(buf), &len, &err) == 0);
	CHECK(strstr(buf, "<r>") == NULL && strstr(buf, "]]>") == NULL);
	xmlDocPtr doc =
	    xmlReadMemory(buf, (int)len, NULL, NULL, XML_PARSE_NONET | XML_PARSE_NOERROR);
	REQUIRE(doc != NULL);
	xmlNodePtr root = xmlDocGetRootElement(doc);
	CHECK(root != NULL && root->ns != NULL &&
	      xmlStrEqual(root->ns->href, (const xmlChar *)AUTODISCOVER_REQUEST_NS) &&
	      xmlStrEqual(root->name, (const xmlChar *)"Autodiscover"));
	xmlNodePtr req = root != NULL ? xmlFirstElementChild(root) : NULL;
	CHECK(req != NULL && xmlStrEqual(req->name, (const xmlChar *)"Request") &&
	      req->ns != NULL &&
	      xmlStrEqual(req->ns->href, (const xmlChar *)AUTODISCOVER_REQUEST_NS));
	xmlNodePtr email = req != NULL ? xmlFirstElementChild(req) : NULL;
	xmlNodePtr schema = email != NULL ? xmlNextElementSibling(email) : NULL;
	if (CHECK(email != NULL && schema != NULL)) {
		xmlChar *t = xmlNodeGetContent(email);
		CHECK_STR((const char *)t, tricky);
		xmlFree(t);
		t = xmlNodeGetContent(schema);
		CHECK_STR((const char *)t, AUTODISCOVER_MOBILESYNC_NS);
		xmlFree(t);
		CHECK(xmlStrEqual(schema->name, (const xmlChar *)"AcceptableResponseSchema"));
	}
	xmlFreeDoc(doc);

	/* a buffer too small: an error, nothing past it written */
	char small[64];
	memset(small, 'Z', sizeof(small));
	CHECK_INT(autodiscover_request_build(USER, small, 40, &len, &err), HK_ERR_TOO_LONG);
	CHECK(small[40] == 'Z' && small[63] == 'Z');

	/* the largest valid address fits AUTODISCOVER_REQUEST_MAX, escaped */
	char addr[AUTODISCOVER_ADDR_MAX];
	memset(addr, '"', 64);
	addr[64] = '@';
	size_t n = 65;
	for (int l = 0; l < 3; l++) {
		memset(addr + n, 'a', 63);
		n += 63;
		addr[n++] = '.';
	}
	memset(addr + n, 'b', 61);
	addr[n + 61] = '\0';
	REQUIRE(strlen(addr + 65) == 253);
	CHECK_INT(autodiscover_request_build(addr, buf, sizeof(buf), &len, &err), 0);
}

static void test_address_check(void)
{
	static const char *const good[] = {
	    "alice@example.test",
	    "a@b.co",
	    "first.last+tag@sub.example.test",
	    "\xc3\xa9lise@example.test",
	    "x@a-b.example.test",
	    "\"q s\"@example.test",
	};
	static const char *const bad[] = {
	    "",
	    "alice",
	    "@example.test",
	    "alice@",
	    "alice@localhost",
	    "alice@127.0.0.1",
	    "alice@[127.0.0.1]",
	    "alice@example..test",
	    "alice@.example.test",
	    "alice@example.test.",
	    "alice@-x.example.test",
	    "alice@x-.example.test",
	    "alice@exa_mple.test",
	    "alice@exa mple.test",
	    "alice@example.test/x",
	    "alice@example.test:443",
	    "alice@ex\xc3\xa4mple.test",
	    "al\nice@example.test",
	    "al\x7fice@example.test",
	    "\xc3(@example.test",
	    "alice@1.2.3.4",
	};
	const char *domain, *err;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		err = NULL;
		if (!CHECK(autodiscover_address_check(good[i], &domain, &err) == 0))
			fprintf(stderr, "  refused: %s (%s)\n", good[i], err);
	}
	CHECK(autodiscover_address_check("x@y@Example.Test", &domain, &err) < 0 ||
	      strcmp(domain, "Example.Test") == 0);
	REQUIRE(autodiscover_address_check(USER, &domain, &err) == 0);
	CHECK_STR(domain, "example.test");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		if (!CHECK(autodiscover_address_check(bad[i], &domain, &err) < 0))
			fprintf(stderr, "  accepted: %s\n", bad[i]);
		CHECK(err != NULL);
	}
	CHECK(autodiscover_address_check(NULL, &domain, &err) < 0);

	/* the limits: a 64-byte local part and 63-byte labels pass, one more fails */
	char addr[AUTODISCOVER_ADDR_MAX + 8];
	memset(addr, 'l', 64);
	snprintf(addr + 64, sizeof(addr) - 64, "@example.test");
	CHECK(autodiscover_address_check(addr, &domain, &err) == 0);
	memset(addr, 'l', 65);
	snprintf(addr + 65, sizeof(addr) - 65, "@example.test");
	CHECK(autodiscover_address_check(addr, &domain, &err) < 0);
	memcpy(addr, "a@", 2);
	memset(addr + 2, 'd', 63);
	snprintf(addr + 65, sizeof(addr) - 65, ".test");
	CHECK(autodiscover_address_check(addr, &domain, &err) == 0);
	memset(addr + 2, 'd', 64);
	snprintf(addr + 66, sizeof(addr) - 66, ".test");
	CHECK(autodiscover_address_check(addr, &domain, &err) < 0);
	/* a 254-byte domain */
	memcpy(addr, "a@", 2);
	size_t n = 2;
	for (int l = 0; l < 3; l++) {
		memset(addr + n, 'd', 63);
		n += 63;
		addr[n++] = '.';
	}
	memset(addr + n, 'e', 62);
	addr[n + 62] = '\0';
	CHECK_INT(strlen(addr + 2), 254);
	CHECK(autodiscover_address_check(addr, &domain, &err) < 0);
	addr[n + 61] = '\0';
	CHECK(autodiscover_address_check(addr, &domain, &err) == 0);
}

static void test_host_in_domain(void)
{
	CHECK(autodiscover_host_in_domain("example.test", "example.test"));
	CHECK(autodiscover_host_in_domain("autodiscover.example.test", "example.test"));
	CHECK(autodiscover_host_in_domain("Mail.EXAMPLE.test", "example.TEST"));
	CHECK(!autodiscover_host_in_domain("evilexample.test", "example.test"));
	CHECK(!autodiscover_host_in_domain("example.test.evil.test", "example.test"));
	CHECK(!autodiscover_host_in_domain("test", "example.test"));
	CHECK(!autodiscover_host_in_domain("example.test", "mail.example.test"));
	CHECK(!autodiscover_host_in_domain("example.test", ""));
	CHECK(!autodiscover_host_in_domain("127.0.0.1", "example.test"));
}

static void test_step_urls(void)
{
	char buf[EAS_URL_MAX];
	REQUIRE(autodiscover_step_url(AUTODISCOVER_STEP_DOMAIN, "example.test", buf, sizeof(buf)) ==
	        0);
	CHECK_STR(buf, "https://example.test/autodiscover/autodiscover.xml");
	REQUIRE(autodiscover_step_url(AUTODISCOVER_STEP_AUTODISCOVER_HOST, "example.test", buf,
	                              sizeof(buf)) == 0);
	CHECK_STR(buf, "https://autodiscover.example.test/autodiscover/autodiscover.xml");
	REQUIRE(autodiscover_step_url(AUTODISCOVER_STEP_HTTP_REDIRECT, "example.test", buf,
	                              sizeof(buf)) == 0);
	CHECK_STR(buf, "http://autodiscover.example.test/autodiscover/autodiscover.xml");
	CHECK(autodiscover_step_url(AUTODISCOVER_STEP_END, "example.test", buf, sizeof(buf)) < 0);
	CHECK_INT(autodiscover_step_url(AUTODISCOVER_STEP_DOMAIN, "example.test", buf, 20),
	          HK_ERR_TOO_LONG);
}

/* ---- the driver: servers ------------------------------------------------- */

enum behave {
	B_SETTINGS,  /* 200, MobileSync AS_URL */
	B_STATUS,    /* arg: the status ("404"), empty body */
	B_HTML,      /* 200, a web page */
	B_REDIRECT,  /* 302 Location: arg */
	B_451,       /* 451 X-MS-Location: arg */
	B_ADDR,      /* asked for alice: Redirect to arg; else settings */
	B_ADDR_FLIP, /* alice -> bob, bob -> alice, forever */
	B_BODY,      /* 200 with arg as the body */
	B_HANG,      /* no answer */
};

struct behaviour {
	enum behave kind;
	const char *arg;
};

static void respond(struct tfx_server *srv, struct evhttp_request *req, int status,
                    const char *header, const char *body)
{
	const char *headers[] = {header, NULL};
	struct tfx_reply reply = {
	    .status = status,
	    .headers = header != NULL ? headers : NULL,
	    .body = body,
	    .body_len = body != NULL ? strlen(body) : 0,
	};
	tfx_respond(srv, req, &reply);
}

static void h_autodiscover(struct tfx_server *srv, struct evhttp_request *req,
                           const struct tfx_request *rec, void *ctx)
{
	const struct behaviour *b = ctx;
	char doc[8192], hdr[EAS_URL_MAX + 32], action[1024];
	bool alice =
	    rec->body != NULL && strstr((const char *)rec->body, "<EMailAddress>" USER "<") != NULL;
	switch (b->kind) {
	case B_SETTINGS:
		respond(srv, req, 200, NULL, settings_doc(doc, sizeof(doc), AS_URL));
		return;
	case B_STATUS: respond(srv, req, (int)strtol(b->arg, NULL, 10), NULL, NULL); return;
	case B_HTML:
		respond(srv, req, 200, "Content-Type: text/html", "<html><body>hi</body></html>");
		return;
	case B_REDIRECT:
		snprintf(hdr, sizeof(hdr), "Location: %s", b->arg);
		respond(srv, req, 302, hdr, NULL);
		return;
	case B_451:
		snprintf(hdr, sizeof(hdr), "X-MS-Location: %s", b->arg);
		respond(srv, req, 451, hdr, NULL);
		return;
	case B_ADDR:
		if (alice) {
			snprintf(action, sizeof(action), "<Redirect>%s</Redirect>", b->arg);
			respond(srv, req, 200, NULL, ms_doc(doc, sizeof(doc), action));
		} else {
			respond(srv, req, 200, NULL, settings_doc(doc, sizeof(doc), AS_URL));
		}
		return;
	case B_ADDR_FLIP:
		snprintf(action, sizeof(action), "<Redirect>%s</Redirect>",
		         alice ? "bob@example.test" : USER);
		respond(srv, req, 200, NULL, ms_doc(doc, sizeof(doc), action));
		return;
	case B_BODY: respond(srv, req, 200, "Content-Type: text/xml", b->arg); return;
	case B_HANG:
	default: return;
	}
}

/* ---- the driver: a loop, a client, named servers ------------------------- */

enum host {
	H_DOMAIN,       /* example.test:443 */
	H_AUTODISCOVER, /* autodiscover.example.test:443 */
	H_PROBE,        /* autodiscover.example.test:80 (plain HTTP) */
	H_MAIL,         /* mail.example.test:443 */
	H_OTHER,        /* autodiscover.other.test:443 */
	H_COUNT,
};

static const char *const host_name[H_COUNT] = {
    "example.test:443",      "autodiscover.example.test:443", "autodiscover.example.test:80",
    "mail.example.test:443", "autodiscover.other.test:443",
};

struct env {
	struct event_base *base;
	struct event *tick;
	struct httpc *h;
	struct tfx_server *srv[H_COUNT];
	struct behaviour beh[H_COUNT];
	char map[H_COUNT][128];
	const char *connect_to[H_COUNT + 1];
};

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* A port nothing listens on: bound, then closed. */
static uint16_t closed_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		abort();
	close(fd);
	return ntohs(a.sin_port);
}

/* Every name maps to 127.0.0.1: to a closed port unless serve() gives it
 * a server. Nothing is ever resolved through DNS. */
static bool env_init(struct env *e)
{
	memset(e, 0, sizeof(*e));
	e->base = event_base_new();
	if (e->base == NULL)
		return false;
	e->tick = event_new(e->base, -1, EV_PERSIST, on_tick, NULL);
	struct timeval tv = {0, 20000};
	if (e->tick == NULL || event_add(e->tick, &tv) < 0 || httpc_new(e->base, &e->h) < 0)
		return false;
	uint16_t closed = closed_port();
	for (int i = 0; i < H_COUNT; i++) {
		snprintf(e->map[i], sizeof(e->map[i]), "%s:127.0.0.1:%u", host_name[i], closed);
		e->connect_to[i] = e->map[i];
	}
	return true;
}

/* Serves host with behaviour kind; cert NULL: the right one for the name. */
static bool serve(struct env *e, enum host host, enum behave kind, const char *arg,
                  const char *cert, const char *key)
{
	e->beh[host] = (struct behaviour){kind, arg};
	struct tfx_server_opts o = {
	    .cert_file = host == H_PROBE   ? NULL
	                 : cert != NULL    ? cert
	                 : host == H_OTHER ? other_cert
	                                   : ex_cert,
	    .key_file = host == H_PROBE   ? NULL
	                : key != NULL     ? key
	                : host == H_OTHER ? other_key
	                                  : ex_key,
	    .handler = h_autodiscover,
	    .ctx = &e->beh[host],
	};
	if (tfx_server_new(e->base, &o, &e->srv[host]) < 0)
		return false;
	snprintf(e->map[host], sizeof(e->map[host]), "%s:127.0.0.1:%u", host_name[host],
	         tfx_server_port(e->srv[host]));
	return true;
}

static size_t count(const struct env *e, enum host host)
{
	return e->srv[host] != NULL ? tfx_server_count(e->srv[host]) : 0;
}

static void env_done(struct env *e)
{
	httpc_free(&e->h);
	for (int i = 0; i < H_COUNT; i++)
		tfx_server_free(&e->srv[i]);
	if (e->tick != NULL)
		event_free(e->tick);
	if (e->base != NULL)
		event_base_free(e->base);
	memset(e, 0, sizeof(*e));
}

#define RUN_UNTIL(base, cond)                                                                      \
	for (int64_t end_ = mono_ms() + DEADLINE_MS; !(cond) && mono_ms() < end_;)                 \
	event_base_loop(base, EVLOOP_ONCE)

static void run_for(struct event_base *base, long ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

/* What the callback saw, copied out. */
struct got {
	int calls;
	enum autodiscover_status status;
	bool has_error, has_url, has_result;
	char error[256], url[EAS_URL_MAX], address[AUTODISCOVER_ADDR_MAX];
	struct autodiscover_result result;
	unsigned redirects;
	struct autodiscover_attempt attempts[AUTODISCOVER_ATTEMPTS_MAX];
	size_t attempt_count, attempts_total;
	long elapsed_ms;
};

static void on_outcome(const struct autodiscover_outcome *o, void *ctx)
{
	struct got *g = ctx;
	g->calls++;
	g->status = o->status;
	g->has_error = o->error != NULL;
	g->has_url = o->url != NULL;
	g->has_result = o->result != NULL;
	CHECK((o->status == AUTODISCOVER_FOUND) == (o->error == NULL));
	CHECK(o->address != NULL);
	snprintf(g->error, sizeof(g->error), "%s", o->error != NULL ? o->error : "");
	snprintf(g->url, sizeof(g->url), "%s", o->url != NULL ? o->url : "");
	snprintf(g->address, sizeof(g->address), "%s", o->address);
	if (o->result != NULL)
		g->result = *o->result;
	g->redirects = o->redirects;
	CHECK(o->attempt_count <= AUTODISCOVER_ATTEMPTS_MAX &&
	      o->attempt_count <= o->attempts_total);
	memcpy(g->attempts, o->attempts, o->attempt_count * sizeof(o->attempts[0]));
	g->attempt_count = o->attempt_count;
	g->attempts_total = o->attempts_total;
	g->elapsed_ms = o->elapsed_ms;
}

static struct autodiscover_config config(const struct env *e)
{
	return (struct autodiscover_config){
	    .address = USER,
	    .ca_file = pki.ca_file,
	    .connect_to = e->connect_to,
	};
}

/* Runs one discovery to its callback. */
static bool discover(struct env *e, const struct autodiscover_config *cfg, struct got *g)
{
	memset(g, 0, sizeof(*g));
	struct secret *pw = secret_dup(PASSWORD, strlen(PASSWORD));
	struct autodiscover *ad = NULL;
	const char *err = NULL;
	int ret = autodiscover_start(e->h, cfg, pw, on_outcome, g, &ad, &err);
	secret_free(&pw); /* the discovery keeps only its own copy */
	if (!CHECK_INT(ret, 0)) {
		fprintf(stderr, "  start: %s\n", err);
		return false;
	}
	RUN_UNTIL(e->base, g->calls > 0);
	/* exactly once: nothing more after a while */
	run_for(e->base, 50);
	CHECK_INT(g->calls, 1);
	CHECK_INT(httpc_active(e->h), 0);
	return g->calls == 1;
}

static const char *step_url(enum autodiscover_step step)
{
	static char buf[4][EAS_URL_MAX];
	static int i;
	char *b = buf[i++ % 4];
	if (autodiscover_step_url(step, "example.test", b, EAS_URL_MAX) < 0)
		abort();
	return b;
}

/* The request a server got: POST, the credentials, the XML, the identity. */
static void check_post(const struct env *e, enum host host, const char *address)
{
	const struct tfx_request *rec = tfx_server_last(e->srv[host]);
	CHECK_STR(rec->method, "POST");
	CHECK_STR(rec->uri, "/autodiscover/autodiscover.xml");
	CHECK_STR(tfx_request_header(rec, "Authorization"), AUTH_VALUE);
	CHECK_STR(tfx_request_header(rec, "User-Agent"), EAS_USER_AGENT);
	const char *type = tfx_request_header(rec, "Content-Type");
	CHECK(type != NULL && strncmp(type, "text/xml", 8) == 0);
	char want[AUTODISCOVER_ADDR_MAX + 64];
	snprintf(want, sizeof(want), "<EMailAddress>%s</EMailAddress>", address);
	CHECK(rec->body != NULL && strstr((const char *)rec->body, want) != NULL);
	CHECK(!rec->truncated);
}

/* ---- the driver: the discovery order ------------------------------------ */

static void test_found_first(void)
{
	struct env e;
	REQUIRE(env_init(&e));
	REQUIRE(serve(&e, H_DOMAIN, B_SETTINGS, NULL, NULL, NULL));
	REQUIRE(serve(&e, H_AUTODISCOVER, B_SETTINGS, NULL, NULL, NULL));
	struct autodiscover_config cfg = config(&e);
	struct got g;
	if (discover(&e, &cfg, &g)) {
		CHECK_INT(g.status, AUTODISCOVER_FOUND);
		CHECK_STR(g.url, AS_URL);
		CHECK(!g.has_error && g.has_result);
		CHECK_STR(g.result.display_name, "A");
		CHECK_STR(g.address, USER);
		CHECK_INT(g.attempt_count, 1);
		CHECK_STR(g.attempts[0].url, step_url(AUTODISCOVER_STEP_DOMAIN));
		CHECK(g.attempts[0].post);
		CHECK_INT(g.attempts[0].http_status, 200);
		CHECK_INT(count(&e, H_DOMAIN), 1);
		CHECK_INT(count(&e, H_AUTODISCOVER), 0);
		check_post(&e, H_DOMAIN, USER);
	}
	env_done(&e);
}

/* The first candidate fails in each way; the second answers. */
static void test_order_first_fails(void)
{
	static const struct {
		const char *what;
		enum behave kind;
		const char *arg;
		bool wrong_cert;
		bool no_server;
		enum httpc_result transport;
		long status;
	} cases[] = {
	    {"refused", B_SETTINGS, NULL, false, true, HTTPC_CONNECT_FAILED, 0},
	    {"404", B_STATUS, "404", false, false, HTTPC_OK, 404},
	    {"500", B_STATUS, "500", false, false, HTTPC_OK, 500},
	    {"tls", B_SETTINGS, NULL, true, false, HTTPC_TLS_FAILED, 0},
	    {"html", B_HTML, NULL, false, false, HTTPC_OK, 200},
	    {"302 no location", B_STATUS, "302", false, false, HTTPC_OK, 302},
	    {"bad xml", B_BODY, "<Autodiscover", false, false, HTTPC_OK, 200},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct env e;
		REQUIRE(env_init(&e));
		if (!cases[i].no_server)
			REQUIRE(serve(&e, H_DOMAIN, cases[i].kind, cases[i].arg,
			              cases[i].wrong_cert ? pki.cert_file : NULL,
			              cases[i].wrong_cert ? pki.key_file : NULL));
		REQUIRE(serve(&e, H_AUTODISCOVER, B_SETTINGS, NULL, NULL, NULL));
		struct autodiscover_config cfg = config(&e);
		struct got g;
		if (discover(&e, &cfg, &g)) {
			if (!CHECK_INT(g.status, AUTODISCOVER_FOUND))
				fprintf(stderr, "  case %s: %s\n", cases[i].what, g.error);
			CHECK_STR(g.url, AS_URL);
			CHECK_INT(g.attempt_count, 2);
			CHECK_STR(g.attempts[0].url, step_url(AUTODISCOVER_STEP_DOMAIN));
			CHECK_INT(g.attempts[0].transport, cases[i].transport);
			CHECK_INT(g.attempts[0].http_status, cases[i].status);
			CHECK(g.attempts[0].note != NULL);
			CHECK_STR(g.attempts[1].url, step_url(AUTODISCOVER_STEP_AUTODISCOVER_HOST));
			CHECK_INT(g.attempts[1].http_status, 200);
			CHECK_INT(count(&e, H_AUTODISCOVER), 1);
			check_post(&e, H_AUTODISCOVER, USER);
			if (cases[i].wrong_cert) /* nothing reached the server over a failed TLS */
				CHECK_INT(count(&e, H_DOMAIN), 0);
		}
		env_done(&e);
	}
}

/* Both https candidates fail: the plain-HTTP GET finds a redirect to an
 * https URL in the domain, which gets the POST. */
static void test_http_redirect_probe(void)
{
	struct env e;
	REQUIRE(env_init(&e));
	REQUIRE(serve(&e, H_PROBE, B_REDIRECT,
	              "https://mail.example.test/autodiscover/autodiscover.xml", NULL, NULL));
	REQUIRE(serve(&e, H_MAIL, B_SETTINGS, NULL, NULL, NULL));
	struct autodiscover_config cfg = config(&e);
	struct got g;
	if (discover(&e, &cfg, &g)) {
		CHECK_INT(g.status, AUTODISCOVER_FOUND);
		CHECK_STR(g.url, AS_URL);
		CHECK_INT(g.redirects, 1);
		REQUIRE(g.attempt_count == 4);
		CHECK_STR(g.attempts[0].url, step_url(AUTODISCOVER_STEP_DOMAIN));
		CHECK_INT(g.attempts[0].transport, HTTPC_CONNECT_FAILED);
		CHECK_STR(g.attempts[1].url, step_url(AUTODISCOVER_STEP_AUTODISCOVER_HOST));
		CHECK_INT(g.attempts[1].transport, HTTPC_CONNECT_FAILED);
		CHECK_STR(g.attempts[2].url, step_url(AUTODISCOVER_STEP_HTTP_REDIRECT));
		CHECK(!g.attempts[2].post);
		CHECK_INT(g.attempts[2].http_status, 302);
		CHECK_STR(g.attempts[3].url,
		          "https://mail.example.test/autodiscover/autodiscover.xml");
		CHECK(g.attempts[3].post);
		/* the probe carried no credentials and no body */
		const struct tfx_request *probe = tfx_server_last(e.srv[H_PROBE]);
		CHECK_STR(probe->method, "GET");
		CHECK(tfx_request_header(probe, "Authorization") == NULL);
		CHECK_INT(probe->body_len, 0);
		check_post(&e, H_MAIL, USER);
	}
	env_done(&e);
}

/* The probe's redirect leaves the domain: handed to the caller, not
 * followed; the caller, once the user agreed, starts again there. */
static void test_http_redirect_other_domain(void)
{
	struct env e;
	REQUIRE(env_init(&e));
	static const char target[] =
	    "https://autodiscover.other.test/autodiscover/autodiscover.xml";
	REQUIRE(serve(&e, H_PROBE, B_REDIRECT, target, NULL, NULL));
	REQUIRE(serve(&e, H_OTHER, B_SETTINGS, NULL, NULL, NULL));
	struct autodiscover_config cfg = config(&e);
	struct got g;
	if (discover(&e, &cfg, &g)) {
		CHECK_INT(g.status, AUTODISCOVER_CONFIRM_REDIRECT);
		CHECK_STR(g.url, target);
		CHECK(g.has_error);
		CHECK_INT(count(&e, H_OTHER), 0);
	}
	cfg.start_url = target;
	if (discover(&e, &cfg, &g)) {
		CHECK_INT(g.status, AUTODISCOVER_FOUND);
		CHECK_STR(g.url, AS_URL);
		CHECK_INT(g.attempt_count, 1);
		CHECK_STR(g.attempts[0].url, target);
		CHECK_INT(count(&e, H_OTHER), 1);
		CHECK_INT(count(&e, H_DOMAIN), 0);
	}
	env_done(&e);
}

/* A redirect to http:// is never followed: no POST, no credentials in
 * the clear; from the probe and from an https candidate alike. */
static void test_redirect_to_http_refused(void)
{
	struct env e;
	REQUIRE(env_init(&e));
	REQUIRE(serve(&e, H_DOMAIN, B_REDIRECT,
	              "http://autodiscover.example.test/autodiscover/autodiscover.xml", NULL,
	              NULL));
	REQUIRE(serve(&e, H_PROBE, B_REDIRECT,
	              "http://autodiscover.example.test/x/autodiscover.xml", NULL, NULL));
	struct autodiscover_config cfg = config(&e);
	struct got g;
	if (discover(&e, &cfg, &g)) {
		CHECK_INT(g.status, AUTODISCOVER_NOT_FOUND);
		CHECK(g.has_error && g.error[0] != '\0');
		CHECK_INT(g.attempt_count, 3);
		CHECK_INT(g.redirects, 2);
		/* the plain server saw the probe's GET only */
		CHECK_INT(count(&e, H_PROBE), 1);
		CHECK_STR(tfx_server_last(e.srv[H_PROBE])->method, "GET");
	}
	env_done(&e);
}

static void test_not_found(void)
{
	struct env e;
	REQUIRE(env_init(&e));
	REQUIRE(serve(&e, H_PROBE, B_STATUS, "404", NULL, NULL));
	struct autodiscover_config cfg = config(&e);
	struct got g;
	if (discover(&e, &cfg, &g)) {
		CHECK_INT(g.status, AUTODISCOVER_NOT_FOUND);
		CHECK(g.error[0] != '\0');
		CHECK(!g.has_url && !g.has_result);
		CHECK_INT(g.attempt_count, 3);
		CHECK_INT(g.attempts_total, 3);
		CHECK_INT(g.attempts[2].http_status, 404);
	}
	env_done(&e);
}

/* TLS is verified on every candidate: with another CA nothing is sent. */
static void test_tls_never_skipped(void)
{
	struct env e;
	REQUIRE(env_init(&e));
	REQUIRE(serve(&e, H_DOMAIN, B_SETTINGS, NULL, NULL, NULL));
	REQUIRE(serve(&e, H_AUTODISCOVER, B_SETTINGS, NULL, NULL, NULL));
	REQUIRE(serve(&e, H_PROBE, B_REDIRECT,
	              "https://mail.example.test/autodiscover/autodiscover.xml", NULL, NULL));
	REQUIRE(serve(&e, H_MAIL, B_SETTINGS, NULL, NULL, NULL));
	struct autodiscover_config cfg = config(&e);
	cfg.ca_file = pki.other_ca_file;
	struct got g;
	if (discover(&e, &cfg, &g)) {
		CHECK_INT(g.status, AUTODISCOVER_NOT_FOUND);
		CHECK_INT(g.attempt_count, 4);
		CHECK_INT(g.attempts[0].transport, HTTPC_TLS_FAILED);
		CHECK_INT(g.attempts[1].transport, HTTPC_TLS_FAILED);
		CHECK_INT(g.attempts[3].transport, HTTPC_TLS_FAILED);
		CHECK_INT(count(&e, H_DOMAIN) + count(&e, H_AUTODISCOVER) + count(&e, H_MAIL), 0);
	}
	env_done(&e);
}

/* ---- the driver: answers that end the discovery ------------------------- */

static void test_auth_failed(void)
{
	struct env e;
	REQUIRE(env_init(&e));
	REQUIRE(serve(&e, H_DOMAIN, B_STATUS, "401", NULL, NULL));
	REQUIRE(serve(&e, H_AUTODISCOVER, B_SETTINGS, NULL, NULL, NULL));
	struct autodiscover_config cfg = config(&e);
	struct got g;
	if (discover(&e, &cfg, &g)) {
		CHECK_INT(g.status, AUTODISCOVER_AUTH_FAILED);
		CHECK(g.error[0] != '\0');
		CHECK_INT(g.attempt_count, 1);
		CHECK_INT(g.attempts[0].http_status, 401);
		/* the password went to no second server */
		CHECK_INT(count(&e, H_AUTODISCOVER), 0);
		check_post(&e, H_DOMAIN, USER);
	}
	env_done(&e);
}

static void test_server_errors(void)
{
	static const char *const docs[] = {doc_error_600, doc_error_601, doc_action_error};
	static const long codes[] = {600, 601, 2};
	for (size_t i = 0; i < 3; i++) {
		struct env e;
		REQUIRE(env_init(&e));
		REQUIRE(serve(&e, H_DOMAIN, B_BODY, docs[i], NULL, NULL));
		REQUIRE(serve(&e, H_AUTODISCOVER, B_SETTINGS, NULL, NULL, NULL));
		struct autodiscover_config cfg = config(&e);
		struct got g;
		if (discover(&e, &cfg, &g)) {
			CHECK_INT(g.status, AUTODISCOVER_SERVER_ERROR);
			CHECK(g.has_result);
			CHECK_INT(g.result.code, codes[i]);
			CHECK_STR(g.error, g.result.message);
			CHECK_INT(count(&e, H_AUTODISCOVER), 0);
		}
		env_done(&e);
	}
}

/* ---- the driver: redirects ----------------------------------------------- */

static void test_redirect_451_and_302(void)
{
	static const enum behave kinds[] = {B_451, B_REDIRECT};
	for (size_t i = 0; i < 2; i++) {
		struct env e;
		REQUIRE(env_init(&e));
		/* relative for 302: resolved against the request's URL */
		REQUIRE(serve(&e, H_DOMAIN, kinds[i],
		              kinds[i] == B_451
		                  ? "https://mail.example.test/autodiscover/autodiscover.xml"
		                  : "//mail.example.test/autodiscover/autodiscover.xml",
		              NULL, NULL));
		REQUIRE(serve(&e, H_MAIL, B_SETTINGS, NULL, NULL, NULL));
		struct autodiscover_config cfg = config(&e);
		struct got g;
		if (discover(&e, &cfg, &g)) {
			CHECK_INT(g.status, AUTODISCOVER_FOUND);
			CHECK_INT(g.redirects, 1);
			CHECK_INT(g.attempt_count, 2);
			CHECK_INT(g.attempts[0].http_status, kinds[i] == B_451 ? 451 : 302);
			CHECK_STR(g.attempts[1].url,
			          "https://mail.example.test/autodiscover/autodiscover.xml");
			check_post(&e, H_MAIL, USER);
		}
		env_done(&e);
	}
}

/* An https candidate redirecting out of the domain: to confirm, and the
 * password goes nowhere meanwhile. */
static void test_redirect_other_domain(void)
{
	struct env e;
	REQUIRE(env_init(&e));
	REQUIRE(serve(&e, H_DOMAIN, B_REDIRECT,
	              "https://autodiscover.other.test/autodiscover/autodiscover.xml", NULL, NULL));
	REQUIRE(serve(&e, H_OTHER, B_SETTINGS, NULL, NULL, NULL));
	struct autodiscover_config cfg = config(&e);
	struct got g;
	if (discover(&e, &cfg, &g)) {
		CHECK_INT(g.status, AUTODISCOVER_CONFIRM_REDIRECT);
		CHECK_STR(g.url, "https://autodiscover.other.test/autodiscover/autodiscover.xml");
		CHECK_INT(count(&e, H_OTHER), 0);
	}
	env_done(&e);
}

/* Two servers redirecting to each other: stopped after 10 redirects. */
static void test_redirect_loop(void)
{
	struct env e;
	REQUIRE(env_init(&e));
	REQUIRE(serve(&e, H_DOMAIN, B_REDIRECT, step_url(AUTODISCOVER_STEP_AUTODISCOVER_HOST), NULL,
	              NULL));
	REQUIRE(
	    serve(&e, H_AUTODISCOVER, B_REDIRECT, step_url(AUTODISCOVER_STEP_DOMAIN), NULL, NULL));
	struct autodiscover_config cfg = config(&e);
	struct got g;
	if (discover(&e, &cfg, &g)) {
		CHECK_INT(g.status, AUTODISCOVER_REDIRECT_LOOP);
		CHECK_INT(g.redirects, AUTODISCOVER_REDIRECTS_MAX);
		CHECK_INT(g.attempts_total, AUTODISCOVER_REDIRECTS_MAX + 1);
		CHECK_INT(count(&e, H_DOMAIN) + count(&e, H_AUTODISCOVER),
		          AUTODISCOVER_REDIRECTS_MAX + 1);
	}
	env_done(&e);
}

/* A Redirect to another address in the domain: the discovery starts over
 * for it, from the first candidate, with the same login. */
static void test_address_redirect(void)
{
	struct env e;
	REQUIRE(env_init(&e));
	REQUIRE(serve(&e, H_DOMAIN, B_ADDR, "bob@example.test", NULL, NULL));
	struct autodiscover_config cfg = config(&e);
	struct got g;
	if (discover(&e, &cfg, &g)) {
		CHECK_INT(g.status, AUTODISCOVER_FOUND);
		CHECK_STR(g.url, AS_URL);
		CHECK_STR(g.address, "bob@example.test");
		CHECK_INT(g.redirects, 1);
		CHECK_INT(g.attempt_count, 2);
		CHECK_STR(g.attempts[1].url, step_url(AUTODISCOVER_STEP_DOMAIN));
		CHECK_INT(count(&e, H_DOMAIN), 2);
		check_post(&e, H_DOMAIN, "bob@example.test"); /* alice's login, bob's address */
	}
	env_done(&e);
}

static void test_address_redirect_other_domain(void)
{
	struct env e;
	REQUIRE(env_init(&e));
	REQUIRE(serve(&e, H_DOMAIN, B_ADDR, "alice@other.test", NULL, NULL));
	REQUIRE(serve(&e, H_OTHER, B_SETTINGS, NULL, NULL, NULL));
	struct autodiscover_config cfg = config(&e);
	struct got g;
	if (discover(&e, &cfg, &g)) {
		CHECK_INT(g.status, AUTODISCOVER_CONFIRM_ADDRESS);
		CHECK_STR(g.address, "alice@other.test");
		CHECK(g.has_result && g.result.kind == AUTODISCOVER_REDIRECT_ADDR);
		CHECK_INT(count(&e, H_DOMAIN), 1);
		CHECK_INT(count(&e, H_OTHER), 0);
	}
	env_done(&e);
}

static void test_address_redirect_loops(void)
{
	/* to itself */
	struct env e;
	REQUIRE(env_init(&e));
	REQUIRE(serve(&e, H_DOMAIN, B_ADDR, "ALICE@example.test", NULL, NULL));
	struct autodiscover_config cfg = config(&e);
	struct got g;
	if (discover(&e, &cfg, &g)) {
		CHECK_INT(g.status, AUTODISCOVER_REDIRECT_LOOP);
		CHECK_INT(count(&e, H_DOMAIN), 1);
	}
	env_done(&e);

	/* alice -> bob -> alice -> ...: the same budget of 10 */
	REQUIRE(env_init(&e));
	REQUIRE(serve(&e, H_DOMAIN, B_ADDR_FLIP, NULL, NULL, NULL));
	cfg = config(&e);
	if (discover(&e, &cfg, &g)) {
		CHECK_INT(g.status, AUTODISCOVER_REDIRECT_LOOP);
		CHECK_INT(g.redirects, AUTODISCOVER_REDIRECTS_MAX);
		CHECK_INT(count(&e, H_DOMAIN), AUTODISCOVER_REDIRECTS_MAX + 1);
	}
	env_done(&e);
}

/* ---- the driver: time ----------------------------------------------------- */

static void test_attempt_timeout(void)
{
	struct env e;
	REQUIRE(env_init(&e));
	REQUIRE(serve(&e, H_DOMAIN, B_HANG, NULL, NULL, NULL));
	REQUIRE(serve(&e, H_AUTODISCOVER, B_SETTINGS, NULL, NULL, NULL));
	struct autodiscover_config cfg = config(&e);
	cfg.attempt_timeout_ms = 300;
	struct got g;
	if (discover(&e, &cfg, &g)) {
		CHECK_INT(g.status, AUTODISCOVER_FOUND);
		CHECK_INT(g.attempts[0].transport, HTTPC_TIMEOUT);
		CHECK(g.elapsed_ms >= 290);
	}
	env_done(&e);
}

static void test_total_timeout(void)
{
	struct env e;
	REQUIRE(env_init(&e));
	REQUIRE(serve(&e, H_DOMAIN, B_HANG, NULL, NULL, NULL));
	REQUIRE(serve(&e, H_AUTODISCOVER, B_HANG, NULL, NULL, NULL));
	REQUIRE(serve(&e, H_PROBE, B_HANG, NULL, NULL, NULL));
	struct autodiscover_config cfg = config(&e);
	cfg.attempt_timeout_ms = 60000;
	cfg.total_timeout_ms = 700;
	struct got g;
	int64_t t0 = mono_ms();
	if (discover(&e, &cfg, &g)) {
		CHECK_INT(g.status, AUTODISCOVER_TIMEOUT);
		CHECK(g.elapsed_ms >= 690);
		/* bounded by the total, not by the 60 s per attempt */
		CHECK(mono_ms() - t0 < 30000);
	}
	env_done(&e);
}

/* ---- the driver: the contract --------------------------------------------- */

static int cancelled_calls;

static void on_never(const struct autodiscover_outcome *o, void *ctx)
{
	(void)o;
	(void)ctx;
	cancelled_calls++;
}

static void test_cancel(void)
{
	struct env e;
	REQUIRE(env_init(&e));
	REQUIRE(serve(&e, H_DOMAIN, B_HANG, NULL, NULL, NULL));
	struct autodiscover_config cfg = config(&e);
	struct secret *pw = secret_dup(PASSWORD, strlen(PASSWORD));
	struct autodiscover *ad = NULL;
	const char *err = NULL;
	REQUIRE(autodiscover_start(e.h, &cfg, pw, on_never, NULL, &ad, &err) == 0);
	RUN_UNTIL(e.base, count(&e, H_DOMAIN) > 0);
	CHECK_INT(httpc_active(e.h), 1);
	autodiscover_cancel(&ad);
	CHECK(ad == NULL);
	autodiscover_cancel(&ad); /* NULL-safe */
	CHECK_INT(httpc_active(e.h), 0);
	run_for(e.base, 200);
	CHECK_INT(cancelled_calls, 0);
	secret_free(&pw);
	env_done(&e);
}

/* A start that fails never calls back and leaves nothing behind. */
static void test_start_errors(void)
{
	struct env e;
	REQUIRE(env_init(&e));
	struct secret *pw = secret_dup(PASSWORD, strlen(PASSWORD));
	struct autodiscover_config cfg = config(&e);
	struct autodiscover *ad = NULL;
	const char *err;

	cfg.address = "alice@localhost";
	err = NULL;
	CHECK_INT(autodiscover_start(e.h, &cfg, pw, on_never, NULL, &ad, &err), HK_ERR_INVAL);
	CHECK(err != NULL && ad == NULL);
	cfg.address = USER;
	cfg.username = "dom:alice";
	err = NULL;
	CHECK(autodiscover_start(e.h, &cfg, pw, on_never, NULL, &ad, &err) < 0);
	CHECK(err != NULL && ad == NULL);
	cfg.username = NULL;
	cfg.start_url = "http://autodiscover.example.test/autodiscover/autodiscover.xml";
	err = NULL;
	CHECK(autodiscover_start(e.h, &cfg, pw, on_never, NULL, &ad, &err) < 0);
	CHECK(err != NULL && ad == NULL);
	CHECK_INT(httpc_active(e.h), 0);
	run_for(e.base, 100);
	CHECK_INT(cancelled_calls, 0);
	secret_free(&pw);
	env_done(&e);
}

/* Discoveries run side by side on one loop, each to its own callback. */
static void test_many_at_once(void)
{
	struct env e;
	REQUIRE(env_init(&e));
	REQUIRE(serve(&e, H_DOMAIN, B_SETTINGS, NULL, NULL, NULL));
	struct autodiscover_config cfg = config(&e);
	struct secret *pw = secret_dup(PASSWORD, strlen(PASSWORD));
	struct got g[8];
	memset(g, 0, sizeof(g));
	for (int i = 0; i < 8; i++) {
		struct autodiscover *ad = NULL;
		const char *err = NULL;
		REQUIRE(autodiscover_start(e.h, &cfg, pw, on_outcome, &g[i], &ad, &err) == 0);
	}
	secret_free(&pw);
	int done = 0;
	RUN_UNTIL(e.base, (done = g[0].calls + g[1].calls + g[2].calls + g[3].calls + g[4].calls +
	                          g[5].calls + g[6].calls + g[7].calls) == 8);
	CHECK_INT(done, 8);
	for (int i = 0; i < 8; i++)
		CHECK_INT(g[i].status, AUTODISCOVER_FOUND);
	CHECK_INT(count(&e, H_DOMAIN), 8);
	env_done(&e);
}

TESTS(TEST(test_parse_settings), TEST(test_parse_settings_url_checks), TEST(test_parse_redirects),
      TEST(test_parse_errors), TEST(test_parse_long_text), TEST(test_parse_malformed),
      TEST(test_parse_oversize), TEST(test_parse_xxe), TEST(test_parse_billion_laughs),
      TEST(test_parse_quiet), TEST(test_request_build), TEST(test_address_check),
      TEST(test_host_in_domain), TEST(test_step_urls), TEST(test_found_first),
      TEST(test_order_first_fails), TEST(test_http_redirect_probe),
      TEST(test_http_redirect_other_domain), TEST(test_redirect_to_http_refused),
      TEST(test_not_found), TEST(test_tls_never_skipped), TEST(test_auth_failed),
      TEST(test_server_errors), TEST(test_redirect_451_and_302), TEST(test_redirect_other_domain),
      TEST(test_redirect_loop), TEST(test_address_redirect),
      TEST(test_address_redirect_other_domain), TEST(test_address_redirect_loops),
      TEST(test_attempt_timeout), TEST(test_total_timeout), TEST(test_cancel),
      TEST(test_start_errors), TEST(test_many_at_once));
