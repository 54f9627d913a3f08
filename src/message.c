#include "autoconf.h"
#include "message.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* Reads from stdin and writes to the spool file go in blocks this large:
 * few system calls for big messages, constant memory for any size. */
#define SPOOL_BLOCK (64 * 1024)

/* message_emit reads the spool file and fills its sink buffer in blocks
 * this large. With dot-stuffing a block is handed on once half full (each
 * input byte may become two), so every block but the last is >= 32 KiB. */
#define EMIT_BLOCK (64 * 1024)

/* How much of "From" + WSP we hold back while deciding whether the first
 * line is an mbox From_ line or an (obsolete, RFC 5322 4.5) "From :" field.
 * A field name plus WSP cannot be longer than a line (RFC 5322 2.1.1); past
 * this the bytes are kept as ordinary text. */
#define FROM_LOOKAHEAD_MAX (MESSAGE_LINE_MAX + 2)

/* The header block is read back from the spool file into memory; the two
 * extra bytes let the empty separator line after a maximal block fit. */
#define HEADER_READ_MAX (MESSAGE_HEADER_BLOCK_MAX + 2)

/* ---- scanning a word (8 bytes) at a time ----
 * Nearly every byte of a big message is ordinary text that is copied as it
 * is; these find the few bytes that need a look (CR, LF, NUL, >= 0x80)
 * without a branch per byte. */

#define WORD_ONES (UINT64_MAX / 255)	/* 0x0101...01 */
#define WORD_HIGHS (WORD_ONES * 0x80)	/* 0x8080...80 */

/* The 8 bytes at p, the first in the lowest bits (where ctz finds it). */
static uint64_t word_at(const char *p)
{
	uint64_t w;

	memcpy(&w, p, sizeof w);
#if defined __BYTE_ORDER__ && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	w = __builtin_bswap64(w);
#endif
	return w;
}

/* Whether some byte of w is below k (1 <= k <= 0x80). Exact: a borrow
 * only starts at a byte below k, and the lowest such byte always shows. */
static bool word_has_below(uint64_t w, unsigned k)
{
	return ((w - WORD_ONES * k) & ~w & WORD_HIGHS) != 0;
}

/* 0x80 in every byte of w that is c, 0 in the others (exact: no carry
 * crosses a byte). */
static uint64_t word_bytes_equal(uint64_t w, unsigned char c)
{
	uint64_t x = w ^ (WORD_ONES * c);

	return ~(((x & ~WORD_HIGHS) + ~WORD_HIGHS) | x | ~WORD_HIGHS);
}

/* The length of the run of p[0..n) before the first CR or LF, or NUL too
 * when nul_stops. All three are below 0x0e: a word without such a byte
 * (nearly every word of text) is passed after one test. */
static size_t run_before(const char *p, size_t n, bool nul_stops)
{
	size_t i = 0;

	for (; n - i >= sizeof(uint64_t); i += sizeof(uint64_t)) {
		uint64_t w = word_at(p + i);
		uint64_t stops;
		if (!word_has_below(w, '\r' + 1))
			continue;
		stops = word_bytes_equal(w, '\r') | word_bytes_equal(w, '\n');
		if (nul_stops)
			stops |= word_bytes_equal(w, '\0');
		if (stops)
			return i + (size_t)__builtin_ctzll(stops) / 8;
	}
	while (i < n && p[i] != '\r' && p[i] != '\n' &&
	       !(nul_stops && p[i] == '\0'))
		i++;
	return i;
}

/* Whether p[0..n) has a byte >= 0x80. No early exit: a plain OR over
 * words, which the compiler may widen further. */
static bool has_eight_bit(const char *p, size_t n)
{
	uint64_t any = 0;
	size_t i = 0;

	for (; n - i >= sizeof any; i += sizeof any)
		any |= word_at(p + i);
	for (; i < n; i++)
		any |= (unsigned char)p[i];
	return (any & WORD_HIGHS) != 0;
}

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Reads exactly n bytes at off; a file shorter than the message says is a
 * read error too (EIO), never a silently short message. */
static int pread_full(int fd, char *p, size_t n, off_t off)
{
	while (n > 0) {
		ssize_t r = pread(fd, p, n, off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {
			errno = EIO;
			return -1;
		}
		p += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

/* ---- what a line is (RFC 5322 2.2, 3.5): used while spooling, to fold
 * long header lines, and afterwards to parse the header block ---- */

enum line_kind {
	LINE_EMPTY,
	LINE_FIELD,
	LINE_CONTINUATION,
	LINE_OTHER,
	LINE_UNDECIDED,	/* a partial line that may still become a field */
};

/* RFC 5322 3.6.8: ftext = %d33-57 / %d59-126 (printable except ':'). */
static bool is_ftext(char c)
{
	return c >= 33 && c <= 126 && c != ':';
}

/* RFC 5322 2.2: a field is name ":" ...; obs-optional and the other
 * obsolete fields of 4.5 allow *WSP before the colon. 2.2.3: a line that
 * starts with WSP continues the previous field. len excludes CRLF when
 * complete; an incomplete line is a prefix of a longer one. */
static enum line_kind classify_line(const char *p, size_t len, bool complete)
{
	size_t i = 0;

	if (len == 0)
		return complete ? LINE_EMPTY : LINE_UNDECIDED;
	if (is_wsp(p[0]))
		return LINE_CONTINUATION;
	while (i < len && is_ftext(p[i]))
		i++;
	if (i == 0)
		return LINE_OTHER;
	while (i < len && is_wsp(p[i]))
		i++;
	if (i < len)
		return p[i] == ':' ? LINE_FIELD : LINE_OTHER;
	return complete ? LINE_OTHER : LINE_UNDECIDED;
}

/* ---- spooling: stdin -> unlinked temporary file, CRLF line ends ---- */

/* Where the spooler is in the message. It follows the same rules as the
 * header parser below (header_take_line), so a line it folds as a header
 * line is one the parser takes as part of a field. */
enum header_state {
	HEADER_FIRST,	/* no line yet: the first one decides */
	HEADER_FIELDS,	/* inside the header block, after a field */
	HEADER_DONE,	/* past the header block: every line is body */
};

enum line_role {
	ROLE_UNDECIDED,	/* in the header block; field or body not yet known */
	ROLE_HEADER,	/* a field or its continuation: folded when long */
	ROLE_BODY,	/* split hard when long */
};

/* A header line is held back until it ends or passes the limit by one
 * octet: only then is it known whether and where to fold it. */
#define SEGMENT_MAX (MESSAGE_LINE_MAX + 1)

struct spooler {
	struct message *msg;
	int fd;
	bool dot_ends_input;
	char *out;            /* SPOOL_BLOCK bytes waiting to be written */
	size_t outlen;
	size_t in_len;        /* bytes of the current input line so far */
	size_t out_len;       /* bytes of the current spooled line written */
	enum header_state header;
	enum line_role role;
	char seg[SEGMENT_MAX]; /* held-back bytes of a header line */
	size_t seglen;
	size_t fold_min;      /* a fold may not come before this index of seg
			       * (just after the colon of a field's first
			       * segment); 0: after its first non-WSP byte */
	bool at_line_start;   /* no byte of the current line seen yet */
	bool first_line;
	bool after_cr;        /* last input byte was a CR (already a line end):
			       * an LF now is the second half of its CRLF */
	bool pending_dot;     /* the line so far is "." (held back: it may be
			       * the line that ends input) */
	bool pending_from;    /* the first line so far may be an mbox From_ */
	bool dropping_line;   /* inside the dropped From_ line */
	bool ended;           /* a lone "." ended the input */
	char from[FROM_LOOKAHEAD_MAX];
	size_t nfrom;
};

static int spool_flush(struct spooler *s)
{
	if (s->outlen == 0)
		return 0;
	if (write_all(s->fd, s->out, s->outlen) != 0)
		return -1;
	s->msg->size += (off_t)s->outlen;
	s->outlen = 0;
	return 0;
}

static int spool_raw(struct spooler *s, const char *p, size_t n)
{
	while (n > 0) {
		size_t room = SPOOL_BLOCK - s->outlen;
		size_t k = n < room ? n : room;
		memcpy(s->out + s->outlen, p, k);
		s->outlen += k;
		p += k;
		n -= k;
		if (s->outlen == SPOOL_BLOCK && spool_flush(s) != 0)
			return -1;
	}
	return 0;
}

/* Line content as it is spooled; keeps longest_line. */
static int spool_out(struct spooler *s, const char *p, size_t n)
{
	s->out_len += n;
	if (s->out_len > s->msg->longest_line)
		s->msg->longest_line = s->out_len;
	return spool_raw(s, p, n);
}

/* A line break that was not in the input: the spooled line ends here. */
static int spool_split(struct spooler *s)
{
	s->msg->lines_split++;
	s->out_len = 0;
	return spool_raw(s, "\r\n", 2);
}

/* RFC 5322 2.1.1: a body line over 998 octets is cut after every 998
 * (Postfix's smtp client does the same): the text stays, only a line
 * break is added, which is all a plain-text body can do. */
static int body_put(struct spooler *s, const char *p, size_t n)
{
	while (n > 0) {
		size_t k;
		if (s->out_len == MESSAGE_LINE_MAX && spool_split(s) != 0)
			return -1;
		k = MESSAGE_LINE_MAX - s->out_len;
		if (k > n)
			k = n;
		if (spool_out(s, p, k) != 0)
			return -1;
		p += k;
		n -= k;
	}
	return 0;
}

/* The held-back line is not part of a header field: it is body from here
 * on, and so is everything after it (as in header_take_line). */
static int line_becomes_body(struct spooler *s)
{
	size_t n = s->seglen;

	s->header = HEADER_DONE;
	s->role = ROLE_BODY;
	s->seglen = 0;
	return body_put(s, s->seg, n);
}

/* Decides what the held-back start of a line is once that is known. Only
 * its first MESSAGE_LINE_MAX octets count: a field's name and colon must
 * fit into its first line (RFC 5322 2.1.1), and a longer run of name
 * characters is split as body, so the parser later sees the same. */
static int line_decide(struct spooler *s)
{
	size_t len = s->seglen < MESSAGE_LINE_MAX ? s->seglen : MESSAGE_LINE_MAX;
	const char *colon;

	switch (classify_line(s->seg, len, false)) {
	case LINE_FIELD:
		colon = memchr(s->seg, ':', len);
		s->fold_min = (size_t)(colon - s->seg) + 1;
		s->header = HEADER_FIELDS;
		s->role = ROLE_HEADER;
		return 0;
	case LINE_CONTINUATION:
		if (s->header != HEADER_FIELDS)
			return line_becomes_body(s);
		s->fold_min = 0;
		s->role = ROLE_HEADER;
		return 0;
	case LINE_UNDECIDED:
		if (s->seglen <= MESSAGE_LINE_MAX)
			return 0;
		return line_becomes_body(s);
	default:
		return line_becomes_body(s);
	}
}

/* Where a fold may go at the earliest. The field name and its colon stay
 * on the first line (RFC 5322 2.2), and a fold before the first non-WSP
 * byte would leave a line of WSP only, which only obs-FWS (4.2) allows. */
static size_t fold_lower_bound(const struct spooler *s)
{
	size_t i = 0;

	if (s->fold_min > 0)
		return s->fold_min;
	while (i < s->seglen && is_wsp(s->seg[i]))
		i++;
	return i + 1;
}

/* The index of the last WSP at which seg may be folded with the first
 * line at most MESSAGE_LINE_MAX octets long, or 0 if there is none. */
static size_t fold_point(const struct spooler *s)
{
	size_t lo = fold_lower_bound(s);

	for (size_t i = MESSAGE_LINE_MAX + 1; i-- > lo;)
		if (is_wsp(s->seg[i]))
			return i;
	return 0;
}

/* RFC 5322 2.2.3: folding is inserting CRLF before WSP; unfolding takes
 * it out again, so a fold at the last WSP within the limit keeps the
 * field exactly. With no such WSP the line is cut after 998 octets and
 * the rest continues after CRLF SP, as Postfix does: the field stays one
 * field, and its value gains one space at the cut. */
static int header_fold(struct spooler *s)
{
	size_t at = fold_point(s);
	size_t first = at > 0 ? at : MESSAGE_LINE_MAX;

	if (spool_out(s, s->seg, first) != 0 || spool_split(s) != 0)
		return -1;
	if (at > 0) {
		memmove(s->seg, s->seg + at, s->seglen - at);
		s->seglen -= at;
	} else {
		s->seg[1] = s->seg[MESSAGE_LINE_MAX];
		s->seg[0] = ' ';
		s->seglen = 2;
	}
	s->fold_min = 0;
	return 0;
}

/* Content of a line in the header block: held back until it is known what
 * the line is, and while it is a header line, until it ends or is long
 * enough to fold. */
static int header_put(struct spooler *s, const char *p, size_t n)
{
	while (n > 0) {
		size_t k = SEGMENT_MAX - s->seglen;
		if (k > n)
			k = n;
		memcpy(s->seg + s->seglen, p, k);
		s->seglen += k;
		p += k;
		n -= k;
		if (s->role == ROLE_UNDECIDED && line_decide(s) != 0)
			return -1;
		if (s->role == ROLE_BODY)
			return body_put(s, p, n);
		if (s->seglen == SEGMENT_MAX && header_fold(s) != 0)
			return -1;
	}
	return 0;
}

/* Content without NULs, routed by what the line is. */
static int line_put(struct spooler *s, const char *p, size_t n)
{
	if (s->role == ROLE_BODY)
		return body_put(s, p, n);
	return header_put(s, p, n);
}

/* Stores line content (never a line end) and keeps the statistics the
 * transaction needs: 8BITMIME, NULs, line length. RFC 5321 2.3.8 and RFC
 * 5322 2.1 allow no NUL in a message and many servers refuse or truncate
 * at one, so NULs are dropped (and counted) rather than sent. */
static int spool_text(struct spooler *s, const char *p, size_t n)
{
	const char *nul;

	s->in_len += n;
	if (s->in_len > s->msg->longest_input_line)
		s->msg->longest_input_line = s->in_len;
	if (!s->msg->eight_bit && has_eight_bit(p, n))
		s->msg->eight_bit = true;
	while ((nul = memchr(p, '\0', n)) != NULL) {
		size_t k = (size_t)(nul - p);
		s->msg->has_nul = true;
		s->msg->nul_removed++;
		if (line_put(s, p, k) != 0)
			return -1;
		p += k + 1;
		n -= k + 1;
	}
	return line_put(s, p, n);
}

/* The current line ends: what was held back goes out, and the kind of a
 * line that ended undecided settles whether the header block goes on. */
static int line_finish(struct spooler *s)
{
	size_t n = s->seglen;

	if (s->role == ROLE_UNDECIDED) {
		switch (classify_line(s->seg, n, true)) {
		case LINE_FIELD:
			s->header = HEADER_FIELDS;
			break;
		case LINE_CONTINUATION:
			if (s->header != HEADER_FIELDS)
				s->header = HEADER_DONE;
			break;
		default:	/* the empty separator line, or body */
			s->header = HEADER_DONE;
			break;
		}
	}
	s->seglen = 0;
	return spool_out(s, s->seg, n);
}

static void spool_next_line(struct spooler *s)
{
	s->at_line_start = true;
	s->first_line = false;
	s->in_len = 0;
	s->out_len = 0;
	s->seglen = 0;
	s->role = s->header == HEADER_DONE ? ROLE_BODY : ROLE_UNDECIDED;
}

/* The held-back start of the first line turned out to be ordinary text. */
static int spool_release_from(struct spooler *s)
{
	s->pending_from = false;
	return spool_text(s, s->from, s->nfrom);
}

static void spool_drop_from(struct spooler *s)
{
	s->pending_from = false;
	s->msg->dropped_mbox_from = true;
}

/* The first line began with 'F'. It is an mbox From_ line when it starts
 * with the five bytes "From " and is not a header field: a field would have
 * ':' after "From" and optional WSP (obs-optional, RFC 5322 4.5). */
static int spool_from_byte(struct spooler *s, char c)
{
	static const char prefix[] = "From ";

	if (s->nfrom < sizeof prefix - 1) {
		if (c != prefix[s->nfrom])
			return spool_release_from(s) || spool_text(s, &c, 1);
		s->from[s->nfrom++] = c;
		return 0;
	}
	if (is_wsp(c) && s->nfrom < sizeof s->from) {
		s->from[s->nfrom++] = c;
		return 0;
	}
	if (is_wsp(c) || c == ':')
		return spool_release_from(s) || spool_text(s, &c, 1);
	spool_drop_from(s);
	s->dropping_line = true;
	return 0;
}

/* One byte of line content while the start of the line is undecided. */
static int spool_start_byte(struct spooler *s, char c)
{
	if (s->at_line_start) {
		s->at_line_start = false;
		if (s->dot_ends_input && c == '.') {
			s->pending_dot = true;
			return 0;
		}
		if (s->first_line && c == 'F') {
			s->pending_from = true;
			s->from[0] = c;
			s->nfrom = 1;
			return 0;
		}
		return spool_text(s, &c, 1);
	}
	if (s->pending_dot) {
		s->pending_dot = false;
		return spool_text(s, ".", 1) || spool_text(s, &c, 1);
	}
	return spool_from_byte(s, c);
}

/* A run of line content without CR or LF. */
static int spool_content(struct spooler *s, const char *p, size_t n)
{
	while (n > 0 && (s->at_line_start || s->pending_dot || s->pending_from)) {
		if (spool_start_byte(s, *p) != 0)
			return -1;
		p++;
		n--;
	}
	if (n == 0 || s->dropping_line)
		return 0;
	return spool_text(s, p, n);
}

/* The end of a line (CR, LF, CRLF, or end of input after a partial line). */
static int spool_line_end(struct spooler *s)
{
	if (s->pending_dot) {
		/* sendmail without -i: the line "." ends the message and is
		 * not part of it. */
		s->pending_dot = false;
		s->ended = true;
		return 0;
	}
	if (s->pending_from && s->nfrom >= 5) {
		spool_drop_from(s);	/* "From " and only WSP after it */
		spool_next_line(s);
		return 0;
	}
	if (s->pending_from && spool_release_from(s) != 0)
		return -1;
	if (s->dropping_line) {
		s->dropping_line = false;
		spool_next_line(s);
		return 0;
	}
	if (line_finish(s) != 0)
		return -1;
	spool_next_line(s);
	return spool_raw(s, "\r\n", 2);
}

/* Past the header block nearly every line is body text that is stored as
 * it is plus CRLF, so whole lines are taken here instead of through the
 * general steps of spool_feed. It needs role ROLE_BODY and nothing held
 * back (a ".", a From_ line, a CR's LF); a line that starts in ROLE_BODY is
 * never the first one, so it cannot be a From_ line. It stops before what
 * the general steps must see: a "." starting a line when that may end the
 * input, and a NUL. A line end gets what spool_line_end does for a body
 * line: CRLF. *used: the bytes taken, all of them stored (so their 8-bit
 * bytes count, unlike those after a lone "."). */
static int spool_body_lines(struct spooler *s, const char *p, size_t n,
			    size_t *used)
{
	size_t i = 0;
	int rc = 0;

	while (i < n && rc == 0) {
		if (s->at_line_start) {
			if (s->dot_ends_input && p[i] == '.')
				break;
			s->at_line_start = false;
		}
		size_t run = run_before(p + i, n - i, true);
		if (s->out_len + run <= MESSAGE_LINE_MAX) {
			s->in_len += run;
			if (s->in_len > s->msg->longest_input_line)
				s->msg->longest_input_line = s->in_len;
			rc = spool_out(s, p + i, run);
		} else {
			rc = spool_text(s, p + i, run);	/* split */
		}
		i += run;
		if (rc != 0 || i == n || p[i] == '\0')
			break;
		if (p[i++] == '\r') {
			if (i == n)
				s->after_cr = true;
			else if (p[i] == '\n')
				i++;
		}
		spool_next_line(s);
		rc = spool_raw(s, "\r\n", 2);
	}
	if (!s->msg->eight_bit && has_eight_bit(p, i))
		s->msg->eight_bit = true;
	*used = i;
	return rc;
}

static bool body_lines_ahead(const struct spooler *s)
{
	return s->role == ROLE_BODY && !s->after_cr && !s->pending_dot &&
	       !s->pending_from && !s->dropping_line;
}

/* RFC 5321 2.3.8: only CRLF may end a line on the wire; a lone LF and a
 * lone CR are taken as line ends and become CRLF. A CR's LF may arrive in
 * the next read, hence after_cr rather than a look at the next byte. */
static int spool_feed(struct spooler *s, const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && !s->ended) {
		/* then one general step for the byte it stopped at */
		if (body_lines_ahead(s)) {
			size_t used;
			if (spool_body_lines(s, p + i, n - i, &used) != 0)
				return -1;
			i += used;
			if (i == n)
				break;
		}
		char c = p[i];
		if (s->after_cr) {
			s->after_cr = false;
			if (c == '\n') {
				i++;
				continue;
			}
		}
		if (c == '\r' || c == '\n') {
			if (spool_line_end(s) != 0)
				return -1;
			s->after_cr = c == '\r';
			i++;
			continue;
		}
		size_t run = run_before(p + i, n - i, false);
		if (spool_content(s, p + i, run) != 0)
			return -1;
		i += run;
	}
	return 0;
}

/* A last line without a line end gets CRLF; an empty input stays empty. */
static int spool_finish(struct spooler *s)
{
	if (!s->ended && !s->at_line_start && spool_line_end(s) != 0)
		return -1;
	return spool_flush(s);
}

static int spool_copy(int in_fd, const struct spool_options *opt,
		      struct message *msg, char *err, size_t errlen)
{
	struct spooler s = {
		.msg = msg, .fd = msg->fd, .at_line_start = true,
		.first_line = true,
		.dot_ends_input = opt && opt->dot_ends_input,
	};
	char *in = xmalloc(SPOOL_BLOCK);
	int rc = 0;

	s.out = xmalloc(SPOOL_BLOCK);
	for (;;) {
		ssize_t n = read(in_fd, in, SPOOL_BLOCK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			format_into(err, errlen, "cannot read the message: %s",
				    strerror(errno));
			rc = -1;
			break;
		}
		if (n > 0 && spool_feed(&s, in, (size_t)n) != 0)
			rc = -1;
		else if (n == 0 || s.ended)
			rc = spool_finish(&s);
		else
			continue;
		if (rc != 0)
			format_into(err, errlen, "cannot write the spool file: %s",
				    strerror(errno));
		break;
	}
	free(in);
	free(s.out);
	return rc;
}
/* ---- the header block (RFC 5322 2.2, 3.5), read back from the spool ---- */

struct header_reader {
	struct message *msg;
	char *buf;            /* the spool file from offset 0 */
	size_t len;
	size_t cap;           /* allocated entries of msg->headers */
	size_t pos;           /* start of the first line not yet taken */
};

static int header_read_more(struct header_reader *r)
{
	size_t want = SPOOL_BLOCK;
	off_t left = r->msg->size - (off_t)r->len;

	if ((off_t)want > left)
		want = (size_t)left;
	if (want > HEADER_READ_MAX - r->len)
		want = HEADER_READ_MAX - r->len;
	r->buf = xrealloc(r->buf, r->len + want);
	if (pread_full(r->msg->fd, r->buf + r->len, want, (off_t)r->len) != 0)
		return -1;
	r->len += want;
	return 0;
}

static void header_add(struct header_reader *r, size_t len)
{
	struct message *m = r->msg;

	if (m->nheaders == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		m->headers = xrealloc(m->headers, r->cap * sizeof *m->headers);
	}
	m->headers[m->nheaders++] = (struct header_field){
		.offset = (off_t)r->pos, .length = len,
	};
}

/* Takes one line of kind k at r->pos. Returns true while the header block
 * goes on, false when this line ends it (msg->header_end is then set). */
static bool header_take_line(struct header_reader *r, enum line_kind k,
			     size_t len)
{
	struct message *m = r->msg;

	switch (k) {
	case LINE_EMPTY:
		/* RFC 5322 2.1: the empty line separates header and body.
		 * A message starting with it has an empty header block. */
		m->header_end = (off_t)(r->pos + len);
		return false;
	case LINE_FIELD:
		header_add(r, len);
		return true;
	case LINE_CONTINUATION:
		if (m->nheaders == 0)
			break;	/* first line indented: no header block */
		m->headers[m->nheaders - 1].length += len;
		return true;
	default:
		break;
	}
	/* Neither field nor continuation: on the first line there is no
	 * header block at all (header_end 0); later, the header block ends
	 * just before it and the line is the first line of the body. This is
	 * what a receiving MTA makes of such a message too, and it keeps the
	 * line (it is sent as it is, never lost). Without the empty line
	 * before it, a field we prepend or a line starting with WSP could
	 * join the two, so message_emit puts one there. */
	m->header_end = (off_t)r->pos;
	m->needs_separator = true;
	return false;
}

/* The read buffer is full and the line at r->pos has no end in it. */
static int header_partial_line(struct header_reader *r, char *err,
			       size_t errlen)
{
	enum line_kind k = classify_line(r->buf + r->pos, r->len - r->pos,
					 false);

	/* An undecided line (name characters and WSP over a megabyte, no
	 * colon) cannot be a field we could keep: it is body. */
	if (k == LINE_FIELD || (k == LINE_CONTINUATION && r->msg->nheaders)) {
		format_into(err, errlen,
			    "the message header block is larger than %d bytes",
			    MESSAGE_HEADER_BLOCK_MAX);
		return -1;
	}
	r->msg->header_end = (off_t)r->pos;
	r->msg->needs_separator = true;
	return 0;
}

/* Finds where the header block ends and the extent of every field. */
static int header_scan(struct header_reader *r, char *err, size_t errlen)
{
	for (;;) {
		char *line = r->len > r->pos ? r->buf + r->pos : NULL;
		char *lf = line ? memchr(line, '\n', r->len - r->pos) : NULL;
		if (!lf) {
			/* The spool ends in CRLF, so at its end pos == len. */
			if ((off_t)r->len == r->msg->size) {
				r->msg->header_end = (off_t)r->pos;
				return 0;
			}
			if (r->len == HEADER_READ_MAX)
				return header_partial_line(r, err, errlen);
			if (header_read_more(r) != 0) {
				format_into(err, errlen,
					    "cannot read the spool file: %s",
					    strerror(errno));
				return -1;
			}
			continue;
		}
		size_t len = (size_t)(lf + 1 - line);
		if (!header_take_line(r, classify_line(line, len - 2, true), len))
			return 0;
		r->pos += len;
		if (r->pos > MESSAGE_HEADER_BLOCK_MAX) {
			format_into(err, errlen,
				    "the message header block is larger than %d bytes",
				    MESSAGE_HEADER_BLOCK_MAX);
			return -1;
		}
	}
}

/* RFC 5322 2.2.3: unfolding removes each CRLF that is followed by WSP and
 * keeps the WSP. Leading and trailing WSP are not part of the value. */
static char *unfold_value(const char *p, size_t len)
{
	char *v = xmalloc(len + 1);
	size_t n = 0, start = 0;

	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\r' && i + 1 < len && p[i + 1] == '\n') {
			i++;
			continue;
		}
		v[n++] = p[i];
	}
	while (start < n && is_wsp(v[start]))
		start++;
	while (n > start && is_wsp(v[n - 1]))
		n--;
	memmove(v, v + start, n - start);
	v[n - start] = '\0';
	return v;
}

static void header_fill(struct header_field *h, const char *raw)
{
	size_t name_len = 0, i;

	while (is_ftext(raw[name_len]))
		name_len++;
	h->name = xstrndup(raw, name_len);
	i = name_len;
	while (is_wsp(raw[i]))
		i++;
	i++;	/* the colon */
	h->value = unfold_value(raw + i, h->length - 2 - i);
}

static int parse_header_block(struct message *msg, char *err, size_t errlen)
{
	struct header_reader r = { .msg = msg };
	int rc = header_scan(&r, err, errlen);

	if (rc == 0) {
		for (size_t i = 0; i < msg->nheaders; i++)
			header_fill(&msg->headers[i],
				    r.buf + msg->headers[i].offset);
	} else {
		free(msg->headers);	/* names and values not filled yet */
		msg->headers = NULL;
		msg->nheaders = 0;
	}
	free(r.buf);
	return rc;
}

int message_spool(int in_fd, const struct spool_options *opt,
		  struct message *msg, char *err, size_t errlen)
{
	memset(msg, 0, sizeof *msg);
	msg->fd = temp_file_unlinked(opt ? opt->tmpdir : NULL, "postbote", err,
				     errlen);
	if (msg->fd < 0)
		return -1;
	if (spool_copy(in_fd, opt, msg, err, errlen) != 0 ||
	    parse_header_block(msg, err, errlen) != 0) {
		message_free(msg);
		return -1;
	}
	return 0;
}

const struct header_field *message_header_find(const struct message *msg,
					       const char *name)
{
	for (size_t i = 0; i < msg->nheaders; i++)
		if (ascii_casecmp(msg->headers[i].name, name) == 0)
			return &msg->headers[i];
	return NULL;
}

void message_free(struct message *msg)
{
	if (msg->fd >= 0)
		close(msg->fd);
	for (size_t i = 0; i < msg->nheaders; i++) {
		free(msg->headers[i].name);
		free(msg->headers[i].value);
	}
	free(msg->headers);
	memset(msg, 0, sizeof *msg);
	msg->fd = -1;
}

/* ---- emitting: prepend + kept fields + body, in large blocks ---- */

void dot_stuffer_init(struct dot_stuffer *st)
{
	st->at_line_start = true;
}

/* RFC 5321 4.5.2: before sending a line, a '.' that starts it is doubled. */
size_t dot_stuff(struct dot_stuffer *st, const char *in, size_t len, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		if (st->at_line_start && in[i] == '.')
			out[o++] = '.';
		out[o++] = in[i];
		st->at_line_start = in[i] == '\n';
	}
	return o;
}

struct emitter {
	message_sink sink;
	void *ctx;
	bool dot_stuff;
	struct dot_stuffer st;
	char *out;
	size_t len;
	size_t flush_at;
	char *in;
};

static int emitter_flush(struct emitter *e)
{
	int rc;

	if (e->len == 0)
		return 0;
	rc = e->sink(e->ctx, e->out, e->len);
	e->len = 0;
	return rc;
}

/* Before each step len < flush_at, so with dot-stuffing room > 32 KiB and
 * at least 16 KiB of input fit (each byte becomes at most two). */
static int emitter_put(struct emitter *e, const char *p, size_t n)
{
	while (n > 0) {
		size_t room = EMIT_BLOCK - e->len;
		size_t k = e->dot_stuff ? room / 2 : room;
		if (k > n)
			k = n;
		if (e->dot_stuff) {
			e->len += dot_stuff(&e->st, p, k, e->out + e->len);
		} else {
			memcpy(e->out + e->len, p, k);
			e->len += k;
		}
		p += k;
		n -= k;
		if (e->len >= e->flush_at) {
			int rc = emitter_flush(e);
			if (rc != 0)
				return rc;
		}
	}
	return 0;
}

static int emitter_copy(struct emitter *e, int fd, off_t off, off_t end)
{
	while (off < end) {
		size_t k = end - off < EMIT_BLOCK ? (size_t)(end - off)
						  : EMIT_BLOCK;
		int rc;
		if (pread_full(fd, e->in, k, off) != 0)
			return -1;
		rc = emitter_put(e, e->in, k);
		if (rc != 0)
			return rc;
		off += (off_t)k;
	}
	return 0;
}

static bool is_removed(const char *name, const char *const *remove)
{
	for (size_t i = 0; remove && remove[i]; i++)
		if (ascii_casecmp(name, remove[i]) == 0)
			return true;
	return false;
}

static const char *replacement(const struct emit_options *opt, size_t i)
{
	return opt && opt->replace ? opt->replace[i] : NULL;
}

/* Removal wins over replacement: a field the caller wants hidden (Bcc)
 * must not reappear because another part of the program rewrote it. */
static bool is_left_out(const struct message *msg,
			const struct emit_options *opt, size_t i)
{
	return is_removed(msg->headers[i].name, opt ? opt->remove : NULL);
}

/* Header fields lie back to back from offset 0, so what is kept as it is
 * are a few contiguous ranges between removed or replaced fields; each is
 * copied in large blocks. */
static int emit_header_block(const struct message *msg,
			     const struct emit_options *opt, struct emitter *e)
{
	off_t start = 0;

	for (size_t i = 0; i < msg->nheaders; i++) {
		const struct header_field *h = &msg->headers[i];
		const char *with = replacement(opt, i);
		bool left_out = is_left_out(msg, opt, i);
		int rc;
		if (!left_out && !with)
			continue;
		rc = emitter_copy(e, msg->fd, start, h->offset);
		if (rc == 0 && !left_out)
			rc = emitter_put(e, with, strlen(with));
		if (rc != 0)
			return rc;
		start = h->offset + (off_t)h->length;
	}
	return emitter_copy(e, msg->fd, start, msg->header_end);
}

/* RFC 5322 2.1: an empty line separates the header fields from the body;
 * it is added where the message lacked one (see needs_separator). */
static int emit_spool(const struct message *msg,
		      const struct emit_options *opt, struct emitter *e)
{
	int rc = emit_header_block(msg, opt, e);

	if (rc == 0 && msg->needs_separator)
		rc = emitter_put(e, "\r\n", 2);
	if (rc == 0)
		rc = emitter_copy(e, msg->fd, msg->header_end, msg->size);
	return rc;
}

int message_emit(const struct message *msg, const struct emit_options *opt,
		 message_sink sink, void *ctx)
{
	struct emitter e = {
		.sink = sink, .ctx = ctx, .dot_stuff = opt && opt->dot_stuff,
	};
	int rc = 0, saved_errno;

	dot_stuffer_init(&e.st);
	e.flush_at = e.dot_stuff ? EMIT_BLOCK / 2 : EMIT_BLOCK;
	e.out = xmalloc(EMIT_BLOCK);
	e.in = xmalloc(EMIT_BLOCK);
	if (opt && opt->prepend)
		rc = emitter_put(&e, opt->prepend, strlen(opt->prepend));
	if (rc == 0)
		rc = emit_spool(msg, opt, &e);
	if (rc == 0)
		rc = emitter_flush(&e);
	saved_errno = errno;
	free(e.out);
	free(e.in);
	errno = saved_errno;
	return rc;
}

off_t message_emit_size(const struct message *msg,
			const struct emit_options *opt)
{
	off_t size = msg->size;

	if (opt && opt->prepend)
		size += (off_t)strlen(opt->prepend);
	if (msg->needs_separator)
		size += 2;
	for (size_t i = 0; i < msg->nheaders; i++) {
		const char *with = replacement(opt, i);
		if (!is_left_out(msg, opt, i) && !with)
			continue;
		size -= (off_t)msg->headers[i].length;
		if (!is_left_out(msg, opt, i))
			size += (off_t)strlen(with);
	}
	return size;
}
