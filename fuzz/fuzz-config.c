/* libFuzzer harness: halfkeyd's configuration parser (src/relay/config.c).
 *
 * Besides "no crash, no leak", it checks the parser's contract: a failure
 * leaves no config and says where; a success dumps to text that parses back
 * to an equal config, whose default_url its allow-list accepts. The input's
 * first line also goes, as an untrusted URL, to the allow-list matcher of a
 * fixed config that has every kind of entry. */
#include "relay/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char matcher_config[] =
    "[mailserver]\n"
    "allow = https://mail.example.org/Microsoft-Server-ActiveSync https://eas.example.net:8443 "
    "*.corp.example.org sogo.example.com [2001:db8::5]\n";

static void check_matcher(const uint8_t *data, size_t size)
{
	static struct relay_config *cfg;
	const char *err;
	if (cfg == NULL &&
	    relay_config_parse(matcher_config, sizeof(matcher_config) - 1, "m", &cfg, &err) < 0)
		abort();
	char url[RELAY_CONFIG_URL_MAX + 2];
	size_t n = size < sizeof(url) - 1 ? size : sizeof(url) - 1;
	const uint8_t *nl = memchr(data, '\n', n);
	if (nl != NULL)
		n = (size_t)(nl - data);
	memcpy(url, data, n);
	url[n] = '\0';
	if (!relay_config_mailserver_allowed(cfg, url))
		return;
	/* whatever it allows is an https URL with no user info in its authority */
	if (strncasecmp(url, "https://", 8) != 0)
		abort();
	size_t authority = strcspn(url + 8, "/");
	if (memchr(url + 8, '@', authority) != NULL)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_matcher(data, size);

	struct relay_config *cfg = NULL;
	const char *err = NULL;
	int ret = relay_config_parse((const char *)data, size, "fuzz.conf", &cfg, &err);
	if (ret < 0) {
		if (cfg != NULL || err == NULL || strncmp(err, "fuzz.conf", 9) != 0)
			abort();
		return 0;
	}
	if (cfg == NULL)
		abort();

	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (f == NULL || relay_config_dump(cfg, f) < 0)
		abort();
	fclose(f);
	struct relay_config *back = NULL;
	if (relay_config_parse(text, len, "dump", &back, &err) < 0 ||
	    !relay_config_equal(cfg, back))
		abort();
	if (cfg->mail_default_url != NULL &&
	    !relay_config_mailserver_allowed(cfg, cfg->mail_default_url))
		abort();

	free(text);
	relay_config_free(&back);
	relay_config_free(&cfg);
	return 0;
}
