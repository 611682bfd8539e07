/* halfkeyd's local admin control socket (DESIGN §4 "Admin"), the server
 * side; halfkeyctl (src/tools/halfkeyctl.c, docs/halfkeyctl.md) is its
 * client, through relay/control-client.h.
 *
 * Transport: a UNIX stream socket, mode 0600, on the daemon's libevent
 * loop. Only root and the daemon's own uid may talk (SO_PEERCRED); others
 * get one error line and are disconnected. The socket's directory must
 * exist, belong to root or to the daemon's uid and not be world-writable.
 *
 * Protocol: newline-delimited JSON. Each request is one JSON object on one
 * line (at most CONTROL_LINE_MAX bytes before the '\n'; a '\r' before it is
 * ignored); each answer is one JSON object on one line, in request order:
 *
 *   {"cmd":"account","id":"a..."}
 *   {"ok":true,"account":{...},"devices":[...]}
 *   {"ok":false,"error":"no such account"}
 *
 * A malformed or over-long line, an unknown command or a bad argument gets
 * {"ok":false,"error":...} and the connection goes on serving. Unknown
 * fields in a request are errors too, so that a typo is never ignored.
 * A client may send several requests on one connection; it must read each
 * answer (the next request is read only once the previous answer is
 * written) and keep the connection open until it has its last answer.
 *
 * Commands (every field but "cmd" optional unless marked *; times are
 * integer Unix milliseconds, null for "never"):
 *   accounts      after (account id, paging), limit (1..1000, default 1000)
 *                 -> accounts: [account], next: id to pass as after when
 *                    the page is full (absent otherwise)
 *   account       id* -> account, devices: [device]
 *   wipe          id* -> account, detail
 *   flush         id* -> account, detail
 *   purge         -> detail
 *   block-add     kind* (user_glob, domain, device_type, device_id,
 *                 user_agent), pattern*, note -> rule
 *   block-list    -> rules: [rule]
 *   block-remove  id* (integer) -> id
 *   audit         since (ms, default 0), account (id), limit (1..1000,
 *                 default 100) -> entries: [entry] (oldest first)
 *   stats         -> stats
 * account: id, username, email, server, state (active, flushed,
 *   reregister_needed, wiped), unlocked (bool), created_ms,
 *   last_activity_ms, flushed_ms, devices (count), next_flush_ms (last
 *   activity + flush_after while unlocked, else null).
 * device: id, eas_device_id, device_type, user_agent, created_ms,
 *   last_seen_ms, tombstoned (bool), tombstoned_ms.
 * rule: id, kind, pattern, note, created_ms.
 * entry: id, time_ms, event, account, device, detail.
 * stats: the store's row counts (accounts, devices, envelopes, collections,
 *   items, push_subs, block_rules, leases, audit), unlocked, started_ms,
 *   uptime_ms, now_ms, flush_after_ms, version.
 *
 * Mutating commands are logged (notice) with the peer's uid and pid; wipe
 * and flush are also audited by the engine.
 *
 * The daemon must ignore SIGPIPE: a client that goes away while its answer
 * is being written must not kill it. */
#ifndef HK_RELAY_CONTROL_H
#define HK_RELAY_CONTROL_H

#include "lib/error.h"

#include <stdint.h>

/* The default path (halfkeyd.conf relay.control_socket; halfkeyctl -s). */
#define CONTROL_SOCKET_DEFAULT "/run/halfkey/control.sock"
/* Environment variable halfkeyctl reads when -s is not given. */
#define CONTROL_SOCKET_ENV "HALFKEY_CONTROL_SOCKET"

#define CONTROL_LINE_MAX (64 * 1024)	       /* bytes in a request line, without '\n' */
#define CONTROL_RESPONSE_MAX (64 * 1024 * 1024) /* bytes in an answer line (client limit) */
#define CONTROL_CONN_MAX 16		       /* connections at once; more are refused */
#define CONTROL_IDLE_TIMEOUT_MS 60000	       /* default idle/stall timeout per connection */
#define CONTROL_PAGE_MAX 1000		       /* rows in one accounts or audit answer */

struct event_base;
struct engine;
struct store;
struct hk_clock;
struct control;

/* What the control server works with; borrowed, must outlive it. */
struct control_ctx {
	struct engine *engine;
	struct store *store;
	const struct hk_clock *clock;
	int64_t flush_after_ms; /* as given to the engine */
	int64_t started_ms;	/* when the daemon started (wall clock, Unix ms) */
	int64_t idle_timeout_ms; /* 0: CONTROL_IDLE_TIMEOUT_MS */
};

/* Installs the wiping allocator (crypto/wipealloc.h) into jansson, so that
 * the strings jansson parses and builds are zeroed when freed. Must run
 * before jansson's first allocation in the process: first thing in main(),
 * next to secmem_init(). Idempotent and thread-safe; control_new() calls it
 * too. Everything jansson returns (json_dumps() output included) must then
 * be freed with jansson's own functions or wipealloc_free(). */
void control_json_init(void);

/* Creates the socket at path (absolute; replacing a stale socket left by a
 * dead daemon, refusing any other file, a live socket, and an unsafe
 * directory) and serves it on base. Errors: HK_ERR_INVAL (bad path or
 * context), HK_ERR_PERM (unsafe directory or file), HK_ERR_EXISTS (path is
 * not a socket), HK_ERR_BUSY (another process serves the socket), HK_ERR_IO.
 * *error_r: thread-local text, valid until the next control_new() call in
 * the thread. */
int control_new(struct event_base *base, const char *path, const struct control_ctx *ctx,
		struct control **control_r, const char **error_r) HK_WARN_UNUSED;

/* Closes every connection and the listener, and removes the socket file
 * (if it is still the one control_new() made). NULL-safe; sets *control
 * to NULL. */
void control_free(struct control **control);

/* Connections open right now (for tests and stats). */
unsigned control_connection_count(const struct control *control);

#endif
