/* The master key file: creation, permissions, parsing, rotation. */
#include "crypto/masterkey.h"
#include "crypto/secmem.h"
#include "test.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

void test_setup(void)
{
	if (secmem_init() < 0)
		abort();
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
	if (fd < 0)
		abort();
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		abort();
	fchmod(fd, mode);
	close(fd);
}

static void test_create_then_load(void)
{
	const char *path = test_path("mk-create");
	struct masterkey *a = NULL, *b = NULL;
	const char *err = NULL;
	REQUIRE(masterkey_load_or_create(path, &a, &err) == 0);
	struct stat st;
	REQUIRE(stat(path, &st) == 0);
	CHECK_INT(st.st_mode & 07777, 0600);
	CHECK_INT(masterkey_count(a), 1);
	CHECK_INT(masterkey_current_id(a), 1);
	REQUIRE(masterkey_load_or_create(path, &b, &err) == 0);
	CHECK_MEM(masterkey_get(a, 1), masterkey_get(b, 1), 32);
	CHECK(masterkey_get(a, 2) == NULL);
	masterkey_free(&a);
	masterkey_free(&b);
	CHECK(a == NULL);
	/* fresh files get fresh keys */
	const char *path2 = test_path("mk-create-2");
	REQUIRE(masterkey_load_or_create(path2, &a, &err) == 0);
	REQUIRE(masterkey_load(path, &b, &err) == 0);
	CHECK(memcmp(masterkey_get(a, 1), masterkey_get(b, 1), 32) != 0);
	masterkey_free(&a);
	masterkey_free(&b);
	/* load without create refuses a missing file */
	CHECK_INT(masterkey_load(test_path("missing"), &a, &err), HK_ERR_NOT_FOUND);
}

static void test_permissions_refused(void)
{
	const char *path = test_path("mk-perm");
	struct masterkey *mk = NULL;
	const char *err = NULL;
	REQUIRE(masterkey_load_or_create(path, &mk, &err) == 0);
	masterkey_free(&mk);
	static const mode_t bad[] = {0640, 0604, 0644, 0660, 0606, 0610, 0601};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		REQUIRE(chmod(path, bad[i]) == 0);
		err = NULL;
		CHECK_INT(masterkey_load_or_create(path, &mk, &err), HK_ERR_PERM);
		CHECK(err != NULL && strstr(err, "0600") != NULL);
		CHECK(mk == NULL);
	}
	REQUIRE(chmod(path, 0400) == 0);
	CHECK(masterkey_load(path, &mk, &err) == 0);
	masterkey_free(&mk);
	/* a symlink is not followed */
	const char *link = test_path("mk-link");
	REQUIRE(symlink(path, link) == 0);
	CHECK(masterkey_load(link, &mk, &err) < 0);
	CHECK(mk == NULL);
	/* a directory is refused */
	const char *dir = test_path("mk-dir");
	REQUIRE(mkdir(dir, 0700) == 0);
	CHECK(masterkey_load(dir, &mk, &err) < 0);
}

static void test_rotate(void)
{
	const char *path = test_path("mk-rotate");
	struct masterkey *a = NULL, *b = NULL;
	const char *err = NULL;
	REQUIRE(masterkey_load_or_create(path, &a, &err) == 0);
	uint32_t id = 0;
	REQUIRE(masterkey_rotate(path, &id, &err) == 0);
	CHECK_INT(id, 2);
	REQUIRE(masterkey_rotate(path, &id, &err) == 0);
	CHECK_INT(id, 3);
	REQUIRE(masterkey_load(path, &b, &err) == 0);
	CHECK_INT(masterkey_count(b), 3);
	CHECK_INT(masterkey_current_id(b), 3);
	CHECK_MEM(masterkey_get(a, 1), masterkey_get(b, 1), 32); /* old key kept */
	CHECK(memcmp(masterkey_get(b, 2), masterkey_get(b, 3), 32) != 0);
	struct stat st;
	REQUIRE(stat(path, &st) == 0);
	CHECK_INT(st.st_mode & 07777, 0600);
	CHECK(access(test_path("mk-rotate.new"), F_OK) != 0);
	masterkey_free(&a);
	masterkey_free(&b);
	CHECK_INT(masterkey_rotate(test_path("nope"), &id, &err), HK_ERR_NOT_FOUND);
}

static int parse(const char *text, const char **err)
{
	struct masterkey *mk = NULL;
	*err = NULL;
	int ret = masterkey_parse((const uint8_t *)text, strlen(text), &mk, err);
	CHECK((ret == 0) == (mk != NULL));
	CHECK(ret == 0 || *err != NULL);
	masterkey_free(&mk);
	return ret;
}

#define K32 "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
#define HDR "halfkey-master-keyring 1\n"

static void test_parse_malformed(void)
{
	const char *err;
	CHECK_INT(parse(HDR "key 1 " K32 "\n", &err), 0);
	CHECK_INT(parse(HDR "# comment\n\nkey 5 " K32 "\nkey 9 " K32 "\n", &err), 0);
	CHECK_INT(parse("", &err), HK_ERR_VERSION);
	CHECK_INT(parse("halfkey-master-keyring 2\nkey 1 " K32 "\n", &err), HK_ERR_VERSION);
	CHECK_INT(parse(HDR, &err), HK_ERR_INVAL); /* no key */
	CHECK_INT(parse(HDR "key 1 " K32, &err), HK_ERR_INVAL);			 /* no newline */
	CHECK_INT(parse(HDR "key 0 " K32 "\n", &err), HK_ERR_INVAL);		 /* id 0 */
	CHECK_INT(parse(HDR "key 01 " K32 "\n", &err), HK_ERR_INVAL);		 /* leading zero */
	CHECK_INT(parse(HDR "key 4294967296 " K32 "\n", &err), HK_ERR_INVAL); /* > u32 */
	CHECK_INT(parse(HDR "key 4294967295 " K32 "\n", &err), 0);
	CHECK_INT(parse(HDR "key -1 " K32 "\n", &err), HK_ERR_INVAL);
	CHECK_INT(parse(HDR "key 2 " K32 "\nkey 2 " K32 "\n", &err), HK_ERR_INVAL);
	CHECK_INT(parse(HDR "key 3 " K32 "\nkey 2 " K32 "\n", &err), HK_ERR_INVAL);
	CHECK_INT(parse(HDR "key 1 AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ==\n", &err),
		  HK_ERR_INVAL); /* 31 bytes */
	CHECK_INT(parse(HDR "key 1 AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE!\n", &err),
		  HK_ERR_INVAL);
	CHECK_INT(parse(HDR "key 1 " K32 " \n", &err), HK_ERR_INVAL);
	CHECK_INT(parse(HDR "key 1  " K32 "\n", &err), HK_ERR_INVAL);
	CHECK_INT(parse(HDR "kez 1 " K32 "\n", &err), HK_ERR_INVAL);
	CHECK_INT(parse(HDR "key\n", &err), HK_ERR_INVAL);

	/* too many keys */
	char *many = malloc(8192);
	REQUIRE(many != NULL);
	size_t n = (size_t)snprintf(many, 8192, HDR);
	for (int i = 1; i <= MASTERKEY_MAX_KEYS + 1; i++)
		n += (size_t)snprintf(many + n, 8192 - n, "key %d " K32 "\n", i);
	CHECK_INT(parse(many, &err), HK_ERR_TOO_LONG);
	free(many);

	/* oversize file */
	struct masterkey *mk = NULL;
	uint8_t *big = calloc(1, MASTERKEY_FILE_MAX + 1);
	REQUIRE(big != NULL);
	memcpy(big, HDR, strlen(HDR));
	CHECK_INT(masterkey_parse(big, MASTERKEY_FILE_MAX + 1, &mk, &err), HK_ERR_TOO_LONG);
	free(big);

	/* and the same through the file loader */
	const char *path = test_path("mk-bad");
	write_file(path, HDR "key 1 nope\n", 0600);
	CHECK_INT(masterkey_load_or_create(path, &mk, &err), HK_ERR_INVAL);
	CHECK(mk == NULL);
}

/* First start writes the keyring under a temporary name and links it into
 * place, so a crash never leaves an empty keyring; a temporary file left by
 * such a crash does not get in the way. */
static void test_create_is_atomic(void)
{
	const char *path = test_path("mk-atomic");
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	write_file(tmp, "half a keyr", 0600);
	struct masterkey *mk = NULL;
	const char *err = NULL;
	REQUIRE(masterkey_load_or_create(path, &mk, &err) == 0);
	CHECK_INT(masterkey_count(mk), 1);
	CHECK(access(tmp, F_OK) != 0);
	masterkey_free(&mk);
	REQUIRE(masterkey_load(path, &mk, &err) == 0);
	masterkey_free(&mk);
}

TESTS(TEST(test_create_is_atomic), TEST(test_create_then_load), TEST(test_permissions_refused), TEST(test_rotate),
      TEST(test_parse_malformed));
