#include "autoconf.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

static void out_of_memory(void)
{
	static const char msg[] = "postbote: out of memory\n";
	(void)!fwrite(msg, 1, sizeof msg - 1, stderr);
	exit(EX_OSERR);
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		out_of_memory();
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		out_of_memory();
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		out_of_memory();
	return q;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0)
		out_of_memory();
	va_end(ap);
	return p;
}

void free_secret(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

static void mark_truncated(char *buf, size_t size)
{
	if (size >= 4)
		memcpy(buf + size - 4, "...", 4);
}

void format_into(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;
	if (size == 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0)
		buf[0] = '\0';
	else if ((size_t)n >= size)
		mark_truncated(buf, size);
}

void make_visible(char *buf, size_t size, const char *text, size_t len)
{
	size_t o = 0;
	if (size == 0)
		return;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		char tmp[5];
		size_t tl;
		if (c == '\r') {
			memcpy(tmp, "\\r", 2); tl = 2;
		} else if (c == '\n') {
			memcpy(tmp, "\\n", 2); tl = 2;
		} else if (c == '\t') {
			memcpy(tmp, "\\t", 2); tl = 2;
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(tmp, sizeof tmp, "\\x%02x", c); tl = 4;
		} else {
			tmp[0] = (char)c; tl = 1;
		}
		if (o + tl + 1 > size) {
			buf[o] = '\0';
			mark_truncated(buf, size);
			return;
		}
		memcpy(buf + o, tmp, tl);
		o += tl;
	}
	buf[o] = '\0';
}

void strlist_add(struct strlist *l, const char *s)
{
	if (l->n + 1 >= l->cap) {
		l->cap = l->cap ? l->cap * 2 : 8;
		l->v = xrealloc(l->v, l->cap * sizeof *l->v);
	}
	l->v[l->n++] = xstrdup(s);
	l->v[l->n] = NULL;
}

bool strlist_contains(const struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (ascii_casecmp(l->v[i], s) == 0)
			return true;
	return false;
}

bool strlist_add_unique(struct strlist *l, const char *s)
{
	if (strlist_contains(l, s))
		return false;
	strlist_add(l, s);
	return true;
}

void strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

static int ascii_lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

int ascii_ncasecmp(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int ca = ascii_lower((unsigned char)a[i]);
		int cb = ascii_lower((unsigned char)b[i]);
		if (ca != cb)
			return ca - cb;
		if (ca == 0)
			return 0;
	}
	return 0;
}

int ascii_casecmp(const char *a, const char *b)
{
	return ascii_ncasecmp(a, b, (size_t)-1);
}

int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

int temp_file_unlinked(const char *dir, const char *prefix, char *err,
		       size_t errlen)
{
	char *path;
	int fd;
	if (!dir || !*dir)
		dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	path = xasprintf("%s/%s.XXXXXX", dir, prefix);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0) {
		format_into(err, errlen, "cannot create a spool file in %s: %s",
			    dir, strerror(errno));
	} else if (unlink(path) != 0) {
		format_into(err, errlen, "cannot unlink spool file %s: %s", path,
			    strerror(errno));
		close(fd);
		fd = -1;
	}
	free(path);
	return fd;
}
