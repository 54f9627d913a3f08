/* util: allocation that cannot fail silently, string lists, small helpers. */
#ifndef POSTBOTE_UTIL_H
#define POSTBOTE_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))

/* Allocation failure ends the program with EX_OSERR (71): there is nothing
 * sensible a mail client can do without memory, and the message is still
 * the caller's (we never exit 0 on it). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* Overwrite then free a secret. */
void free_secret(char *s);

/* snprintf into a fixed buffer; truncation is marked with "..." rather than
 * silently cutting a message. */
void format_into(char *buf, size_t size, const char *fmt, ...) PRINTF_LIKE(3, 4);

/* Copy text into buf with control characters and bytes >= 0x7f made
 * visible (\r, \n, \t, \xNN), always NUL-terminated, "..." on truncation. */
void make_visible(char *buf, size_t size, const char *text, size_t len);

struct strlist {
	char **v;
	size_t n;
	size_t cap;
};

void strlist_add(struct strlist *l, const char *s);
/* Add unless an equal string (ASCII case-insensitive) is present;
 * returns true when added. */
bool strlist_add_unique(struct strlist *l, const char *s);
bool strlist_contains(const struct strlist *l, const char *s);
void strlist_free(struct strlist *l);

/* write(2) until all of p is written (EINTR retried): 0, or -1 (errno). */
int write_all(int fd, const void *p, size_t n);

/* A new temporary file in dir (else $TMPDIR, else /tmp) named
 * PREFIX.XXXXXX, unlinked at once and close-on-exec: the data lives exactly
 * as long as the descriptor, however the program ends. -1 with err. */
int temp_file_unlinked(const char *dir, const char *prefix, char *err,
		       size_t errlen);

/* ASCII case-insensitive comparison, independent of locale. */
int ascii_casecmp(const char *a, const char *b);
int ascii_ncasecmp(const char *a, const char *b, size_t n);

#endif
