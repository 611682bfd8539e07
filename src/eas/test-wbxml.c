/* Tests for the ActiveSync WBXML codec: real server responses from
 * tests/fixtures/eas (see its README), the requests the EAS client sends
 * (byte-identical to xml2wbxml -n -a -v 1.3 where a fixture exists),
 * opaque content, limits, and hostile input (including inputs that crash
 * libwbxml 0.11.8 when given to it directly). */
#include "eas/wbxml.h"

#include "test.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef HK_EAS_FIXTURES
#error "HK_EAS_FIXTURES must name tests/fixtures/eas"
#endif

/* Values of the capture run the fixtures come from. */
#define INBOX "mail%2F9aa64f34b599146bae39000083ecc375"
#define TRASH "mail%2F02e90436b599146bb139000083ecc375"
#define DEV   "FIXTURECAP1796512328"

/* ---- helpers ------------------------------------------------------------- */

static uint8_t *read_file(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	*len_r = 0;
	if (f == NULL)
		return NULL;
	size_t cap = 4096, len = 0;
	uint8_t *buf = malloc(cap);
	size_t got;
	while (buf != NULL && (got = fread(buf + len, 1, cap - len, f)) > 0) {
		len += got;
		if (len == cap) {
			if (cap >= 64u * 1024 * 1024) { /* fixtures are small */
				free(buf);
				buf = NULL;
				break;
			}
			cap *= 2;
			uint8_t *nbuf = realloc(buf, cap);
			if (nbuf == NULL) {
				free(buf);
				buf = NULL;
			}
			buf = nbuf;
		}
	}
	fclose(f);
	*len_r = len;
	return buf;
}

static uint8_t *read_fixture(const char *name, size_t *len_r)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", HK_EAS_FIXTURES, name);
	return read_file(path, len_r);
}

static struct eas_node *decode_fixture(const char *name)
{
	size_t len;
	uint8_t *buf = read_fixture(name, &len);
	struct eas_node *root = NULL;
	const char *error = NULL;
	if (!CHECK(buf != NULL))
		return NULL;
	int ret = eas_wbxml_decode(buf, len, 0, &root, &error);
	if (!CHECK_INT(ret, 0))
		fprintf(stderr, "  %s: %s\n", name, error);
	free(buf);
	return root;
}

/* Encodes root and compares with the bytes of fixture name. */
static void check_encodes_to(struct eas_node *root, const char *fixture)
{
	uint8_t *out = NULL;
	size_t len = 0, want_len = 0;
	const char *error = NULL;
	uint8_t *want = read_fixture(fixture, &want_len);
	int ret = eas_wbxml_encode(root, &out, &len, &error);
	if (CHECK_INT(ret, 0) && CHECK(want != NULL) && CHECK_INT(len, want_len))
		CHECK_MEM(out, want, len);
	free(out);
	free(want);
}

static bool tree_equal(const struct eas_node *a, const struct eas_node *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	size_t la, lb;
	const uint8_t *ba = eas_node_bytes(a, &la), *bb = eas_node_bytes(b, &lb);
	if (eas_node_page(a) != eas_node_page(b) || eas_node_name(a) == NULL ||
	    eas_node_name(b) == NULL || strcmp(eas_node_name(a), eas_node_name(b)) != 0 ||
	    eas_node_content(a) != eas_node_content(b) || la != lb ||
	    (ba != NULL) != (bb != NULL) || (ba != NULL && memcmp(ba, bb, la) != 0))
		return false;
	const struct eas_node *ca = eas_node_first(a), *cb = eas_node_first(b);
	for (; ca != NULL && cb != NULL; ca = eas_node_next(ca), cb = eas_node_next(cb))
		if (!tree_equal(ca, cb))
			return false;
	return ca == NULL && cb == NULL;
}

/* Encodes root, decodes the result and checks it is the same tree. */
static void check_roundtrip(const struct eas_node *root)
{
	uint8_t *out = NULL;
	size_t len = 0;
	const char *error = NULL;
	struct eas_node *back = NULL;
	if (!CHECK_INT(eas_wbxml_encode(root, &out, &len, &error), 0))
		return;
	CHECK_MEM(out, "\x03\x01\x6a\x00", 4);
	if (CHECK_INT(eas_wbxml_decode(out, len, 0, &back, &error), 0))
		CHECK(tree_equal(root, back));
	eas_node_free(&back);
	free(out);
}

/* The <Add> under Commands whose Email:Subject is subject. */
static const struct eas_node *find_add(const struct eas_node *commands, const char *subject)
{
	for (const struct eas_node *add = eas_node_child(commands, EAS_PAGE_AIRSYNC, "Add");
	     add != NULL; add = eas_node_next_same(add)) {
		const struct eas_node *app =
		    eas_node_child(add, EAS_PAGE_AIRSYNC, "ApplicationData");
		const char *s = eas_node_child_text(app, EAS_PAGE_EMAIL, "Subject");
		if (s != NULL && strcmp(s, subject) == 0)
			return add;
	}
	return NULL;
}

/* A document: the ActiveSync header followed by body. */
struct doc {
	uint8_t b[512];
	size_t n;
};

static struct doc doc_make(const void *body, size_t n)
{
	struct doc d = {.b = {0x03, 0x01, 0x6a, 0x00}, .n = 4};
	memcpy(d.b + 4, body, n);
	d.n += n;
	return d;
}

#define DOC(...) doc_make((const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}))

/* Decodes bytes, expects failure err with a message containing msg. */
static void expect_fail_n(const uint8_t *buf, size_t len, size_t max_nodes, int err,
                          const char *msg, int line)
{
	struct eas_node *root = (struct eas_node *)1;
	const char *error = NULL;
	int ret = eas_wbxml_decode(buf, len, max_nodes, &root, &error);
	bool ok = ret == err && root == NULL && error != NULL && strstr(error, msg) != NULL;
	if (!ok)
		fprintf(stderr, "  line %d: got %d \"%s\", want %d \"%s\"\n", line, ret,
		        error != NULL ? error : "(null)", err, msg);
	CHECK(ok);
	if (ret == 0)
		eas_node_free(&root);
}

#define EXPECT_FAIL(d, err, msg) expect_fail_n((d).b, (d).n, 0, err, msg, __LINE__)

/* ---- libwbxml layout and the tag table ------------------------------------ */

static void test_libwbxml_layout(void)
{
	/* Provision (page 14) > Policies > Policy > PolicyType "x", decoded
	 * through libwbxml's tree: exercises the mirrored structs. */
	struct doc d =
	    DOC(0x00, 0x0e, 0x45, 0x46, 0x47, 0x48, 0x03, 'x', 0x00, 0x01, 0x01, 0x01, 0x01);
	struct eas_node *root = NULL;
	const char *error = NULL;
	REQUIRE(eas_wbxml_decode(d.b, d.n, 0, &root, &error) == 0);
	CHECK_INT(eas_node_page(root), EAS_PAGE_PROVISION);
	CHECK_STR(eas_node_name(root), "Provision");
	const struct eas_node *pt =
	    eas_node_find(root, EAS_PAGE_PROVISION, "Policies", "Policy", "PolicyType", NULL);
	CHECK_STR(eas_node_text(pt), "x");
	CHECK_INT(eas_node_content(pt), EAS_CONTENT_TEXT);
	eas_node_free(&root);
	CHECK(root == NULL);

	CHECK_STR(eas_page_name(EAS_PAGE_AIRSYNCBASE), "AirSyncBase");
	CHECK_STR(eas_page_name(EAS_PAGE_FIND), "Find");
	CHECK(eas_page_name((enum eas_page)26) == NULL);
}

static void test_tag_names(void)
{
	struct eas_node *n;
	/* A name per code page, the spec's name where libwbxml has a typo, a
	 * name libwbxml lists twice for one token. */
	static const struct {
		enum eas_page page;
		const char *name, *canonical;
		uint8_t token;
	} cases[] = {
	    {EAS_PAGE_AIRSYNC, "HeartbeatInterval", "HeartbeatInterval", 0x29},
	    {EAS_PAGE_EMAIL, "Reply-To", "Reply-To", 0x19},
	    {EAS_PAGE_FOLDERHIERARCHY, "FolderSync", "FolderSync", 0x16},
	    {EAS_PAGE_PING, "HeartbeatInterval", "HeartbeatInterval", 0x08},
	    {EAS_PAGE_AIRSYNCBASE, "BodyPreference", "BodyPreference", 0x05},
	    {EAS_PAGE_SETTINGS, "RightsManagementInformation", "RightsManagementInformation", 0x2b},
	    {EAS_PAGE_SETTINGS, "ihsManagementInformation", "RightsManagementInformation", 0x2b},
	    {EAS_PAGE_PROVISION, "RequireStorageCardEncryption", "DeviceEncryptionEnabled", 0x10},
	    {EAS_PAGE_ITEMOPERATIONS, "MoveAlways", "MoveAlways", 0x19},
	    {EAS_PAGE_COMPOSEMAIL, "AccountId", "AccountId", 0x13},
	    {EAS_PAGE_EMAIL2, "ConversationIndex", "ConversationIndex", 0x0a},
	    {EAS_PAGE_RIGHTSMANAGEMENT, "RemoveRightsManagementDistribution",
	     "RemoveRightsManagementDistribution", 0x18},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = eas_node_new(cases[i].page, cases[i].name);
		CHECK_STR(eas_node_name(n), cases[i].canonical);
		uint8_t *out = NULL;
		size_t len = 0;
		const char *error = NULL;
		if (CHECK_INT(eas_wbxml_encode(n, &out, &len, &error), 0)) {
			/* header, SWITCH_PAGE unless page 0, the token of an empty element */
			size_t at = cases[i].page == 0 ? 4 : 6;
			if (CHECK_INT(len, at + 1)) {
				CHECK_INT(out[at], cases[i].token);
				if (cases[i].page != 0)
					CHECK_INT(out[5], cases[i].page);
			}
		}
		free(out);
		eas_node_free(&n);
	}
}

/* ---- decoding real responses ---------------------------------------------- */

static void test_decode_foldersync(void)
{
	struct eas_node *root = decode_fixture("foldersync.resp.wbxml");
	REQUIRE(root != NULL);
	CHECK(eas_node_is(root, EAS_PAGE_FOLDERHIERARCHY, "FolderSync"));
	CHECK_STR(eas_node_child_text(root, EAS_PAGE_FOLDERHIERARCHY, "Status"), "1");
	CHECK_STR(eas_node_child_text(root, EAS_PAGE_FOLDERHIERARCHY, "SyncKey"),
	          "vm_3bf0_30c4d192_1");
	const struct eas_node *changes = eas_node_child(root, EAS_PAGE_FOLDERHIERARCHY, "Changes");
	CHECK_STR(eas_node_child_text(changes, EAS_PAGE_FOLDERHIERARCHY, "Count"), "9");
	CHECK_INT(eas_node_count(changes, EAS_PAGE_FOLDERHIERARCHY, "Add"), 9);
	/* The first Add is the Inbox (Type 2), the fourth the Trash (Type 4). */
	const struct eas_node *add = eas_node_child(changes, EAS_PAGE_FOLDERHIERARCHY, "Add");
	CHECK_STR(eas_node_child_text(add, EAS_PAGE_FOLDERHIERARCHY, "ServerId"), INBOX);
	CHECK_STR(eas_node_child_text(add, EAS_PAGE_FOLDERHIERARCHY, "ParentId"), "0");
	CHECK_STR(eas_node_child_text(add, EAS_PAGE_FOLDERHIERARCHY, "DisplayName"), "INBOX");
	CHECK_STR(eas_node_child_text(add, EAS_PAGE_FOLDERHIERARCHY, "Type"), "2");
	add = eas_node_next_same(eas_node_next_same(eas_node_next_same(add)));
	CHECK_STR(eas_node_child_text(add, EAS_PAGE_FOLDERHIERARCHY, "ServerId"), TRASH);
	CHECK_STR(eas_node_child_text(add, EAS_PAGE_FOLDERHIERARCHY, "Type"), "4");
	/* Every folder type SOGo reports. */
	char types[64] = "";
	size_t used = 0;
	for (add = eas_node_child(changes, EAS_PAGE_FOLDERHIERARCHY, "Add"); add != NULL;
	     add = eas_node_next_same(add)) {
		int w = snprintf(types + used, sizeof(types) - used, "%s,",
		                 eas_node_child_text(add, EAS_PAGE_FOLDERHIERARCHY, "Type"));
		REQUIRE(w > 0 && (size_t)w < sizeof(types) - used);
		used += (size_t)w;
	}
	CHECK_STR(types, "2,3,5,4,12,12,8,7,9,");
	eas_node_free(&root);
}

static void test_decode_provision(void)
{
	static const char *const names[] = {"provision.resp.wbxml", "provision-ack.resp.wbxml"};
	for (size_t i = 0; i < 2; i++) {
		struct eas_node *root = decode_fixture(names[i]);
		REQUIRE(root != NULL);
		CHECK(eas_node_is(root, EAS_PAGE_PROVISION, "Provision"));
		CHECK_STR(eas_node_child_text(root, EAS_PAGE_PROVISION, "Status"), "1");
		const struct eas_node *policy =
		    eas_node_find(root, EAS_PAGE_PROVISION, "Policies", "Policy", NULL);
		CHECK_STR(eas_node_child_text(policy, EAS_PAGE_PROVISION, "PolicyType"),
		          "MS-EAS-Provisioning-WBXML");
		/* SOGo: "no policy", and never a PolicyKey. */
		CHECK_STR(eas_node_child_text(policy, EAS_PAGE_PROVISION, "Status"), "2");
		CHECK(eas_node_child(policy, EAS_PAGE_PROVISION, "PolicyKey") == NULL);
		eas_node_free(&root);
	}
}

static void test_decode_sync_initial(void)
{
	struct eas_node *root = decode_fixture("sync-initial.resp.wbxml");
	REQUIRE(root != NULL);
	const struct eas_node *coll =
	    eas_node_find(root, EAS_PAGE_AIRSYNC, "Collections", "Collection", NULL);
	CHECK_STR(eas_node_child_text(coll, EAS_PAGE_AIRSYNC, "Class"), "Email");
	CHECK_STR(eas_node_child_text(coll, EAS_PAGE_AIRSYNC, "SyncKey"), "-1");
	CHECK_STR(eas_node_child_text(coll, EAS_PAGE_AIRSYNC, "CollectionId"), INBOX);
	CHECK_STR(eas_node_child_text(coll, EAS_PAGE_AIRSYNC, "Status"), "1");
	CHECK(eas_node_child(coll, EAS_PAGE_AIRSYNC, "Commands") == NULL);
	eas_node_free(&root);
}

static void test_decode_sync_type1(void)
{
	struct eas_node *root = decode_fixture("sync-type1.resp.wbxml");
	REQUIRE(root != NULL);
	const struct eas_node *coll =
	    eas_node_find(root, EAS_PAGE_AIRSYNC, "Collections", "Collection", NULL);
	CHECK_STR(eas_node_child_text(coll, EAS_PAGE_AIRSYNC, "SyncKey"), "1-22");
	const struct eas_node *cmds = eas_node_child(coll, EAS_PAGE_AIRSYNC, "Commands");
	CHECK_INT(eas_node_count(cmds, EAS_PAGE_AIRSYNC, "Add"), 12);

	const struct eas_node *add = find_add(cmds, "Fixture plain " DEV);
	REQUIRE(add != NULL);
	CHECK_STR(eas_node_child_text(add, EAS_PAGE_AIRSYNC, "ServerId"), "12");
	const struct eas_node *app = eas_node_child(add, EAS_PAGE_AIRSYNC, "ApplicationData");
	CHECK_STR(eas_node_child_text(app, EAS_PAGE_EMAIL, "From"),
	          "\"Fixture Sender\" <sender@halfkey.test>");
	CHECK_STR(eas_node_child_text(app, EAS_PAGE_EMAIL, "Reply-To"),
	          "Fixture Sender <sender@halfkey.test>");
	CHECK_STR(eas_node_child_text(app, EAS_PAGE_EMAIL, "DateReceived"),
	          "2025-12-01T10:00:00.000Z");
	CHECK_STR(eas_node_child_text(app, EAS_PAGE_EMAIL, "Read"), "0");
	const struct eas_node *body = eas_node_child(app, EAS_PAGE_AIRSYNCBASE, "Body");
	CHECK_STR(eas_node_child_text(body, EAS_PAGE_AIRSYNCBASE, "Type"), "1");
	CHECK_STR(eas_node_child_text(body, EAS_PAGE_AIRSYNCBASE, "Truncated"), "0");
	CHECK_STR(eas_node_child_text(body, EAS_PAGE_AIRSYNCBASE, "EstimatedDataSize"), "97");
	/* <Preview/>: an empty element. */
	const struct eas_node *preview = eas_node_child(body, EAS_PAGE_AIRSYNCBASE, "Preview");
	CHECK(preview != NULL);
	CHECK_STR(eas_node_text(preview), "");
	CHECK_INT(eas_node_content(preview), EAS_CONTENT_NONE);
	/* Markup characters and UTF-8 arrive as they were sent, CRLF included. */
	CHECK_STR(
	    eas_node_child_text(body, EAS_PAGE_AIRSYNCBASE, "Data"),
	    "Hello, this is the plain fixture message: <tags> & \"quotes\", caf\xc3\xa9.\r\n");
	/* SOGo sends ConversationId as OPAQUE: the raw Message-ID, not base64. */
	const struct eas_node *conv = eas_node_child(app, EAS_PAGE_EMAIL2, "ConversationId");
	CHECK_INT(eas_node_content(conv), EAS_CONTENT_OPAQUE);
	CHECK_STR(eas_node_text(conv), "<fixture-plain-" DEV "@halfkey.test>");
	CHECK_STR(eas_node_child_text(app, EAS_PAGE_AIRSYNCBASE, "NativeBodyType"), "1");
	CHECK(eas_node_find(app, EAS_PAGE_EMAIL, "Flag", "FlagStatus", NULL) != NULL);

	add = find_add(cmds, "Fixture attachment " DEV);
	REQUIRE(add != NULL);
	app = eas_node_child(add, EAS_PAGE_AIRSYNC, "ApplicationData");
	const struct eas_node *att =
	    eas_node_find(app, EAS_PAGE_AIRSYNCBASE, "Attachments", "Attachment", NULL);
	CHECK_STR(eas_node_child_text(att, EAS_PAGE_AIRSYNCBASE, "DisplayName"), "bytes.bin");
	CHECK_STR(eas_node_child_text(att, EAS_PAGE_AIRSYNCBASE, "FileReference"),
	          "mail/INBOX/14/2");
	CHECK_STR(eas_node_child_text(att, EAS_PAGE_AIRSYNCBASE, "EstimatedDataSize"), "64");
	CHECK_STR(eas_node_text(eas_node_find(app, EAS_PAGE_AIRSYNCBASE, "Body", "Data", NULL)),
	          "See the attached file.");
	eas_node_free(&root);
}

static void test_decode_sync_type2_type4(void)
{
	struct eas_node *root = decode_fixture("sync-type2.resp.wbxml");
	REQUIRE(root != NULL);
	const struct eas_node *cmds =
	    eas_node_find(root, EAS_PAGE_AIRSYNC, "Collections", "Collection", "Commands", NULL);
	CHECK_INT(eas_node_count(cmds, EAS_PAGE_AIRSYNC, "Add"), 13);
	const struct eas_node *add = find_add(cmds, "Fixture html " DEV);
	const struct eas_node *body =
	    eas_node_find(eas_node_child(add, EAS_PAGE_AIRSYNC, "ApplicationData"),
	                  EAS_PAGE_AIRSYNCBASE, "Body", NULL);
	CHECK_STR(eas_node_child_text(body, EAS_PAGE_AIRSYNCBASE, "Type"), "2");
	CHECK_STR(eas_node_child_text(body, EAS_PAGE_AIRSYNCBASE, "Data"),
	          "<html><body><p>HTML part of the <b>HTML</b> fixture.</p></body></html>");
	eas_node_free(&root);

	root = decode_fixture("sync-type4.resp.wbxml");
	REQUIRE(root != NULL);
	cmds = eas_node_find(root, EAS_PAGE_AIRSYNC, "Collections", "Collection", "Commands", NULL);
	add = find_add(cmds, "Fixture html " DEV);
	body = eas_node_find(eas_node_child(add, EAS_PAGE_AIRSYNC, "ApplicationData"),
	                     EAS_PAGE_AIRSYNCBASE, "Body", NULL);
	CHECK_STR(eas_node_child_text(body, EAS_PAGE_AIRSYNCBASE, "Type"), "4");
	const char *mime = eas_node_child_text(body, EAS_PAGE_AIRSYNCBASE, "Data");
	REQUIRE(mime != NULL);
	CHECK(strncmp(mime, "From: Fixture Sender <sender@halfkey.test>\r\n", 44) == 0);
	CHECK(strstr(mime, "Content-Type: multipart/alternative; boundary=\"alt-b\"\r\n") != NULL);
	CHECK(strstr(mime, "\r\n--alt-b--\r\n") != NULL);
	eas_node_free(&root);
}

static void test_decode_sync_change(void)
{
	struct eas_node *root = decode_fixture("sync-change.resp.wbxml");
	REQUIRE(root != NULL);
	const struct eas_node *resp =
	    eas_node_find(root, EAS_PAGE_AIRSYNC, "Collections", "Collection", "Responses", NULL);
	const struct eas_node *change = eas_node_child(resp, EAS_PAGE_AIRSYNC, "Change");
	CHECK_STR(eas_node_child_text(change, EAS_PAGE_AIRSYNC, "ServerId"), "12");
	CHECK_STR(eas_node_child_text(change, EAS_PAGE_AIRSYNC, "Status"), "1");
	const struct eas_node *del = eas_node_child(resp, EAS_PAGE_AIRSYNC, "Delete");
	CHECK_STR(eas_node_child_text(del, EAS_PAGE_AIRSYNC, "ServerId"), "15");
	CHECK_STR(eas_node_child_text(del, EAS_PAGE_AIRSYNC, "Status"), "1");
	eas_node_free(&root);
}

static void test_decode_ping(void)
{
	struct eas_node *root = decode_fixture("ping.resp.wbxml");
	REQUIRE(root != NULL);
	CHECK(eas_node_is(root, EAS_PAGE_PING, "Ping"));
	CHECK_STR(eas_node_child_text(root, EAS_PAGE_PING, "Status"), "2");
	CHECK_STR(eas_node_text(eas_node_find(root, EAS_PAGE_PING, "Folders", "Folder", NULL)),
	          INBOX);
	eas_node_free(&root);
}

static void test_decode_itemoperations(void)
{
	struct eas_node *root = decode_fixture("itemoperations.resp.wbxml");
	REQUIRE(root != NULL);
	CHECK_STR(eas_node_child_text(root, EAS_PAGE_ITEMOPERATIONS, "Status"), "1");
	const struct eas_node *fetch =
	    eas_node_find(root, EAS_PAGE_ITEMOPERATIONS, "Response", "Fetch", NULL);
	CHECK_STR(eas_node_child_text(fetch, EAS_PAGE_ITEMOPERATIONS, "Status"), "1");
	CHECK_STR(eas_node_child_text(fetch, EAS_PAGE_AIRSYNC, "CollectionId"), INBOX);
	CHECK_STR(eas_node_child_text(fetch, EAS_PAGE_AIRSYNC, "ServerId"), "12");
	const struct eas_node *props = eas_node_child(fetch, EAS_PAGE_ITEMOPERATIONS, "Properties");
	const struct eas_node *body = eas_node_child(props, EAS_PAGE_AIRSYNCBASE, "Body");
	CHECK_STR(eas_node_child_text(body, EAS_PAGE_AIRSYNCBASE, "Type"), "4");
	const char *mime = eas_node_child_text(body, EAS_PAGE_AIRSYNCBASE, "Data");
	CHECK(mime != NULL &&
	      strstr(mime, "\r\nMessage-ID: <fixture-plain-" DEV "@halfkey.test>\r\n") != NULL);
	eas_node_free(&root);

	root = decode_fixture("itemoperations-attachment.resp.wbxml");
	REQUIRE(root != NULL);
	fetch = eas_node_find(root, EAS_PAGE_ITEMOPERATIONS, "Response", "Fetch", NULL);
	CHECK_STR(eas_node_child_text(fetch, EAS_PAGE_AIRSYNCBASE, "FileReference"),
	          "mail/INBOX/4/2");
	props = eas_node_child(fetch, EAS_PAGE_ITEMOPERATIONS, "Properties");
	CHECK_STR(eas_node_child_text(props, EAS_PAGE_AIRSYNCBASE, "ContentType"),
	          "application/octet-stream");
	/* SOGo sends attachment data as base64 text, not OPAQUE. */
	const struct eas_node *data = eas_node_child(props, EAS_PAGE_ITEMOPERATIONS, "Data");
	CHECK_INT(eas_node_content(data), EAS_CONTENT_TEXT);
	CHECK_STR(eas_node_text(data),
	          "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v");
	eas_node_free(&root);
}

static void test_decode_other_commands(void)
{
	struct eas_node *root = decode_fixture("settings.resp.wbxml");
	REQUIRE(root != NULL);
	CHECK_STR(eas_node_child_text(root, EAS_PAGE_SETTINGS, "Status"), "1");
	const struct eas_node *acct = eas_node_find(root, EAS_PAGE_SETTINGS, "UserInformation",
	                                            "Get", "Accounts", "Account", NULL);
	CHECK_STR(eas_node_child_text(acct, EAS_PAGE_SETTINGS, "UserDisplayName"), "alice");
	CHECK_STR(eas_node_text(eas_node_find(acct, EAS_PAGE_SETTINGS, "EmailAddresses",
	                                      "PrimarySmtpAddress", NULL)),
	          "alice@halfkey.test");
	eas_node_free(&root);

	root = decode_fixture("getitemestimate.resp.wbxml");
	REQUIRE(root != NULL);
	const struct eas_node *resp = eas_node_child(root, EAS_PAGE_GETITEMESTIMATE, "Response");
	CHECK_STR(eas_node_child_text(resp, EAS_PAGE_GETITEMESTIMATE, "Status"), "1");
	const struct eas_node *coll = eas_node_child(resp, EAS_PAGE_GETITEMESTIMATE, "Collection");
	CHECK_STR(eas_node_child_text(coll, EAS_PAGE_GETITEMESTIMATE, "CollectionId"), INBOX);
	CHECK_STR(eas_node_child_text(coll, EAS_PAGE_GETITEMESTIMATE, "Estimate"), "1");
	eas_node_free(&root);

	root = decode_fixture("moveitems.resp.wbxml");
	REQUIRE(root != NULL);
	resp = eas_node_child(root, EAS_PAGE_MOVE, "Response");
	CHECK_STR(eas_node_child_text(resp, EAS_PAGE_MOVE, "SrcMsgId"), "13");
	CHECK_STR(eas_node_child_text(resp, EAS_PAGE_MOVE, "DstMsgId"), "4");
	CHECK_STR(eas_node_child_text(resp, EAS_PAGE_MOVE, "Status"), "3"); /* 3 = success */
	eas_node_free(&root);

	root = decode_fixture("sendmail-norcpt.resp.wbxml");
	REQUIRE(root != NULL);
	CHECK(eas_node_is(root, EAS_PAGE_COMPOSEMAIL, "SendMail"));
	CHECK_STR(eas_node_child_text(root, EAS_PAGE_COMPOSEMAIL, "Status"), "120");
	eas_node_free(&root);
}

/* HTTP 200 with an empty body: Sync "no changes", SendMail success. */
static void test_decode_empty_body(void)
{
	static const char *const names[] = {"sync-nochanges.resp.wbxml", "sendmail.resp.wbxml"};
	for (size_t i = 0; i < 2; i++) {
		size_t len = 1;
		uint8_t *buf = read_fixture(names[i], &len);
		struct eas_node *root = (struct eas_node *)1;
		const char *error = NULL;
		CHECK_INT(len, 0);
		CHECK_INT(eas_wbxml_decode(buf, len, 0, &root, &error), HK_ERR_NOT_FOUND);
		CHECK(root == NULL && error != NULL);
		free(buf);
	}
	struct eas_node *root = NULL;
	const char *error = NULL;
	CHECK_INT(eas_wbxml_decode(NULL, 0, 0, &root, &error), HK_ERR_NOT_FOUND);
}

/* Every fixture: decodes, re-encodes to the same bytes, and dumps to what
 * wbxml2xml -k -l ACTIVESYNC printed for it. */
static void test_fixtures_roundtrip(void)
{
	DIR *dir = opendir(HK_EAS_FIXTURES);
	REQUIRE(dir != NULL);
	size_t files = 0, dumps = 0;
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		size_t nl = strlen(e->d_name);
		if (nl < 6 || strcmp(e->d_name + nl - 6, ".wbxml") != 0)
			continue;
		size_t len;
		uint8_t *buf = read_fixture(e->d_name, &len);
		struct eas_node *root = NULL;
		const char *error = NULL;
		REQUIRE(buf != NULL || len == 0);
		if (len == 0) {
			CHECK_INT(eas_wbxml_decode(buf, len, 0, &root, &error), HK_ERR_NOT_FOUND);
			free(buf);
			continue;
		}
		files++;
		int ret = eas_wbxml_decode(buf, len, 0, &root, &error);
		if (!CHECK_INT(ret, 0)) {
			fprintf(stderr, "  %s: %s\n", e->d_name, error);
			free(buf);
			continue;
		}
		uint8_t *out = NULL;
		size_t out_len = 0;
		if (CHECK_INT(eas_wbxml_encode(root, &out, &out_len, &error), 0) &&
		    !(CHECK_INT(out_len, len) && CHECK_MEM(out, buf, len)))
			fprintf(stderr, "  %s: re-encoding differs\n", e->d_name);
		free(out);

		char xml_name[300];
		snprintf(xml_name, sizeof(xml_name), "%.*s.xml", (int)(nl - 6), e->d_name);
		size_t xml_len;
		char *want = (char *)read_fixture(xml_name, &xml_len);
		if (want != NULL && strstr(e->d_name, ".resp.") != NULL) {
			dumps++;
			/* skip <?xml ...?> and <!DOCTYPE ...> */
			const char *body = strchr(want, '\n');
			body = body != NULL ? strchr(body + 1, '\n') : NULL;
			char *dump = NULL;
			REQUIRE(eas_node_dump(root, NULL, 0, 0, 1 << 20, &dump) == 0);
			size_t body_len = body != NULL ? xml_len - (size_t)(body + 1 - want) : 0;
			if (!(CHECK(body != NULL) && CHECK_INT(strlen(dump), body_len) &&
			      CHECK_MEM(dump, body + 1, body_len)))
				fprintf(stderr, "  %s: dump differs from wbxml2xml\n", e->d_name);
			free(dump);
		}
		free(want);
		eas_node_free(&root);
		free(buf);
	}
	closedir(dir);
	CHECK(files >= 30);
	CHECK(dumps >= 15);
}

/* ---- encoding the client's requests ---------------------------------------- */

static void test_encode_provision(void)
{
	struct eas_node *root = eas_node_new(EAS_PAGE_PROVISION, "Provision");
	struct eas_node *policy = eas_node_add(eas_node_add(root, EAS_PAGE_PROVISION, "Policies"),
	                                       EAS_PAGE_PROVISION, "Policy");
	eas_node_add_text(policy, EAS_PAGE_PROVISION, "PolicyType", "MS-EAS-Provisioning-WBXML");
	check_encodes_to(root, "provision.req.wbxml");
	check_roundtrip(root);
	/* Step 2: acknowledge the policy key. */
	eas_node_add_text(policy, EAS_PAGE_PROVISION, "PolicyKey", "0");
	eas_node_add_text(policy, EAS_PAGE_PROVISION, "Status", "1");
	check_encodes_to(root, "provision-ack.req.wbxml");
	check_roundtrip(root);
	eas_node_free(&root);

	/* Exchange's form of step 2 also carries DeviceInformation (Settings). */
	root = eas_node_new(EAS_PAGE_PROVISION, "Provision");
	struct eas_node *set = eas_node_add(
	    eas_node_add(root, EAS_PAGE_SETTINGS, "DeviceInformation"), EAS_PAGE_SETTINGS, "Set");
	eas_node_add_text(set, EAS_PAGE_SETTINGS, "Model", "Halfkey");
	eas_node_add_text(set, EAS_PAGE_SETTINGS, "UserAgent", "Halfkey/0.1");
	policy = eas_node_add(eas_node_add(root, EAS_PAGE_PROVISION, "Policies"),
	                      EAS_PAGE_PROVISION, "Policy");
	eas_node_add_text(policy, EAS_PAGE_PROVISION, "PolicyType", "MS-EAS-Provisioning-WBXML");
	eas_node_add_text(policy, EAS_PAGE_PROVISION, "PolicyKey", "1307199584");
	eas_node_add_text(policy, EAS_PAGE_PROVISION, "Status", "1");
	check_roundtrip(root);
	eas_node_free(&root);
}

static void test_encode_foldersync(void)
{
	struct eas_node *root = eas_node_new(EAS_PAGE_FOLDERHIERARCHY, "FolderSync");
	eas_node_add_text(root, EAS_PAGE_FOLDERHIERARCHY, "SyncKey", "0");
	check_encodes_to(root, "foldersync.req.wbxml");
	check_roundtrip(root);
	eas_node_free(&root);
}

static struct eas_node *sync_request(const char *sync_key, struct eas_node **coll_r)
{
	struct eas_node *root = eas_node_new(EAS_PAGE_AIRSYNC, "Sync");
	struct eas_node *coll = eas_node_add(eas_node_add(root, EAS_PAGE_AIRSYNC, "Collections"),
	                                     EAS_PAGE_AIRSYNC, "Collection");
	eas_node_add_text(coll, EAS_PAGE_AIRSYNC, "SyncKey", sync_key);
	eas_node_add_text(coll, EAS_PAGE_AIRSYNC, "CollectionId", INBOX);
	*coll_r = coll;
	return root;
}

static void sync_options(struct eas_node *coll, const char *body_type, bool mime)
{
	eas_node_add_text(coll, EAS_PAGE_AIRSYNC, "DeletesAsMoves", "1");
	eas_node_add_text(coll, EAS_PAGE_AIRSYNC, "GetChanges", "1");
	eas_node_add_text(coll, EAS_PAGE_AIRSYNC, "WindowSize", "50");
	struct eas_node *opts = eas_node_add(coll, EAS_PAGE_AIRSYNC, "Options");
	eas_node_add_text(opts, EAS_PAGE_AIRSYNC, "FilterType", "0");
	struct eas_node *pref = eas_node_add(opts, EAS_PAGE_AIRSYNCBASE, "BodyPreference");
	eas_node_add_text(pref, EAS_PAGE_AIRSYNCBASE, "Type", body_type);
	eas_node_add_text(pref, EAS_PAGE_AIRSYNCBASE, "TruncationSize", "32768");
	if (mime)
		eas_node_add_text(opts, EAS_PAGE_AIRSYNC, "MIMESupport", "2");
}

static void test_encode_sync(void)
{
	struct eas_node *coll;
	struct eas_node *root = sync_request("0", &coll);
	check_encodes_to(root, "sync-initial.req.wbxml");
	check_roundtrip(root);
	eas_node_free(&root);

	static const struct {
		const char *type, *fixture;
		bool mime;
	} bodies[] = {
	    {"1", "sync-type1.req.wbxml", false},
	    {"2", "sync-type2.req.wbxml", false},
	    {"4", "sync-type4.req.wbxml", true},
	};
	for (size_t i = 0; i < 3; i++) {
		root = sync_request("-1", &coll);
		sync_options(coll, bodies[i].type, bodies[i].mime);
		check_encodes_to(root, bodies[i].fixture);
		check_roundtrip(root);
		eas_node_free(&root);
	}

	/* Commands: Change (Read, across code pages) and Delete. */
	root = sync_request("1-23", &coll);
	eas_node_add_text(coll, EAS_PAGE_AIRSYNC, "GetChanges", "0");
	struct eas_node *cmds = eas_node_add(coll, EAS_PAGE_AIRSYNC, "Commands");
	struct eas_node *change = eas_node_add(cmds, EAS_PAGE_AIRSYNC, "Change");
	eas_node_add_text(change, EAS_PAGE_AIRSYNC, "ServerId", "12");
	eas_node_add_text(eas_node_add(change, EAS_PAGE_AIRSYNC, "ApplicationData"), EAS_PAGE_EMAIL,
	                  "Read", "1");
	eas_node_add_text(eas_node_add(cmds, EAS_PAGE_AIRSYNC, "Delete"), EAS_PAGE_AIRSYNC,
	                  "ServerId", "15");
	check_encodes_to(root, "sync-change.req.wbxml");
	check_roundtrip(root);
	eas_node_free(&root);
}

static void test_encode_ping(void)
{
	struct eas_node *root = eas_node_new(EAS_PAGE_PING, "Ping");
	eas_node_add_text(root, EAS_PAGE_PING, "HeartbeatInterval", "60");
	struct eas_node *folder =
	    eas_node_add(eas_node_add(root, EAS_PAGE_PING, "Folders"), EAS_PAGE_PING, "Folder");
	eas_node_add_text(folder, EAS_PAGE_PING, "Id", INBOX);
	eas_node_add_text(folder, EAS_PAGE_PING, "Class", "Email");
	check_encodes_to(root, "ping.req.wbxml");
	check_roundtrip(root);
	eas_node_free(&root);
}

static void test_encode_itemoperations(void)
{
	struct eas_node *root = eas_node_new(EAS_PAGE_ITEMOPERATIONS, "ItemOperations");
	struct eas_node *fetch = eas_node_add(root, EAS_PAGE_ITEMOPERATIONS, "Fetch");
	eas_node_add_text(fetch, EAS_PAGE_ITEMOPERATIONS, "Store", "Mailbox");
	eas_node_add_text(fetch, EAS_PAGE_AIRSYNC, "CollectionId", INBOX);
	eas_node_add_text(fetch, EAS_PAGE_AIRSYNC, "ServerId", "12");
	eas_node_add_text(eas_node_add(eas_node_add(fetch, EAS_PAGE_ITEMOPERATIONS, "Options"),
	                               EAS_PAGE_AIRSYNCBASE, "BodyPreference"),
	                  EAS_PAGE_AIRSYNCBASE, "Type", "4");
	check_encodes_to(root, "itemoperations.req.wbxml");
	check_roundtrip(root);
	eas_node_free(&root);

	root = eas_node_new(EAS_PAGE_ITEMOPERATIONS, "ItemOperations");
	fetch = eas_node_add(root, EAS_PAGE_ITEMOPERATIONS, "Fetch");
	eas_node_add_text(fetch, EAS_PAGE_ITEMOPERATIONS, "Store", "Mailbox");
	eas_node_add_text(fetch, EAS_PAGE_AIRSYNCBASE, "FileReference", "mail/INBOX/4/2");
	check_encodes_to(root, "itemoperations-attachment.req.wbxml");
	check_roundtrip(root);
	eas_node_free(&root);
}

static void test_encode_sendmail(void)
{
	static const char mime[] = "From: alice <alice@halfkey.test>\r\n"
	                           "To: bob <bob@halfkey.test>\r\n"
	                           "Subject: Fixture sendmail " DEV "\r\n"
	                           "MIME-Version: 1.0\r\n"
	                           "Content-Type: text/plain; charset=utf-8\r\n"
	                           "\r\n"
	                           "Sent by capture.sh.\r\n";
	struct eas_node *root = eas_node_new(EAS_PAGE_COMPOSEMAIL, "SendMail");
	eas_node_add_text(root, EAS_PAGE_COMPOSEMAIL, "ClientId", "fixture-" DEV "-1");
	eas_node_add(root, EAS_PAGE_COMPOSEMAIL, "SaveInSentItems");
	eas_node_add_opaque(root, EAS_PAGE_COMPOSEMAIL, "MIME", mime, sizeof(mime) - 1);
	check_encodes_to(root, "sendmail.req.wbxml");
	check_roundtrip(root);

	/* On the wire, last: the MIME token with content, OPAQUE, the length
	 * as mb_u_int32 (193: 0x81 0x41), the raw RFC 5322 bytes, two ENDs. */
	uint8_t *out = NULL;
	size_t len = 0;
	const char *error = NULL;
	REQUIRE(eas_wbxml_encode(root, &out, &len, &error) == 0);
	static const uint8_t head[] = {0x50, 0xc3, 0x81, 0x41};
	const size_t mime_len = sizeof(mime) - 1;
	CHECK_INT(mime_len, 193);
	REQUIRE(len > sizeof(head) + mime_len + 2);
	const uint8_t *at = out + len - 2 - mime_len - sizeof(head);
	CHECK_MEM(at, head, sizeof(head));
	CHECK_MEM(at + sizeof(head), mime, mime_len);
	CHECK_MEM(out + len - 2, "\x01\x01", 2);
	free(out);
	eas_node_free(&root);
}

static void test_encode_other_commands(void)
{
	struct eas_node *root = eas_node_new(EAS_PAGE_MOVE, "MoveItems");
	struct eas_node *move = eas_node_add(root, EAS_PAGE_MOVE, "Move");
	eas_node_add_text(move, EAS_PAGE_MOVE, "SrcMsgId", "13");
	eas_node_add_text(move, EAS_PAGE_MOVE, "SrcFldId", INBOX);
	eas_node_add_text(move, EAS_PAGE_MOVE, "DstFldId", TRASH);
	check_encodes_to(root, "moveitems.req.wbxml");
	check_roundtrip(root);
	eas_node_free(&root);

	root = eas_node_new(EAS_PAGE_SETTINGS, "Settings");
	eas_node_add(eas_node_add(root, EAS_PAGE_SETTINGS, "UserInformation"), EAS_PAGE_SETTINGS,
	             "Get");
	check_encodes_to(root, "settings.req.wbxml");
	check_roundtrip(root);
	eas_node_free(&root);

	root = eas_node_new(EAS_PAGE_GETITEMESTIMATE, "GetItemEstimate");
	struct eas_node *coll =
	    eas_node_add(eas_node_add(root, EAS_PAGE_GETITEMESTIMATE, "Collections"),
	                 EAS_PAGE_GETITEMESTIMATE, "Collection");
	eas_node_add_text(coll, EAS_PAGE_AIRSYNC, "SyncKey", "1-23");
	eas_node_add_text(coll, EAS_PAGE_GETITEMESTIMATE, "CollectionId", INBOX);
	eas_node_add_text(eas_node_add(coll, EAS_PAGE_AIRSYNC, "Options"), EAS_PAGE_AIRSYNC,
	                  "FilterType", "0");
	check_encodes_to(root, "getitemestimate.req.wbxml");
	check_roundtrip(root);
	eas_node_free(&root);
}

/* ---- opaque content -------------------------------------------------------- */

static void test_opaque(void)
{
	static const uint8_t bin[] = {0x00, 0x01, 0xc3, 0x03, 0xff, 0x00, 'x', 0x80, 0x01};
	/* Opaque content on a tag libwbxml knows as binary and on one it does
	 * not: both go out as OPAQUE and come back flagged as such. */
	struct eas_node *root = eas_node_new(EAS_PAGE_AIRSYNC, "Sync");
	eas_node_add_opaque(root, EAS_PAGE_COMPOSEMAIL, "MIME", bin, sizeof(bin));
	eas_node_add_opaque(root, EAS_PAGE_AIRSYNCBASE, "Data", bin, sizeof(bin));
	check_roundtrip(root);
	uint8_t *out = NULL;
	size_t len = 0;
	const char *error = NULL;
	REQUIRE(eas_wbxml_encode(root, &out, &len, &error) == 0);
	/* clang-format off */
	static const uint8_t want[] = {
		0x03, 0x01, 0x6a, 0x00,
		0x45,							/* Sync */
		0x00, 0x15, 0x50, 0xc3, 0x09,				/* MIME, OPAQUE 9 */
		0x00, 0x01, 0xc3, 0x03, 0xff, 0x00, 'x', 0x80, 0x01, 0x01,
		0x00, 0x11, 0x4b, 0xc3, 0x09,				/* Data, OPAQUE 9 */
		0x00, 0x01, 0xc3, 0x03, 0xff, 0x00, 'x', 0x80, 0x01, 0x01,
		0x01,
	};
	/* clang-format on */
	if (CHECK_INT(len, sizeof(want)))
		CHECK_MEM(out, want, sizeof(want));
	struct eas_node *back = NULL;
	REQUIRE(eas_wbxml_decode(out, len, 0, &back, &error) == 0);
	const struct eas_node *mime = eas_node_child(back, EAS_PAGE_COMPOSEMAIL, "MIME");
	size_t n = 0;
	const uint8_t *bytes = eas_node_bytes(mime, &n);
	CHECK_INT(eas_node_content(mime), EAS_CONTENT_OPAQUE);
	CHECK_INT(n, sizeof(bin));
	CHECK_MEM(bytes, bin, sizeof(bin));
	CHECK(eas_node_text(mime) == NULL); /* contains NUL */
	free(out);
	eas_node_free(&back);
	eas_node_free(&root);

	/* Text on an element [MS-ASWBXML] types as opaque goes out as OPAQUE. */
	root = eas_node_new(EAS_PAGE_ITEMOPERATIONS, "Move");
	eas_node_add_text(root, EAS_PAGE_ITEMOPERATIONS, "ConversationId", "abc");
	REQUIRE(eas_wbxml_encode(root, &out, &len, &error) == 0);
	static const uint8_t want2[] = {0x03, 0x01, 0x6a, 0x00, 0x00, 0x14, 0x56, 0x58,
	                                0xc3, 0x03, 'a',  'b',  'c',  0x01, 0x01};
	if (CHECK_INT(len, sizeof(want2)))
		CHECK_MEM(out, want2, sizeof(want2));
	free(out);
	eas_node_free(&root);

	/* An inline string and an OPAQUE in one element: one opaque content. */
	struct doc d =
	    DOC(0x45, 0x4b, 0x03, 'a', 0x00, 0xc3, 0x02, 'b', 0x00, 0x03, 'c', 0x00, 0x01, 0x01);
	REQUIRE(eas_wbxml_decode(d.b, d.n, 0, &root, &error) == 0);
	bytes = eas_node_bytes(eas_node_child(root, EAS_PAGE_AIRSYNC, "SyncKey"), &n);
	CHECK_INT(eas_node_content(eas_node_child(root, EAS_PAGE_AIRSYNC, "SyncKey")),
	          EAS_CONTENT_OPAQUE);
	CHECK_INT(n, 4);
	CHECK_MEM(bytes, "ab\0c", 4);
	eas_node_free(&root);

	/* Empty content: an empty element on the wire. */
	root = eas_node_new(EAS_PAGE_COMPOSEMAIL, "SendMail");
	eas_node_add_opaque(root, EAS_PAGE_COMPOSEMAIL, "MIME", "", 0);
	eas_node_add_text(root, EAS_PAGE_COMPOSEMAIL, "ClientId", "");
	REQUIRE(eas_wbxml_encode(root, &out, &len, &error) == 0);
	static const uint8_t want3[] = {0x03, 0x01, 0x6a, 0x00, 0x00, 0x15, 0x45, 0x10, 0x11, 0x01};
	if (CHECK_INT(len, sizeof(want3)))
		CHECK_MEM(out, want3, sizeof(want3));
	free(out);
	eas_node_free(&root);
}

/* ---- building mistakes, queries, free ------------------------------------- */

static void test_build_mistakes(void)
{
	uint8_t *out = (uint8_t *)1;
	size_t len = 1;
	const char *error = NULL;
	struct eas_node *root = eas_node_new(EAS_PAGE_AIRSYNC, "Sync");
	struct eas_node *bad = eas_node_add(root, EAS_PAGE_AIRSYNC, "NoSuchTag");
	CHECK(bad != NULL && eas_node_name(bad) == NULL);
	eas_node_add_text(bad, EAS_PAGE_AIRSYNC, "SyncKey", "0"); /* children still work */
	CHECK_INT(eas_wbxml_encode(root, &out, &len, &error), HK_ERR_INVAL);
	CHECK(out == NULL && len == 0 && error != NULL && strstr(error, "unknown tag") != NULL);
	eas_node_free(&bad);
	CHECK(bad == NULL);
	CHECK(eas_node_first(root) == NULL);
	eas_node_free(&root);

	/* A name on the wrong page; the Find page libwbxml does not know. */
	root = eas_node_new(EAS_PAGE_EMAIL, "SyncKey");
	CHECK_INT(eas_wbxml_encode(root, &out, &len, &error), HK_ERR_INVAL);
	eas_node_free(&root);
	root = eas_node_new(EAS_PAGE_FIND, "Find");
	CHECK_INT(eas_wbxml_encode(root, &out, &len, &error), HK_ERR_INVAL);
	eas_node_free(&root);

	/* A child under an element with content. */
	root = eas_node_new(EAS_PAGE_AIRSYNC, "Sync");
	struct eas_node *key = eas_node_add_text(root, EAS_PAGE_AIRSYNC, "SyncKey", "0");
	eas_node_add(key, EAS_PAGE_AIRSYNC, "Status");
	CHECK_INT(eas_wbxml_encode(root, &out, &len, &error), HK_ERR_INVAL);
	CHECK(error != NULL && strstr(error, "content") != NULL);
	eas_node_free(&root);

	CHECK(eas_node_add(NULL, EAS_PAGE_AIRSYNC, "Sync") == NULL);
	CHECK(eas_node_add_text(NULL, EAS_PAGE_AIRSYNC, "Sync", "x") == NULL);
	CHECK_INT(eas_wbxml_encode(NULL, &out, &len, &error), HK_ERR_INVAL);
	eas_node_free(NULL);
	eas_node_free(&root);
}

static void test_queries_and_free(void)
{
	struct eas_node *root = eas_node_new(EAS_PAGE_AIRSYNC, "Sync");
	struct eas_node *colls = eas_node_add(root, EAS_PAGE_AIRSYNC, "Collections");
	struct eas_node *c1 = eas_node_add(colls, EAS_PAGE_AIRSYNC, "Collection");
	eas_node_add_text(c1, EAS_PAGE_AIRSYNC, "SyncKey", "a");
	struct eas_node *c2 = eas_node_add(colls, EAS_PAGE_AIRSYNC, "Collection");
	eas_node_add_text(c2, EAS_PAGE_AIRSYNC, "SyncKey", "b");
	eas_node_add(colls, EAS_PAGE_AIRSYNC, "Status");
	struct eas_node *c3 = eas_node_add(colls, EAS_PAGE_AIRSYNC, "Collection");
	eas_node_add_text(c3, EAS_PAGE_AIRSYNC, "SyncKey", "c");

	CHECK_INT(eas_node_count(colls, EAS_PAGE_AIRSYNC, "Collection"), 3);
	const struct eas_node *c =
	    eas_node_find(root, EAS_PAGE_AIRSYNC, "Collections", "Collection", NULL);
	CHECK(c == c1);
	CHECK(eas_node_next_same(c) == c2);
	CHECK(eas_node_next_same(c2) == c3);
	CHECK(eas_node_next_same(c3) == NULL);
	CHECK(eas_node_parent(c2) == colls);
	CHECK(eas_node_find(root, EAS_PAGE_AIRSYNC, "Collections", "Nope", NULL) == NULL);
	CHECK(eas_node_find(root, EAS_PAGE_AIRSYNC, NULL) == root);
	CHECK(eas_node_text(colls) == NULL); /* has children */
	size_t n = 1;
	CHECK(eas_node_bytes(colls, &n) == NULL && n == 0);
	CHECK_STR(eas_node_text(eas_node_child(colls, EAS_PAGE_AIRSYNC, "Status")), "");
	CHECK(eas_node_is(c2, EAS_PAGE_AIRSYNC, "Collection"));
	CHECK(!eas_node_is(c2, EAS_PAGE_GETITEMESTIMATE, "Collection"));
	CHECK(eas_node_child(NULL, EAS_PAGE_AIRSYNC, "Sync") == NULL);
	CHECK(eas_node_text(NULL) == NULL);
	CHECK(eas_node_name(NULL) == NULL);

	/* Freeing a middle child unlinks it; the others stay. */
	eas_node_free(&c2);
	CHECK(c2 == NULL);
	CHECK_INT(eas_node_count(colls, EAS_PAGE_AIRSYNC, "Collection"), 2);
	CHECK(eas_node_next_same(c1) == c3);
	eas_node_free(&c1); /* the first */
	CHECK(eas_node_first(colls) != NULL);
	eas_node_free(&c3); /* the last */
	CHECK_INT(eas_node_count(colls, EAS_PAGE_AIRSYNC, "Collection"), 0);
	check_roundtrip(root);
	eas_node_free(&root);

	/* Deep built trees: free and dump do not recurse; encode refuses. */
	root = eas_node_new(EAS_PAGE_AIRSYNC, "Sync");
	struct eas_node *x = root;
	for (int i = 0; i < 100000; i++)
		x = eas_node_add(x, EAS_PAGE_AIRSYNC, "Collections");
	uint8_t *out = NULL;
	size_t len;
	const char *error = NULL;
	CHECK_INT(eas_wbxml_encode(root, &out, &len, &error), HK_ERR_TOO_LONG);
	char *dump = NULL;
	CHECK_INT(eas_node_dump(root, NULL, 0, EAS_DUMP_INDENT, 1000, &dump), 0);
	CHECK(dump != NULL && strlen(dump) <= 1000 + 6);
	free(dump);
	eas_node_free(&root);
}

static void test_dump(void)
{
	struct eas_node *root = eas_node_new(EAS_PAGE_COMPOSEMAIL, "SendMail");
	eas_node_add_text(root, EAS_PAGE_COMPOSEMAIL, "ClientId", "a<&>\"'\x01\t");
	eas_node_add(root, EAS_PAGE_COMPOSEMAIL, "SaveInSentItems");
	eas_node_add_opaque(root, EAS_PAGE_COMPOSEMAIL, "MIME", "secret", 6);
	struct eas_node *dev = eas_node_add(
	    eas_node_add(root, EAS_PAGE_SETTINGS, "DeviceInformation"), EAS_PAGE_SETTINGS, "Set");
	eas_node_add_text(dev, EAS_PAGE_SETTINGS, "Model", "x");
	char *xml = NULL;
	REQUIRE(eas_node_dump(root, NULL, 0, 0, 4096, &xml) == 0);
	CHECK_STR(xml, "<SendMail xmlns=\"ComposeMail:\">\n"
	               "<ClientId>a&lt;&amp;&gt;&quot;&apos;&#1;\t</ClientId>\n"
	               "<SaveInSentItems/>\n"
	               "<MIME>c2VjcmV0</MIME>\n"
	               "<DeviceInformation xmlns=\"Settings:\">\n"
	               "<Set>\n"
	               "<Model>x</Model>\n"
	               "</Set>\n"
	               "</DeviceInformation>\n"
	               "</SendMail>\n");
	free(xml);

	static const struct eas_elide elide[] = {{EAS_PAGE_COMPOSEMAIL, "MIME"},
	                                         {EAS_PAGE_SETTINGS, "Model"}};
	REQUIRE(eas_node_dump(root, elide, 2, EAS_DUMP_INDENT, 4096, &xml) == 0);
	CHECK_STR(xml, "<SendMail xmlns=\"ComposeMail:\">\n"
	               "  <ClientId>a&lt;&amp;&gt;&quot;&apos;&#1;\t</ClientId>\n"
	               "  <SaveInSentItems/>\n"
	               "  <MIME>[6 bytes elided]</MIME>\n"
	               "  <DeviceInformation xmlns=\"Settings:\">\n"
	               "    <Set>\n"
	               "      <Model>[1 bytes elided]</Model>\n"
	               "    </Set>\n"
	               "  </DeviceInformation>\n"
	               "</SendMail>\n");
	free(xml);

	REQUIRE(eas_node_dump(root, NULL, 0, 0, 20, &xml) == 0);
	CHECK_STR(xml, "<SendMail xmlns=\"Com[...]\n");
	free(xml);
	CHECK_INT(eas_node_dump(NULL, NULL, 0, 0, 20, &xml), HK_ERR_INVAL);
	eas_node_free(&root);
}

/* ---- hostile and malformed input ------------------------------------------ */

static void test_truncated_everywhere(void)
{
	DIR *dir = opendir(HK_EAS_FIXTURES);
	REQUIRE(dir != NULL);
	struct dirent *e;
	size_t tried = 0;
	while ((e = readdir(dir)) != NULL) {
		if (strstr(e->d_name, ".resp.wbxml") == NULL)
			continue;
		size_t len;
		uint8_t *buf = read_fixture(e->d_name, &len);
		/* Each prefix in its own allocation so that ASan and valgrind see
		 * any read past it. */
		for (size_t cut = 0; cut < len; cut++) {
			uint8_t *p = malloc(cut > 0 ? cut : 1);
			REQUIRE(p != NULL);
			memcpy(p, buf, cut);
			struct eas_node *root = NULL;
			const char *error = NULL;
			int ret = eas_wbxml_decode(p, cut, 0, &root, &error);
			int want = cut == 0 ? HK_ERR_NOT_FOUND : HK_ERR_TRUNCATED;
			if (!CHECK_INT(ret, want))
				fprintf(stderr, "  %s cut at %zu: %s\n", e->d_name, cut, error);
			CHECK(root == NULL);
			eas_node_free(&root);
			free(p);
			tried++;
		}
		free(buf);
	}
	closedir(dir);
	CHECK(tried > 20000);
}

static void test_malformed_header(void)
{
	static const uint8_t v12[] = {0x02, 0x01, 0x6a, 0x00, 0x45, 0x01};
	static const uint8_t v14[] = {0x04, 0x01, 0x6a, 0x00, 0x45, 0x01};
	static const uint8_t pid0[] = {0x03, 0x00, 0x00, 0x6a, 0x04, 'x', 0, 0, 0, 0x45, 0x01};
	static const uint8_t pid2[] = {0x03, 0x02, 0x6a, 0x00, 0x45, 0x01};
	static const uint8_t latin1[] = {0x03, 0x01, 0x04, 0x00, 0x45, 0x01};
	static const uint8_t strtbl[] = {0x03, 0x01, 0x6a, 0x03, 'a', 'b', 0, 0x45, 0x01};
	static const uint8_t mb_long[] = {0x03, 0x81, 0x80, 0x80, 0x80, 0x80,
	                                  0x01, 0x6a, 0x00, 0x45, 0x01};
	static const uint8_t mb_big[] = {0x03, 0x01, 0xff, 0xff, 0xff,
	                                 0xff, 0x7f, 0x00, 0x45, 0x01};
	static const uint8_t hdr_only[] = {0x03, 0x01, 0x6a, 0x00};
	static const uint8_t hdr_cut[] = {0x03, 0x01, 0xea};
#define FAIL_RAW(a, err, msg) expect_fail_n(a, sizeof(a), 0, err, msg, __LINE__)
	FAIL_RAW(v12, HK_ERR_VERSION, "version");
	FAIL_RAW(v14, HK_ERR_VERSION, "version");
	FAIL_RAW(pid0, HK_ERR_INVAL, "public id in a string table");
	FAIL_RAW(pid2, HK_ERR_INVAL, "public id is not 1");
	FAIL_RAW(latin1, HK_ERR_INVAL, "charset");
	FAIL_RAW(strtbl, HK_ERR_INVAL, "string table");
	FAIL_RAW(mb_long, HK_ERR_INVAL, "longer than 5 bytes");
	FAIL_RAW(mb_big, HK_ERR_INVAL, "over 32 bits");
	FAIL_RAW(hdr_only, HK_ERR_TRUNCATED, "before the root element ends");
	FAIL_RAW(hdr_cut, HK_ERR_TRUNCATED, "multi-byte integer");
#undef FAIL_RAW
}

static void test_malformed_body(void)
{
	/* Unknown code pages (Find is unknown to libwbxml 0.11.8). */
	EXPECT_FAIL(DOC(0x00, 0x1a, 0x45, 0x01), HK_ERR_INVAL, "unknown code page");
	EXPECT_FAIL(DOC(0x00, 0x19, 0x45, 0x01), HK_ERR_INVAL, "unknown code page");
	EXPECT_FAIL(DOC(0x00, 0xff, 0x45, 0x01), HK_ERR_INVAL, "unknown code page");
	EXPECT_FAIL(DOC(0x00), HK_ERR_TRUNCATED, "SWITCH_PAGE");
	/* Unknown tags: AirSync 0x3F (empty and with content), AirSyncBase 0x09. */
	EXPECT_FAIL(DOC(0x7f, 0x01), HK_ERR_INVAL, "unknown tag");
	EXPECT_FAIL(DOC(0x45, 0x3f, 0x01), HK_ERR_INVAL, "unknown tag");
	EXPECT_FAIL(DOC(0x00, 0x11, 0x49, 0x01), HK_ERR_INVAL, "unknown tag");
	/* String table references without a string table. */
	EXPECT_FAIL(DOC(0x45, 0x4b, 0x83, 0x00, 0x01, 0x01), HK_ERR_INVAL,
	            "string table reference");
	EXPECT_FAIL(DOC(0x45, 0x4b, 0x83, 0x85, 0x00, 0x01, 0x01), HK_ERR_INVAL,
	            "string table reference");
	/* Tokens ActiveSync never uses. */
	EXPECT_FAIL(DOC(0x45, 0x4b, 0x02, 0x41, 0x01, 0x01), HK_ERR_INVAL, "ENTITY");
	EXPECT_FAIL(DOC(0x04, 0x00, 0x01), HK_ERR_INVAL, "literal");
	EXPECT_FAIL(DOC(0x45, 0x44, 0x00, 0x01, 0x01), HK_ERR_INVAL, "literal");
	EXPECT_FAIL(DOC(0x45, 0xc4, 0x00, 0x01, 0x01, 0x01), HK_ERR_INVAL, "literal");
	EXPECT_FAIL(DOC(0x45, 0x40, 'x', 0x00, 0x01), HK_ERR_INVAL, "extension");
	EXPECT_FAIL(DOC(0x45, 0x81, 0x00, 0x01), HK_ERR_INVAL, "extension");
	EXPECT_FAIL(DOC(0x45, 0xc2, 0x01), HK_ERR_INVAL, "extension");
	EXPECT_FAIL(DOC(0x43, 0x05, 0x01, 0x45, 0x01), HK_ERR_INVAL, "processing instruction");
	EXPECT_FAIL(DOC(0xc5, 0x05, 0x01, 0x01), HK_ERR_INVAL, "attributes");
	EXPECT_FAIL(DOC(0x85, 0x05, 0x01), HK_ERR_INVAL, "attributes");
	/* Structure. */
	EXPECT_FAIL(DOC(0x03, 'x', 0x00, 0x45, 0x01), HK_ERR_INVAL, "string outside the root");
	EXPECT_FAIL(DOC(0xc3, 0x01, 'x', 0x45, 0x01), HK_ERR_INVAL, "opaque outside the root");
	EXPECT_FAIL(DOC(0x01), HK_ERR_INVAL, "END without an open element");
	EXPECT_FAIL(DOC(0x45, 0x01, 0x01), HK_ERR_INVAL, "data after the root");
	EXPECT_FAIL(DOC(0x45, 0x01, 0x45, 0x01), HK_ERR_INVAL, "data after the root");
	EXPECT_FAIL(DOC(0x05, 0x05), HK_ERR_INVAL, "data after the root");
	EXPECT_FAIL(DOC(0x45, 0x03, 'x', 0x00, 0x0b, 0x01), HK_ERR_INVAL, "mixed");
	EXPECT_FAIL(DOC(0x45, 0x0b, 0x03, 'x', 0x00, 0x01), HK_ERR_INVAL, "mixed");
	/* Truncation inside tokens. */
	EXPECT_FAIL(DOC(0x45, 0x4b, 0x03, 'x'), HK_ERR_TRUNCATED, "string");
	EXPECT_FAIL(DOC(0x45, 0x4b, 0xc3, 0x05, 'x', 0x01, 0x01), HK_ERR_TRUNCATED, "opaque");
	EXPECT_FAIL(DOC(0x45, 0x4b, 0xc3, 0x8f, 0xff, 0xff, 0xff, 0x7f), HK_ERR_TRUNCATED,
	            "opaque");
	EXPECT_FAIL(DOC(0x45, 0x4b, 0xc3), HK_ERR_TRUNCATED, "multi-byte");
	EXPECT_FAIL(DOC(0x45, 0x4b), HK_ERR_TRUNCATED, "root element ends");

	/* A lone empty root is a document. */
	struct doc d = DOC(0x05);
	struct eas_node *root = NULL;
	const char *error = NULL;
	CHECK_INT(eas_wbxml_decode(d.b, d.n, 0, &root, &error), 0);
	CHECK(eas_node_is(root, EAS_PAGE_AIRSYNC, "Sync") && eas_node_first(root) == NULL);
	eas_node_free(&root);
}

/* Inputs that crash or abort libwbxml 0.11.8 when it parses them itself. */
static void test_libwbxml_killers(void)
{
	/* ENTITY &#x80000000;: assert(code < 0x80000000) aborts. */
	EXPECT_FAIL(DOC(0x45, 0x02, 0x88, 0x80, 0x80, 0x80, 0x00, 0x01), HK_ERR_INVAL, "ENTITY");
	/* 100000 nested start tags: its recursive parser overflows the stack. */
	size_t n = 4 + 200000;
	uint8_t *deep = malloc(n);
	REQUIRE(deep != NULL);
	memcpy(deep, "\x03\x01\x6a\x00", 4);
	memset(deep + 4, 0x5c, 100000); /* Collections, with content */
	memset(deep + 4 + 100000, 0x01, 100000);
	expect_fail_n(deep, n, 0, HK_ERR_TOO_LONG, "nested deeper", __LINE__);
	free(deep);
}

/* libwbxml's tree builder (not used) turns the text of a "Data" element
 * whose grandparent is named "Add" into CDATA nodes, one more nested per
 * string, and then attaches later elements one level too deep. Decoding
 * goes through its parser's events and is not affected. */
static void test_data_under_add(void)
{
	struct eas_node *root = NULL;
	const char *error = NULL;
	static const char *const want[] = {"ab", "ab", "abc"};
	struct doc docs[3] = {
	    DOC(0x45, 0x47, 0x5d, 0x00, 0x11, 0x4b, 0x03, 'a', 'b', 0x00, 0x01, 0x00, 0x00, 0x4d,
	        0x03, '1', 0x00, 0x01, 0x01, 0x01, 0x01),
	    DOC(0x45, 0x47, 0x5d, 0x00, 0x11, 0x4b, 0x03, 'a', 0x00, 0x03, 'b', 0x00, 0x01, 0x00,
	        0x00, 0x4d, 0x03, '1', 0x00, 0x01, 0x01, 0x01, 0x01),
	    DOC(0x45, 0x47, 0x5d, 0x00, 0x11, 0x4b, 0x03, 'a', 0x00, 0x03, 'b', 0x00, 0x03, 'c',
	        0x00, 0x01, 0x00, 0x00, 0x4d, 0x03, '1', 0x00, 0x01, 0x01, 0x01, 0x01),
	};
	for (size_t i = 0; i < 3; i++) {
		if (!CHECK_INT(eas_wbxml_decode(docs[i].b, docs[i].n, 0, &root, &error), 0))
			continue;
		const struct eas_node *app =
		    eas_node_find(root, EAS_PAGE_AIRSYNC, "Add", "ApplicationData", NULL);
		CHECK_INT(eas_node_count(app, EAS_PAGE_AIRSYNC, "ServerId"), 1);
		CHECK_STR(eas_node_child_text(app, EAS_PAGE_AIRSYNCBASE, "Data"), want[i]);
		CHECK_STR(eas_node_child_text(app, EAS_PAGE_AIRSYNC, "ServerId"), "1");
		eas_node_free(&root);
	}
}

/* 99999 siblings: libwbxml's tree helpers append in O(siblings), which
 * made this take about a minute; decoding and encoding must stay linear. */
static void test_wide_document(void)
{
	size_t kids = EAS_WBXML_DEFAULT_NODES - 1, n = 4 + 1 + kids + 1;
	uint8_t *buf = malloc(n);
	REQUIRE(buf != NULL);
	memcpy(buf, "\x03\x01\x6a\x00\x45", 5);
	memset(buf + 5, 0x0b, kids); /* empty SyncKey */
	buf[n - 1] = 0x01;
	struct eas_node *root = NULL;
	const char *error = NULL;
	if (CHECK_INT(eas_wbxml_decode(buf, n, 0, &root, &error), 0)) {
		CHECK_INT(eas_node_count(root, EAS_PAGE_AIRSYNC, "SyncKey"), kids);
		uint8_t *out = NULL;
		size_t len = 0;
		if (CHECK_INT(eas_wbxml_encode(root, &out, &len, &error), 0) && CHECK_INT(len, n))
			CHECK_MEM(out, buf, n);
		free(out);
	}
	eas_node_free(&root);
	free(buf);
}

static void test_limits(void)
{
	struct eas_node *root = NULL;
	const char *error = NULL;

	/* Depth: EAS_WBXML_MAX_DEPTH levels decode, one more does not. */
	uint8_t buf[4 + 2 * (EAS_WBXML_MAX_DEPTH + 1)];
	for (size_t depth = EAS_WBXML_MAX_DEPTH; depth <= EAS_WBXML_MAX_DEPTH + 1; depth++) {
		size_t n = 4;
		memcpy(buf, "\x03\x01\x6a\x00", 4);
		for (size_t i = 0; i < depth - 1; i++)
			buf[n++] = 0x5c;
		buf[n++] = 0x1c; /* innermost: empty */
		for (size_t i = 0; i < depth - 1; i++)
			buf[n++] = 0x01;
		int ret = eas_wbxml_decode(buf, n, 0, &root, &error);
		if (depth == EAS_WBXML_MAX_DEPTH) {
			CHECK_INT(ret, 0);
			eas_node_free(&root);
		} else {
			CHECK_INT(ret, HK_ERR_TOO_LONG);
			CHECK(strstr(error, "deeper") != NULL);
		}
	}

	/* Node count: Sync with nine empty SyncKeys is ten elements. */
	struct doc d = DOC(0x45, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x01);
	CHECK_INT(eas_wbxml_decode(d.b, d.n, 10, &root, &error), 0);
	CHECK_INT(eas_node_count(root, EAS_PAGE_AIRSYNC, "SyncKey"), 9);
	eas_node_free(&root);
	expect_fail_n(d.b, d.n, 9, HK_ERR_TOO_LONG, "more elements", __LINE__);

	/* Input size. */
	size_t big = (size_t)EAS_WBXML_MAX_INPUT + 1;
	uint8_t *huge = calloc(1, big);
	REQUIRE(huge != NULL);
	expect_fail_n(huge, big, 0, HK_ERR_TOO_LONG, "maximum size", __LINE__);

	/* Content of one element: one OPAQUE just over the limit, and two
	 * inline strings whose sum is. */
	uint32_t over = EAS_WBXML_MAX_CONTENT + 1;
	size_t n = 0;
	memcpy(huge, "\x03\x01\x6a\x00\x45\x4b\xc3", 7);
	n = 7;
	huge[n++] = (uint8_t)(0x80 | (over >> 21 & 0x7f));
	huge[n++] = (uint8_t)(0x80 | (over >> 14 & 0x7f));
	huge[n++] = (uint8_t)(0x80 | (over >> 7 & 0x7f));
	huge[n++] = (uint8_t)(over & 0x7f);
	n += over;
	huge[n++] = 0x01;
	huge[n++] = 0x01;
	expect_fail_n(huge, n, 0, HK_ERR_TOO_LONG, "content", __LINE__);

	size_t half = EAS_WBXML_MAX_CONTENT / 2 + 1;
	memset(huge, 'a', big);
	memcpy(huge, "\x03\x01\x6a\x00\x45\x4b\x03", 7);
	n = 7 + half;
	huge[n++] = 0x00;
	huge[n++] = 0x03;
	n += half;
	huge[n++] = 0x00;
	huge[n++] = 0x01;
	huge[n++] = 0x01;
	expect_fail_n(huge, n, 0, HK_ERR_TOO_LONG, "content", __LINE__);
	free(huge);
}

TESTS(TEST(test_libwbxml_layout), TEST(test_tag_names), TEST(test_decode_foldersync),
      TEST(test_decode_provision), TEST(test_decode_sync_initial), TEST(test_decode_sync_type1),
      TEST(test_decode_sync_type2_type4), TEST(test_decode_sync_change), TEST(test_decode_ping),
      TEST(test_decode_itemoperations), TEST(test_decode_other_commands),
      TEST(test_decode_empty_body), TEST(test_fixtures_roundtrip), TEST(test_encode_provision),
      TEST(test_encode_foldersync), TEST(test_encode_sync), TEST(test_encode_ping),
      TEST(test_encode_itemoperations), TEST(test_encode_sendmail),
      TEST(test_encode_other_commands), TEST(test_opaque), TEST(test_build_mistakes),
      TEST(test_queries_and_free), TEST(test_dump), TEST(test_truncated_everywhere),
      TEST(test_malformed_header), TEST(test_malformed_body), TEST(test_libwbxml_killers),
      TEST(test_data_under_add), TEST(test_wide_document), TEST(test_limits));
