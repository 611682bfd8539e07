/* libFuzzer harness: envelope parsing and opening with a fixed key.
 * The input is an envelope as the store would hand it back. */
#include "crypto/envelope.h"
#include "crypto/secmem.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t key[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
				17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		if (secmem_init() < 0)
			abort();
		ready = 1;
	}
	uint32_t key_id;
	if (envelope_peek(data, size, &key_id) < 0)
		return 0;
	const struct envelope_ad ad = {
		.purpose = ENVELOPE_PURPOSE_ITEM, .account_id = "fuzz", .item_id = "1"};
	size_t cap = size - ENVELOPE_OVERHEAD, n = 0;
	uint8_t *pt = malloc(cap > 0 ? cap : 1);
	if (pt == NULL)
		return 0;
	int ret = envelope_open(key, key_id, &ad, data, size, pt, cap, &n);
	if (ret == 0 && n != cap)
		abort(); /* an opened envelope's length is fixed by its size */
	/* a failed open leaves nothing readable behind */
	for (size_t i = 0; ret < 0 && i < cap; i++)
		if (pt[i] != 0)
			abort();
	free(pt);
	return 0;
}
