#include "autoconf.h"
#include "address.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RFC 5321 4.5.3.1.3: a reverse-path or forward-path is at most 256 octets
 * including the "<" and ">" around the address. */
#define ENVELOPE_PATH_MAX 256

/* Positions in error messages count from 1 (the first byte of the text
 * is position 1), as a person counts along the header value. */

enum token_kind {
	TOK_END,
	TOK_ATOM,	/* 1*atext */
	TOK_QUOTED,	/* quoted-string, quotes included */
	TOK_LITERAL,	/* domain-literal, brackets included */
	TOK_SPECIAL,	/* one of < > @ , ; : . */
};

struct token {
	enum token_kind kind;
	const char *start;
	size_t len;
	size_t pos;	/* offset of start in the text */
};

struct token_list {
	struct token *v;
	size_t n;
	size_t cap;
};

/* Offsets into the text, in the order found. */
struct offsets {
	size_t *v;
	size_t n;
	size_t cap;
};

struct parser {
	const char *text;
	size_t i;
	struct strlist *out;
	int added;
	struct offsets *bare_ends; /* where each addr-spec without '@' ends
				    * (its last local-part word), or NULL */
	char *err;
	size_t errlen;
};

struct sbuf {
	char *p;
	size_t n;
	size_t cap;
};

static void sbuf_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		b->cap = (b->n + n + 1) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void sbuf_addc(struct sbuf *b, char c)
{
	sbuf_add(b, &c, 1);
}

static int fail(struct parser *p, size_t pos, const char *fmt, ...)
	PRINTF_LIKE(3, 4);

/* Every error names the place: pos is an offset into the text. */
static int fail(struct parser *p, size_t pos, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (p->err)
		format_into(p->err, p->errlen, "%s at position %zu", msg, pos + 1);
	return -1;
}

/* RFC 5322 3.2.3 atext, plus UTF8-non-ascii from RFC 6532 3.2. */
static bool is_atext(unsigned char c)
{
	if (c >= 0x80)
		return true;
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool is_special(const struct token *t, char c)
{
	return t->kind == TOK_SPECIAL && t->start[0] == c;
}

static bool is_word(const struct token *t)
{
	return t->kind == TOK_ATOM || t->kind == TOK_QUOTED;
}

/* RFC 5322 3.2.2: comment = "(" *([FWS] ccontent) [FWS] ")", where
 * ccontent = ctext / quoted-pair / comment: comments nest. */
static int skip_comment(struct parser *p)
{
	size_t start = p->i, depth = 0;

	do {
		char c = p->text[p->i];
		if (c == '\0')
			return fail(p, start, "unterminated comment");
		if (c == '\\' && p->text[p->i + 1] != '\0')
			p->i++;
		else if (c == '(')
			depth++;
		else if (c == ')')
			depth--;
		p->i++;
	} while (depth > 0);
	return 0;
}

/* RFC 5322 3.2.2 CFWS. CR and LF count as white space: a value that was
 * not unfolded still parses. */
static int skip_cfws(struct parser *p)
{
	for (;;) {
		char c = p->text[p->i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			p->i++;
		else if (c == '(') {
			if (skip_comment(p) != 0)
				return -1;
		} else
			return 0;
	}
}

/* RFC 5322 3.2.4: quoted-string = DQUOTE *([FWS] qcontent) [FWS] DQUOTE
 * with qcontent = qtext / quoted-pair (obs-qtext admits controls; the
 * envelope check refuses those later). A line break is only allowed as
 * folding, CRLF followed by WSP; the obsolete quoted CR or LF (obs-qp,
 * 4.1) is refused, as no SMTP path can carry it. */
static int lex_quoted(struct parser *p, struct token *t)
{
	const char *s = p->text;
	size_t i = p->i + 1;

	for (;;) {
		char c = s[i];
		if (c == '"')
			break;
		if (c == '\r' && s[i + 1] == '\n' &&
		    (s[i + 2] == ' ' || s[i + 2] == '\t')) {
			i += 3;		/* folding: CRLF WSP */
			continue;
		}
		if (c == '\\')
			c = s[++i];	/* quoted-pair: c is taken literally */
		if (c == '\0')
			return fail(p, p->i, "unterminated quoted string");
		if (c == '\r' || c == '\n')
			return fail(p, i, "line break inside a quoted string");
		i++;
	}
	t->kind = TOK_QUOTED;
	t->len = i + 1 - p->i;
	return 0;
}

/* RFC 5322 3.4.1: domain-literal = "[" *([FWS] dtext) [FWS] "]", dtext
 * excluding "[", "]" and "\" except as obs-dtext quoted-pairs (4.4). */
static int lex_literal(struct parser *p, struct token *t)
{
	const char *s = p->text;
	size_t i = p->i + 1;

	for (;;) {
		char c = s[i];
		if (c == '\0' || (c == '\\' && s[i + 1] == '\0'))
			return fail(p, p->i, "unterminated domain literal");
		if (c == ']')
			break;
		if (c == '[')
			return fail(p, i, "'[' inside a domain literal");
		if (c == '\\' && (s[i + 1] == '\r' || s[i + 1] == '\n'))
			return fail(p, i + 1, "line break inside a domain literal");
		if (c == '\\')
			i++;
		i++;
	}
	t->kind = TOK_LITERAL;
	t->len = i + 1 - p->i;
	return 0;
}

static int lex_bad_char(struct parser *p, unsigned char c)
{
	if (c < 0x20 || c == 0x7f)
		return fail(p, p->i, "control character 0x%02x", c);
	if (c == ')')
		return fail(p, p->i, "unexpected ')' without '('");
	return fail(p, p->i, "unexpected character '%c'", c);
}

/* The next token, comments and white space before it skipped. */
static int lex(struct parser *p, struct token *t)
{
	unsigned char c;
	int rc = 0;

	if (skip_cfws(p) != 0)
		return -1;
	c = (unsigned char)p->text[p->i];
	t->start = p->text + p->i;
	t->pos = p->i;
	t->len = 1;
	if (c == '\0') {
		t->kind = TOK_END;
		t->len = 0;
	} else if (is_atext(c)) {
		t->kind = TOK_ATOM;
		while (is_atext((unsigned char)t->start[t->len]))
			t->len++;
	} else if (c == '"') {
		rc = lex_quoted(p, t);
	} else if (c == '[') {
		rc = lex_literal(p, t);
	} else if (strchr("<>@,;:.", c)) {
		t->kind = TOK_SPECIAL;
	} else {
		return lex_bad_char(p, c);
	}
	if (rc == 0)
		p->i += t->len;
	return rc;
}

static int unexpected(struct parser *p, const struct token *t)
{
	char shown[40];

	switch (t->kind) {
	case TOK_END:
		return fail(p, t->pos, "unexpected end of text");
	case TOK_SPECIAL:
		return fail(p, t->pos, "unexpected character '%c'", t->start[0]);
	default:
		make_visible(shown, sizeof shown, t->start, t->len);
		return fail(p, t->pos, "unexpected %s", shown);
	}
}

/* Words and dots: a display name (phrase, obs-phrase) or a local part,
 * told apart by what follows. t receives the token after them. */
static int collect_words(struct parser *p, struct token_list *w,
			 struct token *t)
{
	for (;;) {
		if (lex(p, t) != 0)
			return -1;
		if (!is_word(t) && !is_special(t, '.'))
			return 0;
		if (w->n == w->cap) {
			w->cap = w->cap ? w->cap * 2 : 8;
			w->v = xrealloc(w->v, w->cap * sizeof *w->v);
		}
		w->v[w->n++] = *t;
	}
}

/* The content of a quoted-string: quotes, quoted-pair backslashes and
 * folding CRLFs removed (RFC 5322 3.2.4: they are not part of it). */
static void add_quoted_content(struct sbuf *b, const struct token *t)
{
	for (size_t i = 1; i + 1 < t->len; i++) {
		char c = t->start[i];
		if (c == '\\')
			c = t->start[++i];
		else if (c == '\r' || c == '\n')
			continue;
		sbuf_addc(b, c);
	}
}

/* RFC 5322 3.2.3 dot-atom-text = 1*atext *("." 1*atext) */
static bool is_dot_atom_text(const char *s)
{
	bool need_atext = true;

	for (; *s; s++) {
		if (*s == '.' && !need_atext)
			need_atext = true;
		else if (is_atext((unsigned char)*s))
			need_atext = false;
		else
			return false;
	}
	return !need_atext;
}

/* RFC 5321 4.1.2 Local-part = Dot-string / Quoted-string: the envelope
 * form of a local part. The quoted form is used only when the value needs
 * it (RFC 5321 4.1.2 says a sender SHOULD NOT quote needlessly); an
 * obs-local-part that mixes quoted words and atoms becomes one string. */
static char *canonical_local(const char *value)
{
	struct sbuf b = { 0 };

	if (is_dot_atom_text(value))
		return xstrdup(value);
	sbuf_addc(&b, '"');
	for (const char *s = value; *s; s++) {
		if (*s == '"' || *s == '\\')
			sbuf_addc(&b, '\\');
		sbuf_addc(&b, *s);
	}
	sbuf_addc(&b, '"');
	return b.p;
}

/* RFC 5322 4.4 obs-local-part = word *("." word): words at the even
 * places, dots between them, a word at the end. */
static int check_local_words(struct parser *p, const struct token_list *w)
{
	for (size_t i = 0; i < w->n; i++) {
		const struct token *t = &w->v[i];
		if (i % 2 == 0 && !is_word(t))
			return fail(p, t->pos,
				    "empty word before '.' in a local part");
		if (i % 2 == 1 && !is_special(t, '.'))
			return fail(p, t->pos,
				    "words of a local part must be joined by '.'");
	}
	if (w->n % 2 == 0)
		return fail(p, w->v[w->n - 1].pos, "local part ends with '.'");
	return 0;
}

/* RFC 5322 3.4.1 local-part = dot-atom / quoted-string / obs-local-part:
 * the value is the words' content joined by dots; CFWS between the parts
 * (already skipped) is not part of it. */
static int build_local(struct parser *p, const struct token_list *w,
		       char **local)
{
	struct sbuf b = { 0 };

	if (check_local_words(p, w) != 0)
		return -1;
	for (size_t i = 0; i < w->n; i++) {
		if (w->v[i].kind == TOK_QUOTED)
			add_quoted_content(&b, &w->v[i]);
		else
			sbuf_add(&b, w->v[i].start, w->v[i].len);
	}
	*local = canonical_local(b.p ? b.p : "");
	free(b.p);
	return 0;
}

/* A domain literal without the FWS it may contain: "[ 192.0.2.1 ]" is
 * "[192.0.2.1]" (an SMTP address-literal has no white space). */
static char *literal_text(const struct token *t)
{
	struct sbuf b = { 0 };

	for (size_t i = 0; i < t->len; i++) {
		char c = t->start[i];
		if (c == '\\') {
			sbuf_add(&b, t->start + i, 2);
			i++;
		} else if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
			sbuf_addc(&b, c);
		}
	}
	return b.p;
}

/* RFC 5322 3.4.1 domain = dot-atom / domain-literal / obs-domain, 4.4
 * obs-domain = atom *("." atom): the labels joined by '.', CFWS dropped.
 * next receives the token after the domain; *domain is set only on
 * success. */
static int parse_domain(struct parser *p, size_t at_pos, char **domain,
			struct token *next)
{
	struct sbuf b = { 0 };
	struct token t;

	if (lex(p, &t) != 0)
		return -1;
	if (t.kind == TOK_LITERAL) {
		if (lex(p, next) != 0)
			return -1;
		*domain = literal_text(&t);
		return 0;
	}
	if (t.kind != TOK_ATOM)
		return fail(p, at_pos, "missing domain after '@'");
	sbuf_add(&b, t.start, t.len);
	for (;;) {
		if (lex(p, next) != 0)
			break;
		if (!is_special(next, '.')) {
			*domain = b.p;
			return 0;
		}
		if (lex(p, &t) != 0)
			break;
		if (t.kind != TOK_ATOM) {
			fail(p, next->pos, "missing domain label after '.'");
			break;
		}
		sbuf_addc(&b, '.');
		sbuf_add(&b, t.start, t.len);
	}
	free(b.p);
	return -1;
}

static void offsets_add(struct offsets *o, size_t off)
{
	if (o->n == o->cap) {
		o->cap = o->cap ? o->cap * 2 : 8;
		o->v = xrealloc(o->v, o->cap * sizeof *o->v);
	}
	o->v[o->n++] = off;
}

static void add_address(struct parser *p, const char *local,
			const char *domain)
{
	char *addr = domain ? xasprintf("%s@%s", local, domain)
			    : xstrdup(local);

	if (strlist_add_unique(p->out, addr))
		p->added++;
	free(addr);
}

/* An addr-spec from its local-part words; t is the token after them: '@'
 * (a domain follows) or not (a bare local name such as "root", which
 * sendmail callers use). next receives the token after the address. */
static int finish_addr_spec(struct parser *p, const struct token_list *w,
			    const struct token *t, struct token *next)
{
	char *local = NULL, *domain = NULL;
	int rc = build_local(p, w, &local);

	if (rc == 0 && is_special(t, '@')) {
		rc = parse_domain(p, t->pos, &domain, next);
	} else if (rc == 0) {
		/* Every occurrence is noted, also one strlist_add_unique
		 * leaves out as a duplicate: each is text to qualify. */
		const struct token *last = &w->v[w->n - 1];
		if (p->bare_ends)
			offsets_add(p->bare_ends, last->pos + last->len);
		*next = *t;
	}
	if (rc == 0)
		add_address(p, local, domain);
	free(local);
	free(domain);
	return rc;
}

/* RFC 5322 4.4: obs-route = obs-domain-list ":", obs-domain-list =
 * *(CFWS / ",") "@" domain *("," [CFWS] ["@" domain]). A source route is
 * obsolete (RFC 5321 C) and is dropped. */
static int skip_route(struct parser *p)
{
	size_t save = p->i;
	bool any = false;
	struct token t;

	if (lex(p, &t) != 0)
		return -1;
	if (!is_special(&t, '@') && !is_special(&t, ',')) {
		p->i = save;
		return 0;
	}
	for (;;) {
		char *domain;
		while (is_special(&t, ','))
			if (lex(p, &t) != 0)
				return -1;
		if (any && is_special(&t, ':'))
			return 0;
		if (!is_special(&t, '@'))
			return fail(p, t.pos, "malformed source route");
		if (parse_domain(p, t.pos, &domain, &t) != 0)
			return -1;
		free(domain);
		any = true;
		if (!is_special(&t, ',') && !is_special(&t, ':'))
			return unexpected(p, &t);
	}
}

/* RFC 5322 3.4 angle-addr = [CFWS] "<" addr-spec ">" [CFWS], and 4.4
 * obs-angle-addr with a route before the addr-spec. */
static int parse_angle_addr(struct parser *p, const struct token *open,
			    struct token *next)
{
	struct token_list w = { 0 };
	struct token t, after;
	int rc = skip_route(p);

	if (rc == 0)
		rc = collect_words(p, &w, &after);
	if (rc == 0 && w.n == 0)
		rc = is_special(&after, '>')
			? fail(p, open->pos, "empty address '<>'")
			: unexpected(p, &after);
	if (rc == 0)
		rc = finish_addr_spec(p, &w, &after, &t);
	if (rc == 0 && !is_special(&t, '>')) {
		if (t.kind == TOK_END)
			rc = fail(p, open->pos, "missing '>' for the '<'");
		else
			rc = unexpected(p, &t);
	}
	if (rc == 0)
		rc = lex(p, next);
	free(w.v);
	return rc;
}

static int parse_address(struct parser *p, bool in_group, struct token *next);

/* RFC 5322 3.4 group = display-name ":" [group-list] ";" [CFWS], with
 * group-list = mailbox-list / CFWS / obs-group-list (empty elements). */
static int parse_group(struct parser *p, const struct token *colon,
		       struct token *next)
{
	struct token t;

	for (;;) {
		if (parse_address(p, true, &t) != 0)
			return -1;
		if (is_special(&t, ';'))
			return lex(p, next);
		if (t.kind == TOK_END)
			return fail(p, colon->pos,
				    "missing ';' to end the group started");
		if (!is_special(&t, ','))
			return unexpected(p, &t);
	}
}

/* RFC 5322 3.4 address = mailbox / group; mailbox = name-addr /
 * addr-spec. Leading words are a display name before '<' or ':', a local
 * part before '@' or the end. No words at all is an empty list element
 * (obs-addr-list, obs-mbox-list). next receives the token after it. */
static int parse_address(struct parser *p, bool in_group, struct token *next)
{
	struct token_list w = { 0 };
	struct token t;
	int rc = collect_words(p, &w, &t);

	if (rc != 0) {
		/* the lexer has said what is wrong */
	} else if (is_special(&t, '<')) {
		rc = parse_angle_addr(p, &t, next);
	} else if (is_special(&t, ':') && (in_group || w.n == 0)) {
		rc = fail(p, t.pos, in_group ? "group inside a group"
					     : "group without a name");
	} else if (is_special(&t, ':')) {
		rc = parse_group(p, &t, next);
	} else if (w.n > 0 && (is_special(&t, '@') || is_special(&t, ',') ||
			       is_special(&t, ';') || t.kind == TOK_END)) {
		rc = finish_addr_spec(p, &w, &t, next);
	} else if (w.n == 0 && (is_special(&t, ',') || is_special(&t, ';') ||
				t.kind == TOK_END)) {
		*next = t;
	} else {
		rc = unexpected(p, &t);
	}
	free(w.v);
	return rc;
}

/* On an error nothing of this text stays in out. */
static void strlist_truncate(struct strlist *l, size_t n)
{
	while (l->n > n)
		free(l->v[--l->n]);
	if (l->v)
		l->v[l->n] = NULL;
}

/* RFC 5322 3.4 address-list = (address *("," address)) / obs-addr-list;
 * 4.4 obs-addr-list = *([CFWS] ",") address *("," [address / CFWS]). */
static int parse_list(struct parser *p)
{
	size_t before = p->out->n;
	struct token t;

	for (;;) {
		if (parse_address(p, false, &t) != 0)
			break;
		if (t.kind == TOK_END)
			return p->added;
		if (!is_special(&t, ',')) {
			unexpected(p, &t);
			break;
		}
	}
	strlist_truncate(p->out, before);
	return -1;
}

int address_list_parse(const char *text, struct strlist *out, char *err,
		       size_t errlen)
{
	struct parser p = {
		.text = text, .out = out, .err = err, .errlen = errlen,
	};

	return parse_list(&p);
}

/* The text with "@domain" put in at each offset (ascending). */
static char *insert_domain(const char *text, const struct offsets *at,
			   const char *domain)
{
	struct sbuf b = { 0 };
	size_t from = 0;

	for (size_t k = 0; k < at->n; k++) {
		sbuf_add(&b, text + from, at->v[k] - from);
		sbuf_addc(&b, '@');
		sbuf_add(&b, domain, strlen(domain));
		from = at->v[k];
	}
	sbuf_add(&b, text + from, strlen(text + from));
	return b.p;
}

/* The domain goes right after the local part's last word: before any
 * CFWS, '>' or ',' that follows, so comments, display names, groups,
 * folding and encoded words stay where and as they were. */
char *address_list_qualify(const char *value, const char *domain, char *err,
			   size_t errlen)
{
	struct strlist found = { 0 };
	struct offsets ends = { 0 };
	struct parser p = {
		.text = value, .out = &found, .bare_ends = &ends,
		.err = err, .errlen = errlen,
	};
	char *qualified = NULL;

	if (err && errlen)
		err[0] = '\0';
	if (!domain || !domain[0]) {
		if (err)
			format_into(err, errlen, "no domain to add to local names");
	} else if (parse_list(&p) >= 0 && ends.n > 0) {
		qualified = insert_domain(value, &ends, domain);
	}
	strlist_free(&found);
	free(ends.v);
	return qualified;
}

/* ---- envelope checks ---- */

static bool refuse(char *err, size_t errlen, const char *fmt, ...)
	PRINTF_LIKE(3, 4);

static bool refuse(char *err, size_t errlen, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (err)
		format_into(err, errlen, "%s", msg);
	return false;
}

/* What makes byte i unfit for an SMTP path, or NULL: a line end would end
 * the command and start another (RFC 5321 2.3.8), other controls are not
 * in its grammar, and unquoted space or brackets would split or end the
 * path (RFC 5321 4.1.2 Mailbox). */
static const char *bad_envelope_byte(unsigned char c, bool quoted)
{
	if (c == '\r')
		return "a carriage return (CR)";
	if (c == '\n')
		return "a line feed (LF)";
	if (c < 0x20 || c == 0x7f)
		return "a control character";
	if (!quoted && c == ' ')
		return "an unquoted space";
	if (!quoted && c == '<')
		return "'<'";
	if (!quoted && c == '>')
		return "'>'";
	return NULL;
}

static bool refuse_byte(const char *addr, size_t i, bool quoted, char *err,
			size_t errlen)
{
	unsigned char c = (unsigned char)addr[i];
	const char *why = bad_envelope_byte(c, quoted);

	if (!why)
		return true;
	return refuse(err, errlen, "address contains %s (0x%02x) at position %zu",
		      why, c, i + 1);
}

/* A C string cannot hold a NUL, so a value cut at one is all we see. */
bool address_is_safe_for_envelope(const char *addr, char *err, size_t errlen)
{
	size_t len = strlen(addr);
	bool quoted = false;
	int ats = 0;

	if (len + 2 > ENVELOPE_PATH_MAX)
		return refuse(err, errlen,
			      "address is %zu octets long; RFC 5321 allows %d "
			      "with '<' and '>'", len, ENVELOPE_PATH_MAX);
	for (size_t i = 0; i < len; i++) {
		if (!refuse_byte(addr, i, quoted, err, errlen))
			return false;
		if (quoted && addr[i] == '\\' && i + 1 < len) {
			i++;	/* quoted-pair: the next byte is literal */
			if (!refuse_byte(addr, i, true, err, errlen))
				return false;
		} else if (addr[i] == '"') {
			quoted = !quoted;
		} else if (!quoted && addr[i] == '@' && ++ats > 1) {
			return refuse(err, errlen,
				      "address contains a second '@' at position %zu",
				      i + 1);
		}
	}
	if (quoted)
		return refuse(err, errlen, "address has an unbalanced '\"'");
	return true;
}

bool address_is_local(const char *addr)
{
	bool quoted = false;

	for (const char *s = addr; *s; s++) {
		if (quoted && *s == '\\' && s[1])
			s++;
		else if (*s == '"')
			quoted = !quoted;
		else if (!quoted && *s == '@')
			return false;
	}
	return true;
}

bool address_is_8bit(const char *addr)
{
	for (const unsigned char *s = (const unsigned char *)addr; *s; s++)
		if (*s >= 0x80)
			return true;
	return false;
}
