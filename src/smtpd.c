#include "autoconf.h"
#include "smtpd.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "address.h"
#include "deadline.h"
#include "util.h"

/* Input is read, and the spool file written, in blocks this large: few
 * system calls for a big message, constant memory for any size. */
#define SMTPD_BLOCK (64 * 1024)
/* Replies collect here until we are about to wait for input. */
#define SMTPD_OUT_SIZE (8 * 1024)
/* RFC 1035 2.3.4: a domain name is at most 255 octets. */
#define SMTPD_HOSTNAME_MAX 255
/* The reply line's text without CRLF. */
#define SMTPD_REPLY_TEXT_MAX (SMTPD_REPLY_MAX - 2)

/* RFC 5321 3.3 and 4.1.4: a transaction needs EHLO/HELO, then MAIL, then
 * at least one RCPT before DATA. */
enum smtpd_state {
	SMTPD_STATE_GREETED,    /* no EHLO or HELO yet */
	SMTPD_STATE_READY,      /* may start a mail transaction */
	SMTPD_STATE_MAIL,       /* sender accepted */
	SMTPD_STATE_RCPT,       /* at least one recipient accepted */
};

enum pipe_status { PIPE_OK, PIPE_EOF, PIPE_TIMEOUT, PIPE_FAILED };

/* How the session goes on after a command. */
enum session_step { STEP_NEXT, STEP_QUIT, STEP_GONE, STEP_FAILED };

struct smtpd {
	const struct smtpd_options *opt;
	const char *hostname;
	int in_fd, out_fd;
	char *in;                  /* SMTPD_BLOCK bytes */
	size_t in_start, in_end;
	char out[SMTPD_OUT_SIZE];
	size_t out_len;
	/* The first failure writing out_fd; once set, replies are dropped
	 * and the next wait for input reports it. */
	enum pipe_status out_status;
	enum smtpd_state state;
	bool esmtp;                /* EHLO, not HELO: extensions in use */
	/* the mail transaction */
	char *sender;
	struct strlist rcpts;
	bool body_8bit, smtputf8;
};

/* ------------------------------------------------------------ state */

/* The one place the state changes. Going back to READY or GREETED ends
 * the mail transaction (RFC 5321 4.1.1.5 RSET, 4.1.4 EHLO, and the end of
 * DATA whatever its reply). */
static void set_state(struct smtpd *d, enum smtpd_state state)
{
	if (state <= SMTPD_STATE_READY) {
		free(d->sender);
		d->sender = NULL;
		strlist_free(&d->rcpts);
		d->body_8bit = d->smtputf8 = false;
	}
	d->state = state;
}

/* --------------------------------------------------------------- I/O */

static enum pipe_status wait_for(int fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int64_t deadline = deadline_after(timeout_ms);

	for (;;) {
		int n = poll(&p, 1, deadline_left(deadline));
		/* POLLHUP and POLLERR too: the read or write then tells. */
		if (n > 0)
			return PIPE_OK;
		if (n == 0)
			return PIPE_TIMEOUT;
		if (errno != EINTR)
			return PIPE_FAILED;
	}
}

/* Full writes: a pipe takes part of a large write, a signal may interrupt
 * it, and a non-blocking out_fd makes us wait (within the idle timeout). */
static void out_flush(struct smtpd *d)
{
	size_t off = 0;

	while (off < d->out_len && d->out_status == PIPE_OK) {
		ssize_t n = write(d->out_fd, d->out + off, d->out_len - off);
		if (n > 0)
			off += (size_t)n;
		else if (n < 0 && errno == EAGAIN)
			d->out_status = wait_for(d->out_fd, POLLOUT,
						 d->opt->idle_timeout_ms);
		else if (n == 0 || errno != EINTR)
			d->out_status = PIPE_FAILED;
	}
	d->out_len = 0;
}

/* Reply text is printable ASCII (RFC 5321 4.2 textstring): line ends
 * would let text from elsewhere (an address, the delivery's result) forge
 * further replies. CR, LF and TAB become spaces so that joined lines stay
 * readable; every other byte outside ' '..'~' becomes '?'. */
static void make_reply_safe(char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '\r' || c == '\n' || c == '\t')
			*s = ' ';
		else if (c < 0x20 || c > 0x7e)
			*s = '?';
	}
}

static void reply(struct smtpd *d, const char *fmt, ...) PRINTF_LIKE(2, 3);

/* Queues one reply line, cut to RFC 5321 4.5.3.1.5's 512 octets (marked
 * "..."), never split. */
static void reply(struct smtpd *d, const char *fmt, ...)
{
	char line[SMTPD_REPLY_TEXT_MAX + 1];
	va_list ap;
	int n;
	size_t len;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n < 0)
		line[0] = '\0';
	else if ((size_t)n >= sizeof line)
		memcpy(line + sizeof line - 4, "...", 4);
	make_reply_safe(line);
	len = strlen(line);
	if (d->out_len + len + 2 > sizeof d->out)
		out_flush(d);
	if (d->out_status != PIPE_OK)
		return;
	memcpy(d->out + d->out_len, line, len);
	memcpy(d->out + d->out_len + len, "\r\n", 2);
	d->out_len += len + 2;
}

/* RFC 2920 3.2: replies may be held back and sent in groups, but never
 * while the server waits for input, so everything queued goes out before
 * each read. ECONNRESET on a socket is the client going away. */
static enum pipe_status in_fill(struct smtpd *d)
{
	out_flush(d);
	if (d->out_status != PIPE_OK)
		return d->out_status;
	if (d->in_start > 0) {
		memmove(d->in, d->in + d->in_start, d->in_end - d->in_start);
		d->in_end -= d->in_start;
		d->in_start = 0;
	}
	for (;;) {
		enum pipe_status st = wait_for(d->in_fd, POLLIN,
					       d->opt->idle_timeout_ms);
		ssize_t n;
		if (st != PIPE_OK)
			return st;
		n = read(d->in_fd, d->in + d->in_end, SMTPD_BLOCK - d->in_end);
		if (n > 0) {
			d->in_end += (size_t)n;
			return PIPE_OK;
		}
		if (n == 0 || errno == ECONNRESET)
			return PIPE_EOF;
		if (errno != EINTR && errno != EAGAIN)
			return PIPE_FAILED;
	}
}

/* What a failed wait for input means for the session. RFC 5321 3.8 and
 * 4.5.3.2.7: a server that gives up on a silent client says 421 first. */
static enum session_step step_after(struct smtpd *d, enum pipe_status st)
{
	switch (st) {
	case PIPE_OK:
		return STEP_NEXT;
	case PIPE_EOF:
		return STEP_GONE;
	case PIPE_TIMEOUT:
		reply(d, "421 4.4.2 %s timeout, closing connection",
		      d->hostname);
		return STEP_GONE;
	case PIPE_FAILED:
		break;
	}
	return STEP_FAILED;
}

/* One command line without its line end (CRLF or a bare LF) into line
 * (SMTPD_COMMAND_MAX bytes). A longer line is read to its end and
 * discarded whole (*too_long): its tail must never run as a command. */
static enum pipe_status read_command(struct smtpd *d, char *line, size_t *len,
				     bool *too_long)
{
	enum pipe_status st = PIPE_OK;

	*too_long = false;
	while (st == PIPE_OK) {
		char *p = d->in + d->in_start;
		size_t avail = d->in_end - d->in_start;
		char *lf = memchr(p, '\n', avail);
		if (lf) {
			size_t n = (size_t)(lf - p);
			d->in_start += n + 1;
			if (n > 0 && p[n - 1] == '\r')
				n--;
			if (n > SMTPD_COMMAND_MAX - 2)
				*too_long = true;
			if (*too_long)
				return PIPE_OK;
			memcpy(line, p, n);
			line[n] = '\0';
			*len = n;
			return PIPE_OK;
		}
		if (avail >= SMTPD_COMMAND_MAX) {
			*too_long = true;
			d->in_start = d->in_end;
		}
		st = in_fill(d);
	}
	return st;
}

/* ---------------------------------------------------- message text */

/* Where we are in the message text (RFC 5321 4.5.2): a '.' starting a
 * line is held back until the next byte shows whether the line is the
 * lone "." that ends the text or a dot-stuffed line. */
enum text_state {
	TEXT_LINE_START,
	TEXT_DOT,          /* the line so far is "." */
	TEXT_DOT_CR,       /* the line so far is ".\r" */
	TEXT_IN_LINE,
	TEXT_CR,           /* a CR that may start the line's CRLF */
	TEXT_END,          /* the lone "." was read */
};

struct text_reader {
	enum text_state state;
	int fd;               /* unlinked spool file */
	char *buf;            /* SMTPD_BLOCK bytes waiting to be written */
	size_t len;
	uint64_t size;        /* octets with CRLF, without dot-stuffing,
			       * as RFC 1870 counts them */
	uint64_t size_max;
	bool too_big;
	int write_errno;      /* first error writing the spool file */
};

static void text_flush(struct text_reader *r)
{
	const char *p = r->buf;

	while (r->len > 0 && r->write_errno == 0) {
		ssize_t n = write(r->fd, p, r->len);
		if (n > 0) {
			p += n;
			r->len -= (size_t)n;
		} else if (n == 0 || errno != EINTR) {
			r->write_errno = n == 0 ? EIO : errno;
		}
	}
	r->len = 0;
}

/* Past the size limit or a write error the rest is read but not kept:
 * the client must send it all before it can hear the reply. */
static void text_put(struct text_reader *r, const char *p, size_t n)
{
	r->size += n;
	if (r->size_max && r->size > r->size_max)
		r->too_big = true;
	while (n > 0 && !r->too_big && r->write_errno == 0) {
		size_t k = SMTPD_BLOCK - r->len;
		if (k > n)
			k = n;
		memcpy(r->buf + r->len, p, k);
		r->len += k;
		p += k;
		n -= k;
		if (r->len == SMTPD_BLOCK)
			text_flush(r);
	}
}

/* A byte inside a line: a CR is held back in case an LF follows. */
static void text_line_byte(struct text_reader *r, char c)
{
	if (c == '\r') {
		r->state = TEXT_CR;
	} else if (c == '\n') {
		text_put(r, "\r\n", 2);
		r->state = TEXT_LINE_START;
	} else {
		text_put(r, &c, 1);
		r->state = TEXT_IN_LINE;
	}
}

/* CRLF or a bare LF ends a line; a bare CR is text. */
static void text_byte(struct text_reader *r, char c)
{
	switch (r->state) {
	case TEXT_LINE_START:
		if (c == '.') {
			r->state = TEXT_DOT;
			return;
		}
		break;
	case TEXT_DOT:
		if (c == '\n') {
			r->state = TEXT_END;
			return;
		}
		if (c == '\r') {
			r->state = TEXT_DOT_CR;
			return;
		}
		break;	/* the line goes on: its first '.' is dropped */
	case TEXT_DOT_CR:
		if (c == '\n') {
			r->state = TEXT_END;
			return;
		}
		/* "." and a bare CR: a longer line, its dot is dropped */
		text_put(r, "\r", 1);
		break;
	case TEXT_CR:
		if (c == '\n') {
			text_put(r, "\r\n", 2);
			r->state = TEXT_LINE_START;
			return;
		}
		text_put(r, "\r", 1);
		break;
	case TEXT_IN_LINE:
	case TEXT_END:
		break;
	}
	text_line_byte(r, c);
}

static size_t text_run(const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && p[i] != '\r' && p[i] != '\n')
		i++;
	return i;
}

/* Takes input until the end of the text; returns the bytes used, so what
 * follows the final "." stays for the next (pipelined) command. */
static size_t text_feed(struct text_reader *r, const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && r->state != TEXT_END) {
		if (r->state == TEXT_IN_LINE) {
			size_t run = text_run(p + i, n - i);
			text_put(r, p + i, run);
			i += run;
			if (i == n)
				break;
		}
		text_byte(r, p[i++]);
	}
	return i;
}

static enum pipe_status read_text(struct smtpd *d, struct text_reader *r)
{
	enum pipe_status st = PIPE_OK;

	while (st == PIPE_OK) {
		d->in_start += text_feed(r, d->in + d->in_start,
					 d->in_end - d->in_start);
		if (r->state == TEXT_END) {
			text_flush(r);
			break;
		}
		st = in_fill(d);
	}
	return st;
}
/* ------------------------------------------------------- delivery */

/* RFC 5321 4.2: the first digit 2..5 (we answer the dot with 2, 4 or 5),
 * the second 0..5. */
static bool result_code_usable(int code)
{
	int first = code / 100, second = code / 10 % 10;

	return code >= 200 && code <= 599 && first != 3 && second <= 5;
}

static size_t digit_run(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++;
	return i;
}

/* RFC 3463 2: class "." subject "." detail, the class that of the reply
 * code (RFC 2034 3), subject and detail 1 to 3 digits. */
static bool enhanced_matches(int code, const char *e, size_t len)
{
	size_t i = 2, n;

	if (len < 5 || e[0] != '0' + code / 100 || e[1] != '.')
		return false;
	n = digit_run(e + i, len - i);
	if (n < 1 || n > 3 || i + n >= len || e[i + n] != '.')
		return false;
	i += n + 1;
	n = digit_run(e + i, len - i);
	return n >= 1 && n <= 3 && i + n == len;
}

/* The delivery's result as the reply to the final dot. A missing or
 * mismatched enhanced code becomes X.0.0 (RFC 3463 3.1, other status). */
static void reply_result(struct smtpd *d, const struct smtpd_result *r)
{
	size_t elen = strnlen(r->enhanced, sizeof r->enhanced);
	size_t tlen = strnlen(r->text, sizeof r->text);
	const char *text = r->text;

	if (!result_code_usable(r->code)) {
		reply(d, "451 4.3.0 delivery gave no usable result (code %d)",
		      r->code);
		return;
	}
	if (tlen == 0) {
		text = r->code < 300 ? "message accepted"
				     : "message not delivered";
		tlen = strlen(text);
	}
	if (enhanced_matches(r->code, r->enhanced, elen))
		reply(d, "%d %.*s %.*s", r->code, (int)elen, r->enhanced,
		      (int)tlen, text);
	else
		reply(d, "%d %d.0.0 %.*s", r->code, r->code / 100, (int)tlen,
		      text);
}

/* message_spool reads the text file once more: it parses the header block
 * and leaves the message in the form every other path delivers. */
static void deliver_text(struct smtpd *d, int fd)
{
	struct spool_options so = { .dot_ends_input = false,
				    .tmpdir = d->opt->tmpdir };
	struct smtpd_result res = { 0 };
	struct message msg;
	char err[256];

	if (lseek(fd, 0, SEEK_SET) != 0) {
		reply(d, "451 4.3.0 cannot rewind the spool file: %s",
		      strerror(errno));
		return;
	}
	if (message_spool(fd, &so, &msg, err, sizeof err) != 0) {
		reply(d, "451 4.3.0 %s", err);
		return;
	}
	if (d->opt->deliver) {
		struct smtpd_message m = {
			.sender = d->sender,
			.rcpts = (const char *const *)d->rcpts.v,
			.nrcpts = d->rcpts.n, .msg = &msg,
			.body_8bit_declared = d->body_8bit,
		};
		d->opt->deliver(d->opt->ctx, &m, &res);
		reply_result(d, &res);
	} else {
		reply(d, "451 4.3.5 no delivery is configured");
	}
	message_free(&msg);
}

/* The reply to the final dot, once the whole text has been read. RFC 1870
 * 6.3: text over the limit gets 552 even when SIZE= promised less. */
static void finish_text(struct smtpd *d, struct text_reader *r)
{
	if (r->too_big)
		reply(d, "552 5.3.4 message exceeds the size limit of %" PRIu64
		      " octets", d->opt->size_max);
	else if (r->write_errno != 0)
		reply(d, "451 4.3.0 cannot write the spool file: %s",
		      strerror(r->write_errno));
	else
		deliver_text(d, r->fd);
}

/* RFC 5321 4.1.1.4: 354, the text up to the lone ".", then one reply.
 * Text cut off by end of input or a timeout is never delivered. */
static enum session_step receive_text(struct smtpd *d)
{
	struct text_reader r = { .state = TEXT_LINE_START,
				 .size_max = d->opt->size_max };
	char err[256];
	enum pipe_status st;

	r.fd = temp_file_unlinked(d->opt->tmpdir, "postbote-bs", err, sizeof err);
	if (r.fd < 0) {
		reply(d, "451 4.3.0 %s", err);
		return STEP_NEXT;
	}
	reply(d, "354 end data with <CR><LF>.<CR><LF>");
	r.buf = xmalloc(SMTPD_BLOCK);
	st = read_text(d, &r);
	if (st == PIPE_OK)
		finish_text(d, &r);
	free(r.buf);
	close(r.fd);
	set_state(d, SMTPD_STATE_READY);
	return step_after(d, st);
}

/* -------------------------------------------------- paths and params */

static char *skip_spaces(char *s)
{
	while (*s == ' ')
		s++;
	return s;
}

/* The '>' ending a path, skipping quoted strings (RFC 5321 4.1.2
 * Quoted-string, where '>' and quoted-pairs are text). */
static char *path_end(char *p)
{
	bool quoted = false;

	for (; *p; p++) {
		if (quoted && *p == '\\' && p[1])
			p++;
		else if (*p == '"')
			quoted = !quoted;
		else if (!quoted && *p == '>')
			return p;
	}
	return NULL;
}

/* RFC 5321 4.1.2 A-d-l ":" before the mailbox, and appendix C: a server
 * SHOULD accept a source route and MAY ignore it. The ':' inside an IPv6
 * address literal ("@[IPv6:::1]") is not its end. */
static char *skip_source_route(char *addr)
{
	bool literal = false;

	if (*addr != '@')
		return addr;
	for (char *p = addr; *p; p++) {
		if (*p == '[')
			literal = true;
		else if (*p == ']')
			literal = false;
		else if (*p == ':' && !literal)
			return p + 1;
	}
	return NULL;
}

/* "FROM:<path> params" or "TO:<path> params" (keyword case-insensitive).
 * Sets *addr to the mailbox (NUL-terminated in place) and *params to what
 * follows the path. Returns false on a syntax error. */
static bool parse_path_arg(char *args, const char *keyword, char **addr,
			   char **params)
{
	size_t klen = strlen(keyword);
	char *p, *end;

	if (ascii_ncasecmp(args, keyword, klen) != 0)
		return false;
	p = skip_spaces(args + klen);
	if (*p != '<' || !(end = path_end(p + 1)))
		return false;
	if (end[1] != '\0' && end[1] != ' ')
		return false;
	*end = '\0';
	*params = end + 1;
	*addr = skip_source_route(p + 1);
	return *addr != NULL;
}

/* address_is_safe_for_envelope checks bytes, quotes and length; a mailbox
 * also needs something on both sides of its '@' (RFC 5321 4.1.2 Mailbox). */
static bool address_has_parts(const char *addr, char *why, size_t whylen)
{
	bool quoted = false;
	const char *s;

	for (s = addr; *s; s++) {
		if (quoted && *s == '\\' && s[1])
			s++;
		else if (*s == '"')
			quoted = !quoted;
		else if (!quoted && *s == '@')
			break;
	}
	if (*s != '@' || (s > addr && s[1] != '\0'))
		return true;
	format_into(why, whylen, "address has an empty %s",
		    s == addr ? "local part" : "domain");
	return false;
}

/* Bare local names ("root") are allowed: the caller qualifies them. */
static bool address_acceptable(struct smtpd *d, const char *addr,
			       const char *what, const char *enhanced)
{
	char why[256];

	if (!address_is_safe_for_envelope(addr, why, sizeof why) ||
	    !address_has_parts(addr, why, sizeof why)) {
		reply(d, "553 %s bad %s address: %s", enhanced, what, why);
		return false;
	}
	if (!d->smtputf8 && address_is_8bit(addr)) {
		/* RFC 6531 3.5: non-ASCII addresses need SMTPUTF8. */
		reply(d, "553 5.6.7 non-ASCII %s address needs MAIL ... "
		      "SMTPUTF8", what);
		return false;
	}
	return true;
}

/* RFC 1870 4: SIZE=1*20DIGIT; 6.1: a size over the limit gets 552. */
static bool param_size(struct smtpd *d, const char *value)
{
	uint64_t n = 0;
	size_t len = value ? digit_run(value, strlen(value)) : 0;

	if (len == 0 || value[len] != '\0' || len > 20) {
		reply(d, "501 5.5.4 SIZE needs a number of octets");
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned digit = (unsigned)(value[i] - '0');
		if (n > (UINT64_MAX - digit) / 10) {
			n = UINT64_MAX;
			break;
		}
		n = n * 10 + digit;
	}
	if (d->opt->size_max && n > d->opt->size_max) {
		reply(d, "552 5.3.4 message size exceeds the limit of %" PRIu64
		      " octets", d->opt->size_max);
		return false;
	}
	return true;
}

/* RFC 6152 3: BODY=7BIT or BODY=8BITMIME (BINARYMIME is not offered). */
static bool param_body(struct smtpd *d, const char *value)
{
	if (value && ascii_casecmp(value, "8BITMIME") == 0)
		d->body_8bit = true;
	else if (value && ascii_casecmp(value, "7BIT") == 0)
		d->body_8bit = false;
	else {
		reply(d, "501 5.5.4 BODY must be 7BIT or 8BITMIME");
		return false;
	}
	return true;
}

/* RFC 6531 3.4: SMTPUTF8 has no value. */
static bool param_smtputf8(struct smtpd *d, const char *value)
{
	if (value) {
		reply(d, "501 5.5.4 SMTPUTF8 takes no value");
		return false;
	}
	d->smtputf8 = true;
	return true;
}

static const struct mail_param {
	const char *keyword;
	bool (*take)(struct smtpd *d, const char *value);
} mail_params[] = {
	{ "SIZE", param_size },
	{ "BODY", param_body },
	{ "SMTPUTF8", param_smtputf8 },
};

/* RFC 5321 4.1.2: esmtp-param *(SP esmtp-param), esmtp-keyword
 * ["=" esmtp-value]. RCPT has none here (DSN is not offered). RFC 5321
 * 4.1.1.11: one not recognized is 555; after HELO none is (3.3). */
static const struct mail_param *mail_param_find(const char *keyword)
{
	for (size_t i = 0; i < sizeof mail_params / sizeof mail_params[0]; i++)
		if (ascii_casecmp(keyword, mail_params[i].keyword) == 0)
			return &mail_params[i];
	return NULL;
}

static bool take_params(struct smtpd *d, char *params, bool is_mail)
{
	char *save = NULL;

	for (char *kw = strtok_r(params, " ", &save); kw;
	     kw = strtok_r(NULL, " ", &save)) {
		char *value = strchr(kw, '=');
		const struct mail_param *known = NULL;
		if (value)
			*value++ = '\0';
		if (is_mail && d->esmtp)
			known = mail_param_find(kw);
		if (!known) {
			reply(d, "555 5.5.4 unsupported parameter %.64s", kw);
			return false;
		}
		if (!known->take(d, value))
			return false;
	}
	return true;
}

/* --------------------------------------------------------- commands */

static bool no_args(struct smtpd *d, const char *verb, char *args)
{
	if (*skip_spaces(args) == '\0')
		return true;
	reply(d, "501 5.5.4 %s takes no arguments", verb);
	return false;
}

/* RFC 2034 3: no enhanced codes in replies to EHLO and HELO. RFC 5321
 * 4.1.4: EHLO or HELO also ends any mail transaction. */
static enum session_step cmd_ehlo(struct smtpd *d, char *args)
{
	if (*skip_spaces(args) == '\0') {
		reply(d, "501 syntax: EHLO domain");
		return STEP_NEXT;
	}
	set_state(d, SMTPD_STATE_READY);
	d->esmtp = true;
	reply(d, "250-%s", d->hostname);
	reply(d, "250-PIPELINING");
	reply(d, "250-8BITMIME");
	reply(d, "250-SMTPUTF8");
	reply(d, "250-ENHANCEDSTATUSCODES");
	if (d->opt->size_max)	/* RFC 1870 4: no number, no fixed limit */
		reply(d, "250 SIZE %" PRIu64, d->opt->size_max);
	else
		reply(d, "250 SIZE");
	return STEP_NEXT;
}

static enum session_step cmd_helo(struct smtpd *d, char *args)
{
	if (*skip_spaces(args) == '\0') {
		reply(d, "501 syntax: HELO domain");
		return STEP_NEXT;
	}
	set_state(d, SMTPD_STATE_READY);
	d->esmtp = false;
	reply(d, "250 %s", d->hostname);
	return STEP_NEXT;
}

/* RFC 5321 4.1.4: EHLO/HELO before a transaction, no MAIL inside one.
 * Parameters come first so that SMTPUTF8 counts for the address. */
static enum session_step cmd_mail(struct smtpd *d, char *args)
{
	char *addr, *params;

	if (d->state == SMTPD_STATE_GREETED) {
		reply(d, "503 5.5.1 send EHLO or HELO first");
		return STEP_NEXT;
	}
	if (d->state != SMTPD_STATE_READY) {
		reply(d, "503 5.5.1 nested MAIL command");
		return STEP_NEXT;
	}
	if (!parse_path_arg(args, "FROM:", &addr, &params)) {
		reply(d, "501 5.5.4 syntax: MAIL FROM:<address>");
		return STEP_NEXT;
	}
	if (!take_params(d, params, true) ||
	    !address_acceptable(d, addr, "sender", "5.1.7")) {
		set_state(d, SMTPD_STATE_READY);
		return STEP_NEXT;
	}
	d->sender = xstrdup(addr);
	set_state(d, SMTPD_STATE_MAIL);
	reply(d, "250 2.1.0 sender ok");
	return STEP_NEXT;
}

static enum session_step cmd_rcpt(struct smtpd *d, char *args)
{
	char *addr, *params;

	if (d->state < SMTPD_STATE_MAIL) {
		reply(d, "503 5.5.1 need MAIL before RCPT");
		return STEP_NEXT;
	}
	if (!parse_path_arg(args, "TO:", &addr, &params)) {
		reply(d, "501 5.5.4 syntax: RCPT TO:<address>");
		return STEP_NEXT;
	}
	if (*addr == '\0') {
		reply(d, "501 5.1.3 empty recipient address");
		return STEP_NEXT;
	}
	if (!take_params(d, params, false) ||
	    !address_acceptable(d, addr, "recipient", "5.1.3"))
		return STEP_NEXT;
	if (strlist_contains(&d->rcpts, addr)) {
		reply(d, "250 2.1.5 recipient already given");
		return STEP_NEXT;
	}
	if (d->rcpts.n >= SMTPD_RCPT_MAX) {
		reply(d, "452 4.5.3 too many recipients");
		return STEP_NEXT;
	}
	strlist_add(&d->rcpts, addr);
	set_state(d, SMTPD_STATE_RCPT);
	reply(d, "250 2.1.5 recipient ok");
	return STEP_NEXT;
}

/* RFC 5321 3.3: DATA without a sender or recipient is 503 or 554. */
static enum session_step cmd_data(struct smtpd *d, char *args)
{
	if (!no_args(d, "DATA", args))
		return STEP_NEXT;
	if (d->state < SMTPD_STATE_MAIL) {
		reply(d, "503 5.5.1 need MAIL and RCPT before DATA");
		return STEP_NEXT;
	}
	if (d->state == SMTPD_STATE_MAIL) {
		reply(d, "554 5.5.1 no valid recipients");
		return STEP_NEXT;
	}
	return receive_text(d);
}

static enum session_step cmd_rset(struct smtpd *d, char *args)
{
	if (!no_args(d, "RSET", args))
		return STEP_NEXT;
	if (d->state > SMTPD_STATE_READY)
		set_state(d, SMTPD_STATE_READY);
	reply(d, "250 2.0.0 reset");
	return STEP_NEXT;
}

/* RFC 5321 4.1.1.9: NOOP's argument is ignored. */
static enum session_step cmd_noop(struct smtpd *d, char *args)
{
	reply(d, "250 2.0.0 ok");
	return STEP_NEXT;
}

static enum session_step cmd_quit(struct smtpd *d, char *args)
{
	if (!no_args(d, "QUIT", args))
		return STEP_NEXT;
	reply(d, "221 2.0.0 %s closing connection", d->hostname);
	return STEP_QUIT;
}

/* RFC 5321 3.5.3: 252 when an address cannot be verified but mail to it
 * will be attempted; we only pass mail on, so we never know. */
static enum session_step cmd_vrfy(struct smtpd *d, char *args)
{
	if (*skip_spaces(args) == '\0')
		reply(d, "501 5.5.4 syntax: VRFY address");
	else
		reply(d, "252 2.5.0 cannot verify, but will accept mail and "
		      "attempt delivery");
	return STEP_NEXT;
}

static enum session_step cmd_help(struct smtpd *d, char *args)
{
	reply(d, "214 2.0.0 commands: EHLO HELO MAIL RCPT DATA RSET NOOP "
	      "QUIT VRFY HELP");
	return STEP_NEXT;
}

/* RFC 5321 4.2.4: 502 for a command we know but do not offer (EXPN may
 * be disabled, 3.5.3; AUTH, STARTTLS and BDAT are not in EHLO). */
static enum session_step cmd_not_offered(struct smtpd *d, char *args)
{
	reply(d, "502 5.5.1 command not implemented");
	return STEP_NEXT;
}

static const struct command {
	const char *verb;
	enum session_step (*run)(struct smtpd *d, char *args);
} commands[] = {
	{ "EHLO", cmd_ehlo }, { "HELO", cmd_helo }, { "MAIL", cmd_mail },
	{ "RCPT", cmd_rcpt }, { "DATA", cmd_data }, { "RSET", cmd_rset },
	{ "NOOP", cmd_noop }, { "QUIT", cmd_quit }, { "VRFY", cmd_vrfy },
	{ "HELP", cmd_help }, { "EXPN", cmd_not_offered },
	{ "STARTTLS", cmd_not_offered }, { "AUTH", cmd_not_offered },
	{ "BDAT", cmd_not_offered }, { "ETRN", cmd_not_offered },
	{ "TURN", cmd_not_offered }, { "ATRN", cmd_not_offered },
};

/* The verb is everything up to the first space (RFC 5321 4.1.1: verbs
 * are case-insensitive); RFC 5321 4.2.4: 500 for one not recognized. */
static enum session_step dispatch(struct smtpd *d, char *line)
{
	char *args = strchr(line, ' ');

	if (args)
		*args++ = '\0';
	else
		args = line + strlen(line);
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (ascii_casecmp(line, commands[i].verb) == 0)
			return commands[i].run(d, args);
	reply(d, "500 5.5.2 command not recognized");
	return STEP_NEXT;
}

static enum session_step next_command(struct smtpd *d)
{
	char line[SMTPD_COMMAND_MAX];
	size_t len = 0;
	bool too_long;
	enum pipe_status st = read_command(d, line, &len, &too_long);

	if (st != PIPE_OK)
		return step_after(d, st);
	if (too_long)
		reply(d, "500 5.5.2 command line longer than %d octets",
		      SMTPD_COMMAND_MAX);
	else if (memchr(line, '\0', len))
		reply(d, "500 5.5.2 NUL byte in command");
	else
		return dispatch(d, line);
	return STEP_NEXT;
}

/* ---------------------------------------------------------- session */

/* The name goes into every greeting and EHLO reply as it is, so anything
 * but a plain printable word would corrupt them. */
static const char *usable_hostname(const char *name)
{
	size_t len = name ? strlen(name) : 0;

	if (len == 0 || len > SMTPD_HOSTNAME_MAX)
		return "localhost";
	for (size_t i = 0; i < len; i++)
		if (name[i] <= ' ' || name[i] > '~')
			return "localhost";
	return name;
}

int smtpd_run(int in_fd, int out_fd, const struct smtpd_options *opt)
{
	struct smtpd d = {
		.opt = opt, .in_fd = in_fd, .out_fd = out_fd,
		.hostname = usable_hostname(opt->hostname),
		.state = SMTPD_STATE_GREETED, .out_status = PIPE_OK,
	};
	enum session_step step = STEP_NEXT;

	d.in = xmalloc(SMTPD_BLOCK);
	reply(&d, "220 %s ESMTP postbote", d.hostname);
	while (step == STEP_NEXT)
		step = next_command(&d);
	out_flush(&d);
	set_state(&d, SMTPD_STATE_GREETED);
	free(d.in);
	if (step == STEP_FAILED || d.out_status == PIPE_FAILED)
		return -1;
	return step == STEP_QUIT && d.out_status == PIPE_OK ? 0 : 1;
}
