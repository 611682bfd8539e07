/* Device tokens: 32 random bytes handed to the device at register; the relay
 * stores only SHA-256(token) and compares in constant time, so a copy of the
 * database does not let anyone act as the device. */
#ifndef HK_DEVTOKEN_H
#define HK_DEVTOKEN_H

#include "lib/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEVTOKEN_LEN 32
#define DEVTOKEN_HASH_LEN 32

/* Fills token with fresh random bytes and hash_r with its SHA-256. */
int devtoken_new(uint8_t token[DEVTOKEN_LEN], uint8_t hash_r[DEVTOKEN_HASH_LEN]) HK_WARN_UNUSED;

int devtoken_hash(const uint8_t *token, size_t token_len, uint8_t hash_r[DEVTOKEN_HASH_LEN])
	HK_WARN_UNUSED;

/* True when SHA-256(token) equals stored_hash; the comparison takes the same
 * time wherever the first differing byte is. A token of the wrong length is
 * hashed all the same (no early exit on length) and never matches. */
bool devtoken_verify(const uint8_t *token, size_t token_len,
		     const uint8_t stored_hash[DEVTOKEN_HASH_LEN]) HK_WARN_UNUSED;

#endif
