#include "eas/provision.h"

#include "eas/client.h"

const struct eas_device_info eas_relay_device_info = {
	.model = "Halfkey relay",
	.friendly_name = "Halfkey",
	.os = "Halfkey " HK_VERSION,
	.user_agent = EAS_USER_AGENT,
};

enum eas_provision_next eas_provision_next(const struct eas_provision_result *pr,
					   enum eas_provision_step step)
{
	/* the parser makes a wipe directive win over everything else */
	if (pr->action == EAS_ACT_WIPE)
		return EAS_PROVISION_NEXT_WIPE;
	if (pr->action == EAS_ACT_PROVISION)
		return EAS_PROVISION_NEXT_RESTART;
	if (pr->action != EAS_ACT_OK)
		return EAS_PROVISION_NEXT_REFUSED;
	if (pr->policy_status == EAS_POLICY_OK && pr->policy_key[0] != '\0')
		return step == EAS_PROVISION_REQUEST ? EAS_PROVISION_NEXT_ACK
						     : EAS_PROVISION_NEXT_DONE;
	/* no policy for this client (or no key): nothing to acknowledge */
	return EAS_PROVISION_NEXT_DONE;
}
