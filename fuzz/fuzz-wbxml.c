/* libFuzzer harness: the ActiveSync WBXML decoder, as a server response
 * reaches it. A document that decodes is dumped, encoded, decoded again and
 * encoded again: the second decode must succeed and give the same elements
 * and content bytes, and the encoding must be a fixed point. */
#include "eas/wbxml.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Same elements, order and content bytes. (The content kind may change:
 * text of an element [MS-ASWBXML] types as opaque is encoded as OPAQUE.) */
static int same_tree(const struct eas_node *a, const struct eas_node *b)
{
	while (a != NULL && b != NULL) {
		size_t la, lb;
		const uint8_t *ba = eas_node_bytes(a, &la), *bb = eas_node_bytes(b, &lb);
		if (eas_node_page(a) != eas_node_page(b) ||
		    strcmp(eas_node_name(a), eas_node_name(b)) != 0 || la != lb ||
		    (ba == NULL) != (bb == NULL) || (la > 0 && memcmp(ba, bb, la) != 0))
			return 0;
		if (!same_tree(eas_node_first(a), eas_node_first(b)))
			return 0;
		a = eas_node_next(a);
		b = eas_node_next(b);
	}
	return a == NULL && b == NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct eas_elide elide[] = {{EAS_PAGE_AIRSYNCBASE, "Data"},
						 {EAS_PAGE_COMPOSEMAIL, "MIME"}};
	struct eas_node *first = NULL, *second = NULL, *third = NULL;
	uint8_t *enc1 = NULL, *enc2 = NULL;
	size_t len1 = 0, len2 = 0;
	const char *error = NULL;
	char *xml = NULL;

	int ret = eas_wbxml_decode(data, size, 0, &first, &error);
	if (ret < 0) {
		if (first != NULL || error == NULL)
			abort();
		return 0;
	}
	if (eas_node_dump(first, elide, 2, EAS_DUMP_INDENT, 4096, &xml) < 0 || xml == NULL)
		abort();
	free(xml);
	if (eas_wbxml_encode(first, &enc1, &len1, &error) < 0)
		abort(); /* every decoded tree can be encoded */
	if (eas_wbxml_decode(enc1, len1, 0, &second, &error) < 0)
		abort(); /* and what we encode decodes */
	if (!same_tree(first, second))
		abort();
	if (eas_wbxml_encode(second, &enc2, &len2, &error) < 0)
		abort();
	if (len1 != len2 || memcmp(enc1, enc2, len1) != 0)
		abort();
	if (eas_wbxml_decode(enc2, len2, 0, &third, &error) < 0)
		abort();
	eas_node_free(&first);
	eas_node_free(&second);
	eas_node_free(&third);
	free(enc1);
	free(enc2);
	return 0;
}
