#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static bool case_failed;
static bool case_skipped;
static char tmpdir[256];

bool test_check(bool cond, const char *expr, const char *file, int line)
{
	if (!cond) {
		fprintf(stderr, "  FAIL %s:%d: %s\n", file, line, expr);
		case_failed = true;
	}
	return cond;
}

bool test_check_int(long long a, long long b, const char *ea, const char *eb, const char *file,
		    int line)
{
	if (a != b) {
		fprintf(stderr, "  FAIL %s:%d: %s == %s (%lld != %lld)\n", file, line, ea, eb, a, b);
		case_failed = true;
	}
	return a == b;
}

bool test_check_mem(const void *a, const void *b, size_t n, const char *ea, const char *eb,
		    const char *file, int line)
{
	bool ok = a != NULL && b != NULL && memcmp(a, b, n) == 0;
	if (!ok) {
		fprintf(stderr, "  FAIL %s:%d: %s == %s (%zu bytes differ)\n", file, line, ea, eb,
			n);
		case_failed = true;
	}
	return ok;
}

bool test_failed(void)
{
	return case_failed;
}

void test_skip(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "  SKIP: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	case_skipped = true;
}

static void rm_tree(const char *path)
{
	DIR *d = opendir(path);
	if (d != NULL) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			char sub[512];
			snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
			rm_tree(sub);
		}
		closedir(d);
		rmdir(path);
	} else {
		unlink(path);
	}
}

static void cleanup_tmpdir(void)
{
	if (tmpdir[0] != '\0' && getenv("HK_TEST_KEEP") == NULL)
		rm_tree(tmpdir);
}

const char *test_tmpdir(void)
{
	if (tmpdir[0] == '\0') {
		const char *base = getenv("TMPDIR");
		snprintf(tmpdir, sizeof(tmpdir), "%s/hk-test-XXXXXX", base ? base : "/tmp");
		if (mkdtemp(tmpdir) == NULL) {
			perror("mkdtemp");
			abort();
		}
		atexit(cleanup_tmpdir);
	}
	return tmpdir;
}

const char *test_path(const char *name)
{
	static char bufs[8][512];
	static unsigned next;
	char *b = bufs[next++ % 8];
	snprintf(b, sizeof(bufs[0]), "%s/%s", test_tmpdir(), name);
	return b;
}

size_t test_file_count(const char *path, const void *needle, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size == 0) {
		close(fd);
		return 0;
	}
	size_t len = (size_t)st.st_size;
	unsigned char *buf = malloc(len);
	size_t got = 0;
	while (buf != NULL && got < len) {
		ssize_t r = read(fd, buf + got, len - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	size_t hits = 0;
	for (size_t i = 0; buf != NULL && n > 0 && i + n <= got; i++)
		if (memcmp(buf + i, needle, n) == 0)
			hits++;
	free(buf);
	return hits;
}

int main(int argc, char **argv)
{
	size_t passed = 0, failed = 0, skipped = 0;
	if (test_setup != NULL)
		test_setup();
	for (size_t i = 0; i < hk_test_count; i++) {
		if (argc > 1) {
			bool want = false;
			for (int a = 1; a < argc; a++)
				want |= strcmp(argv[a], hk_tests[i].name) == 0;
			if (!want)
				continue;
		}
		case_failed = false;
		case_skipped = false;
		hk_tests[i].fn();
		if (case_failed) {
			failed++;
			fprintf(stderr, "not ok %s\n", hk_tests[i].name);
		} else if (case_skipped) {
			skipped++;
			fprintf(stderr, "skip %s\n", hk_tests[i].name);
		} else {
			passed++;
			fprintf(stderr, "ok %s\n", hk_tests[i].name);
		}
	}
	if (skipped > 0)
		printf("%s: %zu passed, %zu failed, %zu skipped\n", argv[0], passed, failed,
		       skipped);
	else
		printf("%s: %zu passed, %zu failed\n", argv[0], passed, failed);
	if (failed == 0 && passed == 0 && skipped > 0)
		return 77;
	return failed == 0 && passed > 0 ? 0 : 1;
}
