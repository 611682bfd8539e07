/* ActiveSync status codes and what the client should do about each.
 *
 * Two sources of status: the HTTP status of the response ([MS-ASHTTP]
 * 2.2.2.1: 200, 400, 401, 403, 404, 449, 451, 500, 501, 503, 507) and the
 * Status element inside the WBXML body: the values common to every command
 * ([MS-ASCMD] 2.2.2, 101-177) and each command's own small values (1 =
 * success everywhere; the rest differ by command and are interpreted by the
 * command parsers). This module classifies both into one action, so that
 * the sync engine decides by action, never by a server's quirks. */
#ifndef HK_EAS_STATUS_H
#define HK_EAS_STATUS_H

#include <stdbool.h>

/* What the caller should do. */
enum eas_action {
	EAS_ACT_OK = 0,		/* success */
	EAS_ACT_AUTH,		/* credentials refused: flush, ask the device to re-register */
	EAS_ACT_BLOCKED,	/* user/device not allowed to sync (permanent until an admin acts) */
	EAS_ACT_PROVISION,	/* (re)provision, then retry */
	EAS_ACT_REDIRECT,	/* another URL (451 X-MS-Location): update and retry */
	EAS_ACT_RETRY_LATER,	/* transient server trouble: back off with jitter, retry */
	EAS_ACT_RESYNC,		/* sync state lost or invalid: start the collection/hierarchy over */
	EAS_ACT_FOLDER_SYNC,	/* folder hierarchy changed: FolderSync, then retry */
	EAS_ACT_WIPE,		/* the server requests a remote wipe of this device */
	EAS_ACT_BAD_REQUEST,	/* the server says our request was malformed: a bug here, do not loop */
	EAS_ACT_NOT_FOUND,	/* the item or folder no longer exists */
	EAS_ACT_QUOTA,		/* mailbox or send quota exceeded */
	EAS_ACT_REJECTED,	/* this one operation was refused (e.g. a message not sent); no retry */
	EAS_ACT_UNSUPPORTED,	/* command or version not supported by the server */
	EAS_ACT_UNREACHABLE,	/* no answer: connection, DNS, TLS or timeout; back off, retry */
	EAS_ACT_BAD_RESPONSE,	/* the answer was not a valid ActiveSync response */
};

const char *eas_action_name(enum eas_action action);

/* The common status values of [MS-ASCMD] 2.2.2, by number. */
enum eas_common_status {
	EAS_ST_INVALID_CONTENT = 101,
	EAS_ST_INVALID_WBXML = 102,
	EAS_ST_INVALID_XML = 103,
	EAS_ST_INVALID_DATETIME = 104,
	EAS_ST_INVALID_COMBINATION_OF_IDS = 105,
	EAS_ST_INVALID_IDS = 106,
	EAS_ST_INVALID_MIME = 107,
	EAS_ST_DEVICE_ID_MISSING_OR_INVALID = 108,
	EAS_ST_DEVICE_TYPE_MISSING_OR_INVALID = 109,
	EAS_ST_SERVER_ERROR = 110,
	EAS_ST_SERVER_ERROR_RETRY_LATER = 111,
	EAS_ST_ACTIVE_DIRECTORY_ACCESS_DENIED = 112,
	EAS_ST_MAILBOX_QUOTA_EXCEEDED = 113,
	EAS_ST_MAILBOX_SERVER_OFFLINE = 114,
	EAS_ST_SEND_QUOTA_EXCEEDED = 115,
	EAS_ST_MESSAGE_RECIPIENT_UNRESOLVED = 116,
	EAS_ST_MESSAGE_REPLY_NOT_ALLOWED = 117,
	EAS_ST_MESSAGE_PREVIOUSLY_SENT = 118,
	EAS_ST_MESSAGE_HAS_NO_RECIPIENT = 119,
	EAS_ST_MAIL_SUBMISSION_FAILED = 120,
	EAS_ST_MESSAGE_REPLY_FAILED = 121,
	EAS_ST_ATTACHMENT_IS_TOO_LARGE = 122,
	EAS_ST_USER_HAS_NO_MAILBOX = 123,
	EAS_ST_USER_CANNOT_BE_ANONYMOUS = 124,
	EAS_ST_USER_PRINCIPAL_COULD_NOT_BE_FOUND = 125,
	EAS_ST_USER_DISABLED_FOR_SYNC = 126,
	EAS_ST_USER_ON_NEW_MAILBOX_CANNOT_SYNC = 127,
	EAS_ST_USER_ON_LEGACY_MAILBOX_CANNOT_SYNC = 128,
	EAS_ST_DEVICE_IS_BLOCKED_FOR_THIS_USER = 129,
	EAS_ST_ACCESS_DENIED = 130,
	EAS_ST_ACCOUNT_DISABLED = 131,
	EAS_ST_SYNC_STATE_NOT_FOUND = 132,
	EAS_ST_SYNC_STATE_LOCKED = 133,
	EAS_ST_SYNC_STATE_CORRUPT = 134,
	EAS_ST_SYNC_STATE_ALREADY_EXISTS = 135,
	EAS_ST_SYNC_STATE_VERSION_INVALID = 136,
	EAS_ST_COMMAND_NOT_SUPPORTED = 137,
	EAS_ST_VERSION_NOT_SUPPORTED = 138,
	EAS_ST_DEVICE_NOT_FULLY_PROVISIONABLE = 139,
	EAS_ST_REMOTE_WIPE_REQUESTED = 140,
	EAS_ST_LEGACY_DEVICE_ON_STRICT_POLICY = 141,
	EAS_ST_DEVICE_NOT_PROVISIONED = 142,
	EAS_ST_POLICY_REFRESH = 143,
	EAS_ST_INVALID_POLICY_KEY = 144,
	EAS_ST_EXTERNALLY_MANAGED_DEVICES_NOT_ALLOWED = 145,
	EAS_ST_NO_RECURRENCE_IN_CALENDAR = 146,
	EAS_ST_UNEXPECTED_ITEM_CLASS = 147,
	EAS_ST_REMOTE_SERVER_HAS_NO_SSL = 148,
	EAS_ST_INVALID_STORED_REQUEST = 149,
	EAS_ST_ITEM_NOT_FOUND = 150,
	EAS_ST_TOO_MANY_FOLDERS = 151,
	EAS_ST_NO_FOLDERS_FOUND = 152,
	EAS_ST_ITEMS_LOST_AFTER_MOVE = 153,
	EAS_ST_FAILURE_IN_MOVE_OPERATION = 154,
	EAS_ST_MOVE_COMMAND_DISALLOWED_FOR_NON_PERSISTENT_MOVE_ACTION = 155,
	EAS_ST_MOVE_COMMAND_INVALID_DESTINATION_FOLDER = 156,
	EAS_ST_AVAILABILITY_TOO_MANY_RECIPIENTS = 160,
	EAS_ST_AVAILABILITY_DL_LIMIT_REACHED = 161,
	EAS_ST_AVAILABILITY_TRANSIENT_FAILURE = 162,
	EAS_ST_AVAILABILITY_FAILURE = 163,
	EAS_ST_BODY_PART_PREFERENCE_TYPE_NOT_SUPPORTED = 164,
	EAS_ST_DEVICE_INFORMATION_REQUIRED = 165,
	EAS_ST_INVALID_ACCOUNT_ID = 166,
	EAS_ST_ACCOUNT_SEND_DISABLED = 167,
	EAS_ST_IRM_FEATURE_DISABLED = 168,
	EAS_ST_IRM_TRANSIENT_ERROR = 169,
	EAS_ST_IRM_PERMANENT_ERROR = 170,
	EAS_ST_IRM_INVALID_TEMPLATE_ID = 171,
	EAS_ST_IRM_OPERATION_NOT_PERMITTED = 172,
	EAS_ST_NO_PICTURE = 173,
	EAS_ST_PICTURE_TOO_LARGE = 174,
	EAS_ST_PICTURE_LIMIT_REACHED = 175,
	EAS_ST_BODY_PART_CONVERSATION_TOO_LARGE = 176,
	EAS_ST_MAXIMUM_DEVICES_REACHED = 177,
};

/* The spec's name of a common status ("SyncStateNotFound"), or NULL. */
const char *eas_common_status_name(int status);
/* True for 101..177 values the spec defines. */
bool eas_is_common_status(int status);
/* The action for a common status value (101..177). Values below 100 are
 * command-specific and not handled here (EAS_ACT_OK for 1, else
 * EAS_ACT_BAD_REQUEST as the safe default for unknown ones). */
enum eas_action eas_common_status_action(int status);

/* The action for an HTTP status of an ActiveSync response. */
enum eas_action eas_http_status_action(long http_status);

#endif
