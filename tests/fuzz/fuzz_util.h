/* Helpers shared by the libFuzzer harnesses in tests/fuzz (see the comment
 * at the top of tests/fuzz/run). Each harness includes this once; the
 * functions are static so that every harness is one translation unit plus
 * the module sources it tests. */
#ifndef POSTBOTE_FUZZ_UTIL_H
#define POSTBOTE_FUZZ_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* An invariant the module's header promises. abort() makes libFuzzer save
 * the input and print the stack; the message names the broken promise. */
#define FUZZ_CHECK(cond) \
	((cond) ? (void)0 : fuzz_check_failed(#cond, __FILE__, __LINE__))

static inline void fuzz_check_failed(const char *what, const char *file,
				     int line) __attribute__((noreturn));
static inline void fuzz_check_failed(const char *what, const char *file,
				     int line)
{
	fprintf(stderr, "%s:%d: invariant violated: %s\n", file, line, what);
	abort();
}

/* The fuzzer's bytes as a C string: the module sees them up to the first
 * NUL, as it would see a string from argv, a header or a file. */
static inline char *fuzz_cstring(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	FUZZ_CHECK(s != NULL);
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* A growing byte buffer for building expected output. */
struct fuzz_buf {
	char *p;
	size_t n;
	size_t cap;
};

static inline void fuzz_buf_add(struct fuzz_buf *b, const void *data,
				size_t n)
{
	if (b->n + n + 1 > b->cap) {
		b->cap = (b->n + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		FUZZ_CHECK(b->p != NULL);
	}
	if (n)
		memcpy(b->p + b->n, data, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static inline void fuzz_buf_addc(struct fuzz_buf *b, char c)
{
	fuzz_buf_add(b, &c, 1);
}

static inline void fuzz_buf_free(struct fuzz_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->n = b->cap = 0;
}

/* Walks the input line by line, split at LF (the LF is not part of the
 * line; with strip_cr a CR right before it is not either). */
struct fuzz_lines {
	const uint8_t *p;
	size_t left;
	bool strip_cr;
};

/* The next line as a new NUL-terminated copy, or NULL at the end. A line
 * with a NUL in it reads as the part before the NUL, as in C. */
static inline char *fuzz_next_line(struct fuzz_lines *it)
{
	const uint8_t *lf;
	size_t len, skip;

	if (it->left == 0)
		return NULL;
	lf = memchr(it->p, '\n', it->left);
	len = lf ? (size_t)(lf - it->p) : it->left;
	skip = lf ? len + 1 : len;
	char *line = fuzz_cstring(it->p, len);
	if (it->strip_cr && lf && len > 0 && line[len - 1] == '\r')
		line[len - 1] = '\0';
	it->p += skip;
	it->left -= skip;
	return line;
}

/* An anonymous in-memory file holding data, positioned at its start; the
 * modules that want a path get /proc/self/fd/N for it. */
static inline int fuzz_memfd(const uint8_t *data, size_t size)
{
	int fd = memfd_create("postbote-fuzz", MFD_CLOEXEC);
	size_t off = 0;

	FUZZ_CHECK(fd >= 0);
	while (off < size) {
		ssize_t w = write(fd, data + off, size - off);
		if (w < 0 && errno == EINTR)
			continue;
		FUZZ_CHECK(w > 0);
		off += (size_t)w;
	}
	FUZZ_CHECK(lseek(fd, 0, SEEK_SET) == 0);
	return fd;
}

static inline bool fuzz_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static inline char fuzz_ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

static inline bool fuzz_ascii_eq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if (fuzz_ascii_lower(*a) != fuzz_ascii_lower(*b))
			return false;
	return *a == *b;
}

#endif
