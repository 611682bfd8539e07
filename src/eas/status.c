#include "eas/status.h"

#include <stddef.h>

struct common_status {
	int value;
	const char *name;
	enum eas_action action;
};

/* [MS-ASCMD] 2.2.2, in order. The actions follow the spec's "scope" and
 * description of each value: global blocks stop the account, transient
 * server trouble backs off, sync-state trouble restarts the sync, policy
 * values provision. */
static const struct common_status table[] = {
	{101, "InvalidContent", EAS_ACT_BAD_REQUEST},
	{102, "InvalidWBXML", EAS_ACT_BAD_REQUEST},
	{103, "InvalidXML", EAS_ACT_BAD_REQUEST},
	{104, "InvalidDateTime", EAS_ACT_BAD_REQUEST},
	{105, "InvalidCombinationOfIDs", EAS_ACT_BAD_REQUEST},
	{106, "InvalidIDs", EAS_ACT_BAD_REQUEST},
	{107, "InvalidMIME", EAS_ACT_REJECTED},
	{108, "DeviceIdMissingOrInvalid", EAS_ACT_BAD_REQUEST},
	{109, "DeviceTypeMissingOrInvalid", EAS_ACT_BAD_REQUEST},
	{110, "ServerError", EAS_ACT_RETRY_LATER},
	{111, "ServerErrorRetryLater", EAS_ACT_RETRY_LATER},
	{112, "ActiveDirectoryAccessDenied", EAS_ACT_BLOCKED},
	{113, "MailboxQuotaExceeded", EAS_ACT_QUOTA},
	{114, "MailboxServerOffline", EAS_ACT_RETRY_LATER},
	{115, "SendQuotaExceeded", EAS_ACT_QUOTA},
	{116, "MessageRecipientUnresolved", EAS_ACT_REJECTED},
	{117, "MessageReplyNotAllowed", EAS_ACT_REJECTED},
	{118, "MessagePreviouslySent", EAS_ACT_REJECTED},
	{119, "MessageHasNoRecipient", EAS_ACT_REJECTED},
	{120, "MailSubmissionFailed", EAS_ACT_REJECTED},
	{121, "MessageReplyFailed", EAS_ACT_REJECTED},
	{122, "AttachmentIsTooLarge", EAS_ACT_REJECTED},
	{123, "UserHasNoMailbox", EAS_ACT_BLOCKED},
	{124, "UserCannotBeAnonymous", EAS_ACT_AUTH},
	{125, "UserPrincipalCouldNotBeFound", EAS_ACT_AUTH},
	{126, "UserDisabledForSync", EAS_ACT_BLOCKED},
	{127, "UserOnNewMailboxCannotSync", EAS_ACT_BLOCKED},
	{128, "UserOnLegacyMailboxCannotSync", EAS_ACT_BLOCKED},
	{129, "DeviceIsBlockedForThisUser", EAS_ACT_BLOCKED},
	{130, "AccessDenied", EAS_ACT_BLOCKED},
	{131, "AccountDisabled", EAS_ACT_BLOCKED},
	{132, "SyncStateNotFound", EAS_ACT_RESYNC},
	{133, "SyncStateLocked", EAS_ACT_RETRY_LATER},
	{134, "SyncStateCorrupt", EAS_ACT_RESYNC},
	{135, "SyncStateAlreadyExists", EAS_ACT_RESYNC},
	{136, "SyncStateVersionInvalid", EAS_ACT_RESYNC},
	{137, "CommandNotSupported", EAS_ACT_UNSUPPORTED},
	{138, "VersionNotSupported", EAS_ACT_UNSUPPORTED},
	{139, "DeviceNotFullyProvisionable", EAS_ACT_BLOCKED},
	{140, "RemoteWipeRequested", EAS_ACT_WIPE},
	{141, "LegacyDeviceOnStrictPolicy", EAS_ACT_BLOCKED},
	{142, "DeviceNotProvisioned", EAS_ACT_PROVISION},
	{143, "PolicyRefresh", EAS_ACT_PROVISION},
	{144, "InvalidPolicyKey", EAS_ACT_PROVISION},
	{145, "ExternallyManagedDevicesNotAllowed", EAS_ACT_BLOCKED},
	{146, "NoRecurrenceInCalendar", EAS_ACT_REJECTED},
	{147, "UnexpectedItemClass", EAS_ACT_REJECTED},
	{148, "RemoteServerHasNoSSL", EAS_ACT_REJECTED},
	{149, "InvalidStoredRequest", EAS_ACT_BAD_REQUEST},
	{150, "ItemNotFound", EAS_ACT_NOT_FOUND},
	{151, "TooManyFolders", EAS_ACT_REJECTED},
	{152, "NoFoldersFound", EAS_ACT_REJECTED},
	{153, "ItemsLostAfterMove", EAS_ACT_REJECTED},
	{154, "FailureInMoveOperation", EAS_ACT_REJECTED},
	{155, "MoveCommandDisallowedForNonPersistentMoveAction", EAS_ACT_REJECTED},
	{156, "MoveCommandInvalidDestinationFolder", EAS_ACT_REJECTED},
	{160, "AvailabilityTooManyRecipients", EAS_ACT_REJECTED},
	{161, "AvailabilityDLLimitReached", EAS_ACT_REJECTED},
	{162, "AvailabilityTransientFailure", EAS_ACT_RETRY_LATER},
	{163, "AvailabilityFailure", EAS_ACT_REJECTED},
	{164, "BodyPartPreferenceTypeNotSupported", EAS_ACT_REJECTED},
	{165, "DeviceInformationRequired", EAS_ACT_PROVISION},
	{166, "InvalidAccountId", EAS_ACT_REJECTED},
	{167, "AccountSendDisabled", EAS_ACT_REJECTED},
	{168, "IRM_FeatureDisabled", EAS_ACT_REJECTED},
	{169, "IRM_TransientError", EAS_ACT_RETRY_LATER},
	{170, "IRM_PermanentError", EAS_ACT_REJECTED},
	{171, "IRM_InvalidTemplateID", EAS_ACT_REJECTED},
	{172, "IRM_OperationNotPermitted", EAS_ACT_REJECTED},
	{173, "NoPicture", EAS_ACT_NOT_FOUND},
	{174, "PictureTooLarge", EAS_ACT_REJECTED},
	{175, "PictureLimitReached", EAS_ACT_REJECTED},
	{176, "BodyPart_ConversationTooLarge", EAS_ACT_REJECTED},
	{177, "MaximumDevicesReached", EAS_ACT_BLOCKED},
};

static const struct common_status *lookup(int status)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].value == status)
			return &table[i];
	return NULL;
}

const char *eas_common_status_name(int status)
{
	const struct common_status *s = lookup(status);
	return s != NULL ? s->name : NULL;
}

bool eas_is_common_status(int status)
{
	return lookup(status) != NULL;
}

enum eas_action eas_common_status_action(int status)
{
	if (status == 1)
		return EAS_ACT_OK;
	const struct common_status *s = lookup(status);
	return s != NULL ? s->action : EAS_ACT_BAD_REQUEST;
}

enum eas_action eas_http_status_action(long http_status)
{
	switch (http_status) {
	case 200: return EAS_ACT_OK;
	case 401: return EAS_ACT_AUTH;
	case 403: return EAS_ACT_BLOCKED;
	case 449: return EAS_ACT_PROVISION;
	case 451: return EAS_ACT_REDIRECT;
	case 400: return EAS_ACT_BAD_REQUEST;
	case 404:
	case 501: return EAS_ACT_UNSUPPORTED;
	case 507: return EAS_ACT_QUOTA;
	case 500:
	case 502:
	case 503:
	case 504: return EAS_ACT_RETRY_LATER;
	default:
		/* any other 5xx is the server's trouble; any other 4xx is ours */
		return http_status >= 500 ? EAS_ACT_RETRY_LATER : EAS_ACT_BAD_REQUEST;
	}
}

const char *eas_action_name(enum eas_action action)
{
	switch (action) {
	case EAS_ACT_OK: return "ok";
	case EAS_ACT_AUTH: return "credentials refused";
	case EAS_ACT_BLOCKED: return "blocked by the server";
	case EAS_ACT_PROVISION: return "provisioning required";
	case EAS_ACT_REDIRECT: return "redirected";
	case EAS_ACT_RETRY_LATER: return "server busy, retry later";
	case EAS_ACT_RESYNC: return "sync state lost, resync";
	case EAS_ACT_FOLDER_SYNC: return "folder hierarchy changed";
	case EAS_ACT_WIPE: return "remote wipe requested";
	case EAS_ACT_BAD_REQUEST: return "request rejected as malformed";
	case EAS_ACT_NOT_FOUND: return "not found";
	case EAS_ACT_QUOTA: return "quota exceeded";
	case EAS_ACT_REJECTED: return "operation refused";
	case EAS_ACT_UNSUPPORTED: return "not supported by the server";
	case EAS_ACT_UNREACHABLE: return "server unreachable";
	case EAS_ACT_BAD_RESPONSE: return "malformed response";
	}
	return "unknown";
}
