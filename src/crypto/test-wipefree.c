/* crypto/wipefree.c: free() and realloc() of the whole process leave no
 * copy of a freed block's bytes, including blocks that a shared library
 * (here jansson, left on its default malloc/free) allocates and frees.
 *
 * The check reads the process's own heap (the main arena, [heap] in
 * /proc/self/maps) through /proc/self/mem and counts a random marker. The
 * marker's bytes exist only in the blocks under test: the test keeps it
 * bitwise inverted and compares inverted, and its read buffer is in .bss,
 * outside the heap. A control frees a marked block with glibc's own free
 * and finds the marker still there, so a scan that finds nothing means the
 * wipe, not a blind scanner. Not built for sanitizer builds (which replace
 * the same functions). */
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

extern void __libc_free(void *p);

#define MARK 32
static unsigned char mark_inv[MARK]; /* the marker, inverted */
static unsigned char readbuf[1 << 20];
/* Called through pointers: the compiler's knowledge of realloc would
 * otherwise reject what a failed realloc allows (using the old block). */
static void *(*volatile realloc_fn)(void *, size_t) = realloc;
static void *(*volatile reallocarray_fn)(void *, size_t, size_t) = reallocarray;

static void make_marker(void)
{
	static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char r[MARK];
	CHECK_INT(getrandom(r, sizeof(r), 0), (long)sizeof(r));
	for (size_t i = 0; i < MARK; i++)
		mark_inv[i] = (unsigned char)~(unsigned char)alnum[r[i] % 62];
	explicit_bzero(r, sizeof(r));
}

/* Writes the marker at p (MARK bytes) without ever holding it elsewhere. */
static void put_marker(unsigned char *p)
{
	for (size_t i = 0; i < MARK; i++)
		p[i] = (unsigned char)~mark_inv[i];
}

static bool is_marker_at(const unsigned char *p)
{
	for (size_t i = 0; i < MARK; i++)
		if ((unsigned char)~p[i] != mark_inv[i])
			return false;
	return true;
}

/* Copies of the marker in the main arena and in anonymous mappings (large
 * blocks), -1 when the heap cannot be read. */
static long count_marker(void)
{
	FILE *maps = fopen("/proc/self/maps", "r");
	int fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	if (maps == NULL || fd < 0) {
		if (maps != NULL)
			fclose(maps);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	long count = 0;
	char line[512];
	bool heap = false;
	uintptr_t rb = (uintptr_t)readbuf;
	while (fgets(line, sizeof(line), maps) != NULL) {
		/* "lo-hi perms offset dev inode [path]" */
		char *save = NULL, *f[6] = {0};
		int nf = 0;
		for (char *t = strtok_r(line, " \n", &save); t != NULL && nf < 6;
		     t = strtok_r(NULL, " \n", &save))
			f[nf++] = t;
		if (nf < 5)
			continue;
		char *end;
		unsigned long lo = strtoul(f[0], &end, 16);
		if (*end != '-')
			continue;
		unsigned long hi = strtoul(end + 1, NULL, 16);
		const char *perms = f[1];
		bool is_heap = nf == 6 && strcmp(f[5], "[heap]") == 0;
		bool anon = nf == 5;
		if (perms[0] != 'r' || perms[1] != 'w' || !(is_heap || anon))
			continue;
		if (rb >= lo && rb < hi)
			continue; /* .bss shares an anonymous neighbour sometimes: never our buffer */
		heap |= is_heap;
		for (unsigned long pos = lo; pos < hi;) {
			size_t want = hi - pos < sizeof(readbuf) ? hi - pos : sizeof(readbuf);
			ssize_t got = pread(fd, readbuf, want, (off_t)pos);
			if (got <= 0)
				break;
			for (ssize_t i = 0; i + MARK <= got; i++)
				if ((unsigned char)~readbuf[i] == mark_inv[0] && is_marker_at(readbuf + i))
					count++;
			/* a marker straddling two reads: reads overlap by MARK - 1 */
			pos += (size_t)got > MARK ? (size_t)got - (MARK - 1) : (size_t)got;
		}
	}
	explicit_bzero(readbuf, sizeof(readbuf));
	fclose(maps);
	close(fd);
	return heap ? count : -1;
}

void test_setup(void)
{
	make_marker();
}

static void test_scanner_control(void)
{
	CHECK_INT(count_marker(), 0);
	unsigned char *p = malloc(200);
	CHECK(p != NULL);
	put_marker(p + 50);
	CHECK_INT(count_marker(), 1);
	/* glibc's own free keeps everything but the first 16 bytes: the scan
	 * sees the copy that the wiping free exists to remove */
	__libc_free(p);
	CHECK_INT(count_marker(), 1);
	/* the same memory, reused and wiped, ends the control's copy */
	unsigned char *q = malloc(200);
	explicit_bzero(q, 200);
	free(q);
}

static void test_free_wipes(void)
{
	/* tcache, small bins, large bins, and an mmapped block */
	static const size_t sizes[] = {MARK, 40, 200, 1000, 5000, 100000, 300000};
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		unsigned char *p = malloc(sizes[k]);
		CHECK(p != NULL);
		put_marker(p + sizes[k] - MARK); /* the end of the requested size */
		CHECK_INT(count_marker(), 1);
		free(p);
		CHECK_INT(count_marker(), 0);
	}
	free(NULL);
}

static void test_realloc_grow(void)
{
	/* in the arena, then to an mmapped block */
	unsigned char *p = malloc(64);
	CHECK(p != NULL);
	put_marker(p + 16);
	unsigned char *q = realloc(p, 4096);
	CHECK(q != NULL);
	CHECK(is_marker_at(q + 16));
	CHECK_INT(count_marker(), 1);
	unsigned char *r = realloc(q, 400000);
	CHECK(r != NULL);
	CHECK(is_marker_at(r + 16));
	CHECK_INT(count_marker(), 1);
	free(r);
	CHECK_INT(count_marker(), 0);
}

static void test_realloc_shrink(void)
{
	unsigned char *p = malloc(4096);
	CHECK(p != NULL);
	put_marker(p);
	put_marker(p + 2048);
	CHECK_INT(count_marker(), 2);
	unsigned char *q = realloc(p, 100);
	CHECK(q != NULL);
	CHECK(is_marker_at(q));
	CHECK_INT(count_marker(), 1); /* the tail went back wiped */
	free(q);
	CHECK_INT(count_marker(), 0);
}

static void test_realloc_edges(void)
{
	unsigned char *p = realloc_fn(NULL, 100);
	CHECK(p != NULL);
	put_marker(p);
	CHECK_INT(count_marker(), 1);
	CHECK(realloc_fn(p, 0) == NULL); /* frees, as glibc's does */
	CHECK_INT(count_marker(), 0);

	p = malloc(64);
	put_marker(p);
	errno = 0;
	CHECK(reallocarray_fn(p, SIZE_MAX / 2, 4) == NULL);
	CHECK_INT(errno, ENOMEM);
	CHECK(is_marker_at(p)); /* untouched on failure */
	unsigned char *q = reallocarray_fn(p, 100, 50);
	CHECK(q != NULL);
	CHECK(is_marker_at(q));
	CHECK_INT(count_marker(), 1);
	free(q);
	CHECK_INT(count_marker(), 0);
	/* an impossible size fails without touching the block */
	p = malloc(64);
	put_marker(p);
	CHECK(realloc_fn(p, SIZE_MAX - 4096) == NULL);
	CHECK(is_marker_at(p));
	free(p);
	CHECK_INT(count_marker(), 0);
}

/* A shared library's own malloc/free: jansson on its defaults copies the
 * string member into blocks of its own and frees them on json_decref. */
static void test_library_frees(void)
{
	char text[128] = "{\"k\": \"";
	size_t n = strlen(text);
	put_marker((unsigned char *)text + n);
	memcpy(text + n + MARK, "\"}", 3);
	CHECK_INT(count_marker(), 0); /* text is on the stack, not scanned */
	json_error_t err;
	json_t *j = json_loads(text, 0, &err);
	explicit_bzero(text, sizeof(text));
	CHECK(j != NULL);
	CHECK(count_marker() >= 1);
	json_decref(j);
	CHECK_INT(count_marker(), 0);
}

TESTS(TEST(test_scanner_control), TEST(test_free_wipes), TEST(test_realloc_grow),
      TEST(test_realloc_shrink), TEST(test_realloc_edges), TEST(test_library_frees));
