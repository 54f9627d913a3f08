/* libFuzzer harness: the EHLO reply parser (smtp_caps_parse, src/smtp.h).
 * Every input line becomes the text of one line of a 250 reply, as
 * smtp_read_reply would have built it; the first is the server's name,
 * the others are EHLO keywords (RFC 5321 4.1.1.1). */
#include "autoconf.h"

#include "smtp.h"
#include "util.h"

#include "fuzz_util.h"

/* RFC 5321 4.1.1.1: ehlo-line = ehlo-keyword *( SP ehlo-param ), keywords
 * case-insensitive. True when line is keyword kw with or without params. */
static bool line_is_keyword(const char *line, const char *kw)
{
	size_t n = strlen(kw);

	for (size_t i = 0; i < n; i++)
		if (fuzz_ascii_lower(line[i]) != fuzz_ascii_lower(kw[i]))
			return false;
	return line[n] == '\0' || line[n] == ' ';
}

static bool line_starts_with(const char *line, const char *kw)
{
	size_t n = strlen(kw);

	for (size_t i = 0; i < n; i++)
		if (fuzz_ascii_lower(line[i]) != fuzz_ascii_lower(kw[i]))
			return false;
	return true;
}

struct keyword_flag {
	const char *keyword;
	size_t offset;   /* of the bool in struct smtp_caps */
};

#define FLAG(kw, field) { kw, offsetof(struct smtp_caps, field) }

static const struct keyword_flag flags[] = {
	FLAG("PIPELINING", pipelining),
	FLAG("STARTTLS", starttls),
	FLAG("8BITMIME", eightbitmime),
	FLAG("SMTPUTF8", smtputf8),
	FLAG("DSN", dsn),
	FLAG("CHUNKING", chunking),
	FLAG("ENHANCEDSTATUSCODES", enhancedstatuscodes),
	FLAG("SIZE", size),
};

static bool flag_of(const struct smtp_caps *caps, const struct keyword_flag *f)
{
	return *(const bool *)((const char *)caps + f->offset);
}

/* The keyword lines of the reply text (all but the first line). */
static size_t keyword_lines(const char *text, char ***out)
{
	const char *p = text ? strchr(text, '\n') : NULL;
	char **v = NULL;
	size_t n = 0;

	while (p) {
		const char *start = p + 1;
		p = strchr(start, '\n');
		v = realloc(v, (n + 1) * sizeof *v);
		FUZZ_CHECK(v != NULL);
		v[n++] = strndup(start, p ? (size_t)(p - start) : strlen(start));
		FUZZ_CHECK(v[n - 1] != NULL);
	}
	*out = v;
	return n;
}

static void check_flags(const struct smtp_caps *caps, char **lines, size_t n)
{
	for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++) {
		bool exact = false, prefix = false;
		for (size_t i = 0; i < n; i++) {
			exact |= line_is_keyword(lines[i], flags[k].keyword);
			prefix |= line_starts_with(lines[i], flags[k].keyword);
		}
		if (exact)
			FUZZ_CHECK(flag_of(caps, &flags[k]));
		if (flag_of(caps, &flags[k]))
			FUZZ_CHECK(prefix);
	}
	if (!caps->size)
		FUZZ_CHECK(caps->size_max == 0);
}

/* AUTH mechanisms: kept upper case, every announced list included. */
static void check_auth(const struct smtp_caps *caps, char **lines, size_t n)
{
	if (caps->auth)
		for (const char *p = caps->auth; *p; p++)
			FUZZ_CHECK(!(*p >= 'a' && *p <= 'z'));
	for (size_t i = 0; i < n; i++) {
		const char *list = lines[i] + 5;
		char *up;
		if (!line_is_keyword(lines[i], "AUTH") || lines[i][4] != ' ' ||
		    *list == '\0')
			continue;
		FUZZ_CHECK(caps->auth != NULL);
		up = strdup(list);
		FUZZ_CHECK(up != NULL);
		for (char *p = up; *p; p++)
			if (*p >= 'a' && *p <= 'z')
				*p = (char)(*p - 32);
		FUZZ_CHECK(strstr(caps->auth, up) != NULL);
		free(up);
	}
}

static void check_caps(const struct smtp_caps *caps,
		       const struct smtp_reply *r)
{
	const char *text = r->text ? r->text : "";
	size_t first = strcspn(text, "\n");
	char **lines;
	size_t n = keyword_lines(r->text, &lines);

	FUZZ_CHECK(caps->esmtp);
	FUZZ_CHECK(caps->domain != NULL);
	FUZZ_CHECK(strlen(caps->domain) == first &&
		   memcmp(caps->domain, text, first) == 0);
	check_flags(caps, lines, n);
	check_auth(caps, lines, n);
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
}

static bool same_string(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static bool same_caps(const struct smtp_caps *a, const struct smtp_caps *b)
{
	for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++)
		if (flag_of(a, &flags[k]) != flag_of(b, &flags[k]))
			return false;
	return a->esmtp == b->esmtp && a->size_max == b->size_max &&
	       same_string(a->auth, b->auth) &&
	       same_string(a->domain, b->domain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_lines it = { .p = data, .left = size, .strip_cr = true };
	struct smtp_reply r = { 0 };
	struct smtp_caps caps = { 0 }, again = { 0 };
	char *line;

	while ((line = fuzz_next_line(&it)) != NULL) {
		smtp_reply_add_line(&r, 250, line);
		free(line);
	}
	smtp_caps_parse(&caps, &r);
	check_caps(&caps, &r);
	/* The engine parses into the same struct again after STARTTLS. */
	smtp_caps_parse(&again, &r);
	smtp_caps_parse(&again, &r);
	FUZZ_CHECK(same_caps(&caps, &again));
	smtp_caps_free(&again);
	smtp_caps_free(&caps);
	smtp_reply_free(&r);
	return 0;
}
