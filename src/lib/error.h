/* Halfkey error codes. Every function that can fail returns int: 0 on
 * success, one of these (negative) on failure. Each failure class has its
 * own code so that callers and tests can tell them apart. */
#ifndef HK_ERROR_H
#define HK_ERROR_H

#define HK_WARN_UNUSED __attribute__((warn_unused_result))

enum hk_err {
	HK_OK = 0,
	HK_ERR_INVAL = -1,	  /* bad argument or malformed input */
	HK_ERR_NOMEM = -2,	  /* allocation failed (guarded memory) */
	HK_ERR_IO = -3,		  /* file or socket I/O failed */
	HK_ERR_PERM = -4,	  /* unsafe permissions or ownership */
	HK_ERR_CRYPTO = -5,	  /* a crypto library call failed */
	HK_ERR_TRUNCATED = -6,	  /* input shorter than its format allows */
	HK_ERR_TOO_LONG = -7,	  /* input or output longer than allowed */
	HK_ERR_VERSION = -8,	  /* unknown format version */
	HK_ERR_KEY_ID = -9,	  /* envelope names a key we do not have */
	HK_ERR_AUTH = -10,	  /* authentication tag or token mismatch */
	HK_ERR_NOT_FOUND = -11,	  /* no such row or object */
	HK_ERR_EXISTS = -12,	  /* row or object already exists */
	HK_ERR_STORE = -13,	  /* database failure */
	HK_ERR_FAULT = -14,	  /* injected by a fault-injecting driver */
	HK_ERR_BUSY = -15,	  /* try again later (lock held, lease taken) */
	HK_ERR_STATE = -16,	  /* operation not valid in the current state */
};

/* A short, static, English description of an error code. Never NULL. */
const char *hk_strerror(int err);

#endif
