/* Zero-on-free for the whole process: halfkeyd's free() and realloc().
 *
 * crypto/wipealloc.h gives OpenSSL, libcurl, SQLite and jansson a wiping
 * allocator through their own hooks. Libraries that have no such hook and
 * still see a secret go around it: libnghttp2 (HTTP/2 to mail servers)
 * copies every request's header list, Authorization included, into a
 * block of its own, and curl 7.88 offers no way to hand it an allocator.
 * Defined in the executable, these functions take the place of the C
 * library's for every shared library in the process (ELF symbol
 * interposition; glibc supports replacing its malloc family), so that no
 * freed block of any library keeps its bytes.
 *
 * Only free and realloc (and reallocarray, which glibc does not route
 * through realloc) are replaced; allocation stays glibc's own, so
 * malloc_usable_size() is valid for every block and the whole usable size
 * is ours to wipe. realloc never lets glibc move a block (glibc frees the
 * old one internally, unwiped): it allocates, copies, and wipes and frees
 * the old block itself; shrinking wipes the tail before glibc may split
 * it off.
 *
 * Not in sanitizer builds (ASan and valgrind replace the same functions)
 * and not in the libraries: only executables that list this file. Every
 * function here must not allocate, log or take locks of its own. */
#include <errno.h>
#include <malloc.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* glibc's implementations, exported for exactly this purpose. */
extern void __libc_free(void *p);
extern void *__libc_malloc(size_t n);
extern void *__libc_realloc(void *p, size_t n);

void free(void *p)
{
	if (p == NULL)
		return;
	explicit_bzero(p, malloc_usable_size(p));
	__libc_free(p);
}

void *realloc(void *p, size_t n)
{
	if (p == NULL)
		return __libc_malloc(n);
	if (n == 0) { /* glibc: frees the block, returns NULL */
		free(p);
		return NULL;
	}
	size_t have = malloc_usable_size(p);
	if (n <= have) {
		/* in place; the tail may become a free chunk of its own */
		explicit_bzero((unsigned char *)p + n, have - n);
		return __libc_realloc(p, n);
	}
	void *q = __libc_malloc(n);
	if (q == NULL)
		return NULL; /* p stays valid and untouched, as realloc promises */
	memcpy(q, p, have);
	free(p);
	return q;
}

void *reallocarray(void *p, size_t nmemb, size_t size)
{
	size_t n;
	if (__builtin_mul_overflow(nmemb, size, &n)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, n);
}

