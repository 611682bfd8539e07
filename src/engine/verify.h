/* Verifies a user's credentials against their ActiveSync server, the way a
 * new device starts ([MS-ASPROV] 3.1.5.1, [MS-ASCMD] 2.2.1.5):
 *
 *   Provision (policy request, with DeviceInformation for 14.1)
 *     -> if the server hands out a policy: acknowledge it, keep the final
 *        PolicyKey; "no policy for this client" (policy status 2) is final
 *   -> FolderSync from SyncKey 0
 *
 * Accepted when FolderSync succeeds: the server took the password and lets
 * this user and device sync. Anything else is reported with its action
 * (credentials refused, blocked, unreachable, ...) so that the relay can
 * refuse the registration and store nothing. A 449 or a provisioning status
 * during FolderSync restarts the dance once; a 451 redirect is followed once
 * (the caller learns the new URL).
 *
 * The password is only read, to build the client's guarded Basic value. */
#ifndef HK_ENGINE_VERIFY_H
#define HK_ENGINE_VERIFY_H

#include "eas/client.h"
#include "eas/commands.h"

struct verify_req {
	const char *url;
	const char *username;
	const struct secret *password;
	const char *device_id; /* the EAS DeviceId the account will keep using */
	const char *ca_file;   /* NULL: system trust store */
	long timeout_ms;       /* per step; 0: the client's default */
	bool http2;            /* HTTP/2 when offered (httpc.h) */
};

struct verify_res {
	enum eas_action action;	    /* EAS_ACT_OK: credentials accepted */
	enum httpc_result transport; /* for EAS_ACT_UNREACHABLE: why */
	long http_status;
	int status;		      /* the failing command's Status, 0 if none */
	const char *step;	      /* "Provision", "FolderSync", ... */
	char policy_key[EAS_POLICY_KEY_MAX + 1]; /* "" when the server has no policy */
	char url[EAS_URL_MAX];	      /* the endpoint in the end (after a 451) */
	char error[256];	      /* no secrets */
};

typedef void verify_cb(const struct verify_res *res, void *ctx);

struct verify;

/* Starts the check. Contract of net/httpc.h: if this fails, cb is never
 * called; else exactly once unless verify_cancel() comes first. The handle
 * is invalid from the moment cb starts. */
int verify_start(struct httpc *http, const struct verify_req *req, verify_cb *cb, void *ctx,
		 struct verify **v_r) HK_WARN_UNUSED;
void verify_cancel(struct verify **v);

#endif
