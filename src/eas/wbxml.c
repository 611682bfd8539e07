/* The ActiveSync WBXML codec on top of libwbxml2 (see wbxml.h).
 *
 * Decoding a server response takes two passes:
 *   1. scan_document(): one bounded pass over the bytes, without recursion
 *      or allocation beyond one small array, that accepts only the WBXML
 *      ActiveSync uses (header 03 01 6A 00; SWITCH_PAGE, known tags without
 *      attributes, STR_I, OPAQUE, END) within the limits of wbxml.h, and
 *      records every element (page, token, depth, opaque content). It is a
 *      guard, not a second decoder: libwbxml 0.11.8 must never see input
 *      that nests deeply (its parser recurses once per level: a few hundred
 *      KB of start tags overflow the stack) or carries ENTITY &#x80000000;
 *      or above (an assert() aborts the process). It also gives the precise
 *      error classes libwbxml cannot.
 *   2. libwbxml's parser (wbxml_parser_parse()) reads the document and
 *      calls back for every element and string; the callbacks build struct
 *      eas_node directly, checking each element against the scan (a
 *      disagreement is an error, never a silent difference) and taking the
 *      opaque flag from it, since libwbxml reports inline strings and
 *      OPAQUE alike as characters.
 * libwbxml's own tree (wbxml_tree_from_wbxml()) is not used for decoding:
 * it appends every child by walking its siblings (100000 sibling elements,
 * 100 KB of input, took 54 s) and applies SyncML heuristics to elements
 * named "Data" that can nest CDATA nodes and misplace later elements.
 *
 * Encoding builds a libwbxml tree (linking nodes directly, for the same
 * reason; opaque content as a CDATA node, which libwbxml's encoder writes as
 * OPAQUE; it also writes OPAQUE for the text of the tags its table marks
 * binary) and runs wbxml_tree_to_wbxml() with WBXML 1.3, no string table,
 * anonymous public id, whitespace kept.
 *
 * libwbxml 0.11 installs only its XML<->WBXML conversion API; the parser and
 * tree APIs used here are exported by libwbxml2.so.1 but their headers are
 * private. The declarations below mirror the 0.11.x headers (src/
 * wbxml_parser.h, wbxml_handlers.h, wbxml_tree.h, wbxml_elt.h,
 * wbxml_tables.h, wbxml_buffers.h: unchanged from 2011 to 0.11.10);
 * src/eas/CMakeLists.txt refuses any other libwbxml version and test-wbxml
 * checks the mirrored layout at run time. */
#include "eas/wbxml.h"

#include <wbxml/wbxml.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- libwbxml 0.11 private API (mirrored declarations) ------------------ */

typedef struct WBXMLBuffer_s WBXMLBuffer;
typedef struct WBXMLList_s WBXMLList;

typedef struct WBXMLTagEntry_s {
	const WB_TINY *xmlName;
	WB_UTINY wbxmlCodePage;
	WB_UTINY wbxmlToken;
	WB_ULONG options;
} WBXMLTagEntry;
#define WBXML_TAG_OPTION_BINARY 0x1

typedef struct WBXMLLangEntry_s {
	WBXMLLanguage langID;
	const void *publicID;
	const WBXMLTagEntry *tagTable;
	const void *nsTable;
	const void *attrTable;
	const void *attrValueTable;
	const void *extValueTable;
} WBXMLLangEntry;

typedef enum WBXMLValueType_e { WBXML_VALUE_TOKEN = 0, WBXML_VALUE_LITERAL } WBXMLValueType;

typedef struct WBXMLTag_s {
	WBXMLValueType type;
	union {
		const WBXMLTagEntry *token;
		WBXMLBuffer *literal;
	} u;
} WBXMLTag;

typedef enum WBXMLTreeNodeType_e {
	WBXML_TREE_ELEMENT_NODE = 0,
	WBXML_TREE_TEXT_NODE,
	WBXML_TREE_CDATA_NODE,
	WBXML_TREE_PI_NODE,
	WBXML_TREE_TREE_NODE
} WBXMLTreeNodeType;

typedef struct WBXMLTreeNode_s {
	WBXMLTreeNodeType type;
	WBXMLTag *name;
	WBXMLList *attrs;
	WBXMLBuffer *content;
	struct WBXMLTree_s *tree;
	struct WBXMLTreeNode_s *parent;
	struct WBXMLTreeNode_s *children;
	struct WBXMLTreeNode_s *next;
	struct WBXMLTreeNode_s *prev;
} WBXMLTreeNode;

typedef struct WBXMLTree_s {
	const WBXMLLangEntry *lang;
	WBXMLTreeNode *root;
	WBXMLCharsetMIBEnum orig_charset;
	WB_UTINY cur_code_page;
} WBXMLTree;

typedef struct WBXMLParser_s WBXMLParser;
typedef struct WBXMLAttribute_s WBXMLAttribute;

typedef struct WBXMLContentHandler_s {
	void (*start_document_clb)(void *ctx, WBXMLCharsetMIBEnum charset,
	                           const WBXMLLangEntry *lang);
	void (*end_document_clb)(void *ctx);
	void (*start_element_clb)(void *ctx, WBXMLTag *local_name, WBXMLAttribute **atts);
	void (*end_element_clb)(void *ctx, WBXMLTag *local_name);
	void (*characters_clb)(void *ctx, WB_UTINY *ch, WB_ULONG start, WB_ULONG length);
	void (*pi_clb)(void *ctx, const WB_UTINY *target, WB_UTINY *data);
} WBXMLContentHandler;

WBXMLParser *wbxml_parser_create(void);
void wbxml_parser_destroy(WBXMLParser *parser);
/* The input is only read (libwbxml copies it first): declared const here. */
WBXMLError wbxml_parser_parse(WBXMLParser *parser, const WB_UTINY *wbxml, WB_ULONG wbxml_len);
void wbxml_parser_set_user_data(WBXMLParser *parser, void *user_data);
void wbxml_parser_set_content_handler(WBXMLParser *parser, WBXMLContentHandler *content_handler);
WB_BOOL wbxml_parser_set_language(WBXMLParser *parser, WBXMLLanguage lang);
WB_BOOL wbxml_parser_set_meta_charset(WBXMLParser *parser, WBXMLCharsetMIBEnum charset);
WBXMLError wbxml_tree_to_wbxml(WBXMLTree *tree, WB_UTINY **wbxml, WB_ULONG *wbxml_len,
                               WBXMLGenWBXMLParams *params);
WBXMLTree *wbxml_tree_create(WBXMLLanguage lang, WBXMLCharsetMIBEnum orig_charset);
void wbxml_tree_destroy(WBXMLTree *tree);
WBXMLTreeNode *wbxml_tree_node_create(WBXMLTreeNodeType type);
WBXMLTreeNode *wbxml_tree_node_create_text(const WB_UTINY *text, WB_ULONG len);
WBXMLTreeNode *wbxml_tree_node_create_cdata(const WB_UTINY *text, WB_ULONG len);
WBXMLTag *wbxml_tag_create_token(const WBXMLTagEntry *value);
const WBXMLLangEntry *wbxml_tables_get_table(WBXMLLanguage lang);
void wbxml_free(void *memblock);

/* ---- WBXML tokens (WAP-192-WBXML 7.1) ----------------------------------- */

#define TOK_SWITCH_PAGE  0x00
#define TOK_END          0x01
#define TOK_ENTITY       0x02
#define TOK_STR_I        0x03
#define TOK_LITERAL      0x04
#define TOK_EXT_I_0      0x40
#define TOK_PI           0x43
#define TOK_EXT_T_0      0x80
#define TOK_STR_T        0x83
#define TOK_EXT_0        0xC0
#define TOK_OPAQUE       0xC3
#define TAG_WITH_ATTRS   0x80
#define TAG_WITH_CONTENT 0x40
#define TAG_TOKEN_MASK   0x3F
#define TAG_TOKEN_MIN    0x05

#define WBXML_VERSION_1_3 0x03
#define PUBLIC_ID_UNKNOWN 0x01
#define CHARSET_UTF8      106

/* ---- tag table ----------------------------------------------------------- */

struct tag_info {
	const char *name;        /* NULL: no tag with this token on this page */
	const WBXMLTagEntry *lw; /* libwbxml's entry, passed to its encoder */
	bool opaque;             /* libwbxml writes the content as OPAQUE */
};

static struct tag_info tags[EAS_PAGE_COUNT][TAG_TOKEN_MASK + 1];
static pthread_once_t tags_once = PTHREAD_ONCE_INIT;

static const char *const page_names[EAS_PAGE_COUNT] = {
    "AirSync",
    "Contacts",
    "Email",
    "AirNotify",
    "Calendar",
    "Move",
    "GetItemEstimate",
    "FolderHierarchy",
    "MeetingResponse",
    "Tasks",
    "ResolveRecipients",
    "ValidateCert",
    "Contacts2",
    "Ping",
    "Provision",
    "Search",
    "GAL",
    "AirSyncBase",
    "Settings",
    "DocumentLibrary",
    "ItemOperations",
    "ComposeMail",
    "Email2",
    "Notes",
    "RightsManagement",
    "Find",
};

/* Builds tags[][] from libwbxml's ActiveSync table, keeping the first entry
 * for a page and token as libwbxml's parser does (its table lists a few
 * tokens twice). One name is a typo there, [MS-ASWBXML] is followed. */
static void tags_init(void)
{
	const WBXMLLangEntry *lang = wbxml_tables_get_table(WBXML_LANG_ACTIVESYNC);
	if (lang == NULL || lang->tagTable == NULL)
		abort(); /* a libwbxml built without ActiveSync: nothing can work */
	for (const WBXMLTagEntry *e = lang->tagTable; e->xmlName != NULL; e++) {
		if (e->wbxmlCodePage >= EAS_PAGE_COUNT || e->wbxmlToken < TAG_TOKEN_MIN ||
		    e->wbxmlToken > TAG_TOKEN_MASK)
			continue;
		struct tag_info *t = &tags[e->wbxmlCodePage][e->wbxmlToken];
		if (t->name != NULL)
			continue;
		t->name = e->xmlName;
		t->lw = e;
		t->opaque = (e->options & WBXML_TAG_OPTION_BINARY) != 0;
	}
	struct tag_info *rmi = &tags[EAS_PAGE_SETTINGS][0x2B];
	if (rmi->name != NULL && strcmp(rmi->name, "ihsManagementInformation") == 0)
		rmi->name = "RightsManagementInformation";
}

static const struct tag_info *tag_get(unsigned page, unsigned token)
{
	pthread_once(&tags_once, tags_init);
	if (page >= EAS_PAGE_COUNT || token > TAG_TOKEN_MASK || tags[page][token].name == NULL)
		return NULL;
	return &tags[page][token];
}

/* The token of page:name, or 0. Aliases (libwbxml's second names for a
 * token, its spelling of a corrected name) are accepted. */
static uint8_t tag_token(enum eas_page page, const char *name)
{
	pthread_once(&tags_once, tags_init);
	if ((unsigned)page >= EAS_PAGE_COUNT || name == NULL)
		return 0;
	for (unsigned t = TAG_TOKEN_MIN; t <= TAG_TOKEN_MASK; t++)
		if (tags[page][t].name != NULL && strcmp(tags[page][t].name, name) == 0)
			return (uint8_t)t;
	const WBXMLLangEntry *lang = wbxml_tables_get_table(WBXML_LANG_ACTIVESYNC);
	for (const WBXMLTagEntry *e = lang->tagTable; e->xmlName != NULL; e++)
		if (e->wbxmlCodePage == (unsigned)page && strcmp(e->xmlName, name) == 0 &&
		    tag_get(page, e->wbxmlToken) != NULL)
			return e->wbxmlToken;
	return 0;
}

const char *eas_page_name(enum eas_page page)
{
	return (unsigned)page < EAS_PAGE_COUNT ? page_names[page] : NULL;
}

/* ---- nodes --------------------------------------------------------------- */

struct eas_node {
	struct eas_node *parent, *first, *last, *prev, *next;
	uint8_t page;
	uint8_t token;       /* 0: built with an unknown name */
	uint8_t kind;        /* enum eas_content */
	const char *mistake; /* why this node cannot be encoded, or NULL */
	uint8_t *data;       /* content + NUL, or NULL */
	size_t len;
};

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);
	if (p == NULL)
		abort();
	return p;
}

static void *xrealloc(void *p, size_t size)
{
	void *q = realloc(p, size);
	if (q == NULL)
		abort();
	return q;
}

static struct eas_node *node_alloc(enum eas_page page, const char *name)
{
	struct eas_node *n = xcalloc(1, sizeof(*n));
	n->page = (unsigned)page < EAS_PAGE_COUNT ? (uint8_t)page : 0;
	n->token = tag_token(page, name);
	if (n->token == 0)
		n->mistake = "unknown tag name on its code page";
	return n;
}

static void node_link(struct eas_node *parent, struct eas_node *child)
{
	child->parent = parent;
	child->prev = parent->last;
	if (parent->last != NULL)
		parent->last->next = child;
	else
		parent->first = child;
	parent->last = child;
	if (parent->kind != EAS_CONTENT_NONE && child->mistake == NULL)
		child->mistake = "child element under an element with content";
}

static void node_set_content(struct eas_node *n, enum eas_content kind, const void *bytes,
                             size_t len)
{
	if (len == 0)
		return;
	n->data = xcalloc(len + 1, 1);
	memcpy(n->data, bytes, len);
	n->len = len;
	n->kind = (uint8_t)kind;
	if (n->first != NULL && n->mistake == NULL)
		n->mistake = "content in an element with children";
}

struct eas_node *eas_node_new(enum eas_page page, const char *name)
{
	return node_alloc(page, name);
}

struct eas_node *eas_node_add(struct eas_node *parent, enum eas_page page, const char *name)
{
	if (parent == NULL)
		return NULL;
	struct eas_node *n = node_alloc(page, name);
	node_link(parent, n);
	return n;
}

struct eas_node *eas_node_add_text(struct eas_node *parent, enum eas_page page, const char *name,
                                   const char *text)
{
	struct eas_node *n = eas_node_add(parent, page, name);
	if (n != NULL && text != NULL)
		node_set_content(n, EAS_CONTENT_TEXT, text, strlen(text));
	return n;
}

struct eas_node *eas_node_add_opaque(struct eas_node *parent, enum eas_page page, const char *name,
                                     const void *bytes, size_t len)
{
	struct eas_node *n = eas_node_add(parent, page, name);
	if (n != NULL && bytes != NULL)
		node_set_content(n, EAS_CONTENT_OPAQUE, bytes, len);
	return n;
}

/* Frees a subtree without recursion: trees decoded from hostile input are
 * bounded in depth, but trees built by callers are not. */
static void subtree_free(struct eas_node *top)
{
	struct eas_node *n = top;
	while (n != NULL) {
		if (n->first != NULL) {
			n = n->first;
			continue;
		}
		struct eas_node *parent = n->parent;
		bool last = n == top;
		if (parent != NULL) {
			parent->first = n->next;
			if (n->next != NULL)
				n->next->prev = NULL;
			else
				parent->last = NULL;
		}
		free(n->data);
		free(n);
		n = last ? NULL : parent;
	}
}

void eas_node_free(struct eas_node **node)
{
	if (node == NULL || *node == NULL)
		return;
	struct eas_node *n = *node;
	struct eas_node *parent = n->parent;
	if (parent != NULL) {
		if (n->prev != NULL)
			n->prev->next = n->next;
		else
			parent->first = n->next;
		if (n->next != NULL)
			n->next->prev = n->prev;
		else
			parent->last = n->prev;
		n->parent = n->prev = n->next = NULL;
	}
	subtree_free(n);
	*node = NULL;
}

/* ---- queries ------------------------------------------------------------- */

enum eas_page eas_node_page(const struct eas_node *node)
{
	return node != NULL ? (enum eas_page)node->page : EAS_PAGE_AIRSYNC;
}

const char *eas_node_name(const struct eas_node *node)
{
	const struct tag_info *t = node != NULL ? tag_get(node->page, node->token) : NULL;
	return t != NULL ? t->name : NULL;
}

bool eas_node_is(const struct eas_node *node, enum eas_page page, const char *name)
{
	return node != NULL && node->token != 0 && node->page == (unsigned)page &&
	       node->token == tag_token(page, name);
}

enum eas_content eas_node_content(const struct eas_node *node)
{
	return node != NULL ? (enum eas_content)node->kind : EAS_CONTENT_NONE;
}

const struct eas_node *eas_node_parent(const struct eas_node *node)
{
	return node != NULL ? node->parent : NULL;
}

const struct eas_node *eas_node_first(const struct eas_node *node)
{
	return node != NULL ? node->first : NULL;
}

const struct eas_node *eas_node_next(const struct eas_node *node)
{
	return node != NULL ? node->next : NULL;
}

/* The first node from n on (n and its next siblings) that is page:token. */
static const struct eas_node *sibling_from(const struct eas_node *n, unsigned page, uint8_t token)
{
	for (; n != NULL; n = n->next)
		if (n->page == page && n->token == token)
			return n;
	return NULL;
}

const struct eas_node *eas_node_child(const struct eas_node *node, enum eas_page page,
                                      const char *name)
{
	uint8_t token = tag_token(page, name);
	if (node == NULL || token == 0)
		return NULL;
	return sibling_from(node->first, (unsigned)page, token);
}

const struct eas_node *eas_node_next_same(const struct eas_node *node)
{
	if (node == NULL || node->token == 0)
		return NULL;
	return sibling_from(node->next, node->page, node->token);
}

size_t eas_node_count(const struct eas_node *node, enum eas_page page, const char *name)
{
	size_t n = 0;
	for (const struct eas_node *c = eas_node_child(node, page, name); c != NULL;
	     c = eas_node_next_same(c))
		n++;
	return n;
}

const struct eas_node *eas_node_find(const struct eas_node *node, enum eas_page page, ...)
{
	va_list ap;
	va_start(ap, page);
	const char *name;
	while (node != NULL && (name = va_arg(ap, const char *)) != NULL)
		node = eas_node_child(node, page, name);
	va_end(ap);
	return node;
}

const char *eas_node_text(const struct eas_node *node)
{
	if (node == NULL || node->first != NULL)
		return NULL;
	if (node->data == NULL)
		return "";
	if (memchr(node->data, 0, node->len) != NULL)
		return NULL;
	return (const char *)node->data;
}

const char *eas_node_child_text(const struct eas_node *node, enum eas_page page, const char *name)
{
	return eas_node_text(eas_node_child(node, page, name));
}

const uint8_t *eas_node_bytes(const struct eas_node *node, size_t *len_r)
{
	*len_r = 0;
	if (node == NULL || node->first != NULL)
		return NULL;
	if (node->data == NULL)
		return (const uint8_t *)"";
	*len_r = node->len;
	return node->data;
}

/* ---- decoding: the guard pass -------------------------------------------- */

#define ELEM_OPAQUE 0x1

/* What the scan saw of one element, in document order. */
struct scan_elem {
	uint8_t page, token, depth, flags;
};

struct scan {
	const uint8_t *p, *end;
	size_t max_nodes;
	struct scan_elem *elems; /* capacity: min(max_nodes, input length) */
	size_t n;
	const char *error;
};

static int scan_fail(struct scan *s, int err, const char *msg)
{
	s->error = msg;
	return err;
}

/* mb_u_int32: at most 5 bytes, value below 2^32. */
static int scan_mb_u32(struct scan *s, uint32_t *v_r)
{
	uint64_t v = 0;
	for (int i = 0; i < 5; i++) {
		if (s->p >= s->end)
			return scan_fail(s, HK_ERR_TRUNCATED,
			                 "WBXML truncated in a multi-byte integer");
		uint8_t b = *s->p++;
		v = v << 7 | (b & 0x7F);
		if ((b & 0x80) == 0) {
			if (v > UINT32_MAX)
				return scan_fail(s, HK_ERR_INVAL,
				                 "WBXML multi-byte integer over 32 bits");
			*v_r = (uint32_t)v;
			return 0;
		}
	}
	return scan_fail(s, HK_ERR_INVAL, "WBXML multi-byte integer longer than 5 bytes");
}

static int scan_header(struct scan *s)
{
	uint32_t public_id, charset, strtbl_len;
	int ret;
	if (s->p >= s->end)
		return scan_fail(s, HK_ERR_TRUNCATED, "WBXML truncated in the header");
	if (*s->p++ != WBXML_VERSION_1_3)
		return scan_fail(s, HK_ERR_VERSION, "WBXML version is not 1.3");
	if ((ret = scan_mb_u32(s, &public_id)) < 0)
		return ret;
	if (public_id == 0)
		return scan_fail(s, HK_ERR_INVAL,
		                 "WBXML public id in a string table (unsupported)");
	if (public_id != PUBLIC_ID_UNKNOWN)
		return scan_fail(s, HK_ERR_INVAL, "WBXML public id is not 1 (ActiveSync)");
	if ((ret = scan_mb_u32(s, &charset)) < 0)
		return ret;
	if (charset != CHARSET_UTF8)
		return scan_fail(s, HK_ERR_INVAL, "WBXML charset is not UTF-8");
	if ((ret = scan_mb_u32(s, &strtbl_len)) < 0)
		return ret;
	if (strtbl_len != 0)
		return scan_fail(s, HK_ERR_INVAL, "WBXML string table (ActiveSync uses none)");
	return 0;
}

/* An element open on the scan's stack. */
struct open_elem {
	size_t index;            /* in scan.elems */
	size_t content;          /* content bytes so far */
	bool children, has_text; /* seen child elements / non-empty content */
};

static int scan_content(struct scan *s, struct open_elem *top, size_t n, bool opaque)
{
	if (opaque)
		s->elems[top->index].flags |= ELEM_OPAQUE;
	if (n == 0)
		return 0;
	if (top->children)
		return scan_fail(s, HK_ERR_INVAL, "WBXML content mixed with child elements");
	if (n > EAS_WBXML_MAX_CONTENT - top->content)
		return scan_fail(s, HK_ERR_TOO_LONG, "WBXML element content over the maximum");
	top->content += n;
	top->has_text = true;
	return 0;
}

/* Checks the whole document and fills s->elems (see the top of this file). */
static int scan_document(struct scan *s)
{
	struct open_elem stack[EAS_WBXML_MAX_DEPTH];
	size_t depth = 0;
	unsigned page = 0;
	bool root_seen = false;
	int ret = scan_header(s);
	if (ret < 0)
		return ret;
	while (s->p < s->end) {
		if (root_seen && depth == 0)
			return scan_fail(s, HK_ERR_INVAL, "WBXML data after the root element");
		struct open_elem *top = depth > 0 ? &stack[depth - 1] : NULL;
		uint8_t b = *s->p++;
		switch (b) {
		case TOK_SWITCH_PAGE:
			if (s->p >= s->end)
				return scan_fail(s, HK_ERR_TRUNCATED,
				                 "WBXML truncated in SWITCH_PAGE");
			page = *s->p++;
			if (page >= EAS_PAGE_COUNT || page == EAS_PAGE_FIND)
				return scan_fail(s, HK_ERR_INVAL, "WBXML unknown code page");
			break;
		case TOK_END:
			if (top == NULL)
				return scan_fail(s, HK_ERR_INVAL,
				                 "WBXML END without an open element");
			depth--;
			break;
		case TOK_STR_I: {
			if (top == NULL)
				return scan_fail(s, HK_ERR_INVAL,
				                 "WBXML string outside the root element");
			const uint8_t *nul = memchr(s->p, 0, (size_t)(s->end - s->p));
			if (nul == NULL)
				return scan_fail(s, HK_ERR_TRUNCATED,
				                 "WBXML truncated in a string");
			if ((ret = scan_content(s, top, (size_t)(nul - s->p), false)) < 0)
				return ret;
			s->p = nul + 1;
			break;
		}
		case TOK_OPAQUE: {
			uint32_t len;
			if (top == NULL)
				return scan_fail(s, HK_ERR_INVAL,
				                 "WBXML opaque outside the root element");
			if ((ret = scan_mb_u32(s, &len)) < 0)
				return ret;
			if (len > (size_t)(s->end - s->p))
				return scan_fail(s, HK_ERR_TRUNCATED,
				                 "WBXML truncated in opaque data");
			if ((ret = scan_content(s, top, len, true)) < 0)
				return ret;
			s->p += len;
			break;
		}
		case TOK_ENTITY:
			return scan_fail(s, HK_ERR_INVAL, "WBXML ENTITY (not used by ActiveSync)");
		case TOK_STR_T:
			return scan_fail(s, HK_ERR_INVAL,
			                 "WBXML string table reference (no string table)");
		case TOK_LITERAL:
		case TOK_LITERAL | TAG_WITH_CONTENT:
		case TOK_LITERAL | TAG_WITH_ATTRS:
		case TOK_LITERAL | TAG_WITH_ATTRS | TAG_WITH_CONTENT:
			return scan_fail(s, HK_ERR_INVAL,
			                 "WBXML literal tag (not used by ActiveSync)");
		case TOK_EXT_I_0:
		case TOK_EXT_I_0 + 1:
		case TOK_EXT_I_0 + 2:
		case TOK_EXT_T_0:
		case TOK_EXT_T_0 + 1:
		case TOK_EXT_T_0 + 2:
		case TOK_EXT_0:
		case TOK_EXT_0 + 1:
		case TOK_EXT_0 + 2:
			return scan_fail(s, HK_ERR_INVAL,
			                 "WBXML extension token (not used by ActiveSync)");
		case TOK_PI:
			return scan_fail(s, HK_ERR_INVAL,
			                 "WBXML processing instruction (not used by ActiveSync)");
		default: {
			/* A tag: token 0x05..0x3F with the content and attribute bits. */
			if (b & TAG_WITH_ATTRS)
				return scan_fail(s, HK_ERR_INVAL,
				                 "WBXML attributes (not used by ActiveSync)");
			uint8_t token = b & TAG_TOKEN_MASK;
			if (tag_get(page, token) == NULL)
				return scan_fail(s, HK_ERR_INVAL,
				                 "WBXML unknown tag on its code page");
			if (depth + 1 > EAS_WBXML_MAX_DEPTH)
				return scan_fail(s, HK_ERR_TOO_LONG,
				                 "WBXML nested deeper than the maximum");
			if (s->n >= s->max_nodes)
				return scan_fail(s, HK_ERR_TOO_LONG,
				                 "WBXML has more elements than the maximum");
			if (top != NULL) {
				if (top->has_text)
					return scan_fail(s, HK_ERR_INVAL,
					                 "WBXML content mixed with child elements");
				top->children = true;
			}
			s->elems[s->n] =
			    (struct scan_elem){(uint8_t)page, token, (uint8_t)(depth + 1), 0};
			if (b & TAG_WITH_CONTENT)
				stack[depth++] = (struct open_elem){.index = s->n};
			s->n++;
			root_seen = true;
			break;
		}
		}
	}
	if (!root_seen || depth > 0)
		return scan_fail(s, HK_ERR_TRUNCATED,
		                 "WBXML truncated before the root element ends");
	return 0;
}

/* ---- decoding: libwbxml's parser events to our tree --------------------- */

struct build {
	const struct scan_elem *elems; /* what the scan saw */
	size_t n, next;
	struct eas_node *root, *cur;      /* cur: the innermost open element */
	size_t open[EAS_WBXML_MAX_DEPTH]; /* scan index of each open element */
	unsigned depth;
	size_t cap;        /* allocated size of cur->data */
	const char *error; /* once set, the remaining events are ignored */
};

static void build_fail(struct build *b, const char *msg)
{
	if (b->error == NULL)
		b->error = msg;
}

static void on_start(void *ctx, WBXMLTag *tag, WBXMLAttribute **atts)
{
	struct build *b = ctx;
	(void)atts;
	if (b->error != NULL)
		return;
	if (tag == NULL || tag->type != WBXML_VALUE_TOKEN || tag->u.token == NULL) {
		build_fail(b, "libwbxml reported a literal tag");
		return;
	}
	const WBXMLTagEntry *e = tag->u.token;
	if (b->next >= b->n) {
		build_fail(b, "libwbxml reported more elements than the document has");
		return;
	}
	const struct scan_elem *se = &b->elems[b->next];
	if (se->page != e->wbxmlCodePage || se->token != e->wbxmlToken ||
	    se->depth != b->depth + 1 || b->depth >= EAS_WBXML_MAX_DEPTH ||
	    (b->cur == NULL && b->root != NULL)) {
		build_fail(b, "libwbxml's reading disagrees with the document");
		return;
	}
	if (b->cur != NULL && b->cur->data != NULL) {
		build_fail(b, "libwbxml reported content mixed with child elements");
		return;
	}

	struct eas_node *n = xcalloc(1, sizeof(*n));
	n->page = se->page;
	n->token = se->token;
	if (b->cur != NULL)
		node_link(b->cur, n);
	else
		b->root = n;
	b->open[b->depth++] = b->next++;
	b->cur = n;
	b->cap = 0;
}

static void on_end(void *ctx, WBXMLTag *tag)
{
	struct build *b = ctx;
	(void)tag;
	if (b->error != NULL)
		return;
	if (b->cur == NULL || b->depth == 0) {
		build_fail(b, "libwbxml reported an END without an element");
		return;
	}
	struct eas_node *n = b->cur;
	if (b->elems[b->open[--b->depth]].flags & ELEM_OPAQUE)
		n->kind = EAS_CONTENT_OPAQUE;
	else if (n->data != NULL)
		n->kind = EAS_CONTENT_TEXT;
	if (n->data != NULL && b->cap > n->len + 1)
		n->data = xrealloc(n->data, n->len + 1);
	b->cur = n->parent;
	b->cap = 0;
}

static void on_characters(void *ctx, WB_UTINY *ch, WB_ULONG start, WB_ULONG length)
{
	struct build *b = ctx;
	struct eas_node *n = b->cur;
	if (b->error != NULL || length == 0)
		return;
	if (n == NULL || n->first != NULL) {
		build_fail(b, "libwbxml reported content outside an element's content");
		return;
	}
	if (length > EAS_WBXML_MAX_CONTENT - n->len) {
		build_fail(b, "libwbxml reported more content than the document has");
		return;
	}
	/* Content can come in many strings: grow geometrically. */
	if (n->len + length + 1 > b->cap) {
		size_t cap = b->cap > 0 ? b->cap : 64;
		while (cap < n->len + length + 1)
			cap *= 2;
		n->data = xrealloc(n->data, cap);
		b->cap = cap;
	}
	memcpy(n->data + n->len, ch + start, length);
	n->len += length;
	n->data[n->len] = 0;
}

static void on_pi(void *ctx, const WB_UTINY *target, WB_UTINY *data)
{
	(void)target;
	(void)data;
	build_fail(ctx, "libwbxml reported a processing instruction");
}

int eas_wbxml_decode(const uint8_t *buf, size_t len, size_t max_nodes, struct eas_node **root_r,
                     const char **error_r)
{
	struct scan s = {0};
	struct build b = {0};
	WBXMLParser *parser = NULL;
	WBXMLContentHandler handler = {
	    .start_element_clb = on_start,
	    .end_element_clb = on_end,
	    .characters_clb = on_characters,
	    .pi_clb = on_pi,
	};
	int ret;

	*root_r = NULL;
	*error_r = NULL;
	if (len == 0) {
		*error_r = "empty body (no WBXML document)";
		return HK_ERR_NOT_FOUND;
	}
	if (buf == NULL) {
		*error_r = "no input buffer";
		return HK_ERR_INVAL;
	}
	if (len > EAS_WBXML_MAX_INPUT) {
		*error_r = "WBXML document over the maximum size";
		return HK_ERR_TOO_LONG;
	}
	if (max_nodes == 0)
		max_nodes = EAS_WBXML_DEFAULT_NODES;
	if (max_nodes > EAS_WBXML_MAX_NODES)
		max_nodes = EAS_WBXML_MAX_NODES;

	/* Every element takes at least one byte: len bounds the count too. */
	s.p = buf;
	s.end = buf + len;
	s.max_nodes = max_nodes;
	s.elems = xcalloc(max_nodes < len ? max_nodes : len, sizeof(*s.elems));
	if ((ret = scan_document(&s)) < 0) {
		*error_r = s.error;
		goto out;
	}

	if ((parser = wbxml_parser_create()) == NULL)
		abort();
	b.elems = s.elems;
	b.n = s.n;
	wbxml_parser_set_user_data(parser, &b);
	wbxml_parser_set_content_handler(parser, &handler);
	if (!wbxml_parser_set_language(parser, WBXML_LANG_ACTIVESYNC) ||
	    !wbxml_parser_set_meta_charset(parser, WBXML_CHARSET_UTF_8))
		abort(); /* a libwbxml built without ActiveSync */
	WBXMLError werr = wbxml_parser_parse(parser, buf, (WB_ULONG)len);
	if (werr != WBXML_OK && b.error == NULL)
		b.error = "libwbxml rejected the document"; /* not expected after the scan */
	if (b.error == NULL && (b.next != b.n || b.depth != 0 || b.root == NULL))
		b.error = "libwbxml reported fewer elements than the document has";
	if (b.error != NULL) {
		*error_r = b.error;
		ret = HK_ERR_INVAL;
		subtree_free(b.root);
		goto out;
	}
	*root_r = b.root;
	ret = 0;
out:
	wbxml_parser_destroy(parser);
	free(s.elems);
	return ret;
}

/* ---- encoding ------------------------------------------------------------ */

static WBXMLTreeNode *lw_check(WBXMLTreeNode *n)
{
	if (n == NULL)
		abort(); /* libwbxml allocation failed */
	return n;
}

/* Appends child to parent's children; *last is parent's last child so far.
 * (libwbxml's own helpers walk the sibling list for every append.) */
static void lw_append(WBXMLTreeNode *parent, WBXMLTreeNode **last, WBXMLTreeNode *child)
{
	child->parent = parent;
	child->prev = *last;
	if (*last != NULL)
		(*last)->next = child;
	else
		parent->children = child;
	*last = child;
}

/* Converts node and its subtree into libwbxml nodes (*lw_r, to be linked by
 * the caller; on failure a partial subtree may still be returned). */
static int build_lw(const struct eas_node *node, unsigned depth, size_t *count,
                    WBXMLTreeNode **lw_r, const char **error_r)
{
	*lw_r = NULL;
	if (node->mistake != NULL) {
		*error_r = node->mistake;
		return HK_ERR_INVAL;
	}
	if (depth > EAS_WBXML_MAX_DEPTH) {
		*error_r = "tree nested deeper than the maximum";
		return HK_ERR_TOO_LONG;
	}
	if (++*count > EAS_WBXML_MAX_NODES) {
		*error_r = "tree has more elements than the maximum";
		return HK_ERR_TOO_LONG;
	}
	const struct tag_info *t = tag_get(node->page, node->token);
	if (t == NULL) {
		*error_r = "unknown tag name on its code page";
		return HK_ERR_INVAL;
	}
	WBXMLTreeNode *lw = lw_check(wbxml_tree_node_create(WBXML_TREE_ELEMENT_NODE));
	*lw_r = lw;
	if ((lw->name = wbxml_tag_create_token(t->lw)) == NULL)
		abort();

	WBXMLTreeNode *last = NULL;
	if (node->len > 0) {
		WBXMLTreeNode *content;
		if (node->kind == EAS_CONTENT_OPAQUE) {
			content = wbxml_tree_node_create_cdata(node->data, (WB_ULONG)node->len);
		} else {
			/* libwbxml encodes text as a C string. */
			if (memchr(node->data, 0, node->len) != NULL) {
				*error_r = "text content contains a NUL byte";
				return HK_ERR_INVAL;
			}
			content = wbxml_tree_node_create_text(node->data, (WB_ULONG)node->len);
		}
		lw_append(lw, &last, lw_check(content));
	}
	for (const struct eas_node *c = node->first; c != NULL; c = c->next) {
		WBXMLTreeNode *child = NULL;
		int ret = build_lw(c, depth + 1, count, &child, error_r);
		if (child != NULL)
			lw_append(lw, &last, child);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int eas_wbxml_encode(const struct eas_node *root, uint8_t **out_r, size_t *len_r,
                     const char **error_r)
{
	WB_UTINY *wb = NULL;
	WB_ULONG wb_len = 0;
	WBXMLGenWBXMLParams params = {
	    .wbxml_version = WBXML_VERSION_13,
	    .keep_ignorable_ws = TRUE,
	    .use_strtbl = FALSE,
	    .produce_anonymous = TRUE,
	};
	int ret;

	*out_r = NULL;
	*len_r = 0;
	*error_r = NULL;
	if (root == NULL) {
		*error_r = "no tree";
		return HK_ERR_INVAL;
	}
	WBXMLTree *tree = wbxml_tree_create(WBXML_LANG_ACTIVESYNC, WBXML_CHARSET_UTF_8);
	if (tree == NULL)
		abort();
	size_t count = 0;
	ret = build_lw(root, 1, &count, &tree->root, error_r);
	if (ret < 0)
		goto out;
	WBXMLError werr = wbxml_tree_to_wbxml(tree, &wb, &wb_len, &params);
	if (werr != WBXML_OK || wb == NULL) {
		*error_r = "libwbxml failed to encode the tree";
		ret = HK_ERR_INVAL;
		goto out;
	}
	if (wb_len > EAS_WBXML_MAX_OUTPUT) {
		*error_r = "WBXML document over the maximum size";
		ret = HK_ERR_TOO_LONG;
		goto out;
	}
	*out_r = xcalloc(wb_len, 1);
	memcpy(*out_r, wb, wb_len);
	*len_r = wb_len;
	ret = 0;
out:
	wbxml_free(wb);
	wbxml_tree_destroy(tree);
	return ret;
}

/* ---- dump ---------------------------------------------------------------- */

/* A string builder that stops at max bytes. */
struct sbuf {
	char *p;
	size_t len, cap, max;
	bool cut;
};

static void sb_add(struct sbuf *b, const void *s, size_t n)
{
	if (b->cut)
		return;
	if (n > b->max - b->len) {
		n = b->max - b->len;
		b->cut = true;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap != 0 ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		if (cap > b->max + 1)
			cap = b->max + 1;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void sb_escaped(struct sbuf *b, const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n && !b->cut; i++) {
		char tmp[8];
		switch (s[i]) {
		case '<': sb_str(b, "&lt;"); break;
		case '>': sb_str(b, "&gt;"); break;
		case '&': sb_str(b, "&amp;"); break;
		case '"': sb_str(b, "&quot;"); break;
		case '\'': sb_str(b, "&apos;"); break;
		case '\t':
		case '\n':
		case '\r': sb_add(b, &s[i], 1); break;
		default:
			if (s[i] < 0x20 || s[i] == 0x7F) {
				snprintf(tmp, sizeof(tmp), "&#%u;", s[i]);
				sb_str(b, tmp);
			} else {
				sb_add(b, &s[i], 1);
			}
			break;
		}
	}
}

static void sb_base64(struct sbuf *b, const uint8_t *s, size_t n)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (size_t i = 0; i < n && !b->cut; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)s[i + 1] << 8;
		if (i + 2 < n)
			v |= s[i + 2];
		char q[4] = {alphabet[v >> 18 & 63], alphabet[v >> 12 & 63],
		             i + 1 < n ? alphabet[v >> 6 & 63] : '=',
		             i + 2 < n ? alphabet[v & 63] : '='};
		sb_add(b, q, 4);
	}
}

static bool elided(const struct eas_node *n, const struct eas_elide *elide, size_t n_elide)
{
	for (size_t i = 0; i < n_elide; i++)
		if (eas_node_is(n, elide[i].page, elide[i].name))
			return true;
	return false;
}

static void dump_open(struct sbuf *b, const struct eas_node *n, unsigned level, unsigned flags)
{
	if (flags & EAS_DUMP_INDENT)
		for (unsigned i = 0; i < level; i++)
			sb_str(b, "  ");
	sb_str(b, "<");
	const char *name = eas_node_name(n);
	sb_str(b, name != NULL ? name : "unknown");
	if (n->parent == NULL || n->parent->page != n->page) {
		sb_str(b, " xmlns=\"");
		sb_str(b, page_names[n->page]);
		sb_str(b, ":\"");
	}
}

static void dump_close(struct sbuf *b, const struct eas_node *n, unsigned level, unsigned flags,
                       bool indent)
{
	if (indent && (flags & EAS_DUMP_INDENT))
		for (unsigned i = 0; i < level; i++)
			sb_str(b, "  ");
	sb_str(b, "</");
	const char *name = eas_node_name(n);
	sb_str(b, name != NULL ? name : "unknown");
	sb_str(b, ">\n");
}

int eas_node_dump(const struct eas_node *root, const struct eas_elide *elide, size_t n_elide,
                  unsigned flags, size_t max_len, char **xml_r)
{
	struct sbuf b = {.max = max_len};
	unsigned level = 0;

	*xml_r = NULL;
	if (root == NULL)
		return HK_ERR_INVAL;
	sb_add(&b, "", 0);
	/* Iterative pre-order walk: built trees have no depth bound. */
	const struct eas_node *n = root;
	while (n != NULL && !b.cut) {
		dump_open(&b, n, level, flags);
		if (n->first != NULL) {
			sb_str(&b, ">\n");
			level++;
			n = n->first;
			continue;
		}
		if (n->data == NULL && n->kind == EAS_CONTENT_NONE) {
			sb_str(&b, "/>\n");
		} else {
			const struct tag_info *t = tag_get(n->page, n->token);
			sb_str(&b, ">");
			if (elided(n, elide, n_elide)) {
				char tmp[48];
				snprintf(tmp, sizeof(tmp), "[%zu bytes elided]", n->len);
				sb_str(&b, tmp);
			} else if (n->kind == EAS_CONTENT_OPAQUE || t == NULL || t->opaque) {
				sb_base64(&b, n->data, n->len);
			} else {
				sb_escaped(&b, n->data, n->len);
			}
			dump_close(&b, n, level, flags, false);
		}
		while (n != root && n->next == NULL) {
			n = n->parent;
			level--;
			dump_close(&b, n, level, flags, true);
		}
		n = n == root ? NULL : n->next;
	}
	if (b.cut) {
		b.max += sizeof("[...]\n");
		b.cut = false;
		sb_str(&b, "[...]\n");
	}
	*xml_r = b.p;
	return 0;
}
