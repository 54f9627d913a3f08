/* libFuzzer harness: the SMTP reply parser (src/smtp.h) on the input's
 * lines, then smtp_read_reply over a socketpair whose other end holds the
 * whole input, so the stream line reader (src/stream.h) with its length
 * limit sees server output as it would arrive. */
#include "autoconf.h"

#include <fcntl.h>
#include <sys/socket.h>

#include "smtp.h"
#include "status.h"
#include "stream.h"
#include "util.h"

#include "fuzz_util.h"

/* RFC 3463 2: class "." subject "." detail, class 2, 4 or 5, subject and
 * detail 1 to 3 digits. */
static bool is_enhanced_code(const char *s)
{
	size_t i = 2, n;

	if ((s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return false;
	for (n = 0; fuzz_is_digit(s[i]); i++)
		n++;
	if (n < 1 || n > 3 || s[i++] != '.')
		return false;
	for (n = 0; fuzz_is_digit(s[i]); i++)
		n++;
	return n >= 1 && n <= 3 && s[i] == '\0';
}

/* smtp_parse_enhanced_code: a code of the reply's class at the start of
 * text, copied to out; the count includes the space after it. */
static size_t check_enhanced(int code, const char *text, char out[16])
{
	size_t used = smtp_parse_enhanced_code(code, text, out);
	size_t n;

	if (used == 0)
		return 0;
	n = strlen(out);
	FUZZ_CHECK(n < 16);
	FUZZ_CHECK(is_enhanced_code(out));
	FUZZ_CHECK(out[0] - '0' == code / 100);
	FUZZ_CHECK(memcmp(out, text, n) == 0);
	FUZZ_CHECK(text[n] == '\0' || text[n] == ' ');
	FUZZ_CHECK(used == (text[n] == ' ' ? n + 1 : n));
	return used;
}

/* What the reply struct promises: the first line's code and enhanced code,
 * every line's text joined by '\n'. */
struct expected_reply {
	int code;
	char enhanced[16];
	struct fuzz_buf text;
	size_t nlines;
};

static void add_and_check(struct smtp_reply *r, struct expected_reply *want,
			  int code, const char *text)
{
	char enh[16];
	size_t used = check_enhanced(code, text, enh);

	if (want->nlines == 0) {
		want->code = code;
		snprintf(want->enhanced, sizeof want->enhanced, "%s",
			 used ? enh : "");
	} else {
		fuzz_buf_addc(&want->text, '\n');
	}
	fuzz_buf_add(&want->text, text + used, strlen(text + used));
	want->nlines++;
	smtp_reply_add_line(r, code, text);
	FUZZ_CHECK(r->nlines == want->nlines);
	FUZZ_CHECK(r->code == want->code);
	FUZZ_CHECK(strcmp(r->enhanced, want->enhanced) == 0);
	FUZZ_CHECK(r->text != NULL && strcmp(r->text, want->text.p) == 0);
}

/* smtp_parse_reply_line on one line: "250-text", "250 text" or "250". */
static void check_line(const char *line, struct smtp_reply *r,
		       struct expected_reply *want)
{
	int code;
	bool last;
	const char *text;

	if (smtp_parse_reply_line(line, &code, &last, &text) < 0)
		return;
	FUZZ_CHECK(line[0] >= '2' && line[0] <= '5');
	FUZZ_CHECK(fuzz_is_digit(line[1]) && fuzz_is_digit(line[2]));
	FUZZ_CHECK(code == (line[0] - '0') * 100 + (line[1] - '0') * 10 +
			   (line[2] - '0'));
	FUZZ_CHECK(line[3] == '\0' || line[3] == ' ' || line[3] == '-');
	FUZZ_CHECK(last == (line[3] != '-'));
	FUZZ_CHECK(text == line + (line[3] ? 4 : 3));
	add_and_check(r, want, code, text);
	if (last) {
		smtp_reply_free(r);
		fuzz_buf_free(&want->text);
		memset(want, 0, sizeof *want);
	}
}

static void parse_lines(const uint8_t *data, size_t size)
{
	struct fuzz_lines it = { .p = data, .left = size, .strip_cr = true };
	struct smtp_reply r = { 0 };
	struct expected_reply want = { 0 };
	char *line;

	while ((line = fuzz_next_line(&it)) != NULL) {
		check_line(line, &r, &want);
		free(line);
	}
	smtp_reply_free(&r);
	fuzz_buf_free(&want.text);
}

/* A reply smtp_read_reply accepted. */
static void check_read_reply(const struct smtp_reply *r)
{
	size_t newlines = 0;

	FUZZ_CHECK(r->code >= 200 && r->code <= 599);
	FUZZ_CHECK(r->nlines >= 1 && r->nlines <= SMTP_REPLY_LINES_MAX);
	FUZZ_CHECK(r->text != NULL);
	for (const char *p = r->text; *p; p++)
		newlines += *p == '\n';
	FUZZ_CHECK(newlines == r->nlines - 1);
	FUZZ_CHECK(r->enhanced[0] == '\0' ||
		   (is_enhanced_code(r->enhanced) &&
		    r->enhanced[0] - '0' == r->code / 100));
}

static void trace_line(void *ctx, enum trace_dir dir, const char *text)
{
	(void)ctx;
	if (dir == TRACE_SERVER)
		FUZZ_CHECK(strlen(text) <= SMTP_REPLY_LINE_MAX);
}

/* The server's side: as much of the input as the socket takes without
 * blocking (all of it at libFuzzer's input sizes), then end of stream. */
static void serve(int fd, const uint8_t *data, size_t size)
{
	size_t off = 0;

	FUZZ_CHECK(fcntl(fd, F_SETFL, O_NONBLOCK) == 0);
	while (off < size) {
		ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(fd);
}

static void check_failure(struct outcome *o)
{
	char *text;

	FUZZ_CHECK(o->failure != FAIL_NONE);
	FUZZ_CHECK(o->stage == STAGE_GREETING);
	text = status_describe(o);
	FUZZ_CHECK(text != NULL && text[0] != '\0');
	free(text);
	(void)status_exit_code(o);
	outcome_clear(o);
}

static void read_replies(const uint8_t *data, size_t size)
{
	int sv[2];
	struct stream *stream;
	struct smtp_session s;

	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	serve(sv[1], data, size);
	stream = stream_new(sv[0]);
	smtp_session_init(&s, stream, "client.example.org");
	s.trace = trace_line;
	for (;;) {
		struct smtp_reply r;
		struct outcome o = { 0 };
		char *text;
		if (smtp_read_reply(&s, 10000, STAGE_GREETING, "(greeting)", &r,
				    &o) < 0) {
			check_failure(&o);
			break;
		}
		check_read_reply(&r);
		outcome_set_reply(&o, STAGE_RCPT, "RCPT TO:<user@example.org>",
				  r.code, r.enhanced, r.text);
		text = status_describe(&o);
		FUZZ_CHECK(text != NULL);
		free(text);
		outcome_clear(&o);
		smtp_reply_free(&r);
	}
	smtp_session_free(&s);
	stream_free(stream);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	parse_lines(data, size);
	read_replies(data, size);
	return 0;
}
