/* libFuzzer harness: the Autodiscover response parser, as a server's body
 * reaches it. Whatever the input, the parser must not crash, leak, fetch or
 * expand anything, and its result must keep its promises: on success every
 * string is NUL-terminated within its buffer, the kind is one of the five,
 * a URL is https; on failure the result is zeroed and an error is given. */
#include "eas/autodiscover.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must_terminate(const char *s, size_t size)
{
	if (memchr(s, '\0', size) == NULL)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct autodiscover_result r;
	const char *error = NULL;
	int ret = autodiscover_response_parse(data, size, &r, &error);
	if (ret < 0) {
		if (error == NULL || r.kind != 0 || r.url[0] != '\0' || r.code != -1)
			abort();
		return 0;
	}
	must_terminate(r.display_name, sizeof(r.display_name));
	must_terminate(r.email, sizeof(r.email));
	must_terminate(r.url, sizeof(r.url));
	must_terminate(r.address, sizeof(r.address));
	must_terminate(r.message, sizeof(r.message));
	must_terminate(r.debug_data, sizeof(r.debug_data));
	switch (r.kind) {
	case AUTODISCOVER_SETTINGS:
		if (strncmp(r.url, "https://", 8) != 0 || strchr(r.url, '?') != NULL)
			abort();
		break;
	case AUTODISCOVER_REDIRECT_URL:
		if (strncmp(r.url, "https://", 8) != 0)
			abort();
		break;
	case AUTODISCOVER_REDIRECT_ADDR: {
		const char *domain;
		if (autodiscover_address_check(r.address, &domain, &error) < 0)
			abort();
		break;
	}
	case AUTODISCOVER_ACTION_ERROR:
	case AUTODISCOVER_ERROR:
		if (r.code < -1)
			abort();
		break;
	default: abort();
	}
	return 0;
}
