/* The ActiveSync WBXML codec: a small node tree for the EAS client, and its
 * conversion to and from WBXML on the wire ([MS-ASWBXML], WBXML 1.3).
 *
 * libwbxml2 does the WBXML parsing (its parser's element and character
 * events build struct eas_node) and the encoding (from a libwbxml tree made
 * of struct eas_node). Before libwbxml sees a server response, a bounded,
 * allocation-free pass checks that the bytes are the WBXML subset
 * ActiveSync uses and within the limits below, because libwbxml 0.11
 * recurses once per nesting level without limit and aborts on some ENTITY
 * tokens (see wbxml.c).
 *
 * The node tree
 *   Every element has a code page, a tag name and either child elements or
 *   content. Names are those of libwbxml's ActiveSync table, i.e. of the
 *   XML wbxml2xml prints: the [MS-ASWBXML] names for nearly every tag
 *   ("SyncKey", "BodyPreference"), with libwbxml's spellings kept where
 *   they differ (Email "Reply-To", "DTStamp", Calendar "Attendee_Email",
 *   Tasks "Recurrence_Type") except one typo corrected (Settings
 *   "RightsManagementInformation"). Content is text (the bytes of a WBXML
 *   inline string, UTF-8 per [MS-ASWBXML], not validated) or opaque bytes
 *   (WBXML OPAQUE). Decoded nodes say which form was on the wire. When
 *   encoding, content is written as OPAQUE when the node is opaque or when
 *   libwbxml's table marks the element binary (ComposeMail:MIME,
 *   Email2:ConversationId, Email2:ConversationIndex, ItemOperations:
 *   ConversationId, Search:ConversationId, GAL:Data, ResolveRecipients:Data,
 *   AirSyncBase:Content: the opaque-typed elements of [MS-ASWBXML]), and as
 *   an inline string otherwise. Text may not contain NUL bytes.
 *
 * Building never fails: out of memory aborts, and a mistake (a tag name
 * unknown on its code page, children under an element with content) is
 * recorded in the node and makes eas_wbxml_encode() fail with HK_ERR_INVAL
 * and a message naming it. Queries accept NULL and return NULL/0. */
#ifndef HK_EAS_WBXML_H
#define HK_EAS_WBXML_H

#include "lib/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ActiveSync code pages ([MS-ASWBXML] 2.1.2.1). */
enum eas_page {
	EAS_PAGE_AIRSYNC = 0,
	EAS_PAGE_CONTACTS = 1,
	EAS_PAGE_EMAIL = 2,
	EAS_PAGE_AIRNOTIFY = 3,
	EAS_PAGE_CALENDAR = 4,
	EAS_PAGE_MOVE = 5,
	EAS_PAGE_GETITEMESTIMATE = 6,
	EAS_PAGE_FOLDERHIERARCHY = 7,
	EAS_PAGE_MEETINGRESPONSE = 8,
	EAS_PAGE_TASKS = 9,
	EAS_PAGE_RESOLVERECIPIENTS = 10,
	EAS_PAGE_VALIDATECERT = 11,
	EAS_PAGE_CONTACTS2 = 12,
	EAS_PAGE_PING = 13,
	EAS_PAGE_PROVISION = 14,
	EAS_PAGE_SEARCH = 15,
	EAS_PAGE_GAL = 16,
	EAS_PAGE_AIRSYNCBASE = 17,
	EAS_PAGE_SETTINGS = 18,
	EAS_PAGE_DOCUMENTLIBRARY = 19,
	EAS_PAGE_ITEMOPERATIONS = 20,
	EAS_PAGE_COMPOSEMAIL = 21,
	EAS_PAGE_EMAIL2 = 22,
	EAS_PAGE_NOTES = 23,
	EAS_PAGE_RIGHTSMANAGEMENT = 24,
	/* 16.1 only; libwbxml 0.11.8 has no tokens for it: elements on this
	 * page can be neither decoded nor encoded. */
	EAS_PAGE_FIND = 25,
};
#define EAS_PAGE_COUNT 26

/* The namespace of a code page as in ActiveSync XML ("AirSync"), or NULL. */
const char *eas_page_name(enum eas_page page);

/* Decoder limits. A response breaking one is rejected before libwbxml
 * parses it (HK_ERR_TOO_LONG, with a message saying which). */
#define EAS_WBXML_MAX_INPUT     (32u * 1024 * 1024) /* bytes of WBXML */
#define EAS_WBXML_MAX_CONTENT   (24u * 1024 * 1024) /* content bytes of one element */
#define EAS_WBXML_MAX_DEPTH     32                  /* nesting levels, root = 1 */
#define EAS_WBXML_MAX_NODES     1000000u            /* upper bound for max_nodes */
#define EAS_WBXML_DEFAULT_NODES 100000u             /* max_nodes == 0 means this */
/* Encoder limit on the WBXML it produces. */
#define EAS_WBXML_MAX_OUTPUT EAS_WBXML_MAX_INPUT

struct eas_node;

enum eas_content {
	EAS_CONTENT_NONE,   /* no content: children, or an empty element */
	EAS_CONTENT_TEXT,   /* inline string */
	EAS_CONTENT_OPAQUE, /* opaque bytes */
};

/* --- Building ---------------------------------------------------------- */

/* A new root element. */
struct eas_node *eas_node_new(enum eas_page page, const char *name);
/* Appends a child element and returns it (NULL only when parent is NULL). */
struct eas_node *eas_node_add(struct eas_node *parent, enum eas_page page, const char *name);
/* Appends a child element with text content (NUL-terminated; "" makes an
 * empty element). */
struct eas_node *eas_node_add_text(struct eas_node *parent, enum eas_page page, const char *name,
                                   const char *text);
/* Appends a child element with opaque content (len 0 makes an empty
 * element). bytes may contain anything. */
struct eas_node *eas_node_add_opaque(struct eas_node *parent, enum eas_page page, const char *name,
                                     const void *bytes, size_t len);
/* Frees *node and everything below it, unlinking it from its parent if it
 * has one, and sets *node to NULL. */
void eas_node_free(struct eas_node **node);

/* --- Queries ----------------------------------------------------------- */

enum eas_page eas_node_page(const struct eas_node *node);
/* The tag name (static storage), or NULL for NULL or a node built with an
 * unknown name. */
const char *eas_node_name(const struct eas_node *node);
/* True when node is the element page:name. */
bool eas_node_is(const struct eas_node *node, enum eas_page page, const char *name);
enum eas_content eas_node_content(const struct eas_node *node);
const struct eas_node *eas_node_parent(const struct eas_node *node);
const struct eas_node *eas_node_first(const struct eas_node *node);
const struct eas_node *eas_node_next(const struct eas_node *node);
/* The first child page:name of node, or NULL. */
const struct eas_node *eas_node_child(const struct eas_node *node, enum eas_page page,
                                      const char *name);
/* The next sibling with the same page and name as node, or NULL: iterates
 * over repeated elements, e.g. every <Add> of a <Commands>. */
const struct eas_node *eas_node_next_same(const struct eas_node *node);
/* Number of children page:name of node. */
size_t eas_node_count(const struct eas_node *node, enum eas_page page, const char *name);
/* Follows a path of child names, all on page, from node; the list ends with
 * NULL. eas_node_find(root, EAS_PAGE_AIRSYNC, "Collections", "Collection",
 * NULL) is the first Collection of the first Collections of root. */
const struct eas_node *eas_node_find(const struct eas_node *node, enum eas_page page, ...)
    __attribute__((sentinel));
/* The content as a NUL-terminated string: "" for an element without
 * content or children; NULL for NULL, an element with children, or content
 * containing a NUL byte (read that with eas_node_bytes()). */
const char *eas_node_text(const struct eas_node *node);
/* The text of the first child page:name, as eas_node_text(). */
const char *eas_node_child_text(const struct eas_node *node, enum eas_page page, const char *name);
/* The content bytes and their number (*len_r = 0 and a pointer to "" for
 * an element without content; NULL for NULL or an element with children). */
const uint8_t *eas_node_bytes(const struct eas_node *node, size_t *len_r);

/* --- Wire format ------------------------------------------------------- */

/* Encodes the tree under root as WBXML 1.3, public id 1 (unknown),
 * charset UTF-8 (MIBenum 106), no string table: the header 03 01 6A 00
 * that Exchange and SOGo send. *out_r is malloc'ed (free() it), *len_r its
 * size. HK_ERR_INVAL for a tree built with a mistake or text containing NUL,
 * HK_ERR_TOO_LONG when the result would exceed EAS_WBXML_MAX_OUTPUT. */
int eas_wbxml_encode(const struct eas_node *root, uint8_t **out_r, size_t *len_r,
                     const char **error_r) HK_WARN_UNUSED;

/* Decodes a WBXML ActiveSync document into a new tree (*root_r; free with
 * eas_node_free). max_nodes bounds the number of elements (0 means
 * EAS_WBXML_DEFAULT_NODES; values above EAS_WBXML_MAX_NODES are lowered to
 * it).
 *
 * An empty body (len 0) is not a document but a normal ActiveSync answer
 * (HTTP 200 with no body: Sync "no changes", SendMail success, ...). It is
 * reported as HK_ERR_NOT_FOUND, and only it, so callers can tell it from
 * garbage without a separate length check. Other errors:
 *   HK_ERR_TRUNCATED  the document ends early (header, string, opaque,
 *                     unclosed element)
 *   HK_ERR_VERSION    the WBXML version byte is not 1.3 (0x03)
 *   HK_ERR_TOO_LONG   input over EAS_WBXML_MAX_INPUT, more than max_nodes
 *                     elements, deeper than EAS_WBXML_MAX_DEPTH, or one
 *                     element's content over EAS_WBXML_MAX_CONTENT
 *   HK_ERR_INVAL      anything else: unknown code page or tag, public id or
 *                     charset other than 1 / UTF-8, a string table or a
 *                     reference into one, tokens ActiveSync does not use
 *                     (ENTITY, EXT, PI, LITERAL, attributes), text outside
 *                     the root or mixed with child elements, bytes after the
 *                     root element, or libwbxml rejecting the document.
 * *error_r is a static message naming the precise cause. */
int eas_wbxml_decode(const uint8_t *buf, size_t len, size_t max_nodes, struct eas_node **root_r,
                     const char **error_r) HK_WARN_UNUSED;

/* --- Debugging --------------------------------------------------------- */

/* An element whose content a dump replaces by "[N bytes elided]". */
struct eas_elide {
	enum eas_page page;
	const char *name;
};

/* One element per line, indented by two spaces per level. */
#define EAS_DUMP_INDENT 0x1u

/* Renders the tree as XML text into a malloc'ed NUL-terminated string
 * (*xml_r, free() it). Without flags the output is what wbxml2xml -l
 * ACTIVESYNC prints after its two header lines: one element per line, the
 * root and every element that changes code page carry xmlns="Page:", text
 * is escaped (& < > " and control characters as &#N;), opaque content is
 * base64. Content of the n_elide elements listed in elide is replaced by
 * "[N bytes elided]" (for passwords, MIME, bodies in a --trace). Output
 * longer than max_len bytes is cut and ends with "[...]\n". */
int eas_node_dump(const struct eas_node *root, const struct eas_elide *elide, size_t n_elide,
                  unsigned flags, size_t max_len, char **xml_r) HK_WARN_UNUSED;

#endif
