#include "autoconf.h"
#include "compose.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "message.h"
#include "util.h"

/* RFC 5322 2.1.1: header lines SHOULD be at most 78 characters. */
#define HEADER_LINE_MAX 78
/* "Subject: " precedes compose_encode_subject's value on the first line. */
#define SUBJECT_PREFIX_LEN 9
/* RFC 2047 2: an encoded-word is at most 75 characters... */
#define ENCODED_WORD_MAX 75
/* ...of which "=?utf-8?Q?" and "?=" take 12. */
#define ENCODED_WORD_OVERHEAD 12
/* A parameter on a continuation line of its own: SP, the parameter and
 * the ";" after it fit in HEADER_LINE_MAX. */
#define PARAMETER_MAX (HEADER_LINE_MAX - 2)
/* RFC 2045 6.7 (5): quoted-printable lines are at most 76 characters, the
 * "=" of a soft line break included. */
#define QP_LINE_MAX 76
/* RFC 2045 6.8: base64 lines are at most 76 characters; 57 octets give
 * exactly one full line. */
#define BASE64_LINE_OCTETS 57
#define BASE64_LINE_CHARS 76
/* RFC 2046 5.1.1 allows 70 characters; ours stay short enough that
 * ' boundary="..."' fits a line of HEADER_LINE_MAX. */
#define BOUNDARY_MAX 64
/* Reads and writes go in blocks this large: few system calls, constant
 * memory for any size of text or file. Attachments are read in whole
 * base64 lines, so that only the very last line is short. */
#define IO_BLOCK (64 * 1024)
#define BASE64_BLOCK (BASE64_LINE_OCTETS * 1024)

static const char hex_digits[] = "0123456789ABCDEF";

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Length of the UTF-8 character at s. A byte that does not start a
 * complete sequence counts as one character, so that text that is not
 * UTF-8 is still carried (and labelled utf-8) rather than rejected. */
static size_t utf8_char_len(const unsigned char *s)
{
	size_t len;
	if (s[0] < 0xc2)	/* ASCII, a stray continuation byte, C0/C1 */
		return 1;
	if (s[0] < 0xe0)
		len = 2;
	else if (s[0] < 0xf0)
		len = 3;
	else if (s[0] < 0xf5)
		len = 4;
	else
		return 1;
	/* A NUL (the end of the string) is not a continuation byte either. */
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 1;
	return len;
}

/* ---- base64 (RFC 4648 4) ---- */

size_t base64_encode(const unsigned char *in, size_t n, char *out)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				       "abcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		size_t left = n - i;
		unsigned long v = (unsigned long)in[i] << 16;
		if (left > 1)
			v |= (unsigned long)in[i + 1] << 8;
		if (left > 2)
			v |= in[i + 2];
		out[o++] = alphabet[(v >> 18) & 63];
		out[o++] = alphabet[(v >> 12) & 63];
		out[o++] = left > 1 ? alphabet[(v >> 6) & 63] : '=';
		out[o++] = left > 2 ? alphabet[v & 63] : '=';
	}
	return o;
}

/* ---- buffered output: the first write error is kept, later output is
 * dropped, and the caller looks once at the end ---- */

struct writer {
	int fd;
	int error;	/* errno of the first failed write, or 0 */
	size_t len;
	char *buf;	/* IO_BLOCK bytes */
};

static void writer_flush(struct writer *w)
{
	if (w->error == 0 && w->len > 0 &&
	    write_all(w->fd, w->buf, w->len) != 0)
		w->error = errno ? errno : EIO;
	w->len = 0;
}

static void put(struct writer *w, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		size_t room = IO_BLOCK - w->len;
		size_t k = n < room ? n : room;
		memcpy(w->buf + w->len, c, k);
		w->len += k;
		c += k;
		n -= k;
		if (w->len == IO_BLOCK)
			writer_flush(w);
	}
}

static void put_str(struct writer *w, const char *s)
{
	put(w, s, strlen(s));
}

/* ---- the Subject field (RFC 5322 3.6.5 unstructured, RFC 2047) ---- */

/* Printable ASCII and tabs may stand as they are, except text of the form
 * "=?...": readers decode whatever looks like an encoded word (RFC 2047
 * 6.1), so such text has to be encoded itself to arrive unchanged. */
static bool subject_is_plain(const char *s)
{
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if ((c < 0x20 && c != '\t') || c > 0x7e)
			return false;
		if (c == '=' && p[1] == '?')
			return false;
	}
	return true;
}

/* The piece of s that starts at i: its white space, then its word. Folds
 * go only before white space that has more text after it, since a fold
 * must not leave a line of white space only (RFC 5322 3.2.2); trailing
 * white space therefore belongs to the last piece. */
static size_t plain_piece_end(const char *s, size_t i)
{
	size_t j = i, k;
	while (is_wsp(s[j]))
		j++;
	while (s[j] && !is_wsp(s[j]))
		j++;
	k = j;
	while (is_wsp(s[k]))
		k++;
	return s[k] ? j : k;
}

/* Greedy folding (RFC 5322 2.2.3) into lines of at most HEADER_LINE_MAX;
 * NULL when some piece cannot fit on any line. */
static char *fold_plain(const char *s)
{
	size_t col = SUBJECT_PREFIX_LEN, i = 0, o = 0;
	char *out = xmalloc(2 * strlen(s) + 1);	/* at most one LF per piece */

	while (s[i]) {
		size_t end = plain_piece_end(s, i), len = end - i;
		if (i > 0 && col + len > HEADER_LINE_MAX) {
			out[o++] = '\n';	/* the piece starts with WSP */
			col = 0;
		}
		if (col + len > HEADER_LINE_MAX) {
			free(out);
			return NULL;
		}
		memcpy(out + o, s + i, len);
		o += len;
		col += len;
		i = end;
	}
	out[o] = '\0';
	return out;
}

/* RFC 2047 4.2: in the Q encoding "=", "?", "_", SPACE and everything not
 * printable ASCII are encoded; SPACE may be written "_". */
static bool q_literal(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '=' && c != '?' && c != '_';
}

static size_t q_len(const unsigned char *s, size_t n)
{
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += (q_literal(s[i]) || s[i] == ' ') ? 1 : 3;
	return len;
}

static size_t q_encode(const unsigned char *s, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (q_literal(s[i])) {
			out[o++] = (char)s[i];
		} else if (s[i] == ' ') {
			out[o++] = '_';
		} else {
			out[o++] = '=';
			out[o++] = hex_digits[s[i] >> 4];
			out[o++] = hex_digits[s[i] & 15];
		}
	}
	return o;
}

static size_t encoded_text_len(bool q, const unsigned char *s, size_t n)
{
	return q ? q_len(s, n) : 4 * ((n + 2) / 3);
}

/* The end of the longest run of whole characters from i whose encoded
 * text fits in max (RFC 2047 5: each encoded-word holds an integral number
 * of characters). max is at least 57 and a character at most 12 encoded,
 * so every word takes at least one character. */
static size_t word_end(bool q, const unsigned char *s, size_t i, size_t max)
{
	size_t end = i;
	while (s[end]) {
		size_t next = end + utf8_char_len(s + end);
		if (encoded_text_len(q, s + i, next - i) > max)
			break;
		end = next;
	}
	return end;
}

static size_t put_encoded_word(char *out, bool q, const unsigned char *s,
			       size_t n)
{
	size_t o = 10;
	memcpy(out, q ? "=?utf-8?Q?" : "=?utf-8?B?", 10);
	o += q ? q_encode(s, n, out + o) : base64_encode(s, n, out + o);
	memcpy(out + o, "?=", 2);
	return o + 2;
}

/* Every character goes into encoded words: white space between two
 * encoded words is not part of the text (RFC 2047 6.2), so the words can
 * be joined by folds. The first word shares its line with "Subject: ";
 * later ones stand alone after one SP. */
static char *encode_words(const char *text)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t n = strlen(text), i = 0, o = 0;
	size_t max = HEADER_LINE_MAX - SUBJECT_PREFIX_LEN;
	bool q = q_len(s, n) <= encoded_text_len(false, s, n);
	/* Per input byte at most 3 characters of text (Q; B needs 4/3 plus
	 * at most 3 of padding per word) and, per word (which holds at
	 * least one byte), 14 of "=?utf-8?X?", "?=" and LF SP. */
	char *out = xmalloc(20 * n + 1);

	while (i < n) {
		size_t end = word_end(q, s, i, max - ENCODED_WORD_OVERHEAD);
		if (i > 0) {
			out[o++] = '\n';
			out[o++] = ' ';
		}
		o += put_encoded_word(out + o, q, s + i, end - i);
		i = end;
		max = ENCODED_WORD_MAX;
	}
	out[o] = '\0';
	return out;
}

char *compose_encode_subject(const char *utf8)
{
	if (subject_is_plain(utf8)) {
		char *folded = fold_plain(utf8);
		if (folded)
			return folded;
	}
	return encode_words(utf8);
}

/* ---- address fields ---- */

/* A CR or LF in an address would end the field and start another one of
 * the caller's choosing: refuse control characters outright. */
static int check_address(const char *addr, const char *role, char *err,
			 size_t errlen)
{
	char visible[300];
	size_t len = strlen(addr);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)addr[i];
		if (c < 0x20 || c == 0x7f) {
			make_visible(visible, sizeof visible, addr, len);
			format_into(err, errlen, "invalid %s address \"%s\": "
				    "it contains a control character", role,
				    visible);
			return -1;
		}
	}
	return 0;
}

static int check_addresses(const struct compose_options *opt, char *err,
			   size_t errlen)
{
	if (opt->from && check_address(opt->from, "sender", err, errlen) != 0)
		return -1;
	for (size_t i = 0; i < opt->nto; i++)
		if (check_address(opt->to[i], "recipient", err, errlen) != 0)
			return -1;
	return 0;
}

/* "Name: a, b, c", folded before an address that would pass
 * HEADER_LINE_MAX (RFC 5322 3.4 address-list, 2.2.3 folding). */
static void put_address_field(struct writer *w, const char *name,
			      const char *const *addr, size_t n)
{
	size_t col = strlen(name) + 1;
	put_str(w, name);
	put(w, ":", 1);
	for (size_t i = 0; i < n; i++) {
		bool comma = i + 1 < n;
		size_t len = strlen(addr[i]) + comma;
		if (i > 0 && col + 1 + len > HEADER_LINE_MAX) {
			put(w, "\n", 1);
			col = 0;
		}
		put(w, " ", 1);
		put_str(w, addr[i]);
		if (comma)
			put(w, ",", 1);
		col += 1 + len;
	}
	put(w, "\n", 1);
}

/* ---- scanning text: which Content-Transfer-Encoding it can have ---- */

struct text_scan {
	const char *delimiter;	/* "--boundary": a line starting with it
				 * would end the part early; NULL: none */
	size_t delimiter_len;
	size_t line_len;	/* octets of the current line, line end not
				 * counted */
	size_t longest_line;
	bool at_delimiter;	/* the current line matches the delimiter
				 * so far */
	bool pending_cr;	/* a CR that may start a CRLF */
	bool eight_bit;
	bool has_nul;
	bool bare_cr;		/* a CR not followed by LF */
	bool has_delimiter;
};

enum transfer_encoding {
	TE_7BIT,
	TE_8BIT,
	TE_QUOTED_PRINTABLE,
	TE_BASE64,
};

static const char *const transfer_encoding_names[] = {
	[TE_7BIT] = "7bit",
	[TE_8BIT] = "8bit",
	[TE_QUOTED_PRINTABLE] = "quoted-printable",
	[TE_BASE64] = "base64",
};

static void scan_init(struct text_scan *s, const char *delimiter)
{
	memset(s, 0, sizeof *s);
	s->delimiter = delimiter;
	s->delimiter_len = delimiter ? strlen(delimiter) : 0;
	s->at_delimiter = delimiter != NULL;
}

static void scan_line_byte(struct text_scan *s, unsigned char c)
{
	if (c >= 0x80)
		s->eight_bit = true;
	if (c == 0)
		s->has_nul = true;
	if (s->at_delimiter && s->line_len < s->delimiter_len &&
	    c != (unsigned char)s->delimiter[s->line_len])
		s->at_delimiter = false;
	s->line_len++;
	if (s->at_delimiter && s->line_len == s->delimiter_len)
		s->has_delimiter = true;
	if (s->line_len > s->longest_line)
		s->longest_line = s->line_len;
}

static void scan_line_end(struct text_scan *s)
{
	s->line_len = 0;
	s->at_delimiter = s->delimiter != NULL;
}

/* Line ends are LF or CRLF; any other CR is a bare CR (text in the line). */
static void scan_byte(struct text_scan *s, unsigned char c)
{
	if (s->pending_cr) {
		s->pending_cr = false;
		if (c == '\n') {
			scan_line_end(s);
			return;
		}
		s->bare_cr = true;
		scan_line_byte(s, '\r');
	}
	if (c == '\r')
		s->pending_cr = true;
	else if (c == '\n')
		scan_line_end(s);
	else
		scan_line_byte(s, c);
}

static void scan_finish(struct text_scan *s)
{
	if (s->pending_cr) {
		s->pending_cr = false;
		s->bare_cr = true;
		scan_line_byte(s, '\r');
	}
}

/* RFC 2045 2.7, 2.8: 7bit and 8bit data have lines of at most 998 octets,
 * no NUL and CR only in CRLF; the boundary delimiter must not occur in a
 * part (RFC 2046 5.1.1). Quoted-printable carries anything, and its
 * output never contains "=_", which every boundary of ours does. */
static enum transfer_encoding text_encoding(const struct text_scan *s)
{
	if (s->longest_line > MESSAGE_LINE_MAX || s->has_nul || s->bare_cr ||
	    s->has_delimiter)
		return TE_QUOTED_PRINTABLE;
	return s->eight_bit ? TE_8BIT : TE_7BIT;
}

/* ---- reading ---- */

/* Reads until buf is full or the input ends, so that every block but the
 * last is whole. Returns the bytes read, or -1 (errno). */
static ssize_t read_full(int fd, unsigned char *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

typedef void (*block_handler)(void *ctx, const unsigned char *p, size_t n);

/* Hands fd's data to fn in blocks of exactly block bytes (the last may be
 * shorter); stops early once the writer has failed. 0, or -1 (errno). */
static int stream_blocks(int fd, size_t block, block_handler fn, void *ctx,
			 const struct writer *w)
{
	unsigned char *buf = xmalloc(block);
	ssize_t r;
	int saved;

	do {
		r = read_full(fd, buf, block);
		if (r > 0)
			fn(ctx, buf, (size_t)r);
	} while (r == (ssize_t)block && w->error == 0);
	saved = errno;
	free(buf);
	errno = saved;
	return r < 0 ? -1 : 0;
}

struct spooled_text {
	int fd;			/* unlinked temporary file, or -1 */
	struct text_scan scan;
};

/* Copies in_fd into a new unlinked temporary file, scanning as it goes:
 * the encoding must be known before the header is written, and the input
 * (a pipe, any size) can be read only once. */
static int spool_text(int in_fd, const char *what, const char *delimiter,
		      struct spooled_text *t, char *err, size_t errlen)
{
	unsigned char *buf;
	ssize_t r;

	scan_init(&t->scan, delimiter);
	t->fd = temp_file_unlinked(NULL, "postbote-compose", err, errlen);
	if (t->fd < 0)
		return -1;
	buf = xmalloc(IO_BLOCK);
	while ((r = read_full(in_fd, buf, IO_BLOCK)) > 0) {
		for (ssize_t i = 0; i < r; i++)
			scan_byte(&t->scan, buf[i]);
		if (write_all(t->fd, buf, (size_t)r) != 0) {
			format_into(err, errlen, "cannot write the spool file: "
				    "%s", strerror(errno));
			break;
		}
	}
	if (r < 0)
		format_into(err, errlen, "cannot read %s: %s", what,
			    strerror(errno));
	free(buf);
	scan_finish(&t->scan);
	return r == 0 ? 0 : -1;
}

/* ---- quoted-printable (RFC 2045 6.7), streaming ---- */

struct qp_encoder {
	struct writer *w;
	size_t col;
	int pending_wsp;	/* a SP or TAB held back: it must be encoded
				 * if the line ends right after it (rule 3);
				 * -1: none */
	bool pending_cr;	/* a CR that may start a CRLF line end */
};

/* Rule 5: a soft line break "=" before a token that would pass the
 * line limit. */
static void qp_put(struct qp_encoder *q, const char *token, size_t len)
{
	if (q->col + len > QP_LINE_MAX - 1) {
		put(q->w, "=\n", 2);
		q->col = 0;
	}
	put(q->w, token, len);
	q->col += len;
}

static void qp_put_hex(struct qp_encoder *q, unsigned char c)
{
	char token[3] = { '=', hex_digits[c >> 4], hex_digits[c & 15] };
	qp_put(q, token, sizeof token);
}

static void qp_release_wsp(struct qp_encoder *q, bool line_ends)
{
	char c;
	if (q->pending_wsp < 0)
		return;
	c = (char)q->pending_wsp;
	q->pending_wsp = -1;
	if (line_ends)
		qp_put_hex(q, (unsigned char)c);
	else
		qp_put(q, &c, 1);
}

/* Rule 4: a line end of the text is a line end of the encoding. */
static void qp_hard_break(struct qp_encoder *q)
{
	qp_release_wsp(q, true);
	put(q->w, "\n", 1);
	q->col = 0;
}

static void qp_byte(struct qp_encoder *q, unsigned char c)
{
	if (q->pending_cr) {
		q->pending_cr = false;
		if (c == '\n') {
			qp_hard_break(q);
			return;
		}
		qp_release_wsp(q, false);
		qp_put_hex(q, '\r');
	}
	if (c == '\r') {
		q->pending_cr = true;
	} else if (c == '\n') {
		qp_hard_break(q);
	} else {
		qp_release_wsp(q, false);
		if (is_wsp((char)c)) {
			q->pending_wsp = c;
		} else if (c >= 33 && c <= 126 && c != '=') {	/* rule 2 */
			char literal = (char)c;
			qp_put(q, &literal, 1);
		} else {
			qp_put_hex(q, c);	/* rule 1 */
		}
	}
}

static void qp_block(void *ctx, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		qp_byte(ctx, p[i]);
}

static void qp_finish(struct qp_encoder *q)
{
	if (q->pending_cr) {
		qp_release_wsp(q, false);
		qp_put_hex(q, '\r');
	}
	qp_release_wsp(q, true);
}

/* ---- base64 lines (RFC 2045 6.8), streaming ---- */

struct base64_lines {
	struct writer *w;
	bool started;
};

/* Lines are separated, not terminated, by LF: the LF before the next
 * boundary delimiter belongs to the delimiter (RFC 2046 5.1.1). */
static void base64_block(void *ctx, const unsigned char *p, size_t n)
{
	struct base64_lines *b = ctx;
	char line[BASE64_LINE_CHARS];

	for (size_t i = 0; i < n; i += BASE64_LINE_OCTETS) {
		size_t k = n - i;
		size_t len;
		if (k > BASE64_LINE_OCTETS)
			k = BASE64_LINE_OCTETS;
		len = base64_encode(p + i, k, line);
		if (b->started)
			put(b->w, "\n", 1);
		put(b->w, line, len);
		b->started = true;
	}
}

static void copy_block(void *ctx, const unsigned char *p, size_t n)
{
	put(ctx, p, n);
}

/* ---- attachments ---- */

struct attachment {
	const char *path;
	const char *name;	/* last path component: the name the
				 * recipient sees */
	const char *type;	/* media type */
	enum transfer_encoding encoding;
	int fd;			/* the file, or its spooled copy; -1 */
};

static const struct {
	const char *extension;
	const char *type;
} media_types[] = {
	{ "txt", "text/plain" },
	{ "log", "text/plain" },
	{ "html", "text/html" },
	{ "htm", "text/html" },
	{ "csv", "text/csv" },
	{ "patch", "text/x-diff" },
	{ "diff", "text/x-diff" },
	{ "pdf", "application/pdf" },
	{ "png", "image/png" },
	{ "jpg", "image/jpeg" },
	{ "jpeg", "image/jpeg" },
	{ "gif", "image/gif" },
	{ "zip", "application/zip" },
	{ "gz", "application/gzip" },
	{ "tar", "application/x-tar" },
	{ "json", "application/json" },
	{ "xml", "application/xml" },
	{ "eml", "message/rfc822" },
};

#define OCTET_STREAM "application/octet-stream"

/* A leading dot starts a hidden file's name, not an extension. */
static const char *media_type(const char *name)
{
	const char *dot = strrchr(name, '.');
	if (!dot || dot == name)
		return OCTET_STREAM;
	for (size_t i = 0; i < sizeof media_types / sizeof media_types[0]; i++)
		if (ascii_casecmp(dot + 1, media_types[i].extension) == 0)
			return media_types[i].type;
	return OCTET_STREAM;
}

/* Opened now, so that a missing or unreadable file is reported before
 * any input is read or output written. */
static int open_attachment(struct attachment *a, const char *path, char *err,
			   size_t errlen)
{
	struct stat st;
	const char *slash = strrchr(path, '/');

	a->path = path;
	a->name = slash ? slash + 1 : path;
	a->type = media_type(a->name);
	a->encoding = TE_BASE64;
	a->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (a->fd >= 0 && fstat(a->fd, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return 0;
		errno = EISDIR;	/* open succeeds, read would fail later */
	}
	format_into(err, errlen, "cannot read attachment %s: %s", path,
		    strerror(errno));
	return -1;
}

/* RFC 2046 5.2.1: message/rfc822 may only be 7bit, 8bit or binary. A
 * message file that cannot go as it is goes as opaque data instead. */
static int prepare_message_attachment(struct attachment *a,
				      const char *delimiter, char *err,
				      size_t errlen)
{
	struct spooled_text t;
	char *what = xasprintf("attachment %s", a->path);
	int rc = spool_text(a->fd, what, delimiter, &t, err, errlen);

	free(what);
	close(a->fd);
	a->fd = t.fd;
	if (rc != 0)
		return -1;
	a->encoding = text_encoding(&t.scan);
	if (a->encoding == TE_QUOTED_PRINTABLE) {
		a->type = OCTET_STREAM;
		a->encoding = TE_BASE64;
	}
	return 0;
}

/* ---- RFC 2231 file names ---- */

/* A quoted-string (RFC 2045 5.1) of printable ASCII without '"' and '\\',
 * which old readers handle best. */
static bool filename_is_plain(const char *name)
{
	for (const char *p = name; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
			return false;
	}
	return true;
}

/* RFC 2231 7: attribute-chars may stand unencoded in an extended value;
 * we keep to letters, digits and "-._~", which are among them. */
static bool attribute_char_plain(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~';
}

static size_t percent_len(const unsigned char *s, size_t n)
{
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += attribute_char_plain(s[i]) ? 1 : 3;
	return len;
}

static size_t percent_encode(const unsigned char *s, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (attribute_char_plain(s[i])) {
			out[o++] = (char)s[i];
		} else {
			out[o++] = '%';
			out[o++] = hex_digits[s[i] >> 4];
			out[o++] = hex_digits[s[i] & 15];
		}
	}
	return o;
}

/* RFC 2231 3 and 4: filename*0*=utf-8''..., filename*1*=..., each
 * section short enough for a line of its own, whole characters in each. */
static void add_filename_sections(struct strlist *params,
				  const unsigned char *s)
{
	char section[PARAMETER_MAX + 1];
	size_t i = 0;

	for (size_t number = 0; s[i]; number++) {
		size_t o;
		if (number == 0)
			o = (size_t)snprintf(section, sizeof section,
					     "filename*0*=utf-8''");
		else
			o = (size_t)snprintf(section, sizeof section,
					     "filename*%zu*=", number);
		while (s[i]) {
			size_t n = utf8_char_len(s + i);
			if (o + percent_len(s + i, n) > PARAMETER_MAX)
				break;
			o += percent_encode(s + i, n, section + o);
			i += n;
		}
		section[o] = '\0';
		strlist_add(params, section);
	}
}

/* The filename parameter(s) for Content-Disposition (RFC 2183 2.3). */
static void filename_params(const char *name, struct strlist *params)
{
	const unsigned char *s = (const unsigned char *)name;
	size_t len = strlen(name);
	char *p;

	if (filename_is_plain(name) && len + 11 <= PARAMETER_MAX) {
		p = xasprintf("filename=\"%s\"", name);
	} else if (percent_len(s, len) + 17 <= PARAMETER_MAX) {
		p = xmalloc(17 + 3 * len + 1);
		memcpy(p, "filename*=utf-8''", 17);
		p[17 + percent_encode(s, len, p + 17)] = '\0';
	} else {
		add_filename_sections(params, s);
		return;
	}
	strlist_add(params, p);
	free(p);
}

static void put_disposition(struct writer *w, const char *name)
{
	struct strlist params = { 0 };
	size_t col = strlen("Content-Disposition: attachment");

	filename_params(name, &params);
	put_str(w, "Content-Disposition: attachment");
	for (size_t i = 0; i < params.n; i++) {
		size_t len = strlen(params.v[i]) + (i + 1 < params.n);
		put(w, ";", 1);
		col++;
		if (col + 1 + len > HEADER_LINE_MAX) {
			put(w, "\n", 1);
			col = 0;
		}
		put(w, " ", 1);
		put_str(w, params.v[i]);
		col += 1 + strlen(params.v[i]);
	}
	put(w, "\n", 1);
	strlist_free(&params);
}

/* ---- the whole message ---- */

struct composer {
	const struct compose_options *opt;
	struct attachment *att;
	struct spooled_text body;
	char boundary[BOUNDARY_MAX + 1];	/* empty: not multipart */
	char delimiter[BOUNDARY_MAX + 3];	/* "--" boundary */
	struct writer w;
	char *err;
	size_t errlen;
};

/* RFC 2046 5.1.1 bcharsnospace: letters, digits and "'()+_,-./:=?". */
static void append_boundary_domain(char *boundary, const char *domain)
{
	size_t o = strlen(boundary);
	if (domain[0] && o < BOUNDARY_MAX)
		boundary[o++] = '.';
	for (const char *p = domain; *p && o < BOUNDARY_MAX; p++) {
		char c = *p;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.')
			boundary[o++] = c;
	}
	boundary[o] = '\0';
}

/* "=_" never occurs in base64 or quoted-printable output, and 128 random
 * bits make a match in 7bit or 8bit text (which is checked for anyway)
 * practically impossible. */
static int make_boundary(struct composer *c)
{
	unsigned char r[16];
	char hex[2 * sizeof r + 1];

	if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
		format_into(c->err, c->errlen, "cannot make a MIME boundary: "
			    "getrandom: %s", strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < sizeof r; i++)
		snprintf(hex + 2 * i, 3, "%02x", r[i]);
	snprintf(c->boundary, sizeof c->boundary, "=_%s.%lld", hex,
		 (long long)c->opt->now);
	if (c->opt->domain)
		append_boundary_domain(c->boundary, c->opt->domain);
	snprintf(c->delimiter, sizeof c->delimiter, "--%s", c->boundary);
	return 0;
}

static int prepare(struct composer *c, int body_fd)
{
	const struct compose_options *opt = c->opt;
	const char *delimiter = NULL;

	if (check_addresses(opt, c->err, c->errlen) != 0)
		return -1;
	for (size_t i = 0; i < opt->nattachments; i++)
		if (open_attachment(&c->att[i], opt->attachments[i], c->err,
				    c->errlen) != 0)
			return -1;
	if (opt->nattachments > 0) {
		if (make_boundary(c) != 0)
			return -1;
		delimiter = c->delimiter;
	}
	if (spool_text(body_fd, "the message text", delimiter, &c->body,
		       c->err, c->errlen) != 0)
		return -1;
	for (size_t i = 0; i < opt->nattachments; i++)
		if (strcmp(c->att[i].type, "message/rfc822") == 0 &&
		    prepare_message_attachment(&c->att[i], delimiter, c->err,
					       c->errlen) != 0)
			return -1;
	return 0;
}

static void put_header(struct composer *c)
{
	const struct compose_options *opt = c->opt;
	struct writer *w = &c->w;

	if (opt->from)
		put_address_field(w, "From", &opt->from, 1);
	if (opt->nto > 0)
		put_address_field(w, "To", opt->to, opt->nto);
	if (opt->subject) {
		char *value = compose_encode_subject(opt->subject);
		put_str(w, value[0] ? "Subject: " : "Subject:");
		put_str(w, value);
		put(w, "\n", 1);
		free(value);
	}
	put_str(w, "MIME-Version: 1.0\n");
}

/* Streams a spooled file from its start through fn. */
static int put_spooled(struct composer *c, int fd, size_t block,
		       block_handler fn, void *ctx, const char *what)
{
	if (lseek(fd, 0, SEEK_SET) == 0 &&
	    stream_blocks(fd, block, fn, ctx, &c->w) == 0)
		return 0;
	format_into(c->err, c->errlen, "cannot read %s: %s", what,
		    strerror(errno));
	return -1;
}

/* The text, as the whole message's body or as the first part. */
static int put_text_entity(struct composer *c)
{
	const struct text_scan *s = &c->body.scan;
	enum transfer_encoding te = text_encoding(s);
	struct qp_encoder q = { .w = &c->w, .pending_wsp = -1 };
	char *fields = xasprintf("Content-Type: text/plain; charset=%s\n"
				 "Content-Transfer-Encoding: %s\n\n",
				 s->eight_bit ? "utf-8" : "us-ascii",
				 transfer_encoding_names[te]);
	int rc;

	put_str(&c->w, fields);
	free(fields);
	if (te != TE_QUOTED_PRINTABLE)
		return put_spooled(c, c->body.fd, IO_BLOCK, copy_block, &c->w,
				   "the spooled message text");
	rc = put_spooled(c, c->body.fd, IO_BLOCK, qp_block, &q,
			 "the spooled message text");
	qp_finish(&q);
	return rc;
}

static int put_attachment(struct composer *c, const struct attachment *a)
{
	struct base64_lines b = { .w = &c->w };
	char *what = xasprintf("attachment %s", a->path);
	int rc;

	put_str(&c->w, "Content-Type: ");
	put_str(&c->w, a->type);
	put(&c->w, "\n", 1);
	put_disposition(&c->w, a->name);
	put_str(&c->w, "Content-Transfer-Encoding: ");
	put_str(&c->w, transfer_encoding_names[a->encoding]);
	put_str(&c->w, "\n\n");
	if (a->encoding == TE_BASE64)
		rc = put_spooled(c, a->fd, BASE64_BLOCK, base64_block, &b,
				 what);
	else
		rc = put_spooled(c, a->fd, IO_BLOCK, copy_block, &c->w, what);
	free(what);
	return rc;
}

/* RFC 2045 6.4: a multipart entity says 8bit when any part is 8bit. */
static bool multipart_is_8bit(const struct composer *c)
{
	if (text_encoding(&c->body.scan) == TE_8BIT)
		return true;
	for (size_t i = 0; i < c->opt->nattachments; i++)
		if (c->att[i].encoding == TE_8BIT)
			return true;
	return false;
}

/* RFC 2046 5.1.1: the LF before each delimiter belongs to the delimiter,
 * so a part's text ends exactly as the input did. */
static int put_multipart(struct composer *c)
{
	struct writer *w = &c->w;
	int rc;

	put_str(w, "Content-Type: multipart/mixed;\n boundary=\"");
	put_str(w, c->boundary);
	put_str(w, "\"\n");
	if (multipart_is_8bit(c))
		put_str(w, "Content-Transfer-Encoding: 8bit\n");
	put_str(w, "\n");
	put_str(w, c->delimiter);
	put(w, "\n", 1);
	rc = put_text_entity(c);
	for (size_t i = 0; i < c->opt->nattachments && rc == 0; i++) {
		put(w, "\n", 1);
		put_str(w, c->delimiter);
		put(w, "\n", 1);
		rc = put_attachment(c, &c->att[i]);
	}
	put(w, "\n", 1);
	put_str(w, c->delimiter);
	put_str(w, "--\n");
	return rc;
}

static int write_message(struct composer *c, int out_fd)
{
	int rc;

	c->w.fd = out_fd;
	c->w.buf = xmalloc(IO_BLOCK);
	put_header(c);
	if (c->opt->nattachments == 0)
		rc = put_text_entity(c);
	else
		rc = put_multipart(c);
	writer_flush(&c->w);
	if (rc == 0 && c->w.error != 0) {
		format_into(c->err, c->errlen, "cannot write the composed "
			    "message: %s", strerror(c->w.error));
		rc = -1;
	}
	free(c->w.buf);
	return rc;
}

int compose_message(int body_fd, int out_fd, const struct compose_options *opt,
		    char *err, size_t errlen)
{
	struct composer c = { .opt = opt, .err = err, .errlen = errlen };
	int rc;

	c.body.fd = -1;
	c.att = xcalloc(opt->nattachments, sizeof *c.att);
	for (size_t i = 0; i < opt->nattachments; i++)
		c.att[i].fd = -1;
	rc = prepare(&c, body_fd);
	if (rc == 0)
		rc = write_message(&c, out_fd);
	for (size_t i = 0; i < opt->nattachments; i++)
		if (c.att[i].fd >= 0)
			close(c.att[i].fd);
	if (c.body.fd >= 0)
		close(c.body.fd);
	free(c.att);
	return rc;
}
