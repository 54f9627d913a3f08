#include "autoconf.h"
#include "aliases.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"

/* The entry msmtp uses for any local name without an entry of its own. */
#define ALIAS_DEFAULT "default"

struct alias {
	char *name;
	struct strlist addrs;
	size_t line;          /* where it was defined, for error messages */
};

struct aliases {
	struct alias *v;
	size_t n;
	size_t cap;
};

struct loader {
	const char *path;
	size_t lineno;
	struct aliases *a;
	char *err;
	size_t errlen;
};

static int fail(struct loader *l, const char *fmt, ...) PRINTF_LIKE(2, 3);

/* Every complaint names the file and line, as the config parser does. */
static int fail(struct loader *l, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	format_into(l->err, l->errlen, "%s:%zu: %s", l->path, l->lineno, msg);
	return -1;
}

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* msmtp: "Comments start with '#' and end at the end of the line", also
 * after an entry. '#' is atext (RFC 5322 3.2.3), so one that belongs to
 * an address has to be inside a quoted string, where it is kept. */
static void strip_comment(char *line)
{
	bool quoted = false;

	for (char *s = line; *s; s++) {
		if (quoted && *s == '\\' && s[1])
			s++;
		else if (*s == '"')
			quoted = !quoted;
		else if (!quoted && *s == '#') {
			*s = '\0';
			return;
		}
	}
}

/* White space and a CR (a file written on another system) at the end. */
static void strip_trailing_space(char *line)
{
	size_t n = strlen(line);

	while (n > 0 && (is_wsp(line[n - 1]) || line[n - 1] == '\r'))
		line[--n] = '\0';
}

/* A name is a local part as sendmail callers write it: RFC 5322 atext
 * (and UTF-8, RFC 6532) with dots. '@' is refused with its own message:
 * a name with a domain is never looked up, so such an entry would never
 * be used. */
static int check_name(struct loader *l, const char *name)
{
	static const char allowed[] = "!#$%&'*+-/=?^_`{|}~.";

	if (!name[0])
		return fail(l, "the alias name before ':' is missing");
	if (strchr(name, '@'))
		return fail(l, "alias \"%s\": names are local names, without '@'",
			    name);
	for (const char *s = name; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x80 || (c >= 'a' && c <= 'z') ||
		    (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr(allowed, c))
			continue;
		return fail(l, "alias \"%s\": a name cannot contain '%c'",
			    name, c);
	}
	return 0;
}

static struct alias *find_alias(const struct aliases *a, const char *name)
{
	for (size_t i = 0; i < a->n; i++)
		if (ascii_casecmp(a->v[i].name, name) == 0)
			return &a->v[i];
	return NULL;
}

/* The targets of a local MTA's aliases(5) that a submission client cannot
 * deliver to: a command, a file, an include. Refused by name so that a
 * file written for sendmail or Postfix gets a clear message instead of a
 * recipient "|/usr/bin/procmail@domain". Checked on each comma-separated
 * piece, a quoted one included. */
static int refuse_local_targets(struct loader *l, const char *text)
{
	bool quoted = false, piece_start = true;

	for (const char *s = text; *s; s++) {
		if (piece_start && is_wsp(*s))
			continue;
		if (piece_start) {
			const char *t = *s == '"' ? s + 1 : s;
			if (*t == '|' || *t == '/' ||
			    strncmp(t, ":include:", 9) == 0)
				return fail(l, "\"%.40s\": commands, files and "
					    ":include: need a local mail server; "
					    "postbote sends only to addresses", s);
			piece_start = false;
		}
		if (quoted && *s == '\\' && s[1])
			s++;
		else if (*s == '"')
			quoted = !quoted;
		else if (!quoted && *s == ',')
			piece_start = true;
	}
	return 0;
}

/* The addresses on one line go to entry e. Each line is parsed on its own
 * (RFC 5322 address-list syntax), so the position in an error is on this
 * line, and a comma at the end of a continued line may be left out. */
static int add_addresses(struct loader *l, struct alias *e, const char *text)
{
	struct strlist found = { 0 };
	char why[200];
	int rc = 0;

	if (refuse_local_targets(l, text) != 0)
		return -1;
	if (address_list_parse(text, &found, why, sizeof why) < 0)
		rc = fail(l, "alias \"%s\": %s", e->name, why);
	for (size_t i = 0; rc == 0 && i < found.n; i++) {
		if (!address_is_safe_for_envelope(found.v[i], why, sizeof why))
			rc = fail(l, "alias \"%s\": %s", e->name, why);
		else
			strlist_add_unique(&e->addrs, found.v[i]);
	}
	strlist_free(&found);
	return rc;
}

/* An entry whose lines named no address at all is a mistake in the file,
 * not a way to drop mail: said at the line that starts it. */
static int finish_entry(struct loader *l)
{
	const struct alias *e = l->a->n ? &l->a->v[l->a->n - 1] : NULL;

	if (!e || e->addrs.n > 0)
		return 0;
	l->lineno = e->line;
	return fail(l, "alias \"%s\" has no address", e->name);
}

/* "name: addresses". A name defined twice is refused rather than one of
 * the two silently winning. */
static int start_entry(struct loader *l, char *line)
{
	char *colon = strchr(line, ':');
	char *name = line;
	struct alias *e;

	if (finish_entry(l) != 0)
		return -1;
	if (!colon)
		return fail(l, "expected \"name: address, ...\" but there is no ':'");
	*colon = '\0';
	strip_trailing_space(name);
	if (check_name(l, name) != 0)
		return -1;
	e = find_alias(l->a, name);
	if (e)
		return fail(l, "alias \"%s\" is already defined on line %zu",
			    name, e->line);
	if (l->a->n == l->a->cap) {
		l->a->cap = l->a->cap ? l->a->cap * 2 : 16;
		l->a->v = xrealloc(l->a->v, l->a->cap * sizeof *l->a->v);
	}
	e = &l->a->v[l->a->n++];
	*e = (struct alias){ .name = xstrdup(name), .line = l->lineno };
	return add_addresses(l, e, colon + 1);
}

/* sendmail's aliases(5): a line that begins with white space continues
 * the entry before it. Blank and comment lines in between do not end it. */
static int load_line(struct loader *l, char *line, size_t len)
{
	if (memchr(line, '\0', len))
		return fail(l, "the line contains a NUL byte");
	strip_comment(line);
	strip_trailing_space(line);
	if (line[strspn(line, " \t")] == '\0')
		return 0;
	if (!is_wsp(line[0]))
		return start_entry(l, line);
	if (l->a->n == 0)
		return fail(l, "a continuation line (starting with white space) "
			    "without an alias before it");
	return add_addresses(l, &l->a->v[l->a->n - 1], line);
}

static int load_stream(struct loader *l, FILE *f)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc = 0;

	while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
		l->lineno++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		rc = load_line(l, line, (size_t)len);
	}
	if (rc == 0 && ferror(f)) {
		format_into(l->err, l->errlen, "%s: %s", l->path,
			    strerror(errno));
		rc = -1;
	}
	if (rc == 0)
		rc = finish_entry(l);
	free(line);
	return rc;
}

int aliases_load(const char *path, struct aliases **out, char *err,
		 size_t errlen)
{
	struct loader l = {
		.path = path, .a = xcalloc(1, sizeof *l.a),
		.err = err, .errlen = errlen,
	};
	FILE *f = fopen(path, "re");
	int rc;

	*out = NULL;
	if (!f) {
		format_into(err, errlen, "%s: %s", path, strerror(errno));
		aliases_free(l.a);
		return -1;
	}
	rc = load_stream(&l, f);
	fclose(f);
	if (rc != 0) {
		aliases_free(l.a);
		return -1;
	}
	*out = l.a;
	return 0;
}

void aliases_free(struct aliases *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++) {
		free(a->v[i].name);
		strlist_free(&a->v[i].addrs);
	}
	free(a->v);
	free(a);
}

/* One step only, as msmtp does: the addresses of an entry are not looked
 * up again, so there are no loops, and a local name an entry maps to is
 * qualified by the caller like any other. */
int aliases_expand(const struct aliases *a, const char *local_name,
		   struct strlist *out)
{
	const struct alias *e;

	if (!a || !local_name[0] || !address_is_local(local_name))
		return 0;
	e = find_alias(a, local_name);
	if (!e)
		e = find_alias(a, ALIAS_DEFAULT);
	if (!e)
		return 0;
	for (size_t i = 0; i < e->addrs.n; i++)
		strlist_add_unique(out, e->addrs.v[i]);
	return (int)e->addrs.n;
}
