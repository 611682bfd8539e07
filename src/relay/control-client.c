#include "relay/control-client.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK 65536

struct control_client {
	int fd;
	int timeout_ms;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *buf; /* received, not yet returned */
	size_t len, cap;
};

static _Thread_local char error_text[512];

static int fail(int code, const char **error_r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(int code, const char **error_r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(error_text, sizeof(error_text), fmt, ap);
	va_end(ap);
	*error_r = error_text;
	return code;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for events or the deadline passes. */
static int wait_fd(struct control_client *c, short events, int64_t deadline, const char **error_r)
{
	for (;;) {
		int64_t left = deadline - mono_ms();
		if (left <= 0)
			return fail(HK_ERR_IO, error_r, "no answer from %s within %d ms", c->path,
				    c->timeout_ms);
		struct pollfd p = {.fd = c->fd, .events = events};
		int n = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return fail(HK_ERR_IO, error_r, "poll: %s", strerror(errno));
	}
}

int control_client_connect(const char *path, struct control_client **client_r,
			   const char **error_r)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = path != NULL ? strlen(path) : 0;
	if (len == 0 || len >= sizeof(sa.sun_path))
		return fail(HK_ERR_INVAL, error_r, "bad control socket path (1 to %zu bytes)",
			    sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, len + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(HK_ERR_IO, error_r, "socket: %s", strerror(errno));
	if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = errno;
		close(fd);
		const char *hint = "";
		if (err == ENOENT || err == ECONNREFUSED)
			hint = " (is halfkeyd running? the socket is set by relay.control_socket)";
		else if (err == EACCES || err == EPERM)
			hint = " (run as root or as halfkeyd's user)";
		return fail(HK_ERR_IO, error_r, "cannot connect to the control socket %s: %s%s",
			    path, strerror(err), hint);
	}
	struct control_client *c = calloc(1, sizeof(*c));
	if (c == NULL)
		abort();
	c->fd = fd;
	c->timeout_ms = CONTROL_CLIENT_TIMEOUT_MS;
	memcpy(c->path, path, len + 1);
	*client_r = c;
	return 0;
}

void control_client_set_timeout(struct control_client *c, int ms)
{
	c->timeout_ms = ms > 0 ? ms : CONTROL_CLIENT_TIMEOUT_MS;
}

void control_client_close(struct control_client **cp)
{
	struct control_client *c = *cp;
	if (c == NULL)
		return;
	*cp = NULL;
	close(c->fd);
	free(c->buf);
	free(c);
}

int control_client_send(struct control_client *c, const void *buf, size_t len,
			const char **error_r)
{
	const uint8_t *p = buf;
	int64_t deadline = mono_ms() + c->timeout_ms;
	while (len > 0) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			int ret = wait_fd(c, POLLOUT, deadline, error_r);
			if (ret < 0)
				return ret;
			continue;
		}
		return fail(HK_ERR_IO, error_r, "sending to %s: %s", c->path,
			    n < 0 ? strerror(errno) : "nothing sent");
	}
	return 0;
}

int control_client_read_line(struct control_client *c, char **line_r, const char **error_r)
{
	int64_t deadline = mono_ms() + c->timeout_ms;
	size_t scanned = 0;
	for (;;) {
		char *nl = c->len > scanned ? memchr(c->buf + scanned, '\n', c->len - scanned)
					    : NULL;
		if (nl != NULL) {
			size_t n = (size_t)(nl - c->buf);
			char *line = malloc(n + 1);
			if (line == NULL)
				abort();
			memcpy(line, c->buf, n);
			line[n] = '\0';
			c->len -= n + 1;
			memmove(c->buf, nl + 1, c->len);
			*line_r = line;
			return 0;
		}
		scanned = c->len;
		if (c->len > CONTROL_RESPONSE_MAX)
			return fail(HK_ERR_TOO_LONG, error_r,
				    "the answer from %s is longer than %d bytes", c->path,
				    CONTROL_RESPONSE_MAX);
		if (c->cap - c->len < READ_CHUNK) {
			size_t cap = c->cap * 2 > c->len + READ_CHUNK ? c->cap * 2
								      : c->len + READ_CHUNK;
			char *b = realloc(c->buf, cap);
			if (b == NULL)
				abort();
			c->buf = b;
			c->cap = cap;
		}
		ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
		if (n > 0) {
			c->len += (size_t)n;
			continue;
		}
		if (n == 0)
			return fail(HK_ERR_IO, error_r, "%s closed the connection%s", c->path,
				    c->len > 0 ? " in the middle of an answer" : "");
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return fail(HK_ERR_IO, error_r, "reading from %s: %s", c->path,
				    strerror(errno));
		int ret = wait_fd(c, POLLIN, deadline, error_r);
		if (ret < 0)
			return ret;
	}
}

/* Frees memory jansson allocated (it may use a wiping allocator). */
static void json_free_dump(char *p)
{
	json_free_t f = NULL;
	json_get_alloc_funcs(NULL, &f);
	if (f != NULL)
		f(p);
}

int control_client_call(struct control_client *c, const json_t *req, json_t **answer_r,
			char **line_r, const char **error_r)
{
	if (!json_is_object(req))
		return fail(HK_ERR_INVAL, error_r, "a request must be a JSON object");
	char *dump = json_dumps(req, JSON_COMPACT);
	if (dump == NULL)
		abort();
	int ret = control_client_send(c, dump, strlen(dump), error_r);
	if (ret == 0)
		ret = control_client_send(c, "\n", 1, error_r);
	json_free_dump(dump);
	char *line = NULL;
	if (ret < 0) {
		/* the daemon may have refused us and said why before closing */
		char why[sizeof(error_text)];
		const char *ignored;
		snprintf(why, sizeof(why), "%s", *error_r);
		if (control_client_read_line(c, &line, &ignored) < 0)
			return fail(ret, error_r, "%s", why);
	} else if ((ret = control_client_read_line(c, &line, error_r)) < 0) {
		return ret;
	}
	json_error_t jerr;
	json_t *ans = json_loads(line, 0, &jerr);
	if (ans == NULL || !json_is_object(ans)) {
		json_decref(ans);
		free(line);
		return fail(HK_ERR_INVAL, error_r, "%s gave an answer that is not a JSON object",
			    c->path);
	}
	if (answer_r != NULL)
		*answer_r = ans;
	else
		json_decref(ans);
	if (line_r != NULL)
		*line_r = line;
	else
		free(line);
	return 0;
}
