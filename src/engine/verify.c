#include "engine/verify.h"

#include "eas/provision.h"
#include "lib/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum step { STEP_PROVISION, STEP_ACK, STEP_FOLDERSYNC };

struct verify {
	struct eas_client *client;
	struct eas_call *call;
	verify_cb *cb;
	void *ctx;
	long timeout_ms;
	enum step step;
	int restarts;  /* provisioning restarts (bounded) */
	int redirects; /* 451 redirects (bounded) */
	struct verify_res res;
};

static const char *const step_names[] = {"Provision", "Provision (acknowledgement)",
					 "FolderSync"};

static void finish(struct verify *v, enum eas_action action, const char *error)
{
	v->res.action = action;
	v->res.step = step_names[v->step];
	snprintf(v->res.error, sizeof(v->res.error), "%s", error != NULL ? error : "");
	snprintf(v->res.url, sizeof(v->res.url), "%s", eas_client_url(v->client));
	struct verify *self = v;
	v->cb(&v->res, v->ctx);
	verify_cancel(&self);
}

static void on_response(struct eas_response *r, void *arg);

static int send_step(struct verify *v)
{
	struct eas_node *req = NULL;
	const char *err = NULL;
	int ret;
	const char *cmd = "Provision";
	switch (v->step) {
	case STEP_PROVISION: ret = eas_provision_build(&eas_relay_device_info, &req, &err); break;
	case STEP_ACK:
		ret = eas_provision_build_ack(v->res.policy_key, EAS_POLICY_ACK_OK, &req, &err);
		break;
	case STEP_FOLDERSYNC:
		cmd = "FolderSync";
		ret = eas_foldersync_build("0", &req, &err);
		break;
	default: ret = HK_ERR_STATE; break;
	}
	if (ret == 0)
		ret = eas_client_command(v->client, cmd, req, v->timeout_ms, on_response, v,
					 &v->call);
	eas_node_free(&req);
	return ret;
}

/* Moves on to the next step, or finishes with an error when it cannot be sent. */
static void next(struct verify *v, enum step step)
{
	v->step = step;
	if (send_step(v) < 0)
		finish(v, EAS_ACT_BAD_REQUEST, "could not build the request");
}

static void restart_provisioning(struct verify *v, const char *why)
{
	if (++v->restarts > 2) {
		finish(v, EAS_ACT_PROVISION, why);
		return;
	}
	v->res.policy_key[0] = '\0';
	if (eas_client_set_policy_key(v->client, "") < 0) /* cannot fail for "" */
		abort();
	next(v, STEP_PROVISION);
}

static void on_provision(struct verify *v, struct eas_response *r)
{
	struct eas_provision_result pr;
	const char *err = NULL;
	if (r->root == NULL || eas_provision_parse(r->root, &pr, &err) < 0) {
		finish(v, EAS_ACT_BAD_RESPONSE, err != NULL ? err : "empty Provision response");
		return;
	}
	v->res.status = pr.status;
	enum eas_provision_next n =
		eas_provision_next(&pr, v->step == STEP_ACK ? EAS_PROVISION_ACK : EAS_PROVISION_REQUEST);
	switch (n) {
	case EAS_PROVISION_NEXT_WIPE:
		/* a server that wants to wipe a device we are only registering
		 * must not get a working sync partnership out of this */
		finish(v, EAS_ACT_WIPE, "the server requested a remote wipe");
		return;
	case EAS_PROVISION_NEXT_RESTART:
		restart_provisioning(v, "the server did not accept the policy acknowledgement");
		return;
	case EAS_PROVISION_NEXT_REFUSED:
		finish(v, pr.action, "Provision refused");
		return;
	case EAS_PROVISION_NEXT_ACK:
	case EAS_PROVISION_NEXT_DONE:
		break;
	}
	if (pr.policy_key[0] != '\0') {
		snprintf(v->res.policy_key, sizeof(v->res.policy_key), "%s", pr.policy_key);
		if (eas_client_set_policy_key(v->client, pr.policy_key) < 0) {
			finish(v, EAS_ACT_BAD_RESPONSE, "unusable PolicyKey");
			return;
		}
	}
	next(v, n == EAS_PROVISION_NEXT_ACK ? STEP_ACK : STEP_FOLDERSYNC);
}

static void on_foldersync(struct verify *v, struct eas_response *r)
{
	struct eas_foldersync_result *fr = NULL;
	const char *err = NULL;
	if (r->root == NULL || eas_foldersync_parse(r->root, &fr, &err) < 0) {
		finish(v, EAS_ACT_BAD_RESPONSE, err != NULL ? err : "empty FolderSync response");
		return;
	}
	enum eas_action a = fr->action;
	v->res.status = fr->status;
	eas_foldersync_result_free(&fr);
	if (a == EAS_ACT_PROVISION)
		restart_provisioning(v, "the server keeps asking for provisioning");
	else
		finish(v, a, a == EAS_ACT_OK ? NULL : "FolderSync refused");
}

static void on_response(struct eas_response *r, void *arg)
{
	struct verify *v = arg;
	v->call = NULL;
	v->res.transport = r->transport;
	v->res.http_status = r->http_status;
	v->res.status = r->status;
	if (r->action == EAS_ACT_REDIRECT && r->redirect_url != NULL && ++v->redirects <= 3 &&
	    eas_client_set_url(v->client, r->redirect_url) == 0) {
		log_info("verify: redirected to %s", r->redirect_url);
		if (send_step(v) < 0)
			finish(v, EAS_ACT_BAD_REQUEST, "could not build the request");
		return;
	}
	if (r->action == EAS_ACT_PROVISION) {
		restart_provisioning(v, r->error);
		return;
	}
	if (r->action != EAS_ACT_OK) {
		finish(v, r->action, r->error);
		return;
	}
	if (v->step == STEP_FOLDERSYNC)
		on_foldersync(v, r);
	else
		on_provision(v, r);
}

int verify_start(struct httpc *http, const struct verify_req *req, verify_cb *cb, void *ctx,
		 struct verify **v_r)
{
	struct verify *v = calloc(1, sizeof(*v));
	if (v == NULL)
		abort();
	struct eas_client_config cfg = {
		.url = req->url,
		.username = req->username,
		.device_id = req->device_id,
		.ca_file = req->ca_file,
		.timeout_ms = req->timeout_ms,
		.http2 = req->http2,
	};
	const char *err = NULL;
	int ret = eas_client_new(http, &cfg, req->password, &v->client, &err);
	if (ret < 0) {
		log_notice("verify: %s", err);
		free(v);
		return ret;
	}
	v->cb = cb;
	v->ctx = ctx;
	v->timeout_ms = req->timeout_ms;
	v->step = STEP_PROVISION;
	if ((ret = send_step(v)) < 0) {
		eas_client_free(&v->client);
		free(v);
		return ret;
	}
	if (v_r != NULL)
		*v_r = v;
	return 0;
}

void verify_cancel(struct verify **vp)
{
	struct verify *v = *vp;
	if (v == NULL)
		return;
	*vp = NULL;
	eas_call_cancel(&v->call);
	eas_client_free(&v->client);
	free(v);
}
