/* The provisioning dance ([MS-ASPROV] 3.1.5.1, [MS-ASCMD] 2.2.1.14), as a
 * decision shared by the callers that drive it: registration's credential
 * check (engine/verify.c) and every sync session (sync/session.c).
 *
 * A client first asks for the policy (no X-MS-PolicyKey), gets a temporary
 * key, acknowledges it, and gets the final key it sends from then on. A
 * server without a policy for this client answers the request with no key
 * (or Policy Status 2): nothing to acknowledge. */
#ifndef HK_EAS_PROVISION_H
#define HK_EAS_PROVISION_H

#include "eas/commands.h"

/* Which request the answer is to. */
enum eas_provision_step {
	EAS_PROVISION_REQUEST, /* the policy request */
	EAS_PROVISION_ACK,     /* the acknowledgement of the temporary key */
};

/* What to do with a parsed Provision answer. */
enum eas_provision_next {
	EAS_PROVISION_NEXT_ACK,	    /* set pr->policy_key, acknowledge it */
	EAS_PROVISION_NEXT_DONE,    /* provisioned: set pr->policy_key unless it is ""
				     * (no policy, or an acknowledgement answered
				     * without a key: keep the one in use) */
	EAS_PROVISION_NEXT_RESTART, /* the server wants the dance again (acknowledgement
				     * refused): from the policy request; bound the rounds */
	EAS_PROVISION_NEXT_WIPE,    /* the server requests a remote wipe */
	EAS_PROVISION_NEXT_REFUSED, /* pr->action says why */
};

enum eas_provision_next eas_provision_next(const struct eas_provision_result *pr,
					   enum eas_provision_step step);

/* How the relay describes itself in Provision's DeviceInformation: the
 * same for every account, so that server admins see one kind of device. */
extern const struct eas_device_info eas_relay_device_info;

#endif
