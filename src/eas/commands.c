/* ActiveSync command builders and response parsers (see commands.h).
 *
 * Builders check their input first and then build, so that a refused
 * request allocates nothing. Parsers walk the decoded tree with the
 * codec's queries; they look children up by name, never by position,
 * because the spec fixes no order in responses (SOGo sends Class before
 * SyncKey, Exchange the reverse). Arrays are sized by a counting pass
 * before they are filled, so every limit is checked before allocating.
 *
 * The parsers share their plumbing: OWNED_PARSER() makes the public
 * eas_<cmd>_parse() of an owned result (root check, a zeroed result for
 * the static parse_<cmd>(), freed again when that fails); repeated
 * elements become arrays through parse_list(), freed by free_list(); a
 * Status and its action come from child_status_action() with the
 * command's status table; ids and texts from child_id(), child_text() and
 * their owned copies. */
#include "eas/commands.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- errors ------------------------------------------------------------ */

/* Messages name the element path; composed ones live here until the next
 * call on this thread. */
static _Thread_local char errbuf[256];

static int fail(const char **error_r, int err, const char *what, const char *why)
{
	snprintf(errbuf, sizeof(errbuf), "%s: %s", what, why);
	if (error_r != NULL)
		*error_r = errbuf;
	return err;
}

/* "prefix/name" in buf, for the messages about a child of an element
 * whose path is known only at run time; returns buf. */
static const char *path_of(char *buf, size_t size, const char *prefix, const char *name)
{
	snprintf(buf, size, "%s/%s", prefix, name);
	return buf;
}

/* ---- memory (out of memory aborts, as everywhere in Halfkey) ----------- */

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n != 0 ? n : 1, size != 0 ? size : 1);
	if (p == NULL)
		abort();
	return p;
}

/* An owned copy of s, or NULL for NULL. */
static char *xstrdup_opt(const char *s)
{
	if (s == NULL)
		return NULL;
	size_t len = strlen(s);
	char *p = xcalloc(len + 1, 1);
	memcpy(p, s, len);
	return p;
}

static void free_strv(char ***v, size_t n)
{
	if (*v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free((*v)[i]);
	free(*v);
	*v = NULL;
}

/* Frees an array of n entries of size bytes each, after clear() has freed
 * what each entry owns (the counterpart of parse_list()). */
static void free_list(void *v, size_t n, size_t size, void (*clear)(void *entry))
{
	for (size_t i = 0; i < n; i++)
		clear((char *)v + i * size);
	free(v);
}

/* ---- status tables ----------------------------------------------------- */

struct status_map {
	int value;
	enum eas_action action;
};

/* Common values (>= 100) by status.h, the command's own by map, anything
 * else BAD_REQUEST. */
static enum eas_action map_status(int status, const struct status_map *map, size_t n)
{
	if (status >= 100)
		return eas_common_status_action(status);
	for (size_t i = 0; i < n; i++)
		if (map[i].value == status)
			return map[i].action;
	return EAS_ACT_BAD_REQUEST;
}

static const struct status_map provision_map[] = {
    {1, EAS_ACT_OK},
    {2, EAS_ACT_BAD_REQUEST},
    {3, EAS_ACT_RETRY_LATER},
};

static const struct status_map policy_map[] = {
    {1, EAS_ACT_OK},      {2, EAS_ACT_OK},        {3, EAS_ACT_BAD_REQUEST},
    {4, EAS_ACT_BLOCKED}, {5, EAS_ACT_PROVISION},
};

static const struct status_map foldersync_map[] = {
    {1, EAS_ACT_OK},           {6, EAS_ACT_RETRY_LATER},  {9, EAS_ACT_RESYNC},
    {10, EAS_ACT_BAD_REQUEST}, {11, EAS_ACT_RETRY_LATER}, {12, EAS_ACT_RETRY_LATER},
};

static const struct status_map sync_map[] = {
    {1, EAS_ACT_OK},           {3, EAS_ACT_RESYNC},       {4, EAS_ACT_BAD_REQUEST},
    {5, EAS_ACT_RETRY_LATER},  {6, EAS_ACT_REJECTED},     {7, EAS_ACT_REJECTED},
    {8, EAS_ACT_NOT_FOUND},    {9, EAS_ACT_QUOTA},        {12, EAS_ACT_FOLDER_SYNC},
    {13, EAS_ACT_BAD_REQUEST}, {14, EAS_ACT_BAD_REQUEST}, {15, EAS_ACT_BAD_REQUEST},
    {16, EAS_ACT_RETRY_LATER},
};

static const struct status_map ping_map[] = {
    {1, EAS_ACT_OK},          {2, EAS_ACT_OK},          {3, EAS_ACT_BAD_REQUEST},
    {4, EAS_ACT_BAD_REQUEST}, {5, EAS_ACT_BAD_REQUEST}, {6, EAS_ACT_BAD_REQUEST},
    {7, EAS_ACT_FOLDER_SYNC}, {8, EAS_ACT_RETRY_LATER},
};

static const struct status_map itemops_map[] = {
    {1, EAS_ACT_OK},          {2, EAS_ACT_BAD_REQUEST}, {3, EAS_ACT_RETRY_LATER},
    {4, EAS_ACT_REJECTED},    {5, EAS_ACT_REJECTED},    {6, EAS_ACT_NOT_FOUND},
    {7, EAS_ACT_RETRY_LATER}, {8, EAS_ACT_BAD_REQUEST}, {9, EAS_ACT_UNSUPPORTED},
    {10, EAS_ACT_REJECTED},   {11, EAS_ACT_REJECTED},   {12, EAS_ACT_RETRY_LATER},
    {14, EAS_ACT_REJECTED},   {15, EAS_ACT_NOT_FOUND},  {16, EAS_ACT_REJECTED},
    {17, EAS_ACT_REJECTED},   {18, EAS_ACT_REJECTED},
};

static const struct status_map compose_map[] = {
    {1, EAS_ACT_OK},
};

static const struct status_map move_map[] = {
    {1, EAS_ACT_NOT_FOUND}, {2, EAS_ACT_FOLDER_SYNC}, {3, EAS_ACT_OK},
    {4, EAS_ACT_REJECTED},  {5, EAS_ACT_RETRY_LATER}, {7, EAS_ACT_RETRY_LATER},
};

static const struct status_map settings_map[] = {
    {1, EAS_ACT_OK},          {2, EAS_ACT_BAD_REQUEST}, {3, EAS_ACT_BLOCKED},
    {4, EAS_ACT_RETRY_LATER}, {5, EAS_ACT_BAD_REQUEST}, {6, EAS_ACT_BAD_REQUEST},
    {7, EAS_ACT_BLOCKED},
};

static const struct status_map gie_map[] = {
    {1, EAS_ACT_OK},
    {2, EAS_ACT_FOLDER_SYNC},
    {3, EAS_ACT_RESYNC},
    {4, EAS_ACT_RESYNC},
};

/* Defines the public fn(status): map_status() over the command's map. */
#define STATUS_ACTION(fn, map)                                                                     \
	enum eas_action fn(int status)                                                             \
	{                                                                                          \
		return map_status(status, map, ARRAY_LEN(map));                                    \
	}

STATUS_ACTION(eas_provision_status_action, provision_map)
STATUS_ACTION(eas_policy_status_action, policy_map)
STATUS_ACTION(eas_foldersync_status_action, foldersync_map)
STATUS_ACTION(eas_sync_status_action, sync_map)
STATUS_ACTION(eas_ping_status_action, ping_map)
STATUS_ACTION(eas_itemops_status_action, itemops_map)
STATUS_ACTION(eas_move_status_action, move_map)
STATUS_ACTION(eas_settings_status_action, settings_map)
STATUS_ACTION(eas_gie_status_action, gie_map)

static enum eas_action compose_status_action(int status)
{
	return map_status(status, compose_map, ARRAY_LEN(compose_map));
}

/* ---- reading the tree -------------------------------------------------- */

static int expect_root(const struct eas_node *root, enum eas_page page, const char *name,
                       const char **error_r)
{
	if (root == NULL)
		return fail(error_r, HK_ERR_INVAL, name, "no document");
	if (!eas_node_is(root, page, name))
		return fail(error_r, HK_ERR_INVAL, name, "the root element is not this command");
	return 0;
}

/* An element that holds child elements (ApplicationData, Properties): text
 * there is malformed. */
static int expect_children(const struct eas_node *n, const char *what, const char **error_r)
{
	if (eas_node_content(n) != EAS_CONTENT_NONE)
		return fail(error_r, HK_ERR_INVAL, what, "text where child elements are expected");
	return 0;
}

/* The text of element n (path what): an element with children or content
 * with a NUL byte is malformed. */
static int leaf_text(const struct eas_node *n, const char *what, const char **text_r,
                     const char **error_r)
{
	const char *t = eas_node_text(n);
	if (t == NULL)
		return fail(error_r, HK_ERR_INVAL, what,
		            eas_node_first(n) != NULL ? "child elements where text is expected"
		                                      : "contains a NUL byte");
	*text_r = t;
	return 0;
}

/* leaf_text() at most max bytes long (0: unbounded). */
static int leaf_text_max(const struct eas_node *n, const char *what, size_t max,
                         const char **text_r, const char **error_r)
{
	const char *t;
	int ret = leaf_text(n, what, &t, error_r);
	if (ret < 0)
		return ret;
	if (max != 0 && strlen(t) > max)
		return fail(error_r, HK_ERR_TOO_LONG, what, "longer than allowed");
	*text_r = t;
	return 0;
}

/* The text of the first child page:name of parent, NULL when absent (view).
 * max bounds its length (0: unbounded); required makes absence an error. */
static int child_text(const struct eas_node *parent, enum eas_page page, const char *name,
                      const char *what, bool required, size_t max, const char **text_r,
                      const char **error_r)
{
	const struct eas_node *n = eas_node_child(parent, page, name);
	*text_r = NULL;
	if (n == NULL)
		return required ? fail(error_r, HK_ERR_INVAL, what, "missing") : 0;
	return leaf_text_max(n, what, max, text_r, error_r);
}

/* As child_text(), for an id: an empty required id is malformed, an empty
 * optional one is no id (NULL). */
static int child_id(const struct eas_node *parent, enum eas_page page, const char *name,
                    const char *what, bool required, const char **id_r, const char **error_r)
{
	int ret = child_text(parent, page, name, what, required, EAS_ID_MAX, id_r, error_r);
	if (ret < 0 || *id_r == NULL || (*id_r)[0] != '\0')
		return ret;
	if (required)
		return fail(error_r, HK_ERR_INVAL, what, "empty");
	*id_r = NULL;
	return 0;
}

/* An owned copy of child_text(). */
static int child_dup(const struct eas_node *parent, enum eas_page page, const char *name,
                     const char *what, bool required, size_t max, char **out_r,
                     const char **error_r)
{
	const char *t;
	int ret = child_text(parent, page, name, what, required, max, &t, error_r);
	if (ret < 0)
		return ret;
	*out_r = xstrdup_opt(t);
	return 0;
}

/* An owned copy of child_id(). */
static int child_id_dup(const struct eas_node *parent, enum eas_page page, const char *name,
                        const char *what, bool required, char **out_r, const char **error_r)
{
	const char *id;
	int ret = child_id(parent, page, name, what, required, &id, error_r);
	if (ret < 0)
		return ret;
	*out_r = xstrdup_opt(id);
	return 0;
}

/* child_text() copied into buf, a field of size bytes with the NUL (left
 * alone when the child is absent): a text too long for it is
 * HK_ERR_TOO_LONG. valid (if not NULL) vets the text first: a text it
 * refuses is HK_ERR_INVAL with the reason invalid. */
static int child_copy(const struct eas_node *parent, enum eas_page page, const char *name,
                      const char *what, bool (*valid)(const char *), const char *invalid, char *buf,
                      size_t size, const char **error_r)
{
	const char *t;
	int ret = child_text(parent, page, name, what, false, 0, &t, error_r);
	if (ret < 0 || t == NULL)
		return ret;
	if (valid != NULL && !valid(t))
		return fail(error_r, HK_ERR_INVAL, what, invalid);
	size_t len = strlen(t);
	if (len >= size)
		return fail(error_r, HK_ERR_TOO_LONG, what, "longer than allowed");
	memcpy(buf, t, len + 1);
	return 0;
}

/* A decimal number: digits only (no sign, no space), at most max. */
static int parse_number(const char *t, const char *what, unsigned long long max,
                        unsigned long long *v_r, const char **error_r)
{
	if (t[0] < '0' || t[0] > '9')
		return fail(error_r, HK_ERR_INVAL, what, t[0] == '\0' ? "empty" : "not a number");
	char *end = NULL;
	errno = 0;
	unsigned long long v = strtoull(t, &end, 10);
	if (end == NULL || *end != '\0')
		return fail(error_r, HK_ERR_INVAL, what, "not a number");
	if (errno == ERANGE || v > max)
		return fail(error_r, HK_ERR_INVAL, what, "number out of range");
	*v_r = v;
	return 0;
}

/* The number in the first child page:name; *present_r says whether there
 * was one (absence is an error only when required). */
static int child_number(const struct eas_node *parent, enum eas_page page, const char *name,
                        const char *what, bool required, unsigned long long max, bool *present_r,
                        unsigned long long *v_r, const char **error_r)
{
	const struct eas_node *n = eas_node_child(parent, page, name);
	*present_r = n != NULL;
	*v_r = 0;
	if (n == NULL)
		return required ? fail(error_r, HK_ERR_INVAL, what, "missing") : 0;
	const char *t;
	int ret = leaf_text(n, what, &t, error_r);
	if (ret < 0)
		return ret;
	return parse_number(t, what, max, v_r, error_r);
}

/* A uint32_t field (0 when absent). present_r may be NULL. */
static int child_u32(const struct eas_node *parent, enum eas_page page, const char *name,
                     const char *what, bool required, bool *present_r, uint32_t *v_r,
                     const char **error_r)
{
	bool present;
	unsigned long long v;
	int ret =
	    child_number(parent, page, name, what, required, UINT32_MAX, &present, &v, error_r);
	if (present_r != NULL)
		*present_r = present;
	if (ret < 0)
		return ret;
	*v_r = (uint32_t)v;
	return 0;
}

/* An int field that is -1 when absent. */
static int child_int_opt(const struct eas_node *parent, enum eas_page page, const char *name,
                         const char *what, int *v_r, const char **error_r)
{
	bool present;
	unsigned long long v;
	int ret = child_number(parent, page, name, what, false, INT_MAX, &present, &v, error_r);
	if (ret < 0)
		return ret;
	*v_r = present ? (int)v : -1;
	return 0;
}

/* A Status element: 0 when absent and optional. */
static int child_status(const struct eas_node *parent, enum eas_page page, const char *what,
                        bool required, int *status_r, const char **error_r)
{
	bool present;
	unsigned long long v;
	int ret =
	    child_number(parent, page, "Status", what, required, INT_MAX, &present, &v, error_r);
	if (ret < 0)
		return ret;
	*status_r = (int)v;
	return 0;
}

/* A required Status element and its action by action_of(), the command's
 * status table. */
static int child_status_action(const struct eas_node *parent, enum eas_page page, const char *what,
                               enum eas_action (*action_of)(int status), int *status_r,
                               enum eas_action *action_r, const char **error_r)
{
	int ret = child_status(parent, page, what, true, status_r, error_r);
	if (ret < 0)
		return ret;
	*action_r = action_of(*status_r);
	return 0;
}

/* An [MS-ASDTYPE] boolean: 0 or 1. present_r may be NULL. */
static int child_bool(const struct eas_node *parent, enum eas_page page, const char *name,
                      const char *what, bool *present_r, bool *v_r, const char **error_r)
{
	bool present;
	unsigned long long v;
	int ret = child_number(parent, page, name, what, false, ULLONG_MAX, &present, &v, error_r);
	if (present_r != NULL)
		*present_r = present;
	if (ret < 0)
		return ret;
	if (v > 1)
		return fail(error_r, HK_ERR_INVAL, what, "a boolean must be 0 or 1");
	*v_r = v == 1;
	return 0;
}

/* Opaque or text content of the first child page:name (view). */
static int child_bytes(const struct eas_node *parent, enum eas_page page, const char *name,
                       const char *what, const uint8_t **bytes_r, size_t *len_r,
                       const char **error_r)
{
	const struct eas_node *n = eas_node_child(parent, page, name);
	*bytes_r = NULL;
	*len_r = 0;
	if (n == NULL)
		return 0;
	const uint8_t *b = eas_node_bytes(n, len_r);
	if (b == NULL)
		return fail(error_r, HK_ERR_INVAL, what,
		            "child elements where content is expected");
	*bytes_r = b;
	return 0;
}

/* ---- lists of repeated elements ---------------------------------------- */

/* An element a list is made of: its name, and for lists of several kinds
 * (Add, Change, Delete...) the kind it stands for and its path for
 * messages. */
struct entry_name {
	const char *name;
	int kind;
	const char *path;
};

/* Parses element n, which is names entry in, into entry. */
typedef int parse_entry_fn(const struct eas_node *n, const struct entry_name *in, void *entry,
                           const char **error_r);

/* The entry of names[] that n is, or NULL (an element we skip). */
static const struct entry_name *entry_kind(const struct eas_node *n, enum eas_page page,
                                           const struct entry_name *names, size_t n_names)
{
	for (size_t i = 0; i < n_names; i++)
		if (eas_node_is(n, page, names[i].name))
			return &names[i];
	return NULL;
}

/* The element of the list after prev (the first with prev NULL) and its
 * entry of names[] in *in_r, in document order; NULL after the last. Lists
 * of one name follow the codec's sibling links; others test each child. */
static const struct eas_node *next_entry(const struct eas_node *parent, const struct eas_node *prev,
                                         enum eas_page page, const struct entry_name *names,
                                         size_t n_names, const struct entry_name **in_r)
{
	if (n_names == 1) {
		*in_r = names;
		return prev == NULL ? eas_node_child(parent, page, names[0].name)
		                    : eas_node_next_same(prev);
	}
	const struct eas_node *c = prev == NULL ? eas_node_first(parent) : eas_node_next(prev);
	for (; c != NULL; c = eas_node_next(c))
		if ((*in_r = entry_kind(c, page, names, n_names)) != NULL)
			return c;
	return NULL;
}

/* The number of elements of the list, counted up to max + 1. */
static size_t count_entries(const struct eas_node *parent, enum eas_page page,
                            const struct entry_name *names, size_t n_names, size_t max)
{
	const struct entry_name *in;
	size_t n = 0;
	for (const struct eas_node *c = next_entry(parent, NULL, page, names, n_names, &in);
	     c != NULL && n <= max; c = next_entry(parent, c, page, names, n_names, &in))
		n++;
	return n;
}

/* count_entries(), more than max of them being HK_ERR_TOO_LONG (what
 * names the list). */
static int count_list(const struct eas_node *parent, enum eas_page page,
                      const struct entry_name *names, size_t n_names, const char *what, size_t max,
                      size_t *n_r, const char **error_r)
{
	size_t n = count_entries(parent, page, names, n_names, max);
	if (n > max)
		return fail(error_r, HK_ERR_TOO_LONG, what, "more entries than allowed");
	*n_r = n;
	return 0;
}

/* Parses the children of parent that names[] lists (page:name) into a new
 * array of entries of size bytes each, by parse() in document order; *v_r
 * is NULL when there are none. The count is checked against max (see
 * count_list()) before anything is allocated. *v_r is set on failure too,
 * and *n_r counts the entries begun, the failing one included, so that the
 * caller's free clears a half-filled entry. */
static int parse_list(const struct eas_node *parent, enum eas_page page,
                      const struct entry_name *names, size_t n_names, const char *what, size_t max,
                      size_t size, parse_entry_fn *parse, void **v_r, size_t *n_r,
                      const char **error_r)
{
	size_t n;
	*v_r = NULL;
	*n_r = 0;
	int ret = count_list(parent, page, names, n_names, what, max, &n, error_r);
	if (ret < 0 || n == 0)
		return ret;
	char *v = xcalloc(n, size);
	*v_r = v;
	const struct entry_name *in;
	for (const struct eas_node *c = next_entry(parent, NULL, page, names, n_names, &in);
	     c != NULL; c = next_entry(parent, c, page, names, n_names, &in)) {
		ret = parse(c, in, v + (*n_r)++ * size, error_r);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* parse_list() of the children page:name of parent; what names them in
 * messages (and is their entry's path). */
static int parse_children(const struct eas_node *parent, enum eas_page page, const char *name,
                          const char *what, size_t max, size_t size, parse_entry_fn *parse,
                          void **v_r, size_t *n_r, const char **error_r)
{
	const struct entry_name one = {name, 0, what};
	return parse_list(parent, page, &one, 1, what, max, size, parse, v_r, n_r, error_r);
}

/* An owned copy of the text of n, at most max bytes, into the char *
 * entry: the entries of lists of strings. */
static int dup_entry(const struct eas_node *n, const char *what, size_t max, void *entry,
                     const char **error_r)
{
	const char *t;
	int ret = leaf_text_max(n, what, max, &t, error_r);
	if (ret < 0)
		return ret;
	*(char **)entry = xstrdup_opt(t);
	return 0;
}

static int parse_id_entry(const struct eas_node *n, const struct entry_name *in, void *entry,
                          const char **error_r)
{
	return dup_entry(n, in->path, EAS_ID_MAX, entry, error_r);
}

static int parse_text_entry(const struct eas_node *n, const struct entry_name *in, void *entry,
                            const char **error_r)
{
	return dup_entry(n, in->path, EAS_TEXT_MAX, entry, error_r);
}

/* ---- parsers of owned results ------------------------------------------ */

/* Defines the public parser fn of an owned result whose root element is
 * page:name: parse() fills a zeroed result; when it fails, free_fn() frees
 * what it filled and *res_r is left alone. */
#define OWNED_PARSER(fn, type, page, name, parse, free_fn)                                         \
	int fn(const struct eas_node *root, type **res_r, const char **error_r)                    \
	{                                                                                          \
		int ret = expect_root(root, page, name, error_r);                                  \
		if (ret < 0)                                                                       \
			return ret;                                                                \
		type *res = xcalloc(1, sizeof(*res));                                              \
		ret = parse(root, res, error_r);                                                   \
		if (ret < 0)                                                                       \
			free_fn(&res);                                                             \
		else                                                                               \
			*res_r = res;                                                              \
		return ret;                                                                        \
	}

/* ---- building ---------------------------------------------------------- */

static void add_number(struct eas_node *parent, enum eas_page page, const char *name,
                       unsigned long long v)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "%llu", v);
	eas_node_add_text(parent, page, name, buf);
}

/* A checked enum whose 0 means "no element" and whose wire value is one
 * less: enum eas_opt_bool, eas_filter, eas_conflict, eas_mime_support. */
static void add_opt_enum(struct eas_node *parent, enum eas_page page, const char *name, unsigned v)
{
	if (v != 0)
		add_number(parent, page, name, v - 1);
}

static void add_opt_text(struct eas_node *parent, enum eas_page page, const char *name,
                         const char *text)
{
	if (text != NULL)
		eas_node_add_text(parent, page, name, text);
}

static bool opt_bool_ok(enum eas_opt_bool b)
{
	return b == EAS_OPT_UNSET || b == EAS_OPT_FALSE || b == EAS_OPT_TRUE;
}

/* A required id or key of a request: present, not empty, at most max. */
static int check_id(const char *s, const char *what, size_t max, const char **error_r)
{
	if (s == NULL || s[0] == '\0')
		return fail(error_r, HK_ERR_INVAL, what, "missing");
	if (strlen(s) > max)
		return fail(error_r, HK_ERR_TOO_LONG, what, "longer than allowed");
	return 0;
}

/* An optional id: NULL is fine, "" is not. */
static int check_opt_id(const char *s, const char *what, const char **error_r)
{
	return s == NULL ? 0 : check_id(s, what, EAS_ID_MAX, error_r);
}

/* The n entries at v of a request: at least one, at most max. none and
 * too_many are the reasons of the two errors. */
static int check_list(const void *v, size_t n, size_t max, const char *what, const char *none,
                      const char *too_many, const char **error_r)
{
	if (n == 0 || v == NULL)
		return fail(error_r, HK_ERR_INVAL, what, none);
	if (n > max)
		return fail(error_r, HK_ERR_TOO_LONG, what, too_many);
	return 0;
}

static int check_body_pref(const struct eas_body_pref *bp, const char *what, const char **error_r)
{
	if (bp->type < EAS_BODY_PLAIN || bp->type > EAS_BODY_MIME)
		return fail(error_r, HK_ERR_INVAL, what, "Type must be 1..4");
	if (bp->preview > 255)
		return fail(error_r, HK_ERR_INVAL, what, "Preview must be 0..255");
	if (!opt_bool_ok(bp->all_or_none))
		return fail(error_r, HK_ERR_INVAL, what, "AllOrNone out of range");
	return 0;
}

static void add_body_pref(struct eas_node *parent, const struct eas_body_pref *bp)
{
	struct eas_node *n = eas_node_add(parent, EAS_PAGE_AIRSYNCBASE, "BodyPreference");
	add_number(n, EAS_PAGE_AIRSYNCBASE, "Type", (unsigned)bp->type);
	if (bp->truncation_size != 0)
		add_number(n, EAS_PAGE_AIRSYNCBASE, "TruncationSize", bp->truncation_size);
	add_opt_enum(n, EAS_PAGE_AIRSYNCBASE, "AllOrNone", (unsigned)bp->all_or_none);
	if (bp->preview != 0)
		add_number(n, EAS_PAGE_AIRSYNCBASE, "Preview", bp->preview);
}

static bool filter_ok(enum eas_filter f)
{
	return f >= EAS_FILTER_UNSET && f <= EAS_FILTER_INCOMPLETE;
}

static bool mime_ok(enum eas_mime_support m)
{
	return m >= EAS_MIME_UNSET && m <= EAS_MIME_ALWAYS;
}

/* AirSync:Options with its Class and FilterType, the part Sync and
 * GetItemEstimate share; returns the Options element. */
static struct eas_node *add_options(struct eas_node *coll, const char *class_name,
                                    enum eas_filter filter)
{
	const enum eas_page as = EAS_PAGE_AIRSYNC;
	struct eas_node *n = eas_node_add(coll, as, "Options");
	add_opt_text(n, as, "Class", class_name);
	add_opt_enum(n, as, "FilterType", (unsigned)filter);
	return n;
}

/* Settings:DeviceInformation/Set in the order of [MS-ASCMD] 6.39: strings,
 * but for the one boolean. */
static const struct device_field {
	const char *name;
	size_t offset; /* in struct eas_device_info */
	bool boolean;  /* an enum eas_opt_bool, not a const char * */
} device_fields[] = {
    {"Model", offsetof(struct eas_device_info, model), false},
    {"IMEI", offsetof(struct eas_device_info, imei), false},
    {"FriendlyName", offsetof(struct eas_device_info, friendly_name), false},
    {"OS", offsetof(struct eas_device_info, os), false},
    {"OSLanguage", offsetof(struct eas_device_info, os_language), false},
    {"PhoneNumber", offsetof(struct eas_device_info, phone_number), false},
    {"UserAgent", offsetof(struct eas_device_info, user_agent), false},
    {"EnableOutboundSMS", offsetof(struct eas_device_info, enable_outbound_sms), true},
    {"MobileOperator", offsetof(struct eas_device_info, mobile_operator), false},
};

static const void *device_field_at(const struct eas_device_info *dev, const struct device_field *f)
{
	return (const char *)dev + f->offset;
}

/* A DeviceInformation/Set to send: at least one field, each bounded. NULL
 * (none to send) passes. */
static int check_device_info(const struct eas_device_info *dev, const char **error_r)
{
	if (dev == NULL)
		return 0;
	bool any = dev->enable_outbound_sms != EAS_OPT_UNSET;
	for (size_t i = 0; i < ARRAY_LEN(device_fields); i++) {
		const struct device_field *f = &device_fields[i];
		if (f->boolean)
			continue;
		const char *text = *(const char *const *)device_field_at(dev, f);
		if (text == NULL)
			continue;
		if (strlen(text) > EAS_TEXT_MAX)
			return fail(error_r, HK_ERR_TOO_LONG, "DeviceInformation/Set",
			            "a field is longer than allowed");
		any = true;
	}
	if (!opt_bool_ok(dev->enable_outbound_sms))
		return fail(error_r, HK_ERR_INVAL, "DeviceInformation/Set/EnableOutboundSMS",
		            "out of range");
	if (!any)
		return fail(error_r, HK_ERR_INVAL, "DeviceInformation/Set", "no field set");
	return 0;
}

/* Settings:DeviceInformation/Set of a checked dev; nothing for NULL. */
static void add_device_info(struct eas_node *parent, const struct eas_device_info *dev)
{
	const enum eas_page st = EAS_PAGE_SETTINGS;
	if (dev == NULL)
		return;
	struct eas_node *set =
	    eas_node_add(eas_node_add(parent, st, "DeviceInformation"), st, "Set");
	for (size_t i = 0; i < ARRAY_LEN(device_fields); i++) {
		const struct device_field *f = &device_fields[i];
		const void *at = device_field_at(dev, f);
		if (f->boolean)
			add_opt_enum(set, st, f->name, (unsigned)*(const enum eas_opt_bool *)at);
		else
			add_opt_text(set, st, f->name, *(const char *const *)at);
	}
}

/* ---- Provision --------------------------------------------------------- */

/* A PolicyKey: 1..10 digits within unsignedInt. It travels in the
 * X-MS-PolicyKey header, so nothing else may pass. */
static bool policy_key_ok(const char *key)
{
	size_t len = strlen(key);
	if (len == 0 || len > 10)
		return false;
	for (size_t i = 0; i < len; i++)
		if (key[i] < '0' || key[i] > '9')
			return false;
	return strtoull(key, NULL, 10) <= UINT32_MAX;
}

/* Policies/Policy with its PolicyType under a Provision; returns the
 * Policy element. */
static struct eas_node *add_policy(struct eas_node *provision)
{
	const enum eas_page pv = EAS_PAGE_PROVISION;
	struct eas_node *policy =
	    eas_node_add(eas_node_add(provision, pv, "Policies"), pv, "Policy");
	eas_node_add_text(policy, pv, "PolicyType", EAS_POLICY_TYPE);
	return policy;
}

int eas_provision_build(const struct eas_device_info *dev, struct eas_node **root_r,
                        const char **error_r)
{
	int ret = check_device_info(dev, error_r);
	if (ret < 0)
		return ret;
	struct eas_node *root = eas_node_new(EAS_PAGE_PROVISION, "Provision");
	add_device_info(root, dev);
	add_policy(root);
	*root_r = root;
	return 0;
}

int eas_provision_build_ack(const char *policy_key, enum eas_policy_ack ack,
                            struct eas_node **root_r, const char **error_r)
{
	if (policy_key == NULL || !policy_key_ok(policy_key))
		return fail(error_r, HK_ERR_INVAL, "Provision/Policies/Policy/PolicyKey",
		            "must be 1..10 decimal digits");
	if (ack < EAS_POLICY_ACK_OK || ack > EAS_POLICY_ACK_THIRD_PARTY)
		return fail(error_r, HK_ERR_INVAL, "Provision/Policies/Policy/Status",
		            "must be 1..4");
	struct eas_node *root = eas_node_new(EAS_PAGE_PROVISION, "Provision");
	struct eas_node *policy = add_policy(root);
	eas_node_add_text(policy, EAS_PAGE_PROVISION, "PolicyKey", policy_key);
	add_number(policy, EAS_PAGE_PROVISION, "Status", (unsigned)ack);
	*root_r = root;
	return 0;
}

int eas_provision_build_wipe_ack(bool wiped, struct eas_node **root_r, const char **error_r)
{
	(void)error_r;
	struct eas_node *root = eas_node_new(EAS_PAGE_PROVISION, "Provision");
	add_number(eas_node_add(root, EAS_PAGE_PROVISION, "RemoteWipe"), EAS_PAGE_PROVISION,
	           "Status", wiped ? 1 : 2);
	*root_r = root;
	return 0;
}

int eas_provision_parse(const struct eas_node *root, struct eas_provision_result *res_r,
                        const char **error_r)
{
	const enum eas_page pv = EAS_PAGE_PROVISION;
	struct eas_provision_result res;
	memset(&res, 0, sizeof(res));
	int ret = expect_root(root, pv, "Provision", error_r);
	if (ret == 0)
		ret = child_status(root, pv, "Provision/Status", true, &res.status, error_r);
	if (ret == 0)
		ret = child_status(eas_node_child(root, EAS_PAGE_SETTINGS, "DeviceInformation"),
		                   EAS_PAGE_SETTINGS, "Provision/DeviceInformation/Status", false,
		                   &res.device_info_status, error_r);
	if (ret < 0)
		return ret;
	res.remote_wipe = eas_node_child(root, pv, "RemoteWipe") != NULL;
	/* A 16.1 element: matches only if the codec ever knows its token. */
	res.account_only_remote_wipe = eas_node_child(root, pv, "AccountOnlyRemoteWipe") != NULL;

	const struct eas_node *policy = eas_node_find(root, pv, "Policies", "Policy", NULL);
	if (policy != NULL) {
		res.has_policy = true;
		ret = child_copy(policy, pv, "PolicyType", "Provision/Policies/Policy/PolicyType",
		                 NULL, NULL, res.policy_type, sizeof(res.policy_type), error_r);
		if (ret == 0)
			/* required only when the Provision itself succeeded: a
			 * failing Provision/Status decides the outcome anyway */
			ret = child_status(policy, pv, "Provision/Policies/Policy/Status",
			                   res.status == EAS_PROVISION_OK, &res.policy_status,
			                   error_r);
		if (ret == 0)
			ret = child_copy(policy, pv, "PolicyKey",
			                 "Provision/Policies/Policy/PolicyKey", policy_key_ok,
			                 "not an unsignedInt of 1..10 digits", res.policy_key,
			                 sizeof(res.policy_key), error_r);
		if (ret < 0)
			return ret;
		res.provision_doc = eas_node_find(policy, pv, "Data", "EASProvisionDoc", NULL);
	}

	if (res.remote_wipe || res.account_only_remote_wipe)
		res.action = EAS_ACT_WIPE;
	else if (res.status != EAS_PROVISION_OK)
		res.action = eas_provision_status_action(res.status);
	else if (res.has_policy)
		res.action = eas_policy_status_action(res.policy_status);
	else
		res.action = EAS_ACT_OK;
	*res_r = res;
	return 0;
}

/* ---- FolderSync -------------------------------------------------------- */

bool eas_folder_is_mail(int type)
{
	const char *class_name = eas_folder_class(type);
	return class_name != NULL && strcmp(class_name, "Email") == 0;
}

const char *eas_folder_class(int type)
{
	switch (type) {
	case EAS_FOLDER_INBOX:
	case EAS_FOLDER_DRAFTS:
	case EAS_FOLDER_DELETED:
	case EAS_FOLDER_SENT:
	case EAS_FOLDER_OUTBOX:
	case EAS_FOLDER_USER_MAIL: return "Email";
	case EAS_FOLDER_CALENDAR:
	case EAS_FOLDER_USER_CALENDAR: return "Calendar";
	case EAS_FOLDER_CONTACTS:
	case EAS_FOLDER_USER_CONTACTS: return "Contacts";
	case EAS_FOLDER_TASKS:
	case EAS_FOLDER_USER_TASKS: return "Tasks";
	case EAS_FOLDER_NOTES:
	case EAS_FOLDER_USER_NOTES: return "Notes";
	default: return NULL;
	}
}

int eas_foldersync_build(const char *sync_key, struct eas_node **root_r, const char **error_r)
{
	int ret = check_id(sync_key, "FolderSync/SyncKey", EAS_ID_MAX, error_r);
	if (ret < 0)
		return ret;
	struct eas_node *root = eas_node_new(EAS_PAGE_FOLDERHIERARCHY, "FolderSync");
	eas_node_add_text(root, EAS_PAGE_FOLDERHIERARCHY, "SyncKey", sync_key);
	*root_r = root;
	return 0;
}

static void folder_change_clear(void *entry)
{
	struct eas_folder_change *c = entry;
	free(c->server_id);
	free(c->parent_id);
	free(c->display_name);
}

void eas_foldersync_result_free(struct eas_foldersync_result **res)
{
	if (res == NULL || *res == NULL)
		return;
	struct eas_foldersync_result *r = *res;
	free_list(r->changes, r->n_changes, sizeof(*r->changes), folder_change_clear);
	free(r->sync_key);
	free(r);
	*res = NULL;
}

/* The entries of FolderSync/Changes (Count and elements of later versions
 * are skipped). */
static const struct entry_name change_names[] = {
    {"Add", EAS_CHANGE_ADD, "FolderSync/Changes/Add"},
    {"Update", EAS_CHANGE_UPDATE, "FolderSync/Changes/Update"},
    {"Delete", EAS_CHANGE_DELETE, "FolderSync/Changes/Delete"},
};

static int parse_folder_change(const struct eas_node *n, const struct entry_name *in, void *entry,
                               const char **error_r)
{
	const enum eas_page fh = EAS_PAGE_FOLDERHIERARCHY;
	struct eas_folder_change *c = entry;
	char what[64];
	c->kind = (enum eas_change_kind)in->kind;
	int ret = child_id_dup(n, fh, "ServerId", path_of(what, sizeof(what), in->path, "ServerId"),
	                       true, &c->server_id, error_r);
	if (ret < 0 || c->kind == EAS_CHANGE_DELETE)
		return ret;
	ret = child_id_dup(n, fh, "ParentId", path_of(what, sizeof(what), in->path, "ParentId"),
	                   true, &c->parent_id, error_r);
	if (ret == 0)
		ret = child_dup(n, fh, "DisplayName",
		                path_of(what, sizeof(what), in->path, "DisplayName"), true,
		                EAS_TEXT_MAX, &c->display_name, error_r);
	if (ret < 0)
		return ret;
	bool present;
	unsigned long long type;
	ret = child_number(n, fh, "Type", path_of(what, sizeof(what), in->path, "Type"), true,
	                   INT_MAX, &present, &type, error_r);
	if (ret < 0)
		return ret;
	c->type = (int)type;
	return 0;
}

static int parse_foldersync(const struct eas_node *root, struct eas_foldersync_result *res,
                            const char **error_r)
{
	const enum eas_page fh = EAS_PAGE_FOLDERHIERARCHY;
	int ret = child_status_action(root, fh, "FolderSync/Status", eas_foldersync_status_action,
	                              &res->status, &res->action, error_r);
	if (ret == 0)
		ret = child_id_dup(root, fh, "SyncKey", "FolderSync/SyncKey",
		                   res->status == EAS_FOLDERSYNC_OK, &res->sync_key, error_r);
	if (ret < 0)
		return ret;
	const struct eas_node *changes = eas_node_child(root, fh, "Changes");
	if (changes == NULL)
		return 0;
	ret = child_u32(changes, fh, "Count", "FolderSync/Changes/Count", false, &res->has_count,
	                &res->count, error_r);
	if (ret < 0)
		return ret;
	void *v;
	ret = parse_list(changes, fh, change_names, ARRAY_LEN(change_names), "FolderSync/Changes",
	                 EAS_FOLDERSYNC_MAX_CHANGES, sizeof(*res->changes), parse_folder_change, &v,
	                 &res->n_changes, error_r);
	res->changes = v;
	return ret;
}

OWNED_PARSER(eas_foldersync_parse, struct eas_foldersync_result, EAS_PAGE_FOLDERHIERARCHY,
             "FolderSync", parse_foldersync, eas_foldersync_result_free)

/* ---- Sync: request ----------------------------------------------------- */

static int check_sync_options(const struct eas_sync_options *o, const char **error_r)
{
	const char *what = "Sync/Collections/Collection/Options";
	if (o->class_name != NULL && o->class_name[0] == '\0')
		return fail(error_r, HK_ERR_INVAL, what, "Class is empty");
	if (!filter_ok(o->filter))
		return fail(error_r, HK_ERR_INVAL, what, "FilterType out of range");
	if (!mime_ok(o->mime_support))
		return fail(error_r, HK_ERR_INVAL, what, "MIMESupport out of range");
	if (o->conflict < EAS_CONFLICT_UNSET || o->conflict > EAS_CONFLICT_SERVER_WINS)
		return fail(error_r, HK_ERR_INVAL, what, "Conflict out of range");
	if (o->n_body_prefs > EAS_MAX_BODY_PREFS || (o->n_body_prefs != 0 && o->body_prefs == NULL))
		return fail(error_r, HK_ERR_INVAL, what, "bad BodyPreference list");
	for (size_t i = 0; i < o->n_body_prefs; i++) {
		int ret =
		    check_body_pref(&o->body_prefs[i],
		                    "Sync/Collections/Collection/Options/BodyPreference", error_r);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int check_email_change(const struct eas_email_change *ch, const char **error_r)
{
	const char *what = "Sync/Collections/Collection/Commands/Change/ApplicationData";
	if (!opt_bool_ok(ch->read))
		return fail(error_r, HK_ERR_INVAL, what, "Read out of range");
	if (ch->flag.op < EAS_FLAG_UNCHANGED || ch->flag.op > EAS_FLAG_COMPLETE)
		return fail(error_r, HK_ERR_INVAL, what, "Flag operation out of range");
	if (ch->set_categories) {
		if (ch->n_categories > EAS_MAX_ENTRIES)
			return fail(error_r, HK_ERR_TOO_LONG, what, "too many Categories");
		if (ch->n_categories != 0 && ch->categories == NULL)
			return fail(error_r, HK_ERR_INVAL, what, "bad Categories list");
		for (size_t i = 0; i < ch->n_categories; i++)
			if (ch->categories[i] == NULL)
				return fail(error_r, HK_ERR_INVAL, what, "a Category is NULL");
	}
	if (ch->read == EAS_OPT_UNSET && ch->flag.op == EAS_FLAG_UNCHANGED && !ch->set_categories)
		return fail(error_r, HK_ERR_INVAL, what, "changes nothing");
	return 0;
}

static int check_sync_collection(const struct eas_sync_collection_req *c, size_t *n_items,
                                 const char **error_r)
{
	const char *what = "Sync/Collections/Collection";
	int ret = check_id(c->sync_key, "Sync/Collections/Collection/SyncKey", EAS_ID_MAX, error_r);
	if (ret == 0)
		ret = check_id(c->collection_id, "Sync/Collections/Collection/CollectionId",
		               EAS_ID_MAX, error_r);
	if (ret < 0)
		return ret;
	if (!opt_bool_ok(c->deletes_as_moves) || !opt_bool_ok(c->get_changes) ||
	    !opt_bool_ok(c->conversation_mode))
		return fail(error_r, HK_ERR_INVAL, what, "a boolean is out of range");
	if (c->window_size > 512)
		return fail(error_r, HK_ERR_INVAL, "Sync/Collections/Collection/WindowSize",
		            "must be 1..512");
	if (c->n_options > 2 || (c->n_options != 0 && c->options == NULL))
		return fail(error_r, HK_ERR_INVAL, "Sync/Collections/Collection/Options",
		            "at most 2 Options");
	for (size_t i = 0; i < c->n_options; i++) {
		ret = check_sync_options(&c->options[i], error_r);
		if (ret < 0)
			return ret;
	}
	if (c->n_commands != 0 && c->commands == NULL)
		return fail(error_r, HK_ERR_INVAL, "Sync/Collections/Collection/Commands",
		            "bad command list");
	if (c->n_commands > EAS_SYNC_MAX_ITEMS - *n_items)
		return fail(error_r, HK_ERR_TOO_LONG, "Sync/Collections/Collection/Commands",
		            "more commands than allowed");
	*n_items += c->n_commands;
	for (size_t i = 0; i < c->n_commands; i++) {
		const struct eas_sync_command *cmd = &c->commands[i];
		ret = check_id(cmd->server_id, "Sync/Collections/Collection/Commands/ServerId",
		               EAS_ID_MAX, error_r);
		if (ret < 0)
			return ret;
		switch (cmd->kind) {
		case EAS_SYNC_CMD_CHANGE:
			if (cmd->change == NULL)
				return fail(error_r, HK_ERR_INVAL,
				            "Sync/Collections/Collection/Commands/Change",
				            "no ApplicationData");
			ret = check_email_change(cmd->change, error_r);
			if (ret < 0)
				return ret;
			break;
		case EAS_SYNC_CMD_DELETE:
		case EAS_SYNC_CMD_FETCH: break;
		default:
			return fail(error_r, HK_ERR_INVAL, "Sync/Collections/Collection/Commands",
			            "unknown command kind");
		}
	}
	return 0;
}

static void add_sync_options(struct eas_node *coll, const struct eas_sync_options *o)
{
	const enum eas_page as = EAS_PAGE_AIRSYNC;
	struct eas_node *n = add_options(coll, o->class_name, o->filter);
	for (size_t i = 0; i < o->n_body_prefs; i++)
		add_body_pref(n, &o->body_prefs[i]);
	add_opt_enum(n, as, "Conflict", (unsigned)o->conflict);
	add_opt_enum(n, as, "MIMESupport", (unsigned)o->mime_support);
}

/* Email:Flag as in [MS-ASEMAIL] 4.2: Status first, then the dates. */
static void add_flag(struct eas_node *appdata, const struct eas_flag_change *f)
{
	const enum eas_page em = EAS_PAGE_EMAIL, tk = EAS_PAGE_TASKS;
	struct eas_node *flag = eas_node_add(appdata, em, "Flag");
	if (f->op == EAS_FLAG_CLEAR)
		return;
	add_number(flag, em, "FlagStatus", f->op == EAS_FLAG_ACTIVE ? 2 : 1);
	if (f->flag_type != NULL)
		eas_node_add_text(flag, em, "FlagType", f->flag_type);
	else if (f->op == EAS_FLAG_ACTIVE)
		eas_node_add_text(flag, em, "FlagType", "Flag for follow up");
	add_opt_text(flag, em, "CompleteTime", f->complete_time);
	add_opt_text(flag, tk, "StartDate", f->start_date);
	add_opt_text(flag, tk, "UTCStartDate", f->utc_start_date);
	add_opt_text(flag, tk, "DueDate", f->due_date);
	add_opt_text(flag, tk, "UTCDueDate", f->utc_due_date);
	add_opt_text(flag, tk, "DateCompleted", f->date_completed);
}

static void add_sync_command(struct eas_node *cmds, const struct eas_sync_command *cmd)
{
	const enum eas_page as = EAS_PAGE_AIRSYNC;
	static const char *const names[] = {"Change", "Delete", "Fetch"};
	struct eas_node *n = eas_node_add(cmds, as, names[cmd->kind]);
	eas_node_add_text(n, as, "ServerId", cmd->server_id);
	if (cmd->kind != EAS_SYNC_CMD_CHANGE)
		return;
	const struct eas_email_change *ch = cmd->change;
	struct eas_node *ad = eas_node_add(n, as, "ApplicationData");
	add_opt_enum(ad, EAS_PAGE_EMAIL, "Read", (unsigned)ch->read);
	if (ch->flag.op != EAS_FLAG_UNCHANGED)
		add_flag(ad, &ch->flag);
	if (ch->set_categories) {
		struct eas_node *cats = eas_node_add(ad, EAS_PAGE_EMAIL, "Categories");
		for (size_t i = 0; i < ch->n_categories; i++)
			eas_node_add_text(cats, EAS_PAGE_EMAIL, "Category", ch->categories[i]);
	}
}

int eas_sync_build(const struct eas_sync_req *req, struct eas_node **root_r, const char **error_r)
{
	const enum eas_page as = EAS_PAGE_AIRSYNC;
	int ret =
	    check_list(req != NULL ? req->collections : NULL, req != NULL ? req->n_collections : 0,
	               EAS_MAX_COLLECTIONS, "Sync/Collections", "no collection",
	               "more collections than allowed", error_r);
	if (ret < 0)
		return ret;
	if (req->wait > 59)
		return fail(error_r, HK_ERR_INVAL, "Sync/Wait", "must be 1..59 minutes");
	if (req->wait != 0 && req->heartbeat_interval != 0)
		return fail(error_r, HK_ERR_INVAL, "Sync/Wait",
		            "Wait and HeartbeatInterval are exclusive");
	if (req->window_size > 512)
		return fail(error_r, HK_ERR_INVAL, "Sync/WindowSize", "must be 1..512");
	size_t n_items = 0;
	for (size_t i = 0; i < req->n_collections; i++) {
		ret = check_sync_collection(&req->collections[i], &n_items, error_r);
		if (ret < 0)
			return ret;
	}

	struct eas_node *root = eas_node_new(as, "Sync");
	struct eas_node *colls = eas_node_add(root, as, "Collections");
	for (size_t i = 0; i < req->n_collections; i++) {
		const struct eas_sync_collection_req *c = &req->collections[i];
		/* [MS-ASCMD] 2.2.3.29.2: a strict order */
		struct eas_node *coll = eas_node_add(colls, as, "Collection");
		eas_node_add_text(coll, as, "SyncKey", c->sync_key);
		eas_node_add_text(coll, as, "CollectionId", c->collection_id);
		add_opt_enum(coll, as, "DeletesAsMoves", (unsigned)c->deletes_as_moves);
		add_opt_enum(coll, as, "GetChanges", (unsigned)c->get_changes);
		if (c->window_size != 0)
			add_number(coll, as, "WindowSize", c->window_size);
		add_opt_enum(coll, as, "ConversationMode", (unsigned)c->conversation_mode);
		for (size_t j = 0; j < c->n_options; j++)
			add_sync_options(coll, &c->options[j]);
		if (c->n_commands != 0) {
			struct eas_node *cmds = eas_node_add(coll, as, "Commands");
			for (size_t j = 0; j < c->n_commands; j++)
				add_sync_command(cmds, &c->commands[j]);
		}
	}
	if (req->wait != 0)
		add_number(root, as, "Wait", req->wait);
	if (req->heartbeat_interval != 0)
		add_number(root, as, "HeartbeatInterval", req->heartbeat_interval);
	if (req->window_size != 0)
		add_number(root, as, "WindowSize", req->window_size);
	if (req->partial)
		eas_node_add(root, as, "Partial");
	*root_r = root;
	return 0;
}

/* ---- Sync: response ---------------------------------------------------- */

static const struct entry_name command_names[] = {
    {"Add", EAS_SYNC_ITEM_ADD, "Sync/Collections/Collection/Commands/Add"},
    {"Change", EAS_SYNC_ITEM_CHANGE, "Sync/Collections/Collection/Commands/Change"},
    {"Delete", EAS_SYNC_ITEM_DELETE, "Sync/Collections/Collection/Commands/Delete"},
    {"SoftDelete", EAS_SYNC_ITEM_SOFT_DELETE, "Sync/Collections/Collection/Commands/SoftDelete"},
};

static const struct entry_name response_names[] = {
    {"Add", EAS_SYNC_ITEM_ADD, "Sync/Collections/Collection/Responses/Add"},
    {"Change", EAS_SYNC_ITEM_CHANGE, "Sync/Collections/Collection/Responses/Change"},
    {"Delete", EAS_SYNC_ITEM_DELETE, "Sync/Collections/Collection/Responses/Delete"},
    {"Fetch", EAS_SYNC_ITEM_FETCH, "Sync/Collections/Collection/Responses/Fetch"},
};

/* A Commands entry (response false: its action stays EAS_ACT_OK, the zero
 * of a new entry) or a Responses entry. */
static int parse_sync_item(const struct eas_node *n, const struct entry_name *in, bool response,
                           struct eas_sync_item *item, const char **error_r)
{
	const enum eas_page as = EAS_PAGE_AIRSYNC;
	item->kind = (enum eas_sync_item_kind)in->kind;
	bool add_response = response && in->kind == EAS_SYNC_ITEM_ADD;
	/* the messages name the element: "<path>/ServerId" */
	char what[160];
	int ret = child_id(n, as, "ServerId", path_of(what, sizeof(what), in->path, "ServerId"),
	                   !add_response, &item->server_id, error_r);
	if (ret == 0 && add_response)
		ret = child_id(n, as, "ClientId", path_of(what, sizeof(what), in->path, "ClientId"),
		               true, &item->client_id, error_r);
	if (ret == 0)
		ret = child_text(n, as, "Class", path_of(what, sizeof(what), in->path, "Class"),
		                 false, EAS_ID_MAX, &item->class_name, error_r);
	if (ret == 0 && response)
		ret = child_status_action(n, as, path_of(what, sizeof(what), in->path, "Status"),
		                          eas_sync_status_action, &item->status, &item->action,
		                          error_r);
	if (ret < 0)
		return ret;
	item->app_data = eas_node_child(n, as, "ApplicationData");
	if (item->app_data == NULL)
		return 0;
	return expect_children(item->app_data,
	                       path_of(what, sizeof(what), in->path, "ApplicationData"), error_r);
}

static int parse_sync_command(const struct eas_node *n, const struct entry_name *in, void *entry,
                              const char **error_r)
{
	return parse_sync_item(n, in, false, entry, error_r);
}

static int parse_sync_response(const struct eas_node *n, const struct entry_name *in, void *entry,
                               const char **error_r)
{
	return parse_sync_item(n, in, true, entry, error_r);
}

static int parse_sync_collection(const struct eas_node *n, const struct entry_name *in, void *entry,
                                 const char **error_r)
{
	const enum eas_page as = EAS_PAGE_AIRSYNC;
	struct eas_sync_collection *c = entry;
	(void)in;
	int ret = child_id(n, as, "CollectionId", "Sync/Collections/Collection/CollectionId", true,
	                   &c->collection_id, error_r);
	if (ret == 0)
		ret = child_status_action(n, as, "Sync/Collections/Collection/Status",
		                          eas_sync_status_action, &c->status, &c->action, error_r);
	if (ret == 0)
		ret = child_id(n, as, "SyncKey", "Sync/Collections/Collection/SyncKey",
		               c->status == EAS_SYNC_OK, &c->sync_key, error_r);
	if (ret == 0)
		ret = child_text(n, as, "Class", "Sync/Collections/Collection/Class", false,
		                 EAS_ID_MAX, &c->class_name, error_r);
	if (ret < 0)
		return ret;
	c->more_available = eas_node_child(n, as, "MoreAvailable") != NULL;
	/* eas_sync_parse() has checked the number of items of all collections */
	void *v;
	ret = parse_list(eas_node_child(n, as, "Commands"), as, command_names,
	                 ARRAY_LEN(command_names), "Sync/Collections/Collection/Commands",
	                 EAS_SYNC_MAX_ITEMS, sizeof(*c->commands), parse_sync_command, &v,
	                 &c->n_commands, error_r);
	c->commands = v;
	if (ret < 0)
		return ret;
	ret = parse_list(eas_node_child(n, as, "Responses"), as, response_names,
	                 ARRAY_LEN(response_names), "Sync/Collections/Collection/Responses",
	                 EAS_SYNC_MAX_ITEMS, sizeof(*c->responses), parse_sync_response, &v,
	                 &c->n_responses, error_r);
	c->responses = v;
	return ret;
}

static void sync_collection_clear(void *entry)
{
	struct eas_sync_collection *c = entry;
	free(c->commands);
	free(c->responses);
}

void eas_sync_result_free(struct eas_sync_result **res)
{
	if (res == NULL || *res == NULL)
		return;
	struct eas_sync_result *r = *res;
	free_list(r->collections, r->n_collections, sizeof(*r->collections), sync_collection_clear);
	free(r);
	*res = NULL;
}

static int parse_sync(const struct eas_node *root, struct eas_sync_result *res,
                      const char **error_r)
{
	const enum eas_page as = EAS_PAGE_AIRSYNC;
	bool has_status;
	unsigned long long status;
	int ret = child_number(root, as, "Status", "Sync/Status", false, INT_MAX, &has_status,
	                       &status, error_r);
	if (ret < 0)
		return ret;
	res->status = (int)status;
	/* absent is the normal case; a present 0 is no status we know */
	res->action = has_status ? eas_sync_status_action(res->status) : EAS_ACT_OK;
	ret = child_u32(root, as, "Limit", "Sync/Limit", false, &res->has_limit, &res->limit,
	                error_r);
	if (ret < 0)
		return ret;

	/* Limits first: collections, then every item of every collection. */
	const struct entry_name coll = {"Collection", 0, "Sync/Collections"};
	const struct eas_node *colls = eas_node_child(root, as, "Collections");
	size_t n, n_items = 0;
	ret = count_list(colls, as, &coll, 1, "Sync/Collections", EAS_MAX_COLLECTIONS, &n, error_r);
	if (ret < 0)
		return ret;
	for (const struct eas_node *c = eas_node_child(colls, as, "Collection"); c != NULL;
	     c = eas_node_next_same(c)) {
		n_items += count_entries(eas_node_child(c, as, "Commands"), as, command_names,
		                         ARRAY_LEN(command_names), EAS_SYNC_MAX_ITEMS);
		n_items += count_entries(eas_node_child(c, as, "Responses"), as, response_names,
		                         ARRAY_LEN(response_names), EAS_SYNC_MAX_ITEMS);
		if (n_items > EAS_SYNC_MAX_ITEMS)
			return fail(error_r, HK_ERR_TOO_LONG, "Sync/Collections/Collection",
			            "more items (Commands and Responses together) than allowed");
	}
	void *v;
	ret = parse_list(colls, as, &coll, 1, "Sync/Collections", EAS_MAX_COLLECTIONS,
	                 sizeof(*res->collections), parse_sync_collection, &v, &res->n_collections,
	                 error_r);
	res->collections = v;
	return ret;
}

OWNED_PARSER(eas_sync_parse, struct eas_sync_result, EAS_PAGE_AIRSYNC, "Sync", parse_sync,
             eas_sync_result_free)

/* ---- Email ApplicationData --------------------------------------------- */

void eas_email_free(struct eas_email **email)
{
	if (email == NULL || *email == NULL)
		return;
	free((*email)->categories);
	free((*email)->attachments);
	free(*email);
	*email = NULL;
}

static int parse_email_body(const struct eas_node *body, struct eas_email_body *b,
                            const char **error_r)
{
	const enum eas_page ab = EAS_PAGE_AIRSYNCBASE;
	b->present = true;
	int type;
	int ret = child_int_opt(body, ab, "Type", "Body/Type", &type, error_r);
	if (ret < 0)
		return ret;
	b->type = type < 0 ? 0 : type;
	unsigned long long size;
	ret = child_number(body, ab, "EstimatedDataSize", "Body/EstimatedDataSize", false,
	                   ULLONG_MAX, &b->has_estimated_size, &size, error_r);
	if (ret < 0)
		return ret;
	b->estimated_size = size;
	ret = child_bool(body, ab, "Truncated", "Body/Truncated", NULL, &b->truncated, error_r);
	if (ret == 0)
		ret = child_bytes(body, ab, "Data", "Body/Data", &b->data, &b->data_len, error_r);
	if (ret == 0)
		ret =
		    child_text(body, ab, "Preview", "Body/Preview", false, 0, &b->preview, error_r);
	return ret;
}

static int parse_attachment(const struct eas_node *n, const struct entry_name *in, void *entry,
                            const char **error_r)
{
	const enum eas_page ab = EAS_PAGE_AIRSYNCBASE;
	struct eas_attachment *a = entry;
	(void)in;
	int ret = child_text(n, ab, "DisplayName", "Attachment/DisplayName", false, 0,
	                     &a->display_name, error_r);
	if (ret == 0)
		ret = child_text(n, ab, "FileReference", "Attachment/FileReference", false,
		                 EAS_TEXT_MAX, &a->file_reference, error_r);
	if (ret == 0)
		ret = child_int_opt(n, ab, "Method", "Attachment/Method", &a->method, error_r);
	if (ret == 0) {
		unsigned long long size;
		ret = child_number(n, ab, "EstimatedDataSize", "Attachment/EstimatedDataSize",
		                   false, ULLONG_MAX, &a->has_estimated_size, &size, error_r);
		a->estimated_size = size;
	}
	if (ret == 0)
		ret = child_text(n, ab, "ContentId", "Attachment/ContentId", false, 0,
		                 &a->content_id, error_r);
	if (ret == 0)
		ret = child_text(n, ab, "ContentLocation", "Attachment/ContentLocation", false, 0,
		                 &a->content_location, error_r);
	if (ret == 0)
		ret = child_bool(n, ab, "IsInline", "Attachment/IsInline", NULL, &a->is_inline,
		                 error_r);
	return ret;
}

static int parse_category(const struct eas_node *n, const struct entry_name *in, void *entry,
                          const char **error_r)
{
	(void)in;
	return leaf_text(n, "Email:Categories/Category", entry, error_r);
}

/* Text fields of an email: element name, offset of the const char * field
 * in struct eas_email. */
struct email_text {
	const char *name;
	size_t offset;
};

static const struct email_text email_texts[] = {
    {"To", offsetof(struct eas_email, to)},
    {"Cc", offsetof(struct eas_email, cc)},
    {"From", offsetof(struct eas_email, from)},
    {"Reply-To", offsetof(struct eas_email, reply_to)},
    {"Subject", offsetof(struct eas_email, subject)},
    {"DisplayTo", offsetof(struct eas_email, display_to)},
    {"ThreadTopic", offsetof(struct eas_email, thread_topic)},
    {"DateReceived", offsetof(struct eas_email, date_received)},
    {"MessageClass", offsetof(struct eas_email, message_class)},
    {"ContentClass", offsetof(struct eas_email, content_class)},
};

static int parse_email_fields(const struct eas_node *ad, struct eas_email *e, const char **error_r)
{
	const enum eas_page em = EAS_PAGE_EMAIL, em2 = EAS_PAGE_EMAIL2, ab = EAS_PAGE_AIRSYNCBASE;
	int ret;
	for (size_t i = 0; i < ARRAY_LEN(email_texts); i++) {
		char what[64];
		snprintf(what, sizeof(what), "Email:%s", email_texts[i].name);
		const char **field = (const char **)((char *)e + email_texts[i].offset);
		ret = child_text(ad, em, email_texts[i].name, what, false, 0, field, error_r);
		if (ret < 0)
			return ret;
	}
	ret = child_int_opt(ad, em, "Importance", "Email:Importance", &e->importance, error_r);
	if (ret < 0)
		return ret;
	bool present, v;
	ret = child_bool(ad, em, "Read", "Email:Read", &present, &v, error_r);
	if (ret < 0)
		return ret;
	e->read = present ? v : -1;
	unsigned long long cpid;
	ret = child_number(ad, em, "InternetCPID", "Email:InternetCPID", false, LONG_MAX, &present,
	                   &cpid, error_r);
	if (ret < 0)
		return ret;
	e->internet_cpid = present ? (long)cpid : -1;
	ret = child_int_opt(ad, ab, "NativeBodyType", "AirSyncBase:NativeBodyType",
	                    &e->native_body_type, error_r);
	if (ret == 0)
		ret = child_int_opt(ad, em2, "LastVerbExecuted", "Email2:LastVerbExecuted",
		                    &e->last_verb_executed, error_r);
	if (ret == 0)
		ret = child_bytes(ad, em2, "ConversationId", "Email2:ConversationId",
		                  &e->conversation_id, &e->conversation_id_len, error_r);
	if (ret == 0)
		ret = child_bytes(ad, em2, "ConversationIndex", "Email2:ConversationIndex",
		                  &e->conversation_index, &e->conversation_index_len, error_r);
	if (ret < 0)
		return ret;

	const struct eas_node *flag = eas_node_child(ad, em, "Flag");
	e->has_flag = flag != NULL;
	e->flag_status = -1;
	if (flag != NULL) {
		ret = child_int_opt(flag, em, "FlagStatus", "Email:Flag/FlagStatus",
		                    &e->flag_status, error_r);
		if (ret == 0)
			ret = child_text(flag, em, "FlagType", "Email:Flag/FlagType", false, 0,
			                 &e->flag_type, error_r);
		if (ret < 0)
			return ret;
	}
	const struct eas_node *body = eas_node_child(ad, ab, "Body");
	return body != NULL ? parse_email_body(body, &e->body, error_r) : 0;
}

static int parse_email(const struct eas_node *ad, struct eas_email *e, const char **error_r)
{
	const enum eas_page em = EAS_PAGE_EMAIL, ab = EAS_PAGE_AIRSYNCBASE;
	int ret = parse_email_fields(ad, e, error_r);
	if (ret < 0)
		return ret;
	const struct eas_node *cats = eas_node_child(ad, em, "Categories");
	e->has_categories = cats != NULL;
	void *v;
	ret = parse_children(cats, em, "Category", "Email:Categories", EAS_MAX_ENTRIES,
	                     sizeof(*e->categories), parse_category, &v, &e->n_categories, error_r);
	e->categories = v;
	if (ret < 0)
		return ret;
	ret = parse_children(eas_node_child(ad, ab, "Attachments"), ab, "Attachment",
	                     "AirSyncBase:Attachments", EAS_MAX_ENTRIES, sizeof(*e->attachments),
	                     parse_attachment, &v, &e->n_attachments, error_r);
	e->attachments = v;
	return ret;
}

int eas_email_parse(const struct eas_node *app_data, struct eas_email **email_r,
                    const char **error_r)
{
	if (app_data == NULL)
		return fail(error_r, HK_ERR_INVAL, "ApplicationData", "no element");
	int ret = expect_children(app_data, "ApplicationData", error_r);
	if (ret < 0)
		return ret;
	struct eas_email *e = xcalloc(1, sizeof(*e));
	ret = parse_email(app_data, e, error_r);
	if (ret < 0)
		eas_email_free(&e);
	else
		*email_r = e;
	return ret;
}

/* ---- Ping -------------------------------------------------------------- */

int eas_ping_build(uint32_t heartbeat, const struct eas_ping_folder *folders, size_t n,
                   struct eas_node **root_r, const char **error_r)
{
	const enum eas_page pg = EAS_PAGE_PING;
	if (heartbeat == 0 && n == 0)
		return fail(error_r, HK_ERR_INVAL, "Ping",
		            "no HeartbeatInterval and no Folders: send an empty body instead");
	if (n > EAS_PING_MAX_FOLDERS)
		return fail(error_r, HK_ERR_TOO_LONG, "Ping/Folders", "more folders than allowed");
	if (n != 0 && folders == NULL)
		return fail(error_r, HK_ERR_INVAL, "Ping/Folders", "bad folder list");
	for (size_t i = 0; i < n; i++) {
		int ret = check_id(folders[i].id, "Ping/Folders/Folder/Id", EAS_ID_MAX, error_r);
		if (ret == 0)
			ret = check_id(folders[i].class_name, "Ping/Folders/Folder/Class",
			               EAS_ID_MAX, error_r);
		if (ret < 0)
			return ret;
	}
	struct eas_node *root = eas_node_new(pg, "Ping");
	if (heartbeat != 0)
		add_number(root, pg, "HeartbeatInterval", heartbeat);
	if (n != 0) {
		struct eas_node *fl = eas_node_add(root, pg, "Folders");
		for (size_t i = 0; i < n; i++) {
			struct eas_node *f = eas_node_add(fl, pg, "Folder");
			eas_node_add_text(f, pg, "Id", folders[i].id);
			eas_node_add_text(f, pg, "Class", folders[i].class_name);
		}
	}
	*root_r = root;
	return 0;
}

void eas_ping_result_free(struct eas_ping_result **res)
{
	if (res == NULL || *res == NULL)
		return;
	free_strv(&(*res)->folders, (*res)->n_folders);
	free(*res);
	*res = NULL;
}

static int parse_ping(const struct eas_node *root, struct eas_ping_result *res,
                      const char **error_r)
{
	const enum eas_page pg = EAS_PAGE_PING;
	int ret = child_status_action(root, pg, "Ping/Status", eas_ping_status_action, &res->status,
	                              &res->action, error_r);
	if (ret == 0)
		ret = child_u32(root, pg, "HeartbeatInterval", "Ping/HeartbeatInterval", false,
		                NULL, &res->heartbeat_interval, error_r);
	if (ret == 0)
		ret = child_u32(root, pg, "MaxFolders", "Ping/MaxFolders", false, NULL,
		                &res->max_folders, error_r);
	if (ret < 0)
		return ret;
	void *v;
	ret = parse_children(eas_node_child(root, pg, "Folders"), pg, "Folder",
	                     "Ping/Folders/Folder", EAS_PING_MAX_FOLDERS, sizeof(*res->folders),
	                     parse_id_entry, &v, &res->n_folders, error_r);
	res->folders = v;
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < res->n_folders; i++)
		if (res->folders[i][0] == '\0')
			return fail(error_r, HK_ERR_INVAL, "Ping/Folders/Folder", "empty");
	return 0;
}

OWNED_PARSER(eas_ping_parse, struct eas_ping_result, EAS_PAGE_PING, "Ping", parse_ping,
             eas_ping_result_free)

/* ---- ItemOperations ---------------------------------------------------- */

static int check_fetch(const struct eas_fetch_req *f, const char **error_r)
{
	const char *what = "ItemOperations/Fetch";
	int ret = check_opt_id(f->collection_id, "ItemOperations/Fetch/CollectionId", error_r);
	if (ret == 0)
		ret = check_opt_id(f->server_id, "ItemOperations/Fetch/ServerId", error_r);
	if (ret == 0 && f->file_reference != NULL)
		ret = check_id(f->file_reference, "ItemOperations/Fetch/FileReference",
		               EAS_TEXT_MAX, error_r);
	if (ret == 0 && f->long_id != NULL)
		ret = check_id(f->long_id, "ItemOperations/Fetch/LongId", EAS_TEXT_MAX, error_r);
	if (ret < 0)
		return ret;
	if ((f->collection_id != NULL) != (f->server_id != NULL))
		return fail(error_r, HK_ERR_INVAL, what, "CollectionId and ServerId go together");
	int ids = (f->server_id != NULL) + (f->file_reference != NULL) + (f->long_id != NULL);
	if (ids != 1)
		return fail(error_r, HK_ERR_INVAL, what,
		            "exactly one of ServerId, FileReference, LongId");
	if (f->range != NULL && (f->range[0] == '\0' || strlen(f->range) > 64))
		return fail(error_r, HK_ERR_INVAL, "ItemOperations/Fetch/Options/Range",
		            "bad range");
	if (!mime_ok(f->mime_support))
		return fail(error_r, HK_ERR_INVAL, "ItemOperations/Fetch/Options/MIMESupport",
		            "out of range");
	if (f->body_pref != NULL)
		return check_body_pref(f->body_pref, "ItemOperations/Fetch/Options/BodyPreference",
		                       error_r);
	return 0;
}

int eas_itemops_build_fetch(const struct eas_fetch_req *fetches, size_t n, struct eas_node **root_r,
                            const char **error_r)
{
	const enum eas_page io = EAS_PAGE_ITEMOPERATIONS;
	int ret = check_list(fetches, n, EAS_MAX_ENTRIES, "ItemOperations/Fetch", "no fetch",
	                     "more fetches than allowed", error_r);
	for (size_t i = 0; ret == 0 && i < n; i++)
		ret = check_fetch(&fetches[i], error_r);
	if (ret < 0)
		return ret;
	struct eas_node *root = eas_node_new(io, "ItemOperations");
	for (size_t i = 0; i < n; i++) {
		const struct eas_fetch_req *f = &fetches[i];
		struct eas_node *fe = eas_node_add(root, io, "Fetch");
		eas_node_add_text(fe, io, "Store", "Mailbox");
		add_opt_text(fe, EAS_PAGE_AIRSYNC, "CollectionId", f->collection_id);
		add_opt_text(fe, EAS_PAGE_AIRSYNC, "ServerId", f->server_id);
		add_opt_text(fe, EAS_PAGE_SEARCH, "LongId", f->long_id);
		add_opt_text(fe, EAS_PAGE_AIRSYNCBASE, "FileReference", f->file_reference);
		if (f->range == NULL && f->mime_support == EAS_MIME_UNSET && f->body_pref == NULL)
			continue;
		struct eas_node *opt = eas_node_add(fe, io, "Options");
		add_opt_text(opt, io, "Range", f->range);
		add_opt_enum(opt, EAS_PAGE_AIRSYNC, "MIMESupport", (unsigned)f->mime_support);
		if (f->body_pref != NULL)
			add_body_pref(opt, f->body_pref);
	}
	*root_r = root;
	return 0;
}

void eas_itemops_result_free(struct eas_itemops_result **res)
{
	if (res == NULL || *res == NULL)
		return;
	free((*res)->fetches);
	free(*res);
	*res = NULL;
}

static int parse_fetch_properties(const struct eas_node *props, struct eas_fetch_result *f,
                                  const char **error_r)
{
	const enum eas_page io = EAS_PAGE_ITEMOPERATIONS, ab = EAS_PAGE_AIRSYNCBASE;
	int ret = expect_children(props, "ItemOperations/Response/Fetch/Properties", error_r);
	if (ret < 0)
		return ret;
	f->properties = props;
	ret = child_text(props, ab, "ContentType",
	                 "ItemOperations/Response/Fetch/Properties/ContentType", false, 0,
	                 &f->content_type, error_r);
	if (ret == 0)
		ret =
		    child_bytes(props, io, "Data", "ItemOperations/Response/Fetch/Properties/Data",
		                &f->data, &f->data_len, error_r);
	if (ret < 0)
		return ret;
	f->data_base64 = f->data != NULL;
	if (f->data == NULL) {
		ret = child_bytes(eas_node_child(props, ab, "Body"), ab, "Data",
		                  "ItemOperations/Response/Fetch/Properties/Body/Data", &f->data,
		                  &f->data_len, error_r);
		if (ret < 0)
			return ret;
	}
	bool present;
	unsigned long long v;
	ret = child_number(props, io, "Part", "ItemOperations/Response/Fetch/Properties/Part",
	                   false, LONG_MAX, &present, &v, error_r);
	if (ret < 0)
		return ret;
	f->part = present ? (long)v : -1;
	ret = child_text(props, io, "Range", "ItemOperations/Response/Fetch/Properties/Range",
	                 false, 64, &f->range, error_r);
	if (ret < 0)
		return ret;
	ret = child_number(props, io, "Total", "ItemOperations/Response/Fetch/Properties/Total",
	                   false, LLONG_MAX, &present, &v, error_r);
	if (ret < 0)
		return ret;
	f->total = present ? (long long)v : -1;
	return 0;
}

static int parse_fetch(const struct eas_node *n, const struct entry_name *in, void *entry,
                       const char **error_r)
{
	const enum eas_page io = EAS_PAGE_ITEMOPERATIONS;
	struct eas_fetch_result *f = entry;
	(void)in;
	f->part = -1;
	f->total = -1;
	int ret = child_status_action(n, io, "ItemOperations/Response/Fetch/Status",
	                              eas_itemops_status_action, &f->status, &f->action, error_r);
	if (ret == 0)
		ret = child_id(n, EAS_PAGE_AIRSYNC, "CollectionId",
		               "ItemOperations/Response/Fetch/CollectionId", false,
		               &f->collection_id, error_r);
	if (ret == 0)
		ret = child_id(n, EAS_PAGE_AIRSYNC, "ServerId",
		               "ItemOperations/Response/Fetch/ServerId", false, &f->server_id,
		               error_r);
	if (ret == 0)
		ret = child_text(n, EAS_PAGE_AIRSYNCBASE, "FileReference",
		                 "ItemOperations/Response/Fetch/FileReference", false, EAS_TEXT_MAX,
		                 &f->file_reference, error_r);
	if (ret == 0)
		ret =
		    child_text(n, EAS_PAGE_SEARCH, "LongId", "ItemOperations/Response/Fetch/LongId",
		               false, EAS_TEXT_MAX, &f->long_id, error_r);
	if (ret < 0)
		return ret;
	const struct eas_node *props = eas_node_child(n, io, "Properties");
	return props != NULL ? parse_fetch_properties(props, f, error_r) : 0;
}

static int parse_itemops(const struct eas_node *root, struct eas_itemops_result *res,
                         const char **error_r)
{
	const enum eas_page io = EAS_PAGE_ITEMOPERATIONS;
	int ret = child_status_action(root, io, "ItemOperations/Status", eas_itemops_status_action,
	                              &res->status, &res->action, error_r);
	if (ret < 0)
		return ret;
	void *v;
	ret = parse_children(eas_node_child(root, io, "Response"), io, "Fetch",
	                     "ItemOperations/Response/Fetch", EAS_MAX_ENTRIES,
	                     sizeof(*res->fetches), parse_fetch, &v, &res->n_fetches, error_r);
	res->fetches = v;
	return ret;
}

OWNED_PARSER(eas_itemops_parse, struct eas_itemops_result, EAS_PAGE_ITEMOPERATIONS,
             "ItemOperations", parse_itemops, eas_itemops_result_free)

/* ---- SendMail, SmartReply, SmartForward -------------------------------- */

static int check_compose(const char *client_id, const void *mime, size_t mime_len, const char *cmd,
                         const char **error_r)
{
	char what[40];
	int ret = check_id(client_id, path_of(what, sizeof(what), cmd, "ClientId"),
	                   EAS_CLIENT_ID_MAX, error_r);
	if (ret < 0)
		return ret;
	if (mime == NULL || mime_len == 0)
		return fail(error_r, HK_ERR_INVAL, path_of(what, sizeof(what), cmd, "MIME"),
		            "no message");
	return 0;
}

/* The checked request cmd, in the order of [MS-ASCMD] 2.2.1.17, .19, .20:
 * ClientId, Source (not in SendMail: src NULL), SaveInSentItems,
 * ReplaceMime, MIME. */
static struct eas_node *build_compose(const char *cmd, const char *client_id,
                                      const struct eas_smart_source *src, bool save_in_sent,
                                      bool replace_mime, const void *mime, size_t mime_len)
{
	const enum eas_page cm = EAS_PAGE_COMPOSEMAIL;
	struct eas_node *root = eas_node_new(cm, cmd);
	eas_node_add_text(root, cm, "ClientId", client_id);
	if (src != NULL) {
		struct eas_node *s = eas_node_add(root, cm, "Source");
		add_opt_text(s, cm, "FolderId", src->folder_id);
		add_opt_text(s, cm, "ItemId", src->item_id);
		add_opt_text(s, cm, "LongId", src->long_id);
		add_opt_text(s, cm, "InstanceId", src->instance_id);
	}
	if (save_in_sent)
		eas_node_add(root, cm, "SaveInSentItems");
	if (replace_mime)
		eas_node_add(root, cm, "ReplaceMime");
	eas_node_add_opaque(root, cm, "MIME", mime, mime_len);
	return root;
}

int eas_sendmail_build(const char *client_id, bool save_in_sent, const void *mime, size_t mime_len,
                       struct eas_node **root_r, const char **error_r)
{
	int ret = check_compose(client_id, mime, mime_len, "SendMail", error_r);
	if (ret < 0)
		return ret;
	*root_r = build_compose("SendMail", client_id, NULL, save_in_sent, false, mime, mime_len);
	return 0;
}

int eas_smart_build(bool forward, const char *client_id, const struct eas_smart_source *src,
                    bool save_in_sent, bool replace_mime, const void *mime, size_t mime_len,
                    struct eas_node **root_r, const char **error_r)
{
	const char *cmd = forward ? "SmartForward" : "SmartReply";
	int ret = check_compose(client_id, mime, mime_len, cmd, error_r);
	if (ret < 0)
		return ret;
	if (src == NULL)
		return fail(error_r, HK_ERR_INVAL, cmd, "no Source");
	ret = check_opt_id(src->folder_id, "Source/FolderId", error_r);
	if (ret == 0)
		ret = check_opt_id(src->item_id, "Source/ItemId", error_r);
	if (ret == 0)
		ret = check_opt_id(src->instance_id, "Source/InstanceId", error_r);
	if (ret == 0 && src->long_id != NULL)
		ret = check_id(src->long_id, "Source/LongId", EAS_TEXT_MAX, error_r);
	if (ret < 0)
		return ret;
	if ((src->item_id != NULL) == (src->long_id != NULL))
		return fail(error_r, HK_ERR_INVAL, "Source", "exactly one of ItemId and LongId");
	if (src->folder_id != NULL && src->item_id == NULL)
		return fail(error_r, HK_ERR_INVAL, "Source", "FolderId needs ItemId");
	*root_r = build_compose(cmd, client_id, src, save_in_sent, replace_mime, mime, mime_len);
	return 0;
}

int eas_compose_parse(const struct eas_node *root, struct eas_compose_result *res_r,
                      const char **error_r)
{
	const enum eas_page cm = EAS_PAGE_COMPOSEMAIL;
	if (root == NULL)
		return fail(error_r, HK_ERR_INVAL, "SendMail", "no document");
	if (!eas_node_is(root, cm, "SendMail") && !eas_node_is(root, cm, "SmartReply") &&
	    !eas_node_is(root, cm, "SmartForward"))
		return fail(error_r, HK_ERR_INVAL, "SendMail",
		            "the root element is not SendMail, SmartReply or SmartForward");
	struct eas_compose_result res = {0};
	char what[32];
	int ret = child_status_action(root, cm,
	                              path_of(what, sizeof(what), eas_node_name(root), "Status"),
	                              compose_status_action, &res.status, &res.action, error_r);
	if (ret < 0)
		return ret;
	*res_r = res;
	return 0;
}

/* ---- MoveItems --------------------------------------------------------- */

int eas_moveitems_build(const struct eas_move_req *moves, size_t n, struct eas_node **root_r,
                        const char **error_r)
{
	const enum eas_page mv = EAS_PAGE_MOVE;
	int ret = check_list(moves, n, EAS_MAX_ENTRIES, "MoveItems/Move", "no move",
	                     "more moves than allowed", error_r);
	for (size_t i = 0; ret == 0 && i < n; i++) {
		ret = check_id(moves[i].src_msg_id, "MoveItems/Move/SrcMsgId", EAS_ID_MAX, error_r);
		if (ret == 0)
			ret = check_id(moves[i].src_fld_id, "MoveItems/Move/SrcFldId", EAS_ID_MAX,
			               error_r);
		if (ret == 0)
			ret = check_id(moves[i].dst_fld_id, "MoveItems/Move/DstFldId", EAS_ID_MAX,
			               error_r);
	}
	if (ret < 0)
		return ret;
	struct eas_node *root = eas_node_new(mv, "MoveItems");
	for (size_t i = 0; i < n; i++) {
		struct eas_node *m = eas_node_add(root, mv, "Move");
		eas_node_add_text(m, mv, "SrcMsgId", moves[i].src_msg_id);
		eas_node_add_text(m, mv, "SrcFldId", moves[i].src_fld_id);
		eas_node_add_text(m, mv, "DstFldId", moves[i].dst_fld_id);
	}
	*root_r = root;
	return 0;
}

static void move_response_clear(void *entry)
{
	struct eas_move_response *m = entry;
	free(m->src_msg_id);
	free(m->dst_msg_id);
}

void eas_moveitems_result_free(struct eas_moveitems_result **res)
{
	if (res == NULL || *res == NULL)
		return;
	struct eas_moveitems_result *r = *res;
	free_list(r->responses, r->n_responses, sizeof(*r->responses), move_response_clear);
	free(r);
	*res = NULL;
}

static int parse_move_response(const struct eas_node *n, const struct entry_name *in, void *entry,
                               const char **error_r)
{
	const enum eas_page mv = EAS_PAGE_MOVE;
	struct eas_move_response *m = entry;
	(void)in;
	int ret = child_id_dup(n, mv, "SrcMsgId", "MoveItems/Response/SrcMsgId", true,
	                       &m->src_msg_id, error_r);
	if (ret == 0)
		ret = child_status_action(n, mv, "MoveItems/Response/Status",
		                          eas_move_status_action, &m->status, &m->action, error_r);
	if (ret == 0)
		ret = child_id_dup(n, mv, "DstMsgId", "MoveItems/Response/DstMsgId", false,
		                   &m->dst_msg_id, error_r);
	return ret;
}

static int parse_moveitems(const struct eas_node *root, struct eas_moveitems_result *res,
                           const char **error_r)
{
	void *v;
	int ret = parse_children(root, EAS_PAGE_MOVE, "Response", "MoveItems/Response",
	                         EAS_MAX_ENTRIES, sizeof(*res->responses), parse_move_response, &v,
	                         &res->n_responses, error_r);
	res->responses = v;
	return ret;
}

OWNED_PARSER(eas_moveitems_parse, struct eas_moveitems_result, EAS_PAGE_MOVE, "MoveItems",
             parse_moveitems, eas_moveitems_result_free)

/* ---- Settings ---------------------------------------------------------- */

int eas_settings_build(const struct eas_device_info *dev, bool user_info, struct eas_node **root_r,
                       const char **error_r)
{
	const enum eas_page st = EAS_PAGE_SETTINGS;
	if (dev == NULL && !user_info)
		return fail(error_r, HK_ERR_INVAL, "Settings", "nothing to set or get");
	int ret = check_device_info(dev, error_r);
	if (ret < 0)
		return ret;
	/* [MS-ASCMD] 2.2.3.168.2: DeviceInformation comes before UserInformation */
	struct eas_node *root = eas_node_new(st, "Settings");
	add_device_info(root, dev);
	if (user_info)
		eas_node_add(eas_node_add(root, st, "UserInformation"), st, "Get");
	*root_r = root;
	return 0;
}

static void account_clear(void *entry)
{
	struct eas_settings_account *a = entry;
	free(a->account_id);
	free(a->account_name);
	free(a->user_display_name);
	free(a->primary_smtp);
	free_strv(&a->smtp_addresses, a->n_smtp_addresses);
}

void eas_settings_result_free(struct eas_settings_result **res)
{
	if (res == NULL || *res == NULL)
		return;
	struct eas_settings_result *r = *res;
	free_strv(&r->smtp_addresses, r->n_smtp_addresses);
	free_list(r->accounts, r->n_accounts, sizeof(*r->accounts), account_clear);
	free(r);
	*res = NULL;
}

static int parse_account(const struct eas_node *n, const struct entry_name *in, void *entry,
                         const char **error_r)
{
	const enum eas_page st = EAS_PAGE_SETTINGS;
	struct eas_settings_account *a = entry;
	(void)in;
	int ret =
	    child_dup(n, st, "AccountId", "Settings/UserInformation/Get/Accounts/Account/AccountId",
	              false, EAS_ID_MAX, &a->account_id, error_r);
	if (ret == 0)
		ret = child_dup(n, st, "AccountName",
		                "Settings/UserInformation/Get/Accounts/Account/AccountName", false,
		                EAS_TEXT_MAX, &a->account_name, error_r);
	if (ret == 0)
		ret = child_dup(n, st, "UserDisplayName",
		                "Settings/UserInformation/Get/Accounts/Account/UserDisplayName",
		                false, EAS_TEXT_MAX, &a->user_display_name, error_r);
	if (ret == 0)
		ret = child_bool(n, st, "SendDisabled",
		                 "Settings/UserInformation/Get/Accounts/Account/SendDisabled", NULL,
		                 &a->send_disabled, error_r);
	const struct eas_node *addrs = eas_node_child(n, st, "EmailAddresses");
	if (ret == 0)
		ret = child_dup(addrs, st, "PrimarySmtpAddress",
		                "Settings/UserInformation/Get/Accounts/Account/EmailAddresses/"
		                "PrimarySmtpAddress",
		                false, EAS_TEXT_MAX, &a->primary_smtp, error_r);
	if (ret < 0)
		return ret;
	void *v;
	ret = parse_children(
	    addrs, st, "SmtpAddress",
	    "Settings/UserInformation/Get/Accounts/Account/EmailAddresses/SMTPAddress",
	    EAS_MAX_ENTRIES, sizeof(*a->smtp_addresses), parse_text_entry, &v, &a->n_smtp_addresses,
	    error_r);
	a->smtp_addresses = v;
	return ret;
}

static int parse_settings(const struct eas_node *root, struct eas_settings_result *res,
                          const char **error_r)
{
	const enum eas_page st = EAS_PAGE_SETTINGS;
	int ret = child_status_action(root, st, "Settings/Status", eas_settings_status_action,
	                              &res->status, &res->action, error_r);
	if (ret == 0)
		ret = child_status(eas_node_child(root, st, "DeviceInformation"), st,
		                   "Settings/DeviceInformation/Status", false,
		                   &res->device_info_status, error_r);
	if (ret < 0)
		return ret;
	const struct eas_node *ui = eas_node_child(root, st, "UserInformation");
	res->has_user_info = ui != NULL;
	ret = child_status(ui, st, "Settings/UserInformation/Status", false, &res->user_info_status,
	                   error_r);
	if (ret < 0)
		return ret;
	const struct eas_node *get = eas_node_child(ui, st, "Get");
	void *v;
	ret = parse_children(eas_node_child(get, st, "EmailAddresses"), st, "SmtpAddress",
	                     "Settings/UserInformation/Get/EmailAddresses/SMTPAddress",
	                     EAS_MAX_ENTRIES, sizeof(*res->smtp_addresses), parse_text_entry, &v,
	                     &res->n_smtp_addresses, error_r);
	res->smtp_addresses = v;
	if (ret < 0)
		return ret;
	ret = parse_children(eas_node_child(get, st, "Accounts"), st, "Account",
	                     "Settings/UserInformation/Get/Accounts", EAS_MAX_ENTRIES,
	                     sizeof(*res->accounts), parse_account, &v, &res->n_accounts, error_r);
	res->accounts = v;
	return ret;
}

OWNED_PARSER(eas_settings_parse, struct eas_settings_result, EAS_PAGE_SETTINGS, "Settings",
             parse_settings, eas_settings_result_free)

/* ---- GetItemEstimate --------------------------------------------------- */

int eas_gie_build(const struct eas_gie_collection_req *colls, size_t n, struct eas_node **root_r,
                  const char **error_r)
{
	const enum eas_page gi = EAS_PAGE_GETITEMESTIMATE, as = EAS_PAGE_AIRSYNC;
	int ret = check_list(colls, n, EAS_MAX_COLLECTIONS, "GetItemEstimate/Collections",
	                     "no collection", "more collections than allowed", error_r);
	for (size_t i = 0; ret == 0 && i < n; i++) {
		const struct eas_gie_collection_req *c = &colls[i];
		ret = check_id(c->sync_key, "GetItemEstimate/Collections/Collection/SyncKey",
		               EAS_ID_MAX, error_r);
		if (ret == 0)
			ret = check_id(c->collection_id,
			               "GetItemEstimate/Collections/Collection/CollectionId",
			               EAS_ID_MAX, error_r);
		if (ret == 0 && (!filter_ok(c->filter) || !opt_bool_ok(c->conversation_mode) ||
		                 (c->class_name != NULL && c->class_name[0] == '\0')))
			ret = fail(error_r, HK_ERR_INVAL, "GetItemEstimate/Collections/Collection",
			           "an option is out of range");
	}
	if (ret < 0)
		return ret;
	struct eas_node *root = eas_node_new(gi, "GetItemEstimate");
	struct eas_node *cs = eas_node_add(root, gi, "Collections");
	for (size_t i = 0; i < n; i++) {
		const struct eas_gie_collection_req *c = &colls[i];
		struct eas_node *coll = eas_node_add(cs, gi, "Collection");
		eas_node_add_text(coll, as, "SyncKey", c->sync_key);
		eas_node_add_text(coll, gi, "CollectionId", c->collection_id);
		add_opt_enum(coll, as, "ConversationMode", (unsigned)c->conversation_mode);
		if (c->class_name != NULL || c->filter != EAS_FILTER_UNSET)
			add_options(coll, c->class_name, c->filter);
	}
	*root_r = root;
	return 0;
}

static void gie_estimate_clear(void *entry)
{
	struct eas_gie_estimate *e = entry;
	free(e->collection_id);
	free(e->class_name);
}

void eas_gie_result_free(struct eas_gie_result **res)
{
	if (res == NULL || *res == NULL)
		return;
	struct eas_gie_result *r = *res;
	free_list(r->estimates, r->n_estimates, sizeof(*r->estimates), gie_estimate_clear);
	free(r);
	*res = NULL;
}

static int parse_gie_response(const struct eas_node *n, const struct entry_name *in, void *entry,
                              const char **error_r)
{
	const enum eas_page gi = EAS_PAGE_GETITEMESTIMATE;
	struct eas_gie_estimate *e = entry;
	(void)in;
	int ret = child_status_action(n, gi, "GetItemEstimate/Response/Status",
	                              eas_gie_status_action, &e->status, &e->action, error_r);
	const struct eas_node *c = eas_node_child(n, gi, "Collection");
	if (ret < 0 || c == NULL)
		return ret;
	ret =
	    child_id_dup(c, gi, "CollectionId", "GetItemEstimate/Response/Collection/CollectionId",
	                 true, &e->collection_id, error_r);
	if (ret == 0)
		ret = child_dup(c, gi, "Class", "GetItemEstimate/Response/Collection/Class", false,
		                EAS_ID_MAX, &e->class_name, error_r);
	if (ret == 0)
		ret = child_u32(c, gi, "Estimate", "GetItemEstimate/Response/Collection/Estimate",
		                e->status == EAS_GIE_OK, &e->has_estimate, &e->estimate, error_r);
	return ret;
}

static int parse_gie(const struct eas_node *root, struct eas_gie_result *res, const char **error_r)
{
	void *v;
	int ret =
	    parse_children(root, EAS_PAGE_GETITEMESTIMATE, "Response", "GetItemEstimate/Response",
	                   EAS_MAX_COLLECTIONS, sizeof(*res->estimates), parse_gie_response, &v,
	                   &res->n_estimates, error_r);
	res->estimates = v;
	return ret;
}

OWNED_PARSER(eas_gie_parse, struct eas_gie_result, EAS_PAGE_GETITEMESTIMATE, "GetItemEstimate",
             parse_gie, eas_gie_result_free)
