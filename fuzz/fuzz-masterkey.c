/* libFuzzer harness: the master keyring file parser. */
#include "crypto/masterkey.h"
#include "crypto/secmem.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		if (secmem_init() < 0)
			abort();
		ready = 1;
	}
	struct masterkey *mk = NULL;
	const char *err = NULL;
	int ret = masterkey_parse(data, size, &mk, &err);
	if (ret == 0) {
		/* a parsed ring always has a current key that can be fetched */
		if (mk == NULL || masterkey_count(mk) == 0 ||
		    masterkey_get(mk, masterkey_current_id(mk)) == NULL)
			abort();
	} else if (mk != NULL || err == NULL) {
		abort();
	}
	masterkey_free(&mk);
	return 0;
}
