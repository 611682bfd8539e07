/* libFuzzer harness: the ActiveSync command parsers. Decodes the input, runs
 * every command parser on the tree, then the email extractor on every
 * ApplicationData / Properties element in it. */
#include "eas/commands.h"
#include <stdlib.h>
#include <string.h>

static void emails(const struct eas_node *n, int depth)
{
	for (const struct eas_node *c = eas_node_first(n); c != NULL; c = eas_node_next(c)) {
		if (eas_node_is(c, EAS_PAGE_AIRSYNC, "ApplicationData") ||
		    eas_node_is(c, EAS_PAGE_ITEMOPERATIONS, "Properties")) {
			struct eas_email *e = NULL;
			const char *err;
			if (eas_email_parse(c, &e, &err) == 0) {
				if (e->body.data != NULL && e->body.data_len > 0)
					(void)e->body.data[e->body.data_len - 1];
				for (size_t i = 0; i < e->n_categories; i++) (void)strlen(e->categories[i]);
				eas_email_free(&e);
			}
		}
		if (depth < 40) emails(c, depth + 1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct eas_node *root = NULL;
	const char *err;
	if (eas_wbxml_decode(data, size, 0, &root, &err) < 0) return 0;
	struct eas_provision_result pr; struct eas_compose_result cr;
	struct eas_foldersync_result *fs = NULL; struct eas_sync_result *sy = NULL;
	struct eas_ping_result *pi = NULL; struct eas_itemops_result *io = NULL;
	struct eas_moveitems_result *mv = NULL; struct eas_settings_result *se = NULL;
	struct eas_gie_result *gi = NULL;
	if (eas_provision_parse(root, &pr, &err) == 0) (void)strlen(pr.policy_key);
	if (eas_foldersync_parse(root, &fs, &err) == 0)
		for (size_t i = 0; i < fs->n_changes; i++) (void)strlen(fs->changes[i].server_id);
	if (eas_sync_parse(root, &sy, &err) == 0)
		for (size_t i = 0; i < sy->n_collections; i++)
			for (size_t j = 0; j < sy->collections[i].n_commands; j++)
				(void)strlen(sy->collections[i].commands[j].server_id);
	(void)eas_ping_parse(root, &pi, &err);
	(void)eas_itemops_parse(root, &io, &err);
	(void)eas_compose_parse(root, &cr, &err);
	(void)eas_moveitems_parse(root, &mv, &err);
	(void)eas_settings_parse(root, &se, &err);
	(void)eas_gie_parse(root, &gi, &err);
	emails(root, 0);
	eas_foldersync_result_free(&fs); eas_sync_result_free(&sy); eas_ping_result_free(&pi);
	eas_itemops_result_free(&io); eas_moveitems_result_free(&mv); eas_settings_result_free(&se);
	eas_gie_result_free(&gi);
	eas_node_free(&root);
	return 0;
}
