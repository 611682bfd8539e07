/* The provisioning decision (eas/provision.h) on parsed answers: the
 * server's real answers captured in tests/fixtures/eas, and hand-made ones
 * for what that server never sends (a policy, a refused acknowledgement, a
 * wipe, every Provision and Policy status). */
#include "eas/provision.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>

#ifndef HK_EAS_FIXTURES
#error "HK_EAS_FIXTURES must name tests/fixtures/eas"
#endif

#define PV EAS_PAGE_PROVISION

static struct eas_node *fixture(const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", HK_EAS_FIXTURES, name);
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	uint8_t buf[8192];
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	struct eas_node *root = NULL;
	const char *err = NULL;
	return eas_wbxml_decode(buf, n, 0, &root, &err) == 0 ? root : NULL;
}

/* A Provision answer: Status, then (when pstatus or key) one Policy. */
static struct eas_node *answer(const char *status, const char *pstatus, const char *key,
			       bool wipe)
{
	struct eas_node *root = eas_node_new(PV, "Provision");
	if (status != NULL)
		eas_node_add_text(root, PV, "Status", status);
	if (pstatus != NULL || key != NULL) {
		struct eas_node *p =
			eas_node_add(eas_node_add(root, PV, "Policies"), PV, "Policy");
		eas_node_add_text(p, PV, "PolicyType", EAS_POLICY_TYPE);
		if (pstatus != NULL)
			eas_node_add_text(p, PV, "Status", pstatus);
		if (key != NULL)
			eas_node_add_text(p, PV, "PolicyKey", key);
	}
	if (wipe)
		eas_node_add(root, PV, "RemoteWipe");
	return root;
}

/* The decision for root at step; -1 when root does not parse. */
static int decide(struct eas_node *root, enum eas_provision_step step,
		  struct eas_provision_result *pr)
{
	const char *err = NULL;
	int ret = root != NULL && eas_provision_parse(root, pr, &err) == 0
			  ? (int)eas_provision_next(pr, step)
			  : -1;
	eas_node_free(&root);
	return ret;
}

static void test_real_server_without_policy(void)
{
	struct eas_provision_result pr;
	/* SOGo has no policy: the request's answer ends the dance */
	CHECK_INT(decide(fixture("provision.resp.wbxml"), EAS_PROVISION_REQUEST, &pr),
		  EAS_PROVISION_NEXT_DONE);
	CHECK_STR(pr.policy_key, "");
	CHECK_INT(decide(fixture("provision-ack.resp.wbxml"), EAS_PROVISION_ACK, &pr),
		  EAS_PROVISION_NEXT_DONE);
	CHECK_INT(decide(fixture("cmd-provision-devinfo.resp.wbxml"), EAS_PROVISION_REQUEST, &pr),
		  EAS_PROVISION_NEXT_DONE);
}

static void test_policy_dance(void)
{
	struct eas_provision_result pr;
	/* a policy: the temporary key is acknowledged, the final one kept */
	CHECK_INT(decide(answer("1", "1", "1307199584", false), EAS_PROVISION_REQUEST, &pr),
		  EAS_PROVISION_NEXT_ACK);
	CHECK_STR(pr.policy_key, "1307199584");
	CHECK_INT(decide(answer("1", "1", "3942919513", false), EAS_PROVISION_ACK, &pr),
		  EAS_PROVISION_NEXT_DONE);
	CHECK_STR(pr.policy_key, "3942919513");
	/* an acknowledgement answered without a key: done, keep the one in use */
	CHECK_INT(decide(answer("1", "1", NULL, false), EAS_PROVISION_ACK, &pr),
		  EAS_PROVISION_NEXT_DONE);
	CHECK_STR(pr.policy_key, "");
	/* Policy Status 2: no policy for this client, whatever the step */
	CHECK_INT(decide(answer("1", "2", NULL, false), EAS_PROVISION_REQUEST, &pr),
		  EAS_PROVISION_NEXT_DONE);
	/* no Policy element at all */
	CHECK_INT(decide(answer("1", NULL, NULL, false), EAS_PROVISION_REQUEST, &pr),
		  EAS_PROVISION_NEXT_DONE);
}

static void test_wipe_wins(void)
{
	struct eas_provision_result pr;
	for (int step = EAS_PROVISION_REQUEST; step <= EAS_PROVISION_ACK; step++) {
		CHECK_INT(decide(answer("1", "1", "1", true), (enum eas_provision_step)step, &pr),
			  EAS_PROVISION_NEXT_WIPE);
		CHECK_INT(decide(answer("1", NULL, NULL, true), (enum eas_provision_step)step, &pr),
			  EAS_PROVISION_NEXT_WIPE);
	}
}

/* Every Provision Status ([MS-ASCMD] 2.2.3.162.12) and Policy Status
 * (2.2.3.162.13) the parser maps: success goes on, the rest stop or start
 * over, never "done". */
static void test_statuses(void)
{
	struct eas_provision_result pr;
	for (int st = 2; st <= 3; st++) {
		char s[4];
		snprintf(s, sizeof(s), "%d", st);
		int n = decide(answer(s, "1", "1", false), EAS_PROVISION_REQUEST, &pr);
		CHECK(n == EAS_PROVISION_NEXT_REFUSED || n == EAS_PROVISION_NEXT_RESTART);
		CHECK(n != EAS_PROVISION_NEXT_DONE && n != EAS_PROVISION_NEXT_ACK);
	}
	for (int ps = 3; ps <= 5; ps++) {
		char s[4];
		snprintf(s, sizeof(s), "%d", ps);
		for (int step = EAS_PROVISION_REQUEST; step <= EAS_PROVISION_ACK; step++) {
			int n = decide(answer("1", s, "1", false), (enum eas_provision_step)step,
				       &pr);
			if (!CHECK(n == EAS_PROVISION_NEXT_REFUSED ||
				   n == EAS_PROVISION_NEXT_RESTART))
				fprintf(stderr, "    Policy Status %d at step %d -> %d\n", ps, step,
					n);
		}
	}
	/* Policy Status 5 (the key in use is not the current one): start over */
	CHECK_INT(decide(answer("1", "5", "1", false), EAS_PROVISION_ACK, &pr),
		  EAS_PROVISION_NEXT_RESTART);
}

TESTS(TEST(test_real_server_without_policy), TEST(test_policy_dance), TEST(test_wipe_wins),
      TEST(test_statuses));
