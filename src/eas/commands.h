/* ActiveSync commands as plain C: for each command a request builder (a C
 * struct in, a struct eas_node tree out, ready for eas_wbxml_encode()) and
 * a response parser (a decoded tree in, a C result out). Pure functions:
 * no I/O, no clock, no global state; the async client (HTTP, auth,
 * retries) and the sync engine drive them.
 *
 * Written to [MS-ASCMD], [MS-ASPROV], [MS-ASAIRS], [MS-ASEMAIL] and
 * [MS-ASHTTP] for protocol version 14.1, never to one server: every id is an
 * opaque string, no ordering between sibling elements is assumed in
 * responses, optional elements may be absent, unknown elements are skipped.
 *
 * Conventions
 *   Builders return 0 and a new tree in *root_r (free it with
 *   eas_node_free()), or HK_ERR_INVAL (a required field missing, a value
 *   out of the spec's range) / HK_ERR_TOO_LONG (more items than the limits
 *   below) with nothing allocated. Requests are built in the element order
 *   the spec prescribes.
 *
 *   Parsers take the root of a decoded response and return 0 and a result,
 *   or an error with *error_r naming the element:
 *     HK_ERR_INVAL    not the expected root element, a required element
 *                     missing, a number that is not a number or out of
 *                     range, text where children are expected or the
 *                     reverse, text containing a NUL byte
 *     HK_ERR_TOO_LONG more items or longer strings than the limits below
 *   A Status value is never an error of the parser: it is returned as a
 *   number with its eas_action, and the caller decides. Elements a failing
 *   Status makes pointless (a SyncKey after Status 9...) are not required
 *   then. *error_r points to static storage or to a per-thread buffer valid
 *   until the next call of this module on the same thread.
 *
 *   Results are of two kinds, said at each:
 *     owned  the strings are copied; free the result with its _free(&p)
 *     view   the strings and subtrees point into the response tree, which
 *            must outlive the result (Sync, ItemOperations, Email: bodies,
 *            MIME and attachments are never copied)
 *
 *   Empty bodies: HTTP 200 with an empty response body is a complete answer
 *   for Sync ("no changes since your SyncKey", 14.0+: keep the SyncKey) and
 *   for SendMail/SmartReply/SmartForward (sent). eas_wbxml_decode() reports
 *   it as HK_ERR_NOT_FOUND; the caller handles it before any parser here is
 *   called. Empty request bodies (Sync and Ping reusing the parameters the
 *   server cached) have no builder: send no body; the answer is a normal
 *   response (Sync Status 13 / Ping Status 3 ask for the full request).
 *
 *   Status values >= 100 are the common ones of [MS-ASCMD] 2.2.2, mapped by
 *   eas_common_status_action() (eas/status.h); values below 100 are each
 *   command's own, mapped by the tables documented below. Unknown values
 *   map to EAS_ACT_BAD_REQUEST (do not loop on what we do not understand). */
#ifndef HK_EAS_COMMANDS_H
#define HK_EAS_COMMANDS_H

#include "eas/status.h"
#include "eas/wbxml.h"
#include "lib/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- Limits ------------------------------------------------------------ */

/* Bytes of one id (ServerId, CollectionId, ParentId, SyncKey, ClientId,
 * FileReference, ...) accepted in a response or a request. The spec caps
 * ids at 64 characters; we allow four times that before calling a value
 * malformed, so that a lax server still works. */
#define EAS_ID_MAX 256
/* Bytes of one display name, address list or other text copied into an
 * owned result. */
#define EAS_TEXT_MAX 4096
/* Collections in one Sync or GetItemEstimate request or response (Exchange
 * answers Sync Status 15 above 1000). */
#define EAS_MAX_COLLECTIONS 1000
/* Commands and Responses entries in one Sync response, all collections
 * together; also the client commands in one Sync request. A window of 512
 * per collection stays far below it. */
#define EAS_SYNC_MAX_ITEMS 100000
/* Folder changes in one FolderSync response. */
#define EAS_FOLDERSYNC_MAX_CHANGES 20000
/* Folders in one Ping request or response. */
#define EAS_PING_MAX_FOLDERS 5000
/* Moves in one MoveItems request or response, Fetches in one ItemOperations
 * request or response, addresses and accounts in one Settings response,
 * attachments and categories in one email. */
#define EAS_MAX_ENTRIES 5000
/* Body preferences per Options (one per body type is all the spec allows). */
#define EAS_MAX_BODY_PREFS 4
/* ComposeMail ClientId: "up to 40 characters" ([MS-ASCMD] 2.2.3.28.1). */
#define EAS_CLIENT_ID_MAX 40

/* --- Small shared types -------------------------------------------------- */

/* A boolean request element that may also be left out. */
enum eas_opt_bool {
	EAS_OPT_UNSET = 0, /* no element */
	EAS_OPT_FALSE,     /* <X>0</X> */
	EAS_OPT_TRUE,      /* <X>1</X> */
};

/* AirSyncBase:Type of a body ([MS-ASAIRS] 2.2.2.22.1). */
enum eas_body_type {
	EAS_BODY_PLAIN = 1,
	EAS_BODY_HTML = 2,
	EAS_BODY_RTF = 3,
	EAS_BODY_MIME = 4,
};

/* AirSyncBase:BodyPreference ([MS-ASAIRS] 2.2.2.7). */
struct eas_body_pref {
	enum eas_body_type type;  /* required, 1..4 */
	uint32_t truncation_size; /* bytes; 0: no TruncationSize element */
	enum eas_opt_bool all_or_none;
	uint32_t preview; /* characters of Preview, 1..255; 0: none */
};

/* AirSync:FilterType ([MS-ASCMD] 2.2.3.68.2); the wire value is the enum
 * value minus one. */
enum eas_filter {
	EAS_FILTER_UNSET = 0,  /* no FilterType element */
	EAS_FILTER_ALL,        /* 0: no filter */
	EAS_FILTER_1_DAY,      /* 1 */
	EAS_FILTER_3_DAYS,     /* 2 */
	EAS_FILTER_1_WEEK,     /* 3 */
	EAS_FILTER_2_WEEKS,    /* 4 */
	EAS_FILTER_1_MONTH,    /* 5 */
	EAS_FILTER_3_MONTHS,   /* 6: calendar only */
	EAS_FILTER_6_MONTHS,   /* 7: calendar only */
	EAS_FILTER_INCOMPLETE, /* 8: incomplete tasks */
};

/* AirSync:MIMESupport ([MS-ASCMD] 2.2.3.110); wire value = enum value - 1. */
enum eas_mime_support {
	EAS_MIME_UNSET = 0, /* no MIMESupport element */
	EAS_MIME_NEVER,     /* 0: never send MIME */
	EAS_MIME_SMIME,     /* 1: MIME for S/MIME messages only */
	EAS_MIME_ALWAYS,    /* 2: MIME for every message */
};

/* Settings:DeviceInformation/Set ([MS-ASCMD] 2.2.3.45, 2.2.3.167). NULL
 * members are left out. 14.1 requires it in the first Provision request
 * ([MS-ASPROV] 2.2.2.53); other versions send it with Settings. */
struct eas_device_info {
	const char *model;
	const char *imei;
	const char *friendly_name;
	const char *os;
	const char *os_language;
	const char *phone_number;
	const char *user_agent;
	enum eas_opt_bool enable_outbound_sms;
	const char *mobile_operator;
};

/* --- Provision ([MS-ASPROV]) -------------------------------------------- */

#define EAS_POLICY_TYPE "MS-EAS-Provisioning-WBXML"

/* Provision/Status ([MS-ASPROV] 2.2.2.54.2). Actions: 1 OK, 2 BAD_REQUEST,
 * 3 RETRY_LATER, >= 100 common. */
enum eas_provision_status {
	EAS_PROVISION_OK = 1,
	EAS_PROVISION_PROTOCOL_ERROR = 2,
	EAS_PROVISION_SERVER_ERROR = 3,
};

/* Policy/Status in a response ([MS-ASPROV] 2.2.2.54.1). Actions: 1 OK;
 * 2 OK (a valid answer: no policy applies to this client, there is no
 * PolicyKey to acknowledge); 3 BAD_REQUEST (we asked for a policy type the
 * server does not know); 4 BLOCKED (the server's policy data is corrupt:
 * an administrator has to act); 5 PROVISION (we acknowledged a wrong
 * policy key: provision again from the first step). */
enum eas_policy_status {
	EAS_POLICY_OK = 1,
	EAS_POLICY_NONE = 2,
	EAS_POLICY_UNKNOWN_TYPE = 3,
	EAS_POLICY_CORRUPT = 4,
	EAS_POLICY_WRONG_KEY = 5,
};

/* Policy/Status the client sends in the acknowledgement ([MS-ASPROV]
 * 2.2.2.54.1, request table). */
enum eas_policy_ack {
	EAS_POLICY_ACK_OK = 1,
	EAS_POLICY_ACK_PARTIAL = 2, /* at least the PIN was enabled */
	EAS_POLICY_ACK_NOT_APPLIED = 3,
	EAS_POLICY_ACK_THIRD_PARTY = 4, /* provisioned by a third party */
};

/* The first Provision request: Provision [DeviceInformation/Set]
 * Policies/Policy/PolicyType "MS-EAS-Provisioning-WBXML". dev may be NULL
 * (protocol versions other than 14.1, or a retry after the first). */
int eas_provision_build(const struct eas_device_info *dev, struct eas_node **root_r,
                        const char **error_r) HK_WARN_UNUSED;
/* The acknowledgement (second step): Policies/Policy with PolicyType, the
 * temporary PolicyKey of the first response (decimal digits; "0" when
 * there was none) and Status ack. */
int eas_provision_build_ack(const char *policy_key, enum eas_policy_ack ack,
                            struct eas_node **root_r, const char **error_r) HK_WARN_UNUSED;
/* The remote wipe acknowledgement ([MS-ASPROV] 3.1.5.1.2.2): Provision/
 * RemoteWipe/Status, 1 = wipe done, 2 = wipe failed. (AccountOnlyRemoteWipe
 * is 16.1 only and has no WBXML token in libwbxml 0.11: not built.) */
int eas_provision_build_wipe_ack(bool wiped, struct eas_node **root_r,
                                 const char **error_r) HK_WARN_UNUSED;

/* A parsed Provision response (view: provision_doc points into the tree).
 * action summarises everything: WIPE when a RemoteWipe directive is there,
 * else the action of Status, else that of Policy/Status. */
struct eas_provision_result {
	int status; /* Provision/Status */
	enum eas_action action;
	bool has_policy;                      /* a Policies/Policy was returned */
	int policy_status;                    /* Policy/Status, 0 without a Policy */
	char policy_type[64];                 /* Policy/PolicyType, "" when absent */
	char policy_key[11];                  /* Policy/PolicyKey (decimal, fits the
	                                       * X-MS-PolicyKey header), "" when absent */
	bool remote_wipe;                     /* Provision/RemoteWipe directive */
	bool account_only_remote_wipe;        /* 16.1 AccountOnlyRemoteWipe (never set
	                                       * with libwbxml 0.11, which cannot
	                                       * decode it) */
	int device_info_status;               /* Settings:DeviceInformation/Status, 0 absent */
	const struct eas_node *provision_doc; /* Policy/Data/EASProvisionDoc, or
	                                       * NULL: for logging */
};

/* Parses a Provision response. A PolicyKey that is not 1..10 decimal digits
 * is HK_ERR_INVAL: it goes into an HTTP header. */
int eas_provision_parse(const struct eas_node *root, struct eas_provision_result *res_r,
                        const char **error_r) HK_WARN_UNUSED;
enum eas_action eas_provision_status_action(int status);
enum eas_action eas_policy_status_action(int policy_status);

/* --- FolderSync ([MS-ASCMD] 2.2.1.5) ------------------------------------ */

/* FolderHierarchy:Type ([MS-ASCMD] 2.2.3.186.3). */
enum eas_folder_type {
	EAS_FOLDER_GENERIC = 1,
	EAS_FOLDER_INBOX = 2,
	EAS_FOLDER_DRAFTS = 3,
	EAS_FOLDER_DELETED = 4,
	EAS_FOLDER_SENT = 5,
	EAS_FOLDER_OUTBOX = 6,
	EAS_FOLDER_TASKS = 7,
	EAS_FOLDER_CALENDAR = 8,
	EAS_FOLDER_CONTACTS = 9,
	EAS_FOLDER_NOTES = 10,
	EAS_FOLDER_JOURNAL = 11,
	EAS_FOLDER_USER_MAIL = 12,
	EAS_FOLDER_USER_CALENDAR = 13,
	EAS_FOLDER_USER_CONTACTS = 14,
	EAS_FOLDER_USER_TASKS = 15,
	EAS_FOLDER_USER_JOURNAL = 16,
	EAS_FOLDER_USER_NOTES = 17,
	EAS_FOLDER_UNKNOWN = 18,
	EAS_FOLDER_RECIPIENT_CACHE = 19,
};

/* True for the folder types that hold email: 2-6 and 12. */
bool eas_folder_is_mail(int type);
/* The Sync/Ping Class of a folder type: "Email" (2-6, 12), "Calendar"
 * (8, 13), "Contacts" (9, 14), "Tasks" (7, 15), "Notes" (10, 17), or NULL
 * (1 generic, journals 11/16, 18 unknown, 19 recipient cache and anything
 * else: the spec gives them no class; a Sync response names the Class). */
const char *eas_folder_class(int type);

/* FolderSync/Status ([MS-ASCMD] 2.2.3.177.5). Actions: 1 OK; 6 RETRY_LATER;
 * 9 RESYNC (FolderSync again from SyncKey 0); 10 BAD_REQUEST; 11 and 12
 * RETRY_LATER; >= 100 common. */
enum eas_foldersync_status {
	EAS_FOLDERSYNC_OK = 1,
	EAS_FOLDERSYNC_SERVER_ERROR = 6,
	EAS_FOLDERSYNC_INVALID_KEY = 9,
	EAS_FOLDERSYNC_BAD_FORMAT = 10,
	EAS_FOLDERSYNC_UNKNOWN_ERROR = 11,
	EAS_FOLDERSYNC_CODE_UNKNOWN = 12,
};

/* FolderSync with sync_key ("0" for the first). */
int eas_foldersync_build(const char *sync_key, struct eas_node **root_r,
                         const char **error_r) HK_WARN_UNUSED;

enum eas_change_kind {
	EAS_CHANGE_ADD,
	EAS_CHANGE_UPDATE,
	EAS_CHANGE_DELETE,
};

/* One Changes entry (owned strings). A Delete has only server_id; the
 * other fields are NULL and 0 there. */
struct eas_folder_change {
	enum eas_change_kind kind;
	char *server_id;
	char *parent_id; /* "0" is the root */
	char *display_name;
	int type; /* enum eas_folder_type; other values passed through */
};

struct eas_foldersync_result {
	int status;
	enum eas_action action;
	char *sync_key; /* NULL when absent (required with Status 1) */
	bool has_count;
	uint32_t count; /* Changes/Count as sent; not checked against n_changes */
	struct eas_folder_change *changes; /* in document order */
	size_t n_changes;
};

/* Parses a FolderSync response (owned result). */
int eas_foldersync_parse(const struct eas_node *root, struct eas_foldersync_result **res_r,
                         const char **error_r) HK_WARN_UNUSED;
void eas_foldersync_result_free(struct eas_foldersync_result **res);
enum eas_action eas_foldersync_status_action(int status);

/* --- Sync ([MS-ASCMD] 2.2.1.21) ----------------------------------------- */

/* AirSync:Status of Sync, of a Collection and of a Responses entry
 * ([MS-ASCMD] 2.2.3.177.17). Actions: 1 OK; 3 RESYNC (restart the
 * collection at SyncKey 0); 4 BAD_REQUEST; 5 RETRY_LATER; 6 REJECTED (the
 * item we sent was invalid); 7 REJECTED (conflict: the server's version
 * won); 8 NOT_FOUND; 9 QUOTA (the user's account or mailbox cannot take
 * it); 12 FOLDER_SYNC; 13 BAD_REQUEST (the server wants the full request,
 * not an empty or partial one: resend it complete); 14 BAD_REQUEST (Wait or
 * HeartbeatInterval out of range: Limit has the allowed value); 15
 * BAD_REQUEST (too many collections: Limit has the maximum); 16
 * RETRY_LATER; >= 100 common. */
enum eas_sync_status {
	EAS_SYNC_OK = 1,
	EAS_SYNC_INVALID_KEY = 3,
	EAS_SYNC_PROTOCOL_ERROR = 4,
	EAS_SYNC_SERVER_ERROR = 5,
	EAS_SYNC_CONVERSION_ERROR = 6,
	EAS_SYNC_CONFLICT = 7,
	EAS_SYNC_NOT_FOUND = 8,
	EAS_SYNC_CANNOT_COMPLETE = 9,
	EAS_SYNC_HIERARCHY_CHANGED = 12,
	EAS_SYNC_INCOMPLETE_REQUEST = 13,
	EAS_SYNC_INVALID_INTERVAL = 14,
	EAS_SYNC_TOO_MANY_COLLECTIONS = 15,
	EAS_SYNC_RETRY = 16,
};
enum eas_action eas_sync_status_action(int status);

/* AirSync:Options of a collection. */
enum eas_conflict {
	EAS_CONFLICT_UNSET = 0,
	EAS_CONFLICT_CLIENT_WINS, /* 0 */
	EAS_CONFLICT_SERVER_WINS, /* 1 */
};

struct eas_sync_options {
	const char *class_name; /* Options/Class ("Email", "SMS"): needed only
	                         * when a folder holds two classes; NULL omits */
	enum eas_filter filter;
	const struct eas_body_pref *body_prefs;
	size_t n_body_prefs; /* 0..EAS_MAX_BODY_PREFS */
	enum eas_conflict conflict;
	enum eas_mime_support mime_support;
};

/* Email:Flag in a client Change ([MS-ASEMAIL] 3.1.5.4.1, 3.2.5.4.2). */
enum eas_flag_op {
	EAS_FLAG_UNCHANGED = 0, /* no Flag element */
	EAS_FLAG_CLEAR,         /* an empty <Flag/> clears the flag */
	EAS_FLAG_ACTIVE,        /* FlagStatus 2 */
	EAS_FLAG_COMPLETE,      /* FlagStatus 1 */
};

struct eas_flag_change {
	enum eas_flag_op op;
	/* ACTIVE: FlagType ("Flag for follow up" when NULL) and either both
	 * start and due dates (local and UTC, ISO 8601 as in [MS-ASDTYPE]) or
	 * none; COMPLETE: complete_time and date_completed. NULL omits. */
	const char *flag_type;
	const char *complete_time;  /* Email:CompleteTime */
	const char *start_date;     /* Tasks:StartDate */
	const char *utc_start_date; /* Tasks:UTCStartDate */
	const char *due_date;       /* Tasks:DueDate */
	const char *utc_due_date;   /* Tasks:UTCDueDate */
	const char *date_completed; /* Tasks:DateCompleted */
};

/* The ApplicationData of a client Change of an email: only Read, Flag and
 * Categories may be changed by a client ([MS-ASEMAIL] 2.2.2). */
struct eas_email_change {
	enum eas_opt_bool read;
	struct eas_flag_change flag;
	bool set_categories; /* send Categories (empty clears them) */
	const char *const *categories;
	size_t n_categories;
};

enum eas_sync_cmd_kind {
	EAS_SYNC_CMD_CHANGE,
	EAS_SYNC_CMD_DELETE,
	EAS_SYNC_CMD_FETCH,
};

struct eas_sync_command {
	enum eas_sync_cmd_kind kind;
	const char *server_id;
	const struct eas_email_change *change; /* CHANGE only, required there */
};

struct eas_sync_collection_req {
	const char *sync_key;      /* required; "0" to start */
	const char *collection_id; /* required */
	enum eas_opt_bool deletes_as_moves;
	enum eas_opt_bool get_changes; /* unset: the server's default (no with
	                                * SyncKey 0, yes otherwise) */
	uint32_t window_size;          /* 1..512; 0 omits */
	enum eas_opt_bool conversation_mode;
	const struct eas_sync_options *options; /* 0..2 Options (e.g. Email + SMS) */
	size_t n_options;
	const struct eas_sync_command *commands;
	size_t n_commands;
};

struct eas_sync_req {
	const struct eas_sync_collection_req *collections;
	size_t n_collections;        /* 1..EAS_MAX_COLLECTIONS */
	uint32_t wait;               /* minutes (1..59); 0 omits */
	uint32_t heartbeat_interval; /* seconds; 0 omits; not with wait */
	uint32_t window_size;        /* all collections together, 1..512; 0 omits */
	bool partial;                /* <Partial/>: the server adds its cached
	                              * collections */
};

/* Builds a Sync request. (An empty Sync request, 14.0+, is an empty HTTP
 * body: it has no builder.) */
int eas_sync_build(const struct eas_sync_req *req, struct eas_node **root_r,
                   const char **error_r) HK_WARN_UNUSED;

enum eas_sync_item_kind {
	EAS_SYNC_ITEM_ADD,
	EAS_SYNC_ITEM_CHANGE,
	EAS_SYNC_ITEM_DELETE,
	EAS_SYNC_ITEM_SOFT_DELETE, /* left the filter window; not deleted */
	EAS_SYNC_ITEM_FETCH,
};

/* One server command (Commands) or the answer to one of ours (Responses);
 * view. */
struct eas_sync_item {
	enum eas_sync_item_kind kind;
	const char *server_id;           /* required in Commands; in Responses/Add only
	                                  * on success, else NULL */
	const char *client_id;           /* Responses/Add only, else NULL */
	const char *class_name;          /* Add/Class when present, else NULL */
	int status;                      /* Responses: required; Commands: 0 */
	enum eas_action action;          /* of status (OK in Commands) */
	const struct eas_node *app_data; /* ApplicationData or NULL */
};

struct eas_sync_collection {
	const char *sync_key;      /* NULL when absent (required with Status 1) */
	const char *collection_id; /* required */
	const char *class_name;    /* NULL when absent */
	int status;                /* required */
	enum eas_action action;
	bool more_available;
	struct eas_sync_item *commands; /* server changes, document order */
	size_t n_commands;
	struct eas_sync_item *responses; /* answers to our commands */
	size_t n_responses;
};

struct eas_sync_result {
	int status;             /* Sync/Status; 0 when absent (the normal case) */
	enum eas_action action; /* of status; OK when absent, BAD_REQUEST for
	                         * an explicit 0 */
	bool has_limit;
	uint32_t limit; /* Sync/Limit with Status 14 or 15 */
	struct eas_sync_collection *collections;
	size_t n_collections;
};

/* Parses a Sync response (view, owned arrays). */
int eas_sync_parse(const struct eas_node *root, struct eas_sync_result **res_r,
                   const char **error_r) HK_WARN_UNUSED;
void eas_sync_result_free(struct eas_sync_result **res);

/* --- Email ApplicationData ([MS-ASEMAIL], [MS-ASAIRS]) ------------------- */

/* AirSyncBase:Body (view). */
struct eas_email_body {
	bool present;
	int type; /* enum eas_body_type; 0 when absent */
	bool has_estimated_size;
	uint64_t estimated_size; /* EstimatedDataSize */
	bool truncated;
	const uint8_t *data; /* Data (NUL-terminated for text), NULL absent */
	size_t data_len;
	const char *preview; /* Preview, NULL when absent */
};

/* AirSyncBase:Attachment (view). */
struct eas_attachment {
	const char *display_name;
	const char *file_reference; /* for ItemOperations Fetch */
	int method;                 /* 1 normal, 5 embedded message, 6 OLE; -1 absent */
	bool has_estimated_size;
	uint64_t estimated_size;
	const char *content_id;
	const char *content_location;
	bool is_inline;
};

/* The fields of an email a mail client needs (view). Text fields are NULL
 * when absent; numeric ones are -1 when absent. A client Change or a
 * server Change carries only what changed: absent means unchanged there.
 * Enumerated values outside the spec's range are passed through; only
 * booleans (0/1) and number syntax are checked. */
struct eas_email {
	const char *to, *cc, *from, *reply_to, *subject, *display_to, *thread_topic;
	const char *date_received; /* ISO 8601 text as sent */
	const char *message_class; /* "IPM.Note", ... */
	const char *content_class;
	int importance;  /* 0 low, 1 normal, 2 high */
	int read;        /* 0/1 */
	bool has_flag;   /* a Flag element (empty = no flag) */
	int flag_status; /* 0 cleared, 1 complete, 2 active */
	const char *flag_type;
	long internet_cpid;             /* code page of the original */
	int native_body_type;           /* AirSyncBase:NativeBodyType */
	int last_verb_executed;         /* Email2: 1 reply to sender, 2 reply all, 3 forward */
	const uint8_t *conversation_id; /* Email2:ConversationId, opaque */
	size_t conversation_id_len;
	const uint8_t *conversation_index; /* Email2:ConversationIndex, opaque */
	size_t conversation_index_len;
	bool has_categories; /* a Categories element (empty = none) */
	const char **categories;
	size_t n_categories;
	struct eas_email_body body;
	struct eas_attachment *attachments;
	size_t n_attachments;
};

/* Extracts an email from an AirSync:ApplicationData (Sync) or an
 * ItemOperations:Properties (Fetch) element. */
int eas_email_parse(const struct eas_node *app_data, struct eas_email **email_r,
                    const char **error_r) HK_WARN_UNUSED;
void eas_email_free(struct eas_email **email);

/* --- Ping ([MS-ASCMD] 2.2.1.13) ----------------------------------------- */

/* Ping/Status ([MS-ASCMD] 2.2.3.177.11). Actions: 1 OK (heartbeat expired,
 * nothing changed: Ping again); 2 OK (changes in folders[]: Sync them);
 * 3 BAD_REQUEST (the server has no cached parameters: resend a full Ping);
 * 4 BAD_REQUEST; 5 BAD_REQUEST (heartbeat out of range: heartbeat_interval
 * is the allowed value); 6 BAD_REQUEST (too many folders: max_folders is the
 * limit); 7 FOLDER_SYNC; 8 RETRY_LATER; >= 100 common. */
enum eas_ping_status {
	EAS_PING_EXPIRED = 1,
	EAS_PING_CHANGES = 2,
	EAS_PING_MISSING_PARAMS = 3,
	EAS_PING_SYNTAX_ERROR = 4,
	EAS_PING_BAD_HEARTBEAT = 5,
	EAS_PING_TOO_MANY_FOLDERS = 6,
	EAS_PING_FOLDER_SYNC = 7,
	EAS_PING_SERVER_ERROR = 8,
};
enum eas_action eas_ping_status_action(int status);

struct eas_ping_folder {
	const char *id;
	const char *class_name; /* "Email", "Calendar", "Contacts", "Tasks", "Notes" */
};

/* Ping with HeartbeatInterval (seconds; 0 omits: the server's cached
 * value) and Folders (n 0 omits: the cached list). With neither, send an
 * empty HTTP body instead: that is HK_ERR_INVAL here. */
int eas_ping_build(uint32_t heartbeat, const struct eas_ping_folder *folders, size_t n,
                   struct eas_node **root_r, const char **error_r) HK_WARN_UNUSED;

struct eas_ping_result {
	int status;
	enum eas_action action;
	char **folders; /* owned; Status 2 */
	size_t n_folders;
	uint32_t heartbeat_interval; /* Status 5: allowed value; 0 absent */
	uint32_t max_folders;        /* Status 6: limit; 0 absent */
};

int eas_ping_parse(const struct eas_node *root, struct eas_ping_result **res_r,
                   const char **error_r) HK_WARN_UNUSED;
void eas_ping_result_free(struct eas_ping_result **res);

/* --- ItemOperations Fetch ([MS-ASCMD] 2.2.1.10) ------------------------- */

/* ItemOperations/Status and Fetch/Status ([MS-ASCMD] 2.2.3.177.8). Actions:
 * 1 OK; 2 BAD_REQUEST; 3 RETRY_LATER; 4 REJECTED (bad document library
 * URI); 5 REJECTED (document library access denied); 6 NOT_FOUND;
 * 7 RETRY_LATER (could not reach the document library server); 8
 * BAD_REQUEST (byte range invalid or too large); 9 UNSUPPORTED (store
 * unknown); 10 REJECTED (the file is empty: treat as 0 bytes); 11 REJECTED
 * (data too large); 12 RETRY_LATER (I/O failure on the server); 14
 * REJECTED (item conversion failed); 15 NOT_FOUND (attachment or its id
 * invalid); 16 REJECTED (resource access denied); 17 REJECTED (partial
 * success); 18 REJECTED (document library credentials required); >= 100
 * common. */
enum eas_itemops_status {
	EAS_ITEMOPS_OK = 1,
	EAS_ITEMOPS_PROTOCOL_ERROR = 2,
	EAS_ITEMOPS_SERVER_ERROR = 3,
	EAS_ITEMOPS_BAD_URI = 4,
	EAS_ITEMOPS_ACCESS_DENIED = 5,
	EAS_ITEMOPS_NOT_FOUND = 6,
	EAS_ITEMOPS_CONNECT_FAILED = 7,
	EAS_ITEMOPS_BAD_RANGE = 8,
	EAS_ITEMOPS_UNKNOWN_STORE = 9,
	EAS_ITEMOPS_EMPTY_FILE = 10,
	EAS_ITEMOPS_TOO_LARGE = 11,
	EAS_ITEMOPS_IO_FAILURE = 12,
	EAS_ITEMOPS_CONVERSION_FAILED = 14,
	EAS_ITEMOPS_BAD_ATTACHMENT = 15,
	EAS_ITEMOPS_RESOURCE_DENIED = 16,
	EAS_ITEMOPS_PARTIAL = 17,
	EAS_ITEMOPS_CREDENTIALS_REQUIRED = 18,
};
enum eas_action eas_itemops_status_action(int status);

/* One Fetch from the "Mailbox" store: an item (collection_id + server_id),
 * an attachment (file_reference) or a Search result (long_id); exactly one
 * of the three. For a whole message as MIME: mime_support EAS_MIME_ALWAYS
 * and a body_pref of type EAS_BODY_MIME. */
struct eas_fetch_req {
	const char *collection_id;
	const char *server_id;
	const char *file_reference;
	const char *long_id;
	const char *range; /* Options/Range "first-last", NULL omits */
	enum eas_mime_support mime_support;
	const struct eas_body_pref *body_pref; /* NULL omits */
};

int eas_itemops_build_fetch(const struct eas_fetch_req *fetches, size_t n, struct eas_node **root_r,
                            const char **error_r) HK_WARN_UNUSED;

/* One Response/Fetch (view). For an item, properties is the
 * ItemOperations:Properties element (pass it to eas_email_parse()) and
 * data/data_len the Properties/Body/Data (the MIME text for body type 4).
 * For an attachment, data is Properties/Data: the attachment's content
 * encoded in base64 ([MS-ASCMD] 2.2.3.39.2; data_base64 is set), unless
 * the request asked for a multipart response (MS-ASAcceptMultiPart), in
 * which case part is the index of the HTTP body part and data is NULL. */
struct eas_fetch_result {
	int status;
	enum eas_action action;
	const char *collection_id, *server_id, *file_reference, *long_id;
	const struct eas_node *properties;
	const char *content_type; /* Properties/ContentType, NULL absent */
	const uint8_t *data;
	size_t data_len;
	bool data_base64;
	long part;         /* Properties/Part, -1 absent */
	const char *range; /* Properties/Range */
	long long total;   /* Properties/Total, -1 absent */
};

struct eas_itemops_result {
	int status; /* ItemOperations/Status (global) */
	enum eas_action action;
	struct eas_fetch_result *fetches;
	size_t n_fetches;
};

int eas_itemops_parse(const struct eas_node *root, struct eas_itemops_result **res_r,
                      const char **error_r) HK_WARN_UNUSED;
void eas_itemops_result_free(struct eas_itemops_result **res);

/* --- SendMail, SmartReply, SmartForward ([MS-ASCMD] 2.2.1.17, .19, .20) -- */

/* SendMail(ClientId, [SaveInSentItems], MIME). mime is the RFC 5322
 * message, sent as WBXML opaque bytes. client_id: 1..40 bytes, unique per
 * message (the server uses it to drop duplicates). */
int eas_sendmail_build(const char *client_id, bool save_in_sent, const void *mime, size_t mime_len,
                       struct eas_node **root_r, const char **error_r) HK_WARN_UNUSED;

/* The message a SmartReply/SmartForward refers to: item_id (+ folder_id
 * unless it is in the Inbox) or long_id (a Search result); instance_id for
 * one occurrence of a recurring meeting. */
struct eas_smart_source {
	const char *folder_id;
	const char *item_id;
	const char *long_id;
	const char *instance_id;
};

/* SmartReply (forward = false) or SmartForward: ClientId, Source,
 * [SaveInSentItems], [ReplaceMime], MIME. With replace_mime the server
 * sends mime as is, without appending the original. */
int eas_smart_build(bool forward, const char *client_id, const struct eas_smart_source *src,
                    bool save_in_sent, bool replace_mime, const void *mime, size_t mime_len,
                    struct eas_node **root_r, const char **error_r) HK_WARN_UNUSED;

/* The failure body of SendMail/SmartReply/SmartForward (success is an empty
 * body). The commands have no status values of their own ([MS-ASCMD]
 * 2.2.3.177.14, .16): the common ones apply, e.g. 120 MailSubmissionFailed
 * -> REJECTED. */
struct eas_compose_result {
	int status;
	enum eas_action action;
};

int eas_compose_parse(const struct eas_node *root, struct eas_compose_result *res_r,
                      const char **error_r) HK_WARN_UNUSED;

/* --- MoveItems ([MS-ASCMD] 2.2.1.12) ------------------------------------ */

/* Response/Status ([MS-ASCMD] 2.2.3.177.10). Actions: 1 NOT_FOUND (invalid
 * source collection or item: it is gone); 2 FOLDER_SYNC (invalid
 * destination: refresh the hierarchy); 3 OK; 4 REJECTED (source and
 * destination are the same); 5 RETRY_LATER (the move failed); 7
 * RETRY_LATER (source or destination locked); >= 100 common. */
enum eas_move_status {
	EAS_MOVE_INVALID_SOURCE = 1,
	EAS_MOVE_INVALID_DEST = 2,
	EAS_MOVE_OK = 3,
	EAS_MOVE_SAME_FOLDER = 4,
	EAS_MOVE_FAILED = 5,
	EAS_MOVE_LOCKED = 7,
};
enum eas_action eas_move_status_action(int status);

struct eas_move_req {
	const char *src_msg_id;
	const char *src_fld_id;
	const char *dst_fld_id;
};

int eas_moveitems_build(const struct eas_move_req *moves, size_t n, struct eas_node **root_r,
                        const char **error_r) HK_WARN_UNUSED;

/* One Response (owned). */
struct eas_move_response {
	char *src_msg_id; /* required */
	char *dst_msg_id; /* the item's new ServerId; NULL when absent */
	int status;       /* required */
	enum eas_action action;
};

struct eas_moveitems_result {
	struct eas_move_response *responses;
	size_t n_responses;
};

int eas_moveitems_parse(const struct eas_node *root, struct eas_moveitems_result **res_r,
                        const char **error_r) HK_WARN_UNUSED;
void eas_moveitems_result_free(struct eas_moveitems_result **res);

/* --- Settings ([MS-ASCMD] 2.2.1.18) ------------------------------------- */

/* Settings/Status and the Status of each part ([MS-ASCMD] 2.2.3.177.15).
 * Actions: 1 OK; 2 BAD_REQUEST; 3 BLOCKED (access denied); 4 RETRY_LATER
 * (server unavailable); 5 and 6 BAD_REQUEST (invalid or conflicting
 * arguments); 7 BLOCKED (denied by policy); >= 100 common. */
enum eas_settings_status {
	EAS_SETTINGS_OK = 1,
	EAS_SETTINGS_PROTOCOL_ERROR = 2,
	EAS_SETTINGS_ACCESS_DENIED = 3,
	EAS_SETTINGS_UNAVAILABLE = 4,
	EAS_SETTINGS_INVALID_ARGS = 5,
	EAS_SETTINGS_CONFLICTING_ARGS = 6,
	EAS_SETTINGS_DENIED_BY_POLICY = 7,
};
enum eas_action eas_settings_status_action(int status);

/* Settings with DeviceInformation/Set (dev != NULL) and/or
 * UserInformation/Get (user_info); at least one. */
int eas_settings_build(const struct eas_device_info *dev, bool user_info, struct eas_node **root_r,
                       const char **error_r) HK_WARN_UNUSED;

/* One UserInformation/Get/Accounts/Account (14.1; owned). */
struct eas_settings_account {
	char *account_id; /* NULL for the primary account */
	char *account_name;
	char *user_display_name;
	bool send_disabled;
	char *primary_smtp;    /* EmailAddresses/PrimarySmtpAddress */
	char **smtp_addresses; /* EmailAddresses/SMTPAddress */
	size_t n_smtp_addresses;
};

struct eas_settings_result {
	int status; /* Settings/Status */
	enum eas_action action;
	int device_info_status; /* DeviceInformation/Status, 0 absent */
	bool has_user_info;
	int user_info_status;  /* UserInformation/Status, 0 absent */
	char **smtp_addresses; /* 12.1/14.0: Get/EmailAddresses/SMTPAddress */
	size_t n_smtp_addresses;
	struct eas_settings_account *accounts; /* 14.1: Get/Accounts/Account */
	size_t n_accounts;
};

int eas_settings_parse(const struct eas_node *root, struct eas_settings_result **res_r,
                       const char **error_r) HK_WARN_UNUSED;
void eas_settings_result_free(struct eas_settings_result **res);

/* --- GetItemEstimate ([MS-ASCMD] 2.2.1.9) ------------------------------- */

/* Response/Status ([MS-ASCMD] 2.2.3.177.7). Actions: 1 OK; 2 FOLDER_SYNC
 * (the collection is invalid or gone); 3 RESYNC (sync state not primed:
 * Sync the collection from SyncKey 0 first); 4 RESYNC (invalid SyncKey);
 * >= 100 common. */
enum eas_gie_status {
	EAS_GIE_OK = 1,
	EAS_GIE_INVALID_COLLECTION = 2,
	EAS_GIE_NOT_PRIMED = 3,
	EAS_GIE_INVALID_KEY = 4,
};
enum eas_action eas_gie_status_action(int status);

struct eas_gie_collection_req {
	const char *sync_key;      /* required (AirSync:SyncKey) */
	const char *collection_id; /* required */
	enum eas_opt_bool conversation_mode;
	const char *class_name; /* AirSync:Options/Class, NULL omits */
	enum eas_filter filter; /* AirSync:Options/FilterType */
};

/* GetItemEstimate/Collections/Collection...; Options is sent when
 * class_name or filter is set. */
int eas_gie_build(const struct eas_gie_collection_req *colls, size_t n, struct eas_node **root_r,
                  const char **error_r) HK_WARN_UNUSED;

/* One Response (owned). */
struct eas_gie_estimate {
	int status; /* required */
	enum eas_action action;
	char *collection_id; /* NULL when the server sent no Collection */
	char *class_name;    /* NULL when absent */
	bool has_estimate;
	uint32_t estimate;
};

struct eas_gie_result {
	struct eas_gie_estimate *estimates;
	size_t n_estimates;
};

int eas_gie_parse(const struct eas_node *root, struct eas_gie_result **res_r,
                  const char **error_r) HK_WARN_UNUSED;
void eas_gie_result_free(struct eas_gie_result **res);

#endif
