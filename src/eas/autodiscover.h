/* Autodiscover for ActiveSync ([MS-ASCMD] 2.2.1.1, "POX" over HTTPS): from
 * the mail address a user typed to the URL of their ActiveSync server.
 *
 * Two layers, kept apart:
 *  - pure functions: check an address, build the request XML (the address
 *    escaped), parse a response (libxml2, namespace-aware, no DTD, no
 *    entities, no network, bounded input) into one struct;
 *  - an asynchronous driver over net/httpc.h that tries the candidate URLs
 *    in order and turns what it saw into one outcome for the caller.
 *
 * Discovery order for local@domain (MS-OXDISCO 3.1.5, as ActiveSync clients
 * do it):
 *   1. POST https://<domain>/autodiscover/autodiscover.xml
 *   2. POST https://autodiscover.<domain>/autodiscover/autodiscover.xml
 *   3. GET  http://autodiscover.<domain>/autodiscover/autodiscover.xml,
 *      unauthenticated, only to learn a redirect to an https URL, which is
 *      then POSTed to.
 * A candidate that cannot be reached (refused, TLS failure, timeout, any
 * status but 200/401/redirect, a body that is not an Autodiscover answer)
 * passes to the next. DNS SRV (_autodiscover._tcp) is not tried: curl and
 * libevent's resolver cannot ask for SRV without blocking the loop, and an
 * unsigned SRV answer points the password at any host, which the user
 * would have to confirm anyway; see start_url.
 *
 * Credentials are sent only over https (verified TLS, never skipped) and
 * only to hosts inside the address's domain (the domain itself or a
 * subdomain), or to a start_url the caller confirmed. A redirect (HTTP
 * 301/302/303/307/308, 451 with X-MS-Location, or a Redirect element
 * holding a URL) to an https URL inside the domain is followed; one
 * outside it ends the discovery with AUTODISCOVER_CONFIRM_REDIRECT, and a
 * caller that has the user's consent starts again with start_url set to
 * it. Likewise a Redirect to an address
 * in another domain ends with AUTODISCOVER_CONFIRM_ADDRESS; one within the
 * domain restarts the discovery with the new address. At most
 * AUTODISCOVER_REDIRECTS_MAX redirects of every kind together. An HTTP 401
 * ends the discovery (the password is wrong; asking more servers would only
 * bring a lockout nearer). Every attempt is bounded by a connect and a
 * transfer deadline, and all of them together by total_timeout_ms.
 *
 * Async contract as in net/httpc.h: if autodiscover_start() fails, the
 * callback is never called; otherwise exactly once, unless cancelled first
 * with autodiscover_cancel(). The handle is invalid from the moment the
 * callback starts. */
#ifndef HK_EAS_AUTODISCOVER_H
#define HK_EAS_AUTODISCOVER_H

#include "crypto/secmem.h"
#include "eas/client.h"
#include "lib/error.h"
#include "net/httpc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTODISCOVER_REQUEST_NS                                                                    \
	"http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006"
#define AUTODISCOVER_RESPONSE_NS                                                                   \
	"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
#define AUTODISCOVER_MOBILESYNC_NS                                                                 \
	"http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"

#define AUTODISCOVER_BODY_MAX      (64 * 1024) /* largest response parsed */
#define AUTODISCOVER_ADDR_MAX      320  /* address with its NUL: 64 + '@' + 253 + NUL, rounded */
#define AUTODISCOVER_DOMAIN_MAX    254  /* domain with its NUL */
#define AUTODISCOVER_TEXT_MAX      256  /* DisplayName, Message, ...: longer is cut (UTF-8 safe) */
#define AUTODISCOVER_REQUEST_MAX   2560 /* built request; fits any valid address, escaped */
#define AUTODISCOVER_REDIRECTS_MAX 10   /* HTTP, URL and address redirects together */
#define AUTODISCOVER_ATTEMPTS_MAX  32   /* attempts recorded in an outcome */
#define AUTODISCOVER_NOTE_URL_MAX  256  /* a recorded attempt's URL (cut) */

/* ---- pure functions ---------------------------------------------------- */

/* What a response says. */
enum autodiscover_kind {
	AUTODISCOVER_SETTINGS = 1,  /* Action/Settings with a MobileSync server: url */
	AUTODISCOVER_REDIRECT_ADDR, /* Action/Redirect with an address: ask again for address */
	AUTODISCOVER_REDIRECT_URL,  /* Action/Redirect with an https URL (tolerated): url */
	AUTODISCOVER_ACTION_ERROR,  /* Action/Error: code = Status, message, debug_data */
	AUTODISCOVER_ERROR,         /* Response/Error: code = ErrorCode (600, 601), message, ... */
};

struct autodiscover_result {
	enum autodiscover_kind kind;
	char display_name[AUTODISCOVER_TEXT_MAX]; /* User/DisplayName, "" when absent */
	char email[AUTODISCOVER_TEXT_MAX];        /* User/EMailAddress as sent, "" when absent */
	char url[EAS_URL_MAX];                    /* SETTINGS (https, no query), REDIRECT_URL */
	char address[AUTODISCOVER_ADDR_MAX];      /* REDIRECT_ADDR, checked like the user's */
	long code;                                /* ErrorCode or Status; -1 when absent */
	char message[AUTODISCOVER_TEXT_MAX];
	char debug_data[AUTODISCOVER_TEXT_MAX];
};

/* Checks an address as a user typed it: a local part of 1..64 bytes of
 * UTF-8 without control characters, '@' (the last one), and a DNS name of
 * at least two labels (letters, digits, '-'; no IP literal, no numeric top
 * label), at most 253 bytes. *domain_r points into address. */
int autodiscover_address_check(const char *address, const char **domain_r,
                               const char **error_r) HK_WARN_UNUSED;

/* The request for address (checked as above), XML-escaped, into buf
 * (NUL-terminated; *len_r excludes the NUL). */
int autodiscover_request_build(const char *address, char *buf, size_t size, size_t *len_r,
                               const char **error_r) HK_WARN_UNUSED;

/* Parses a response body of at most AUTODISCOVER_BODY_MAX bytes. Elements
 * count only in their schema's namespace; unknown ones are ignored. No DTD
 * is accepted (so no entity of any kind), nothing is fetched, and the body
 * is read as UTF-8 whatever it declares (UTF-16, UCS-4 and EBCDIC are
 * refused: the server picks no iconv converter). On failure r is zeroed
 * and *error_r says why (static text). */
int autodiscover_response_parse(const uint8_t *body, size_t len, struct autodiscover_result *r,
                                const char **error_r) HK_WARN_UNUSED;

/* True when host is domain or a subdomain of it (ASCII case-insensitive,
 * on a label boundary). */
bool autodiscover_host_in_domain(const char *host, const char *domain);

/* ---- the driver -------------------------------------------------------- */

enum autodiscover_step {
	/* POST start_url (a URL the caller confirmed) */
	AUTODISCOVER_STEP_GIVEN,
	/* POST https://<domain>/autodiscover/autodiscover.xml */
	AUTODISCOVER_STEP_DOMAIN,
	/* POST https://autodiscover.<domain>/autodiscover/autodiscover.xml */
	AUTODISCOVER_STEP_AUTODISCOVER_HOST,
	/* GET http://autodiscover.<domain>/autodiscover/autodiscover.xml, for a redirect */
	AUTODISCOVER_STEP_HTTP_REDIRECT,
	AUTODISCOVER_STEP_END,
};

/* The URL a step starts from, for domain (checked), into buf. */
int autodiscover_step_url(enum autodiscover_step step, const char *domain, char *buf,
                          size_t size) HK_WARN_UNUSED;

enum autodiscover_status {
	AUTODISCOVER_FOUND = 0,        /* url: the ActiveSync URL (https) */
	AUTODISCOVER_CONFIRM_REDIRECT, /* url: a redirect outside the domain; ask before using */
	AUTODISCOVER_CONFIRM_ADDRESS,  /* address: Redirect to another domain; ask before using */
	AUTODISCOVER_AUTH_FAILED,      /* HTTP 401: wrong username or password */
	AUTODISCOVER_SERVER_ERROR,     /* the server answered with an Error: see result */
	AUTODISCOVER_REDIRECT_LOOP,    /* over REDIRECTS_MAX, or back to the same address */
	AUTODISCOVER_NOT_FOUND,        /* no candidate answered: see attempts */
	AUTODISCOVER_TIMEOUT,          /* total_timeout_ms passed */
	AUTODISCOVER_FAILED,           /* a request could not be started (local failure) */
};

/* One HTTP request, as it went. */
struct autodiscover_attempt {
	char url[AUTODISCOVER_NOTE_URL_MAX]; /* cut when longer */
	bool post;                           /* false: the unauthenticated GET */
	enum httpc_result transport;
	long http_status; /* 0 when no answer */
	const char *note; /* static: what became of it */
};

struct autodiscover_outcome {
	enum autodiscover_status status;
	const char *error;   /* why not FOUND, NULL when FOUND */
	const char *url;     /* FOUND, CONFIRM_REDIRECT; else NULL */
	const char *address; /* the address asked last; CONFIRM_ADDRESS: the new one */
	/* The parsed answer that ended the discovery: FOUND, SERVER_ERROR,
	 * CONFIRM_ADDRESS; else NULL. */
	const struct autodiscover_result *result;
	unsigned redirects;
	const struct autodiscover_attempt *attempts;
	size_t attempt_count;  /* recorded, at most AUTODISCOVER_ATTEMPTS_MAX */
	size_t attempts_total; /* made */
	long elapsed_ms;
};

/* Everything in it is valid only during the callback. */
typedef void autodiscover_cb(const struct autodiscover_outcome *outcome, void *ctx);

struct autodiscover_config {
	const char *address;     /* what the user typed: local@domain */
	const char *username;    /* Basic auth login; NULL: the address. No ':' */
	const char *ca_file;     /* PEM CA bundle, or NULL for the system's */
	const char *start_url;   /* NULL: the candidates above; else POST only here */
	long connect_timeout_ms; /* per attempt; 0: 10 s */
	long attempt_timeout_ms; /* per attempt; 0: 30 s */
	long total_timeout_ms;   /* all attempts; 0: 120 s */
	/* Tests only (see httpc_request); must outlive the discovery. */
	const char *const *connect_to;
};

struct autodiscover;

int autodiscover_start(struct httpc *http, const struct autodiscover_config *cfg,
                       const struct secret *password, autodiscover_cb *cb, void *ctx,
                       struct autodiscover **ad_r, const char **error_r) HK_WARN_UNUSED;
/* Stops the discovery; its callback is never called. NULL-safe; sets *ad NULL. */
void autodiscover_cancel(struct autodiscover **ad);

const char *autodiscover_status_str(enum autodiscover_status s);

#endif
