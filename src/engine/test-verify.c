/* Credential verification against a real ActiveSync server, taken from the
 * environment (README: HALFKEY_TEST_EAS_URL, HALFKEY_TEST_EAS_CA,
 * HALFKEY_TEST_USER_A, HALFKEY_TEST_PASS_A). Exits 77 (skipped) without them. */
#include "engine/verify.h"
#include "test.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>

static struct event_base *base;
static struct httpc *http;
static const char *url, *ca, *user, *pass;

void test_setup(void)
{
	if (secmem_init() < 0)
		abort();
	url = getenv("HALFKEY_TEST_EAS_URL");
	ca = getenv("HALFKEY_TEST_EAS_CA");
	user = getenv("HALFKEY_TEST_USER_A");
	pass = getenv("HALFKEY_TEST_PASS_A");
	if (url == NULL || *url == '\0' || user == NULL || pass == NULL) {
		printf("test-verify: HALFKEY_TEST_EAS_URL/USER_A/PASS_A not set: skipped\n");
		exit(77);
	}
	if (ca != NULL && *ca == '\0')
		ca = NULL;
	base = event_base_new();
	if (base == NULL || httpc_new(base, &http) < 0)
		abort();
}

struct outcome {
	bool done;
	struct verify_res res;
};

static void on_done(const struct verify_res *res, void *ctx)
{
	struct outcome *o = ctx;
	o->res = *res;
	o->done = true;
}

static void device_id(char out[33])
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	uint8_t r[20];
	secmem_random(r, sizeof(r));
	memcpy(out, "HKVERIFY", 8);
	for (int i = 0; i < 20; i++)
		out[8 + i] = a[r[i] % 36];
	out[28] = '\0';
}

static bool run(const char *u, const char *the_user, const char *the_pass, const char *cafile,
		struct outcome *o)
{
	char dev[33];
	device_id(dev);
	struct secret *pw = secret_dup(the_pass, strlen(the_pass));
	struct verify_req req = {.url = u, .username = the_user, .password = pw, .device_id = dev,
				 .ca_file = cafile, .timeout_ms = 30000};
	memset(o, 0, sizeof(*o));
	struct verify *v = NULL;
	int ret = verify_start(http, &req, on_done, o, &v);
	secret_free(&pw); /* the client keeps only its own guarded copy */
	if (!CHECK(ret == 0))
		return false;
	for (int i = 0; i < 100000 && !o->done; i++)
		event_base_loop(base, EVLOOP_ONCE);
	return CHECK(o->done);
}

static void test_right_password_accepted(void)
{
	struct outcome o;
	if (!run(url, user, pass, ca, &o))
		return;
	if (o.res.action != EAS_ACT_OK)
		fprintf(stderr, "  step %s: %s (http %ld, status %d)\n", o.res.step, o.res.error,
			o.res.http_status, o.res.status);
	CHECK_INT(o.res.action, EAS_ACT_OK);
	CHECK_STR(o.res.step, "FolderSync");
}

static void test_wrong_password_refused(void)
{
	struct outcome o;
	if (!run(url, user, "definitely-not-the-password", ca, &o))
		return;
	CHECK_INT(o.res.action, EAS_ACT_AUTH);
	CHECK_INT(o.res.http_status, 401);
	CHECK_STR(o.res.step, "Provision");
}

static void test_unreachable(void)
{
	struct outcome o;
	/* a closed port on loopback */
	if (!run("https://127.0.0.1:9/Microsoft-Server-ActiveSync", user, pass, ca, &o))
		return;
	CHECK_INT(o.res.action, EAS_ACT_UNREACHABLE);
	CHECK_INT(o.res.transport, HTTPC_CONNECT_FAILED);
}

static void test_untrusted_certificate(void)
{
	if (ca == NULL) {
		fprintf(stderr, "  no HALFKEY_TEST_EAS_CA: the server uses a public CA; "
				"checking against an empty trust file instead\n");
	}
	/* a CA file that does not contain the server's issuer */
	const char *bogus = test_path("bogus-ca.pem");
	FILE *f = fopen(bogus, "w");
	REQUIRE(f != NULL);
	fclose(f);
	struct outcome o;
	if (!run(url, user, pass, bogus, &o))
		return;
	CHECK_INT(o.res.action, EAS_ACT_UNREACHABLE);
	CHECK_INT(o.res.transport, HTTPC_TLS_FAILED);
}

static void test_bad_arguments(void)
{
	struct secret *pw = secret_dup("x", 1);
	struct verify *v = NULL;
	struct outcome o = {0};
	struct verify_req req = {.url = "ftp://example.org/", .username = user, .password = pw,
				 .device_id = "ABC"};
	CHECK_INT(verify_start(http, &req, on_done, &o, &v), HK_ERR_INVAL);
	req.url = url;
	req.device_id = "not valid!";
	CHECK_INT(verify_start(http, &req, on_done, &o, &v), HK_ERR_INVAL);
	CHECK(!o.done && v == NULL);
	secret_free(&pw);
}

TESTS(TEST(test_right_password_accepted), TEST(test_wrong_password_refused),
      TEST(test_unreachable), TEST(test_untrusted_certificate), TEST(test_bad_arguments));
