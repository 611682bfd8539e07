#include "crypto/masterkey.h"

#include "crypto/secmem.h"
#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER "halfkey-master-keyring 1\n"
#define KEY_B64_LEN 44 /* base64 of 32 bytes, padded */

struct masterkey {
	size_t count;
	uint32_t ids[MASTERKEY_MAX_KEYS];
	struct secret *keys; /* count * HK_KEY_LEN bytes */
};

static void set_error(const char **error_r, const char *msg)
{
	if (error_r != NULL)
		*error_r = msg;
}

/* Parses a decimal id 1..UINT32_MAX at p (up to end); *next_r after it. */
static int parse_id(const uint8_t *p, const uint8_t *end, uint32_t *id_r, const uint8_t **next_r)
{
	uint64_t v = 0;
	const uint8_t *s = p;
	while (p < end && *p >= '0' && *p <= '9') {
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > UINT32_MAX)
			return HK_ERR_INVAL;
		p++;
	}
	if (p == s || v == 0 || (*s == '0'))
		return HK_ERR_INVAL;
	*id_r = (uint32_t)v;
	*next_r = p;
	return 0;
}

int masterkey_parse(const uint8_t *buf, size_t len, struct masterkey **mk_r, const char **error_r)
{
	const size_t hlen = sizeof(HEADER) - 1;
	if (len > MASTERKEY_FILE_MAX) {
		set_error(error_r, "master key file too large");
		return HK_ERR_TOO_LONG;
	}
	if (len < hlen || memcmp(buf, HEADER, hlen) != 0) {
		set_error(error_r, "master key file: missing 'halfkey-master-keyring 1' header");
		return HK_ERR_VERSION;
	}
	struct masterkey *mk = calloc(1, sizeof(*mk));
	if (mk == NULL)
		abort();
	mk->keys = secret_new_isolated(MASTERKEY_MAX_KEYS * HK_KEY_LEN);

	int ret = HK_ERR_INVAL;
	const uint8_t *p = buf + hlen, *end = buf + len;
	while (p < end) {
		const uint8_t *eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL) {
			set_error(error_r, "master key file: last line has no newline");
			goto fail;
		}
		if (p == eol || *p == '#') { /* blank line or comment */
			p = eol + 1;
			continue;
		}
		uint32_t id;
		const uint8_t *q;
		if ((size_t)(eol - p) < 4 || memcmp(p, "key ", 4) != 0 ||
		    parse_id(p + 4, eol, &id, &q) < 0 || q >= eol || *q != ' ') {
			set_error(error_r, "master key file: malformed line (want 'key ID BASE64')");
			goto fail;
		}
		q++;
		if (eol - q != KEY_B64_LEN) {
			set_error(error_r, "master key file: key is not 32 bytes of base64");
			goto fail;
		}
		if (mk->count == MASTERKEY_MAX_KEYS) {
			set_error(error_r, "master key file: too many keys");
			ret = HK_ERR_TOO_LONG;
			goto fail;
		}
		if (mk->count > 0 && id <= mk->ids[mk->count - 1]) {
			set_error(error_r, "master key file: key ids must increase");
			goto fail;
		}
		size_t bin_len = 0;
		const char *b64_end = NULL;
		uint8_t *dst = secret_bytes(mk->keys) + mk->count * HK_KEY_LEN;
		if (sodium_base642bin(dst, HK_KEY_LEN, (const char *)q, KEY_B64_LEN, NULL, &bin_len,
				      &b64_end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
		    bin_len != HK_KEY_LEN || b64_end != (const char *)eol) {
			set_error(error_r, "master key file: key is not 32 bytes of base64");
			goto fail;
		}
		mk->ids[mk->count++] = id;
		p = eol + 1;
	}
	if (mk->count == 0) {
		set_error(error_r, "master key file holds no key");
		goto fail;
	}
	*mk_r = mk;
	return 0;
fail:
	masterkey_free(&mk);
	return ret;
}

/* Reads an existing key file into guarded memory after checking that only
 * its owner, who must be us, can read it. */
static int read_keyfile(const char *path, struct secret **buf_r, const char **error_r)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		set_error(error_r, errno == ENOENT ? "master key file does not exist"
						   : "cannot open master key file");
		return errno == ENOENT ? HK_ERR_NOT_FOUND : HK_ERR_IO;
	}
	struct stat st;
	int ret = HK_ERR_IO;
	struct secret *buf = NULL;
	if (fstat(fd, &st) < 0) {
		set_error(error_r, "cannot stat master key file");
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
		set_error(error_r, "master key file must be a regular file owned by this user "
				   "with mode 0600 (no group or other access)");
		ret = HK_ERR_PERM;
		goto out;
	}
	if (st.st_size > MASTERKEY_FILE_MAX) {
		set_error(error_r, "master key file too large");
		ret = HK_ERR_TOO_LONG;
		goto out;
	}
	buf = secret_new((size_t)st.st_size);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, secret_bytes(buf) + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			set_error(error_r, "cannot read master key file");
			goto out;
		}
		got += (size_t)r;
	}
	*buf_r = buf;
	buf = NULL;
	ret = 0;
out:
	secret_free(&buf);
	close(fd);
	return ret;
}

int masterkey_load(const char *path, struct masterkey **mk_r, const char **error_r)
{
	struct secret *buf = NULL;
	int ret = read_keyfile(path, &buf, error_r);
	if (ret < 0)
		return ret;
	ret = masterkey_parse(secret_cbytes(buf), secret_len(buf), mk_r, error_r);
	secret_free(&buf);
	return ret;
}

static int fsync_parent(const char *path)
{
	char dir[4096];
	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return HK_ERR_TOO_LONG;
	int fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return HK_ERR_IO;
	int ret = fsync(fd) == 0 ? 0 : HK_ERR_IO;
	close(fd);
	return ret;
}

/* Writes len bytes to a new file (O_EXCL, 0600) and fsyncs it. */
static int write_new_file(const char *path, const uint8_t *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno == EEXIST ? HK_ERR_EXISTS : HK_ERR_IO;
	int ret = fchmod(fd, 0600) == 0 ? 0 : HK_ERR_IO;
	size_t done = 0;
	while (ret == 0 && done < len) {
		ssize_t w = write(fd, data + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			ret = HK_ERR_IO;
		else
			done += (size_t)w;
	}
	if (ret == 0 && fsync(fd) < 0)
		ret = HK_ERR_IO;
	if (close(fd) < 0 && ret == 0)
		ret = HK_ERR_IO;
	if (ret < 0)
		unlink(path);
	return ret;
}

/* Appends "key <id> <base64 of a fresh key>\n" at out + *len_io. */
static int append_fresh_key(struct secret *out, size_t *len_io, uint32_t id)
{
	struct secret *key = secret_random(HK_KEY_LEN);
	char line[64];
	int n = snprintf(line, sizeof(line), "key %u ", id);
	size_t need = (size_t)n + KEY_B64_LEN + 1;
	if (*len_io + need > secret_len(out)) {
		secret_free(&key);
		return HK_ERR_TOO_LONG;
	}
	uint8_t *dst = secret_bytes(out) + *len_io;
	memcpy(dst, line, (size_t)n);
	sodium_bin2base64((char *)dst + n, KEY_B64_LEN + 1, secret_cbytes(key), HK_KEY_LEN,
			  sodium_base64_VARIANT_ORIGINAL);
	dst[n + KEY_B64_LEN] = '\n';
	*len_io += need;
	secret_free(&key);
	return 0;
}

int masterkey_load_or_create(const char *path, struct masterkey **mk_r, const char **error_r)
{
	int ret = masterkey_load(path, mk_r, error_r);
	if (ret != HK_ERR_NOT_FOUND)
		return ret;

	struct secret *content = secret_new(256);
	size_t len = sizeof(HEADER) - 1;
	memcpy(secret_bytes(content), HEADER, len);
	ret = append_fresh_key(content, &len, 1);
	/* Written whole under a temporary name, then linked into place: a
	 * crash leaves either no keyring or a complete one, never an empty
	 * file that would stop every later start. link() fails with EEXIST
	 * when another process created the keyring first. */
	char tmp[4096];
	if (ret == 0 && snprintf(tmp, sizeof(tmp), "%s.new", path) >= (int)sizeof(tmp))
		ret = HK_ERR_TOO_LONG;
	if (ret == 0) {
		unlink(tmp); /* left over from an interrupted first start */
		ret = write_new_file(tmp, secret_cbytes(content), len);
	}
	if (ret == 0) {
		if (link(tmp, path) < 0)
			ret = errno == EEXIST ? HK_ERR_EXISTS : HK_ERR_IO;
		unlink(tmp);
	}
	if (ret == 0)
		ret = fsync_parent(path);
	if (ret == 0) {
		log_notice("created master key file %s (key id 1)", path);
		ret = masterkey_parse(secret_cbytes(content), len, mk_r, error_r);
	} else if (ret == HK_ERR_EXISTS) {
		/* Another process created it first: use theirs. */
		ret = masterkey_load(path, mk_r, error_r);
	} else {
		set_error(error_r, "cannot create master key file");
	}
	secret_free(&content);
	return ret;
}

int masterkey_rotate(const char *path, uint32_t *new_id_r, const char **error_r)
{
	struct secret *old = NULL, *content = NULL;
	struct masterkey *mk = NULL;
	char tmp[4096];
	int ret = read_keyfile(path, &old, error_r);
	if (ret < 0)
		return ret;
	if ((ret = masterkey_parse(secret_cbytes(old), secret_len(old), &mk, error_r)) < 0)
		goto out;
	uint32_t id = masterkey_current_id(mk);
	if (id == UINT32_MAX || mk->count == MASTERKEY_MAX_KEYS) {
		set_error(error_r, "master key file: no room for another key");
		ret = HK_ERR_TOO_LONG;
		goto out;
	}
	id++;
	size_t len = secret_len(old);
	content = secret_new(len + 128);
	memcpy(secret_bytes(content), secret_cbytes(old), len);
	if (len > 0 && secret_cbytes(old)[len - 1] != '\n')
		secret_bytes(content)[len++] = '\n';
	if ((ret = append_fresh_key(content, &len, id)) < 0)
		goto out;
	if (snprintf(tmp, sizeof(tmp), "%s.new", path) >= (int)sizeof(tmp)) {
		ret = HK_ERR_TOO_LONG;
		goto out;
	}
	unlink(tmp); /* left over from an interrupted rotation */
	ret = write_new_file(tmp, secret_cbytes(content), len);
	if (ret == 0 && rename(tmp, path) < 0)
		ret = HK_ERR_IO;
	if (ret == 0)
		ret = fsync_parent(path);
	if (ret < 0) {
		unlink(tmp);
		set_error(error_r, "cannot write master key file");
		goto out;
	}
	*new_id_r = id;
	log_notice("master key rotated: current key id is now %u", id);
out:
	masterkey_free(&mk);
	secret_free(&old);
	secret_free(&content);
	return ret;
}

uint32_t masterkey_current_id(const struct masterkey *mk)
{
	return mk->ids[mk->count - 1];
}

const uint8_t *masterkey_get(const struct masterkey *mk, uint32_t id)
{
	for (size_t i = 0; i < mk->count; i++)
		if (mk->ids[i] == id)
			return secret_cbytes(mk->keys) + i * HK_KEY_LEN;
	return NULL;
}

size_t masterkey_count(const struct masterkey *mk)
{
	return mk->count;
}

void masterkey_free(struct masterkey **mkp)
{
	struct masterkey *mk = *mkp;
	if (mk == NULL)
		return;
	*mkp = NULL;
	secret_free(&mk->keys);
	free(mk);
}
