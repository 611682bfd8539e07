/* A blocking client of halfkeyd's control socket (relay/control.h has the
 * protocol), used by halfkeyctl and by the tests.
 *
 * Errors: functions return 0 or a negative HK_ERR_* code and set *error_r to
 * a sentence naming the socket path where it helps; the text lives in a
 * thread-local buffer valid until the next control_client_* call in the
 * same thread. HK_ERR_IO: the daemon cannot be reached, or went away, or
 * did not answer in time; HK_ERR_TOO_LONG: an answer over
 * CONTROL_RESPONSE_MAX bytes; HK_ERR_INVAL: a bad argument or an answer
 * that is not a JSON object. */
#ifndef HK_RELAY_CONTROL_CLIENT_H
#define HK_RELAY_CONTROL_CLIENT_H

#include "lib/error.h"
#include "relay/control.h"

#include <jansson.h>
#include <stddef.h>

#define CONTROL_CLIENT_TIMEOUT_MS 30000 /* default wait for each answer */

struct control_client;

/* Connects to the socket at path. */
int control_client_connect(const char *path, struct control_client **client_r,
			   const char **error_r) HK_WARN_UNUSED;
/* Each later wait (sending, reading an answer) gives up after ms. */
void control_client_set_timeout(struct control_client *client, int ms);
void control_client_close(struct control_client **client);

/* Sends req (one line) and reads the answer. *answer_r (may be NULL) gets
 * the parsed answer, to json_decref(); *line_r (may be NULL) the answer line
 * as received, without its '\n', NUL-terminated, to free() — both only on
 * success. An answer {"ok":false,...} is a success here: the caller reads
 * "ok". */
int control_client_call(struct control_client *client, const json_t *req, json_t **answer_r,
			char **line_r, const char **error_r) HK_WARN_UNUSED;

/* Lower level, for tests of the server's input handling: sends len raw
 * bytes; reads one line (without '\n') into *line_r, to free(). */
int control_client_send(struct control_client *client, const void *buf, size_t len,
			const char **error_r) HK_WARN_UNUSED;
int control_client_read_line(struct control_client *client, char **line_r,
			     const char **error_r) HK_WARN_UNUSED;

#endif
