/* The relay master key (MK) keyring.
 *
 * File format (text, one record a line, mode 0600, owned by the relay user):
 *
 *   halfkey-master-keyring 1
 *   key <id> <base64 of 32 bytes>
 *   key <id> <base64 of 32 bytes>
 *
 * Ids are decimal 1..4294967295, strictly increasing; the last key is the
 * current one, used for new envelopes; older keys still open envelopes
 * sealed under them (they are re-sealed under the current key when their
 * device next unlocks). The file is created on first start with one key; a
 * file that group or others can read, or another user owns, is refused.
 * Keys are read straight into guarded memory (no stdio buffers). */
#ifndef HK_MASTERKEY_H
#define HK_MASTERKEY_H

#include "lib/error.h"

#include <stddef.h>
#include <stdint.h>

#define MASTERKEY_FILE_MAX (64 * 1024)
#define MASTERKEY_MAX_KEYS 64

struct masterkey;

/* Loads path; creates it with a fresh key when it does not exist. */
int masterkey_load_or_create(const char *path, struct masterkey **mk_r, const char **error_r)
	HK_WARN_UNUSED;
/* Loads path; fails when it does not exist. */
int masterkey_load(const char *path, struct masterkey **mk_r, const char **error_r)
	HK_WARN_UNUSED;
/* Parses a keyring held in memory (the file's bytes). */
int masterkey_parse(const uint8_t *buf, size_t len, struct masterkey **mk_r,
		    const char **error_r) HK_WARN_UNUSED;
/* Appends a fresh key (id = current + 1) to the file, atomically
 * (write to a temporary file, fsync, rename); *new_id_r names it. */
int masterkey_rotate(const char *path, uint32_t *new_id_r, const char **error_r) HK_WARN_UNUSED;

uint32_t masterkey_current_id(const struct masterkey *mk);
/* The 32 key bytes of id (in guarded memory), or NULL when unknown. */
const uint8_t *masterkey_get(const struct masterkey *mk, uint32_t id);
size_t masterkey_count(const struct masterkey *mk);

void masterkey_free(struct masterkey **mk);

#endif
