#include "lib/error.h"

const char *hk_strerror(int err)
{
	switch (err) {
	case HK_OK: return "success";
	case HK_ERR_INVAL: return "invalid argument or input";
	case HK_ERR_NOMEM: return "out of memory";
	case HK_ERR_IO: return "I/O error";
	case HK_ERR_PERM: return "unsafe permissions";
	case HK_ERR_CRYPTO: return "crypto library failure";
	case HK_ERR_TRUNCATED: return "input truncated";
	case HK_ERR_TOO_LONG: return "input too long";
	case HK_ERR_VERSION: return "unknown format version";
	case HK_ERR_KEY_ID: return "unknown key id";
	case HK_ERR_AUTH: return "authentication failed";
	case HK_ERR_NOT_FOUND: return "not found";
	case HK_ERR_EXISTS: return "already exists";
	case HK_ERR_STORE: return "store failure";
	case HK_ERR_FAULT: return "injected fault";
	case HK_ERR_BUSY: return "busy";
	case HK_ERR_STATE: return "invalid state";
	default: return "unknown error";
	}
}
